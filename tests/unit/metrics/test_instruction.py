"""Instruction-faithfulness metrics on real Alpaca / Self-Instruct rows, with planted defects recovered."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.direct import instruction as I
from harness.types import Corpus
from tests.conftest import FakeEmbedder, read_jsonl, shared

GPT4 = "alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl"
DAVINCI = "alpaca_davinci003_sample/alpaca_davinci003_sample_10k.jsonl"
LIBRE = "alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl"
SEED = "self_instruct_seed_tasks/seed_tasks_flat.jsonl"
USER = "self_instruct_user_oriented_252/human_reference.jsonl"


def instr_corpus(rows, name="x") -> Corpus:
    ins = tuple(r["instruction"] for r in rows)
    inp = tuple(r.get("input", "") for r in rows)
    out = tuple(r["output"] for r in rows)
    texts = tuple("\n\n".join(p for p in t if p.strip()) for t in zip(ins, inp, out))
    return Corpus(name, "test", "instruction", texts, None, {"instruction": ins, "input": inp, "output": out})


def score(name, ctx):
    s = metrics.get(name)(ctx)
    json.dumps(s.details)  # JSON-serialisable
    assert s.ci is None or s.ci[0] - 1e-12 <= s.value <= s.ci[1] + 1e-12
    for reason, rows in s.rows.items():
        assert reason == reason.lower() and " " not in reason
        assert rows == sorted(rows) and all(0 <= i < len(ctx.texts) for i in rows)
    return s


def flagged(s) -> set[int]:
    return {i for v in s.rows.values() for i in v}


@pytest.fixture(scope="module")
def gpt4_rows():
    return read_jsonl(shared(GPT4))


@pytest.fixture(scope="module")
def davinci_rows():
    return read_jsonl(shared(DAVINCI))


def find(rows, prefix):
    """Position of the one row whose output starts with ``prefix`` (rows are named by content, not index)."""
    hits = [i for i, r in enumerate(rows) if r["output"].startswith(prefix)]
    assert len(hits) >= 1, prefix
    return hits[0]


# ----------------------------------------------------------------------------- applicability

def test_skipped_on_non_instruction_data():
    c = Corpus("t", "x", "classification", ("a b", "c d", "e f"), ("p", "n", "p"))
    for name in ("instr/empty-rate", "instr/truncated-rate", "instr/refusal-rate", "instr/instruction-copy-rate",
                 "instr/grounding", "instr/relevance", "instr/relevance-low-rate"):
        with pytest.raises(MetricSkipped, match="applies to instruction data"):
            metrics.get(name)(Context(c, embedder=FakeEmbedder()))


def test_registered_with_docstrings():
    for name in metrics.names():
        if name.startswith(("instr/", "format/")):
            info = metrics.get(name).info
            assert info.summary and info.range and "better" in info.summary
            assert info.higher_is_better is (name in ("instr/relevance", "instr/grounding"))


# ----------------------------------------------------------------------------- empty outputs

def test_empty_outputs_in_real_files_match_a_raw_scan(davinci_rows):
    """The davinci-003 sample's placeholder rows (7 <nooutput>, PROVENANCE.md, plus 2 <noinput>), found by position."""
    expected = [i for i, r in enumerate(davinci_rows) if r["output"].strip() in ("<nooutput>", "<noinput>")]
    assert sum(r["output"].strip() == "<nooutput>" for r in davinci_rows) == 7
    s = score("instr/empty-rate", Context(load_corpus(str(shared(DAVINCI)))))
    assert s.rows == {"no-output-marker": expected}
    assert s.value == pytest.approx(len(expected) / len(davinci_rows))
    libre = read_jsonl(shared(LIBRE))
    blank = [i for i, r in enumerate(libre) if not r["output"].strip().strip('"').strip()]
    s = score("instr/empty-rate", Context(load_corpus(str(shared(LIBRE)))))
    assert s.rows["empty-output"] == blank and len(blank) == 37  # 34 blank + 3 '"""'


def test_planted_empty_outputs_recovered(gpt4_rows):
    rows = [dict(r) for r in gpt4_rows[:200]]
    plant = {7: "", 50: "   \n", 99: '"""', 150: "<nooutput>", 151: ' "<No Output>" '}
    for i, o in plant.items():
        rows[i]["output"] = o
    s = score("instr/empty-rate", Context(instr_corpus(rows)))
    assert s.rows == {"empty-output": [7, 50, 99], "no-output-marker": [150, 151]}
    assert s.details["count"] == 5 and s.value == pytest.approx(5 / 200)


# ----------------------------------------------------------------------------- refusals

