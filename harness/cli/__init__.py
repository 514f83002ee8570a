"""The ``synthbench`` command: argument parsing over the Python API (:mod:`harness.api`).

``eval``, ``run``, ``metrics`` and ``report`` live here; every other command is one module
``harness/cli/<name>_cmd.py``, found by listing this package. Heavy modules are imported inside the
commands, so ``--help`` is fast (it imports no numpy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import __version__
from harness.cli.common import (
    Parser,
    add_field_flags,
    add_judge_flags,
    field_options,
    judge_options,
    positive_int,
    progress_enabled,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="synthbench",
        description="Evaluate synthetic text datasets against a real reference: diversity, duplicates, "
                    "semantic spread (and more metric families as they are added).")
    p.add_argument("--version", action="version", version=f"synthbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("eval", help="evaluate candidate datasets (and the reference) and write results",
                       description="Evaluate each CANDIDATE (a path, NAME=PATH, builtin:NAME, hf:ID) and the "
                                   "reference; print a table; write DIR/results.jsonl and DIR/report.md. "
                                   "Formats: .jsonl .json .csv .tsv .parquet, Hugging Face save_to_disk "
                                   "folders, folders of <label>/*.txt.")
    e.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    e.add_argument("--reference", "-r", metavar="REF", help="the real dataset to compare with")
    e.add_argument("--test", "-t", metavar="TEST",
                   help="a held-out real test split, for metrics that train models (utility/...) or check "
                        "contamination; never sampled, never trained on")
    e.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="without --test: hold out this fraction of the reference (stratified, seeded) as the "
                        "real test split")
    e.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="output folder: new, empty, or one synthbench wrote (finished records are reused on rerun)")
    e.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files (they are never overwritten or deleted)")
    e.add_argument("--metrics", "-m", metavar="LIST",
                   help="comma-separated metric names, groups (the part before /) or globs; 'synthbench metrics' lists them; default: all")
    e.add_argument("--sample-size", metavar="N|min",
                   help="evaluate every dataset on N rows drawn without replacement (seeded); 'min' = the "
                        "smallest candidate's size. Makes size-dependent metrics comparable.")
    e.add_argument("--repeats", type=positive_int, default=1, metavar="R",
                   help="with --sample-size: compute size-dependent metrics on R seeded samples of each "
                        "larger dataset and report their mean with a 95%% t-interval (default 1)")
    e.add_argument("--seed", type=int, default=0, help="seed for sampling, bootstrap and seeded metrics")
    e.add_argument("--embedder", default="default",
                   help="sentence-transformers model: 'default' (all-MiniLM-L6-v2, offline), a local "
                        "folder, or a hub name (needs a network)")
    e.add_argument("--batch-size", type=positive_int, default=64, help="embedding batch size")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where texts are embedded: 'local' (this process, default) or 'ray' (Ray Data on a Ray "
                        "cluster; the cache stays here; needs pip install 'synthbench[ray]')")
    e.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --engine ray: an existing cluster ('auto', or ray://HEAD:10001); default: start a "
                        "local cluster with this machine's CPUs")
    e.add_argument("--lm", default="default",
                   help="causal language model for the fluency metrics: 'default' (SmolLM2-135M-Instruct, "
                        "offline), a local Hugging Face folder, or a hub id (needs a network)")
    e.add_argument("--precision", choices=PRECISION_CHOICES, default=None, help=PRECISION_HELP)
    add_judge_flags(e)
    e.add_argument("--schema", metavar="FILE.yaml",
                   help="declared row schema (required fields, types, allowed labels, lengths, JSON fields): "
                        "invalid rows are kept and counted by format/invalid-rate instead of refusing the file")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("--strict", action="store_true",
                   help="refuse a file with an empty or null row (default: such rows are left out, counted by "
                        "format/empty-rate and flagged 'empty')")
    e.add_argument("--no-quote-text", action="store_true",
                   help="withhold dataset text (examples, flagged rows) from results.jsonl: for data you may not "
                        "redistribute")
    add_field_flags(e)

    mp = sub.add_parser("metrics", help="list every metric with its meaning and direction")
    mp.add_argument("--markdown", action="store_true", help="print docs/metrics.md (the Markdown table of every metric)")
    mp.add_argument("--cards", metavar="DIR", help="write one Markdown card per metric into DIR (docs/cards), "
                    "generated from the declarations")

    s = sub.add_parser("run", help="run a suite (YAML) with resume; write results and the leaderboard",
                       description="Run every candidate of SUITE against its reference; finished results in "
                                   "OUT are reused. Writes results.jsonl, report.md (the leaderboard) and run.json.")
    s.add_argument("suite", metavar="SUITE.yaml")
    s.add_argument("--out", "-o", metavar="DIR", help="output folder (default: reports/<suite name>)")
    s.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files (they are never overwritten or deleted)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.add_argument("--precision", choices=PRECISION_CHOICES, default=None,
                   help=PRECISION_HELP + "; overrides the suite's precision:")

    r = sub.add_parser("report", help="render DIR/report.md again from DIR/results.jsonl (no recomputation)")
    r.add_argument("dir", metavar="DIR")

    from harness.cli.commands import discover

    for mod in discover():
        c = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(c)
        c.set_defaults(_command_module=mod)
    return p


PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
PRECISION_HELP = ("compute precision of the embedder and the causal LM: auto (default, or $SYNTHBENCH_PRECISION: "
                  "bf16 on CPUs with AVX512-BF16/AMX and on GPUs that have it, fp16 on other GPUs, fp32 elsewhere), "
                  "fp32, bf16 or fp16")


def main(argv: list[str] | None = None) -> int:
    from harness.errors import UserError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a one-line usage error (cli.common.Parser)
        return e.code if isinstance(e.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "metrics":
            return cmd_metrics(markdown=args.markdown, cards=args.cards)
        if args.command == "report":
            return cmd_report(Path(args.dir))
        if getattr(args, "_command_module", None) is not None:
            return int(args._command_module.run(args) or 0)
    except UserError as e:
        from harness.report.markdown import term_safe

        print(f"synthbench: error: {term_safe(e.line())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("synthbench: interrupted; finished results are kept and a rerun resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 0


def cmd_metrics(markdown: bool = False, cards: str | None = None) -> int:
    from harness import metrics
    from harness.report.markdown import arrow

    if cards:
        from harness.report.cards import write_cards

        paths = write_cards(Path(cards))
        print(f"wrote {len(paths)} file(s) into {cards}", file=sys.stderr)
        return 0
    if markdown:
        print(metrics.markdown_table(), end="")
        return 0
    for name in metrics.names():
        info = metrics.get(name).info
        print(f"{name:36s} {arrow(info.higher_is_better)}  {info.summary}")
    print("\n↑ higher is better   ↓ lower is better   · no direction (compare with the reference)")
    return 0


def cmd_eval(args) -> int:
    from harness.api import DataSpec, evaluate
    from harness.cli.common import finish, log

    spec = lambda x: DataSpec(x) if x is not None else None  # noqa: E731 - arguments name data, never texts
    run = evaluate([spec(c) for c in args.candidates], reference=spec(args.reference), test=spec(args.test),
                   metrics=args.metrics.split(",") if args.metrics is not None else None, sample_size=args.sample_size,
                   repeats=args.repeats, seed=args.seed, out=args.out, holdout=args.holdout,
                   embedder=args.embedder, batch_size=args.batch_size, lm=args.lm, judge=judge_options(args),
                   engine={"name": args.engine, "address": args.ray_address}, quote_text=not args.no_quote_text,
                   schema=args.schema, split=args.split, progress=progress_enabled(args.no_progress), log=log,
                   force=args.force, strict=args.strict, precision=args.precision, **field_options(args))
    return finish(run)


def cmd_run(args) -> int:
    from harness.api import run_suite
    from harness.cli.common import finish, log

    return finish(run_suite(args.suite, out=args.out, progress=progress_enabled(args.no_progress), log=log,
                            force=args.force, precision=args.precision))


def cmd_report(out: Path) -> int:
    """Render the reports again from results.jsonl, showing only the records that describe the data of the
    last run (run.json): a record computed on other data, or by an older metric version, is stale and left
    out with one line saying so."""
    from harness.cli.common import log
    from harness.errors import UserError
    from harness.report.markdown import render_terminal
    from harness.report.write import write_report
    from harness.run.outdir import check_path
    from harness.run.store import current_records

    out = check_path(out, "DIR")
    meta_path = out / "run.json"
    if not (out / "results.jsonl").exists():
        raise UserError(f"{out / 'results.jsonl'}: no results here", "run 'synthbench eval ... --out DIR' first")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    except ValueError:
        meta = {}
    if not meta:
        raise UserError(f"{meta_path}: missing or damaged", "rerun 'synthbench eval' into this folder to recreate it")
    results, failures, stale = current_records(out, meta)
    if stale and not results and not failures:
        raise UserError(f"{out}: all {len(stale)} stored record(s) are stale ({stale[0][2]}); the reports there "
                        "are left as they are", "rerun 'synthbench eval' (or 'synthbench run SUITE') into this "
                        "folder to recompute them")
    meta["failed"] = [list(x) for x in failures]
    meta["stale"] = [list(x) for x in stale]
    written = write_report(out, results, meta)
    print(render_terminal(results, meta))
    if stale:
        by_why: dict[str, list[str]] = {}
        for d, m, why in stale:
            by_why.setdefault(why, []).append(f"{d} {m}")
        for why, items in by_why.items():
            shown = ", ".join(items[:4]) + (f", … ({len(items)} in all)" if len(items) > 4 else "")
            log(f"stale, not shown ({why}): {shown}; rerun 'synthbench eval' into {out} to recompute")
    log("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
