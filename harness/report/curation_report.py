"""Flag tables of the reports and the before/after report of ``synthbench curate --compare``."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import UserError
from harness.run.flags import FLAGS_JSONL, FLAGS_PARQUET


def flag_lines(results) -> list[str]:
    """Markdown lines for the normal report: rows flagged per metric and reason, per dataset."""
    from harness.report.markdown import md_escape

    cells: dict[tuple[str, str], dict[str, int]] = {}
    datasets: list[str] = []
    for r in results:
        counts = r.details.get("row_flags")
        if counts is None:
            continue
        if r.dataset not in datasets:
            datasets.append(r.dataset)
        for reason, k in counts.items():
            cells.setdefault((r.metric, reason), {})[r.dataset] = int(k)
    if not cells:
        return []
    out = ["## Flagged rows", "",
           f"Rows each metric flags, by reason (rows of the evaluated sample; a row can carry several reasons). "
           f"Every flagged row is listed in `{FLAGS_PARQUET}` (and `{FLAGS_JSONL}`) in this folder; "
           f"`synthbench curate DATASET --flags {FLAGS_PARQUET} --drop REASONS --out CLEAN.jsonl` writes the "
           "dataset without them.", "",
           "| metric | reason | " + " | ".join(md_escape(d) for d in datasets) + " |",
           "|---|---|" + "---:|" * len(datasets)]
    for (m, reason), per in cells.items():
        out.append(f"| `{m}` | {reason} | " + " | ".join(str(per[d]) if d in per else "–" for d in datasets) + " |")
    return out + [""]


def _load_run(d: Path):
    from harness.run.store import load_results

    results = load_results(d)
    meta_path = d / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return results, meta


def _pairs(rb, ra, pairs: list[str] | None) -> list[tuple[str, str]]:
    before = list(dict.fromkeys(r.dataset for r in rb))
    after = list(dict.fromkeys(r.dataset for r in ra))
    if pairs:
        out = []
        for p in pairs:
            b, sep, a = p.partition("=")
            if not sep or b not in before or a not in after:
                raise UserError(f"--pair {p}: expected BEFORE_NAME=AFTER_NAME with names from the two runs "
                                f"(before: {', '.join(before)}; after: {', '.join(after)})", "fix the names")
            out.append((b, a))
        return out
    out = [(d, d) for d in before if d in after]
    cand_b = [d for d in before if d not in after and any(r.dataset == d and r.role == "candidate" for r in rb)]
    cand_a = [d for d in after if d not in before and any(r.dataset == d and r.role == "candidate" for r in ra)]
    if len(cand_b) == 1 and len(cand_a) == 1:
        out.append((cand_b[0], cand_a[0]))
    if not any(any(r.dataset == b and r.role == "candidate" for r in rb) for b, _ in out):
        raise UserError("the two runs share no candidate dataset name (before: "
                        f"{', '.join(before)}; after: {', '.join(after)})",
                        "name the pairs with --pair BEFORE_NAME=AFTER_NAME")
    return out


def _comparable(sb: dict, sa: dict) -> bool:
    """Same computation apart from the candidate's data (and its sample's source size)."""
    def strip(s):
        data = {k: v for k, v in s.get("data", {}).items() if k not in ("candidate", "sample")}
        size = (s.get("data", {}).get("sample") or {}).get("size")
        return {**{k: v for k, v in s.items() if k != "data"}, "data": data, "size": size}

    return strip(sb) == strip(sa)


def compare_runs(before: Path, after: Path, pairs: list[str] | None = None) -> str:
    """Markdown: each metric before and after curation, with the difference, per paired dataset."""
    from harness import metrics as registry
    from harness.report.markdown import arrow, fmt, md_escape

    before, after = Path(before), Path(after)
    rb, mb = _load_run(before)
    ra, ma = _load_run(after)
    rows_of = {}
    for m, tag in ((mb, "b"), (ma, "a")):
        for d in ([m["reference"]] if m.get("reference") else []) + list(m.get("candidates", [])):
            rows_of[(tag, d["name"])] = d.get("rows")
    order = {m: i for i, m in enumerate(registry.names())}
    out = ["# Curation: before and after", "",
           f"Before: `{md_escape(str(before))}`; after: `{md_escape(str(after))}`. Δ = after − before; "
           "✓ better, ✗ worse by the metric's direction, with the after value outside the before value's 95% "
           "interval (in brackets); ≈ inside it; · no change or no direction.", ""]
    notes = False
    for b, a in _pairs(rb, ra, pairs):
        cb = {r.metric: r for r in rb if r.dataset == b}
        ca = {r.metric: r for r in ra if r.dataset == a}
        common = sorted(set(cb) & set(ca), key=lambda m: (order.get(m, len(order)), m))
        if not common or all(cb[m].role == "reference" and cb[m].signature.key == ca[m].signature.key
                             for m in common):
            continue  # nothing in common, or the same reference computed the same way on both sides
        title = md_escape(b) if a == b else f"{md_escape(b)} → {md_escape(a)}"
        out += [f"## {title}", "",
                f"Rows evaluated: {rows_of.get(('b', b), '?')} before, {rows_of.get(('a', a), '?')} after.", "",
                "| metric | | before | after | Δ | |", "|---|:-:|---:|---:|---:|:-:|"]
        better = worse = 0
        for m in common:
            x, y = cb[m], ca[m]

            def show(r):
                return fmt(r.value) + (f" [{fmt(r.ci[0])}, {fmt(r.ci[1])}]" if r.ci is not None else "")

            delta = y.value - x.value
            hib = x.higher_is_better
            if hib is None or delta == 0:
                verdict = "·"
            elif x.ci is not None and x.ci[0] <= y.value <= x.ci[1]:
                verdict = "≈"  # within the before value's interval
            else:
                verdict = "✓" if (delta > 0) == hib else "✗"
            better += verdict == "✓"
            worse += verdict == "✗"
            dag = "" if _comparable(x.signature.as_dict(), y.signature.as_dict()) else " †"
            notes = notes or bool(dag)
            out.append(f"| `{m}`{dag} | {arrow(hib)} | {show(x)} | {show(y)} | {'+' if delta > 0 else ''}"
                       f"{fmt(delta)} | {verdict} |")
        out += ["", f"{better} metric(s) better, {worse} worse, {len(common) - better - worse} within the interval, "
                "unchanged or without direction.", ""]
        fb = {(m, k): v for m, r in cb.items() for k, v in (r.details.get("row_flags") or {}).items()}
        fa = {(m, k): v for m, r in ca.items() for k, v in (r.details.get("row_flags") or {}).items()}
        if fb or fa:
            out += ["Flagged rows (evaluated sample):", "", "| metric | reason | before | after |",
                    "|---|---|---:|---:|"]
            for key in sorted(set(fb) | set(fa), key=lambda k: (order.get(k[0], len(order)), k)):
                out.append(f"| `{key[0]}` | {key[1]} | {fb.get(key, '–')} | {fa.get(key, '–')} |")
            out.append("")
    if notes:
        out += ["† computed differently before and after (other metric arguments, reference, test split, "
                "sample size, embedder or seed): compare with care.", ""]
    return "\n".join(out)