def test_refusals_on_real_gpt4_rows(gpt4_rows):
    s = score("instr/refusal-rate", Context(instr_corpus(gpt4_rows)))
    refusals = [find(gpt4_rows, p) for p in ("I am sorry, but as an AI language model",
                                              "I'm sorry, but I don't have access to external articles",
                                              "I'm sorry, I cannot retrieve that information",
                                              "Unfortunately, I cannot determine the angle")]
    assert set(refusals) <= set(s.rows["refusal"])
    assert find(gpt4_rows, "As an AI, I don't have a physical house") in s.rows["ai-boilerplate"]
    # content apologies and quoted "I cannot" are not refusals
    for prefix in ("Customer: Hi, I recently purchased", "The appropriate punctuation to end that sentence"):
        assert find(gpt4_rows, prefix) not in flagged(s)
    assert 25 <= s.details["count"] <= 45  # 35 at the time of writing: 3.5% of GPT-4's answers


def test_refusal_false_positives_on_davinci(davinci_rows):
    for prefix in ("I can't get enough of The Shawshank", "I'm sorry to hear you're not satisfied",
                   "I can't repudiate my fears", "I apologize for not making it into work"):
        assert I.refusal_reasons(davinci_rows[find(davinci_rows, prefix)]["output"]) == []
    assert I.refusal_reasons(davinci_rows[find(davinci_rows, "As a large language model, I am unable")]["output"]) \
        == ["ai-boilerplate", "refusal"]


def test_planted_refusals_recovered_and_human_sets_clean(gpt4_rows):
    clean = [r for r in gpt4_rows if not I.refusal_reasons(r["output"])][:120]
    rows = [dict(r) for r in clean]
    rows[3]["output"] = "I'm sorry, but I cannot browse the internet to find that article."
    rows[40]["output"] = "As an AI language model, I do not have personal opinions. " + rows[40]["output"]
    rows[77]["output"] = "I don't have access to real-time stock prices."
    s = score("instr/refusal-rate", Context(instr_corpus(rows)))
    assert s.rows == {"refusal": [3, 77], "ai-boilerplate": [40]}
    for path in (SEED, USER):  # human-written: one designed refusal in the seed tasks (an SSN request)
        s = score("instr/refusal-rate", Context(load_corpus(str(shared(path)))))
        assert s.details["count"] <= 1


# ----------------------------------------------------------------------------- truncation

def test_real_gpt4_truncations_found(gpt4_rows):
    """The seven GPT-4 outputs cut by a length cap (read by eye) and nothing else."""
    cut = sorted(find(gpt4_rows, p) for p in (
        "An algorithm for predicting house prices in a given city", "Here is the multiplication table for numbers 2",
        "A linked list is a linear collection of data elements", "The Resplendent Quetzal: A Retrospective",
        "Eating organic food has become a popular trend", "The timeline of important events leading up to World War II",
        "**Article 1: What is Cryptocurrency?**"))
    s = score("instr/truncated-rate", Context(instr_corpus(gpt4_rows)))
    assert s.rows == {"truncated": cut}


def test_alpaca_cut_years_found(davinci_rows):
    """Stanford Alpaca's stop sequence cut years to '20' ('... in 20')."""
    for prefix in ("Jeff Bezos had the most successful tenure", "The most successful marriage proposal in history"):
        assert I.truncation_signal(davinci_rows[find(davinci_rows, prefix)]["output"]) == "cut-year"


