"""``synthbench curate``: drop the rows a run flagged, or compare a run before and after curation."""

from __future__ import annotations

import argparse

NAME = "curate"
HELP = "write a dataset without the rows a run flagged (duplicates, copies, contamination...), or compare runs"
DESCRIPTION = """\
Drop flagged rows: synthbench curate DATASET --flags OUT/flags.parquet --drop REASONS --out CLEAN.jsonl
reads DATASET with the same loader and column flags as eval, checks that it is the dataset the flags
were made from (fingerprint), drops every row flagged with one of REASONS (a comma list, or 'all') and
writes the other rows as they were (extra columns kept) to CLEAN (.jsonl, .json, .csv, .tsv or .parquet).

Before and after: evaluate CLEAN with the same options into another folder, then
synthbench curate --compare BEFORE_DIR AFTER_DIR writes AFTER_DIR/curation.md: every metric before and
after, with the difference."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.cli.common import add_field_flags

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="the dataset file (or folder, builtin:NAME, hf:ID) "
                   "that was evaluated")
    p.add_argument("--flags", "-f", metavar="FLAGS", help="flags.parquet or flags.jsonl written by a run (or its folder)")
    p.add_argument("--dataset-name", metavar="NAME", help="the dataset's name in the flags file (default: the "
                   "dataset whose fingerprint matches DATASET)")
    p.add_argument("--drop", "-d", metavar="REASONS", help="comma-separated reasons to drop (duplicate, "
                   "near-duplicate, memorised, contaminated, label-issue, ...) or 'all'")
    p.add_argument("--out", "-o", metavar="PATH", help="where to write the curated rows; with --compare: the "
                   "Markdown comparison (default AFTER_DIR/curation.md)")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE_DIR", "AFTER_DIR"),
                   help="render each metric before and after curation from two result folders")
    p.add_argument("--pair", action="append", metavar="BEFORE=AFTER",
                   help="with --compare: pair datasets by name (default: same names, or the one candidate of each run)")
    add_field_flags(p)


def run(args) -> int:
    import sys
    from pathlib import Path

    from harness.errors import UserError
    from harness.report.curation_report import compare_runs
    from harness.resources.cache import atomic_write_text
    from harness.run.flags import curate

    if args.compare:
        if args.dataset or args.flags or args.drop:
            raise UserError("--compare takes two result folders, not DATASET, --flags or --drop",
                            "run the curation and the comparison as two commands")
        before, after = (Path(x) for x in args.compare)
        md = compare_runs(before, after, args.pair)
        target = Path(args.out) if args.out else after / "curation.md"
        atomic_write_text(target, md + "\n")
        print(md)
        print(f"wrote {target}", file=sys.stderr)
        return 0
    missing = [flag for flag, v in (("DATASET", args.dataset), ("--flags", args.flags), ("--drop", args.drop),
                                    ("--out", args.out)) if not v]
    if missing:
        raise UserError(f"curate: missing {', '.join(missing)}",
                        "synthbench curate DATASET --flags OUT/flags.parquet --drop REASONS|all --out CLEAN.jsonl")
    if args.pair:
        raise UserError("--pair goes with --compare", "leave it out when curating a dataset")
    from harness.data.load import FieldMap

    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    c = curate(args.dataset, args.flags, args.drop, args.out, fields=fields, split=args.split,
               dataset_name=args.dataset_name)
    print(f"{c.dataset}: {c.rows} rows; flags from {c.evaluated_rows} evaluated row(s)")
    width = max([len(r) for r in c.by_reason] + [6])
    for reason, k in c.by_reason.items():
        print(f"  {reason:<{width}}  {k:>7} flagged  {'dropped' if reason in c.dropped_reasons else 'kept'}")
    print(f"dropped {len(c.dropped)} row(s) (a row can have several reasons), kept {c.kept} -> {c.out}")
    if c.evaluated_rows < c.rows:
        print(f"note: the run evaluated a sample of {c.evaluated_rows} of {c.rows} rows; the other rows were not "
              "checked (evaluate without --sample-size to check every row)", file=sys.stderr)
    print("next: evaluate the curated file with the same options into another folder, then "
          "'synthbench curate --compare BEFORE_DIR AFTER_DIR' for the before/after table", file=sys.stderr)
    return 0
