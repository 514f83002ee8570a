"""The report of ``synthbench validate``: validity.md and the heatmap (pure functions of a Validation)."""

from __future__ import annotations

from harness.analysis.validity import Validation, summary_counts

_MARK = {"pass": "✓", "FAIL": "✗", "limit": "✗ᴸ"}
_SIGN = {"+": "+", "-": "−", "0": "0"}


def _rho(x) -> str:
    return "–" if x is None else f"{x:+.2f}".replace("-", "−")


def cell_text(c: dict) -> str:
    """The Markdown cell of one (metric, corruption): ρ, then ✓/✗ and the expected sign when declared."""
    if c["verdict"] == "n/a":
        return "–"
    rho = "flat" if c["constant"] else _rho(c["rho"])
    if c["verdict"] == "none":
        return rho
    text = f"{rho} {_MARK[c['verdict']]}{_SIGN[c['expect']]}"
    return f"**{text}**" if c["verdict"] == "FAIL" else text


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if abs(x) >= 1000 or (abs(x) < 1e-3 and x != 0):
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def render_markdown(v: Validation, figure: str | None = None) -> str:
    """validity.md: the metrics x corruptions table, failures with their explanation, identity checks."""
    s = summary_counts(v)
    L = [f"# Metric validity: {v.dataset}", ""]
    L.append(f"{s['checks']} declared checks: **{s['pass']} pass, {s['FAIL']} FAIL**, {s['limit']} known limit(s); "
             f"{s['unchecked']} cells without an expectation. Identity checks: {s['identity_pass']} pass, "
             f"{s['identity_FAIL']} FAIL, {s['identity_limit']} known limit(s).")
    L += ["", f"Each repeat samples {v.sample_size} rows (the clean candidate) and corrupts them at severities "
          f"{', '.join(f'{x:g}' for x in v.severities)} (share of rows; for class-drop, share of labels); "
          f"{v.repeats} repeats. Cell: Spearman ρ between severity and the metric's change from the clean sample "
          f"of the same repeat ({len(v.severities)} × {v.repeats} points, 95% Bonett-Wright interval), then the "
          "verdict against the declared expectation (`expect=` in the metric's `@metric` declaration): ✓ met, **✗ FAIL**, ✗ᴸ a documented "
          "limit; + must rise, − must fall, 0 must stay put (interval contains 0); no mark = no expectation; "
          "flat = the metric did not move at all; – not computed.", ""]
    L += ["Setup:", ""] + [f"- {x}" for x in v.layout]
    if v.meta.get("embedder"):
        L.append(f"- embedder: {v.meta['embedder']}")
    if v.meta.get("seconds") is not None:
        L.append(f"- {v.meta.get('candidates', '?')} candidate sets, {len(v.metrics)} metrics; this run "
                 f"{v.meta['seconds']:.0f} s ({v.meta.get('results_computed', 0)} results computed, "
                 f"{v.meta.get('results_reused', 0)} reused from raw/)")
    L.append("")
    if figure:
        L += [f"![metrics x corruptions]({figure})", ""]
    L += ["## Metrics × corruptions", ""]
    L.append("| metric | " + " | ".join(v.corruptions) + " |")
    L.append("|---|" + "|".join(":-:" for _ in v.corruptions) + "|")
    for m in v.metrics:
        if m in v.skipped:
            continue
        L.append(f"| `{m}` | " + " | ".join(cell_text(v.cells[(m, c)]) for c in v.corruptions) + " |")
    bad = [c for c in v.cells.values() if c["verdict"] in ("FAIL", "limit")]
    L += ["", "## Failures", ""]
    if not bad:
        L.append("None: every declared expectation is met.")
    for c in bad:
        change = ", ".join(f"{k}: {_fmt(x)}" for k, x in c["mean_change_by_severity"].items())
        head = "known limit" if c["verdict"] == "limit" else "**FAIL**"
        L.append(f"- {head} `{c['metric']}` under {c['corruption']}: expected {_SIGN[c['expect']]}, "
                 f"ρ = {_rho(c['rho'])} [{_rho(c['low'])}, {_rho(c['high'])}]; mean change by severity {change}."
                 + (f" {c['limit']}" if c["limit"] else " Not explained."))
    L += ["", "## Identity checks", "",
          "A sample against itself must give the metric's no-difference value; two disjoint samples of the "
          "candidate pool must come within the stated tolerance of it.", "",
          "| metric | itself | expected | two samples | expected | verdict | why |", "|---|--:|--:|--:|--:|:-:|---|"]
    for i in v.identity:
        if "expect_self" in i:
            mark = {"pass": "✓", "FAIL": "**✗ FAIL**"}.get(i["verdict"], "✗ᴸ limit")
            L.append(f"| `{i['metric']}` | {_fmt(i['self'])} | {_fmt(i['expect_self'])} ± {_fmt(i['tol_self'])} | "
                     f"{_fmt(i['halves'])} | {_fmt(i['expect_halves'])} ± {_fmt(i['tol_halves'])} | {mark} | {i['why']} |")
        else:
            L.append(f"| `{i['metric']}` | {_fmt(i.get('self'))} | – | {_fmt(i.get('halves'))} | – | "
                     f"{'–' if i['verdict'] == 'n/a' else 'not checked'} | {i['why']} |")
    if s["undeclared"]:
        L += ["", "## Metrics with no expectation declared", "",
              "These metrics declare no expectation (`expect=`) yet; their responses are shown unchecked: "
              + ", ".join(f"`{m}`" for m in s["undeclared"]) + "."]
    if v.skipped or v.not_run:
        L += ["", "## Not computed", ""]
        for m, why in v.skipped.items():
            L.append(f"- `{m}`: {why}")
        for c, why in v.not_run.items():
            L.append(f"- corruption {c}: {why}")
    L += ["", "## Corruptions", ""] + [f"- **{c}**: {d}" for c, d in v.meta.get("definitions", {}).items()]
    return "\n".join(L) + "\n"