def test_planted_truncations_recovered(gpt4_rows):
    clean = [r for r in gpt4_rows if I.truncation_signal(r["output"]) is None]
    rows = [dict(r) for r in clean[:150]]
    long_prose = next(i for i, r in enumerate(rows) if len(r["output"].split()) > 200
                      and "```" not in r["output"] and max(len(p.split()) for p in r["output"].split("\n\n")) > 60)
    paragraph = max(rows[long_prose]["output"].split("\n\n"), key=lambda p: len(p.split()))
    start = rows[long_prose]["output"].index(paragraph)
    words = paragraph.split()
    rows[long_prose]["output"] = rows[long_prose]["output"][:start] + " ".join(words[:len(words) // 2]).rstrip(".,;:!?")
    rows[10]["output"] = "Here are five tips for healthy eating:"                    # alpaca-libre's first-line cut
    rows[20]["output"] = rows[20]["output"].rstrip(".") + ", and the"                # dangling words
    rows[30]["output"] = "Here is the code:\n\n```python\ndef f(x):\n    return x"  # unclosed fence
    rows[40]["output"] = "The company was founded in 20"                             # cut year
    s = score("instr/truncated-rate", Context(instr_corpus(rows)))
    assert s.rows == {"truncated": sorted([10, 20, 30, 40, long_prose])}
    assert s.details["by_signal"] == {"cut-at-length": 1, "dangling-punctuation": 1, "dangling-word": 1,
                                      "unclosed-code": 1, "cut-year": 1}


def test_legitimate_unpunctuated_outputs_not_truncated():
    for out in ("Paris", "The Art of Marketing: An Introduction to Creative Strategies", "1. Apples\n2. Pears",
                "SELECT * FROM users;", "Dear Ann,\n\nSee you Friday.\n\nSincerely,", "#travel #Wanderlust",
                "Name:\nEmail:\nCountry:", "https://www.example.com/", "The tree sways\nin the wind\nand sleeps",
                "Love is a journey 🌹", "x = 5, x = 10", "hat, sat, that", "the"):
        assert I.truncation_signal(out) is None, out
    for path in (SEED, USER):  # human-written outputs: none cut off
        s = score("instr/truncated-rate", Context(load_corpus(str(shared(path)))))
        assert s.value == 0.0


# ----------------------------------------------------------------------------- instruction copies

def test_planted_instruction_copies_recovered(gpt4_rows):
    rows = [dict(r) for r in gpt4_rows[:150]]
    assert score("instr/instruction-copy-rate", Context(instr_corpus(rows))).value == 0.0
    rows[5]["output"] = rows[5]["instruction"] + " " + rows[5]["output"]
    rows[60]["output"] = rows[60]["instruction"].upper()
    rows[61]["output"] = 'import math\n\n"""' + rows[61]["instruction"] + '"""\n\ndef solve():\n    pass'
    s = score("instr/instruction-copy-rate", Context(instr_corpus(rows)))
    assert s.rows == {"instruction-copy": [5, 60, 61]}
    assert s.details["by_kind"] == {"starts-with-instruction": 2, "instruction-sentence": 1}


def test_restated_answers_are_not_copies(davinci_rows):
    for prefix in ("The probability of rolling a 4 on a six-sided die is 1/6.",
                   "The name of the idea that humans are driven by a desire"):
        r = davinci_rows[find(davinci_rows, prefix)]
        assert I.copy_kind(r["instruction"], r["output"]) is None
    assert I.copy_kind("Generate an animated gif with an astronaut sailing in a spaceship",
                       "An animated gif with an astronaut sailing in a spaceship.") == "mostly-instruction"


# ----------------------------------------------------------------------------- grounding

def test_grounding_on_a_constructed_pair():
    rows = [
        {"instruction": "Summarise the text.", "input": "Paris has 2,140,526 inhabitants (2019).",
         "output": "In 2019 Paris had 2140526 people according to INSEE."},   # 2019, 2140526, Paris found; INSEE not
        {"instruction": "Name a city.", "input": "", "output": "Rome, founded in 753 BC by Romulus."},  # no input
        {"instruction": "Translate.", "input": "<noinput>", "output": "Berlin 1990."},  # placeholder input
        {"instruction": "Rewrite.", "input": "Ada Lovelace wrote notes.", "output": "Notes were written by Ada."},
    ]
    s = score("instr/grounding", Context(instr_corpus(rows)))
    # row 0: 2019, 2140526, Paris, INSEE -> 3/4 ; row 3: "Ada" -> 1/1 ("Notes" opens the sentence)
    assert s.details["rows_with_input"] == 2 and s.details["rows_checked"] == 2
    assert s.value == pytest.approx((3 / 4 + 1) / 2)
    assert s.details["pooled_share"] == pytest.approx(4 / 5)
    assert s.rows == {"ungrounded": []}
    rows[0]["output"] = "In 1850 Lyon had 9 people according to INSEE."  # nothing grounded, 4 tokens
    s = score("instr/grounding", Context(instr_corpus(rows)))
    assert s.rows == {"ungrounded": [0]} and s.value == pytest.approx((0 + 1) / 2)


def test_grounding_real_rows_copying_input_is_grounded(gpt4_rows):
    rows = [dict(r) for r in gpt4_rows if I.has_input(r["input"])][:150]
    base = score("instr/grounding", Context(instr_corpus(rows)))
    echo = [dict(r, output="Answer: " + r["input"]) for r in rows]  # outputs made of the input: all grounded
    s = score("instr/grounding", Context(instr_corpus(echo)))
    assert s.value == pytest.approx(1.0) and base.value < 0.8
    shuffled = [dict(r, output=rows[(k + 1) % len(rows)]["output"]) for k, r in enumerate(rows)]
    assert score("instr/grounding", Context(instr_corpus(shuffled))).value < base.value - 0.1


# ----------------------------------------------------------------------------- relevance

def test_relevance_baseline_is_the_exact_shuffled_mean():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(40, 8))
    Out = P + rng.normal(size=(40, 8))
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    Out /= np.linalg.norm(Out, axis=1, keepdims=True)
    own, base = I.relevance_parts(P, Out)
    S = P @ Out.T
    off = ~np.eye(40, dtype=bool)
    assert base.mean() == pytest.approx(S[off].mean(), rel=1e-12)  # brute force over all i != j
    assert own == pytest.approx(np.diag(S))
    # per-row baseline: row i's prompt against other outputs and its output against other prompts
    i = 7
    assert base[i] == pytest.approx((S[i, off[i]].sum() + S[off[:, i], i].sum()) / 78)


def test_relevance_drops_when_outputs_are_shuffled(gpt4_rows):
    rows = [dict(r) for r in gpt4_rows[:300]]
    emb = FakeEmbedder(dim=256)
    good = Context(instr_corpus(rows), embedder=emb)
    rel, low = score("instr/relevance", good), score("instr/relevance-low-rate", good)
    perm = random.Random(1).sample(range(300), 300)
    bad_rows = [dict(r, output=rows[perm[k]]["output"]) for k, r in enumerate(rows)]
    bad = Context(instr_corpus(bad_rows), embedder=emb)
    rel_b, low_b = score("instr/relevance", bad), score("instr/relevance-low-rate", bad)
    assert rel.value > 0.1 and rel.ci[0] > 0.05
    assert abs(rel_b.value) < 0.03 and rel_b.ci[1] < rel.ci[0]
    # bag-of-words vectors: own pairs share words; shuffled ones sit at the random level (≈ 0.95 flagged)
    assert low_b.value > 0.85 and low.value < low_b.value - 0.2
    assert rel.details["own_mean"] - rel.details["shuffled_mean"] == pytest.approx(rel.value, abs=1e-4)
    # planted irrelevant outputs are flagged
    planted = [dict(r) for r in rows]
    for k in (11, 222):
        planted[k]["output"] = rows[(k + 150) % 300]["output"]
    s = score("instr/relevance-low-rate", Context(instr_corpus(planted), embedder=emb))
    assert {11, 222} <= set(s.rows["irrelevant"])


def test_relevance_sampled_threshold_matches_exact(gpt4_rows):
    rows = gpt4_rows[:200]
    ctx = Context(instr_corpus(rows), embedder=FakeEmbedder(dim=256), seed=3)
    exact = I.relevance_low_rate(ctx, max_pairs=10**9)
    sampled = I.relevance_low_rate(ctx, max_pairs=20_000)
    assert sampled.details["shuffled_pairs"] == 20_000
    assert sampled.details["threshold"] == pytest.approx(exact.details["threshold"], abs=0.02)


def test_relevance_leaves_empty_outputs_out(gpt4_rows):
    rows = [dict(r) for r in gpt4_rows[:50]]
    rows[4]["output"] = "<nooutput>"
    s = score("instr/relevance", Context(instr_corpus(rows), embedder=FakeEmbedder()))
    assert s.details["rows"] == 49 and s.details["left_out_empty"] == 1


@pytest.mark.slow
def test_relevance_with_minilm_on_real_sets(tmp_path):
    """Real embedder: Alpaca-GPT4 answers its prompts; shuffling them removes the relevance."""
    from harness.resources.embedder import Embedder, resolve_embedder

    emb = Embedder(resolve_embedder("default"), cache_dir=tmp_path, progress=False)
    c = load_corpus(str(shared(GPT4))).subsample(200, 0)
    s = score("instr/relevance", Context(c, embedder=emb))
    assert 0.4 < s.value < 0.8 and s.details["shuffled_mean"] < 0.15
    out = list(c.fields["output"])
    random.Random(0).shuffle(out)
    fields = dict(c.fields, output=tuple(out))
    shuffled = Corpus("shuffled", "x", "instruction", c.texts, None, fields)
    assert abs(score("instr/relevance", Context(shuffled, embedder=emb)).value) < 0.05


# ----------------------------------------------------------------------------- end to end

def test_runner_on_instruction_data_skips_label_metrics(tmp_path):
    from harness.run.runner import RunConfig, run

    ref = load_corpus(str(shared(SEED)), name="seed")
    cand = load_corpus(str(shared(GPT4)), name="gpt4").subsample(120, 0)
    specs = metrics.select(["instr", "semantic/aps", "perclass/vendi", "surface/label-jsd", "dup/exact-rate"])
    out = run([(ref, "reference"), (cand, "candidate")], ref, specs, tmp_path, RunConfig(progress=False),
              log=lambda m: None, embedder=FakeEmbedder())
    got = {(r.dataset, r.metric) for r in out.results}
    for m in ("instr/relevance", "instr/grounding", "instr/truncated-rate", "instr/refusal-rate"):
        assert ("gpt4", m) in got and ("seed", m) in got
    skipped = {(d, m): why for d, m, why in out.skipped}
    assert skipped[("gpt4", "semantic/aps")] == "needs labels"
    assert skipped[("gpt4", "surface/label-jsd")] == "needs labels"
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(out.results)
