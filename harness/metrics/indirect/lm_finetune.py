"""LM utility (indirect evaluation of instruction and free-text data): a small causal LM fine-tuned on the
candidate at a fixed token budget, scored through EleutherAI lm-eval against the base model.

Metric names are made per run from the tasks given to ``synthbench lm-utility``:
``lm-utility/<task>/<score>`` (the base model's score on the reference row, the fine-tuned model's mean
over seeds on each candidate's row) and ``lm-utility/<task>/<score>-delta`` (fine-tuned minus base, with a
paired bootstrap interval over the task's documents and the seeds) and ``lm-utility/<task>/<score>-gap-recovered``
(the candidate's delta over the delta of the real training text fine-tuned at the same budget). The three functions below are
declared once; :func:`specs` turns the tasks into metric specs with these declarations, and the runner
computes them like every other metric (resume, failure records, signatures).
"""

from __future__ import annotations

import math
from dataclasses import replace

from harness.metrics.base import MetricSkipped, metric
from harness.types import Score

INF = math.inf

# score name stem, lm-eval metric, higher is better, per task kind
PRIMARY = {
    "perplexity": [("bits-per-byte", "bits_per_byte", False), ("word-perplexity", "word_perplexity", False)],
    "multiple_choice": [("mc-accuracy", "acc", True), ("mc-accuracy-norm", "acc_norm", True)],
    "generation": [("exact-match", "exact_match", True)],
}
DELTA = {"bits_per_byte", "acc", "exact_match"}  # local tasks: the metrics whose difference is reported


@metric("lm-utility/score", needs=("lm_eval",), seeded=True, opt_in=True, cost="heavy", resample="none",
        no_identity="a model's score on a task, not a distance", register=False)
def task_score(ctx, task: str, lm_metric: str, setup: dict | None = None) -> Score:
    """An lm-eval score of the base model (reference row) or of the model fine-tuned on this set (mean over seeds).

    Range and direction are the task metric's (bits per byte and word perplexity: lower is better;
    accuracy and exact match: higher). Interval: percentile bootstrap over the task's documents (and the
    seeds). Gao et al., "The Language Model Evaluation Harness" (EleutherAI, 2021–2024).
    """
    from harness.resources import lmeval as L

    lmu = ctx.resource("lm_eval")
    if ctx.role == "reference":
        b = lmu.base()[task]
        return Score(L.score(b, lm_metric), L.bootstrap_score(b, lm_metric),
                     {"task": _spec(lmu, task).name, "docs": b.n,
                      "lm_eval_stderr": (b.metrics.get(lm_metric) or [None, None])[1]})
    runs = [r[task] for r in lmu.tuned(ctx.corpus)]
    vals = [L.score(r, lm_metric) for r in runs]
    return Score(sum(vals) / len(vals), L.bootstrap_score(runs, lm_metric),
                 {"task": _spec(lmu, task).name, "docs": lmu.base()[task].n, "seeds": list(lmu.seeds),
                  "per_seed": [round(v, 6) for v in vals],
                  "lm_eval_stderr": [(r.metrics.get(lm_metric) or [None, None])[1] for r in runs]})


@metric("lm-utility/delta", needs=("lm_eval", "reference"), seeded=True, opt_in=True, cost="heavy",
        resample="none", no_identity="a difference between two models, not a distance", register=False)
def task_delta(ctx, task: str, lm_metric: str, setup: dict | None = None) -> Score:
    """Fine-tuned minus base model on one lm-eval task: what training on this set changed.

    Direction as the task metric's (for bits per byte a negative delta is an improvement). Interval: paired
    percentile bootstrap over the same documents (and over seeds when there are several). The comparison
    of a fine-tuned model with its base is the indirect evaluation of the survey (Long et al. 2024).
    """
    from harness.resources import lmeval as L

    lmu = ctx.resource("lm_eval")
    b = lmu.base()[task]
    runs = [r[task] for r in lmu.tuned(ctx.corpus)]
    vals = [L.score(r, lm_metric) for r in runs]
    delta, dci = L.paired_delta(b, runs, lm_metric)
    if delta is None or not math.isfinite(delta):
        raise MetricSkipped(f"no per-document values for {lm_metric}")
    return Score(delta, dci, {"task": _spec(lmu, task).name, "docs": b.n, "seeds": list(lmu.seeds),
                              "per_seed": [round(v, 6) for v in vals], "base": L.score(b, lm_metric),
                              "interval": ("paired percentile bootstrap over documents"
                                           + (" and seeds" if len(lmu.seeds) > 1 else "")) if dci else None})


