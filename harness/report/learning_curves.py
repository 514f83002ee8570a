"""Figures drawn from result records only (never recomputed): learning curves of the utility metrics.

``plot_learning_curves(results, out_dir)`` writes one PNG per candidate dataset that has
``utility/<recipe>/real-equivalent`` records: for each recipe, the real learning curve (mean over
seeds, band = range over seeds), the candidate's own learning curve (points), and its real-equivalent
(the real-data size whose accuracy the full candidate matches, with its interval).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from harness.report.figures import _label
from harness.run.outdir import write_bytes as atomic_write_bytes

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"


def learning_curve_records(results) -> dict[str, list]:
    """{dataset: [real-equivalent records with curves]}, in the order the records come."""
    out: dict[str, list] = {}
    for r in results:
        parts = r.metric.split("/")
        if len(parts) == 3 and parts[0] == "utility" and parts[2] == "real-equivalent" \
                and "real_curve" in (r.details or {}):
            out.setdefault(r.dataset, []).append(r)
    return out


def plot_learning_curves(results, out_dir, dpi: int = 120) -> list[Path]:
    """Write one learning-curve PNG per candidate; return the written paths (none if no curves)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = learning_curve_records(results)
    if not groups:
        return []
    out_dir = Path(out_dir)
    written: list[Path] = []
    used: set[str] = set()
    for dataset, recs in groups.items():
        fig = Figure(figsize=(7.0, 4.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for i, r in enumerate(recs):
            d = r.details
            recipe = r.metric.split("/")[1]
            colour = _COLOURS[i % len(_COLOURS)]
            rs = np.asarray(d["real_curve"]["sizes"], dtype=float)
            ra = np.asarray(d["real_curve"]["accuracy"], dtype=float).reshape(-1, len(rs))
            ax.plot(rs, ra.mean(axis=0), "-", color=colour, lw=2, label=f"{recipe}: real (reference)")
            if ra.shape[0] > 1:
                ax.fill_between(rs, ra.min(axis=0), ra.max(axis=0), color=colour, alpha=0.15, lw=0)
            sc = d.get("synthetic_curve")
            if sc:
                ss = np.asarray(sc["sizes"], dtype=float)
                sa = np.asarray(sc["accuracy"], dtype=float).reshape(-1, len(ss))
                m = sa.mean(axis=0)
                err = [np.clip(m - sa.min(axis=0), 0, None), np.clip(sa.max(axis=0) - m, 0, None)]
                ax.errorbar(ss, m, yerr=err, fmt="o--", color=colour,
                            ms=5, lw=1, capsize=2, alpha=0.9, label=_label(f"{recipe}: {dataset}", 60))
            acc = d.get("synthetic_accuracy")
            if acc is not None:
                bound = {"above": "≥ ", "below": "≤ "}.get(d.get("censored") or "", "")
                ax.axhline(acc, color=colour, ls=":", lw=1)
                ax.plot([r.value], [acc], marker="*", ms=14, color=colour, mec="black", mew=0.6, ls="none",
                        label=f"{recipe}: real-equivalent {bound}{r.value:,.0f} rows")
                ax.axvline(r.value, color=colour, ls=":", lw=1)
                if r.ci is not None and r.ci[1] > r.ci[0]:
                    ax.axvspan(r.ci[0], r.ci[1], color=colour, alpha=0.08, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("training rows")
        ax.set_ylabel("accuracy on the real test split")
        ax.set_title(f"Learning curves: {dataset} vs the real reference", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        stem = _safe(dataset)
        k = 2
        while stem in used:
            stem = f"{_safe(dataset)}-{k}"
            k += 1
        used.add(stem)
        path = out_dir / f"learning_curve_{stem}.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written
