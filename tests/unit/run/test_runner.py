"""The runner: shared needs resolved once, results written atomically, reruns resume."""

from __future__ import annotations

import json

import pytest

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import metric
from harness.run.runner import RunConfig, run
from harness.types import Score
from tests.conftest import shared


@pytest.fixture(scope="module")
def corpora():
    ref = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_train.jsonl"))).subsample(200, 0)
    a = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl")), name="gpt").subsample(200, 0)
    b = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/human.jsonl")), name="human").subsample(200, 0)
    return ref, a, b


def go(tmp_path, corpora, emb, seed=0, names=None):
    ref, a, b = corpora
    specs = metrics.select(names)
    return run([(ref, "reference"), (a, "candidate"), (b, "candidate")], ref, specs, tmp_path,
               RunConfig(seed=seed, progress=False), log=lambda m: None, embedder=emb)


def expected_units(corpora, names=None):
    """(dataset, metric) pairs a run accounts for, as a result or as 'not computed' with a reason;
    only a comparison of the reference with itself is left out silently."""
    from harness.run.runner import REFERENCE_ITSELF, applicable

    ref, a, b = corpora
    return {(c.name, s.name) for c, role in ((ref, "reference"), (a, "candidate"), (b, "candidate"))
            for s in metrics.select(names) if applicable(s, c, ref, role) != REFERENCE_ITSELF}


def test_records_have_required_fields(tmp_path, corpora, fake_embedder):
    out = go(tmp_path, corpora, fake_embedder)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    done = {(json.loads(x)["dataset"], json.loads(x)["metric"]) for x in lines}
    skipped = {(d, m) for d, m, _ in out.skipped}  # inapplicable, with a reason (e.g. too few rows per class)
    assert len(lines) == out.computed == len(done)
    assert not done & skipped and done | skipped == expected_units(corpora)
    for line in lines:
        d = json.loads(line)
        assert {"dataset", "metric", "value", "ci", "higher_is_better", "signature"} <= set(d)
        assert d["ci"] is None or (len(d["ci"]) == 2 and d["ci"][0] <= d["ci"][1])
        sig = d["signature"]
        assert {"harness", "metric", "args", "data", "embedder", "seed"} <= set(sig)
        assert len(sig["data"]["candidate"]) == 64
        needs = metrics.get(d["metric"]).info.needs
        if "embeddings" in needs or "reference_embeddings" in needs:
            assert sig["embedder"] == "fake-bow-64"
        else:
            assert sig["embedder"] is None


def test_embeddings_resolved_once_per_corpus(tmp_path, corpora, fake_embedder):
    go(tmp_path, corpora, fake_embedder, names=["semantic"])
    assert fake_embedder.calls == 3  # reference + two candidates, one call each, however many metrics


def test_rerun_reuses_everything(tmp_path, corpora, fake_embedder):
    first = go(tmp_path, corpora, fake_embedder)
    before = (tmp_path / "results.jsonl").read_text()
    second = go(tmp_path, corpora, fake_embedder)
    assert second.computed == 0 and second.reused == first.computed
    assert (tmp_path / "results.jsonl").read_text() == before
    assert [r.value for r in first.results] == [r.value for r in second.results]


def test_changed_seed_recomputes_and_keeps_other_records(tmp_path, corpora, fake_embedder):
    go(tmp_path, corpora, fake_embedder, names=["lexical/distinct-2"])
    again = go(tmp_path, corpora, fake_embedder, seed=5, names=["lexical/distinct-2", "dup/exact-rate"])
    assert again.computed == 6 and again.reused == 0  # distinct-2 recomputed under the new seed
    recs = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and {r["signature"]["seed"] for r in recs} == {5}


def test_interrupted_run_keeps_finished_results(tmp_path, corpora, fake_embedder, monkeypatch):
    """A metric that crashes mid-run leaves every finished record on disk, and a rerun resumes."""
    import harness.metrics.direct.semantic as sem

    real = sem.mean_pairwise_cosine_distance
    calls = {"n": 0}

    def boom(ctx):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(ctx)

    boom.info = real.info
    monkeypatch.setattr(sem, "mean_pairwise_cosine_distance", boom)
    with pytest.raises(KeyboardInterrupt):
        go(tmp_path, corpora, fake_embedder)
    done = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    total = go(tmp_path / "probe", corpora, fake_embedder).computed
    assert {d["dataset"] for d in done} == {corpora[0].name, corpora[1].name}  # stopped inside the first candidate
    assert 0 < len(done) < total
    monkeypatch.setattr(sem, "mean_pairwise_cosine_distance", real)
    resumed = go(tmp_path, corpora, fake_embedder)
    assert resumed.reused == len(done) and resumed.computed == total - len(done)


@metric("test/labels", needs=("texts", "labels"), higher_is_better=True, register=False)
def label_count(ctx):
    """Number of distinct labels (a test metric)."""
    return Score(float(len(set(ctx.labels))))


@metric("test/ref", needs=("texts", "reference"), higher_is_better=None, register=False)
def needs_ref(ctx):
    """A test metric that reads the reference."""
    return Score(float(len(ctx.reference.texts)))


def test_needs_decide_applicability(tmp_path, fake_embedder):
    from harness.metrics import MetricSpec
    from harness.types import Corpus

    labelled = Corpus("lab", "x", "classification", ("a b", "c d"), labels=("p", "q"))
    plain = Corpus("plain", "x", "text", ("a b", "c d"))
    specs = [MetricSpec("test/labels", "tests.unit.run.test_runner:label_count", {}),
             MetricSpec("test/ref", "tests.unit.run.test_runner:needs_ref", {})]
    out = run([(labelled, "candidate"), (plain, "candidate")], None, specs, tmp_path,
              RunConfig(progress=False), log=lambda m: None, embedder=fake_embedder)
    assert [(r.dataset, r.metric, r.value) for r in out.results] == [("lab", "test/labels", 2.0)]
    assert ("plain", "test/labels", "needs labels") in out.skipped
    assert ("lab", "test/ref", "needs --reference") in out.skipped
    with_ref = run([(plain, "candidate")], labelled, specs[1:], tmp_path / "r", RunConfig(progress=False),
                   log=lambda m: None, embedder=fake_embedder)
    assert with_ref.results[0].value == 2.0
    assert with_ref.results[0].signature.data["reference"] == labelled.fingerprint


def test_sample_size_and_repeats(tmp_path, corpora, fake_embedder):
    """Size-dependent metrics are averaged over R seeded samples, with a t-interval; others are not."""
    import numpy as np

    from harness.metrics.base import Context
    from harness.run.runner import sample_seed

    ref, a, b = corpora
    specs = metrics.select(["lexical/distinct-2", "length/mean-words"])
    cfg = RunConfig(seed=3, sample_size=120, repeats=4, progress=False)
    out = run([(a, "candidate")], None, specs, tmp_path, cfg, log=lambda m: None, embedder=fake_embedder)
    d2 = next(r for r in out.results if r.metric == "lexical/distinct-2")
    manual = [specs[0](Context(a.subsample(120, sample_seed(3, r)))).value for r in range(4)]
    assert d2.details["repeats"]["values"] == pytest.approx(manual)
    assert d2.value == pytest.approx(np.mean(manual))
    assert d2.ci[0] < d2.value < d2.ci[1]
    assert d2.signature.args["repeats"] == 4 and d2.signature.data["sample"]["size"] == 120
    ln = next(r for r in out.results if r.metric == "length/mean-words")
    assert "repeats" not in ln.details and "repeats" not in ln.signature.args
    assert ln.signature.data["sample"] == {"size": 120, "seed": 3, "of": len(a)}
