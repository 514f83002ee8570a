"""Distribution distance to the reference: reference implementations, identity and separation on real data."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness import metrics
from harness.data.load import load_corpus
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.direct import distance as dist
from tests.conftest import FakeEmbedder, shared

HAS_MAUVE = importlib.util.find_spec("mauve") is not None  # optional (GPL) extra
DISTANCE = [n for n in metrics.names() if n.startswith("distance/") and (HAS_MAUVE or n != "distance/mauve")]
PERCLASS = ["perclass/precision", "perclass/recall", "perclass/coverage", "perclass/mauve"]
N = 200  # rows per side in the real-data tests


def package_prdc(real, fake, k=5):
    compute_prdc = pytest.importorskip("prdc").compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints the sizes
        return {key: float(v) for key, v in compute_prdc(real, fake, k).items()}


def rows(corpus, idx, name):
    idx = sorted(int(i) for i in idx)
    return dataclasses.replace(corpus, name=name, texts=tuple(corpus.texts[i] for i in idx),
                               labels=None if corpus.labels is None else tuple(corpus.labels[i] for i in idx),
                               fields={}, sample=None)


def unit(rng, n, d, shift=0.0):
    X = rng.normal(size=(n, d)) + shift
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single-threaded BLAS/OpenMP: these inputs are small, and spinning threads on shared cores
    cost more than they bring."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Two disjoint random halves of banking77 (200 rows each: bank questions) and 200 SST-2
    sentences (movie reviews, a clearly different distribution), embedded once with the real
    default embedder into a private cache."""
    from harness.resources.embedder import Embedder, resolve_embedder

    emb = Embedder(resolve_embedder("default"), cache_dir=tmp_path_factory.mktemp("distance-emb"), progress=False)
    bank = load_corpus(str(shared("banking77_real/train.jsonl"))).subsample(2 * N, 0)
    perm = np.random.default_rng(0).permutation(len(bank))
    a, b = rows(bank, perm[:N], "bank-a"), rows(bank, perm[N:], "bank-b")
    other = load_corpus(str(shared("sst2_real/glue_validation.jsonl")), name="sst2").subsample(N, 0)
    for c in (a, b, other):
        emb.embed(c.texts)
    return emb, a, b, other


def ctx_for(cand, ref, emb, seed=0):
    return Context(cand, seed, emb, reference=Context(ref, seed, emb))


# ----------------------------------------------------------------------------- PRDC against the prdc package


@pytest.mark.parametrize("n,m,d,k,shift", [(120, 150, 8, 5, 0.0), (200, 200, 64, 5, 0.3), (150, 130, 384, 3, 0.1)])
def test_prdc_equals_package_on_random_data(n, m, d, k, shift):
    rng = np.random.default_rng(n + d)
    real, fake = unit(rng, n, d), unit(rng, m, d, shift)
    assert dist.prdc(real, fake, k).values() == package_prdc(real, fake, k)


def test_prdc_equals_package_on_real_embeddings(real):
    emb, a, b, other = real
    A, B, G = emb.embed(a.texts), emb.embed(b.texts), emb.embed(other.texts)
    same = dist.prdc(A, B, 5)
    assert same.values() == package_prdc(A, B, 5)
    assert dist.prdc(A, G, 5).values() == package_prdc(A, G, 5)
    assert dist.prdc(A.astype(np.float64), B.astype(np.float64), 5).values() == \
        package_prdc(A.astype(np.float64), B.astype(np.float64), 5)


@pytest.mark.parametrize("block", [1, 3, 7])
def test_prdc_in_blocks_smaller_than_the_data(real, block):
    emb, a, b, _ = real
    A, B = emb.embed(a.texts)[:90], emb.embed(b.texts)[:70]
    whole = dist.prdc(A, B, 5, block_rows=10_000)
    chunked = dist.prdc(A, B, 5, block_rows=block)
    assert chunked.values() == whole.values() == package_prdc(A, B, 5)
    assert np.array_equal(chunked.fake_counts, whole.fake_counts)
    assert np.array_equal(chunked.real_recalled, whole.real_recalled)


