"""harness.stats, the one copy of each statistic: checked against scipy / scikit-learn on real data
(word counts of the ChatGPT and crowd paraphrases of CLINC150) and seeded random embeddings."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats as st

from harness import stats as S
from harness.stats import conformal, knn, rank, resampling
from tests.conftest import ROOT, read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"


@pytest.fixture(scope="module")
def gpt_words():
    return np.array([len(r["text"].split()) for r in read_jsonl(shared(f"{CLINC}/gpt.jsonl"))], dtype=float)


@pytest.fixture(scope="module")
def human_words():
    return np.array([len(r["text"].split()) for r in read_jsonl(shared(f"{CLINC}/human.jsonl"))], dtype=float)


# ----------------------------------------------------------------------------- the package


def test_package_exports_and_import_is_light():
    for name in ("bootstrap_ci", "normal_ci", "wilson_ci", "hedges_g", "cliffs_delta", "mcnemar_exact", "bh_adjust",
                 "newcombe_diff_ci", "t_interval", "t95", "spearman_interval", "conformal_outliers", "permutation_pvalue"):
        assert callable(getattr(S, name)), name
    code = ("import sys, harness, harness.stats, harness.stats.knn, harness.stats.rank; "
            "bad = [m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_old_places_reexport_the_one_copy():
    from harness.analysis import comparison, validity
    from harness.metrics.direct import distance, faithfulness
    from harness.run import flags

    assert distance.knn_radii is knn.knn_radii and distance.delong_auc is rank.delong_auc
    assert faithfulness.nearest is knn.nearest
    assert validity.spearman_interval is rank.spearman_interval
    assert flags.conformal_outliers is conformal.conformal_outliers
    assert comparison.permutation_pvalue is resampling.permutation_pvalue


# ----------------------------------------------------------------------------- intervals


def test_t_quantile_and_t_interval_match_scipy(gpt_words):
    for df in (1, 2, 4, 9, 29, 2.5, 1000):
        assert S.t95(df) == st.t.ppf(0.975, df)
        assert S.t_quantile(0.95, df) == st.t.ppf(0.95, df)
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 30):
        v = gpt_words[rng.choice(len(gpt_words), n, replace=False)]
        want = st.t.interval(0.95, n - 1, loc=v.mean(), scale=st.sem(v))
        assert S.t_interval(v) == pytest.approx(want, rel=1e-12)
        want90 = st.t.interval(0.9, n - 1, loc=v.mean(), scale=st.sem(v))
        assert S.t_interval(v, level=0.9) == pytest.approx(want90, rel=1e-12)
        assert S.t_half_width(v) == pytest.approx((want[1] - want[0]) / 2, rel=1e-12)
    lo, hi = S.t_interval([0.97, 0.99, 1.0], 0.0, 1.0)
    assert hi == 1.0 and lo < 0.97
    assert S.t_interval([0.5]) is None and math.isnan(S.t_half_width([0.5]))


def test_welch_interval_matches_scipy(gpt_words, human_words):
    a, b = gpt_words[:400], human_words[:250]
    want = st.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert S.welch_diff_ci(a, b) == pytest.approx((want.low, want.high), rel=1e-10)
    assert S.welch_diff_ci([2.0, 2.0], [3.0, 3.0]) == (1.0, 1.0)


def test_wilson_and_newcombe_match_scipy_binomtest(gpt_words, human_words):
    for k, n in ((0, 12), (3, 40), (int((gpt_words > 10).sum()), len(gpt_words)), (25, 25)):
        ci = st.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert S.wilson_ci(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert S.wilson_ci(0, 0) is None
    # Newcombe's method 10 from scipy's Wilson intervals of the two proportions
    ka, na = int((gpt_words > 12).sum()), len(gpt_words)
    kb, nb = int((human_words > 12).sum()), len(human_words)
    wa, wb = st.binomtest(ka, na).proportion_ci(method="wilson"), st.binomtest(kb, nb).proportion_ci(method="wilson")
    pa, pb = ka / na, kb / nb
    want = (pb - pa - math.hypot(pb - wb.low, wa.high - pa), pb - pa + math.hypot(wb.high - pb, pa - wa.low))
    assert S.newcombe_diff_ci(ka, na, kb, nb) == pytest.approx(want, abs=1e-12)


def test_normal_ci_clips():
    assert S.normal_ci(0.98, 0.02, 0.0, 1.0) == (0.98 - S.Z95 * 0.02, 1.0)
    assert S.Z95 == pytest.approx(st.norm.ppf(0.975), rel=1e-15)


def test_percentile_interval_is_numpy_quantiles():
    reps = np.random.default_rng(3).normal(size=999)
    assert S.percentile_interval(reps) == tuple(np.quantile(reps, [(1 - 0.95) / 2, 1 - (1 - 0.95) / 2]))
    assert S.percentile_interval(reps, tails=(0.025, 0.975)) == (np.quantile(reps, 0.025), np.quantile(reps, 0.975))
    assert S.percentile_interval(reps[:10], min_count=11) is None


# ----------------------------------------------------------------------------- resampling


def test_bootstrap_ci_is_close_to_scipy_bootstrap(gpt_words):
    x = gpt_words[:2000]
    got = S.bootstrap_ci(x, n_boot=4000, seed=1)
    want = st.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert got[0] == pytest.approx(want.low, abs=0.1 * se) and got[1] == pytest.approx(want.high, abs=0.1 * se)
    assert got[0] < x.mean() < got[1]
    sd = S.bootstrap_ci(x, "std", n_boot=500, seed=1)
    want = st.bootstrap((x,), lambda a: a.std(ddof=1), n_resamples=500, method="percentile", random_state=1,
                        vectorized=False).confidence_interval
    width = want.high - want.low
    assert sd[0] == pytest.approx(want.low, abs=0.15 * width) and sd[1] == pytest.approx(want.high, abs=0.15 * width)
    assert S.bootstrap_ci([3.0]) is None


def test_grouped_bootstrap_has_the_row_bootstrap_distribution(gpt_words):
    big = np.tile(gpt_words, 12)  # > 100k rows of at most a few dozen distinct values: the grouped path
    grouped = S.bootstrap_ci(big, n_boot=2000, seed=0)
    rows = S.bootstrap_ci(big, n_boot=2000, seed=0, grouped_from=10**9)
    se = big.std(ddof=1) / math.sqrt(len(big))
    assert grouped != rows
    assert grouped == pytest.approx(rows, abs=0.3 * se)  # Monte Carlo error of a 2.5% quantile of 2000: ~0.1 se


def test_bootstrap_replicates_draw_in_blocks_and_skip_undefined(gpt_words):
    x = gpt_words[:500]
    reps = S.bootstrap_replicates(len(x), lambda idx: x[idx].mean(axis=1), 1000, np.random.default_rng(4), 64)
    rng = np.random.default_rng(4)
    want = np.concatenate([x[rng.integers(0, len(x), size=(min(64, 1000 - i), len(x)))].mean(axis=1)
                           for i in range(0, 1000, 64)])
    assert np.array_equal(reps, want)
    some = S.bootstrap_replicates(len(x), lambda idx: [] if idx[0, 0] % 2 else [1.0], 200, np.random.default_rng(0), 1)
    assert 50 < len(some) < 150
    W = S.bootstrap_weights(np.random.default_rng(0), 50, 7)
    assert W.shape == (7, 50) and (W.sum(axis=1) == 50).all()


def test_permutation_pvalue_matches_scipy_permutation_test(gpt_words, human_words):
    a, b = gpt_words[:60], human_words[:50]
    res = st.permutation_test((a, b), lambda x, y: abs(x.mean() - y.mean()), permutation_type="independent",
                              n_resamples=1999, alternative="greater", random_state=0, vectorized=False)
    p, used = S.permutation_pvalue(abs(a.mean() - b.mean()), res.null_distribution)
    assert used == 1999 and p == pytest.approx(res.pvalue, rel=1e-12)
    assert S.permutation_pvalue(0.0, [np.nan]) == (pytest.approx(math.nan, nan_ok=True), 0)
    assert S.permutation_pvalue(1.0, [1.0 + 1e-13, -1.0, 0.5], tol=0.0) == (0.75, 3)


# ----------------------------------------------------------------------------- rank


def test_spearman_interval_matches_scipy(gpt_words, human_words):
    x, y = gpt_words[:300], gpt_words[300:600] + 0.5 * gpt_words[:300]
    r = S.spearman_interval(x, y, method="fisher")
    assert r["rho"] == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
    ci = st.pearsonr(st.rankdata(x), st.rankdata(y)).confidence_interval(0.95)
    assert (r["low"], r["high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    bw = S.spearman_interval(x, y)  # Bonett & Wright: wider than Fisher's for |rho| > 0
    z, se = math.atanh(bw["rho"]), math.sqrt((1 + bw["rho"] ** 2 / 2) / (len(x) - 3))
    assert bw["low"] == pytest.approx(math.tanh(z - st.norm.ppf(0.975) * se), abs=1e-12)
    assert bw["low"] < r["low"] < r["high"] < bw["high"]
    assert S.spearman_interval(x, np.zeros_like(x))["constant"]


def test_pooled_rank_correlations_match_scipy_within_one_block_and_weight_blocks(gpt_words, human_words):
    x, y = gpt_words[:40], human_words[:40]
    rho, tau, n, k = S.pooled_rank_correlations([(x, y)])
    assert rho[0] == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
    assert tau[0] == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-12)
    assert (n[0], k[0]) == (40, 1)
    x2, y2 = gpt_words[100:125], gpt_words[200:225]
    rho2, *_ = S.pooled_rank_correlations([(x, y), (x2, y2)])
    want = (40 * st.spearmanr(x, y).statistic + 25 * st.spearmanr(x2, y2).statistic) / 65
    assert rho2[0] == pytest.approx(want, abs=1e-12)
    idx = np.random.default_rng(0).integers(0, 40, size=(5, 40))
    reps, *_ = S.pooled_rank_correlations([(x, y)], [idx])
    assert reps[2] == pytest.approx(st.spearmanr(x[idx[2]], y[idx[2]]).statistic, abs=1e-12)


def test_delong_auc_matches_sklearn(gpt_words, human_words):
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(500), np.zeros(500)]
    s = np.r_[gpt_words[:500], human_words[:500]]
    auc, se = S.delong_auc(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12) and 0 < se < 0.05


# ----------------------------------------------------------------------------- conformal


def test_conformal_pvalues_count_and_bh_matches_scipy(gpt_words, human_words):
    ref, s = human_words, gpt_words[:500]
    p = S.conformal_pvalues(s, ref)
    want = np.array([(1 + (ref >= v).sum()) / (len(ref) + 1) for v in s])
    assert np.array_equal(p, want)
    q = np.array(S.bh_adjust(p))
    assert np.allclose(q, st.false_discovery_control(p, method="bh"), rtol=1e-12, atol=0)
    for fdr in (0.05, 0.2, 0.5):
        assert S.bh_select(p, fdr) == sorted(np.flatnonzero(q <= fdr + 1e-15).tolist())
        assert S.conformal_outliers(s, ref, fdr) == S.bh_select(p, fdr)
    assert S.conformal_outliers([], ref) == [] and S.conformal_outliers(s, []) == []


def test_conformal_outliers_control_false_discoveries(human_words):
    """Rows drawn from the reference's own distribution: BH over conformal p-values flags (almost) none."""
    rng = np.random.default_rng(0)
    jitter = human_words + rng.random(len(human_words))  # continuous scores: no ties
    fdp = []
    for _ in range(40):
        perm = rng.permutation(len(jitter))
        fdp.append(len(S.conformal_outliers(jitter[perm[:300]], jitter[perm[300:]], fdr=0.1)) > 0)
    assert np.mean(fdp) <= 0.25  # under the global null the FDR is the chance of any flag: <= 0.1 (+ noise)


