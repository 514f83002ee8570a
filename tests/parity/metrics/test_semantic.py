"""Semantic diversity against brute-force pairwise computations, the vendi-score package and real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_distances

from harness import metrics
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.direct.semantic import aps_stats, pairwise_cosine_stats, vendi_form, vendi_score
from harness.types import Corpus
from tests.conftest import read_jsonl, shared


def brute(X):
    D = cosine_distances(X)
    n = len(X)
    return D[~np.eye(n, dtype=bool)].mean()


@pytest.mark.parametrize("n,d", [(3, 4), (50, 16), (700, 384)])
def test_exact_mean_matches_sklearn(n, d):
    X = np.random.default_rng(n).normal(size=(n, d))
    value, se, _ = pairwise_cosine_stats(X)
    assert value == pytest.approx(brute(X), abs=1e-10)
    assert se > 0


def test_interval_covers_population_value():
    """Rows drawn from a fixed population: the U-statistic interval covers its mean ~95% of the time."""
    rng = np.random.default_rng(1)
    pop = rng.normal(size=(4000, 8)) + np.array([1.5] + [0] * 7)
    truth = brute(pop[:2000])  # a good stand-in for the population value
    hits = 0
    for _ in range(150):
        X = pop[rng.choice(len(pop), 120, replace=False)]
        v, se, _ = pairwise_cosine_stats(X)
        hits += v - 1.96 * se <= truth <= v + 1.96 * se
    assert 0.85 <= hits / 150 <= 1.0


def test_metric_uses_context_embeddings(fake_embedder):
    c = Corpus("x", "x", "text", ("a b c", "d e f", "a b d", "x y z"))
    ctx = Context(c, embedder=fake_embedder)
    s = metrics.get("semantic/pairwise-cosine-distance")(ctx)
    assert s.value == pytest.approx(brute(fake_embedder.embed(c.texts)))
    assert s.ci[0] <= s.value <= s.ci[1]
    same = Corpus("y", "y", "text", ("a b c",) * 5)
    assert metrics.get("semantic/pairwise-cosine-distance")(Context(same, embedder=fake_embedder)).value == \
        pytest.approx(0.0, abs=1e-9)


def test_too_few_rows(fake_embedder):
    with pytest.raises(MetricSkipped):
        metrics.get("semantic/pairwise-cosine-distance")(Context(Corpus("x", "x", "text", ("a", "b")),
                                                                 embedder=fake_embedder))


# ============================================================================ issue 3: Vendi, chamfer,
# cluster entropy, reference coverage, per-class Vendi, APS


class ArrayEmbedder:
    """Hands back a fixed matrix: row i of X for the text str(i)."""

    identity = "array"

    def __init__(self, X):
        self.X = np.asarray(X, dtype=np.float32)

    def embed(self, texts, desc=""):
        return self.X[[int(t) for t in texts]]


def ctx_of(X, labels=None, reference=None, seed=0):
    X = np.asarray(X, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    c = Corpus("x", "x", "text", tuple(str(i) for i in range(len(X))),
               labels=tuple(labels) if labels is not None else None)
    return Context(c, seed=seed, embedder=ArrayEmbedder(X), reference=reference)


def unit(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def blobs(rng, n_per, centres, noise=0.05):
    """Rows scattered tightly around the given unit directions."""
    rows = [c + noise * rng.normal(size=(n, len(c))) for c, n in zip(centres, n_per)]
    return unit(np.vstack(rows)), np.repeat(np.arange(len(centres)), n_per)


# ---------------------------------------------------------------- Vendi

@pytest.mark.parametrize("n,d,seed", [(40, 16, 0), (30, 64, 1), (600, 32, 2), (5, 384, 3)])
def test_vendi_matches_vendi_score_package(n, d, seed):
    vs = pytest.importorskip("vendi_score.vendi")
    X = np.random.default_rng(seed).normal(size=(n, d)) + 0.3  # not centred: a realistic cone
    U = unit(X)
    ours = vendi_score(X)
    assert ours == pytest.approx(vs.score_K(U @ U.T), rel=1e-9)   # kernel form, n x n
    assert ours == pytest.approx(vs.score_dual(X), rel=1e-9)      # their dual form
    assert ours == pytest.approx(vendi_score(X, chunk=7), rel=1e-12)  # chunked accumulation


def test_vendi_degenerate_cases():
    x = np.random.default_rng(0).normal(size=8)
    assert vendi_score(np.tile(x, (50, 1))) == pytest.approx(1.0, abs=1e-9)
    for n, d in [(6, 6), (10, 32)]:
        Q = np.linalg.qr(np.random.default_rng(n).normal(size=(d, n)))[0].T  # n orthonormal rows
        assert vendi_score(Q) == pytest.approx(n, rel=1e-9)
    # two groups of identical rows along orthogonal axes, sizes 3:1 -> exp(H(3/4, 1/4))
    X = np.array([[1.0, 0]] * 30 + [[0, 1.0]] * 10)
    assert vendi_score(X) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    s = metrics.get("semantic/vendi")(ctx_of(X))
    assert s.value == pytest.approx(vendi_score(X)) and s.details["form"] == "dual (d x d)"


# ---------------------------------------------------------------- chamfer

def test_chamfer_matches_brute_force_with_duplicates():
    rng = np.random.default_rng(3)
    X = unit(rng.normal(size=(300, 24)) + 0.2)
    X[10] = X[11]                       # an exact twin
    X[50] = X[60] = X[70]               # a triplet
    s = metrics.get("semantic/chamfer")(ctx_of(X))
    D = cosine_distances(X) + np.eye(len(X)) * 9
    nn = D.min(axis=1).clip(min=0)
    assert s.value == pytest.approx(nn.mean(), abs=1e-6)
    assert s.ci[0] <= s.value <= s.ci[1]
    assert nn[10] < 1e-6 and nn[70] < 1e-6
    pairs = {tuple(sorted(p)) for p in s.details["most_redundant_rows"]}
    assert pairs <= {(10, 11), (50, 60), (50, 70), (60, 70)}


def test_chamfer_sampled_queries_are_exact_per_row_and_cover_the_full_mean():
    """Beyond max_queries: each sampled row's nearest neighbour is searched among all rows (its distance equals
    brute force), and the interval covers the all-rows mean on real-like clustered data."""
    rng = np.random.default_rng(5)
    X = unit(rng.normal(size=(40, 24))[rng.integers(0, 40, 3000)] * 3 + rng.normal(size=(3000, 24)))
    X[100] = X[2500]                    # an exact twin, maybe sampled
    D = cosine_distances(X) + np.eye(len(X)) * 9
    nn = D.min(axis=1).clip(min=0)
    spec = metrics.get("semantic/chamfer")
    s = spec.fn(ctx_of(X), max_queries=600)
    assert s.details["estimator"] == "sampled-queries" and s.details["queries"] == 600
    assert s.ci[0] <= nn.mean() <= s.ci[1]
    assert abs(s.value - nn.mean()) < 0.1 * nn.mean()
    for i, j in s.details["most_redundant_rows"]:
        assert 1 - float(X[i] @ X[j]) == pytest.approx(nn[i], abs=1e-6) and i != j
    assert spec.fn(ctx_of(X), max_queries=3000).value == pytest.approx(nn.mean(), abs=1e-6)


def test_chamfer_is_zero_when_every_row_has_a_twin():
    X = np.repeat(unit(np.random.default_rng(0).normal(size=(20, 8))), 3, axis=0)
    assert metrics.get("semantic/chamfer")(ctx_of(X)).value == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- cluster entropy

def test_cluster_entropy_uniform_vs_collapsed():
    rng = np.random.default_rng(0)
    axes = np.eye(16)[:8] * 1.0
    even, _ = blobs(rng, [50] * 8, axes)
    skew, _ = blobs(rng, [372] + [4] * 7, axes)
    spec = metrics.get("semantic/cluster-entropy")
    e, s = spec.fn(ctx_of(even), k=8), spec.fn(ctx_of(skew), k=8)
    assert e.value > 0.95 and e.details["topics"] == 8
    assert s.value < 0.35
    # with one blob split over many cells, the merge puts the cells back together
    one, _ = blobs(rng, [400], axes[:1], noise=0.15)
    o = spec(ctx_of(one))
    assert o.value < 0.1 and o.details["cell_entropy"] > 0.8


def test_cluster_entropy_is_seeded_and_skips_tiny_sets():
    X, _ = blobs(np.random.default_rng(1), [30] * 6, np.eye(12)[:6], noise=0.3)
    spec = metrics.get("semantic/cluster-entropy")
    assert spec(ctx_of(X, seed=4)).value == spec(ctx_of(X, seed=4)).value
    with pytest.raises(MetricSkipped):
        spec(ctx_of(X[:9]))


# ---------------------------------------------------------------- reference coverage

def test_ref_cluster_coverage_synthetic():
    rng = np.random.default_rng(0)
    axes = np.eye(24)[:10]
    R, rl = blobs(rng, [40] * 10, axes)
    C_all, _ = blobs(rng, [20] * 10, axes)
    C_two, _ = blobs(rng, [100, 100], axes[:2])
    spec = metrics.get("semantic/ref-cluster-coverage")
    ref = ctx_of(R)
    ref.corpus = Corpus("ref", "ref", "text", tuple(f"ref text {i} from blob {b}" for i, b in enumerate(rl)))
    ref.__dict__["embeddings"] = R.astype(np.float32)
    full = spec.fn(ctx_of(C_all, reference=ref), k=10)
    two = spec.fn(ctx_of(C_two, reference=ref), k=10)
    assert full.value == 1.0 and full.details["assignment_entropy"] > 0.95
    assert two.value == pytest.approx(0.2) and two.details["reference_mass_covered"] == pytest.approx(0.2)
    assert two.details["assignment_entropy"] < 0.35
    missing = two.details["largest_uncovered"]
    assert len(missing) == 5 and all(len(m["examples"]) == 2 for m in missing)
    for m in missing:  # the examples come from the uncovered blob, not from the two covered ones
        blob = {int(t.rsplit(" ", 1)[1]) for t in m["examples"]}
        assert len(blob) == 1 and blob.isdisjoint({0, 1})
    assert any(k[0] == "semantic.kmeans" for k in ref._memo)  # fitted once per reference context


# ---------------------------------------------------------------- APS and per-class Vendi

def brute_aps(X, labels):
    S = unit(X) @ unit(X).T
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(X), dtype=bool)
    per = {}
    for c in np.unique(labels):
        m = labels == c
        if m.sum() > 1:
            block = S[np.ix_(m, m)]
            per[str(c)] = block[~np.eye(m.sum(), dtype=bool)].mean()
    return S[same & off].mean(), S[~same].mean(), per


def test_aps_matches_brute_force_pairs():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(230, 20)) + 0.5
    labels = rng.choice(["a", "b", "c", "d"], size=230, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    labels[0] = "lonely"  # a class of one row has no pair
    intra, inter, per = brute_aps(X, labels)
    s = aps_stats(X, labels)
    assert s["intra"] == pytest.approx(intra, abs=1e-12)
    assert s["inter"] == pytest.approx(inter, abs=1e-12)
    assert set(s["per_class"]) == set(per) and "lonely" not in per
    for c in per:
        assert s["per_class"][c] == pytest.approx(per[c], abs=1e-12)
    score = metrics.get("semantic/aps")(ctx_of(X, labels))
    assert score.value == pytest.approx(intra, abs=1e-9)
    assert score.details["gap"] == pytest.approx(intra - inter, abs=1e-9)
    assert score.details["intra_macro"] == pytest.approx(np.mean(list(per.values())), abs=1e-9)


def test_aps_identical_classes_and_skips():
    X = np.array([[1.0, 0, 0]] * 5 + [[0, 1.0, 0]] * 5)
    s = metrics.get("semantic/aps")(ctx_of(X, ["a"] * 5 + ["b"] * 5))
    assert s.value == pytest.approx(1.0) and s.details["inter"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(MetricSkipped):
        metrics.get("semantic/aps")(ctx_of(X[:3], ["a", "b", "c"]))


def test_perclass_vendi_is_macro_mean_of_class_scores():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 16))
    X[:30] = X[0]  # class "same" repeats one row: Vendi 1
    labels = ["same"] * 30 + ["x"] * 50 + ["y"] * 39 + ["single"]
    s = metrics.get("perclass/vendi")(ctx_of(X, labels))
    want = {"same": 1.0, "x": vendi_score(X[30:80]), "y": vendi_score(X[80:119])}
    assert s.value == pytest.approx(np.mean(list(want.values())), rel=1e-6)
    assert s.details["per_class"]["same"]["vendi"] == pytest.approx(1.0, abs=1e-6)
    assert s.details["least_diverse"][0] == "same" and s.details["skipped_classes"] == 1


# ---------------------------------------------------------------- real data, real embedder

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_train.jsonl"


@pytest.fixture(scope="module")
def real_sets(tmp_path_factory):
    """clinc150 crowd data embedded with the default model: a random sample, a disjoint reference
    sample, a 2-intent collapse and a 30-row repetition collapse (~900 short texts to embed)."""
    from harness.resources.embedder import Embedder, resolve_embedder

    rows = read_jsonl(shared(CLINC))
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(rows))
    rand = [rows[i] for i in perm[:400]]
    ref = [rows[i] for i in perm[400:800]]
    two_labels = {"mpg", "next_holiday"}
    two = [r for r in rows if r["label"] in two_labels][:200]
    emb = Embedder(resolve_embedder("default"), cache_dir=tmp_path_factory.mktemp("emb"), progress=False)

    def corpus(name, rs):
        return Corpus(name, name, "classification", tuple(r["text"] for r in rs),
                      labels=tuple(r["label"] for r in rs))

    ref_ctx = Context(corpus("ref", ref), embedder=emb)

    def ctx(name, rs):
        return Context(corpus(name, rs), embedder=emb, reference=ref_ctx)

    return {"rand": ctx("rand", rand), "rand200": ctx("rand200", rand[:200]), "two": ctx("two", two),
            "repeat": ctx("repeat", [rand[i % 30] for i in range(400)]), "ref": ref_ctx}


def test_real_collapse_lowers_semantic_diversity(real_sets):
    s = real_sets
    get = lambda name, key: metrics.get(name)(s[key])  # noqa: E731
    vendi_rand, vendi_two, vendi_rep = (get("semantic/vendi", k).value for k in ("rand200", "two", "repeat"))
    assert vendi_two < 0.5 * vendi_rand and vendi_rep <= 30 + 1e-6 < vendi_rand
    assert get("semantic/vendi", "rand").value > vendi_rand  # more rows, more effective rows
    ce_rand, ce_two = get("semantic/cluster-entropy", "rand200"), get("semantic/cluster-entropy", "two")
    assert ce_two.value < ce_rand.value - 0.2
    assert ce_two.details["cell_entropy"] > 0.8  # without the merge, k-means cells hide the collapse
    cov = {k: get("semantic/ref-cluster-coverage", k) for k in ("rand200", "two", "rand", "repeat")}
    assert cov["two"].value < 0.5 * cov["rand200"].value
    assert cov["repeat"].value < cov["rand"].value and cov["repeat"].value <= 30 / 50
    assert cov["two"].details["assignment_entropy"] < cov["rand200"].details["assignment_entropy"]
    assert get("semantic/chamfer", "repeat").value == pytest.approx(0.0, abs=1e-5)
    assert get("semantic/chamfer", "rand").value > 0.1
    # AttrPrompt APS on real intents: a class is closer to itself than to the others
    a = get("semantic/aps", "rand")
    assert a.details["gap"] > 0.2 and a.value > a.details["inter"]
    assert get("semantic/aps", "repeat").value > a.value + 0.15  # repeated rows: homogeneous classes
    pv = get("perclass/vendi", "two")
    assert set(pv.details["per_class"]) == {"mpg", "next_holiday"}
    assert get("perclass/vendi", "repeat").value < 0.5 * get("perclass/vendi", "rand").value
    for name in ("semantic/vendi", "semantic/chamfer", "semantic/cluster-entropy", "semantic/ref-cluster-coverage",
                 "semantic/aps", "perclass/vendi"):
        json.dumps(get(name, "two").details, allow_nan=False)  # details are plain JSON


def test_real_vendi_matches_package(real_sets):
    vs = pytest.importorskip("vendi_score.vendi")
    X = real_sets["rand"].embeddings
    U = unit(X)
    assert X.dtype == np.float32 and vendi_form(X) == "dual, mixed"
    assert vendi_score(X) == pytest.approx(vs.score_K(U @ U.T), rel=1e-6)
    assert vendi_score(X) == pytest.approx(vs.score_dual(X.astype(np.float64)), rel=1e-7)
    assert vendi_score(X, precision="float64") == pytest.approx(vs.score_dual(X.astype(np.float64)), rel=1e-9)
    assert metrics.get("semantic/vendi")(real_sets["rand"]).details["precision"].startswith("float32 products")


def _float32_gram_spectrum(X):
    U = (X / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
    return np.linalg.eigvalsh((U.T @ U).astype(np.float64) / len(X))


@pytest.mark.parametrize("case", ["rank300", "cone", "zero-columns", "near-copies"])
def test_vendi_mixed_precision_matches_float64(case):
    """float32 products with the near-zero band recomputed in float64 == the float64 sum, eigenvalue by
    eigenvalue; in the low-rank case the recomputed band is 1e-13-exact where float32 alone is not."""
    from harness.metrics.direct.semantic import _dual_spectrum64, _dual_spectrum_mixed

    rng = np.random.default_rng(7)
    if case == "rank300":  # 84 near-zero eigenvalues: fewer than d/2, so pass 2 runs
        X = rng.normal(size=(3000, 300)) @ rng.normal(size=(300, 384))
    elif case == "cone":
        X = rng.normal(size=(5000, 384)) + 0.3
    elif case == "zero-columns":  # like MiniLM's 3 all-but-zero coordinates: negligible, left as they are
        X = rng.normal(size=(2000, 384)) + 0.3
        X[:, :3] = 0
    else:  # a cloud of near-copies: tiny but real eigenvalues around 1e-8
        X = rng.normal(size=384) + 1e-4 * rng.normal(size=(3000, 384))
    X = X.astype(np.float32)
    assert vendi_form(X) == "dual, mixed"
    mixed, exact = np.sort(_dual_spectrum_mixed(X, 1000)), np.sort(_dual_spectrum64(X, 1000))
    assert np.abs(mixed - exact).max() < 1e-8
    assert vendi_score(X) == pytest.approx(vendi_score(X, precision="float64"), rel=1e-7)
    assert vendi_score(X, chunk=333) == pytest.approx(vendi_score(X), rel=1e-7)
    if case == "rank300":
        band = exact < 1e-6
        assert band.sum() == 84
        assert np.abs(mixed[band] - exact[band]).max() < 1e-13
        assert np.abs(np.sort(_float32_gram_spectrum(X))[band] - exact[band]).max() > 1e-11


def test_vendi_precision_argument():
    X = np.random.default_rng(0).normal(size=(500, 16))
    assert vendi_form(X) == "dual, float64" and vendi_form(X.astype(np.float32)) == "dual, mixed"
    assert vendi_form(X[:10]) == "kernel"
    assert vendi_score(X, precision="mixed") == pytest.approx(vendi_score(X), rel=1e-7)
    with pytest.raises(ValueError, match="precision"):
        vendi_score(X, precision="half")


def test_vendi_is_exact_for_collapsed_float32_rows():
    """float32 products would add rounding-noise entropy from the d - 1 empty directions."""
    x = np.random.default_rng(0).normal(size=384).astype(np.float32)
    X = np.tile(x, (1000, 1))
    assert vendi_form(X) == "dual, mixed"
    assert vendi_score(X) == pytest.approx(1.0, abs=1e-9)
    assert np.sort(_float32_gram_spectrum(X))[-2] > 1e-9  # what float32 alone would see
