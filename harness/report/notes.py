"""One line per cause: "not computed" notes and warnings grouped across metrics and datasets.

A reason that names its dataset ("… chatgpt is classification data") is the same cause for every dataset:
the name is taken out before grouping, and numbers are taken out of warnings ("dropped 12 of 1000 rows
…"), so twelve utility metrics that warn about the same rows give one line.

>>> group_skipped([("a", "instr/relevance", "a is classification data"),
...                ("b", "instr/relevance", "b is classification data"),
...                ("b", "instr/coverage", "b is classification data")], ["a", "b"])
['2 instruction faithfulness metrics (instr/relevance, instr/coverage): the dataset is classification data (both datasets)']
"""

from __future__ import annotations

import re

_NUM = re.compile(r"\d+(?:\.\d+)?")


def _cause(why: str, dataset: str) -> str:
    """The reason with the dataset's own name (as a whole word) taken out."""
    if not dataset or dataset not in why:
        return why
    return re.sub(rf"(?<![\w.-]){re.escape(dataset)}(?![\w-])", "the dataset", why)


def _family(metrics: list[str]) -> str:
    from harness.metrics.base import GROUPS

    groups = {m.split("/", 1)[0] for m in metrics}
    if len(groups) == 1:
        g = next(iter(groups))
        if g in GROUPS:
            return GROUPS[g][0].split(" (")[0].lower() + " "
    return ""


def _metrics_text(metrics: list[str], limit: int = 3, inner: bool = False) -> str:
    """'7 instruction faithfulness metrics (a, b, c, …)', or with ``inner`` '… metrics: a, b, c, …'."""
    n = len(metrics)
    shown = ", ".join(metrics[:limit]) + (", …" if n > limit else "")
    what = f"{n} {_family(metrics)}metric{'s' if n != 1 else ''}"
    return f"{what}: {shown}" if inner else f"{what} ({shown})"


def _datasets_text(ds: list[str], all_datasets: list[str] | None) -> str:
    if all_datasets and len(ds) > 1 and set(ds) >= set(all_datasets):
        return "both datasets" if len(all_datasets) == 2 else f"all {len(all_datasets)} datasets"
    return ", ".join(ds)


def group_skipped(skipped, all_datasets: list[str] | None = None) -> list[str]:
    """One plain line per cause for (dataset, metric, reason) triples of metrics that were not computed."""
    by: dict[str, tuple[list, list]] = {}
    for d, m, why in skipped:
        ds, ms = by.setdefault(_cause(str(why), str(d)), ([], []))
        if d not in ds:
            ds.append(d)
        if m not in ms:
            ms.append(m)
    return [f"{_metrics_text(ms)}: {why} ({_datasets_text(ds, all_datasets)})" for why, (ds, ms) in by.items()]


def group_warnings(warnings, all_datasets: list[str] | None = None) -> list[str]:
    """One plain line per cause for (dataset, metric, message) warnings: the message (the first dataset's,
    when the numbers in it differ by dataset), then the metrics and datasets that gave it."""
    by: dict[str, dict] = {}
    for d, m, msg in warnings:
        key = _NUM.sub("#", _cause(str(msg), str(d)))
        g = by.setdefault(key, {"datasets": [], "metrics": [], "messages": {}})
        if d not in g["datasets"]:
            g["datasets"].append(d)
        if m not in g["metrics"]:
            g["metrics"].append(m)
        g["messages"].setdefault(d, set()).add(str(msg))
    out = []
    for g in by.values():
        first = g["datasets"][0]
        msg = sorted(g["messages"][first])[0]
        varies = len({x for s in g["messages"].values() for x in s}) > 1
        where = _datasets_text(g["datasets"], all_datasets)
        if varies and len(g["datasets"]) > 1:
            msg += f" (on {first}; other numbers on {', '.join(g['datasets'][1:])})"
        out.append(f"{where}: {msg} ({_metrics_text(g['metrics'], inner=True)})")
    return out
