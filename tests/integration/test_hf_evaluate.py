"""Hugging Face evaluate modules generated from the metric registry (harness/integrations/hf_evaluate.py), offline.

The modules are loaded with ``evaluate.load(<local folder>)`` and must return exactly what ``synthbench eval``
(or the runner) computes on the same rows: real AG News data, ChatGPT paraphrases against the real seeds.
"""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"

import pytest  # noqa: E402

from harness.metrics.base import metric  # noqa: E402
from harness.types import Score  # noqa: E402
from tests.conftest import FakeEmbedder, read_jsonl, shared  # noqa: E402

BASE = "ag_news_chatgpt_paraphrases/"


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    """evaluate, with its copies of loaded modules and its metric data folders in temporary folders (not in
    ~/.cache/huggingface)."""
    import evaluate
    import evaluate.config

    old = evaluate.config.HF_MODULES_CACHE, evaluate.config.HF_METRICS_CACHE
    evaluate.config.HF_MODULES_CACHE = tmp_path_factory.mktemp("hf_modules")
    evaluate.config.HF_METRICS_CACHE = tmp_path_factory.mktemp("hf_metrics")
    yield evaluate
    evaluate.config.HF_MODULES_CACHE, evaluate.config.HF_METRICS_CACHE = old


@pytest.fixture(scope="module")
def mods(tmp_path_factory):
    """Every group's module, generated once for this file."""
    from harness.integrations.hf_evaluate import generate

    out = tmp_path_factory.mktemp("modules")
    generate(out)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """300 ChatGPT paraphrases (every 20th row), the 400 real seeds they were made from, 400 real test rows;
    as lists and as JSONL files with text/label columns for the CLI."""
    d = tmp_path_factory.mktemp("data")
    sets = {"synth": read_jsonl(shared(BASE + "news_gpt_para.jsonl"))[::20],
            "real": read_jsonl(shared(BASE + "news_seeds_train.jsonl")),
            "test": read_jsonl(shared(BASE + "news_seeds_test.jsonl"))}
    out = {}
    for name, rows in sets.items():
        path = d / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
        out[name] = {"texts": [r["text"] for r in rows], "labels": [r["label"] for r in rows], "path": path}
    assert len(out["synth"]["texts"]) == 300 and len(set(out["synth"]["labels"])) == 4
    return out