def heatmap(v: Validation, out_dir) -> list:
    """figures/validity.png and .svg: ρ per (metric, corruption), coloured; FAILs boxed, marks as in the table."""
    import io
    from pathlib import Path

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from harness.run.outdir import write_bytes as atomic_write_bytes

    metrics = [m for m in v.metrics if m not in v.skipped]
    cors = v.corruptions
    if not metrics or not cors:
        return []
    R = np.full((len(metrics), len(cors)), np.nan)
    for i, m in enumerate(metrics):
        for j, c in enumerate(cors):
            rho = v.cells[(m, c)]["rho"]
            R[i, j] = np.nan if rho is None else rho
    fig = Figure(figsize=(1.0 + 0.62 * len(cors) + 2.6, 1.4 + 0.24 * len(metrics)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = __import__("matplotlib").colormaps["RdBu_r"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(R), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for i, m in enumerate(metrics):
        for j, c in enumerate(cors):
            cell = v.cells[(m, c)]
            if cell["verdict"] in ("pass", "FAIL", "limit"):
                mark = {"pass": "✓", "FAIL": "✗", "limit": "L"}[cell["verdict"]] + _SIGN[cell["expect"]]
                dark = np.isfinite(R[i, j]) and abs(R[i, j]) > 0.55
                ax.text(j, i, mark, ha="center", va="center", fontsize=7, color="white" if dark else "black",
                        fontweight="bold" if cell["verdict"] != "pass" else "normal")
            if cell["verdict"] in ("FAIL", "limit"):
                ax.add_patch(Rectangle((j - 0.45, i - 0.42), 0.9, 0.84, fill=False, lw=1.8,
                                       ls="-" if cell["verdict"] == "FAIL" else "--", ec="#f0a000"))
    ax.set_xticks(range(len(cors)), cors, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=7)
    ax.set_title(f"Metric validity on {v.dataset}: Spearman ρ (severity vs change)\n"
                 "✓ expectation met, ✗ FAIL (boxed), L known limit (dashed box); sign = expected direction", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label("ρ", fontsize=8)
    fig.tight_layout()
    out_dir = Path(out_dir)
    written = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130, metadata={"Date": None} if ext == "svg" else None)
        atomic_write_bytes(out_dir / f"validity.{ext}", buf.getvalue())
        written.append(out_dir / f"validity.{ext}")
    return written
