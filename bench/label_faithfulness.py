"""The label-faithfulness table, rendered from a finished suite run (it recomputes nothing).

    .venv/bin/synthbench run suites/intent_clinc150.yaml             # writes reports/intent-clinc150/
    .venv/bin/python bench/label_faithfulness.py                     # writes reports/label-faithfulness-clinc150.md

Reads ``results.jsonl`` and ``run.json`` of the run folder and writes one Markdown page: the
``faith/*`` metrics (and the copy, contamination and duplicate rates beside them) per dataset with
their 95% intervals, the reference classifier's agreement per class, and the most frequent confusions.
Row texts are not quoted (the intent data carries no licence that allows redistribution): rows are
named by their position in the sample the run evaluated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from instruction_faithfulness import cell, load  # noqa: E402

METRICS = ("faith/reference-agreement", "faith/label-issue-rate", "memo/exact-copy-rate", "memo/ngram-overlap-rate",
           "contam/test-ngram-overlap", "contam/test-near-match", "dup/exact-rate", "dup/near-rate")
AGREEMENT = "faith/reference-agreement"


def render(meta: dict, recs: dict, names: list[str], run_dir: Path) -> str:
    from harness import metrics as registry
    from harness.report.markdown import arrow, md_escape

    ref = (meta.get("reference") or {}).get("name")
    cands = [n for n in names if n != ref]
    out = [f"# Label faithfulness: {md_escape(meta.get('suite', {}).get('name', run_dir.name))}", "",
           f"Rendered by `bench/label_faithfulness.py` from `{run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir}/` "
           f"(synthbench {meta.get('harness', '?')}, seed {meta.get('seed')}, embedder {meta.get('embedder')}).", "",
           "| dataset | role | rows evaluated | source |", "|---|---|---:|---|"]
    for d in meta.get("candidates", []) + ([meta["reference"]] if meta.get("reference") else []):
        s = d.get("sample") or {}
        rows = f"{d['rows']} of {s['of']}" if s else str(d["rows"])
        out.append(f"| {md_escape(d['name'])} | {d['role']} | {rows} | {md_escape(Path(d['source'].split(' [')[0]).name)}"
                   f"{' [' + md_escape(d['source'].split(' [', 1)[1]) if ' [' in d['source'] else ''} |")
    test = meta.get("test")
    if test:
        out.append(f"\nTest split (contamination): {md_escape(test['name'])}, {test['rows']} rows.")
    repeated = [m for m in METRICS if any((n, m) in recs and "repeats" in (recs[(n, m)].details or {}) for n in names)]
    out += ["", "## The table", "",
            "Rates with Wilson 95% intervals"
            + (f" (a t-interval of the mean over the repeated seeded samples for {', '.join(f'`{m}`' for m in repeated)}, "
               "whose value is that mean)" if repeated else "")
            + "; ↑ higher is better, ↓ lower is better.", "",
            "| metric |  | " + " | ".join(md_escape(n) for n in cands) + f" | {md_escape(ref)} (reference) |",
            "|---|:-:|" + "---:|" * (len(cands) + 1)]
    for m in METRICS:
        if not any((n, m) in recs for n in names):
            continue
        info = registry.get(m).info
        out.append(f"| `{m}` | {arrow(info.higher_is_better)} | "
                   + " | ".join(cell(recs.get((n, m)), False) for n in cands + [ref]) + " |")
    out += ["", "Definitions (`synthbench metrics`; the docstrings give the exact rules):", ""]
    for m in METRICS:
        out.append(f"- `{m}`: {registry.get(m).info.summary}")

    per = {n: recs[(n, AGREEMENT)].details.get("per_class", {}) for n in cands if (n, AGREEMENT) in recs}
    classes = sorted({c for d in per.values() for c in d})
    if classes:
        out += ["", "## Agreement per class", "",
                "Share of each class's rows whose label the classifier trained on the reference predicts "
                "(rows in brackets). Sorted by the mean over candidates, lowest first.", "",
                "| class | " + " | ".join(md_escape(n) for n in per) + " |", "|---|" + "---:|" * len(per)]

        def mean_rate(c):
            vals = [d[c]["rate"] for d in per.values() if c in d]
            return sum(vals) / len(vals)

        for c in sorted(classes, key=mean_rate):
            out.append(f"| {md_escape(c)} | " + " | ".join(
                f"{per[n][c]['rate']:.2f} ({per[n][c]['rows']})" if c in per[n] else "–" for n in per) + " |")
        out += ["", "## Most frequent confusions", "",
                "Given label → label the reference classifier predicts, with the number of rows.", ""]
        for n in per:
            top = recs[(n, AGREEMENT)].details.get("top_confusions", [])[:8]
            out.append(f"- **{md_escape(n)}**: " + "; ".join(
                f"{md_escape(t['given'])} → {md_escape(t['predicted'])} ({t['count']})" for t in top))
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "reports" / "intent-clinc150"), help="a finished suite run folder")
    ap.add_argument("--out", default=str(ROOT / "reports" / "label-faithfulness-clinc150.md"))
    args = ap.parse_args(argv)
    from harness.resources.cache import atomic_write_text

    run_dir = Path(args.run).resolve()
    meta, recs, names = load(run_dir)
    atomic_write_text(Path(args.out), render(meta, recs, names, run_dir))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
