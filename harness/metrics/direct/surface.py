"""Surface divergences between a candidate and the real reference: labels, lengths, vocabulary.

Every score here compares the candidate with ``--reference`` and is 0 (or near it) when the two look
alike; lower means closer to the reference. Closer is usually better for training data, but not
always: a generator deliberately balanced over labels *should* diverge from a skewed reference.
Lengths are in word tokens and vocabularies use the shared tokenizer (``Context.tokens``). No metric
here draws random numbers and none reports an interval: the reference is a sample too, and the
p-values in the details are the honest statement of uncertainty.
"""

from __future__ import annotations

import math
from collections import Counter

from harness.metrics.base import MODE_COLLAPSE_BBC, Identity, MetricSkipped, metric
from harness.types import Score

INF = math.inf


def jsd_bits(p, q) -> float:
    """Jensen-Shannon divergence in bits between two count or probability vectors (range [0, 1]).

    Note that ``scipy.spatial.distance.jensenshannon`` returns the JS *distance*, the square root
    of this.

    >>> jsd_bits([1, 0], [0, 1]), jsd_bits([2, 2], [1, 1])
    (1.0, 0.0)
    """
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("empty distribution")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    kl = lambda a: float((a[a > 0] * np.log2(a[a > 0] / m[a > 0])).sum())  # noqa: E731
    return min(1.0, max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def aligned_counts(a: Counter, b: Counter):
    """(keys, counts of a, counts of b) over the union of keys, in a deterministic order."""
    import numpy as np

    keys = sorted(set(a) | set(b), key=str)
    return keys, np.array([a.get(k, 0) for k in keys], dtype=np.float64), \
        np.array([b.get(k, 0) for k in keys], dtype=np.float64)


def _label_counts(ctx):
    cand, ref = Counter(ctx.labels), Counter(ctx.reference.labels)
    if not cand or not ref:
        raise MetricSkipped("no labels")
    return cand, ref


def label_chi2(cand: Counter, ref: Counter) -> dict:
    """Chi-square test of homogeneity on the 2 x L table (candidate and reference label counts).

    ``chi2_contingency`` treats both rows as samples (the reference is a finite sample too, unlike a
    goodness-of-fit test against its proportions) and accepts labels that one side never uses, which a
    goodness-of-fit test cannot (expected count 0). No Yates correction. Cramér's V = sqrt(chi2 / N)
    for two rows, in [0, 1]; it is biased upwards when there are few rows per label (two random
    1,000-row halves of banking77, 77 intents, give V = 0.19), so ``cramers_v_corrected`` applies
    Bergsma's correction (J. Korean Stat. Soc. 2013), which gives 0.0 for those halves. Expected counts
    below 5 make the p-value approximate: see ``low_expected``.
    """
    import numpy as np
    from scipy.stats import chi2_contingency

    keys, c, r = aligned_counts(cand, ref)
    total = c.sum() + r.sum()
    if len(keys) < 2:
        return {"statistic": 0.0, "p_value": 1.0, "dof": 0, "cramers_v": 0.0, "cramers_v_corrected": 0.0,
                "low_expected": 0.0}
    res = chi2_contingency(np.vstack([c, r]), correction=False)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue), "dof": int(res.dof),
            "cramers_v": float(math.sqrt(res.statistic / total)),
            "cramers_v_corrected": bergsma_v(float(res.statistic), int(total), 2, len(keys)),
            "low_expected": float((res.expected_freq < 5).mean())}


def bergsma_v(chi2: float, n: int, rows: int, cols: int) -> float:
    """Bias-corrected Cramér's V (Bergsma, "A bias-correction for Cramér's V and Tschuprow's T", 2013)."""
    if n < 2:
        return 0.0
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    r = rows - (rows - 1) ** 2 / (n - 1)
    c = cols - (cols - 1) ** 2 / (n - 1)
    denom = min(r - 1, c - 1)
    return float(min(1.0, math.sqrt(phi2 / denom))) if denom > 0 else 0.0


