"""Figures for reports, drawn from result records only (matplotlib, Agg backend).

Each function writes PNG (for the HTML page) and SVG (for papers) and returns the PNG paths.
Output is deterministic: no timestamps in the files, fixed hash salt for SVG ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "synthbench", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def _label(text, width: int) -> str:
    """A dataset or class name as a figure label: control and bidi characters dropped, ``$`` kept literal
    (matplotlib would read text between two ``$`` as mathtext and can fail on it), cut to ``width``."""
    from harness.report.markdown import term_safe

    return term_safe(text)[:width].replace("$", r"\$")


def _save(fig, out_dir: Path, stem: str) -> Path:
    """Render PNG and SVG in memory, then write each atomically (a full disk leaves no 0-byte figure)."""
    import io

    import matplotlib.pyplot as plt

    from harness.run.outdir import write_bytes

    png = out_dir / f"{stem}.png"
    try:
        for path, kw in ((png, {"dpi": 130, "metadata": {"Software": None}}),
                         (out_dir / f"{stem}.svg", {"format": "svg", "metadata": {"Date": None}})):
            buf = io.BytesIO()
            fig.savefig(buf, bbox_inches="tight", format=kw.pop("format", "png"), **kw)
            write_bytes(path, buf.getvalue())
    finally:
        plt.close(fig)
    return png


def _order(results, meta):
    names = ([meta["reference"]["name"]] if meta.get("reference") else []) + [c["name"] for c in meta.get("candidates", [])]
    present = list(dict.fromkeys(r.dataset for r in results))
    return [n for n in names if n in present] + [n for n in present if n not in names]


def group_bars(results, meta, out_dir: Path) -> list[Path]:
    """One figure per metric group: a panel per metric, a bar per dataset with its 95% interval.

    The reference's bar is hatched and grey: it is the target, not a competitor.
    """
    plt = _plt()
    datasets = _order(results, meta)
    by_group: dict[str, list[str]] = defaultdict(list)
    for r in results:
        g = r.metric.split("/")[0]
        if r.metric not in by_group[g]:
            by_group[g].append(r.metric)
    cell = {(r.dataset, r.metric): r for r in results}
    paths = []
    for g, mets in by_group.items():
        cols = min(4, len(mets))
        rows = math.ceil(len(mets) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.6 * rows), squeeze=False)
        for ax, m in zip(axes.flat, mets):
            xs, vals, errs, colors, hatches = [], [], [[], []], [], []
            for i, d in enumerate(datasets):
                r = cell.get((d, m))
                if r is None:
                    continue
                xs.append(d)
                vals.append(r.value)
                lo, hi = r.ci if r.ci is not None else (r.value, r.value)
                errs[0].append(max(0.0, r.value - lo))
                errs[1].append(max(0.0, hi - r.value))
                ref = r.role == "reference"
                colors.append("#BBBBBB" if ref else _COLORS[i % len(_COLORS)])
                hatches.append("//" if ref else "")
            bars = ax.bar(range(len(xs)), vals, yerr=errs, color=colors, capsize=3, edgecolor="#333333", linewidth=0.5)
            for b, h in zip(bars, hatches):
                b.set_hatch(h)
            hib = next((cell[(d, m)].higher_is_better for d in xs if (d, m) in cell), None)
            arrow = " (higher better)" if hib is True else (" (lower better)" if hib is False else "")
            ax.set_title(m.split("/", 1)[1] + arrow, fontsize=8)
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels([_label(x, 18) for x in xs], rotation=30, ha="right", fontsize=7)
        for ax in list(axes.flat)[len(mets):]:
            ax.axis("off")
        fig.suptitle(f"{g} metrics (bars: 95% intervals where defined; hatched: reference)", fontsize=9)
        fig.tight_layout()
        paths.append(_save(fig, out_dir, f"bars_{g}"))
    return paths


def correlation_heatmap(results, out_dir: Path) -> Path | None:
    """Spearman correlation between metrics across candidates (needs 3 or more candidates)."""
    import numpy as np
    from scipy.stats import spearmanr

    cands = sorted({r.dataset for r in results if r.role == "candidate"})
    if len(cands) < 3:
        return None
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for r in results:
        if r.role == "candidate":
            table[r.metric][r.dataset] = r.value
    mets = [m for m, v in table.items() if set(v) == set(cands) and len(set(v.values())) > 1]
    if len(mets) < 2:
        return None
    X = np.array([[table[m][c] for c in cands] for m in mets])
    rho = np.atleast_2d(spearmanr(X, axis=1).statistic)
    plt = _plt()
    size = max(4.0, 0.28 * len(mets) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rho, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(mets)))
    ax.set_yticks(range(len(mets)))
    ax.set_xticklabels(mets, rotation=90, fontsize=6)
    ax.set_yticklabels(mets, fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.7, label="Spearman ρ across candidates")
    ax.set_title(f"Metric agreement across {len(cands)} candidates", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, "metric_correlation")


def _per_class(details: dict) -> dict[str, float]:
    out = {}
    for k, v in (details.get("per_class") or {}).items():
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif isinstance(v, dict):
            nums = [x for key, x in v.items() if key != "n" and isinstance(x, (int, float))]
            if nums:
                out[k] = float(nums[0])
    return out


def per_class_heatmaps(results, meta, out_dir: Path) -> list[Path]:
    """For each metric with per-class details: datasets × classes, so a collapsed class stands out."""
    import numpy as np

    plt = _plt()
    datasets = _order(results, meta)
    by_metric: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in results:
        pc = _per_class(r.details)
        if pc:
            by_metric[r.metric][r.dataset] = pc
    paths = []
    for m, per in by_metric.items():
        rows = [d for d in datasets if d in per]
        classes = sorted({c for d in rows for c in per[d]})
        if not rows or not classes or len(classes) > 80:
            continue
        M = np.array([[per[d].get(c, np.nan) for c in classes] for d in rows])
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(classes) + 2), 0.4 * len(rows) + 1.6))
        im = ax.imshow(M, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels([_label(c, 16) for c in classes], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([_label(d, 24) for d in rows], fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(f"{m} per class", fontsize=9)
        fig.tight_layout()
        paths.append(_save(fig, out_dir, "perclass_" + m.replace("/", "_")))
    return paths


def _key(results, meta) -> str:
    from harness import __version__
    from harness.types import canonical_json, sha256_hex

    body = [[r.dataset, r.metric, r.value, r.ci, r.role, r.details] for r in results]
    return sha256_hex(__version__, canonical_json(body), canonical_json(meta))


def all_figures(results, meta, out_dir: Path) -> list[Path]:
    """Every figure the results support (bars, correlation, per-class, learning curves), reused when
    results and metadata are unchanged."""
    import json

    from harness.run.outdir import write_text as atomic_write_text

    key = _key(results, meta)
    manifest = out_dir / "figures.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
            paths = [out_dir / p for p in old["png"]]
            if old.get("key") == key and all(p.exists() for p in paths):
                return paths
        except (ValueError, KeyError, TypeError):
            pass
    paths = _draw_all(results, meta, out_dir)
    atomic_write_text(manifest, json.dumps({"key": key, "png": [p.name for p in paths]}, indent=1))
    return paths


def _draw_all(results, meta, out_dir: Path) -> list[Path]:
    paths = group_bars(results, meta, out_dir)
    heat = correlation_heatmap(results, out_dir)
    if heat:
        paths.append(heat)
    paths += per_class_heatmaps(results, meta, out_dir)
    from harness.report.learning_curves import plot_learning_curves

    paths += list(plot_learning_curves(results, out_dir) or [])
    return paths
