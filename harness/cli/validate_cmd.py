"""``synthbench validate``: prove that each metric detects the defect it claims to detect."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "validate"
HELP = "corrupt a real dataset on purpose and check that every metric responds as declared"
DESCRIPTION = (
    "Apply controlled corruptions (exact and near duplicates, label noise, mode collapse, class drop, "
    "truncation, length shift, topic drift, shuffled words, copies of the test split and of the reference) "
    "to samples of DATASET at several severities, run every metric on each damaged copy, and report the "
    "Spearman correlation between severity and each metric with a 95% interval, checked against the "
    "expectation each metric declares (expect= in its @metric); plus identity checks (a sample against itself, two disjoint "
    "samples). Writes DIR/validity.md, DIR/validity.json and DIR/figures/validity.png|svg; DIR/raw/ holds "
    "the resumable per-candidate results (with row excerpts: not for committing). Exit code 1 when an "
    "expectation or identity check FAILs (documented limits do not count unless --strict); 0 otherwise.")


def add_arguments(p) -> None:
    from harness.cli.common import positive_int

    p.add_argument("dataset", metavar="DATASET",
                   help="a real labelled dataset (path, builtin:NAME, hf:ID; NAME=PATH names it)")
    p.add_argument("--reference", "-r", metavar="REF",
                   help="the reference to compare with (default: a disjoint half of DATASET)")
    p.add_argument("--test", "-t", metavar="TEST",
                   help="the real test split for contamination/utility metrics and test-copy rows "
                        "(default: 20%% of DATASET held out)")
    p.add_argument("--other", metavar="OTHER",
                   help="another real dataset whose rows make the topic-drift corruption (default: "
                        "builtin:bbc-news for any other DATASET; without it for BBC News, topic drift is not run)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (reused on rerun)")
    p.add_argument("--metrics", "-m", metavar="LIST",
                   help="metric names, groups or globs (default: every metric except the opt-in ones)")
    p.add_argument("--exclude", metavar="LIST", help="metric names, groups or globs to leave out")
    p.add_argument("--corruptions", metavar="LIST", help="which corruptions (default: all); "
                   "exact-dup, near-dup, label-noise, mode-collapse, class-drop, truncation, length-shift, "
                   "topic-drift, shuffled-words, test-copy, reference-copy")
    p.add_argument("--severities", default="0,0.1,0.25,0.5", metavar="LIST",
                   help="severities in [0, 1], comma-separated (0 is always added; default 0,0.1,0.25,0.5)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="R",
                   help="independent samples (and corruption seeds) per severity (default 3)")
    p.add_argument("--sample-size", type=int, default=300, metavar="N", help="rows per candidate (default 300)")
    p.add_argument("--test-size", type=positive_int, default=500, metavar="N",
                   help="rows of the test split used (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedder", default="default", help="as for eval (default: all-MiniLM-L6-v2, offline)")
    p.add_argument("--strict", action="store_true",
                   help="documented limits count as failures for the exit code too")
    p.add_argument("--no-fail", action="store_true", help="exit 0 even when checks FAIL (report only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("columns")
    g.add_argument("--text-field")
    g.add_argument("--label-field")
    g.add_argument("--split", help="split of a Hugging Face dataset folder or hub id (default: train)")


def _list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def _severities(text: str) -> list[float]:
    from harness.errors import UserError

    out = []
    for x in _list(text):
        try:
            s = float(x)
        except ValueError:
            raise UserError(f"--severities: '{x}' is not a number", "give fractions such as 0,0.1,0.25,0.5") from None
        if not 0 <= s <= 1:
            raise UserError(f"--severities: {x} is not in [0, 1]", "severities are shares of rows, 0 to 1")
        out.append(s)
    if len({s for s in out if s > 0}) < 1:
        raise UserError("--severities: no severity above 0", "give at least one, e.g. 0,0.25,0.5")
    return sorted(set(out) | {0.0})


def run(args) -> int:
    import fnmatch
    import os

    from harness import metrics as registry
    from harness.analysis.validity import CORRUPTIONS, summary_counts, validate
    from harness.cli.common import progress_enabled
    from harness.data.load import FieldMap, load_corpus
    from harness.errors import UserError
    from harness.report.validity_report import heatmap, render_markdown
    from harness.run.outdir import write_text as atomic_write_text

    progress = progress_enabled(args.no_progress)
    if not progress:
        os.environ.setdefault("TQDM_DISABLE", "1")
    from harness.run.outdir import claim

    claim(args.out)  # before any work: a folder of other files, or an unwritable one, is refused now
    severities = _severities(args.severities)
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: must be at least 1", "give 3 or more for a usable interval")
    if args.sample_size < 20:
        raise UserError(f"--sample-size {args.sample_size}: too small", "give at least 20 rows")
    points = len(severities) * args.repeats
    if points < 6:
        print(f"synthbench validate: warning: {points} points per cell give very wide intervals; "
              "use more --repeats or --severities", file=sys.stderr)
    corruptions = _list(args.corruptions) or list(CORRUPTIONS)
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise UserError(f"--corruptions: no corruption named '{unknown[0]}'", f"use some of: {', '.join(CORRUPTIONS)}")
    specs = registry.select(_list(args.metrics) or None)
    excl = _list(args.exclude)
    if excl:
        drop = {s.name for s in registry.select(excl)} | {s.name for s in specs if any(fnmatch.fnmatch(s.name, p)
                                                                                  for p in excl)}
        specs = [s for s in specs if s.name not in drop]
    if not specs:
        raise UserError("no metric left to validate", "check --metrics and --exclude")
    fields = FieldMap(text=args.text_field, label=args.label_field)
    from harness.data.load import parse_named

    name, path = parse_named(args.dataset)
    dataset = load_corpus(path, fields, name=name, split=args.split)
    if dataset.kind == "instruction":
        raise UserError(f"{args.dataset}: instruction data; validate corrupts labelled or plain text rows",
                        "name the columns with --text-field (and --label-field)")
    reference = load_corpus(args.reference, fields, name="reference", split=args.split) if args.reference else None
    test = load_corpus(args.test, fields, name="test", split=args.split) if args.test else None
    other_spec = args.other or (None if path == "builtin:bbc-news" else "builtin:bbc-news")
    other = None
    if other_spec and "topic-drift" in corruptions:
        oname, opath = parse_named(other_spec)
        other = load_corpus(opath, FieldMap(), name=oname, split=None)
    needs_emb = any("embeddings" in s.info.needs or "reference_embeddings" in s.info.needs for s in specs)
    emb_spec = None
    if needs_emb:
        from harness.resources.embedder import resolve_embedder

        emb_spec = resolve_embedder(args.embedder)
    out = Path(args.out)
    from harness.api import log_line as log
    try:
        v = validate(dataset, specs, out / "raw", reference=reference, test=test, other=other,
                     corruptions=corruptions, severities=severities, repeats=args.repeats,
                     sample_size=args.sample_size, test_size=args.test_size, seed=args.seed,
                     embedder_spec=emb_spec, progress=progress, log=log)
    except ValueError as e:
        raise UserError(f"validate: {e}", "use a smaller --sample-size or a larger DATASET") from None
    from harness import __version__

    v.meta["harness"] = __version__
    v.meta["options"] = {"dataset": args.dataset, "reference": args.reference, "test": args.test,
                         "other": other_spec if other is not None else None, "metrics": args.metrics,
                         "exclude": args.exclude, "severities": severities, "repeats": args.repeats,
                         "sample_size": args.sample_size, "test_size": args.test_size, "seed": args.seed}
    figs = heatmap(v, out / "figures")
    atomic_write_text(out / "validity.json", json.dumps(v.to_json(), indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(out / "validity.md", render_markdown(v, "figures/validity.png" if figs else None))
    if not (out / ".gitignore").exists():
        atomic_write_text(out / ".gitignore", "# per-candidate results with row excerpts: a cache, not a report\nraw/\n")
    s = summary_counts(v)
    fails = v.failures(strict=args.strict)
    print(f"{s['checks']} checks: {s['pass']} pass, {s['FAIL']} FAIL, {s['limit']} known limit(s); identity "
          f"{s['identity_pass']} pass, {s['identity_FAIL']} FAIL, {s['identity_limit']} limit(s); {s['unchecked']} unchecked cells; "
          f"wrote {out / 'validity.md'}")
    for c in fails:
        what = f"{c['metric']} under {c['corruption']}" if "corruption" in c else f"{c['metric']} identity"
        print(f"FAIL: {what}", file=sys.stderr)
    if fails and not args.no_fail:
        print(f"synthbench validate: {len(fails)} check(s) FAILED (exit 1; --no-fail to report only)", file=sys.stderr)
        return 1
    return 0