# ----------------------------------------------------------------------------- effects


def test_effect_sizes_and_mcnemar_match_references(gpt_words, human_words):
    a, b = human_words[:300], gpt_words[:200]
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    J = 1 - 3 / (4 * (len(a) + len(b)) - 9)
    assert S.hedges_g(a, b) == pytest.approx(J * (b.mean() - a.mean()) / pooled, rel=1e-12)
    diff = np.sign(b[:, None] - a[None, :])
    assert S.cliffs_delta(a, b) == pytest.approx(diff.mean(), abs=1e-12)
    for bb, cc in ((0, 0), (2, 10), (7, 19), (30, 31)):
        want = 1.0 if bb + cc == 0 else st.binomtest(min(bb, cc), bb + cc, 0.5).pvalue
        assert S.mcnemar_exact(bb, cc) == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------------------------- k-NN


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(30, 32))
    X = (centres[rng.integers(0, 30, 2600)] + 0.6 * rng.normal(size=(2600, 32))).astype(np.float32)
    X[7] = X[8]  # an exact twin
    return X


@pytest.mark.parametrize("n, symmetric", [(600, False), (600, True), (2600, None)])
def test_knn_radii_equal_sklearn_brute_force(embeddings, n, symmetric):
    from sklearn.metrics.pairwise import euclidean_distances
    from sklearn.neighbors import NearestNeighbors

    X = embeddings[:n]
    k = 5
    r, refined = knn.knn_radii(X, k, block_rows=97 if n < 2600 else None, symmetric=symmetric)
    assert r.dtype == np.float32 and refined > 0
    want = np.sort(euclidean_distances(X), axis=1)[:, k]  # the prdc package's arithmetic: equal value for value
    assert np.array_equal(r, want)
    d, _ = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X).kneighbors(X)
    assert np.allclose(r, d[:, k], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        knn.knn_radii(X[:5], 5)


def test_nearest_rows_equal_brute_force(embeddings):
    U = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    Q, B = U[:300].astype(np.float64), U[300:1500].astype(np.float64)
    d, j = knn.nearest(Q, B)
    cos = 1 - Q @ B.T
    assert np.array_equal(j, cos.argmin(axis=1))
    assert np.allclose(d, cos.min(axis=1).clip(0, 2), atol=1e-12)
    V = U[:800]
    G = ((V[:, None, :].astype(np.float64) - V[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(G, np.inf)
    other = knn.nearest_other(V)
    assert np.allclose(G[np.arange(800), other], G.min(axis=1), atol=1e-6) and (other != np.arange(800)).all()
    rows = np.array([3, 7, 8, 500])
    some = knn.nearest_other(V, rows)
    assert (some != rows).all() and set(some[1:3]) == {7, 8}  # the twins find each other
    assert np.allclose(G[rows, some], G[rows].min(axis=1), atol=1e-6)