def test_prdc_exact_with_ties_and_duplicates():
    """Integer points: many distances tie exactly with a k-NN radius, and rows repeat."""
    rng = np.random.default_rng(3)
    real = rng.integers(0, 3, size=(200, 4)).astype(np.float32)
    fake = rng.integers(0, 4, size=(180, 4)).astype(np.float32)
    for k in (3, 5):
        assert dist.prdc(real, fake, k, block_rows=6).values() == package_prdc(real, fake, k)


def test_prdc_settles_near_ties_below_float32_resolution():
    """float64 points 1e-7 off distinct lattice nodes: many distances tie with a radius up to
    ~1e-7, far below what the float32 screening resolves (and far above float64 rounding), so
    every such comparison must be redone exactly."""
    rng = np.random.default_rng(4)
    nodes = np.stack(np.meshgrid(*[np.arange(6)] * 3), -1).reshape(-1, 3).astype(np.float64)
    real = nodes[rng.choice(len(nodes), 150, replace=False)] + rng.normal(scale=1e-7, size=(150, 3))
    fake = nodes[rng.choice(len(nodes), 140, replace=False)] + rng.normal(scale=1e-7, size=(140, 3))
    res = dist.prdc(real, fake, 5, block_rows=16)
    assert res.values() == package_prdc(real, fake, 5)
    assert res.refined > 5 * (150 + 140)


def test_knn_radii_match_brute_force():
    from sklearn.metrics import pairwise_distances

    X = unit(np.random.default_rng(5), 80, 16)
    D = pairwise_distances(X, X)
    np.fill_diagonal(D, 0)
    r, _ = dist.knn_radii(X, 4, block_rows=9)
    assert np.array_equal(r, np.sort(D, axis=1)[:, 4])


def test_prdc_identity_and_separation(real):
    emb, a, b, other = real
    same = dist.prdc(emb.embed(a.texts), emb.embed(b.texts), 5)
    far = dist.prdc(emb.embed(a.texts), emb.embed(other.texts), 5)
    assert same.precision > 0.85 and same.recall > 0.85 and same.coverage > 0.85
    assert 0.75 < same.density < 1.25
    assert far.precision < 0.2 and far.coverage < 0.1 and far.density < 0.1


# ----------------------------------------------------------------------------- Fréchet, MMD, AUC against direct computations


def frechet_sqrtm(X, Y):
    from scipy.linalg import sqrtm

    mu1, mu2 = X.mean(0), Y.mean(0)
    c1, c2 = np.cov(X, rowvar=False), np.cov(Y, rowvar=False)
    covmean = sqrtm(c1 @ c2)
    if np.iscomplexobj(covmean):
        assert np.abs(covmean.imag).max() < 1e-6
        covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(400, 5), (600, 32)])
def test_frechet_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(d)
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.2
    got = dist.frechet_from_moments(X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False))
    assert got == pytest.approx(frechet_sqrtm(X, Y), rel=1e-8)


def test_frechet_on_real_embeddings(real):
    emb, a, b, other = real
    s_same = metrics.get("distance/frechet")(ctx_for(a, b, emb))
    s_far = metrics.get("distance/frechet")(ctx_for(other, b, emb))
    X, Y = emb.embed(other.texts).astype(np.float64), emb.embed(b.texts).astype(np.float64)
    assert s_far.value == pytest.approx(
        dist.frechet_from_moments(X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False)))
    assert s_far.value > 5 * s_same.value
    assert s_same.details["mean_term"] + s_same.details["covariance_term"] == pytest.approx(s_same.value)
    assert s_same.details["rank_deficient"]  # 200 rows < 384 dimensions: singular covariances, still finite
    assert dist.frechet_from_moments(X.mean(0), np.cov(X, rowvar=False), X.mean(0), np.cov(X, rowvar=False)) < 1e-9
    # against scipy's sqrtm where it is well conditioned (more rows than dimensions)
    Xs, Ys = X[:, :48], Y[:, :48]
    got = dist.frechet_from_moments(Xs.mean(0), np.cov(Xs, rowvar=False), Ys.mean(0), np.cov(Ys, rowvar=False))
    assert got == pytest.approx(frechet_sqrtm(Xs, Ys), rel=1e-6)


