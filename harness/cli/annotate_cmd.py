"""``synthbench annotate``: a human-evaluation loop (blinded export, ratings import, agreement, human scores)."""

from __future__ import annotations

import argparse

NAME = "annotate"
HELP = "export a blinded human-annotation study of a run's datasets, then import the ratings (agreement, human scores)"
DESCRIPTION = """\
synthbench annotate export SOURCE --out STUDY [--rubric NAME|FILE.yaml ...] [--per-dataset 30] [--seed 0]
synthbench annotate import RATINGS [RATINGS ...] --key STUDY/PRIVATE-key.do-not-send-to-annotators.json

export: SOURCE is a results folder (written by 'synthbench run' or 'eval --out') or a suite YAML. From every
dataset (the reference too, as a control, unless --no-reference) a seeded sample of rows the run
evaluated, stratified by label, is written blinded (random item ids, shuffled, no dataset names) into
STUDY/for-annotators/: items.csv (fill in), GUIDELINES.md, a Label Studio project (label-studio/tasks.json,
config.xml) and an Argilla v2 dataset (argilla/settings.json, records.jsonl). The questions are the LLM
judge's rubrics (default: label_correctness for labelled data, instruction_following for instruction data).
The key that unblinds the study is STUDY/PRIVATE-key.do-not-send-to-annotators.json: keep it to yourself.

import: RATINGS are filled-in CSV files (columns item_id, annotator, one per question) and/or Label Studio
JSON exports. Every rating is checked against the rubric's scale and every key entry against the data.
Writes human/<question> records into the run's results.jsonl and annotation.md / annotation.json beside
them: Krippendorff's alpha per question (bootstrap interval over items), human scores per dataset, and the
agreement of the LLM judge and of each stored metric with the humans."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.cli.common import positive_int

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="annotate_command", metavar="export|import")
    sub.required = True
    e = sub.add_parser("export", help="write a blinded annotation study (and its private key)",
                       description="Write a blinded, shuffled, stratified sample of every dataset of SOURCE for human "
                                   "annotators, and the private key that maps it back.")
    e.add_argument("source", metavar="SOURCE", help="a results folder (synthbench run / eval --out) or a suite YAML")
    e.add_argument("--out", "-o", required=True, metavar="STUDY",
                   help="folder for the study: new, empty or one synthbench wrote")
    e.add_argument("--rubric", action="append", metavar="NAME|FILE.yaml",
                   help="a question: a rubric of harness/rubrics/ (label_correctness, instruction_following, "
                        "factual_consistency) or a rubric YAML file; repeatable (default: by the data's kind)")
    e.add_argument("--per-dataset", type=positive_int, default=30, metavar="N",
                   help="items per dataset (default 30; all rows of a smaller dataset)")
    e.add_argument("--seed", type=int, default=0, help="seed of the sample and of the order (default 0)")
    e.add_argument("--datasets", metavar="A,B", help="only these datasets (default: every candidate and the reference)")
    e.add_argument("--no-reference", action="store_true", help="leave the reference's rows (the control) out")
    e.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files (they are never overwritten or deleted)")

    i = sub.add_parser("import", help="read ratings back: agreement, human scores, judge and metric agreement",
                       description="Read ratings (CSV files, Label Studio JSON exports), check them against the "
                                   "study's key and scales, and write human/<question> records and the report.")
    i.add_argument("ratings", nargs="+", metavar="RATINGS", help="filled-in .csv files and/or Label Studio .json exports")
    i.add_argument("--key", "-k", required=True, metavar="KEY.json", help="the study's private key file")
    i.add_argument("--source", metavar="SOURCE",
                   help="the results folder (or suite YAML) the study was exported from (default: as the key records)")
    i.add_argument("--out", "-o", metavar="DIR",
                   help="where the human/ records and the report go (default: the results folder; for a suite, "
                        "reports/<suite name>)")
    i.add_argument("--boot", type=positive_int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    i.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")


def run(args) -> int:
    if args.annotate_command == "export":
        return _export(args)
    return _import(args)


def _export(args) -> int:
    from harness.analysis.annotation import (
        KEY_NAME,
        SEND_DIR,
        default_rubric,
        draw_study,
        load_question,
        open_source,
        write_study,
    )
    from harness.cli.common import log
    from harness.errors import UserError

    names = [n.strip() for n in args.datasets.split(",") if n.strip()] if args.datasets else None
    source = open_source(args.source, names)
    kinds = sorted({d.corpus.kind for d in source.datasets})
    if not args.rubric and len(kinds) > 1:
        raise UserError(f"{args.source}: datasets of several kinds ({', '.join(kinds)})",
                        "name the question(s) with --rubric, or pick datasets of one kind with --datasets")
    specs = args.rubric or [default_rubric(kinds[0])]
    questions = [load_question(s) for s in specs]
    dup = sorted({q.name for q in questions if [x.name for x in questions].count(q.name) > 1})
    if dup:
        raise UserError(f"--rubric: the question {dup[0]} is given twice", "give each rubric once")
    key = draw_study(source, questions, args.per_dataset, args.seed, include_reference=not args.no_reference)
    written = write_study(key, args.out, force=args.force)
    per = {d["name"]: d["items"] for d in key["datasets"]}
    log(f"study of {len(key['items'])} items ({', '.join(f'{n}: {k}' for n, k in per.items())}), "
        f"questions {', '.join(q.name for q in questions)}")
    log(f"send {args.out}/{SEND_DIR}/ to the annotators; keep {args.out}/{KEY_NAME} (it unblinds the study)")
    log(f"wrote {len(written)} files into {args.out}")
    return 0


def _import(args) -> int:
    import json
    from pathlib import Path

    from harness.analysis.annotation import (
        REPORT_JSON,
        REPORT_MD,
        analyse,
        check_key,
        open_source,
        public,
        read_key,
        read_ratings,
        write_results,
    )
    from harness.cli.common import log
    from harness.errors import UserError
    from harness.report.annotation_report import render_markdown
    from harness.run import outdir

    key = read_key(args.key)
    spec = args.source or key["source"]["path"]
    if not Path(spec).exists():
        raise UserError(f"{args.key}: the study was exported from {spec}, which is not there",
                        "give the results folder (or suite) it came from with --source")
    source = open_source(spec, [d["name"] for d in key["datasets"]])
    shown = check_key(key, source, args.key)
    ratings = read_ratings(args.ratings, key, shown)
    analysis = analyse(key, source, ratings, n_boot=args.boot, seed=args.seed, key_path=args.key, files=args.ratings)
    if args.out:
        out = outdir.claim(args.out)
    elif source.kind == "run":
        out = outdir.claim(source.path)
    else:
        out = outdir.claim(Path("reports") / source.name)
    results = write_results(analysis, out)
    md = render_markdown(public(analysis))
    outdir.write_text(out / REPORT_MD, md)
    outdir.write_text(out / REPORT_JSON, json.dumps(public(analysis), indent=1, ensure_ascii=False, default=str) + "\n")
    print(md)
    log(f"{len(analysis['_results'])} human/ record(s) into {results}; wrote {out / REPORT_MD} and {out / REPORT_JSON}")
    return 0
