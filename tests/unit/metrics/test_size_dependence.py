"""Size dependence is measured, not assumed: every metric's ``size_dependent`` declaration must agree with
what it does when the same data is evaluated at two sample sizes (``--sample-size``: candidate and reference
both sampled).

Protocol (seeded, so the verdicts are reproducible): for each of 5 seeds the runner evaluates the data at
N = 100 and N = 800 rows; a metric *moves* when the mean over seeds changes by more than 3 standard errors
of the difference and by more than 1% of its level, and is *flat* when it changes by less than 1 SE. A
metric that moves on any audit corpus must be declared size-dependent; one declared size-dependent must
not be flat on every corpus it was measured on. On real data: CLINC150 ChatGPT paraphrases against the
original training split; 1,500 of them with exact and near copies of 20% planted (duplicate rates need
something to find); four Banking77 intents (100 and 250 rows) for the per-class metrics; Alpaca-GPT4
instruction data (60 and 480 rows) for the instruction and format metrics; 2,000 ChatGPT paraphrases of
which a fifth are copies of real test rows for the contamination-aware utility metrics. The
opt-in metrics that need a model (fluency, the judge, tier-3 fine-tuning) are not run here.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import FakeEmbedder, shared

SMALL, LARGE, SEEDS = 100, 800, 5


def _verdict(a, b) -> tuple[str, str]:
    """'moves' (the mean changes by > 3 SE and > 1% of its level), 'flat' (< 1 SE) or 'unclear'."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b.mean() - a.mean()
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    level = (abs(a.mean()) + abs(b.mean())) / 2
    v = "moves" if abs(d) > 3 * se and abs(d) > 0.01 * level else "flat" if abs(d) <= se else "unclear"
    return v, f"{a.mean():.4g} -> {b.mean():.4g} (diff {d:+.3g}, SE {se:.2g})"


def _measure(candidate, reference, test, specs, tmp_path, small=SMALL, large=LARGE):
    from harness.run.runner import RunConfig, run

    emb = FakeEmbedder()
    vals: dict[str, dict[int, list[float]]] = {}
    for n in (small, large):
        for seed in range(SEEDS):
            out = run([(candidate, "candidate")], reference, specs, tmp_path / f"{n}-{seed}",
                      RunConfig(progress=False, seed=seed, sample_size=n), log=lambda m: None, embedder=emb,
                      test=test)
            for r in out.results:
                vals.setdefault(r.metric, {}).setdefault(n, []).append(r.value)
    return {m: v for m, v in vals.items() if len(v.get(small, [])) == SEEDS and len(v.get(large, [])) == SEEDS}


D = "intent_paraphrases_chatgpt_vs_crowd/clinc150/"


