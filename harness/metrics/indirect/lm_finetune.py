"""LM utility (indirect evaluation of instruction and free-text data): a small causal LM fine-tuned on the
candidate at a fixed token budget, scored through EleutherAI lm-eval against the base model.

Metric names are made per run from the tasks given to ``synthbench lm-utility``:
``lm-utility/<task>/<score>`` (the base model's score on the reference row, the fine-tuned model's mean
over seeds on each candidate's row) and ``lm-utility/<task>/<score>-delta`` (fine-tuned minus base, with a
paired bootstrap interval over the task's documents and the seeds). The two functions below are
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
    for t in lmu.tasks:
        for stem, m, hib, with_delta in metrics_of(t, lmu.base()[t.label]):
            for fn, name in [(task_score, f"lm-utility/{t.label}/{stem}")] + (
                    [(task_delta, f"lm-utility/{t.label}/{stem}-delta")] if with_delta else []):
                decl = replace(fn.info, name=name, higher_is_better=hib)
                args = {"task": t.label, "lm_metric": m, "setup": {**ident, "task": t.fingerprint}}
                out.append(MetricSpec(name, decl.target, args, decl=decl))
    return out
