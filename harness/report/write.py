"""Writing a run's reports: run.json, report.md (and leaderboard.md for a suite), index.html and figures/.

Every renderer is a pure function of the records and the run's metadata; this module only orders the
records, renders and writes each file atomically.
"""

from __future__ import annotations

import json
from pathlib import Path


def ordered(results, meta: dict) -> list:
    """The records in report order (reference, then candidates as given; metrics as selected, then the
    catalogue's order), whatever order results.jsonl holds them in."""
    from harness import metrics as registry

    names = ([meta["reference"]["name"]] if meta.get("reference") else []) + [c["name"] for c in meta.get("candidates", [])]
    d_order = {n: i for i, n in enumerate(names)}
    m_order = {m: i for i, m in enumerate(list(meta.get("metrics") or []) + registry.names())}
    return sorted(results, key=lambda r: (d_order.get(r.dataset, len(d_order)), r.dataset,
                                          m_order.get(r.metric, len(m_order)), r.metric))


def metric_infos(results) -> dict:
    """{metric: {summary, range, higher_is_better}} for the metrics of ``results`` that are still declared."""
    from harness import metrics as registry

    infos = {}
    for r in results:
        if registry.is_metric(r.metric) and r.metric not in infos:
            i = registry.info(r.metric)
            infos[r.metric] = {"summary": i.summary, "range": i.range, "higher_is_better": i.higher_is_better,
                               "size_dependent": i.size_dependent, "cost": i.cost}
    return infos


def write_report(out: Path, results, meta: dict) -> list[Path]:
    """Render every report of a run into ``out``; returns the paths written."""
    from harness.report.figures import all_figures
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown
    from harness.run.outdir import claim
    from harness.run.outdir import write_text as atomic_write_text

    out = claim(out)
    results = ordered(results, meta)
    infos = metric_infos(results)
    summaries = {m: i["summary"] for m, i in infos.items()}
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    md = render_markdown(results, meta, summaries, infos)
    written = [out / "report.md"]
    atomic_write_text(out / "report.md", md)
    if meta.get("suite"):
        atomic_write_text(out / "leaderboard.md", md)
        written.append(out / "leaderboard.md")
    figures = all_figures(results, meta, out / "figures") if results else []
    atomic_write_text(out / "index.html", render_html(results, meta, infos, figures))
    written.append(out / "index.html")
    return written
