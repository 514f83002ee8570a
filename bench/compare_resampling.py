"""``synthbench compare`` on sufficient statistics against the recompute scheme, on issue #26's pair.

    .venv/bin/python bench/compare_resampling.py [--resamples 200] [--recompute-resamples 20] [--out DIR]

Two disjoint random 2,000-row samples of the real CLINC150 training set (the same distribution), both
evaluated (``synthbench eval``, default metrics) against 5,000 other training rows, then compared with
the default metrics: (1) on sufficient statistics with ``--resamples`` permutations and half-samples
(timed: the bench row), (2) the same with ``--recompute-resamples``, and (3) the recompute scheme of
before issue #26 (``--recompute``) with ``--recompute-resamples``, timed and extrapolated linearly to
``--resamples`` (its time is per replicate: every replicate recomputes every metric). (2) and (3) draw
the same permutations and half-samples, so their p-values must agree metric by metric (exactly, up to
floating point, except for the approximate resamplers); the verdicts of (1) and (3) are compared too.
The samples are written to a temporary folder outside the project (``--work``), never into it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    return os.getloadavg()[0]


def build(work: Path, data: Path, seed: int) -> tuple[Path, Path]:
    rows = (data / "clinc150_real" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(seed).shuffle(rows)
    work.mkdir(parents=True, exist_ok=True)
    (work / "A.jsonl").write_text("".join(rows[:2000]), encoding="utf-8")
    (work / "B.jsonl").write_text("".join(rows[2000:4000]), encoding="utf-8")
    (work / "ref.jsonl").write_text("".join(rows[4000:9000]), encoding="utf-8")
    exe = str(ROOT / ".venv" / "bin" / "synthbench")
    for name in ("A", "B"):
        out = work / f"run{name}"
        if not (out / "results.jsonl").exists():
            subprocess.run([exe, "eval", f"{name}={work / (name + '.jsonl')}", "--reference", str(work / "ref.jsonl"),
                            "--out", str(out), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return work / "runA", work / "runB"


def timed(a, b, resamples, fast, log=None, extend=True):
    from harness.analysis.comparison import compare

    load0 = _load()
    t0 = time.perf_counter()
    res = compare(str(a), str(b), resamples=resamples, seed=0, fast=fast, log=log or (lambda m: None),
                  extend=extend)
    return res, time.perf_counter() - t0, load0, _load()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resamples", type=int, default=200)
    p.add_argument("--recompute-resamples", type=int, default=20)
    p.add_argument("--seed", type=int, default=26, help="seed of the CLINC150 split")
    p.add_argument("--data", default=os.environ.get("SYNTHBENCH_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "synthbench-compare-bench"))
    p.add_argument("--out", help="write compare_resampling.json and .md here")
    p.add_argument("--skip-recompute", action="store_true")
    args = p.parse_args(argv)
    a, b = build(Path(args.work), Path(args.data), args.seed)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    fast, t_fast, l0, l1 = timed(a, b, args.resamples, True, log)
    small, t_small, _, _ = timed(a, b, args.recompute_resamples, True, extend=False)  # the recompute scheme's draws only
    rows = [("sufficient statistics", args.resamples, t_fast, None, l0, l1, fast)]
    agree = None
    if not args.skip_recompute:
        rec, t_rec, r0, r1 = timed(a, b, args.recompute_resamples, False, log)
        per = t_rec / args.recompute_resamples
        rows.append(("recompute (before #26)", args.recompute_resamples, t_rec, per * args.resamples, r0, r1, rec))
        approx = set((small.get("resampling") or {}).get("approximate") or [])
        ps = {m["metric"]: m for m in rec["metrics"]}
        diffs = [(m["metric"], abs((m["p"] or 0) - (ps[m["metric"]]["p"] or 0)))
                 for m in small["metrics"] if m["metric"] in ps and m["metric"] not in approx]
        verdict_fast = {m["metric"]: m["verdict"] for m in fast["metrics"]}
        verdict_rec = {m["metric"]: m["verdict"] for m in rec["metrics"]}
        agree = {"max_p_difference_exact": max(d for _, d in diffs), "worst": max(diffs, key=lambda x: x[1]),
                 "approximate": sorted(approx),
                 "p_difference_approximate": {m["metric"]: abs(m["p"] - ps[m["metric"]]["p"]) for m in small["metrics"]
                                              if m["metric"] in approx and m["metric"] in ps},
                 "same_verdicts": verdict_fast == verdict_rec,
                 "verdicts_differ": sorted(k for k in verdict_fast if verdict_fast.get(k) != verdict_rec.get(k))}
    lines = ["| scheme | resamples run | seconds | seconds at " + f"{args.resamples} | metrics | recomputed from rows | "
             "approximate | significant at q < 0.05 | load avg start/end |", "|---|---:|---:|---:|---:|---|---|---:|---|"]
    for name, n, t, extra, s0, s1, res in rows:
        rs = res.get("resampling") or {}
        rec_names = [d["metric"] for d in rs.get("recomputed", [])]
        sig = sum(1 for m in res["metrics"] if m["q"] is not None and m["q"] < 0.05)
        lines.append(f"| {name} | {n} | {t:.1f} | {extra if extra is not None else t:.0f}{' (extrapolated)' if extra else ''} "
                     f"| {len(res['metrics'])} | {len(rec_names)}{': ' + ', '.join(rec_names) if rec_names and name.startswith('suff') else ''} "
                     f"| {', '.join(rs.get('approximate') or []) or '–'} | {sig} | {s0:.1f} / {s1:.1f} |")
    md = "\n".join(lines) + "\n"
    if agree:
        md += (f"\nSame draws ({args.recompute_resamples} permutations and half-samples): largest |p(statistics) - "
               f"p(recompute)| over the exactly resampled metrics {agree['max_p_difference_exact']:.3g} "
               f"({agree['worst'][0]}); approximate: "
               + ", ".join(f"{k} {v:.3g}" for k, v in agree["p_difference_approximate"].items())
               + f". Verdicts at {args.resamples} (statistics) and {args.recompute_resamples} (recompute) "
               + ("identical" if agree["same_verdicts"] else f"differ for {', '.join(agree['verdicts_differ'])}")
               + f"; estimate announced {fast['resampling']['estimate_s']} s, run {fast['resampling']['seconds']} s.\n")
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare_resampling.md").write_text(md, encoding="utf-8")
        (out / "compare_resampling.json").write_text(json.dumps(
            {"rows": [{"scheme": r[0], "resamples": r[1], "seconds": r[2], "extrapolated": r[3], "load": [r[4], r[5]],
                       "resampling": r[6].get("resampling"),
                       "metrics": [{k: m.get(k) for k in ("metric", "a", "b", "diff", "ci", "p", "q", "verdict",
                                                          "resampled", "resample_seconds")} for m in r[6]["metrics"]]}
                      for r in rows], "agreement": agree}, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
