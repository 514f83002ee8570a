"""Do the direct metrics predict downstream utility *jointly*? A model scored by leave-one-suite-out.

AgoraBench (Kim et al., "Evaluating Language Models as Synthetic Data Generators", 2024,
arXiv:2412.03679) finds that no single intrinsic measure of a synthetic dataset predicts the
performance of a model trained on it, while a combination of them does (their principal-component
regression). ``synthbench correlate`` asks the one-at-a-time question; this module asks the joint one,
and scores the answer the only fair way: on suites the model has not seen.

**Data.** ``values[suite][metric][candidate]`` as ``correlate`` reads it. A suite takes part when at
least 3 of its candidates have the utility score and the score varies among them; the others are
skipped and named. Every direct (non-``utility/``) metric of a suite that takes part is a feature.

**Features and target, within suite.** Suites differ in scale (0.6 accuracy is good on one task and
poor on another, a Fréchet distance of 0.3 small in one embedding space and large in another), so every
feature is *oriented* by its declared direction (a lower-is-better metric is negated, so a positive
weight reads "better on the metric <-> better utility") and *standardised within its suite* (mean 0,
SD 1 over the suite's candidates; 0 where it is constant there); the utility is standardised within
suite the same way. Only a suite's own values enter its standardisation, so a held-out suite's
features can be prepared without looking at any other suite, and its utility is never looked at.

**Missing values, honestly.** A feature is *missing in a suite* when half or more of the suite's
candidates have no value for it; its column there is then 0 (the suite's centre: no ordering
information). A feature missing in more than ``max_missing`` (default 25%) of the training suites is
dropped from that fit. Otherwise a candidate without a value gets the suite's median of the observed
values (counted, and said in the report).

**Models** (scikit-learn ``RidgeCV``, the penalty ``alpha`` chosen from ``ALPHAS`` by an inner
leave-one-suite-out over the *training* suites only, R² on the inner held-out suite; no intercept,
every column having mean 0 within each suite):

* ``ridge``: regression of the standardised utility on the standardised features;
* ``rank``: a pairwise rank model, the least-squares member of the RankSVM family (RankRLS; Pahikkala
  et al., "An efficient algorithm for learning to rank from preference graphs", Machine Learning 2009):
  for every pair of candidates of one training suite whose utilities differ, the feature difference
  ``x_i - x_j`` is regressed on the preference ``sign(u_i - u_j)``; each suite's pairs together weigh
  its number of candidates, as its rows do in ``ridge``. The score of a candidate is ``w · x``. Unlike
  ``ridge`` it sees only which candidate is better, not by how much (with all pairs it is ridge on the
  within-suite *ranks* of utility). The logistic loss was tried first: it has no closed form, and
  refitting it in every bootstrap replicate (below) took minutes where this takes a second.

**Score: leave-one-suite-out.** For each suite, the model is fitted on the other suites (feature
selection, penalty and weights), predicts the held-out suite's candidates, and the Spearman ρ between
prediction and utility *within that suite* is recorded (0 where the prediction is constant: it orders
nothing). The headline is the **candidate-weighted mean held-out ρ** (each suite's ρ weighted by its
number of candidates, as ``correlate`` pools; the plain mean is reported beside it). Range [-1, 1],
higher is better: +1 means the model, never having seen the suite, ranks its candidates exactly as
their downstream utility does; 0 means no better than chance.

**The fair baseline: the best single metric, chosen on the training suites.** In each fold, the metric
with the largest |ρ̄| on the training suites is chosen (ρ̄: the candidate-weighted mean of its
within-suite Spearman ρ with utility, a suite where it is constant counting 0, as it does when held
out; ``correlate``'s pooled ρ leaves such suites out instead), its sign is taken from the training
suites, and it is then scored on the held-out suite exactly as the model is. Choosing it on all suites
would let it see the held-out one.

**Uncertainty: a bootstrap over suites that refits.** Each replicate draws the suites with
replacement (``harness.stats.resample_indices``) and runs the whole leave-one-suite-out again on the
draw: a held-out suite leaves with all its copies, the features kept, the model weights and the single
metric's choice and sign are fitted again on the rest (each fold's penalty is held at the value its
inner CV chose on the data). 95% percentile intervals; the models and the single metric are scored on
the same replicates, so the difference model − single is paired. Resampling the held-out scores
without refitting was tried first and rejected: the folds share training suites and the single metric
is re-chosen in each, so their scores are not independent, and on synthetic suites with a utility that
no metric predicts its 95% interval of the difference excluded 0 in about 40% of runs. A draw holds
about 63% of the suites distinct, so its models learn from fewer suites than the data's: the intervals
lean low, which makes them conservative for a claim that the model beats the single metric. In
simulation (12 suites of 10 candidates, 40 runs each) they excluded 0 in none of the runs with a
utility no metric predicts, and found a utility that only two metrics together predict (with noise
twice their signal) in 75%. With a dozen real suites the intervals are wide; that is the honest
answer, and the verdict is read from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.errors import UserError
from harness.stats import percentile_interval, pooled_rank_correlations, resample_indices
from harness.stats.rank import spearman_parts

MODELS = ("ridge", "rank")
#: the penalty grid of both models' RidgeCV
ALPHAS = tuple(10.0 ** k for k in range(-2, 6))
MIN_CANDIDATES = 3
MIN_SUITES = 3
WEIGHTING = "candidate-weighted mean (each suite's held-out ρ weighted by its number of candidates)"


@dataclass(frozen=True)
class Suite:
    """One suite's prepared data: candidates, the oriented raw feature matrix (nan = no value), the
    utility standardised within the suite."""

    name: str
    candidates: tuple[str, ...]
    raw: object            # (n, F) float array, oriented, nan where a candidate has no value
    y: object              # (n,) utility, oriented and standardised within the suite

    @property
    def n(self) -> int:
        return len(self.candidates)


@dataclass(frozen=True)
class Design:
    utility: str
    features: tuple[str, ...]
    directions: dict
    suites: tuple[Suite, ...]
    skipped: dict[str, str]                     # suite -> why it does not take part
    X: tuple = ()                               # per suite: (n, F) standardised, imputed features
    missing: object = None                      # (suites, F) bool: the feature is missing in that suite
    imputed: object = None                      # (suites, F) int: candidate values imputed by the median


@dataclass(frozen=True)
class Fold:
    suite: str
    n: int
    rho: dict[str, float]                       # model name (and "single") -> held-out Spearman rho
    single_metric: str | None
    single_sign: float
    penalty: dict[str, float]                   # model -> alpha chosen by the inner CV
    features: int                               # features the fold's models used


@dataclass(frozen=True)
class Summary:
    mean: float                                 # candidate-weighted mean held-out rho
    ci: tuple[float, float] | None
    plain_mean: float


@dataclass(frozen=True)
class UtilityModel:
    utility: str
    models: tuple[str, ...]
    folds: list[Fold]
    summary: dict[str, Summary]                 # model and "single"
    diff: dict[str, Summary]                    # model -> model − single (paired)
    coefficients: dict[str, dict[str, float]]   # model -> feature -> weight of the refit on all suites
    penalty: dict[str, float]                   # model -> alpha of the refit on all suites
    training_rho: dict[str, float]              # feature -> rho-bar on all suites (constant suites: 0)
    features: list[str]                         # features of the refit on all suites
    dropped: dict[str, int]                     # feature -> suites it is missing in (dropped on all suites)
    constant: list[str]                         # features constant in every suite (no information)
    imputed: dict[str, tuple[int, int]]         # kept feature -> (values imputed, suites it is missing in)
    skipped: dict[str, str]
    directions: dict = field(default_factory=dict)
    n_boot: int = 2000
    replicates: int = 0                         # bootstrap replicates used (with 2 or more distinct suites)
    seed: int = 0
    max_missing: float = 0.25

    @property
    def n_candidates(self) -> int:
        return sum(f.n for f in self.folds)


# ----------------------------------------------------------------------------- preparation


def _orientation(higher_is_better) -> float:
    return -1.0 if higher_is_better is False else 1.0


def standardise(v):
    """Mean 0, SD 1 (population) over one suite; all 0 where ``v`` is constant.

    >>> [round(float(x), 4) for x in standardise([1.0, 2.0, 3.0])]
    [-1.2247, 0.0, 1.2247]
    """
    import numpy as np

    v = np.asarray(v, dtype=float)
    sd = float(v.std())
    if sd <= 1e-12 * max(1.0, float(np.abs(v).max(initial=0.0))):
        return np.zeros_like(v)
    return (v - v.mean()) / sd


def prepare(values: dict, utility: str, directions: dict) -> Design:
    """The design of a leave-one-suite-out fit: suites that take part, features, standardised and
    imputed within each suite. Raises ``UserError`` with fewer than 3 suites."""
    import numpy as np

    u_sign = _orientation(directions.get(utility, True))
    suites, skipped, taking_part = [], {}, []
    for name, table in values.items():
        uv = {c: v for c, v in table.get(utility, {}).items() if math.isfinite(v)}
        if not uv:
            skipped[name] = "no utility score"
            continue
        if len(uv) < MIN_CANDIDATES:
            skipped[name] = (f"{len(uv)} candidate{'s' if len(uv) != 1 else ''} with the utility score, "
                             f"needs {MIN_CANDIDATES}")
            continue
        cands = tuple(sorted(uv))
        y = standardise([u_sign * uv[c] for c in cands])
        if not y.any():
            skipped[name] = "the utility score does not vary"
            continue
        taking_part.append((name, table, cands, y))
    # the features: every direct metric of a suite that takes part (not those of skipped suites only)
    features = tuple(sorted({m for _, t, _, _ in taking_part for m in t if not m.startswith("utility/")}))
    for name, table, cands, y in taking_part:
        raw = np.full((len(cands), len(features)), np.nan)
        for j, m in enumerate(features):
            mv, s = table.get(m, {}), _orientation(directions.get(m))
            for i, c in enumerate(cands):
                v = mv.get(c)
                if v is not None and math.isfinite(v):
                    raw[i, j] = s * v
        suites.append(Suite(name, cands, raw, y))
    if len(suites) < MIN_SUITES:
        have = ", ".join(s.name for s in suites) or "none"
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise UserError(f"'{utility}': {len(suites)} suite{'s' if len(suites) != 1 else ''} ({have}) have it for "
                        f"{MIN_CANDIDATES}+ candidates, and leave-one-suite-out needs {MIN_SUITES}"
                        + (f" (skipped {why})" if why else ""),
                        "give more result folders (reports/ holds the shipped suites), or pick a utility metric "
                        "they share with --utility")
    X, missing, imputed = [], np.zeros((len(suites), len(features)), bool), np.zeros((len(suites), len(features)), int)
    for k, s in enumerate(suites):
        Z = np.zeros_like(s.raw)
        for j in range(len(features)):
            col = s.raw[:, j]
            seen = np.isfinite(col)
            if seen.sum() * 2 <= s.n:         # half or more without a value: missing in this suite
                missing[k, j] = True
                continue
            if not seen.all():
                imputed[k, j] = int((~seen).sum())
                col = np.where(seen, col, np.median(col[seen]))
            Z[:, j] = standardise(col)
        X.append(Z)
    return Design(utility, features, dict(directions), tuple(suites), skipped, tuple(X), missing, imputed)


def _moves(design: Design):
    """(suites, F) bool: the feature varies within the suite (its standardised column is not all 0)."""
    import numpy as np

    return np.vstack([np.abs(x).sum(axis=0) > 0 for x in design.X])


def kept_features(design: Design, train: list[int], max_missing: float):
    """Indices of the features usable on the training suites: missing in at most ``max_missing`` of
    them, and varying in at least one."""
    import numpy as np

    share = design.missing[train].mean(axis=0)
    return np.flatnonzero((share <= max_missing + 1e-12) & _moves(design)[train].any(axis=0))


# ----------------------------------------------------------------------------- models


def pairs(design: Design, k: int, cols=None):
    """The within-suite pairs of suite k whose utilities differ: (D = x_i - x_j, preference
    sign(u_i - u_j), weight). The suite's pairs together weigh its number of candidates.

    >>> import numpy as np
    >>> s = Suite("s", ("a", "b", "c"), None, np.array([-1.0, 0.0, 1.0]))
    >>> d = Design("u", ("f",), {}, (s,), {}, (np.array([[-1.0], [0.0], [1.0]]),))
    >>> D, t, w = pairs(d, 0)
    >>> D.ravel().tolist(), t.tolist(), w.tolist()
    ([-1.0, -2.0, -1.0], [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
    """
    import numpy as np

    x, y = design.X[k], design.suites[k].y
    if cols is not None:
        x = x[:, cols]
    i, j = np.triu_indices(len(y), 1)
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    return x[i] - x[j], np.sign(y[i] - y[j]), np.full(len(i), len(y) / max(len(i), 1))


def _rows(design: Design, model: str, train: list[int], cols):
    """The training rows of a model: (X, target, sample weight, suite of each row)."""
    import numpy as np

    X, t, w, g = [], [], [], []
    for k in train:
        if model == "ridge":
            x, target = design.X[k][:, cols], design.suites[k].y
            wt = np.ones(len(target))
        else:
            x, target, wt = pairs(design, k, cols)
        X.append(x)
        t.append(target)
        w.append(wt)
        g.append(np.full(len(target), k))
    return np.vstack(X), np.concatenate(t), np.concatenate(w), np.concatenate(g)


def fit_model(design: Design, model: str, train: list[int], cols):
    """scikit-learn's ``RidgeCV`` on the model's training rows, alpha by leave-one-suite-out over the
    training suites; returns (weights, alpha)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import LeaveOneGroupOut

    X, t, w, g = _rows(design, model, train, cols)
    splits = list(LeaveOneGroupOut().split(X, groups=g))
    m = RidgeCV(alphas=ALPHAS, fit_intercept=False, cv=splits).fit(X, t, sample_weight=w)
    return m.coef_.copy(), float(m.alpha_)


def sufficient_statistics(design: Design, model: str):
    """Per suite, the model's Gram matrix and moment vector over all features: (A (K, F, F), b (K, F)),
    so that the weights on training suites with multiplicities m are solve(sum m A + alpha I, sum m b)."""
    import numpy as np

    A, b = [], []
    for k, s in enumerate(design.suites):
        if model == "ridge":
            x, t, w = design.X[k], s.y, np.ones(s.n)
        else:
            x, t, w = pairs(design, k)
        A.append((x * w[:, None]).T @ x)
        b.append(x.T @ (w * t))
    return np.stack(A), np.stack(b)


def suite_rho_parts(design: Design):
    """(K, F): per suite and feature, the sum of products of within-suite standardised ranks of the
    feature and the utility (``harness.stats.rank.spearman_parts``): divided by the suite's number of
    candidates, its Spearman rho; 0 where the feature is constant there."""
    import numpy as np

    return np.stack([spearman_parts(x.T, np.broadcast_to(s.y, x.T.shape))[0] for x, s in zip(design.X, design.suites)])


def training_rho(design: Design, train: list[int], cols):
    """Each feature's candidate-weighted mean within-suite Spearman rho with utility over the training
    suites, a suite where the feature is constant (or missing) counting as rho = 0: the training-side
    estimate of exactly what the held-out score measures. (``correlate`` pools only the suites where
    the metric varies; a metric that moves in 3 of 12 suites would look strong there and then order
    nothing in the other 9.)"""
    parts = suite_rho_parts(design)[train][:, cols]
    return parts.sum(axis=0) / sum(design.suites[k].n for k in train)


def held_out_rho(pred, y) -> float:
    """Spearman rho of prediction and utility within one suite; 0 where the prediction is constant."""
    rho = float(pooled_rank_correlations([(pred, y)])[0][0])
    return rho if math.isfinite(rho) else 0.0


# ----------------------------------------------------------------------------- the analysis


def fit_fold(design: Design, held: int, models=("ridge",), max_missing: float = 0.25) -> dict:
    """Everything fitted with suite ``held`` left out, from the other suites only: the feature columns
    kept, each model's (weights, alpha), and the best single metric (column, sign; None if no
    feature orders any training suite)."""
    import numpy as np

    train = [k for k in range(len(design.suites)) if k != held]
    cols = kept_features(design, train, max_missing)
    if not len(cols):
        raise UserError(f"'{design.utility}': no direct metric is present in enough suites to fit a model",
                        "run the suites with the same metrics, or give suites that share them")
    fits = {m: fit_model(design, m, train, cols) for m in models}
    rho_bar = training_rho(design, train, cols)
    single = None
    if np.abs(rho_bar).max() > 0:
        j = int(np.argmax(np.abs(rho_bar)))
        single = (j, 1.0 if rho_bar[j] >= 0 else -1.0)
    return {"cols": cols, "fits": fits, "single": single}


def leave_one_suite_out(design: Design, models=("ridge",), max_missing: float = 0.25) -> list[Fold]:
    """For each suite: fit on the others, score its candidates; the best single metric chosen on the others."""
    folds = []
    for h, suite in enumerate(design.suites):
        fit = fit_fold(design, h, models, max_missing)
        Xh = design.X[h][:, fit["cols"]]
        rho = {m: held_out_rho(Xh @ w, suite.y) for m, (w, _) in fit["fits"].items()}
        if fit["single"] is None:
            rho["single"], single, sign = 0.0, None, 1.0
        else:
            j, sign = fit["single"]
            rho["single"], single = held_out_rho(sign * Xh[:, j], suite.y), design.features[fit["cols"][j]]
        folds.append(Fold(suite.name, suite.n, rho, single, sign, {m: pen for m, (_, pen) in fit["fits"].items()},
                          len(fit["cols"])))
    return folds


def refit_replicates(design: Design, folds: list[Fold], models, idx, max_missing: float = 0.25):
    """The leave-one-suite-out rerun on each bootstrap draw of suites (rows of ``idx``, suite indices
    with replacement): {model and "single": (R,) candidate-weighted mean held-out rho}, R the draws
    with 2 or more distinct suites. A suite is held out with all its copies; features, weights and the
    single metric are refitted on the rest with multiplicities; fold h keeps the alpha its inner CV
    chose on the data (``folds[h].penalty``). With every suite drawn once, this is the data's own
    leave-one-suite-out (tested)."""
    import numpy as np

    K = len(design.suites)
    n = np.array([s.n for s in design.suites], float)
    mult = np.stack([np.bincount(row, minlength=K) for row in np.asarray(idx)]).astype(float)
    mult = mult[(mult > 0).sum(axis=1) >= 2]
    stats = {m: sufficient_statistics(design, m) for m in models}
    parts = suite_rho_parts(design)
    moves = _moves(design).astype(float)
    missing = design.missing.astype(float)
    num = {m: np.zeros(len(mult)) for m in (*models, "single")}
    den = np.zeros(len(mult))
    for h in range(K):
        rows = np.flatnonzero(mult[:, h] > 0)
        if not len(rows):
            continue
        M = mult[rows].copy()
        M[:, h] = 0
        present = (M > 0).astype(float)
        share = (present @ missing) / present.sum(axis=1, keepdims=True)
        keep = (share <= max_missing + 1e-12) & ((present @ moves) > 0)
        weight = mult[rows, h] * n[h]
        den[rows] += weight
        y = design.suites[h].y
        for pattern in np.unique(keep, axis=0):     # replicates that keep the same features, together
            sel = np.flatnonzero((keep == pattern).all(axis=1))
            cols = np.flatnonzero(pattern)
            if not len(cols):
                continue                            # nothing to fit: every predictor scores 0 here
            Ms, Xh = M[sel], design.X[h][:, cols]
            for m in models:
                A, b = stats[m]
                As = np.einsum("rk,kij->rij", Ms, A[:, cols][:, :, cols]) + folds[h].penalty[m] * np.eye(len(cols))
                W = np.linalg.solve(As, (Ms @ b[:, cols])[..., None])[..., 0]
                pred = W @ Xh.T
                p, _ = spearman_parts(pred, np.broadcast_to(y, pred.shape))
                num[m][rows[sel]] += weight[sel] * p / n[h]
            bar = (Ms @ parts[:, cols]) / (Ms @ n)[:, None]
            j = np.argmax(np.abs(bar), axis=1)
            best = bar[np.arange(len(sel)), j]
            sign = np.where(best >= 0, 1.0, -1.0) * (np.abs(best) > 0)
            num["single"][rows[sel]] += weight[sel] * sign * parts[h, cols][j] / n[h]
    return {m: v / den for m, v in num.items()}


def _summary(r, w, reps) -> Summary:
    import numpy as np

    r = np.asarray(r, float)
    return Summary(float((w * r).sum() / w.sum()), percentile_interval(reps, min_count=1), float(r.mean()))


def utility_model(values: dict, utility: str, directions: dict, models=("ridge",), n_boot: int = 2000,
                  seed: int = 0, max_missing: float = 0.25) -> UtilityModel:
    """Leave-one-suite-out score of a joint model of the direct metrics against ``utility``, the best
    single metric chosen on the training folds, their paired difference (intervals from a bootstrap
    over suites that refits), and the weights of the models refitted on all suites. See the module
    docstring for what the numbers mean."""
    from threadpoolctl import threadpool_limits

    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise UserError(f"--model {','.join(bad) or '(none)'}: unknown model", f"use one of: {', '.join(MODELS)}")
    design = prepare(values, utility, directions)
    with threadpool_limits(1):        # hundreds of tiny fits: BLAS threads only spin-wait (20x slower)
        return _fit_all(design, tuple(models), n_boot, seed, max_missing)


def _fit_all(design: Design, models, n_boot: int, seed: int, max_missing: float) -> UtilityModel:
    import numpy as np

    folds = leave_one_suite_out(design, models, max_missing)
    idx = resample_indices(np.random.default_rng(seed), len(folds), n_boot)   # one set of draws: paired
    reps = refit_replicates(design, folds, models, idx, max_missing)
    w = np.array([f.n for f in folds], float)
    summary = {m: _summary([f.rho[m] for f in folds], w, reps[m]) for m in (*models, "single")}
    diff = {m: _summary([f.rho[m] - f.rho["single"] for f in folds], w, reps[m] - reps["single"]) for m in models}

    everything = list(range(len(design.suites)))
    cols = kept_features(design, everything, max_missing)
    coefs, penalty = {}, {}
    for m in models:
        wts, penalty[m] = fit_model(design, m, everything, cols)
        coefs[m] = {design.features[c]: float(v) for c, v in zip(cols, wts)}
    rho_bar = training_rho(design, everything, cols)
    share = design.missing.mean(axis=0)
    dropped = {f: int(design.missing[:, j].sum()) for j, f in enumerate(design.features)
               if share[j] > max_missing + 1e-12}
    imputed = {f: (int(design.imputed[:, j].sum()), int(design.missing[:, j].sum()))
               for j, f in enumerate(design.features)
               if f not in dropped and (design.imputed[:, j].any() or design.missing[:, j].any())}
    used = {design.features[c] for c in cols}
    constant = [f for f in design.features if f not in used and f not in dropped]
    return UtilityModel(design.utility, tuple(models), folds, summary, diff, coefs, penalty,
                        {design.features[c]: float(r) for c, r in zip(cols, rho_bar)},
                        [design.features[c] for c in cols], dropped, constant, imputed, dict(design.skipped),
                        {f: design.directions.get(f) for f in design.features}, n_boot,
                        int(len(reps["single"])), seed, max_missing)


def verdict(result: UtilityModel, model: str) -> str:
    """One plain sentence read off the paired interval of model − best single metric, and whether the
    model's own held-out rho is distinguishable from 0 (chance)."""
    d, s = result.diff[model], result.summary[model]
    text = f"difference {fmt_signed(d.mean)} {fmt_interval(d.ci)}"
    if d.ci is not None and d.ci[0] > 0:
        head = f"the joint {model} model beats the best single metric: {text}"
    elif d.ci is not None and d.ci[1] < 0:
        head = f"the joint {model} model is worse than the best single metric: {text}"
    else:
        head = f"the joint {model} model does not beat the best single metric: {text}"
    own = f"{fmt_signed(s.mean)} {fmt_interval(s.ci)}"
    if s.ci is not None and s.ci[0] > 0:
        return f"{head}; its own held-out ρ, {own}, is above 0"
    if s.ci is not None and s.ci[1] < 0:
        return f"{head}; its own held-out ρ, {own}, is below 0 (worse than chance)"
    return f"{head}; its own held-out ρ, {own}, is not distinguishable from 0 (chance)"


def fmt_signed(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.2f}".replace("-", "−")


def fmt_interval(ci) -> str:
    return f"[{fmt_signed(ci[0])}, {fmt_signed(ci[1])}]" if ci else "[–]"


def to_json(result: UtilityModel) -> dict:
    """The result as plain JSON-able data (what the report is rendered from)."""
    from dataclasses import asdict

    def clean(v):
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    out = clean(asdict(result))
    out["n_candidates"] = result.n_candidates
    out["verdicts"] = {m: verdict(result, m) for m in result.models}
    return out
