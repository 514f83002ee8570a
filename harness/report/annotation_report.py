"""The report of ``synthbench annotate import``: agreement, human scores, the judge and the metrics against
the humans. A pure function of the analysis (:func:`harness.analysis.annotation.analyse`); it computes nothing."""

from __future__ import annotations

import math

from harness.report.markdown import arrow, md_escape


def _num(v, digits: int = 3, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    s = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return s.replace("-", "−")


def _ci(ci, digits: int = 3, signed: bool = False) -> str:
    return f"[{_num(ci[0], digits, signed)}, {_num(ci[1], digits, signed)}]" if ci else "–"


def reading(alpha) -> str:
    """Krippendorff's (2004) reading of an alpha."""
    from harness.analysis.annotation import ALPHA_RELIABLE, ALPHA_TENTATIVE

    if alpha is None:
        return "undefined"
    if alpha >= ALPHA_RELIABLE:
        return "reliable (≥ 0.800)"
    if alpha >= ALPHA_TENTATIVE:
        return "tentative (0.667–0.800)"
    return "unreliable (< 0.667)"


def render_markdown(a: dict) -> str:
    """The Markdown report of one import."""
    src, key, rat = a["source"], a["key"], a["ratings"]
    qs = a["questions"]
    lines = [f"# Human evaluation: {md_escape(src['name'])}", "",
             f"- **Data**: the {src['kind']} `{md_escape(src['path'])}`",
             f"- **Study**: {key['items']} blinded items (up to {key.get('per_dataset')} per dataset, stratified by "
             f"label, seed {key.get('seed')}); key `{md_escape(key['path'])}` (fingerprint `{key['fingerprint'][:16]}`)",
             f"- **Ratings**: {rat['count']} from {len(rat['annotators'])} annotator(s) in "
             + ", ".join(f"`{md_escape(f)}`" for f in rat["files"]),
             "- **Questions**: " + "; ".join(f"`{q['name']}` ({md_escape(q['title'])} "
                                             f"{'/'.join(q['choices'])})" for q in qs), ""]

    lines += ["## Agreement between annotators", "",
              "Krippendorff's alpha per question (1 = perfect agreement, 0 = agreement at chance level, below 0 = "
              "systematic disagreement), on every item rated at least twice, with a 95% percentile bootstrap "
              f"interval over items ({a['n_boot']} resamples, seed {a['seed']}). Krippendorff (2004): rely on "
              "data with alpha ≥ 0.800, draw tentative conclusions from 0.667 up.", "",
              "| question | level | items rated twice+ | ratings | annotators | alpha | 95% interval | reading |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for q in qs:
        al = q["alpha"]
        lines.append(f"| `{q['name']}` | {al['level']} | {al['items']} | {al['ratings']} | {al['annotators']} | "
                     f"{_num(al['value'])} | {_ci(al['ci'])} | {reading(al['value'])} |")
    for q in qs:
        if q["alpha"].get("not_computed"):
            lines.append(f"\n`{q['name']}`: alpha not computed: {q['alpha']['not_computed']}.")
    lines.append("")

    for q in qs:
        lines += [f"## Human scores: `{q['name']}`", "",
                  f"{md_escape(q['title'])} Scores: "
                  + ", ".join(f"{c} = {q['scores'][c]:g}" for c in q["choices"])
                  + ". A dataset's score is the mean over its items of each item's mean rating, with a 95% "
                  "percentile bootstrap interval over items; stored as `human/" + q["name"] + "` in the run's "
                  "results.", "",
                  "| dataset | role | score | 95% interval | items | ratings | " + " | ".join(q["choices"]) + " |",
                  "|---|---|---:|---|---:|---:|" + "---:|" * len(q["choices"])]
        for d in q["datasets"]:
            v = d.get("verdicts") or {}
            lines.append(f"| {md_escape(d['dataset'])} | {d['role']} | {_num(d['value'])} | {_ci(d['ci'])} | "
                         f"{d['items']} | {d['ratings']} | " + " | ".join(str(v.get(c, 0)) for c in q["choices"]) + " |")
        lines += ["", "Per annotator (a rater far from the others is worth a look):", "",
                  "| annotator | items rated | mean score |", "|---|---:|---:|"]
        lines += [f"| {md_escape(x['name'])} | {x['items']} | {_num(x['mean'])} |" for x in q["annotators"]]
        lines.append("")

        ac = q["across"]
        lines += [f"### The judge and the metrics against the humans, across candidates (`{q['name']}`)", ""]
        if ac.get("not_computed"):
            lines += [f"Not computed: {ac['not_computed']}.", ""]
        rows = [r for r in ac["rows"] if r["rho"] is not None]
        if rows:
            lines += ["Spearman's ρ between each stored metric and the human score over the candidates, with a "
                      "95% Fisher-z interval (Bonett–Wright standard error). *Oriented*: ρ with the metric's "
                      "direction applied (↓ metrics negated), so a positive value means *better on the metric ↔ "
                      "better by the humans*; metrics without a direction (·) are not oriented. The LLM judge "
                      "asking the same question comes first. With few candidates the intervals are wide, and "
                      "one around ρ = ±1 collapses to a point: read it as 'every candidate in the same order', "
                      "not as certainty.", "",
                      "| metric | kind | dir | candidates | ρ | 95% interval | oriented |",
                      "|---|---|:-:|---:|---:|---|---:|"]
            for r in rows:
                lines.append(f"| `{r['metric']}` | {r['kind']} | {arrow(r['higher_is_better'])} | {r['n']} | "
                             f"{_num(r['rho'], 2, True)} | {_ci((r['low'], r['high']), 2, True)} | "
                             f"{_num(r['oriented'], 2, True)} |")
            lines.append("")
        skipped = [r for r in ac["rows"] if r["rho"] is None]
        if skipped:
            lines += ["Not correlated: " + ", ".join(f"`{r['metric']}` ({r.get('not_computed', 'n/a')})"
                                                    for r in skipped[:12])
                      + (f", … ({len(skipped)} in all)" if len(skipped) > 12 else ""), ""]

        lines += [f"### The judge against the humans, item by item (`{q['name']}`)", ""]
        if not q["per_item"]:
            lines += ["No judge metric with this rubric is stored in the run.", ""]
        for p in q["per_item"]:
            if p["items"]:
                lines += [f"`{p['metric']}` on {p['items']} item(s) the judge also judged: agreement with the humans' "
                          f"majority {_num(p.get('agreement'))} (on {p.get('majority_items', 0)} items with a "
                          f"majority), Cohen's κ {_num(p.get('kappa'))}, Spearman's ρ of the judge's score with "
                          f"the mean human score {_num(p.get('rho'), 2, True)} {_ci((p.get('low'), p.get('high')), 2, True) if p.get('rho') is not None else ''}; "
                          f"mean score: judge {_num(p.get('judge_mean'))}, humans {_num(p.get('human_mean'))}.", ""]
            else:
                lines += [f"`{p['metric']}`: no item of the study was judged row by row.", ""]
            for nc in p["not_computed"]:
                lines.append(f"- {md_escape(nc['dataset'])}: per-row verdicts not known ({nc['why']})")
            if p["not_computed"]:
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"
