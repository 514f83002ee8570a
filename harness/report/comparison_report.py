"""The report of ``synthbench compare``: Markdown and JSON of a comparison (a pure function of its result)."""

from __future__ import annotations

import json
import math
from pathlib import Path

# ----------------------------------------------------------------------------- rendering

def _fmt(v) -> str:
    from harness.report.markdown import fmt

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt(float(v))


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _effect(row) -> str:
    e = row.get("effect")
    if e is None:
        return "–"
    kind = row.get("effect_kind") or ""
    unit = "g" if kind.startswith("Hedges") else "Δ/SD"
    return f"{unit} = {e:+.2f}"


def _signed(v) -> str:
    s = _fmt(v)
    return s if s.startswith("-") or s == "–" else "+" + s


def render_markdown(res: dict) -> str:
    from harness.report.markdown import arrow, md_escape

    a, b = res["a"], res["b"]

    def who(s):
        extra = f", suite {md_escape(s['suite'])}" if s.get("suite") else ""
        return f"`{md_escape(s['spec'])}`: {md_escape(s['name'])} ({s['rows']} rows{extra})"

    lines = [f"# synthbench compare: {md_escape(b['name'])} (B) vs {md_escape(a['name'])} (A)", "",
             f"- **A** = {who(a)}", f"- **B** = {who(b)}"]
    if res.get("reference"):
        r = res["reference"]
        lines.append(f"- reference (shared): {md_escape(r['name'])}, {r['rows']} rows, fingerprint {r['fingerprint'][:12]}")
    if res.get("test"):
        t = res["test"]
        lines.append(f"- test split (shared): {t['rows']} rows, fingerprint {t['fingerprint'][:12]}")
    used = {m["scheme"] for m in res["metrics"]}
    how = [txt for scheme, txt in (
        ("recompute", f"{res['resamples']} permutations and {res['resamples']} half-samples for set-level metrics"),
        ("rows", f"{res['row_permutations']:,} permutations for row-level metrics"),
        ("test-rows", f"{res['test_row_resamples']:,} paired resamples and sign flips of the test rows for utility"))
        if scheme in used]
    lines += [f"- resampling: {'; '.join(how) or 'none'}; seed {res['seed']}"]
    rs = res.get("resampling")
    if rs:
        rec = [d["metric"] for d in rs.get("recomputed") or []]
        approx = rs.get("approximate") or []
        lines.append(f"- set-level metrics: {len(rs.get('statistics') or [])} resampled on sufficient statistics, "
                     f"{len(approx)} approximately" + (f" ({', '.join(f'`{m}`' for m in approx)})" if approx else "")
                     + f", {len(rec)} recomputed from the rows" + (f" ({', '.join(f'`{m}`' for m in rec)})" if rec else "")
                     + (f"; {len(rs['extended'])} with {rs['extended_permutations']:,} permutations (a p-value below "
                        f"{rs.get('extend_below', 0.2)} on the first {res['resamples']})" if rs.get("extended") else "")
                     + f"; {rs.get('seconds')} s (estimated {rs.get('estimate_s')} s)")
    lines += [f"- q = Benjamini-Hochberg adjusted p over the {len(res['metrics'])} metrics compared; "
              f"verdict at q < {res['alpha']}, oriented by each metric's direction (↑/↓; · has none)", ""]
    lines += ["| metric | A | B | B − A [95% CI] | p | q | effect | verdict | scheme |",
              "|---|---:|---:|---|---:|---:|---|---|---|"]
    for m in res["metrics"]:
        ci = m.get("ci")
        ci_txt = f" [{_signed(ci[0])}, {_signed(ci[1])}]" if ci else " [–]"
        lines.append(f"| `{m['metric']}` {arrow(m['higher_is_better'])} | {_fmt(m['a'])} | {_fmt(m['b'])} | "
                     f"{_signed(m['diff'])}{ci_txt} | {_fmt_p(m['p'])} | {_fmt_p(m.get('q'))} | {_effect(m)} | "
                     f"{m['verdict']} | {m['scheme']} |")
    notes = [(m["metric"], n) for m in res["metrics"] for n in m.get("notes", [])]
    if notes:
        lines += ["", "Notes:"] + [f"- `{m}`: {md_escape(n)}" for m, n in notes]
    lines += ["", "Schemes:"] + [f"- **{k}**: {v}." for k, v in res["schemes"].items()
                                 if any(m["scheme"] == k for m in res["metrics"])]
    lines += ["- effect: Hedges' g (g) for means of per-row values; for set-level metrics the difference in units of "
              "the pooled resampling SD (Δ/SD), which grows with n (a z-like score, not a Cohen-type effect size)."]
    if res["not_compared"]:
        heavy = [d["metric"] for d in res["not_compared"] if d["reason"].startswith("heavy")]
        lines += ["", "Not compared:"] + [f"- `{d['metric']}`: {md_escape(d['reason'])}" for d in res["not_compared"]
                                          if not d["reason"].startswith("heavy")]
        if heavy:
            lines.append("- left out of the default set as heavy (seconds or more per evaluation, or model fits); "
                         "name them with --metrics to compare them: " + ", ".join(f"`{m}`" for m in heavy))
    if res["warnings"]:
        lines += ["", "Warnings:"] + [f"- {md_escape(w)}" for w in res["warnings"]]
    return "\n".join(lines) + "\n"


def write_outputs(res: dict, md: str, target: Path) -> tuple[Path, Path]:
    """FILE (Markdown) and the JSON next to it (FILE with .json), both written atomically."""
    from harness.resources.cache import atomic_write_text

    target = Path(target)
    js = target.with_suffix(".json") if target.suffix.lower() in (".md", ".markdown") else Path(str(target) + ".json")
    if js == target:
        js = Path(str(target) + ".json")
    atomic_write_text(target, md)
    atomic_write_text(js, json.dumps(res, indent=2, ensure_ascii=False, default=_jsonable) + "\n")
    return target, js


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
