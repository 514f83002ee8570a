"""Is ``compare`` calibrated? A/A comparisons of disjoint random halves of real datasets, and A/B
comparisons with planted differences (issue #26).

    python -m harness.analysis.calibration [--datasets clinc150,banking77] [--splits 10] [--rows 400]
        [--reference-rows 800] [--resamples 200] [--ab-splits 2] [--out DIR]

For each dataset (``$SYNTHBENCH_DATA/<name>_real/train.jsonl``) and split: the rows are shuffled
(seeded) and cut into A, B and a reference, disjoint. **A/A**: A against B, the same distribution: every
"significant at q < 0.05" is a false positive, and the share of metrics flagged should be at most the
nominal 5% on average (Benjamini-Hochberg controls the false discovery rate, which under a global null
is the chance of any flag). **A/B**: B corrupted with a planted difference from
:mod:`harness.analysis.validity` (10% exact duplicates, 20% label noise, 20% topic drift: rows of the
other dataset keeping the replaced row's label): the metrics whose declaration expects a change under
that corruption (``expect`` sign + or -) should flag it. Embeddings come from the default embedder
(cached). The metrics are the light ones that ``compare`` resamples on sufficient statistics or per
row (set-level metrics without a resampler would be recomputed on every resample and are left out:
the point is the tests, which are the same for every metric). Writes calibration.json and
calibration.md (the tables of docs/calibration.md) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

CORRUPTIONS = (("exact-dup", 0.10), ("label-noise", 0.20), ("topic-drift", 0.20))
FILES = {"clinc150": "clinc150_real/train.jsonl", "banking77": "banking77_real/train.jsonl"}


def _rows(data: Path, name: str) -> list[dict]:
    path = data / FILES[name]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _corpus(name: str, rows: list[dict]):
    from harness.types import Corpus

    return Corpus(name=name, source=name, kind="classification", texts=tuple(r["text"] for r in rows),
                  labels=tuple(str(r["label"]) for r in rows), n_source_rows=len(rows))


def _expected(metric: str, corruption: str) -> str | None:
    from harness import metrics as registry

    return (registry.info(metric).expect or {}).get(corruption)


def run(datasets, splits: int, rows: int, ref_rows: int, resamples: int, ab_splits: int, embedder, data: Path,
        log=print) -> dict:
    from harness.analysis.comparison import VectorTable, compare_corpora
    from harness.analysis.validity import Sources, corrupt, corruption_rng

    out = {"settings": {"datasets": list(datasets), "splits": splits, "rows": rows, "reference_rows": ref_rows,
                        "resamples": resamples, "ab_splits": ab_splits, "corruptions": CORRUPTIONS},
           "aa": [], "ab": []}
    pools = {d: _rows(data, d) for d in datasets}
    for d in datasets:
        other = next((o for o in FILES if o != d), None)
        other_rows = pools[other] if other in pools else _rows(data, other)
        for s in range(splits):
            rs = list(pools[d])
            random.Random(1000 + s).shuffle(rs)
            ca, cb = _corpus("A", rs[:rows]), _corpus("B", rs[rows:2 * rows])
            ref = _corpus("reference", rs[2 * rows:2 * rows + ref_rows])
            rest = _corpus("pool", rs[2 * rows + ref_rows:2 * rows + ref_rows + 2000])
            donors = list(other_rows)
            random.Random(2000 + s).shuffle(donors)
            oth = _corpus("other", donors[:rows])
            texts = list(ca.texts) + list(cb.texts) + list(ref.texts) + list(oth.texts)
            emb = VectorTable(embedder, texts)
            jobs = [("A/A", None, 0.0)]
            if s < ab_splits:
                jobs += [("A/B", c, sev) for c, sev in CORRUPTIONS]
            for kind, corruption, sev in jobs:
                b = cb
                if corruption:
                    rng = corruption_rng(s, 0, corruption, sev)
                    b = corrupt(corruption, cb, sev, rng, Sources(pool=rest, reference=ref, other=oth)).corpus
                    emb.embed(b.texts)
                t0 = time.perf_counter()
                res = compare_corpora(ca, b, ref, metrics=None, resamples=resamples, seed=s, embedder=emb,
                                      skip_recomputed=True)
                secs = time.perf_counter() - t0
                flags = {m["metric"]: (m["q"] is not None and m["q"] < 0.05) for m in res["metrics"]}
                pflags = {m["metric"]: (m["p"] is not None and m["p"] < 0.05) for m in res["metrics"]}
                entry = {"dataset": d, "split": s, "kind": kind, "corruption": corruption, "severity": sev,
                         "metrics": len(flags), "flagged": sorted(k for k, v in flags.items() if v),
                         "p_below_05": sorted(k for k, v in pflags.items() if v), "seconds": round(secs, 1),
                         "load": round(os.getloadavg()[0], 1),
                         "approximate": (res.get("resampling") or {}).get("approximate") or []}
                if corruption:
                    entry["should"] = sorted(k for k in flags if _expected(k, corruption) in ("+", "-"))
                    entry["should_not"] = sorted(k for k in flags if _expected(k, corruption) == "0")
                    entry["wrong_direction"] = sorted(
                        m["metric"] for m in res["metrics"] if flags[m["metric"]]
                        and _expected(m["metric"], corruption) in ("+", "-")
                        and (m["diff"] > 0) != (_expected(m["metric"], corruption) == "+"))
                (out["ab"] if corruption else out["aa"]).append(entry)
                log(f"calibration: {d} split {s} {kind}{' ' + corruption if corruption else ''}: "
                    f"{len(entry['flagged'])}/{len(flags)} flagged at q < 0.05 ({secs:.0f} s)")
    out["tables"] = tables(out)
    return out


def tables(out: dict) -> str:
    lines = ["| dataset | A/A splits | metrics | mean share flagged (q < 0.05) | splits with any flag | "
             "mean share p < 0.05 | most flagged |", "|---|---:|---:|---:|---:|---:|---|"]
    for d in out["settings"]["datasets"]:
        aa = [e for e in out["aa"] if e["dataset"] == d]
        if not aa:
            continue
        share = sum(len(e["flagged"]) / e["metrics"] for e in aa) / len(aa)
        pshare = sum(len(e["p_below_05"]) / e["metrics"] for e in aa) / len(aa)
        counts: dict = {}
        for e in aa:
            for m in e["flagged"]:
                counts[m] = counts.get(m, 0) + 1
        top = ", ".join(f"{m} ({c})" for m, c in sorted(counts.items(), key=lambda x: -x[1])[:3]) or "–"
        lines.append(f"| {d} | {len(aa)} | {aa[0]['metrics']} | {share:.3f} | {sum(1 for e in aa if e['flagged'])} "
                     f"| {pshare:.3f} | {top} |")
    lines += ["", "| dataset | planted difference | comparisons | detected by a metric that should | "
              "share of those metrics flagged | flagged, expected to stay put | wrong direction | detectors (times) |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for d in out["settings"]["datasets"]:
        for c, sev in out["settings"]["corruptions"]:
            ab = [e for e in out["ab"] if e["dataset"] == d and e["corruption"] == c]
            if not ab:
                continue
            hit = sum(1 for e in ab if set(e["flagged"]) & set(e["should"]))
            share = sum(len(set(e["flagged"]) & set(e["should"])) / max(1, len(e["should"])) for e in ab) / len(ab)
            bad = sum(len(set(e["flagged"]) & set(e["should_not"])) for e in ab)
            wrong = sum(len(e["wrong_direction"]) for e in ab)
            counts: dict = {}
            for e in ab:
                for m in set(e["flagged"]) & set(e["should"]):
                    counts[m] = counts.get(m, 0) + 1
            top = ", ".join(f"{m} ({n})" for m, n in sorted(counts.items(), key=lambda x: -x[1])[:6]) or "–"
            lines.append(f"| {d} | {c} {sev:.0%} | {len(ab)} | {hit}/{len(ab)} | {share:.2f} | {bad} | {wrong} | {top} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="clinc150,banking77")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--ab-splits", type=int, default=2)
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--reference-rows", type=int, default=800)
    p.add_argument("--resamples", type=int, default=200)
    p.add_argument("--data", default=os.environ.get("SYNTHBENCH_DATA", ""))
    p.add_argument("--out", default="calibration-out")
    args = p.parse_args(argv)
    from harness.resources.embedder import Embedder, resolve_embedder

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    res = run(datasets, args.splits, args.rows, args.reference_rows, args.resamples, args.ab_splits,
              Embedder(resolve_embedder("default"), progress=False), Path(args.data),
              log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    (out / "calibration.md").write_text(res["tables"], encoding="utf-8")
    print(res["tables"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
