"""The report of ``synthbench correlate``: the metric-utility correlation tables (pure functions of results)."""

from __future__ import annotations

import math

from harness.analysis.correlation import METHOD, Correlation, q_values


def _num(v: float | None, signed: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return (f"{v:+.2f}" if signed else f"{v:.2f}").replace("-", "−")


def _ci(ci) -> str:
    return f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "[–]"


def _arrow(d: bool | None) -> str:
    return "↑" if d is True else "↓" if d is False else "·"




def render_markdown(results: dict[str, list[Correlation]], summaries: dict[str, list[dict]],
                    sources: dict[str, str], n_boot: int, seed: int) -> str:
    """The report: one section per utility metric (overall table, per-suite table, suites)."""
    used = {s["suite"] for rows in summaries.values() for s in rows if s["n"] >= 2}
    lines = ["# Metric–utility correlation", "",
             "Which cheap, direct metric predicts downstream utility (a classifier trained on the candidate "
             "and tested on real data)? Across the candidates of the suites below, each direct metric is "
             "rank-correlated with the utility score.", "",
             f"- **Pooling**: {METHOD}. Raw values are never compared across suites (their scales and "
             "utility levels differ); suites where the metric or the utility is constant are left out for "
             "that metric.",
             "- **Orientation**: metrics marked ↓ (lower is better) are negated, so a positive value means "
             "*better on the metric ↔ better utility*; metrics marked · have no direction and are not "
             "oriented (positive: larger value ↔ better utility).",
             f"- **Intervals**: 95% percentile bootstrap over candidates, resampled within each suite "
             f"({n_boot} replicates, seed {seed}); *p*: two-sided permutation test of ρ (utility shuffled "
             f"within suites, {n_boot} permutations); *q*: Benjamini-Hochberg over all metrics in the table. Few candidates per suite make intervals wide; an "
             "interval such as [+1.00, +1.00] only says that every resample kept the candidates' order "
             "(a bootstrap cannot invent orderings it never saw): read it together with *p*.",
             "- **Reports**: " + ", ".join(f"`{s}` ({p})" for s, p in sources.items() if s in used)]
    unused = [s for s in sources if s not in used]
    if unused:
        lines.append("- **Left out** (no candidates with the utility score): " + ", ".join(f"`{s}`" for s in unused))
    lines.append("")
    for utility, corrs in results.items():
        suites = [s["suite"] for s in summaries[utility]]
        lines += [f"## Against `{utility}`", "",
                  "| metric | dir | Spearman ρ [95% CI] | Kendall τ [95% CI] | p (perm.) | q (BH) | candidates | suites |",
                  "|---|:-:|---|---|---:|---:|---:|---:|"]
        qs = q_values(corrs)
        for c in corrs:
            p, q = (("–" if v is None else (f"{v:.3f}" if v >= 0.001 else "<0.001")) for v in (c.p_rho, qs.get(c.metric)))
            lines.append(f"| `{c.metric}` | {_arrow(c.direction)} | {_num(c.rho)} {_ci(c.rho_ci)} | "
                         f"{_num(c.tau)} {_ci(c.tau_ci)} | {p} | {q} | {c.n} | {c.suites} |")
        lines += ["", f"### Per suite (within-suite Spearman ρ with `{utility}`, oriented)", ""]
        ns = {s["suite"]: s["n"] for s in summaries[utility]}
        lines.append("| metric | " + " | ".join(f"{s} (n={ns[s]})" for s in suites) + " |")
        lines.append("|---|" + "---:|" * len(suites))
        for c in corrs:
            lines.append(f"| `{c.metric}` | " + " | ".join(_num(c.per_suite.get(s)) for s in suites) + " |")
        lines += ["", f"### Suites (`{utility}` of the candidates)", "",
                  "| suite | candidates | min | max | best | worst |", "|---|---:|---:|---:|---|---|"]
        for s in summaries[utility]:
            lines.append(f"| {s['suite']} | {s['n']} | {s['min']:.3f} | {s['max']:.3f} | {s['best']} | {s['worst']} |")
        lines.append("")
    return "\n".join(lines)
