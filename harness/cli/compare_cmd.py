"""``synthbench compare``: paired significance tests between two candidates, metric by metric."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = "compare two candidates metric by metric: B - A with 95%% intervals, permutation p-values, BH q, effect sizes"
DESCRIPTION = """\
synthbench compare A B [--metrics LIST] [--resamples N] [--seed S] [--out FILE.md] [--no-progress]

A and B are result folders written by 'synthbench eval --out DIR' or 'synthbench run' (results.jsonl and
run.json), or DIR:NAME to pick one candidate of a folder that holds several (the same folder may be named
twice). The rows each run evaluated are reloaded as run.json describes them and checked against the
recorded fingerprints; every metric both computed with compatible signatures (same metric arguments,
reference and test data, embedder, seed and, for size-dependent metrics, row count) is recomputed and
checked against the stored value, then:

  A, B, B - A with a 95% interval, p, q (Benjamini-Hochberg over all metrics compared), an effect size
  and a verdict at q < 0.05 (B better / A better / no significant difference; '·' metrics have no
  direction).

Schemes: set-level metrics (distinct-n, duplicates, Vendi, PRDC, ...) get a permutation test over the
pooled rows of A and B and a half-sampling interval (rows drawn without replacement, the same half of
the shared reference for A and B): a bootstrap with replacement would plant duplicates. Means of
per-row values (lengths, copy and contamination rates) get a permutation test of the per-row values
and a Newcombe or Welch interval. Utility metrics (only with --metrics utility/...) pair the two
models' predictions on the same real test rows (paired bootstrap, sign-flip test, McNemar exact).
Set-level metrics are resampled on sufficient statistics declared beside each metric (computed once on
the pooled rows: n-gram incidence, per-row counts, Gram contributions, duplicate clusters, neighbour
distances; each checked to reproduce A's and B's values); the few without are recomputed from the rows
of every resample and named, as are the four resampled approximately (MMD's bandwidth, cluster
entropy's topics, the reference's clusters and classifier in half-samples). A metric with a cheap
resampler whose p-value on the shared permutations is below 0.2 gets 2,000 permutations. Metrics are
resampled in parallel threads ($SYNTHBENCH_COMPARE_WORKERS; default the cores, at most 4). The time estimate and one line
per metric go to stderr. --recompute recomputes every set-level metric from the rows (the scheme before
issue #26, on the shared draws only; many times slower). Calibration: docs/calibration.md.
Default metrics: the cheap ones; MAUVE, c2st, utility and fluency only when named."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.analysis.comparison import DEFAULT_RESAMPLES
    from harness.cli.common import positive_int

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("a", metavar="A", help="results folder, or DIR:NAME (the baseline)")
    p.add_argument("b", metavar="B", help="results folder, or DIR:NAME (compared with A: differences are B - A)")
    p.add_argument("--metrics", "-m", metavar="LIST",
                   help="comma-separated metric names, groups or globs (default: every cheap metric both computed)")
    p.add_argument("--resamples", "-n", type=positive_int, default=DEFAULT_RESAMPLES, metavar="N",
                   help=f"permutations and half-samples for set-level metrics (default {DEFAULT_RESAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations and resamples (default 0)")
    p.add_argument("--out", "-o", metavar="FILE.md", help="also write the Markdown here and the JSON next to it (FILE.json)")
    p.add_argument("--embedder", metavar="MODEL",
                   help="the runs' embedder, when run.json cannot name it (a local folder)")
    p.add_argument("--recompute", action="store_true",
                   help="recompute every set-level metric from the rows of each resample instead of resampling "
                        "its sufficient statistics (the scheme before issue #26, on the shared 2 x --resamples draws "
                        "only: the same numbers there, many times slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    import sys

    from harness.analysis.comparison import compare
    from harness.cli.common import progress_enabled
    from harness.report.comparison_report import render_markdown, write_outputs

    progress = progress_enabled(args.no_progress)
    metrics = [m for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    res = compare(args.a, args.b, metrics=metrics, resamples=args.resamples, seed=args.seed, progress=progress,
                  embedder_name=args.embedder, log=lambda msg: print(msg, file=sys.stderr),
                  fast=not args.recompute)
    md = render_markdown(res)
    print(md, end="")
    if args.out:
        md_path, js_path = write_outputs(res, md, args.out)
        print(f"wrote {md_path} and {js_path}", file=sys.stderr)
    return 0
