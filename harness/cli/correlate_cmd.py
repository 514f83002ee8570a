"""``synthbench correlate``: which direct metric predicts downstream utility, across suites' candidates."""

from __future__ import annotations

import argparse

NAME = "correlate"
HELP = "rank-correlate every direct metric with a utility score across the candidates of one or more runs"
DESCRIPTION = """\
synthbench correlate DIR [DIR ...] [--utility utility/minilm-lr/accuracy] [--out FILE.md]

Each DIR is a result folder (results.jsonl, as written by 'synthbench run' or 'eval'), or a folder of
such folders (reports/). For every direct (non-utility) metric: Spearman rho and Kendall tau with the
utility score across candidates, pooled within suites (each folder is one suite: only candidates of
the same suite are compared), oriented by the metric's declared direction so that a positive value
means 'better on the metric <-> better utility', with 95% bootstrap intervals (candidates resampled
within suites), a permutation p-value, the number of candidates and suites, and a per-suite table.

With --model ridge|rank (or ridge,rank): the joint question instead (AgoraBench, Kim et al. 2024). A
regularised model of all direct metrics (standardised within suite) is fitted to the utility and scored
by leave-one-suite-out: the mean held-out within-suite Spearman rho, against the best single metric
chosen on the training suites, with bootstrap intervals over suites and the paired difference. Needs 3
or more suites with 3 or more candidates; a JSON copy of the numbers is written beside --out FILE.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.analysis.correlation import DEFAULT_UTILITY
    from harness.cli.common import positive_int

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("dirs", nargs="+", metavar="DIR", help="result folders (or folders holding result folders)")
    p.add_argument("--utility", "-u", action="append", metavar="METRIC",
                   help=f"the utility metric to correlate with (repeatable; default {DEFAULT_UTILITY})")
    p.add_argument("--out", "-o", metavar="FILE.md", help="also write the Markdown report here")
    p.add_argument("--boot", type=positive_int, default=2000, metavar="B",
                   help="bootstrap replicates and permutations (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations")
    p.add_argument("--model", metavar="ridge|rank", action="append",
                   help="fit a joint model of the direct metrics (ridge, rank, or ridge,rank: both in one "
                        "report) and score it by leave-one-suite-out against the best single metric")


def model_names(given) -> tuple[str, ...]:
    """The models named by --model (repeatable, comma-separated), in order, each once."""
    from harness.analysis.utility_model import MODELS
    from harness.errors import UserError

    names = [n.strip() for g in given for n in g.split(",") if n.strip()]
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise UserError(f"--model {','.join(bad) or repr(','.join(given))}: unknown model",
                        f"use one of: {', '.join(MODELS)} (or ridge,rank for both)")
    return tuple(dict.fromkeys(names))


def result_dirs(dirs) -> list:
    """The result folders named, with a folder of result folders expanded (sorted)."""
    from pathlib import Path

    from harness.errors import UserError
    from harness.run.store import RESULTS

    out = []
    for d in map(Path, dirs):
        if (d / RESULTS).exists():
            out.append(d)
            continue
        kids = sorted(k for k in d.iterdir() if (k / RESULTS).exists()) if d.is_dir() else []
        if not kids:
            raise UserError(f"{d}: no {RESULTS} here or in its sub-folders",
                            "give result folders written by 'synthbench run' or 'synthbench eval --out'")
        out += kids
    return out


def read_dir(path) -> tuple[str, dict[str, dict[str, float]], dict[str, bool | None]]:
    """(suite name, {metric: {candidate: value}}, {metric: higher_is_better as recorded}) of one folder.

    The suite name comes from run.json (else the folder name); reference rows are left out.
    """
    import json

    from harness.run.store import load_results

    name = path.name
    meta_path = path / "run.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            name = (meta.get("suite") or {}).get("name") or name
        except (json.JSONDecodeError, AttributeError):
            pass
    table: dict[str, dict[str, float]] = {}
    recorded: dict[str, bool | None] = {}
    for r in load_results(path):
        if r.role != "candidate":
            continue
        table.setdefault(r.metric, {})[r.dataset] = float(r.value)
        recorded.setdefault(r.metric, r.higher_is_better)
    return name, table, recorded


def run(args) -> int:
    import sys
    from pathlib import Path

    from harness import metrics as registry
    from harness.analysis.correlation import DEFAULT_UTILITY, correlate, utility_summary
    from harness.errors import UserError
    from harness.report.correlation_report import render_markdown
    from harness.resources.cache import atomic_write_text

    if args.boot < 100:
        raise UserError(f"--boot {args.boot}: too few replicates for a 95% interval", "give 100 or more (default 2000)")
    utilities = args.utility or [DEFAULT_UTILITY]
    values, sources, directions = {}, {}, {}
    for d in result_dirs(args.dirs):
        name, table, recorded = read_dir(d)
        if name in values:
            name = f"{name} ({d})"
        values[name] = table
        sources[name] = str(d)
        for m, hib in recorded.items():
            directions.setdefault(m, hib)
    for m in directions:  # the registry's declared direction wins over what an old record says
        if registry.is_metric(m):
            directions[m] = registry.get(m).info.higher_is_better
    if args.model:
        return run_model(args, model_names(args.model), utilities, values, sources, directions)
    results, summaries = {}, {}
    for u in utilities:
        with_u = [s for s, t in values.items() if len(t.get(u, {})) >= 2]
        if not with_u:
            found = sorted({m for t in values.values() for m in t if m.startswith("utility/")})
            raise UserError(f"{', '.join(sources.values())}: no folder has '{u}' results for two or more candidates",
                            "run the suites with a real test split (test: or holdout:) and the utility metrics"
                            + (f", or pass --utility with one of: {', '.join(found)}" if found else ""))
        results[u] = correlate(values, u, directions, n_boot=args.boot, seed=args.seed)
        summaries[u] = utility_summary(values, u)
    md = render_markdown(results, summaries, sources, n_boot=args.boot, seed=args.seed)
    print(md)
    if args.out:
        atomic_write_text(Path(args.out), md + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_model(args, models, utilities, values, sources, directions) -> int:
    """The --model branch: the joint utility model of every utility metric asked for, one report."""
    import json
    import sys
    from pathlib import Path

    from harness.analysis.utility_model import to_json, utility_model
    from harness.report.utility_model_report import render_markdown
    from harness.resources.cache import atomic_write_text

    results = {u: utility_model(values, u, directions, models=models, n_boot=args.boot, seed=args.seed)
               for u in utilities}
    md = render_markdown(results, sources)
    print(md, end="")
    if args.out:
        out = Path(args.out)
        atomic_write_text(out, md)
        print(f"wrote {out}", file=sys.stderr)
        if out.suffix == ".md":
            data = {"sources": sources, "results": {u: to_json(r) for u, r in results.items()}}
            atomic_write_text(out.with_suffix(".json"), json.dumps(data, indent=1, ensure_ascii=False) + "\n")
            print(f"wrote {out.with_suffix('.json')}", file=sys.stderr)
    return 0
