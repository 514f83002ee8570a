"""The report of ``synthbench correlate --model``: a joint utility model of the direct metrics, scored by
leave-one-suite-out against the best single metric (a pure function of the analysis' result)."""

from __future__ import annotations

import math

from harness.analysis.utility_model import (
    ALPHAS,
    MIN_CANDIDATES,
    WEIGHTING,
    UtilityModel,
    fmt_interval,
    fmt_signed,
    verdict,
)

TITLES = {"ridge": "ridge (RidgeCV)", "rank": "rank (pairwise, RankRLS)"}


def _weight(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return (f"{v:+.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:+.1e}").replace("-", "−")


def _pen(v: float) -> str:
    return f"{v:g}"


def _arrow(d: bool | None) -> str:
    return "↑" if d is True else "↓" if d is False else "·"


def _grid(vals) -> str:
    return f"{_pen(min(vals))}–{_pen(max(vals))} ({len(vals)} values, log-spaced)"


def render_markdown(results: dict[str, UtilityModel], sources: dict[str, str]) -> str:
    """The report: method, then per utility metric the verdict, the held-out table, per-suite scores and
    the weights of the models refitted on all suites."""
    first = next(iter(results.values()))
    models = first.models
    lines = ["# Joint utility model: do the direct metrics predict utility together?", "",
             "AgoraBench (Kim et al. 2024, [arXiv:2412.03679](https://arxiv.org/abs/2412.03679)) finds that "
             "no single intrinsic measure of a synthetic dataset predicts its downstream utility, while a "
             "combination does. Here a regularised model of all direct metrics is fitted to the utility "
             "score (a classifier trained on the candidate, tested on real data) and scored on suites it "
             "has never seen, against the best single metric chosen the same way.", "",
             "- **Features and target**: every direct (non-`utility/`) metric, oriented by its declared "
             "direction (↓ metrics negated, so a positive weight reads *better on the metric ↔ better "
             "utility*) and standardised within its suite (mean 0, SD 1 over the suite's candidates; 0 where "
             "constant); the utility is standardised within suite too. Suites differ in scale, so raw values "
             "are never compared across suites.",
             f"- **Missing values**: a metric without a value for half or more of a suite's candidates is "
             f"*missing* there (its column is 0, the suite's centre); a metric missing in more than "
             f"{first.max_missing:.0%} of the training suites is dropped from that fit; a single candidate "
             "without a value gets its suite's median.",
             f"- **Models** (scikit-learn `RidgeCV`, no intercept, α from {_grid(ALPHAS)} chosen by an inner "
             "leave-one-suite-out over the training suites only, R²): " + "; ".join(
                 {"ridge": "*ridge* — the standardised utility regressed on the standardised metrics",
                  "rank": "*rank* — a pairwise rank model (RankRLS, the least-squares member of the RankSVM family): "
                          "for every pair of candidates of one training suite whose utilities differ, the metrics' "
                          "difference is regressed on which of the two is better (±1), each suite's pairs weighing "
                          "its number of candidates; it sees only the order of the utilities, not their gaps"}[m]
                 for m in models) + ".",
             "- **Score**: leave-one-suite-out. Each suite is held out in turn; the model is fitted on the "
             "others (feature selection, penalty, weights) and predicts the held-out suite's candidates; the "
             "score is the Spearman ρ between prediction and utility *within* that suite (0 where the "
             f"prediction is constant). The headline is the **{WEIGHTING}**; the plain mean over suites is "
             "shown beside it. Range −1 to +1, higher is better: +1 means the model ranks an unseen suite's "
             "candidates exactly as their utility does, 0 means no better than chance.",
             "- **Best single metric** (the fair baseline): in each fold, the metric with the largest |ρ̄| on "
             "the *training* suites (ρ̄: candidate-weighted mean within-suite Spearman ρ with utility, a suite "
             "where the metric is constant counting 0, as it does when held out), with the sign seen there, "
             "is scored on the held-out suite exactly as the model is. It never sees the held-out suite.",
             f"- **Intervals**: 95% percentile bootstrap over suites that refits ({first.n_boot} draws, seed "
             f"{first.seed}): each draw takes the suites with replacement and reruns the whole leave-one-suite-out "
             "on it (a suite held out with all its copies; features, weights and the single metric's choice "
             "refitted; each fold's α kept at its inner-CV value). The models and the single metric are scored "
             "on the same draws, so *model − single* is a paired difference. Resampling the held-out scores "
             "without refitting was rejected: the folds share training suites, and on synthetic suites with a "
             "utility no metric predicts its interval of the difference excluded 0 in about 40% of runs. A draw "
             "holds about 63% of the suites distinct, so its models learn from fewer suites: the intervals lean "
             "low and are conservative for a claim that the model beats (in simulation: 0 of 40 null runs "
             "excluded 0; a utility that only two metrics together predict was found in 75%). The verdict is "
             "read from the paired interval: *beats* only when it lies above 0.",
             "- **Reports**: " + ", ".join(f"`{s}` ({p})" for s, p in sources.items()), ""]
    for utility, r in results.items():
        lines += _section(utility, r)
    return "\n".join(lines).rstrip() + "\n"


def _section(utility: str, r: UtilityModel) -> list[str]:
    lines = [f"## Against `{utility}`", ""]
    for m in r.models:
        lines.append(f"**Verdict ({m})**: {verdict(r, m)}.  ")
    lines[-1] = lines[-1].rstrip()
    skipped = "; ".join(f"`{s}` ({why})" for s, why in r.skipped.items())
    lines += ["", f"{len(r.folds)} suites, {r.n_candidates} candidates, {len(r.features)} metrics in the refit on all "
              f"suites (suites need {MIN_CANDIDATES} or more candidates with a varying utility score"
              + (f"; skipped: {skipped}" if skipped else "") + ")."
              + (f" {r.replicates} of {r.n_boot} bootstrap draws held 2 or more distinct suites and were used."
                 if r.replicates < r.n_boot else ""), ""]
    if r.dropped:
        lines.append(f"Dropped (missing in more than {r.max_missing:.0%} of the suites): "
                     + ", ".join(f"`{f}` ({k} of {len(r.folds)})" for f, k in r.dropped.items()) + ".")
    if r.constant:
        lines.append("Left out (constant in every suite): " + ", ".join(f"`{f}`" for f in r.constant) + ".")
    if r.imputed:
        lines.append("Imputed: " + ", ".join(
            f"`{f}` ({v} value{'s' if v != 1 else ''} by the suite median"
            + (f", missing in {k} suite{'s' if k != 1 else ''}" if k else "") + ")"
            for f, (v, k) in r.imputed.items()) + ".")
    else:
        lines.append("No value imputed: every metric kept has a value for every candidate of every suite.")
    lines += ["", "| predictor | held-out ρ, candidate-weighted [95% CI] | plain mean | − best single, paired [95% CI] "
                  "| penalty (refit on all suites) |", "|---|---|---:|---|---|"]
    for m in r.models:
        s, d = r.summary[m], r.diff[m]
        lines.append(f"| {TITLES[m]} | {fmt_signed(s.mean)} {fmt_interval(s.ci)} | {fmt_signed(s.plain_mean)} | {fmt_signed(d.mean)} {fmt_interval(d.ci)} "
                     f"| α = {_pen(r.penalty[m])} |")
    s = r.summary["single"]
    lines.append(f"| best single metric (chosen per fold) | {fmt_signed(s.mean)} {fmt_interval(s.ci)} | {fmt_signed(s.plain_mean)} | – | – |")
    lines += ["", "### Per held-out suite", "",
              "| held-out suite | candidates | " + " | ".join(f"{m} ρ" for m in r.models)
              + " | best single metric (chosen on the other suites) | its ρ | "
              + " | ".join(f"{m} α" for m in r.models) + " |",
              "|---|---:|" + "---:|" * len(r.models) + "---|---:|" + "---:|" * len(r.models)]
    for f in r.folds:
        single = f"`{f.single_metric}`" + (" (negated)" if f.single_sign < 0 else "") if f.single_metric else "–"
        lines.append(f"| {f.suite} | {f.n} | " + " | ".join(fmt_signed(f.rho[m]) for m in r.models)
                     + f" | {single} | {fmt_signed(f.rho['single'])} | "
                     + " | ".join(_pen(f.penalty[m]) for m in r.models) + " |")
    chosen: dict[str, int] = {}
    for f in r.folds:
        if f.single_metric:
            chosen[f.single_metric] = chosen.get(f.single_metric, 0) + 1
    key = r.models[0]
    order = sorted(r.features, key=lambda f: (-abs(r.coefficients[key][f]), f))
    lines += ["", "### Weights of the models refitted on all suites", "",
              f"Sorted by |{key} weight|. Features are standardised within suite, so a ridge weight is the change "
              "in within-suite standardised utility per within-suite SD of the metric, and a rank weight the change "
              "in the predicted preference (±1) per SD of the two candidates' difference. Correlated metrics share "
              "credit (a large penalty spreads it over them), so a weight is not the metric's importance on its "
              "own; ρ̄ is the single-metric statistic on all suites (constant suites count 0).", "",
              "| metric | dir | " + " | ".join(f"{m} weight" for m in r.models)
              + " | ρ̄ (all suites) | chosen as best single (folds) |",
              "|---|:-:|" + "---:|" * len(r.models) + "---:|---:|"]
    for f in order:
        lines.append(f"| `{f}` | {_arrow(r.directions.get(f))} | "
                     + " | ".join(_weight(r.coefficients[m][f]) for m in r.models)
                     + f" | {fmt_signed(r.training_rho[f])} | {chosen.get(f, 0) or ''} |")
    lines.append("")
    return lines