def mmd2_brute(X, Y, s):
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * s * s))  # noqa: E731
    n, m = len(X), len(Y)
    xx = sum(k(X[i], X[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(Y[i], Y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(X[i], Y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_unbiased_matches_brute_force():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(25, 3)), rng.normal(size=(30, 3)) + 0.4
    Z = np.vstack([X, Y])
    D = np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(-1))
    median = np.median(D[np.triu_indices(len(Z), 1)])
    value, bw, _ = dist.rbf_mmd2(X, Y)
    assert bw == pytest.approx(median, rel=1e-10)
    assert value == pytest.approx(mmd2_brute(X, Y, bw), rel=1e-10)
    assert dist.rbf_mmd2(X, Y, bandwidth=0.7)[0] == pytest.approx(mmd2_brute(X, Y, 0.7), rel=1e-10)


def test_mmd_permutation_null_matches_relabelled_statistic():
    """Each permutation statistic equals the estimator recomputed on the relabelled split."""
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(20, 4)), rng.normal(size=(15, 4)) + 1.0
    value, bw, p = dist.rbf_mmd2(X, Y, permutations=50, rng=np.random.default_rng(1))
    Z = np.vstack([X, Y])
    r = np.random.default_rng(1)
    null = []
    for _ in range(50):
        idx = r.permutation(len(Z))[:len(X)]
        mask = np.zeros(len(Z), bool)
        mask[idx] = True
        null.append(mmd2_brute(Z[mask], Z[~mask], bw))
    assert p == pytest.approx((1 + sum(v >= value for v in null)) / 51)
    assert p < 0.05


def test_delong_auc_matches_sklearn_and_brute_force_variance():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y * 0.8, 1)  # rounded: plenty of ties
    auc, se = dist.delong_auc(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])
    v10, v01 = psi.mean(1), psi.mean(0)
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    assert se == pytest.approx(np.sqrt(var), rel=1e-10)


