"""Surface divergences against direct scipy calls and brute force, on real data."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance
from scipy.stats.contingency import association

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.direct.surface import bergsma_v, jsd_bits
from harness.run.runner import applicable
from harness.types import Corpus
from tests.conftest import shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"
GPT_ONLY_INTENTS = ["calories", "ingredients_list", "nutrition_info", "recipe", "whisper_mode"]


def words(text):
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text.lower())


def pair(cand: Corpus, ref: Corpus) -> Context:
    return Context(cand, reference=Context(ref))


def rows_of(c: Corpus, idx, name):
    idx = np.sort(idx)
    return Corpus(name, name, c.kind, tuple(c.texts[i] for i in idx), labels=tuple(c.labels[i] for i in idx))


@pytest.fixture(scope="module")
def clinc():
    gpt = load_corpus(str(shared(f"{CLINC}/gpt.jsonl")))
    orig = load_corpus(str(shared(f"{CLINC}/orig_train.jsonl")))
    return pair(gpt, orig)


@pytest.fixture(scope="module")
def halves():
    """Two disjoint random 1,000-row samples of banking77 train: the same distribution."""
    bank = load_corpus(str(shared("banking77_real/train.jsonl")))
    idx = np.random.default_rng(0).permutation(len(bank))
    return pair(rows_of(bank, idx[:1000], "h1"), rows_of(bank, idx[1000:2000], "h2"))


@pytest.fixture(scope="module")
def different():
    """ag_news test (news, 4 topics) against banking77 train (banking questions, 77 intents)."""
    ag = load_corpus(str(shared("ag_news_real/test.jsonl"))).subsample(1000, 0)
    bank = load_corpus(str(shared("banking77_real/train.jsonl"))).subsample(1000, 1)
    return pair(ag, bank)


# ---------------------------------------------------------------- Jensen-Shannon

def test_jsd_is_scipys_distance_squared():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p, q = rng.integers(0, 6, size=12).astype(float), rng.integers(0, 6, size=12).astype(float)
        p[0] += 1
        q[1] += 1
        assert jsd_bits(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    # scipy's value is the *distance*: for a divergence of 0.25 it returns 0.5
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    assert jsd_bits(p, q) == pytest.approx(0.5)
    assert jensenshannon(p, q, base=2) == pytest.approx(math.sqrt(0.5))
    assert jsd_bits([3, 1], [3, 1]) == 0.0 and jsd_bits([1, 0], [0, 1]) == 1.0


def test_label_jsd_on_clinc_lists_intents_missing_from_reference(clinc):
    s = metrics.get("surface/label-jsd")(clinc)
    assert s.details["missing_in_reference"] == GPT_ONLY_INTENTS
    assert s.details["missing_in_candidate"] == []
    c, r = Counter(clinc.labels), Counter(clinc.reference.labels)
    keys = sorted(set(c) | set(r))
    want = jensenshannon([c[k] for k in keys], [r[k] for k in keys], base=2) ** 2
    assert s.value == pytest.approx(want, abs=1e-12)
    assert s.details["labels"] == 40


def test_label_chi2_against_scipy(clinc):
    c, r = Counter(clinc.labels), Counter(clinc.reference.labels)
    keys = sorted(set(c) | set(r))
    table = np.array([[c[k] for k in keys], [r[k] for k in keys]])
    res = chi2_contingency(table, correction=False)
    s = metrics.get("surface/label-chi2")(clinc)
    assert s.details["statistic"] == pytest.approx(res.statistic)
    assert s.details["p_value"] == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
    assert s.details["dof"] == len(keys) - 1
    assert s.details["cramers_v"] == pytest.approx(association(table, method="cramer", correction=False))
    # Bergsma 2013, written out: phi2+ = max(0, phi2 - (k-1)(r-1)/(n-1)), k~ = k - (k-1)^2/(n-1)
    n, k = table.sum(), len(keys)
    phi2 = max(0.0, res.statistic / n - (k - 1) / (n - 1))
    denom = min(k - (k - 1) ** 2 / (n - 1) - 1, 2 - 1 / (n - 1) - 1)
    assert s.value == pytest.approx(math.sqrt(phi2 / denom))
    assert 0 < s.value < s.details["cramers_v"]
    assert metrics.get("surface/label-jsd")(clinc).details["chi2"]["statistic"] == pytest.approx(res.statistic)


def test_bergsma_edge_cases():
    assert bergsma_v(0.0, 100, 2, 5) == 0.0
    assert 0.9 < bergsma_v(1000.0, 1000, 2, 4) <= 1.0
    one = pair(Corpus("a", "a", "classification", ("x", "y"), labels=("l", "l")),
               Corpus("b", "b", "classification", ("z",), labels=("l",)))
    s = metrics.get("surface/label-chi2")(one)
    assert s.value == 0.0 and s.details["p_value"] == 1.0


# ---------------------------------------------------------------- lengths

def test_length_ks_and_wasserstein_against_scipy(clinc):
    a = np.array([len(words(t)) for t in clinc.texts], dtype=float)
    b = np.array([len(words(t)) for t in clinc.reference.texts], dtype=float)
    ks = metrics.get("surface/length-ks")(clinc)
    res = ks_2samp(a, b)
    assert ks.value == pytest.approx(res.statistic, abs=1e-12)
    assert ks.details["p_value"] == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
    assert ks.details["mean"] == pytest.approx(a.mean()) and ks.details["reference_mean"] == pytest.approx(b.mean())
    w = metrics.get("surface/length-wasserstein")(clinc)
    assert w.value == pytest.approx(wasserstein_distance(a, b), abs=1e-12)
    assert w.details["mean_difference"] == pytest.approx(a.mean() - b.mean())
    assert ks.value > 0.2 and w.value > 2  # ChatGPT paraphrases run ~3 words longer than the crowd's


# ---------------------------------------------------------------- vocabulary

def test_vocab_jsd_and_oov_brute_force(clinc):
    c = Counter(w for t in clinc.texts for w in words(t))
    r = Counter(w for t in clinc.reference.texts for w in words(t))
    keys = sorted(set(c) | set(r))
    want = jensenshannon([c[k] for k in keys], [r[k] for k in keys], base=2) ** 2
    v = metrics.get("surface/vocab-jsd")(clinc)
    assert v.value == pytest.approx(want, abs=1e-10)
    assert v.details["shared_types"] == len(set(c) & set(r))
    o = metrics.get("surface/oov-rate")(clinc)
    oov = {w: n for w, n in c.items() if w not in r}
    assert o.value == pytest.approx(sum(oov.values()) / sum(c.values()), abs=1e-12)
    assert o.details["oov_types"] == len(oov) and len(o.details["top"]) == 20
    top_counts = sorted(oov.values(), reverse=True)[:20]
    assert [n for _, n in o.details["top"]] == top_counts
    assert all(w not in r for w, _ in o.details["top"])


# ---------------------------------------------------------------- real data: same vs different source

SURFACE = ["surface/label-jsd", "surface/label-chi2", "surface/length-ks", "surface/length-wasserstein",
           "surface/vocab-jsd", "surface/oov-rate"]


def test_same_source_is_close_and_different_source_is_far(halves, different):
    for m in SURFACE:
        json.dumps(metrics.get(m)(different).details, allow_nan=False)  # details are plain JSON
    near = {m: metrics.get(m)(halves).value for m in SURFACE}
    far = {m: metrics.get(m)(different).value for m in SURFACE}
    assert near["surface/label-jsd"] < 0.06 and far["surface/label-jsd"] == 1.0  # no shared label
    assert near["surface/label-chi2"] < 0.1 and far["surface/label-chi2"] > 0.9
    assert near["surface/length-ks"] < 0.08 and far["surface/length-ks"] > 0.7
    assert near["surface/length-wasserstein"] < 1.5 and far["surface/length-wasserstein"] > 15
    assert near["surface/vocab-jsd"] < 0.1 and far["surface/vocab-jsd"] > 0.4
    assert near["surface/oov-rate"] < 0.06 and far["surface/oov-rate"] > 0.4
    # the two halves do not differ significantly
    assert metrics.get("surface/length-ks")(halves).details["p_value"] > 0.05
    assert metrics.get("surface/label-chi2")(halves).details["p_value"] > 0.05


# ---------------------------------------------------------------- applicability and skips

def test_needs_and_skips():
    texts = Corpus("t", "t", "text", ("a b", "c d"))
    labelled = Corpus("l", "l", "classification", ("a b", "c d"), labels=("x", "y"))
    for name in SURFACE:
        assert applicable(metrics.get(name), labelled, None) == "needs --reference"
        assert metrics.get(name).info.higher_is_better is False
        assert metrics.get(name).info.summary.endswith("lower is closer.")
    assert applicable(metrics.get("surface/label-jsd"), labelled, texts) == "needs a labelled reference"
    assert applicable(metrics.get("surface/vocab-jsd"), labelled, texts) is None
    empty = Corpus("e", "e", "text", ("...", "!!"))
    with pytest.raises(MetricSkipped):
        metrics.get("surface/oov-rate")(pair(empty, texts))
    with pytest.raises(MetricSkipped):
        metrics.get("surface/vocab-jsd")(pair(texts, empty))
