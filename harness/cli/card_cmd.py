"""``synthbench card``: a Hugging Face dataset card for one candidate of a finished run."""

from __future__ import annotations

import argparse

NAME = "card"
HELP = "write a Hugging Face dataset card (README.md) for one candidate dataset of a finished run"
DESCRIPTION = """\
synthbench card RUN_DIR --dataset NAME [--out README.md] [--force]

RUN_DIR is a result folder (results.jsonl, run.json, rows/ as written by 'synthbench run' or 'eval').
The card opens with a YAML header the Hugging Face hub reads (license, task_categories,
size_categories, source_datasets, tags, and the provenance under 'synthbench:'), then the scorecard
of NAME against the reference and the run's other candidates, its memorisation, contamination and
duplicate findings, the rows flagged by reason (counts only: the card quotes no row), caveats, every
metric with its 95% interval beside the reference's, the signature and the command that reproduces
the run. Nothing is recomputed; stale records are left out and counted. Without --out the card is
printed. An existing --out file is replaced only when synthbench wrote it (or with --force)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("run_dir", metavar="RUN_DIR", help="a result folder written by 'synthbench run' or 'eval --out'")
    p.add_argument("--dataset", "-d", required=True, metavar="NAME", help="the candidate dataset to describe")
    p.add_argument("--out", "-o", metavar="README.md", help="write the card here (default: print it)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out file that synthbench did not write")


def run(args) -> int:
    import sys

    from harness.api import card

    text = card(args.run_dir, args.dataset, out=args.out, force=args.force)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
