"""Performance gap recovered and contamination-aware utility (issue #23) on real CLINC150 rows: the
numbers against a hand computation with sklearn, the ends of the scale (a copy of the reference recovers
all of the gap, shuffled labels none), and a candidate that copies test rows is exposed."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from harness import metrics
from harness.metrics.base import MetricSkipped
from harness.metrics.indirect import utility
from harness.resources import trainers as train
from tests.unit.metrics.test_utility import clinc, contexts, renamed, sklearn_tfidf  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    train.clear_memo()
    yield
    train.clear_memo()


def test_gap_recovered_is_the_ratio_over_the_majority_floor_and_shares_the_gap_fits(clinc):  # noqa: F811
    real = clinc["train"].subsample(1500, 4)
    cand = renamed(clinc["gpt"].subsample(1200, 1), "gpt")
    ctx = contexts(cand, real, clinc["test"])
    gr = metrics.get("utility/tfidf-lr/gap-recovered")(ctx)
    fits = train.STATS["fits"]
    gap = metrics.get("utility/tfidf-lr/gap")(ctx)
    assert train.STATS["fits"] == fits  # gap reuses every fit of gap-recovered
    d = gr.details
    assert d["tstr_accuracy"] == gap.details["tstr_accuracy"] and d["trtr_accuracy"] == gap.details["trtr_accuracy"]
    top = Counter(real.labels).most_common()
    label = sorted((lab for lab, c in top if c == top[0][1]), key=str)[0]
    floor = float(np.mean([y == label for y in clinc["test"].labels]))
    assert d["floor_label"] == label and d["floor"] == pytest.approx(floor, abs=1e-12)
    want = (np.mean(d["tstr_accuracy"]) - floor) / (np.mean(d["trtr_accuracy"]) - floor)
    assert gr.value == pytest.approx(want, abs=1e-12)
    # TSTR of seed 0 by hand: sklearn on the same seeded sample
    job = utility._job(ctx, "tfidf-lr", 3, {})
    idx = job.subset("syn", 0, 1200)
    pred = sklearn_tfidf([job.syn_texts[i] for i in idx], [job.syn_labels[i] for i in idx], list(clinc["test"].texts))
    assert d["tstr_accuracy"][0] == pytest.approx(float(np.mean(pred == np.asarray(clinc["test"].labels))), abs=1e-12)
    assert 0.3 < gr.value < 1.2 and gr.ci[0] < gr.value < gr.ci[1]


def test_gap_recovered_ends_copy_of_reference_is_one_shuffled_labels_near_zero(clinc):  # noqa: F811
    real = clinc["train"].subsample(1000, 5)
    same = metrics.get("utility/tfidf-lr/gap-recovered")(contexts(renamed(real, "copy"), real, clinc["test"]))
    assert same.value == pytest.approx(1.0, abs=1e-12)
    cand = clinc["train"].subsample(1200, 3)
    shuffled = renamed(cand, "shuffled", labels=np.random.default_rng(0).permutation(list(cand.labels)))
    low = metrics.get("utility/tfidf-lr/gap-recovered")(contexts(shuffled, real, clinc["test"]))
    assert low.value < 0.1 and low.ci[1] < 0.25


def test_gap_recovered_is_not_reported_when_real_data_does_not_beat_the_floor(clinc):  # noqa: F811
    real = clinc["train"].subsample(600, 6)
    noise = renamed(real, "noise-ref", labels=np.random.default_rng(1).permutation(list(real.labels)))
    with pytest.raises(MetricSkipped, match="majority-class floor"):
        metrics.get("utility/tfidf-lr/gap-recovered")(contexts(renamed(real, "c"), noise, clinc["test"]))


def test_a_candidate_that_copies_test_rows_is_exposed(clinc, fake_embedder):  # noqa: F811
    test = clinc["test"]
    base = clinc["gpt"].subsample(800, 2)
    rng = np.random.default_rng(7)
    copied = sorted(rng.choice(len(test), 60, replace=False).tolist())
    long_rows = [i for i in range(len(test)) if len(test.texts[i].split()) >= 13 and i not in set(copied)][:5]
    texts = list(base.texts) + [test.texts[i] for i in copied] + [f"so {test.texts[i]} please" for i in long_rows]
    labels = list(base.labels) + [test.labels[i] for i in copied] + [test.labels[i] for i in long_rows]
    cand = renamed(base, "copier")
    cand = type(cand)("copier", cand.source, cand.kind, tuple(texts), labels=tuple(labels))
    ctx = contexts(cand, None, test, emb=fake_embedder)
    hits = utility.contaminated_test_rows(ctx)
    assert set(copied) <= set(hits) and all(hits[i] == "exact" for i in copied)
    assert all(hits.get(i) == "ngram" for i in long_rows)
    dirty = metrics.get("utility/tfidf-lr/contaminated-accuracy")(ctx)
    clean = metrics.get("utility/tfidf-lr/clean-accuracy")(ctx)
    gap = metrics.get("utility/tfidf-lr/contaminated-gap")(ctx)
    acc = metrics.get("utility/tfidf-lr/accuracy")(ctx)
    mask = np.zeros(len(test), dtype=bool)
    mask[list(hits)] = True
    pred = sklearn_tfidf(texts, labels, list(test.texts))  # tier 1 is deterministic: one fit is every seed's
    y = np.asarray(test.labels)
    assert dirty.value == pytest.approx(float(np.mean(pred[mask] == y[mask])), abs=1e-12)
    assert clean.value == pytest.approx(float(np.mean(pred[~mask] == y[~mask])), abs=1e-12)
    assert gap.value == pytest.approx(dirty.value - clean.value, abs=1e-12)
    n = mask.sum()
    assert acc.value == pytest.approx((dirty.value * n + clean.value * (len(y) - n)) / len(y), abs=1e-12)
    assert dirty.value > 0.9 and gap.value > 0.1 and gap.ci[0] > 0  # the copies are learnt by heart
    assert dirty.details["contaminated_test_rows"] == n and dirty.details["matched_by"]["exact"] >= 60


def test_a_clean_candidate_has_no_contaminated_rows_and_clean_accuracy_is_accuracy(clinc, fake_embedder):  # noqa: F811
    from harness.metrics.direct.duplicates import normalise

    test = clinc["test"]
    shared_rows = {normalise(t) for t in test.texts}  # CLINC150's splits share ten stock phrases
    real = clinc["train"].subsample(700, 8)
    cand = renamed(real, "clean", idx=[i for i, t in enumerate(real.texts) if normalise(t) not in shared_rows])
    ctx = contexts(cand, None, test, emb=fake_embedder)
    assert utility.contaminated_test_rows(ctx) == {}
    with pytest.raises(MetricSkipped, match="no test row"):
        metrics.get("utility/tfidf-lr/contaminated-gap")(ctx)
    with pytest.raises(MetricSkipped, match="no test row"):
        metrics.get("utility/tfidf-lr/contaminated-accuracy")(ctx)
    clean = metrics.get("utility/tfidf-lr/clean-accuracy")(ctx)
    assert clean.value == metrics.get("utility/tfidf-lr/accuracy")(ctx).value
    # the real train split as it comes: its ten test phrases are found, exactly
    whole = contexts(renamed(clinc["train"], "train"), None, test, emb=fake_embedder)
    found = utility.contaminated_test_rows(whole)
    assert {i for i, how in found.items() if how == "exact"} == {
        i for i, t in enumerate(test.texts) if normalise(t) in {normalise(x) for x in clinc["train"].texts}}