@pytest.fixture(scope="module")
def eval_records(data, tmp_path_factory):
    """What `synthbench eval` writes for the candidate: {metric: (value, ci)}."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("eval")
    rc = main(["eval", str(data["synth"]["path"]), "--reference", str(data["real"]["path"]),
               "--test", str(data["test"]["path"]), "--metrics", "lexical,length,surface,contam/test-ngram-overlap",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return {r["metric"]: (r["value"], r["ci"]) for r in recs if r["dataset"] == "synth"}


def load(ev, folder, **kw):
    return ev.load(str(folder), keep_in_memory=True, **kw)


def values(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "skipped" and not k.endswith("_ci")}


def test_lexical_measurement_equals_synthbench_eval(ev, mods, data, eval_records):
    from harness import metrics

    lexical = load(ev, mods / "synthbench_lexical")
    assert isinstance(lexical, ev.Measurement) and lexical.info.module_type == "measurement"
    got = lexical.compute(data=data["synth"]["texts"])
    expected = {m: v for m, (v, _) in eval_records.items() if m.startswith("lexical/")}
    assert set(expected) == {n for n in metrics.names() if n.startswith("lexical/")}
    assert values(got) == expected  # exactly: the same code path
    assert got["skipped"] == {}

    length = load(ev, mods / "synthbench_length")
    got = length.compute(data=data["synth"]["texts"])
    for m in ("length/mean-words", "length/std-words"):
        value, ci = eval_records[m]
        assert got[m] == value and got[f"{m}_ci"] == ci and ci[0] < value < ci[1]
    assert "length/mean-words_ci" not in length.compute(data=data["synth"]["texts"], with_ci=False)


def test_comparisons_equal_synthbench_eval(ev, mods, data, eval_records):
    s, r, t = data["synth"], data["real"], data["test"]
    surface = load(ev, mods / "synthbench_surface")
    assert isinstance(surface, ev.Comparison) and surface.info.module_type == "comparison"
    got = surface.compute(data=s["texts"], labels=s["labels"], references=r["texts"], reference_labels=r["labels"])
    expected = {m: v for m, (v, _) in eval_records.items() if m.startswith("surface/")}
    assert len(expected) == 6 and values(got) == expected and got["skipped"] == {}
    assert got["surface/length-ks"] > 0.5  # paraphrases are much shorter than the seed articles

    contam = load(ev, mods / "synthbench_contam")
    got = contam.compute(data=s["texts"], test=t["texts"], metrics=["test-ngram-overlap"])
    value, ci = eval_records["contam/test-ngram-overlap"]
    assert got["contam/test-ngram-overlap"] == value and got["contam/test-ngram-overlap_ci"] == ci
    assert set(got) == {"contam/test-ngram-overlap", "contam/test-ngram-overlap_ci", "skipped"}


def test_distance_comparison_with_an_injected_embedder_equals_the_runner(ev, mods, data, tmp_path):
    from harness import metrics
    from harness.data.load import load_corpus
    from harness.run.runner import RunConfig, run

    chosen = ["distance/frechet", "distance/precision", "distance/recall", "distance/coverage", "distance/c2st-tfidf"]
    cand = load_corpus(str(data["synth"]["path"]))
    ref = load_corpus(str(data["real"]["path"]))
    outcome = run([(cand, "candidate")], ref, [metrics.get(n) for n in chosen], tmp_path, RunConfig(progress=False),
                  log=lambda m: None, embedder=FakeEmbedder())
    expected = {r.metric: (r.value, list(r.ci) if r.ci else None) for r in outcome.results}
    assert set(expected) == set(chosen)

    distance = load(ev, mods / "synthbench_distance")
    fake = FakeEmbedder()
    got = distance.compute(data=data["synth"]["texts"], labels=data["synth"]["labels"],
                           references=data["real"]["texts"], reference_labels=data["real"]["labels"], embedder=fake,
                           metrics=["frechet", "precision", "recall", "coverage", "c2st-tfidf"], return_details=True)
    assert fake.calls == 2  # the candidate and the reference, each embedded once
    for m, (value, ci) in expected.items():
        assert got[m] == value
        assert got.get(f"{m}_ci") == ci
    assert got["signatures"]["distance/frechet"]["embedder"] == "fake-bow-64"
    assert got["signatures"]["distance/frechet"]["data"] == outcome.results[0].signature.data  # same rows, same hashes
    assert "distance/frechet" in got["details"]


def test_sampling_options_follow_the_runner(ev, mods, data, tmp_path):
    """sample_size/repeats/seed mean what --sample-size/--repeats/--seed mean."""
    from harness import metrics
    from harness.data.load import load_corpus
    from harness.run.runner import RunConfig, run

    specs = metrics.select(["lexical/distinct-2", "lexical/mattr", "length/mean-words"])
    cfg = RunConfig(seed=7, sample_size=100, repeats=3, progress=False)
    outcome = run([(load_corpus(str(data["synth"]["path"])), "candidate")], None, specs, tmp_path, cfg,
                  log=lambda m: None)
    expected = {r.metric: (r.value, list(r.ci) if r.ci else None) for r in outcome.results}
    got = {}
    for g, chosen in (("lexical", ["distinct-2", "mattr"]), ("length", ["mean-words"])):
        got.update(load(ev, mods / f"synthbench_{g}").compute(data=data["synth"]["texts"], metrics=chosen, seed=7,
                                                              sample_size=100, repeats=3))
    for m, (value, ci) in expected.items():
        assert got[m] == value and got.get(f"{m}_ci") == ci
    assert expected["lexical/distinct-2"][1] is not None and expected["lexical/mattr"][1] is None  # size-dependent: a t-interval over the 3 samples
    with pytest.raises(ValueError, match="sample_size= 400: data has only 300 rows"):
        load(ev, mods / "synthbench_lexical").compute(data=data["synth"]["texts"], sample_size=400)


def test_default_embedder_at_small_n_equals_synthbench_eval(ev, mods, data, tmp_path, cache_dir):
    """No embedder= argument: the default (cached) all-MiniLM-L6-v2, as `synthbench eval` uses it."""
    from harness.cli import main

    rows = [{"text": t} for t in data["synth"]["texts"][:40]]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chosen = "semantic/pairwise-cosine-distance,semantic/vendi"
    assert main(["eval", str(path), "--metrics", chosen, "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    recs = {r["metric"]: r for r in map(json.loads, (tmp_path / "o" / "results.jsonl").read_text().splitlines())}

    semantic = load(ev, mods / "synthbench_semantic")
    got = semantic.compute(data=[r["text"] for r in rows], metrics=chosen.split(","), return_details=True)
    for m in chosen.split(","):
        assert got[m] == recs[m]["value"]
        assert got["signatures"][m]["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert 0 < got["semantic/pairwise-cosine-distance"] <= 2 and 1 <= got["semantic/vendi"] <= 40


def test_unmet_needs_are_listed_under_skipped_never_zero(ev, mods, data):
    texts = data["synth"]["texts"][:120]
    semantic = load(ev, mods / "synthbench_semantic")
    got = semantic.compute(data=texts, embedder=FakeEmbedder())  # no labels, no references
    assert got["skipped"] == {"semantic/ref-cluster-coverage": "needs references= (the real texts to compare with)",
                              "semantic/aps": "needs labels= (one label per row of data)"}
    assert "semantic/aps" not in got and "semantic/ref-cluster-coverage" not in got
    assert {"semantic/vendi", "semantic/chamfer", "semantic/pairwise-cosine-distance"} <= set(got)
    # with the inputs given, the same module computes them
    got = semantic.compute(data=texts, labels=data["synth"]["labels"][:120], references=data["real"]["texts"],
                           embedder=FakeEmbedder(), metrics=["aps", "ref-cluster-coverage"])
    assert got["skipped"] == {} and -1 <= got["semantic/aps"] <= 1 and 0 <= got["semantic/ref-cluster-coverage"] <= 1

    utility = load(ev, mods / "synthbench_utility")
    got = utility.compute(data=texts, labels=data["synth"]["labels"][:120])  # no test split: nothing is trained
    assert set(got) == {"skipped"} and got["skipped"]
    assert got["skipped"]["utility/tfidf-lr/accuracy"] == "needs test= (a held-out real test split)"
    assert got["skipped"]["utility/tfidf-lr/gap"] == ("needs references= (the real texts to compare with) and "
                                                      "test= (a held-out real test split)")
    assert all("test=" in why for why in got["skipped"].values())
    assert not any("minilm-ft" in m for m in got["skipped"])  # opt-in metrics only when named

    # a metric that does not apply to the data (MetricSkipped in the runner) is listed with its reason
    lexical = load(ev, mods / "synthbench_lexical")
    got = lexical.compute(data=["one two", "three four five", "six"], metrics=["distinct-4", "distinct-1"])
    assert got["lexical/distinct-1"] == 1.0 and got["skipped"] == {"lexical/distinct-4": "no row has 4 or more words"}


def test_every_group_makes_a_module_that_evaluate_loads(ev, mods):
    from harness import metrics
    from harness.integrations.hf_evaluate import all_groups, group_kind, group_metrics, module_name

    groups = all_groups()
    assert {"lexical", "dup", "semantic", "surface", "distance", "perclass", "memo", "contam", "faith",
            "utility"} <= set(groups)
    assert sorted(p.name for p in mods.iterdir()) == sorted(module_name(g) for g in groups)
    for g in groups:
        module = load(ev, mods / module_name(g))
        kind = group_kind(g)
        assert module.info.module_type == kind
        assert isinstance(module, ev.Comparison if kind == "comparison" else ev.Measurement)
        assert module.name == module_name(g)
        assert list(module.features) == ["data"]
        for n in group_metrics(g):
            info = metrics.get(n).info
            line = next(x for x in module.description.splitlines() if x.startswith(f"- {n}"))
            assert info.summary in line and info.range in line
            assert {True: "higher is better", False: "lower is better"}.get(info.higher_is_better, "no better direction") in line
        comparing = [n for n in group_metrics(g) if {"reference", "reference_embeddings"} & set(metrics.get(n).info.needs)]
        assert ("references (" in module.inputs_description) == bool(comparing)
        assert "references (" in module.compute.__doc__ or not comparing  # evaluate appends the inputs to compute's doc
        card = (mods / module_name(g) / "README.md").read_text()
        assert card.startswith("---\n") and f"- {kind}" in card
        for n in group_metrics(g):
            assert f"| `{n}`" in card and f"### `{n}`" in card
    assert load(ev, mods / "synthbench_lexical").info.module_type == "measurement"
    assert load(ev, mods / "synthbench_distance").info.module_type == "comparison"
    semantic = load(ev, mods / "synthbench_semantic")  # mixed group: a Comparison whose references are optional
    assert "references (list of str, optional)" in semantic.inputs_description
    assert "`references` is optional" in semantic.description


@metric("toy/length-ratio", needs=("texts", "reference"), higher_is_better=None, bounds=(0, float("inf")),
        register=False)
def toy_length_ratio(ctx) -> Score:
    """Toy length ratio: mean words per row over the reference's; a registry entry made by a test.

    Range [0, ∞); 1 = same mean length. No paper: it only shows that new registry entries appear.
    """
    mine = sum(len(t.split()) for t in ctx.texts) / len(ctx.texts)
    theirs = sum(len(t.split()) for t in ctx.reference.texts) / len(ctx.reference.texts)
    return Score(mine / theirs)


@metric("lexical/distinct-5", args={"n": 5}, higher_is_better=True, bounds=(0, 1), size_dependent=True,
        register=False)
def distinct_5(ctx, n: int) -> Score:
    """Distinct-n: unique n-grams / all n-grams in the corpus (n = 5, a variant declared by a test)."""
    from harness.metrics.direct.lexical import distinct_n

    return distinct_n(ctx, n)


def test_a_new_registry_entry_appears_without_code_changes(ev, data, tmp_path, monkeypatch):
    from harness import metrics
    from harness.integrations.hf_evaluate import module_path
    from harness.metrics.base import Context
    from harness.metrics.direct.lexical import distinct_n
    from harness.types import Corpus

    before = module_path("lexical", out=tmp_path)
    old_source = (tmp_path / "synthbench_lexical" / "synthbench_lexical.py").read_text()
    assert "lexical/distinct-5" not in old_source
    texts = data["synth"]["texts"]
    with metrics.registered(distinct_5, toy_length_ratio):
        assert module_path("lexical", out=tmp_path) == before  # same folder, regenerated
        new_source = (tmp_path / "synthbench_lexical" / "synthbench_lexical.py").read_text()
        assert "'lexical/distinct-5'" in new_source and new_source != old_source
        lexical = load(ev, before)
        got = lexical.compute(data=texts, metrics=["distinct-5", "distinct-1"])
        assert got["lexical/distinct-5"] == distinct_n(Context(Corpus("x", "x", "text", tuple(texts))), n=5).value
        assert "Distinct-n" in next(x for x in lexical.description.splitlines() if x.startswith("- lexical/distinct-5"))

        toy = load(ev, module_path("toy", out=tmp_path))  # a new group: a Comparison, as its metric compares
        assert isinstance(toy, ev.Comparison) and "Toy length ratio" in toy.description
        got = toy.compute(data=texts, references=data["real"]["texts"])
        expected = (sum(len(t.split()) for t in texts) / len(texts)) / (
            sum(len(t.split()) for t in data["real"]["texts"]) / len(data["real"]["texts"]))
        assert got["toy/length-ratio"] == pytest.approx(expected, rel=1e-12) and got["skipped"] == {}
        assert toy.compute(data=texts)["skipped"] == {"toy/length-ratio": "needs references= (the real texts to compare "
                                                                         "with)"}
        stale = tmp_path / "old" / "synthbench_lexical"  # generated before the registry changed
        stale.mkdir(parents=True)
        (stale / "synthbench_lexical.py").write_text(old_source)
        with pytest.warns(UserWarning, match="another version of the metric registry"):
            load(ev, stale)
    # the entry is gone again: a module generated with it says so instead of failing or returning 0
    got = lexical.compute(data=texts, metrics=["distinct-5", "distinct-1"])
    assert got["skipped"] == {"lexical/distinct-5": "no longer in the metric registry: regenerate this module"}
    assert "lexical/distinct-1" in got


def test_module_path_generates_into_the_cache_once(ev, cache_dir, data):
    from harness.integrations.hf_evaluate import module_path
    from harness.resources.cache import cache_root

    path = module_path("dup")
    assert path == str(cache_root() / "evaluate_modules" / "synthbench_dup")
    py = cache_root() / "evaluate_modules" / "synthbench_dup" / "synthbench_dup.py"
    stamp = py.stat().st_mtime_ns
    assert module_path("dup") == path and py.stat().st_mtime_ns == stamp  # unchanged registry: not rewritten
    got = ev.load(path, keep_in_memory=True).compute(data=data["synth"]["texts"][:100] * 2)
    assert got["dup/exact-rate"] == 0.5 and got["skipped"] == {}


def test_streaming_combine_and_bad_inputs(ev, mods, data, tmp_path):
    texts = data["synth"]["texts"][:90]
    lexical = ev.load(str(mods / "synthbench_lexical"), cache_dir=str(tmp_path))  # arrow files on disk
    for i in range(0, 90, 30):
        lexical.add_batch(data=texts[i:i + 30])
    assert lexical.compute() == lexical.compute(data=texts)

    both = ev.combine([load(ev, mods / "synthbench_lexical"), load(ev, mods / "synthbench_length")])
    got = both.compute(data=texts)
    assert "lexical/distinct-2" in got and "length/mean-words_ci" in got
    assert got["synthbench_lexical_skipped"] == {} == got["synthbench_length_skipped"]

    surface = load(ev, mods / "synthbench_surface")
    # an empty row is left out (and noted), as in a run
    assert lexical.compute(data=["fine words", "  ", "more words"]) == lexical.compute(data=["fine words", "more words"])
    with pytest.raises(ValueError, match="3 labels for 2 rows of data"):
        surface.compute(data=["a b", "c d"], labels=[0, 1, 2], references=["e f"])
    with pytest.raises(ValueError, match="reference_labels= without references="):
        surface.compute(data=["a b"], labels=[0], reference_labels=[0])
    with pytest.raises(ValueError, match="not predictions="):
        surface.compute(predictions=["a b"], references=["c"])
    with pytest.raises(ValueError, match="add_batch takes data= only"):
        surface.add_batch(data=["a b"], references=["c"])
    # no label in common: the label metrics are not computed (with the reason), the others are
    got = surface.compute(data=["a b"], labels=["x"], references=["c d"], reference_labels=["y"])
    assert "no label in common" in got["skipped"]["surface/label-jsd"]
    assert got["surface/length-ks"] is not None
    with pytest.raises(ValueError, match="metrics=: no metric 'distinc-2'.*did you mean 'distinct-2'"):
        lexical.compute(data=texts, metrics="distinc-2")


def test_evaluate_modules_command(tmp_path, capsys):
    from harness.cli import main

    assert main(["evaluate-modules", "--out", str(tmp_path), "--groups", "lexical,dup"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthbench_dup", "synthbench_lexical"]
    assert "evaluate.load(" in out and "measurement" in out
    for g in ("lexical", "dup"):
        assert (tmp_path / f"synthbench_{g}" / f"synthbench_{g}.py").exists()
        assert (tmp_path / f"synthbench_{g}" / "README.md").exists()
    assert main(["evaluate-modules", "--out", str(tmp_path), "--groups", "lexcal"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'lexical'" in err
