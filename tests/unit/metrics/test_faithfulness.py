"""Faithfulness, memorisation and contamination metrics: defects planted in real data, recovered."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context
from harness.metrics.direct.duplicates import normalise
from harness.metrics.direct.lexical import tokenize
from harness.types import Corpus
from tests.conftest import shared


def corpus(name, texts, labels=None):
    return Corpus(name, "x", "classification" if labels else "text", tuple(texts),
                  tuple(labels) if labels else None)


def score(name, ctx):
    s = metrics.get(name)(ctx)
    json.dumps(s.details)  # details must be JSON-serialisable
    assert s.ci is None or s.ci[0] <= s.value <= s.ci[1]
    return s


# ----------------------------------------------------------------------------- data

@pytest.fixture(scope="module")
def banking_train():
    return load_corpus(str(shared("banking77_real/train.jsonl")))


@pytest.fixture(scope="module")
def banking_test():
    return load_corpus(str(shared("banking77_real/test.jsonl")))


@pytest.fixture(scope="module")
def clinc_gpt():
    return load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl")), name="gpt").subsample(400, 1)


@pytest.fixture(scope="module")
def real_embedder(tmp_path_factory):
    from harness.resources.embedder import Embedder, resolve_embedder

    return Embedder(resolve_embedder("default"), cache_dir=tmp_path_factory.mktemp("c"), progress=False)


def split_train(train, seed=0):
    """Two disjoint samples (reference, candidate) of banking77 train, deduplicated against each other."""
    rng = random.Random(seed)
    idx = list(range(len(train)))
    rng.shuffle(idx)
    ref_idx, rest = idx[:600], idx[600:]
    ref_norm = {normalise(train.texts[i]) for i in ref_idx}
    cand_idx = [i for i in rest if normalise(train.texts[i]) not in ref_norm][:300]
    return ([train.texts[i] for i in ref_idx], [train.texts[i] for i in cand_idx])


# ----------------------------------------------------------------------------- memorisation

def brute_overlap(cands, refs, n):
    """Direct computation: exact normalised match, else a shared word n-gram (rows >= n tokens)."""
    ref_norm = {normalise(t) for t in refs}
    ref_grams = set()
    for t in refs:
        w = tokenize(t)
        ref_grams |= {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    exact, gram = [], []
    for i, t in enumerate(cands):
        if normalise(t) in ref_norm:
            exact.append(i)
            gram.append(i)
            continue
        w = tokenize(t)
        if any(tuple(w[k:k + n]) in ref_grams for k in range(len(w) - n + 1)):
            gram.append(i)
    return exact, gram


@pytest.fixture(scope="module")
def memorised(banking_train):
    refs, cands = split_train(banking_train)
    rng = random.Random(1)
    cands = list(cands)
    long_refs = [t for t in refs if len(tokenize(t)) >= 18]
    srcs = rng.sample(range(len(refs)), 15)
    edits = rng.sample(long_refs, 15)
    exact_rows, edit_rows = [], []
    for t in (refs[i] for i in srcs):  # exact copies, with case and spacing changed
        pos = rng.randrange(len(cands) + 1)
        cands.insert(pos, "  " + t.upper().replace(" ", "   ") + "\t")
    for t in edits:  # small edits: the last word replaced, so the row is no exact copy but keeps a 13-gram
        w = t.rstrip("?.! ").split(" ")
        cands.insert(rng.randrange(len(cands) + 1), " ".join(w[:-1] + ["zebra"]) + "?")
    for i, t in enumerate(cands):
        if t.startswith("  "):
            exact_rows.append(i)
        elif t.endswith("zebra?"):
            edit_rows.append(i)
    return corpus("ref", refs), corpus("cand", cands), exact_rows, edit_rows


def test_exact_copy_and_ngram_overlap_find_planted_copies(memorised):
    ref, cand, exact_rows, edit_rows = memorised
    ctx = Context(cand, reference=Context(ref))
    ex = score("memo/exact-copy-rate", ctx)
    assert ex.details["flagged_rows"] == exact_rows
    assert ex.value == pytest.approx(15 / len(cand))
    ng = score("memo/ngram-overlap-rate", ctx)
    assert ng.details["flagged_rows"] == sorted(exact_rows + edit_rows)
    assert ng.details["exact_matches"] == 15 and ng.details["ngram_matches"] == 15
    for e in ng.details["examples"]:
        assert e["text"] == cand.texts[e["row"]][:160]
        assert e["reference_text"] == ref.texts[e["reference_row"]][:160]


def test_overlap_matches_brute_force(banking_train, banking_test):
    # small real data with natural overlap: banking77 test vs a train sample holds a few repeated queries
    refs = banking_train.subsample(1500, 2)
    cand = banking_test.subsample(300, 2)
    ctx = Context(cand, reference=Context(refs))
    for n in (5, 13):
        exact, gram = brute_overlap(cand.texts, refs.texts, n)
        assert metrics.get("memo/ngram-overlap-rate").fn(ctx, n=n).details["flagged_rows"] == gram
        assert n == 13 or len(gram) > len(exact)  # n = 5 finds more than exact copies: the check can fail
    exact, _ = brute_overlap(cand.texts, refs.texts, 13)
    assert score("memo/exact-copy-rate", ctx).details["flagged_rows"] == exact


def test_dcr_copies_high_fresh_sample_near_five_percent(banking_train, banking_test, fake_embedder):
    refs, fresh = split_train(banking_train, seed=3)
    test = Context(banking_test.subsample(600, 0), embedder=fake_embedder)
    ref = Context(corpus("ref", refs), embedder=fake_embedder)
    copies = Context(corpus("copies", refs[:300]), embedder=fake_embedder, reference=ref, test=test)
    clean = Context(corpus("fresh", fresh), embedder=fake_embedder, reference=ref, test=test)
    hi = score("memo/dcr-closer-than-holdout", copies)
    lo = score("memo/dcr-closer-than-holdout", clean)
    assert hi.value > 0.95, hi.details
    assert lo.value < 0.15 and lo.ci[0] < 0.05 + 0.05, lo.details
    assert hi.details["copies"] >= 290 and lo.details["copies"] < 15
    # brute force on the small matrices: nearest-reference cosine distances and the holdout quantile
    R = ref.embeddings
    d_test = 1 - (test.embeddings @ R.T).max(axis=1)
    d_syn = 1 - (clean.embeddings @ R.T).max(axis=1)
    thr = np.quantile(d_test, 0.05)
    assert lo.details["threshold"] == pytest.approx(thr, abs=1e-5)
    assert lo.value == pytest.approx(np.mean(d_syn <= thr + 1e-6), abs=2 / len(d_syn))


# ----------------------------------------------------------------------------- contamination

@pytest.fixture(scope="module")
def contaminated(clinc_gpt, banking_test):
    rng = random.Random(5)
    texts = list(clinc_gpt.texts)
    pool = list(dict.fromkeys(banking_test.texts))
    long_ = [t for t in pool if len(tokenize(t)) >= 16]
    short = [t for t in pool if len(tokenize(t)) < 13]
    planted_texts = []
    for t in rng.sample(long_, 12):  # embedded in a longer row: no exact match, a shared 13-gram
        planted_texts.append("Customer message: " + t + " Thanks in advance")
    for t in rng.sample(short, 13):  # short rows: exact match after normalisation only
        planted_texts.append(" " + t.upper() + " ")
    for t in planted_texts:
        texts.insert(rng.randrange(len(texts) + 1), t)
    planted = sorted(i for i, t in enumerate(texts) if t in set(planted_texts))
    assert len(planted) == 25
    return corpus("contaminated", texts), planted


def test_test_ngram_overlap_flags_exactly_the_planted_rows(contaminated, banking_test):
    cand, planted = contaminated
    s = score("contam/test-ngram-overlap", Context(cand, test=Context(banking_test)))
    assert s.details["flagged_rows"] == planted, s.details["examples"]
    assert s.details["exact_matches"] == 13 and s.details["ngram_matches"] == 12
    assert s.value == pytest.approx(25 / len(cand))
    for e in s.details["examples"]:
        assert e["test_text"] == banking_test.texts[e["test_row"]][:160]
    clean = score("contam/test-ngram-overlap", Context(corpus("clean", [t for i, t in enumerate(cand.texts)
                                                                         if i not in set(planted)]),
                                                       test=Context(banking_test)))
    assert clean.value == 0


def test_test_near_match_finds_paraphrased_test_rows(clinc_gpt, banking_test, real_embedder):
    rng = random.Random(7)
    test = banking_test.subsample(800, 0)
    pool = [i for i in range(len(test)) if 6 <= len(tokenize(test.texts[i])) <= 11]
    # light paraphrases of 6-11 word test rows ('Hi, ' prefixed): no exact match and too short for a 13-gram
    para = ["Hi, " + test.texts[i] for i in rng.sample(pool, 20)]
    texts = list(clinc_gpt.texts[:300])
    rows = sorted(rng.sample(range(320), 20))
    for r, t in zip(rows, para):
        texts.insert(r, t)
    cand = corpus("para", texts)
    ctx = Context(cand, embedder=real_embedder, test=Context(test, embedder=real_embedder))
    assert score("contam/test-ngram-overlap", ctx).value == 0  # the n-gram check cannot see them
    near = score("contam/test-near-match", ctx)
    flagged = set(near.details["flagged_rows"])
    # measured on 496 such rows with all-MiniLM-L6-v2: 94% keep cosine >= 0.95 to their source
    assert len(flagged & set(rows)) >= 16, (sorted(flagged), rows)
    assert len(flagged - set(rows)) <= 2, near.details["examples"]
    brute = (ctx.embeddings @ ctx.test.embeddings.T).max(axis=1)  # small: 320 x 800
    assert near.details["flagged_rows"] == [int(i) for i in np.flatnonzero(brute >= 0.95 - 1e-6)]
    loose = metrics.get("contam/test-near-match").fn(ctx, threshold=0.6).details["flagged_rows"]
    assert loose == [int(i) for i in np.flatnonzero(brute >= 0.6 - 1e-6)] and len(loose) > len(flagged)
    for e in near.details["examples"]:
        assert e["similarity"] >= 0.95 and e["test_text"] == test.texts[e["test_row"]][:160]


# ----------------------------------------------------------------------------- label faithfulness

@pytest.fixture(scope="module")
def label_sets(banking_train):
    """15 banking77 classes; a clean candidate and a disjoint clean reference of 40 rows per class each,
    and the candidate with 20% of its labels swapped to another random class (seeded)."""
    rng = random.Random(0)
    classes = rng.sample(sorted(set(banking_train.labels)), 15)
    by: dict[str, list[str]] = {}
    for t, lab in zip(banking_train.texts, banking_train.labels):
        if lab in classes:
            by.setdefault(lab, []).append(t)
    cand, ref = [], []
    for lab in classes:
        ts = rng.sample(by[lab], 80)
        cand += [(t, lab) for t in ts[:40]]
        ref += [(t, lab) for t in ts[40:]]
    rng.shuffle(cand)
    rng.shuffle(ref)
    noisy = list(cand)
    planted = set(rng.sample(range(len(cand)), len(cand) // 5))
    for i in planted:
        t, lab = noisy[i]
        noisy[i] = (t, rng.choice([c for c in classes if c != lab]))

    def mk(name, rows):
        return corpus(name, [t for t, _ in rows], [lab for _, lab in rows])

    return mk("clean", cand), mk("noisy", noisy), mk("ref", ref), planted


def test_label_noise_found_by_confident_learning_and_reference_agreement(label_sets, real_embedder):
    clean, noisy, ref, planted = label_sets
    refc = Context(ref, embedder=real_embedder)
    out = {}
    for c in (clean, noisy):
        ctx = Context(c, seed=0, embedder=real_embedder, reference=refc)
        out[c.name] = (score("faith/label-issue-rate", ctx), score("faith/reference-agreement", ctx))
    issues = out["noisy"][0]
    flagged = set(issues.details["flagged_rows"])
    tp = len(flagged & planted)
    precision, recall = tp / max(1, len(flagged)), tp / len(planted)
    # measured (seed 0, all-MiniLM-L6-v2): precision 0.85, recall 0.84; clean set flags 0.5%
    assert precision >= 0.65 and recall >= 0.65, f"precision {precision:.3f} recall {recall:.3f}"
    assert out["clean"][0].value <= 0.05, out["clean"][0].details["examples"]
    for e in issues.details["examples"]:
        assert e["label"] == noisy.labels[e["row"]] and e["suggested"] != e["label"]
    a_clean, a_noisy = out["clean"][1].value, out["noisy"][1].value
    # measured: 0.96 clean vs 0.76 noisy (= 0.8 x 0.95: the noisy rows disagree, the rest agree as before)
    assert a_clean > 0.9 and a_noisy < a_clean - 0.12 and out["noisy"][1].ci[1] < out["clean"][1].ci[0], \
        f"agreement clean {a_clean:.3f} noisy {a_noisy:.3f}"
    d = out["noisy"][1].details
    assert d["left_out"] == 0 and d["scored"] == len(noisy)
    counts = [c["count"] for c in d["top_confusions"]]
    assert counts == sorted(counts, reverse=True) and 0 < sum(counts) <= d["scored"] - d["agree"]
    assert sum(c["rows"] for c in d["per_class"].values()) == d["scored"]
    assert sum(c["agree"] for c in d["per_class"].values()) == d["agree"]
    worst = [r["row"] for r in d["least_agreeing"]]
    assert len(worst) == 10 and len(set(worst) & planted) >= 8


def test_reference_agreement_leaves_out_unknown_labels(label_sets, fake_embedder):
    clean, _, ref, _ = label_sets
    labels = list(clean.labels)
    for i in range(10):
        labels[i] = "not_a_banking_intent"
    c = corpus("x", clean.texts, labels)
    s = score("faith/reference-agreement", Context(c, embedder=fake_embedder, reference=Context(ref, embedder=fake_embedder)))
    assert s.details["left_out"] == 10 and s.details["labels_not_in_reference"] == ["not_a_banking_intent"]
    assert s.details["scored"] == len(c) - 10


def test_label_issue_rate_small_classes_left_out_and_seeded(label_sets, fake_embedder):
    clean, noisy, _, _ = label_sets
    labels = list(noisy.labels)
    labels[:3] = ["tiny"] * 3
    c = corpus("x", noisy.texts, labels)
    a = score("faith/label-issue-rate", Context(c, seed=1, embedder=fake_embedder))
    b = score("faith/label-issue-rate", Context(c, seed=1, embedder=fake_embedder))
    assert a.details["small_classes"] == ["tiny"] and a.details["left_out"] == 3
    assert a.value == b.value and a.details["flagged_rows"] == b.details["flagged_rows"]
    assert all(r >= 3 for r in a.details["flagged_rows"])  # the 'tiny' rows are never scored


# ----------------------------------------------------------------------------- runner

def test_through_the_runner(tmp_path, memorised, banking_test, fake_embedder):
    from harness.run.runner import RunConfig, run

    ref, cand, _, _ = memorised
    labelled_ref = corpus("ref", ref.texts, ["a" if i % 2 else "b" for i in range(len(ref))])
    labelled = corpus("cand", cand.texts, ["a" if i % 2 else "b" for i in range(len(cand))])
    specs = metrics.select(["memo", "contam", "faith"])
    assert len(specs) == 7
    out = run([(labelled, "candidate")], labelled_ref, specs, tmp_path, RunConfig(progress=False),
              log=lambda m: None, embedder=fake_embedder, test=banking_test.subsample(300, 0))
    got = {r.metric: r.value for r in out.results}
    assert set(got) == {s.name for s in specs}, out.skipped
    assert got["memo/exact-copy-rate"] == pytest.approx(15 / len(cand))
    assert got["memo/ngram-overlap-rate"] == pytest.approx(30 / len(cand))
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        assert json.loads(line)["metric"] in got
    assert np.isfinite(list(got.values())).all()
