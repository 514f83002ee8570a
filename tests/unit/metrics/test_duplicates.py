"""Duplicate metrics against brute force, on real data with injected duplicates."""

from __future__ import annotations

import itertools
import random

import pytest

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context
from harness.metrics.direct.duplicates import near_duplicate_clusters, normalise
from harness.types import Corpus
from tests.conftest import shared


@pytest.fixture(scope="module")
def base():
    return load_corpus(str(shared("banking77_real/test.jsonl"))).subsample(400, 3)


def with_injected(base, seed=0):
    rng = random.Random(seed)
    texts = list(base.texts)
    # 20 exact copies (changed case/spacing), 20 near copies (one character changed), of distinct sources
    srcs = rng.sample(range(len(texts)), 40)
    for i in srcs[:20]:
        texts.append("  " + texts[i].upper() + " ")
    for i in srcs[20:]:
        t = texts[i]
        if len(t) > 60:
            j = rng.randrange(10, len(t) - 1)
            texts.append(t[:j] + "x" + t[j + 1:])
    return Corpus("inj", "x", "text", tuple(texts))


def test_exact_rate_brute_force(base):
    c = with_injected(base)
    norm = [normalise(t) for t in c.texts]
    expected = sum(1 for i, t in enumerate(norm) if t in norm[:i]) / len(norm)
    s = metrics.get("dup/exact-rate")(Context(c))
    assert s.value == pytest.approx(expected)
    assert s.value >= 20 / len(c)
    assert s.ci[0] <= s.value <= s.ci[1]


def char_shingles(t, k=5):
    s = normalise(t)
    return {s[i:i + k] for i in range(max(1, len(s) - k + 1))}


def brute_near_removable(texts, thr):
    sets = [char_shingles(t) for t in texts]
    parent = list(range(len(texts)))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in itertools.combinations(range(len(texts)), 2):
        a, b = sets[i], sets[j]
        if len(a & b) / len(a | b) >= thr:
            parent[find(j)] = find(i)
    return len(texts) - len({find(i) for i in range(len(texts))})


def test_near_rate_matches_all_pairs_brute_force(base):
    c = with_injected(base)
    s = metrics.get("dup/near-rate")(Context(c))
    expected = brute_near_removable(c.texts, 0.8)
    # LSH may miss a pair near the threshold, never invent one (all candidates are verified)
    assert s.value * len(c) <= expected
    assert s.value * len(c) >= expected - 2
    assert s.value >= metrics.get("dup/exact-rate")(Context(c)).value


def test_near_pairs_are_verified(base):
    c = with_injected(base)
    _, pairs = near_duplicate_clusters(c.texts, threshold=0.8)
    for i, j, jac in pairs:
        a, b = char_shingles(c.texts[i]), char_shingles(c.texts[j])
        assert jac >= 0.8
        assert len(a & b) / len(a | b) == pytest.approx(jac, abs=0.02)  # 32-bit hashes of shingles


def test_clean_data_has_few_duplicates(base):
    assert metrics.get("dup/exact-rate")(Context(base)).value < 0.02


def test_exact_duplicates_match_provenance_count():
    """PROVENANCE.md of the intent-paraphrase data counts 38 duplicates inside clinc150/gpt.jsonl."""
    c = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl")))
    s = metrics.get("dup/exact-rate")(Context(c))
    assert s.details["duplicates"] == 38