#: gap recovered is not reported when fine-tuning on real text moves the score by less than this (relative)
MIN_REAL_GAIN = 1e-3


@metric("lm-utility/gap-recovered", needs=("lm_eval",), seeded=True, opt_in=True, cost="heavy",
        higher_is_better=True, resample="none", register=False,
        no_identity="a ratio of two models' gains, not a distance")
def task_gap_recovered(ctx, task: str, lm_metric: str, setup: dict | None = None) -> Score:
    """Performance gap recovered on one lm-eval task: (fine-tuned on this set − base) / (fine-tuned on real − base).

    The real training text (``lm-utility --real FILE``) is fine-tuned on at the same token budget and seeds as
    the candidate; 1 = the candidate teaches the model as much as real text, 0 = nothing, below 0 = it hurts,
    above 1 = more than real text. Unbounded; higher is better for every task metric (the ratio of two
    changes in the same direction). Not reported for the reference itself, or when fine-tuning on real text
    changes the score by less than 0.1%. Interval: paired percentile bootstrap over the task's documents (and
    seeds). Kim et al. 2024, 'Evaluating Language Models as Synthetic Data Generators' (AgoraBench, arXiv
    2412.03679).
    """
    from harness.resources import lmeval as L

    if ctx.role == "reference":
        raise MetricSkipped("the real training data is the scale's 1: gap recovered is for candidates")
    lmu = ctx.resource("lm_eval")
    if getattr(lmu, "real", None) is None:
        raise MetricSkipped("needs the real training text (lm-utility --real FILE) fine-tuned at the same budget")
    b = lmu.base()[task]
    runs = [r[task] for r in lmu.tuned(ctx.corpus)]
    real = [r[task] for r in lmu.tuned(lmu.real)]
    base = L.score(b, lm_metric)
    real_gain = sum(L.score(r, lm_metric) for r in real) / len(real) - base
    if abs(real_gain) <= MIN_REAL_GAIN * max(abs(base), 1e-12):
        raise MetricSkipped(f"fine-tuning on real text moved {lm_metric} by {real_gain:+.3g} only: no gap to recover")
    value, ci, dropped = L.gap_recovered(b, runs, real, lm_metric)
    d = {"task": _spec(lmu, task).name, "docs": b.n, "seeds": list(lmu.seeds), "base": base,
         "tuned": [L.score(r, lm_metric) for r in runs], "real_tuned": [L.score(r, lm_metric) for r in real],
         "interval": "paired percentile bootstrap over documents" + (" and seeds" if len(lmu.seeds) > 1 else "")}
    if dropped:
        d["warnings"] = [f"{dropped} bootstrap resamples had no real gain and were left out"]
    return Score(value, ci, d)


def _spec(lmu, task: str):
    return next(s for s in lmu.tasks if s.label == task)


def metrics_of(spec, result) -> list[tuple[str, str, bool | None, bool]]:
    """(name stem, lm-eval metric, higher is better, report a delta) for one task and its base result."""
    if spec.kind in PRIMARY:
        return [(stem, m, hib, m in DELTA) for stem, m, hib in PRIMARY[spec.kind]]
    return [(m.replace("_", "-").replace(",", "-"), m, result.higher.get(m.split(",")[0]), True)
            for m in result.metrics]


def specs(lmu) -> list:
    """The run's metric specs: per task and score, the score and (where reported) its delta to the base.

    Each spec carries its declaration (the function's, named for the task, with the task metric's
    direction); its arguments hold the task and the setup (model, recipe, seeds, task fingerprints), so they enter the signature."""
    from harness.metrics.registry import MetricSpec

    out = []
    ident = {**lmu.identity(), "tasks": {s.label: s.fingerprint for s in lmu.tasks}}
    real = getattr(lmu, "real", None)
    for t in lmu.tasks:
        for stem, m, hib, with_delta in metrics_of(t, lmu.base()[t.label]):
            for fn, name in [(task_score, f"lm-utility/{t.label}/{stem}")] + (
                    [(task_delta, f"lm-utility/{t.label}/{stem}-delta")] if with_delta else []) + (
                    [(task_gap_recovered, f"lm-utility/{t.label}/{stem}-gap-recovered")]
                    if with_delta and real is not None else []):
                decl = replace(fn.info, name=name,
                               higher_is_better=True if fn is task_gap_recovered else hib)
                setup = {**ident, "task": t.fingerprint}
                if fn is task_gap_recovered:
                    setup["real"] = real.fingerprint
                args = {"task": t.label, "lm_metric": m, "setup": setup}
                out.append(MetricSpec(name, decl.target, args, decl=decl))
    return out
