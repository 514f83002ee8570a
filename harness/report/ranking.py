"""Ranking candidates across metrics with a direction."""

from __future__ import annotations

from collections import defaultdict


def _ranks(values: dict[str, float], higher_is_better: bool) -> dict[str, float]:
    """Rank 1 = best; ties share the mean of their ranks."""
    items = sorted(values.items(), key=lambda kv: -kv[1] if higher_is_better else kv[1])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][1] == items[i][1]:
            j += 1
        for k in range(i, j + 1):
            ranks[items[k][0]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_candidates(results) -> list[dict]:
    """Mean rank per metric group ('lexical', 'dup', ...), then the mean over groups.

    Only metrics with a direction (higher or lower is better) that every candidate has count, so
    that a group with many variants (distinct-1..4) weighs as much as a group with one metric.
    Returns rows sorted best first: {dataset, score, groups: {group: mean rank}, metrics: n}.
    """
    cands = sorted({r.dataset for r in results if r.role == "candidate"})
    by_metric: dict[str, dict[str, float]] = defaultdict(dict)
    direction: dict[str, bool] = {}
    for r in results:
        if r.role == "candidate" and r.higher_is_better is not None:
            by_metric[r.metric][r.dataset] = r.value
            direction[r.metric] = r.higher_is_better
    group_ranks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    used = 0
    for m, vals in by_metric.items():
        if len(cands) < 2 or set(vals) != set(cands):
            continue
        used += 1
        for ds, rk in _ranks(vals, direction[m]).items():
            group_ranks[ds][m.split("/")[0]].append(rk)
    rows = []
    for ds in cands:
        groups = {g: sum(v) / len(v) for g, v in group_ranks[ds].items()}
        score = sum(groups.values()) / len(groups) if groups else float("nan")
        rows.append({"dataset": ds, "score": score, "groups": groups, "metrics": used})
    rows.sort(key=lambda r: (r["score"] != r["score"], r["score"], r["dataset"]))
    return rows
