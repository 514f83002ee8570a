"""Fluency: per-row perplexity under a pretrained causal language model.

Each row's perplexity is exp(mean token negative log-likelihood) under the LM chosen with ``--lm``
(default SmolLM2-135M-Instruct, offline; ``harness.resources.perplexity`` says how texts are tokenized,
truncated, batched and cached). Texts are cut to ``max_length`` tokens (details give how many were).

What is scored: for instruction data the **response** (the ``output`` field) by default, since the
response is what the generator wrote and what a model will be trained to produce; for other data the
text. ``field`` overrides it ('text' = the rendered row, or any mapped field such as 'instruction').
Rows whose scored text is empty (an empty ``output``) have no perplexity and are left out (counted), and
so are rows of fewer than ``min_tokens`` (5) tokens: the first token of a row is predicted with no context
(about 10 nats for SmolLM2 against 4 on average), so a one-word row such as "positive" or "River" gets a
perplexity of 10^4-10^5 that says nothing about fluency (measured on Alpaca and Self-Instruct outputs).

Caveats that hold for all three numbers: perplexity has no absolute "good" value; it depends on the LM,
its tokenizer, the domain and the text length, so compare datasets of the same kind under one LM, and
read a candidate beside the reference's value (the reference row of the report). Low perplexity is not
quality: it rewards bland, generic and repetitive text, and text written by the scoring LM itself (or
a relative) is far more predictable to it than human text (Holtzman et al., "The Curious Case of Neural
Text Degeneration", ICLR 2020, Fig. 4 and §4: human text is not the most probable text).
"""

from __future__ import annotations

from harness.metrics.base import MetricSkipped, metric
from harness.stats import conformal_pvalues, percentile_interval
from harness.types import INSTRUCTION, Score

INF = float("inf")

N_BOOT = 1000
TAILS = (0.025, 0.975)  # the percentile interval's quantile levels, as literals


def _scored_text(ctx, field: str):
    """(texts, name of what was scored) for ``field`` ('auto', 'text' or a mapped field name)."""
    corpus = ctx.corpus
    if field == "auto":
        field = "output" if corpus.kind == INSTRUCTION and "output" in corpus.fields else "text"
    if field == "text":
        return ctx.texts, "text"
    if field not in corpus.fields:
        have = ", ".join(["text"] + sorted(corpus.fields))
        raise MetricSkipped(f"{corpus.name} has no field '{field}' to score (has: {have})")
    return corpus.fields[field], field


def _rows(ctx, field: str, max_length: int):
    """(RowNLL, field scored) for ``ctx``; the scorer caches per text, so every fluency metric and
    every rerun shares one model pass."""
    scorer = getattr(ctx, "lm_scorer", None)
    if scorer is None:
        raise MetricSkipped("needs a causal language model (--lm, or 'lm:' in a suite)")
    texts, what = _scored_text(ctx, field)
    res = scorer.score(texts, max_length=max_length, desc=f"perplexity {ctx.corpus.name}")
    return res, what


def _ppl(ctx, field: str, max_length: int, min_tokens: int):
    """(per-row perplexity of the rows with at least min_tokens tokens, their positions, RowNLL, field)."""
    import numpy as np

    res, what = _rows(ctx, field, max_length)
    keep = np.flatnonzero(res.tokens >= max(1, min_tokens))
    if len(keep) == 0:
        raise MetricSkipped(f"no row of {ctx.corpus.name} has {max(1, min_tokens)} or more tokens to score "
                            f"(field '{what}')")
    return res.perplexity[keep], keep, res, what


