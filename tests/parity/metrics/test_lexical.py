"""Lexical metrics checked against independent, brute-force computations on real data."""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter

import numpy as np
import pytest
import scipy.stats

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context
from harness.metrics.direct.lexical import mattr_of
from harness.types import Corpus
from tests.conftest import read_jsonl, shared


@pytest.fixture(scope="module")
def real():
    c = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl")))
    return c.subsample(1500, 0)


@pytest.fixture(scope="module")
def banking_sorted():
    """The first 1,500 rows of Banking77's training file, which is sorted by intent."""
    rows = load_corpus(str(shared("banking77_real/train.jsonl")))
    return Corpus("banking77-head", "x", "text", rows.texts[:1500])


def brute_tokens(text):
    # independent tokeniser: split on anything that is not a letter, digit or inner apostrophe
    out = []
    for w in re.split(r"[^0-9a-zà-ÿ'’]+", text.lower()):
        w = w.strip("'’")
        if w:
            out.append(w)
    return out


def test_tokeniser_agrees_with_brute_force(real):
    ctx = Context(real)
    for t, toks in zip(real.texts, ctx.tokens):
        assert toks == brute_tokens(t), t


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_distinct_n_brute_force(real, n):
    ctx = Context(real)
    grams, total = set(), 0
    for t in real.texts:
        w = brute_tokens(t)
        for i in range(len(w) - n + 1):
            grams.add(" ".join(w[i:i + n]))
            total += 1
    assert metrics.get(f"lexical/distinct-{n}")(ctx).value == pytest.approx(len(grams) / total, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_entropy_against_scipy(real, n):
    ctx = Context(real)
    c = Counter()
    for t in real.texts:
        w = brute_tokens(t)
        c.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    expected = scipy.stats.entropy(list(c.values()), base=2)
    assert metrics.get(f"lexical/entropy-{n}")(ctx).value == pytest.approx(expected, rel=1e-10)


def test_compression_ratio_direct_gzip(real):
    data = " ".join(real.texts).encode("utf-8")
    expected = len(data) / len(gzip.compress(data))  # default level 9
    assert metrics.get("lexical/compression-ratio")(Context(real)).value == pytest.approx(expected, rel=1e-12)


def test_compression_ratio_detects_repetition(real):
    rep = Corpus("rep", "x", "text", tuple(real.texts[:50]) * 30)
    spec = metrics.get("lexical/compression-ratio")
    assert spec(Context(rep)).value > 2 * spec(Context(real)).value


def naive_mattr(tokens, w):
    if len(tokens) <= w:
        return len(set(tokens)) / len(tokens)
    return float(np.mean([len(set(tokens[i:i + w])) / w for i in range(len(tokens) - w + 1)]))


@pytest.mark.parametrize("w", [1, 5, 50])
def test_mattr_naive(real, w):
    stream = [t for row in real.texts for t in brute_tokens(row)]
    assert mattr_of(stream, w) == pytest.approx(naive_mattr(stream, w), rel=1e-12)
    if w == 50:
        spec = metrics.get("lexical/mattr")
        assert spec.fn(Context(real), order="file").value == pytest.approx(naive_mattr(stream, 50), rel=1e-12)
        from harness.metrics.direct.lexical import hashed_order

        hashed = [t for i in hashed_order(real.texts) for t in brute_tokens(real.texts[i])]
        assert spec(Context(real)).value == pytest.approx(naive_mattr(hashed, 50), rel=1e-12)


def test_mattr_does_not_depend_on_the_file_order(banking_sorted):
    """Banking77's file is sorted by intent: in file order MATTR reads it as less varied than the same
    rows in any other order; the default (hashed) order gives one value for every order of the rows."""
    import random

    spec = metrics.get("lexical/mattr")
    texts = list(banking_sorted.texts)
    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    a = Corpus("sorted", "x", "text", tuple(texts))
    b = Corpus("shuffled", "x", "text", tuple(shuffled))
    assert spec(Context(a)).value == spec(Context(b)).value
    assert spec.fn(Context(a), order="file").value < spec.fn(Context(b), order="file").value - 0.03


def test_short_stream_mattr():
    assert mattr_of(["a", "b", "a"], 50) == pytest.approx(2 / 3)


def test_vocab_and_lengths(real):
    ctx = Context(real)
    toks = [brute_tokens(t) for t in real.texts]
    assert metrics.get("lexical/vocab-size")(ctx).value == len({w for r in toks for w in r})
    lens = np.array([len(r) for r in toks], float)
    m = metrics.get("length/mean-words")(ctx)
    assert m.value == pytest.approx(lens.mean())
    assert m.ci[0] < m.value < m.ci[1]
    s = metrics.get("length/std-words")(ctx)
    assert s.value == pytest.approx(lens.std(ddof=1))
    assert s.ci[0] < s.value < s.ci[1]


def test_bootstrap_interval_covers_the_truth():
    """The length interval is a real 95% interval: on resampled data it covers the mean ~95% of the time."""
    rng = np.random.default_rng(0)
    from harness.stats import bootstrap_ci

    hits = 0
    for k in range(200):
        x = rng.exponential(10.0, size=80)
        lo, hi = bootstrap_ci(x, seed=k, n_boot=400)
        hits += lo <= 10.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize("statistic", [None, "std"])
def test_grouped_bootstrap_has_the_bootstrap_distribution(statistic):
    """Beyond 100k rows, word counts resample as multinomial counts: the same interval as resampling the
    rows (within Monte Carlo error), and both match the textbook standard error."""
    from harness.stats import bootstrap_ci

    rows = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_train.jsonl"))
    lens = np.array([len(brute_tokens(r["text"])) for r in rows], float)
    x = np.random.default_rng(1).choice(lens, size=120_000)  # real lengths, 120k rows
    n = len(x)
    grouped = bootstrap_ci(x, statistic, n_boot=2000, seed=3)
    rows_ci = bootstrap_ci(x, statistic, n_boot=2000 if statistic is None else 300, seed=3,
                           grouped_from=10**9)
    if statistic is None:
        centre, se = x.mean(), x.std(ddof=1) / np.sqrt(n)
    else:
        centre = x.std(ddof=1)
        m4 = ((x - x.mean()) ** 4).mean()
        se = np.sqrt((m4 - centre ** 4) / n) / (2 * centre)  # delta method for the sd
    for lo, hi in (grouped, rows_ci):
        assert lo < centre < hi
        assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.12)
    assert grouped[0] == pytest.approx(rows_ci[0], abs=0.12 * (hi - lo))
    assert grouped[1] == pytest.approx(rows_ci[1], abs=0.12 * (hi - lo))
    assert bootstrap_ci(x[:5000], statistic, seed=3) == bootstrap_ci(x[:5000], statistic, seed=3, grouped_from=10**9)


def test_diversity_orders_real_datasets():
    """ChatGPT paraphrases are lexically more varied than the crowd's at equal size, as Cegin et al.
    (EMNLP 2023, "Higher Diversity and Comparable Model Robustness") report for this data."""
    gpt = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl"))).subsample(3000, 0)
    human = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/human.jsonl"))).subsample(3000, 0)
    d = metrics.get("lexical/distinct-2")
    assert d(Context(gpt)).value > d(Context(human)).value


def test_skips_when_no_ngrams():
    from harness.metrics.base import MetricSkipped

    c = Corpus("x", "x", "text", ("one", "two"))
    with pytest.raises(MetricSkipped):
        metrics.get("lexical/distinct-3")(Context(c))
    assert math.isclose(metrics.get("lexical/distinct-1")(Context(c)).value, 1.0)