def test_c2st_auc_is_roc_auc_of_out_of_fold_predictions(real):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    emb, a, b, other = real
    ctx = ctx_for(other, b, emb, seed=3)
    s = metrics.get("distance/c2st-embed")(ctx)
    # the same sample, folds and classifier rebuilt by hand from the metric's seeded rng
    rng = ctx.rng("distance/c2st-embed")
    ic, ir = dist._sample(rng, N, N), dist._sample(rng, N, N)
    Z = np.vstack([emb.embed(other.texts)[ic], emb.embed(b.texts)[ir]]).astype(np.float64)
    y = np.r_[np.ones(N, int), np.zeros(N, int)]
    cv = StratifiedKFold(5, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    p = cross_val_predict(LogisticRegression(C=1.0, max_iter=1000), Z, y, cv=cv, method="predict_proba")[:, 1]
    assert s.value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    top = s.details["most_synthetic_looking"]
    assert len(top) == 5 and top[0]["p_synthetic"] >= top[-1]["p_synthetic"]
    assert all(t["text"] == other.texts[t["row"]][:160] for t in top)


# ----------------------------------------------------------------------------- identity and separation on real data


def test_same_distribution_looks_the_same(real):
    emb, a, b, _ = real
    ctx = ctx_for(a, b, emb)
    got = {n: metrics.get(n)(ctx) for n in DISTANCE}
    for n, s in got.items():
        json.dumps(s.details)  # plain JSON, no numpy types
        assert s.ci is None or s.ci[0] <= s.value <= s.ci[1], n
    if HAS_MAUVE:
        assert got["distance/mauve"].value > 0.85
        assert len(got["distance/mauve"].details["per_seed"]) == 5
        assert got["distance/mauve"].details["num_buckets"] == N // 10
    assert 0.4 < got["distance/c2st-embed"].value < 0.6
    assert 0.4 < got["distance/c2st-tfidf"].value < 0.62
    # a permutation p-value is uniform under the null: > 0.01 fails 1% of seeds, not this fixed one
    assert got["distance/mmd"].details["p_value"] > 0.01 and abs(got["distance/mmd"].value) < 0.01
    assert got["distance/mmd"].details["estimator"] == "exact"
    assert got["distance/precision"].value > 0.85 and got["distance/recall"].value > 0.85
    assert got["distance/coverage"].value > 0.85 and 0.75 < got["distance/density"].value < 1.25


def test_different_datasets_are_told_apart(real):
    emb, a, b, other = real
    ctx = ctx_for(other, b, emb)
    got = {n: metrics.get(n)(ctx) for n in DISTANCE}
    if HAS_MAUVE:
        assert got["distance/mauve"].value < 0.1
    assert got["distance/c2st-embed"].value > 0.95 and got["distance/c2st-tfidf"].value > 0.95
    assert got["distance/mmd"].details["p_value"] <= 0.01 and got["distance/mmd"].value > 0.02
    assert got["distance/precision"].value < 0.2 and got["distance/coverage"].value < 0.1
    grams = got["distance/c2st-tfidf"].details
    assert len(grams["synthetic_ngrams"]) == 15 and len(grams["real_ngrams"]) == 15
    assert grams["synthetic_ngrams"][0][1] > 0 > grams["real_ngrams"][0][1]


def test_prdc_metrics_share_one_computation(real, monkeypatch):
    emb, a, b, _ = real
    ctx = ctx_for(a, b, emb)
    calls = []
    real_prdc = dist.prdc
    monkeypatch.setattr(dist, "prdc", lambda *args, **kw: calls.append(1) or real_prdc(*args, **kw))
    vals = {n: metrics.get(n)(ctx).value for n in ("distance/precision", "distance/recall",
                                                   "distance/density", "distance/coverage")}
    assert len(calls) == 1
    assert vals == {f"distance/{k}": v for k, v in package_prdc(emb.embed(b.texts), emb.embed(a.texts)).items()}


def test_mmd_subsamples_large_inputs(real):
    emb, a, b, _ = real
    s = dist.mmd_rbf(ctx_for(a, b, emb), permutations=20, max_exact=200, subsample=80)
    assert s.details["estimator"] == "subsample"
    assert (s.details["n_candidate"], s.details["n_reference"], s.details["of"]) == (80, 80, [N, N])


def test_balanced_sizes_are_reported(real):
    emb, a, b, other = real
    small = rows(other, range(120), "small")
    ctx = ctx_for(small, b, emb)
    assert metrics.get("distance/precision")(ctx).details["rows_per_side"] == 120
    assert metrics.get("distance/c2st-tfidf")(ctx).details["rows_per_side"] == 120
    if HAS_MAUVE:
        assert dist.mauve_score(ctx, seeds=1).details["rows_per_side"] == 120


# ----------------------------------------------------------------------------- skips


def test_too_few_rows_and_missing_mauve(real, monkeypatch):
    import sys

    emb, a, b, _ = real
    tiny = rows(a, range(4), "tiny")
    for n in ("distance/precision", "distance/c2st-embed", "distance/c2st-tfidf"):
        with pytest.raises(MetricSkipped, match="at least"):
            metrics.get(n)(ctx_for(tiny, b, emb))
    for n in ("distance/frechet", "distance/mmd"):
        with pytest.raises(MetricSkipped, match="at least 2 rows"):
            metrics.get(n)(ctx_for(rows(a, [0], "one"), b, emb))
    monkeypatch.setitem(sys.modules, "mauve", None)  # import mauve -> ImportError
    with pytest.raises(MetricSkipped, match=r"synthbench\[mauve\]"):
        metrics.get("distance/mauve")(ctx_for(a, b, emb))
    with pytest.raises(MetricSkipped, match="reference"):
        metrics.get("distance/frechet")(Context(a, 0, emb))


# ----------------------------------------------------------------------------- per class


def per_label(corpus, k, name):
    """The first ``k`` rows of every label (all labels kept, so none goes missing by sampling)."""
    seen: dict[str, int] = {}
    keep = []
    for i, lab in enumerate(corpus.labels):
        if seen.get(lab, 0) < k:
            seen[lab] = seen.get(lab, 0) + 1
            keep.append(i)
    return rows(corpus, keep, name)


@pytest.fixture(scope="module")
def clinc():
    base = "intent_paraphrases_chatgpt_vs_crowd/clinc150/"
    gpt = load_corpus(str(shared(base + "gpt.jsonl")), name="gpt")
    orig = load_corpus(str(shared(base + "orig_train.jsonl")), name="orig")
    return gpt, orig


def test_perclass_reports_labels_missing_from_the_reference(clinc):
    gpt, orig = clinc
    expected = sorted(set(gpt.labels) - set(orig.labels))
    assert len(expected) == 5  # intents the gpt file has and the crowd reference lacks
    cand, ref = per_label(gpt, 8, "gpt"), per_label(orig, 8, "orig")
    emb = FakeEmbedder()
    ctx = ctx_for(cand, ref, emb)
    s = metrics.get("perclass/precision")(ctx)
    assert s.details["missing_from_reference"] == expected
    assert s.details["missing_from_candidate"] == []
    per = s.details["per_class"]
    assert len(per) == s.details["classes_evaluated"] == len(set(orig.labels))
    assert s.value == pytest.approx(np.mean(list(per.values())), abs=1e-3)
    # one class by hand: 8 rows each side, so no subsampling
    lab = sorted(per)[0]
    X, Y = emb.embed(cand.texts), emb.embed(ref.texts)
    ic = [i for i, x in enumerate(cand.labels) if x == lab]
    ir = [i for i, x in enumerate(ref.labels) if x == lab]
    assert per[lab] == pytest.approx(dist.prdc(Y[ir], X[ic], 5).precision, abs=1e-4)
    for n in ("perclass/recall", "perclass/coverage"):
        assert metrics.get(n)(ctx).details["missing_from_reference"] == expected


def test_perclass_catches_matching_overall_but_not_within_classes(clinc):
    """The same rows with shuffled labels: global PRDC is unchanged, per-class PRDC collapses."""
    _, orig = clinc
    keep = sorted(set(orig.labels))[:12]
    sub = rows(orig, [i for i, lab in enumerate(orig.labels) if lab in keep], "orig")
    perm = np.random.default_rng(0).permutation(len(sub))
    a, b = rows(sub, perm[::2], "a"), rows(sub, perm[1::2], "b")
    shuffled = dataclasses.replace(a, name="shuffled",
                                   labels=tuple(np.random.default_rng(1).permutation(list(a.labels))))
    emb = FakeEmbedder()
    ok, bad = ctx_for(a, b, emb), ctx_for(shuffled, b, emb)
    assert metrics.get("distance/precision")(ok).value == metrics.get("distance/precision")(bad).value
    for n in ("perclass/precision", "perclass/coverage") + (("perclass/mauve",) if HAS_MAUVE else ()):
        good = metrics.get(n)(ok)
        assert good.details["classes_evaluated"] == 12
        assert metrics.get(n)(bad).value < good.value - 0.2, n


def test_perclass_needs_labelled_reference(clinc):
    gpt, orig = clinc
    cand = per_label(gpt, 6, "gpt")
    ref = dataclasses.replace(per_label(orig, 6, "orig"), labels=None)
    with pytest.raises(MetricSkipped, match="labelled reference"):
        metrics.get("perclass/precision")(ctx_for(cand, ref, FakeEmbedder()))


# ----------------------------------------------------------------------------- through the runner


def test_runner_skips_reference_row_and_computes_candidates(tmp_path, clinc, fake_embedder):
    from harness.run.runner import RunConfig, applicable, run

    gpt, orig = clinc
    ref, cand = per_label(orig, 6, "orig"), per_label(gpt, 6, "gpt")
    names = DISTANCE + PERCLASS
    out = run([(ref, "reference"), (cand, "candidate")], ref, [metrics.get(n) for n in names], tmp_path,
              RunConfig(progress=False), log=lambda m: None, embedder=fake_embedder)
    # the reference row gets no value for a comparison with itself (listed as skipped, if at all,
    # with that reason), and the planner says why
    assert not [r for r in out.results if r.dataset == "orig"]
    assert all(r == "compares a dataset with the reference" for d, _, r in out.skipped if d == "orig")
    assert all(applicable(metrics.get(n), ref, ref, "reference") == "compares a dataset with the reference"
               for n in names)
    done = {r.metric for r in out.results if r.dataset == "gpt"}
    assert set(DISTANCE) <= done
    assert {"perclass/precision", "perclass/recall", "perclass/coverage"} <= done
    # perclass/mauve needs 20 rows per class: skipped with a reason, not an error
    assert [r for d, m, r in out.skipped if m == "perclass/mauve" and d == "gpt"] == [
        "no shared label has at least 20 rows on both sides" if HAS_MAUVE
        else "MAUVE needs the optional package mauve-text: pip install 'synthbench[mauve]'"]
    assert fake_embedder.calls == 2
    recs = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(r["dataset"] == "gpt" and r["signature"]["data"]["reference"] == ref.fingerprint for r in recs)
    assert {r["metric"]: r["higher_is_better"] for r in recs}["distance/density"] is None
