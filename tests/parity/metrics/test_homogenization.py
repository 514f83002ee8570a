"""Self-BLEU, homogenization (BLEU, ROUGE-L) and n-gram diversity against the published code on real rows.

References: nltk's ``sentence_bleu`` (Texygen's self-BLEU), the ``diversity`` 0.3.1 package's own functions
(loaded from their files by ``bench/versus_lexical.py``; its BLEU homogenization runs Hugging Face evaluate's
``bleu`` code, which cannot be loaded from the hub offline), rouge_score, sacrebleu's 13a tokenizer.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from harness import metrics
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.direct import homogenization as H
from harness.types import Corpus
from tests.conftest import ROOT, read_jsonl, shared

EDGE = ["", "Hi", "Hi", "hi there", "?!", "a b c d e", "a b c d e", "the cat sat on the mat",
        "the cat sat on a mat", "The CAT, sat: on the mat.", "x y", "x y z", "one two three four"]


@pytest.fixture(scope="module")
def gpt_rows():
    rows = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl"))
    texts = [r["text"] for r in rows]
    rng = np.random.default_rng(0)
    return [texts[i] for i in rng.permutation(len(texts))]


@pytest.fixture(scope="module")
def bench():
    if importlib.util.find_spec("diversity") is None:  # its __init__ needs spaCy: bench/ loads its files
        pytest.skip("pip install --no-deps diversity==0.3.1 (the bench's reference)")
    spec = importlib.util.spec_from_file_location("versus_lexical", ROOT / "bench" / "versus_lexical.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ctx_of(texts, seed=0):
    return Context(Corpus("t", "t", "text", tuple(texts)), seed=seed)


def score(name, texts, seed=0, **override):
    spec = metrics.get(name)
    return spec.fn(ctx_of(texts, seed), **{**spec.args, **override})


def nltk_self_bleu(rows, max_n=4):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    w = (1.0 / max_n,) * max_n
    return np.array([sentence_bleu(rows[:i] + rows[i + 1:], rows[i], w, smoothing_function=SmoothingFunction().method1)
                     for i in range(len(rows))], dtype=float)


# ----------------------------------------------------------------------------- tokenizers


def test_13a_tokenizer_equals_sacrebleu(gpt_rows):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    extra = ["a &amp; b &lt;c&gt; &quot;d&quot;", "line-\nbreak\nhere", "3.5-4, 1,000. e.g. U.S.", "x<skipped>y"]
    for t in gpt_rows[:2000] + extra + EDGE:
        assert H.tokenize_13a(t) == tok(t).split(), t


def test_rouge_tokenizer_equals_rouge_score(gpt_rows):
    from rouge_score.tokenizers import DefaultTokenizer

    tok = DefaultTokenizer(use_stemmer=False)
    for t in gpt_rows[:500] + EDGE + ["Café — naïve 9am_x"]:
        assert H.tokenize_rouge(t) == tok.tokenize(t), t


# ----------------------------------------------------------------------------- self-BLEU


def test_self_bleu_equals_nltk_per_row_on_real_rows(gpt_rows):
    rows = [H.tokenize_13a(t) for t in gpt_rows[:200]]
    rows += rows[:5]  # exact duplicates: a row whose largest n-gram count is shared
    got, ref = H.self_bleu_rows(rows), nltk_self_bleu(rows)
    assert np.max(np.abs(got - ref)) < 1e-9
    assert score("lexical/self-bleu", gpt_rows[:200] + gpt_rows[:5]).value == pytest.approx(ref.mean(), abs=1e-12)


@pytest.mark.parametrize("max_n", [1, 2, 4])
def test_self_bleu_edge_cases_equal_nltk(max_n):
    # empty rows, rows shorter than the n-gram order, repeated n-grams, ties in the closest reference length
    rows = [H.tokenize_13a(t) for t in EDGE] + [["a", "a", "a", "b"], ["a", "a", "b"], ["b", "a", "a", "a", "a"]]
    assert np.max(np.abs(H.self_bleu_rows(rows, max_n) - nltk_self_bleu(rows, max_n))) < 1e-12
    two = [["a", "b", "c"], ["a", "b", "c", "d"]]
    assert np.max(np.abs(H.self_bleu_rows(two) - nltk_self_bleu(two))) < 1e-12


def test_self_bleu_skips_a_single_row_and_rises_with_copies(gpt_rows):
    with pytest.raises(MetricSkipped):
        score("lexical/self-bleu", ["only one"])
    base = score("lexical/self-bleu", gpt_rows[:200]).value
    assert score("lexical/self-bleu", gpt_rows[:150] + gpt_rows[:50]).value > base
    assert score("lexical/self-bleu", ["the same text here"] * 5).value == pytest.approx(1.0)


# ----------------------------------------------------------------------------- homogenization


@pytest.fixture(scope="module")
def package_rougel(bench, gpt_rows):
    """The package's exact ROUGE-L homogenization of 150 real rows (11,175 pairs through rouge_score)."""
    return bench.theirs_homogenization(gpt_rows[:150], "rougel")