@pytest.fixture(scope="module")
def clinc(tmp_path_factory):
    from harness import metrics
    from harness.data.load import FieldMap, load_corpus

    gpt = load_corpus(str(shared(D + "gpt.jsonl")), FieldMap())
    ref = load_corpus(str(shared(D + "orig_train.jsonl")), FieldMap())
    test = load_corpus(str(shared(D + "orig_test.jsonl")), FieldMap()).subsample(400, 2)
    specs = [s for s in metrics.select(None) if not s.name.startswith(("format/", "instr/"))]
    # one training seed per utility fit: the number of seeds averaged inside the metric does not change how
    # its value moves with the number of rows, and it saves two thirds of the fits on a cold cache
    specs = [replace(s, args={**s.args, "seeds": 1}) if s.name.startswith("utility/") else s for s in specs]
    return _measure(gpt, ref, test, specs, tmp_path_factory.mktemp("clinc"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """1,500 ChatGPT paraphrases with exact and near copies of 20% of them: what duplicate rates see."""
    from harness import metrics
    from harness.analysis.validity import small_edit
    from harness.data.load import FieldMap, load_corpus
    from harness.types import Corpus

    gpt = load_corpus(str(shared(D + "gpt.jsonl")), FieldMap()).subsample(1500, 0)
    rng = np.random.default_rng(0)
    copies = rng.choice(len(gpt), size=len(gpt) // 5, replace=False)
    near = rng.choice(len(gpt), size=len(gpt) // 5, replace=False)
    texts = list(gpt.texts) + [gpt.texts[i] for i in copies] + [small_edit(gpt.texts[i], rng) for i in near]
    cand = Corpus("gpt+copies", "planted", "text", tuple(texts))
    specs = [s for s in metrics.select(None) if set(s.info.needs) == {"texts"}
             and not s.name.startswith(("format/", "instr/"))]
    return _measure(cand, None, None, specs, tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def banking4(tmp_path_factory):
    """Four Banking77 intents, split in two halves (candidate and reference): what per-class metrics need."""
    from harness import metrics
    from harness.data.load import FieldMap, load_corpus
    from harness.types import Corpus

    bank = load_corpus(str(shared("banking77_real/train.jsonl")), FieldMap())
    keep = sorted(set(bank.labels))[:4]
    idx = [i for i, lab in enumerate(bank.labels) if lab in keep]

    def part(name, rows):
        return Corpus(name, "banking77", bank.kind, tuple(bank.texts[i] for i in rows),
                      labels=tuple(bank.labels[i] for i in rows))

    specs = [s for s in metrics.select(None) if s.name.startswith("perclass/")]
    return _measure(part("a", idx[0::2]), part("b", idx[1::2]), None, specs, tmp_path_factory.mktemp("bank"),
                    small=100, large=250)


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    from harness import metrics
    from harness.data.load import FieldMap, load_corpus
    from harness.data.schema import parse_schema

    schema = parse_schema({"required": ["instruction", "output"], "length": {"output": {"max_words": 150}}}, "test")
    cand = load_corpus(str(shared("alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl")), FieldMap(), schema=schema)
    specs = metrics.select(["format", "instr"])
    return _measure(cand, None, None, specs, tmp_path_factory.mktemp("alpaca"), small=60, large=480)


def test_declared_size_dependence_matches_behaviour(clinc, planted, banking4, alpaca, contaminated):
    from harness import metrics

    verdicts: dict[str, list[tuple[str, str]]] = {}
    for corpus in (clinc, planted, banking4, alpaca, contaminated):
        for name, by in corpus.items():
            (_, a), (_, b) = sorted(by.items())
            verdicts.setdefault(name, []).append(_verdict(a, b))
    wrong = []
    for name, vs in verdicts.items():
        declared = metrics.info(name).size_dependent
        how = "; ".join(h for _, h in vs)
        if not declared and any(v == "moves" for v, _ in vs):
            wrong.append(f"{name}: declared size_dependent=False but it moves: {how}")
        if declared and all(v == "flat" for v, _ in vs):
            wrong.append(f"{name}: declared size_dependent=True but it is flat: {how}")
    assert not wrong, "declarations disagree with behaviour (fix size_dependent= in the @metric):\n" + "\n".join(wrong)
    # every metric that runs without a model was measured
    runnable = [n for n, i in metrics.declarations().items() if not i.opt_in]
    missing = [n for n in runnable if n not in verdicts]
    assert missing == [], f"not measured (does not apply to the audit data?): {missing}"


def test_issue_examples_are_size_dependent():
    from harness import metrics

    for name in ("dup/exact-rate", "dup/near-rate", "semantic/cluster-entropy", "lexical/distinct-1",
                 "lexical/distinct-2", "lexical/distinct-3", "lexical/distinct-4"):
        assert metrics.info(name).size_dependent, name


@pytest.fixture(scope="module")
def contaminated(tmp_path_factory):
    """CLINC150 ChatGPT paraphrases with a real test row, its words shuffled, in every fifth row (a near match
    for the bag-of-words test embedder, not an exact copy): the test rows a candidate contains are what the
    contamination-aware utility metrics split on."""
    from harness import metrics
    from harness.data.load import FieldMap, load_corpus
    from harness.types import Corpus

    gpt = load_corpus(str(shared(D + "gpt.jsonl")), FieldMap()).subsample(1600, 3)
    test = load_corpus(str(shared(D + "orig_test.jsonl")), FieldMap()).subsample(400, 2)
    rng = np.random.default_rng(1)
    pick = rng.choice(len(test), size=400, replace=True)
    cand = Corpus("gpt+test-copies", "planted", gpt.kind, gpt.texts + tuple(" ".join(rng.permutation(test.texts[i].split())) for i in pick),
                  labels=gpt.labels + tuple(test.labels[i] for i in pick))
    specs = [replace(s, args={**s.args, "seeds": 1}) for s in metrics.select(None)
             if s.name.startswith("utility/") and s.name.endswith(("contaminated-accuracy", "contaminated-gap"))]
    return _measure(cand, None, test, specs, tmp_path_factory.mktemp("contaminated"))
