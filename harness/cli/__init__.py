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
    add_field_flags,
    add_judge_flags,
    field_options,
    judge_options,
    progress_enabled,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    e.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (reused on rerun)")
    e.add_argument("--metrics", "-m", metavar="LIST",
                   help="comma-separated metric names, groups (the part before /) or globs; 'synthbench metrics' lists them; default: all")
    e.add_argument("--sample-size", metavar="N|min",
                   help="evaluate every dataset on N rows drawn without replacement (seeded); 'min' = the "
                        "smallest candidate's size. Makes size-dependent metrics comparable.")
    e.add_argument("--repeats", type=int, default=1, metavar="R",
                   help="with --sample-size: compute size-dependent metrics on R seeded samples of each "
                        "larger dataset and report their mean with a 95%% t-interval (default 1)")
    e.add_argument("--seed", type=int, default=0, help="seed for sampling, bootstrap and seeded metrics")
    e.add_argument("--embedder", default="default",
                   help="sentence-transformers model: 'default' (all-MiniLM-L6-v2, offline), a local "
                        "folder, or a hub name (needs a network)")
    e.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where texts are embedded: 'local' (this process, default) or 'ray' (Ray Data on a Ray "
                        "cluster; the cache stays here; needs pip install 'synthbench[ray]')")
    e.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --engine ray: an existing cluster ('auto', or ray://HEAD:10001); default: start a "
                        "local cluster with this machine's CPUs")
    e.add_argument("--lm", default="default",
                   help="causal language model for the fluency metrics: 'default' (SmolLM2-135M-Instruct, "
                        "offline), a local Hugging Face folder, or a hub id (needs a network)")
    add_judge_flags(e)
    e.add_argument("--schema", metavar="FILE.yaml",
                   help="declared row schema (required fields, types, allowed labels, lengths, JSON fields): "
                        "invalid rows are kept and counted by format/invalid-rate instead of refusing the file")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("--no-quote-text", action="store_true",
                   help="withhold dataset text (examples, flagged rows) from results.jsonl: for data you may not "
                        "redistribute")
    add_field_flags(e)

    mp = sub.add_parser("metrics", help="list every metric with its meaning and direction")
    mp.add_argument("--markdown", action="store_true", help="print docs/metrics.md (the Markdown table of every metric)")

    s = sub.add_parser("run", help="run a suite (YAML) with resume; write results and the leaderboard",
                       description="Run every candidate of SUITE against its reference; finished results in "
                                   "OUT are reused. Writes results.jsonl, report.md (the leaderboard) and run.json.")
    s.add_argument("suite", metavar="SUITE.yaml")
    s.add_argument("--out", "-o", metavar="DIR", help="output folder (default: reports/<suite name>)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("report", help="render DIR/report.md again from DIR/results.jsonl (no recomputation)")
    r.add_argument("dir", metavar="DIR")

    from harness.cli.commands import discover

    for mod in discover():
        c = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(c)
        c.set_defaults(_command_module=mod)
    return p


def main(argv: list[str] | None = None) -> int:
    from harness.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "metrics":
            return cmd_metrics(markdown=args.markdown)
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


def cmd_metrics(markdown: bool = False) -> int:
    from harness import metrics
    from harness.report.markdown import arrow

    if markdown:
        print(metrics.markdown_table(), end="")
        return 0
    for name in metrics.names():
        info = metrics.get(name).info
        print(f"{name:36s} {arrow(info.higher_is_better)}  {info.summary}")
    print("\n↑ higher is better   ↓ lower is better   · no direction (compare with the reference)")
    return 0


def cmd_eval(args) -> int:
    from harness.api import evaluate
    from harness.cli.common import finish, log

    run = evaluate(args.candidates, reference=args.reference, test=args.test,
                   metrics=args.metrics.split(",") if args.metrics else None, sample_size=args.sample_size,
                   repeats=args.repeats, seed=args.seed, out=Path(args.out), holdout=args.holdout,
                   embedder=args.embedder, batch_size=args.batch_size, lm=args.lm, judge=judge_options(args),
                   engine={"name": args.engine, "address": args.ray_address}, quote_text=not args.no_quote_text,
                   schema=args.schema, split=args.split, progress=progress_enabled(args.no_progress), log=log,
                   **field_options(args))
    return finish(run)


def cmd_run(args) -> int:
    from harness.api import run_suite
    from harness.cli.common import finish, log

    return finish(run_suite(args.suite, out=args.out, progress=progress_enabled(args.no_progress), log=log))


def cmd_report(out: Path) -> int:
    from harness.errors import UserError
    from harness.report.markdown import render_terminal
    from harness.report.write import write_report
    from harness.run.store import load_failures, load_results

    results = load_results(out)
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if not meta:
        raise UserError(f"{meta_path}: missing", "rerun 'synthbench eval' into this folder to recreate it")
    meta["failed"] = [list(x) for x in load_failures(out)]
    written = write_report(out, results, meta)
    print(render_terminal(results, meta))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