def test_homogenization_bleu_equals_the_package(bench, gpt_rows):
    texts = gpt_rows[:80]
    theirs = bench.theirs_homogenization(texts, "bleu")  # its unrounded value × (n − 1)
    got = score("lexical/homogenization-bleu", texts)
    assert got.value == pytest.approx(theirs, rel=1e-9) and got.ci is None
    # and per row, on edge cases (empty rows, rows shorter than 4 tokens, duplicates)
    ev = bench.EvaluateBleu()
    per_row = H.homogenization_bleu_rows([H.tokenize_13a(t) for t in EDGE])
    for i, t in enumerate(EDGE):
        others = [x for j, x in enumerate(EDGE) if j != i]
        assert per_row[i] == pytest.approx(ev.compute(others, [[t]] * len(others))["bleu"], abs=1e-12)


def test_homogenization_bleu_package_literal_value(bench, gpt_rows):
    """What the package itself prints: our value / (n − 1), rounded to 3 decimals."""
    texts = gpt_rows[:40]
    mod = bench.diversity_module("homogenization")
    del mod.round  # the package's own rounding
    mod.load = lambda name: bench.EvaluateBleu()
    printed = mod.homogenization_score(texts, measure="bleu", verbose=False)
    assert printed == round(score("lexical/homogenization-bleu", texts).value / 39, 3)


def test_homogenization_rougel_exact_equals_the_package(package_rougel, gpt_rows):
    got = score("lexical/homogenization-rougel", gpt_rows[:150])
    assert got.details["estimator"] == "exact" and got.ci is None
    assert got.value == pytest.approx(package_rougel, rel=1e-9)


def test_homogenization_rougel_estimator_interval_contains_the_package_value(package_rougel, gpt_rows):
    got = score("lexical/homogenization-rougel", gpt_rows[:150], max_work=0, pairs=3000)
    assert got.details["estimator"] == "sampled-pairs"
    lo, hi = got.ci
    assert lo <= package_rougel <= hi and hi - lo < 0.02
    assert abs(got.value - package_rougel) / package_rougel < 0.05
    again = score("lexical/homogenization-rougel", gpt_rows[:150], max_work=0, pairs=3000)
    assert again.value == got.value  # seeded
    assert score("lexical/homogenization-rougel", gpt_rows[:150], seed=1, max_work=0, pairs=3000).value != got.value


def test_homogenization_rougel_edge_cases_equal_rouge_score():
    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    n = len(EDGE)
    exact = sum(sc.score(EDGE[i], EDGE[j])["rougeL"].fmeasure for i in range(n) for j in range(n) if i != j)
    assert score("lexical/homogenization-rougel", EDGE).value == pytest.approx(exact / (n * (n - 1)), abs=1e-12)
    assert score("lexical/homogenization-rougel", ["?!", "..."]).value == 0.0  # no tokens: 0, not the package's 1
    assert score("lexical/homogenization-rougel", ["same words"] * 3).value == pytest.approx(1.0)


def test_rougel_blocks_cover_the_upper_triangle(gpt_rows):
    rows = [H.tokenize_rouge(t) for t in gpt_rows[:61]]
    whole = H.rougel_pair_sum(rows)
    assert H.rougel_pair_sum(rows, block_cells=61 * 7) == pytest.approx(whole, rel=1e-12)
    assert H.rougel_pair_sum(rows, block_cells=1) == pytest.approx(whole, rel=1e-12)


# ----------------------------------------------------------------------------- n-gram diversity


def test_ngram_diversity_equals_the_package(bench, gpt_rows):
    texts = gpt_rows[:3000] + ["  double  spaces ", "new\nline"]
    theirs = bench.theirs_ngram_diversity(texts)
    assert score("lexical/ngram-diversity", texts).value == pytest.approx(theirs, rel=1e-12)
    with pytest.raises(MetricSkipped):
        score("lexical/ngram-diversity", ["a b"])


def test_compression_ratio_is_within_a_percent_of_the_package(bench, gpt_rows):
    texts = gpt_rows[:1000]
    theirs = bench.theirs_compression(texts)  # gzip of gzip: a few bytes of header more
    assert score("lexical/compression-ratio", texts).value == pytest.approx(theirs, rel=0.01)


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name, higher, seeded, sized", [
    ("lexical/self-bleu", False, False, True),
    ("lexical/homogenization-bleu", False, False, True),
    ("lexical/homogenization-rougel", False, True, False),
    ("lexical/ngram-diversity", True, False, True),
])
def test_registered_with_meaning(name, higher, seeded, sized):
    from harness.analysis import validity as V

    info = metrics.get(name).info
    assert info.higher_is_better is higher and info.seeded is seeded and info.size_dependent is sized
    assert info.range and "diverse" in info.summary and V.declared(name)
    assert math.isfinite(score(name, EDGE).value)