@metric("surface/label-jsd",
        needs=("labels", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        size_dependent=True,
        expect={"class-drop": "+", "mode-collapse": "+", "shuffled-words": "0", "truncation": "0", "topic-drift": "0"},
        identity=Identity(0, 1e-09, 0, "null-999:jsd",
                 "0 for identical label mixes; two samples: below the 99.9% point of its permutation null"),
        range="[0, 1] bits",
        resampler="label_jsd_resampler")
def label_jsd(ctx) -> Score:
    """Label-distribution divergence: Jensen-Shannon divergence (bits) from the reference's label mix; lower is closer.

    Range [0, 1]: 0 for identical label proportions, 1 when the two share no label. Taken over the
    union of labels, so labels that one side lacks count fully; details list them and the chi-square
    test of homogeneity (statistic, p-value, Cramér's V; see ``surface/label-chi2``). With few rows per
    label sampling noise alone gives a positive value (two random halves of banking77, 77 intents:
    0.13 at 300 rows each, 0.03 at 1,000), so compare at one ``--sample-size``. Lin, "Divergence Measures
    Based on the Shannon Entropy", IEEE Trans. Inf. Theory 1991.
    """
    cand, ref = _label_counts(ctx)
    keys, c, r = aligned_counts(cand, ref)
    return Score(jsd_bits(c, r), None, {
        "labels": len(keys),
        "missing_in_reference": sorted(map(str, set(cand) - set(ref))),
        "missing_in_candidate": sorted(map(str, set(ref) - set(cand))),
        "chi2": label_chi2(cand, ref)})


@metric("surface/label-chi2",
        needs=("labels", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        expect={"class-drop": "+", "mode-collapse": "+", "shuffled-words": "0", "truncation": "0", "topic-drift": "0"},
        identity=Identity(0, 1e-09, 0, "null-999:v",
                 "bias-corrected Cramér's V: 0; two samples: below the 99.9% point of its permutation null"),
        resampler="label_chi2_resampler")
def label_chi2_v(ctx) -> Score:
    """Label-mix difference as bias-corrected Cramér's V of a chi-square test against the reference; lower is closer.

    Range [0, 1]: 0 when the label proportions match (up to sampling noise), near 1 when no label is
    shared. The test is ``scipy.stats.chi2_contingency`` on the 2 x L table of candidate and reference
    counts over the union of labels (homogeneity: both are samples), without Yates correction. The
    value is Bergsma's bias-corrected V (2013): the plain V = sqrt(chi2 / N), also in details, is
    inflated when rows per label are few. Details also hold the statistic, p-value, degrees of freedom
    and the share of cells with expected count below 5 (where the p-value is only approximate). Unlike
    the p-value, V does not grow with the number of rows. Cramér, "Mathematical Methods of Statistics",
    1946; Bergsma, J. Korean Statistical Society 2013.
    """
    cand, ref = _label_counts(ctx)
    t = label_chi2(cand, ref)
    return Score(t["cramers_v_corrected"], None, {k: v for k, v in t.items() if k != "cramers_v_corrected"})


def _lengths(ctx):
    """Words per row: ``[len(t) for t in ctx.tokens]``, from the shared integer token ids (no token lists)."""
    from harness.metrics.direct.lexical import row_lengths

    return row_lengths(ctx)


def word_counts(ctx) -> Counter:
    """Word frequencies, in first-occurrence order: equal to ``ctx.ngram_counts(1)``, counted on the shared
    integer token ids (:func:`harness.metrics.direct.lexical.token_ids`) and cached on the Context."""
    from harness.metrics.direct.lexical import ngram_count_array, token_ids

    return ctx.memo(("surface.word-counts",),
                    lambda: Counter(dict(zip(token_ids(ctx)[2], ngram_count_array(ctx, 1).tolist()))))


def _length_pair(ctx):
    a, b = _lengths(ctx), _lengths(ctx.reference)
    if len(a) == 0 or len(b) == 0:
        raise MetricSkipped("no rows")
    return a, b


@metric("surface/length-ks",
        needs=("texts", "reference"),
        size_dependent=True,
        higher_is_better=False,
        bounds=(0, 1),
        expect={"truncation": "+", "length-shift": "+", "near-dup": "0", "label-noise": "0", "shuffled-words": "0"},
        identity=Identity(0, 1e-09, 0, "null-999:ks",
                 "0 for one distribution; two samples: below the 99.9% point of its permutation null"),
        resampler="length_ks_resampler")
def length_ks(ctx) -> Score:
    """Length mismatch: two-sample Kolmogorov-Smirnov statistic of words per row against the reference; lower is closer.

    Range [0, 1]: the largest gap between the two cumulative length distributions (0 = same
    distribution). Details: the two-sided p-value (``scipy.stats.ks_2samp``; lengths are integers, so
    ties make it conservative) and both means and medians. Kolmogorov 1933; Smirnov 1948.
    """
    import numpy as np
    from scipy.stats import ks_2samp

    a, b = _length_pair(ctx)
    res = ks_2samp(a, b)
    return Score(float(res.statistic), None, {
        "p_value": float(res.pvalue), "mean": float(a.mean()), "reference_mean": float(b.mean()),
        "median": float(np.median(a)), "reference_median": float(np.median(b))})


@metric("surface/length-wasserstein",
        needs=("texts", "reference"),
        size_dependent=True,
        higher_is_better=False,
        bounds=(0, INF),
        expect={"truncation": "+", "length-shift": "+", "near-dup": "0", "label-noise": "0", "shuffled-words": "0"},
        identity=Identity(0, 1e-09, 0, "null-999:w1",
                 "0 words; two samples: below the 99.9% point of its permutation null"),
        range="[0, ∞) words",
        resampler="length_wasserstein_resampler")
def length_wasserstein(ctx) -> Score:
    """Length mismatch in words: Wasserstein-1 distance between row-length distributions of candidate and reference; lower is closer.

    Range [0, ∞) words: how many words each row would have to gain or lose, on average, to turn one
    length distribution into the other (``scipy.stats.wasserstein_distance``). Unlike the KS statistic it
    says how far apart the lengths are, not only whether they differ. Details: the signed difference of
    means (candidate - reference). Vaserstein 1969; Villani, "Optimal Transport", 2009.
    """
    from scipy.stats import wasserstein_distance

    a, b = _length_pair(ctx)
    return Score(float(wasserstein_distance(a, b)), None, {"mean_difference": float(a.mean() - b.mean())})


@metric("surface/vocab-jsd",
        needs=("texts", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        size_dependent=True,
        expect={"topic-drift": "+", "mode-collapse": "+", "class-drop": "+", "label-noise": "0", "shuffled-words": "0"},
        limits={"mode-collapse": MODE_COLLAPSE_BBC + " Topical neighbours keep the reference's word mix."},
        identity=Identity(0, 1e-09, 0, 0.3,
                 "0 bits; rare words make two samples differ (size-dependent)"),
        range="[0, 1] bits",
        resampler="vocab_jsd_resampler")
def vocab_jsd(ctx) -> Score:
    """Vocabulary divergence: Jensen-Shannon divergence (bits) between candidate and reference word-frequency distributions; lower is closer.

    Range [0, 1]: 0 for identical unigram frequencies, 1 when no word is shared. Rare words are seen
    by chance, so the value shrinks as both corpora grow and two samples of one corpus are not at 0:
    compare at one ``--sample-size``. Details: vocabulary sizes and how many types the two share.
    Lin 1991; applied to word frequencies by e.g. Gerlach, Font-Clos & Altmann, "Similarity of Symbol
    Frequency Distributions with Heavy Tails", PRX 2016.
    """
    cand, ref = word_counts(ctx), word_counts(ctx.reference)
    if not cand or not ref:
        raise MetricSkipped("no tokens")
    _, c, r = aligned_counts(cand, ref)
    return Score(jsd_bits(c, r), None, {"types": len(cand), "reference_types": len(ref),
                                        "shared_types": len(set(cand) & set(ref))})


@metric("surface/oov-rate",
        needs=("texts", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        size_dependent=True,
        expect={"near-dup": "+", "topic-drift": "+", "label-noise": "0", "shuffled-words": "0"},
        identity=Identity(0, 1e-09, 0, 0.15,
                 "0; rare words of one sample are new to the other (size-dependent)"),
        resampler="oov_rate_resampler")
def oov_rate(ctx) -> Score:
    """Out-of-vocabulary rate: share of candidate word tokens whose word never occurs in the reference; lower is closer.

    Range [0, 1]. Depends on both sizes (a larger reference knows more words): compare at one
    ``--sample-size``. A high rate means new topics, names or spellings the reference lacks, or
    generation artefacts (markup, other languages); details list the 20 most frequent such words.
    """
    cand, ref = word_counts(ctx), word_counts(ctx.reference)
    total = sum(cand.values())
    if total == 0:
        raise MetricSkipped("no tokens")
    oov = Counter({w: c for w, c in cand.items() if w not in ref})
    n_oov = sum(oov.values())
    return Score(n_oov / total, None, {"oov_tokens": n_oov, "tokens": total, "oov_types": len(oov),
                                       "top": [[w, c] for w, c in oov.most_common(20)]})


# ----------------------------------------------------------------------------- resamplers (compare)
# fn(pool_ctx, **args) -> harness.stats.sufficient.Resampler: per-row label codes, lengths and word
# counts of the pooled rows and of the reference, in one shared code space (harness/stats/sufficient.py).

def _label_codes(ctx):
    """(pooled rows' label codes, reference rows' label codes, number of labels) over the union of labels."""
    import numpy as np

    if ctx.reference is None or ctx.labels is None or ctx.reference.labels is None:
        return None
    a, r = list(ctx.labels), list(ctx.reference.labels)
    keys = {k: i for i, k in enumerate(sorted(set(a) | set(r), key=str))}
    return (np.array([keys[x] for x in a], dtype=np.int64), np.array([keys[x] for x in r], dtype=np.int64),
            len(keys))


def _label_tables(codes, rows, ref_rows):
    import numpy as np

    from harness.stats.sufficient import rows_of

    ca, cr, k = codes
    c = np.bincount(ca[rows_of(rows, len(ca))], minlength=k).astype(np.float64)
    r = np.bincount(cr[rows_of(ref_rows, len(cr))], minlength=k).astype(np.float64)
    if c.sum() == 0 or r.sum() == 0:
        raise MetricSkipped("no labels")
    keep = (c + r) > 0
    return c[keep], r[keep]


def label_jsd_resampler(ctx):
    """Label JSD on a subset: label counts of its rows and of the reference rows."""
    from harness.stats.sufficient import Resampler

    codes = _label_codes(ctx)
    if codes is None:
        return None
    return Resampler(lambda rows, ref_rows=None, test_rows=None: jsd_bits(*_label_tables(codes, rows, ref_rows)),
                     "per-row label codes", cheap=True)


def label_chi2_resampler(ctx):
    """Bias-corrected Cramér's V on a subset: the 2 x L table from per-row label codes."""
    import numpy as np
    from scipy.stats import chi2_contingency

    from harness.stats.sufficient import Resampler

    codes = _label_codes(ctx)
    if codes is None:
        return None

    def value(rows, ref_rows=None, test_rows=None):
        c, r = _label_tables(codes, rows, ref_rows)
        if len(c) < 2:
            return 0.0
        res = chi2_contingency(np.vstack([c, r]), correction=False)
        return bergsma_v(float(res.statistic), int(c.sum() + r.sum()), 2, len(c))

    return Resampler(value, "per-row label codes", cheap=True)


def _length_resampler(ctx, fn):
    from harness.stats.sufficient import Resampler, rows_of

    if ctx.reference is None:
        return None
    a, b = _lengths(ctx), _lengths(ctx.reference)

    def value(rows, ref_rows=None, test_rows=None):
        x, y = a[rows_of(rows, len(a))], b[rows_of(ref_rows, len(b))]
        if len(x) == 0 or len(y) == 0:
            raise MetricSkipped("no rows")
        return fn(x, y)

    return Resampler(value, "per-row word counts", cheap=True)


def length_ks_resampler(ctx):
    """Length KS on a subset: the per-row word counts of its rows and of the reference rows. Lengths are
    whole words, so both empirical CDFs are cumulative counts over the word counts (the same fractions
    ``ks_2samp`` takes at the pooled points; scipy itself beyond 10,000 words a row)."""
    import numpy as np
    from scipy.stats import ks_2samp

    def ks(x, y):
        top = int(max(x.max(), y.max()))
        if top > 10_000:
            return float(ks_2samp(x, y).statistic)
        cx = np.cumsum(np.bincount(x.astype(np.int64), minlength=top + 1)) / len(x)
        cy = np.cumsum(np.bincount(y.astype(np.int64), minlength=top + 1)) / len(y)
        return float(np.abs(cx - cy).max())

    return _length_resampler(ctx, ks)


def length_wasserstein_resampler(ctx):
    """Length Wasserstein-1 on a subset: the per-row word counts of its rows and of the reference rows."""
    from scipy.stats import wasserstein_distance

    return _length_resampler(ctx, lambda x, y: float(wasserstein_distance(x, y)))


def _word_tables(ctx):
    """Row x word counts of the pooled rows and of the reference, over one shared word index."""
    from harness.metrics.direct.lexical import ngram_row_counts, token_ids
    from harness.stats.sufficient import Counts

    if ctx.reference is None:
        return None
    out = []
    index: dict = {}
    for c in (ctx, ctx.reference):
        _, _, vocab = token_ids(c)
        counts = ngram_row_counts(c, 1)  # columns: unigram dense ids, in sorted token-id order
        import numpy as np

        ids = np.unique(token_ids(c)[0])  # the token ids present, sorted: column j is token ids[j]
        joint = np.array([index.setdefault(vocab[t], len(index)) for t in ids.tolist()], dtype=np.int64)
        out.append((counts, joint))
    k = len(index)
    (pc, pj), (rc, rj) = out
    return (Counts(pc.row, pj[pc.col], pc.count, pc.n_rows, k), Counts(rc.row, rj[rc.col], rc.count, rc.n_rows, k))


def vocab_jsd_resampler(ctx):
    """Vocabulary JSD on a subset: word counts of its rows and of the reference rows (shared word index)."""
    from harness.stats.sufficient import Resampler

    tables = _word_tables(ctx)
    if tables is None:
        return None
    pool, ref = tables

    def value(rows, ref_rows=None, test_rows=None):
        c, r = pool.sums(rows), ref.sums(ref_rows)
        if c.sum() == 0 or r.sum() == 0:
            raise MetricSkipped("no tokens")
        return jsd_bits(c, r)

    return Resampler(value, "row x word counts", cheap=True)


def oov_rate_resampler(ctx):
    """OOV rate on a subset: word counts of its rows against the words of the reference rows."""
    from harness.stats.sufficient import Resampler

    tables = _word_tables(ctx)
    if tables is None:
        return None
    pool, ref = tables

    def value(rows, ref_rows=None, test_rows=None):
        c = pool.sums(rows)
        total = c.sum()
        if total == 0:
            raise MetricSkipped("no tokens")
        return float(c[ref.sums(ref_rows) == 0].sum() / total)

    return Resampler(value, "row x word counts", cheap=True)