def _boot_quantiles(x, q: float, rng, n_boot: int = N_BOOT):
    """``n_boot`` bootstrap replicates of the q-quantile of x (vectorised in blocks of ~4M values)."""
    import numpy as np

    from harness.stats import bootstrap_replicates

    return bootstrap_replicates(len(x), lambda idx: np.quantile(x[idx], q, axis=1), n_boot, rng,
                                max(1, 4_000_000 // len(x)))


def _details(ctx, ppl, keep, res, what: str, max_length: int, min_tokens: int) -> dict:
    import numpy as np

    scorer = ctx.lm_scorer
    tokens = res.tokens[keep]
    nll = res.nll[keep]
    bpb = res.bits_per_byte[keep]
    order = np.argsort(ppl)

    def example(i):
        t = _scored_text(ctx, what)[0][keep[i]]
        return {"row": int(keep[i]), "perplexity": round(float(ppl[i]), 2),
                "text": t[:160] + ("…" if len(t) > 160 else "")}

    return {
        "lm": getattr(scorer, "identity", None),
        "scored": what,
        "rows": len(res), "rows_scored": int(len(keep)), "rows_empty": int((res.tokens == 0).sum()),
        "rows_too_short": int(((res.tokens > 0) & (res.tokens < min_tokens)).sum()), "min_tokens": min_tokens,
        "rows_truncated": int(res.truncated.sum()), "max_length": max_length,
        "tokens": int(tokens.sum()), "tokens_per_row_median": float(np.median(tokens)),
        "perplexity_mean": float(ppl.mean()),
        "perplexity_pooled": float(np.exp(nll.sum() / tokens.sum())),  # corpus-level token perplexity
        "bits_per_byte_median": float(np.nanmedian(bpb)) if np.isfinite(bpb).any() else None,
        "lowest": [example(i) for i in order[:2]],
        "highest": [example(i) for i in order[::-1][:2]],
    }


def _quantile_score(ctx, q: float, field: str, max_length: int, min_tokens: int) -> Score:
    import numpy as np

    ppl, keep, res, what = _ppl(ctx, field, max_length, min_tokens)
    value = float(np.quantile(ppl, q))
    ci = None
    if len(ppl) >= 2:
        ci = percentile_interval(_boot_quantiles(ppl, q, ctx.rng(f"fluency-q{q}")), tails=TAILS)
    details = _details(ctx, ppl, keep, res, what, max_length, min_tokens)
    details["interval"] = f"percentile bootstrap over rows ({N_BOOT} replicates)"
    warn = []
    if details["rows_truncated"]:
        warn.append(f"{details['rows_truncated']} of {details['rows']} rows were cut to {max_length} tokens")
    if warn:
        details["notes"] = warn
    return Score(value, ci, details)


@metric("fluency/perplexity-median", args={"field": "auto", "max_length": 512, "min_tokens": 5},
        needs=("texts", "lm"),
        higher_is_better=False,
        bounds=(1, INF),
        opt_in=True,
        cost="heavy")
def perplexity_median(ctx, field: str = "auto", max_length: int = 512, min_tokens: int = 5) -> Score:
    """Median per-row perplexity under the causal LM (--lm); lower is more fluent for the same kind of text.

    Range [1, ∞) (1 = every token predicted with certainty). Perplexity of a row is exp of its mean
    token negative log-likelihood; the median over rows is robust to a few garbled rows (the p90 shows
    the tail). 95% percentile-bootstrap interval over rows. No absolute good value: compare with the
    reference's median under the same LM (the reference row; ``fluency/perplexity-ratio`` divides the
    two). Lower is better only between datasets of the same kind: perplexity rewards bland, repetitive
    and LM-written text. Scores the ``output`` of instruction data (``field``); texts are cut to
    ``max_length`` tokens; rows under ``min_tokens`` tokens are left out (counted). Fluency as a direct-evaluation criterion: Long et al., "On LLMs-Driven
    Synthetic Data Generation, Curation, and Evaluation: A Survey", ACL Findings 2024.
    """
    return _quantile_score(ctx, 0.5, field, max_length, min_tokens)


@metric("fluency/perplexity-p90", args={"field": "auto", "max_length": 512, "min_tokens": 5},
        needs=("texts", "lm"),
        higher_is_better=False,
        bounds=(1, INF),
        opt_in=True,
        cost="heavy")
def perplexity_p90(ctx, field: str = "auto", max_length: int = 512, min_tokens: int = 5) -> Score:
    """90th percentile of per-row perplexity under the causal LM (--lm): the disfluent tail; lower is better for the same kind of text.

    Range [1, ∞). One row in ten is at least this surprising to the LM: garbled, truncated, off-language
    or template-breaking rows raise it long before they move the median. 95% percentile-bootstrap
    interval over rows. Same caveats as ``fluency/perplexity-median``: no absolute good value, compare
    with the reference's p90 under the same LM.
    """
    return _quantile_score(ctx, 0.9, field, max_length, min_tokens)


@metric("fluency/perplexity-ratio", args={"field": "auto", "max_length": 512, "min_tokens": 5, "alpha": 0.01},
        needs=("texts", "lm", "reference"),
        bounds=(0, INF),
        opt_in=True,
        cost="heavy",
        range="(0, ∞) (1 = as predictable as the reference)")
def perplexity_ratio(ctx, field: str = "auto", max_length: int = 512, min_tokens: int = 5,
                     alpha: float = 0.01) -> Score:
    """Median candidate perplexity / median reference perplexity under the causal LM; 1 = as predictable as real text, no better direction.

    Range (0, ∞). Above 1: the candidate is harder for the LM to predict than the real data (less fluent,
    noisier, or another domain); below 1: more predictable than real text, which is where bland,
    generic, repetitive and LM-written text lands (Holtzman et al., ICLR 2020: human text is not the
    most probable text; a ratio far below 1 is not better). So it has no direction: closer to 1 is more
    real-like. The 95% interval is a percentile bootstrap resampling candidate and reference rows
    independently.

    Row flag ``high-perplexity``: rows more perplexing than all but a share ``alpha`` (1%) of the
    reference's rows, i.e. conformal p-value (1 + #{reference rows at least as perplexing}) / (m + 1)
    at most ``alpha`` (Bates et al., "Testing for outliers with conformal p-values", Annals of
    Statistics 2023). A row that reads like the reference is flagged with probability at most ``alpha``
    (per row, no multiplicity correction: a per-row screen, where a false-discovery-rate rule could not
    flag a single garbled row among a few hundred against a reference of a few hundred). Needs at least
    1/alpha - 1 reference rows to flag anything. Garbled, cut, wrong-language or markup-laden rows land
    here; bland rows never do.
    """
    import numpy as np

    if ctx.reference is None:
        raise MetricSkipped("needs --reference")
    ppl, keep, res, what = _ppl(ctx, field, max_length, min_tokens)
    rppl, rkeep, rres, rwhat = _ppl(ctx.reference, field, max_length, min_tokens)
    med, rmed = float(np.median(ppl)), float(np.median(rppl))
    ci = None
    if len(ppl) >= 2 and len(rppl) >= 2:
        rng = ctx.rng("fluency-ratio")
        a = _boot_quantiles(ppl, 0.5, rng)
        b = _boot_quantiles(rppl, 0.5, rng)
        ci = percentile_interval(a / b, tails=TAILS)
    m = len(rppl)
    high = keep[conformal_pvalues(ppl, rppl) <= alpha]
    details = _details(ctx, ppl, keep, res, what, max_length, min_tokens)
    details.update({
        "median": med, "reference_median": rmed, "reference_scored": rwhat,
        "reference_rows_scored": int(len(rkeep)), "reference_rows_truncated": int(rres.truncated.sum()),
        "interval": f"percentile bootstrap, candidate and reference rows resampled independently "
                    f"({N_BOOT} replicates)",
        "high_perplexity_rule": f"conformal p-value against the reference's row perplexities <= {alpha:g} "
                                f"(more perplexing than all but {alpha:.0%} of {m} reference rows)"
                                + ("" if (m + 1) * alpha >= 1 else f"; needs >= {int(1 / alpha) - 1} "
                                   "reference rows to flag anything"),
        "high_perplexity_rows": int(len(high)), "high_perplexity_share": float(len(high) / len(keep)),
        # descriptive shares of the candidate's rows outside the reference's 1-99% perplexity range
        "above_reference_p99_share": float((ppl > np.quantile(rppl, 0.99)).mean()),
        "below_reference_p1_share": float((ppl < np.quantile(rppl, 0.01)).mean()),
    })
    return Score(med / rmed, ci, details, rows={"high-perplexity": [int(i) for i in high]})
