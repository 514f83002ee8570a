"""Utility (indirect evaluation): train small classifiers on the candidate and test them on real data.

Roles: the candidate (synthetic set) is the training data; ``ctx.reference`` is the real *training*
data (train-on-real baseline, learning curves, mixing); ``ctx.test`` is the real test split
(``--test``), never trained on and never sampled. When the runner evaluates the reference row
itself, the metrics that need only the test split report the train-on-real numbers for it.

Recipes (see :mod:`harness.resources.trainers`): ``tfidf-lr`` (tier 1), ``minilm-lr`` (tier 2, the run's
cached embedder), ``minilm-ft`` (tier 3, fine-tuning, opt-in). Every fit goes through one prediction
cache keyed by (recipe, training data, test data, seed), so the five metrics of a recipe share fits
and a rerun trains nothing.

Seeds: ``seeds`` runs (default 3) with seed ``ctx.seed + s``; the seed draws every sample of the
training data (equal-size samples, learning-curve sizes, the k real rows of a mix; nested samples,
the same for every metric) and seeds the model (tier 3; tiers 1–2 are deterministic given their data).

Intervals: mean over seeds; 95% half-width = the t-interval over seeds (df = seeds − 1) combined in
quadrature with a bootstrap standard error over the test rows (paired across seeds and, for
differences, across the two models). Tiers 1–2 on a full training set give identical numbers for
every seed, and a t-interval alone would then claim zero uncertainty; the test-set term keeps it
honest. ``details`` has both parts (``seed_sd``, ``test_se``) and the per-seed values.

Label-set mismatch: training rows whose label is absent from the test split are dropped, with a
warning naming how many and which labels (``details["warnings"]``, logged by the runner). Test rows
whose label is absent from the training data stay in the test set and count as errors (no model
trained on that data can predict them); they are listed in ``details["test_labels_not_in_training"]``.
"""

from __future__ import annotations

import math
import os
import zlib

from harness.metrics.base import MetricSkipped, metric, variant
from harness.stats import Z95, bootstrap_weights, t_half_width
from harness.types import Score

INF = math.inf

#: learning-curve sizes (rows), capped by the data's size, which is always the last point
GRID = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000)
BOOT = 500
RATIOS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


# ----------------------------------------------------------------------------- small pure helpers

def curve_sizes(n: int, grid=GRID) -> list[int]:
    """Learning-curve sizes for a pool of ``n`` rows: the grid below n, then n itself.

    >>> curve_sizes(3500)
    [50, 100, 250, 500, 1000, 2500, 3500]
    >>> curve_sizes(30)
    [30]
    """
    return [s for s in grid if s < n] + [n]


def invert_curve(sizes, accs, target: float) -> tuple[float, str | None]:
    """The number of rows at which a learning curve reaches ``target`` accuracy.

    Interpolated linearly in log(rows) on the running maximum of the curve (a noisy dip never
    makes the answer ambiguous). Returns (rows, censored): censored is None inside the curve,
    'below' when the target is under the first point (rows = the first size, an upper bound) and
    'above' when it beats the last point (rows = the last size, a lower bound).

    >>> round(invert_curve([100, 1000], [0.5, 0.7], 0.6)[0])
    316
    >>> invert_curve([100, 1000], [0.5, 0.7], 0.9), invert_curve([100, 1000], [0.5, 0.7], 0.2)
    ((1000.0, 'above'), (100.0, 'below'))
    """
    import numpy as np

    s = np.asarray(sizes, dtype=float)
    a = np.maximum.accumulate(np.asarray(accs, dtype=float))
    if target > a[-1] + 1e-12:
        return float(s[-1]), "above"
    if target < a[0] - 1e-12:
        return float(s[0]), "below"
    j = int(np.argmax(a >= target - 1e-12))
    if j == 0:
        return float(s[0]), None
    a0, a1 = a[j - 1], a[j]
    frac = (target - a0) / (a1 - a0) if a1 > a0 else 1.0
    return float(math.exp(math.log(s[j - 1]) + frac * (math.log(s[j]) - math.log(s[j - 1])))), None


def combined_interval(values, test_se: float, lo: float, hi: float):
    """mean ± sqrt((t·sd/√S)² + (1.96·test_se)²), clipped to [lo, hi]; returns (mean, ci, seed_sd)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    seed_half = t_half_width(v) if len(v) > 1 else 0.0
    half = math.sqrt(seed_half ** 2 + (Z95 * test_se) ** 2)
    return mean, (max(lo, mean - half), min(hi, mean + half)), sd


def _short_list(items, limit: int = 12) -> str:
    items = [str(x) for x in items]
    return ", ".join(items[:limit]) + (f", … (+{len(items) - limit} more)" if len(items) > limit else "")


# ----------------------------------------------------------------------------- the shared job

class _Job:
    """Everything the metrics of one (candidate context, recipe, seeds) share; kept on the context."""

    def __init__(self, ctx, recipe_name: str, seeds: int, params: dict):
        import numpy as np

        from harness.resources.trainers import make_recipe

        if ctx.test is None or ctx.test.labels is None:
            raise MetricSkipped("needs a labelled --test split")
        if ctx.labels is None:
            raise MetricSkipped("needs labels")
        if seeds < 1:
            raise ValueError("seeds must be at least 1")
        self.ctx = ctx
        self.recipe = make_recipe(recipe_name, **params)
        self.seeds = [ctx.seed + s for s in range(seeds)]
        self.test_texts = tuple(ctx.test.texts)
        self.y = np.asarray(ctx.test.labels, dtype=object)
        self.test_labels = set(ctx.test.labels)
        self.warnings: list[str] = []
        self.syn_texts, self.syn_labels, w = self._filtered(ctx.texts, ctx.labels, "")
        self.warnings += w
        if len(self.syn_texts) < 2:
            raise MetricSkipped("fewer than 2 training rows have a label that occurs in the test split")
        self.embed_identity = None
        self._table: dict | None = None
        self._sources_added: set[str] = set()
        if self.recipe.uses_embeddings:
            emb = ctx.embedder
            if emb is None:
                raise MetricSkipped(f"{recipe_name} needs an embedder")
            self.embed_identity = getattr(emb, "identity", None) or getattr(getattr(emb, "spec", None), "identity", None)
        self._real = None
        self._perms: dict = {}
        self._W = None

    # -- data
    def _filtered(self, texts, labels, who: str):
        keep = [lab in self.test_labels for lab in labels]
        dropped = len(keep) - sum(keep)
        warnings = []
        if dropped:
            gone = sorted({lab for lab, k in zip(labels, keep) if not k})
            warnings.append(f"{who}dropped {dropped} of {len(keep)} rows with labels absent from the test split: "
                            f"{_short_list(gone)}")
        return (tuple(t for t, k in zip(texts, keep) if k), tuple(lab for lab, k in zip(labels, keep) if k), warnings)

    def real(self):
        """The reference (real training data), filtered to the test labels; MetricSkipped if absent."""
        if self._real is None:
            ref = self.ctx.reference
            if ref is None:
                raise MetricSkipped("needs --reference (real training data)")
            if ref.labels is None:
                raise MetricSkipped("needs a labelled reference")
            texts, labels, w = self._filtered(ref.texts, ref.labels, "reference: ")
            if len(texts) < 2:
                raise MetricSkipped("fewer than 2 reference rows have a label that occurs in the test split")
            self._real = (texts, labels, w)
        return self._real

    def data(self, side: str):
        return (self.syn_texts, self.syn_labels) if side == "syn" else self.real()[:2]

    def subset(self, side: str, s: int, n: int):
        """Row indices of a seeded sample of n rows of one side (nested in n; source order kept)."""
        import numpy as np

        texts, _ = self.data(side)
        if n >= len(texts):
            return np.arange(len(texts))
        key = (side, s)
        if key not in self._perms:
            rng = np.random.default_rng([self.ctx.seed, s, zlib.crc32(f"utility/{side}".encode())])
            self._perms[key] = rng.permutation(len(texts))
        return np.sort(self._perms[key][:n])

    # -- embeddings (tier 2): the contexts' cached embeddings, looked up by text
    def embed_fn(self, texts):
        import numpy as np

        if self._table is None:
            self._table = {}
        missing = [t for t in texts if t not in self._table]
        ctx = self.ctx
        for name, src in (("candidate", ctx), ("test", ctx.test), ("reference", ctx.reference)):
            if not missing:
                break
            if src is None or name in self._sources_added:
                continue
            need = set(missing)
            if not any(t in need for t in src.texts):
                continue
            self._sources_added.add(name)
            for t, v in zip(src.texts, src.embeddings):
                self._table.setdefault(t, v)
            missing = [t for t in missing if t not in self._table]
        if missing:
            uniq = list(dict.fromkeys(missing))
            for t, v in zip(uniq, ctx.embedder.embed(uniq)):
                self._table[t] = v
        return np.stack([self._table[t] for t in texts])

    # -- fitting
    def predict(self, parts, s: int):
        """Train on the union of ``parts`` = [(side, indices), ...] with seed index s; test predictions."""
        from harness.resources.trainers import fit_predict_cached

        texts, labels = [], []
        for side, idx in parts:
            t, lab = self.data(side)
            texts += [t[i] for i in idx]
            labels += [lab[i] for i in idx]
        return fit_predict_cached(self.recipe, texts, labels, self.test_texts, self.seeds[s],
                                  embed_fn=self.embed_fn if self.recipe.uses_embeddings else None,
                                  embed_identity=self.embed_identity)

    def run(self, tasks, desc: str):
        """Run [(parts, s), ...] with a progress bar (TQDM_DISABLE=1 hides it)."""
        from tqdm.auto import tqdm

        out = []
        quiet = len(tasks) < 2 or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
        with tqdm(total=len(tasks), desc=f"{self.recipe.name}: {desc}", unit="fit", leave=False,
                  disable=quiet) as bar:
            for parts, s in tasks:
                out.append(self.predict(parts, s))
                bar.update(1)
        return out

    def full(self, side: str):
        import numpy as np

        return (side, np.arange(len(self.data(side)[0])))

    def tstr(self):
        return self.run([([self.full("syn")], s) for s in range(len(self.seeds))], "train on candidate")

    # -- scoring
    def accuracy(self, pred) -> float:
        return float((pred == self.y).mean())

    def macro_f1(self, pred) -> float:
        from sklearn.metrics import f1_score

        return float(f1_score(list(self.y), list(pred), average="macro"))

    def weights(self):
        """Bootstrap weights over the test rows (B × n multinomial counts), shared by every statistic."""
        import numpy as np

        if self._W is None:
            n = len(self.y)
            rng = self.ctx.rng("utility/bootstrap")
            self._W = bootstrap_weights(rng, n, BOOT, np.float32)
        return self._W

    def test_se_mean(self, per_row) -> float:
        """Bootstrap SE of the mean of a per-test-row quantity (e.g. seed-averaged correctness)."""
        import numpy as np

        if len(self.y) < 2:
            return 0.0
        reps = self.weights() @ np.asarray(per_row, dtype=np.float32) / len(self.y)
        return float(reps.std(ddof=1))

    def test_se_f1(self, preds) -> float:
        """Bootstrap SE of the seed-averaged macro-F1 (classes absent from a replicate are left out)."""
        import numpy as np
        from scipy import sparse

        if len(self.y) < 2:
            return 0.0
        W = self.weights()
        n = len(self.y)
        classes = sorted(set(self.y) | {p for pred in preds for p in pred}, key=str)
        ix = {c: i for i, c in enumerate(classes)}
        yi = np.array([ix[c] for c in self.y])
        rows = np.arange(n)
        total = np.zeros(W.shape[0])
        for pred in preds:
            pi = np.array([ix[c] for c in pred])
            ok = (pi == yi).astype(np.float32)

            def counts(cls, val):
                M = sparse.csr_matrix((val, (rows, cls)), shape=(n, len(classes)))
                return np.asarray((M.T @ W.T).T)

            tp = counts(yi, ok)
            fp = counts(pi, 1 - ok)
            fn = counts(yi, 1 - ok)
            den = 2 * tp + fp + fn
            with np.errstate(invalid="ignore", divide="ignore"):
                f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)
            total += np.nanmean(f1, axis=1)
        return float((total / len(preds)).std(ddof=1))

    def base_details(self, uses_real: bool = False) -> dict:
        d = {"recipe": self.recipe.name, "recipe_params": self.recipe.params(), "seeds": self.seeds,
             "rows": len(self.syn_texts), "test_rows": len(self.y)}
        if self.embed_identity:
            d["embedder"] = self.embed_identity
        warnings = list(self.warnings)
        train_labels = set(self.syn_labels)
        if uses_real:
            rt, rl, rw = self.real()
            warnings += rw
            d["reference_rows"] = len(rt)
            train_labels &= set(rl)
        unseen = sorted(self.test_labels - train_labels, key=str)
        if unseen:
            d["test_labels_not_in_training"] = unseen
            d["test_rows_not_in_training"] = int(sum(1 for y in self.y if y in set(unseen)))
            d["note"] = ("test rows of labels absent from the training data stay in the test set and count "
                         "as errors: no model trained on that data can predict them")
        if warnings:
            d["warnings"] = warnings
        return d


def _job(ctx, recipe: str, seeds: int, params: dict) -> _Job:
    from harness.types import canonical_json

    key = canonical_json([recipe, seeds, params])
    return ctx.memo(("utility.job", key), lambda: _Job(ctx, recipe, seeds, params))


def _interval_details(seed_sd: float, test_se: float) -> dict:
    return {"seed_sd": seed_sd, "test_se": test_se,
            "interval": f"95%: t-interval over seeds combined in quadrature with a {BOOT}-resample "
                        "bootstrap of the test rows"}


# ----------------------------------------------------------------------------- declarations

RECIPES = ("tfidf-lr", "minilm-lr", "minilm-ft")
EMBEDS = {"minilm-lr"}  # tier 2 reads the run's cached embedder (a need that follows from the recipe)
_ARGS = {"recipe": "tfidf-lr", "seeds": 3}


def _needs(with_reference: bool):
    def needs(args) -> tuple[str, ...]:
        return (("texts", "labels") + (("embeddings",) if args.get("recipe") in EMBEDS else ()) + ("test",)
                + (("reference",) if with_reference else ()))
    return needs


def _variants(kind: str, recipes=RECIPES, **extra) -> list:
    return [variant(f"utility/{r}/{kind}", {**_ARGS, "recipe": r, **extra}, opt_in=r == "minilm-ft")
            for r in recipes]


_COMMON = dict(higher_is_better=True, seeded=True, size_dependent=True, cost="heavy",
               no_identity="trains on the candidate: not a distance")
_SCORE_EXPECT = {"label-noise": "-", "class-drop": "-", "test-copy": "+"}

# ----------------------------------------------------------------------------- metric bodies

@metric(variants=_variants("accuracy"), needs=_needs(False), bounds=(0, 1), resample="test-rows", expect=_SCORE_EXPECT, **_COMMON)
def accuracy(ctx, recipe="tfidf-lr", seeds=3, **params) -> Score:
    """Accuracy on the real test split of a classifier trained on this set (TSTR); higher is better.

    Range 0–1, higher is better. Mean over seeds; per-seed values in details.

    Train-on-synthetic-test-on-real (TSTR): Esteban, Hyland & Rätsch 2017, 'Real-valued (medical) time series
    generation with recurrent conditional GANs'; for LLM-generated text classification data e.g. Yu et al.
    2023, 'Large Language Model as Attributed Training Data Generator' (AttrPrompt).
    """
    import numpy as np

    job = _job(ctx, recipe, seeds, params)
    preds = job.tstr()
    vals = [job.accuracy(p) for p in preds]
    se = job.test_se_mean(np.mean([p == job.y for p in preds], axis=0))
    mean, ci, sd = combined_interval(vals, se, 0.0, 1.0)
    return Score(mean, ci, {**job.base_details(), "per_seed": vals, **_interval_details(sd, se)})


@metric(variants=_variants("macro-f1"), needs=_needs(False), bounds=(0, 1), resample="test-rows", expect=_SCORE_EXPECT, **_COMMON)
def macro_f1(ctx, recipe="tfidf-lr", seeds=3, **params) -> Score:
    """Macro-F1 on the real test split of a classifier trained on this set (TSTR); higher is better.

    Range 0–1, higher is better. Mean over seeds of sklearn's macro-F1 (labels of the test split and of the
    predictions); per-seed values in details.

    Train-on-synthetic-test-on-real (TSTR): Esteban, Hyland & Rätsch 2017, 'Real-valued (medical) time series
    generation with recurrent conditional GANs'; for LLM-generated text classification data e.g. Yu et al.
    2023, 'Large Language Model as Attributed Training Data Generator' (AttrPrompt).
    """
    job = _job(ctx, recipe, seeds, params)
    preds = job.tstr()
    vals = [job.macro_f1(p) for p in preds]
    se = job.test_se_f1(preds)
    mean, ci, sd = combined_interval(vals, se, 0.0, 1.0)
    return Score(mean, ci, {**job.base_details(), "per_seed": vals, **_interval_details(sd, se),
                            "average": "macro over the labels of the test split and the predictions (sklearn)"})


def _paired(job, with_parts, without_parts, desc):
    """Per-seed accuracy differences between two training sets, and the paired test-row SE."""
    import numpy as np

    S = len(job.seeds)
    a = job.run([(with_parts(s), s) for s in range(S)], desc)
    b = job.run([(without_parts(s), s) for s in range(S)], desc + " (baseline)")
    acc_a = [job.accuracy(p) for p in a]
    acc_b = [job.accuracy(p) for p in b]
    diffs = [x - y for x, y in zip(acc_a, acc_b)]
    se = job.test_se_mean(np.mean([(pa == job.y).astype(float) - (pb == job.y) for pa, pb in zip(a, b)], axis=0))
    return acc_a, acc_b, diffs, se


@metric(variants=_variants("gap"), needs=_needs(True), bounds=(-1, 1), resample="test-rows",
        expect={"label-noise": "-", "class-drop": "-"}, **_COMMON)
def gap(ctx, recipe="tfidf-lr", seeds=3, **params) -> Score:
    """TSTR accuracy minus train-on-real accuracy with the same number of rows; higher is better, 0 = as good as real.

    Range −1–1, higher is better. Per seed, a seeded sample of n = min(candidate, reference) rows of each side
    (all rows of the smaller one) is trained on and the accuracy difference taken on the same test rows
    (paired). The TSTR-vs-TRTR comparison of Esteban et al. 2017.

    Train-on-synthetic-test-on-real (TSTR): Esteban, Hyland & Rätsch 2017, 'Real-valued (medical) time series
    generation with recurrent conditional GANs'; for LLM-generated text classification data e.g. Yu et al.
    2023, 'Large Language Model as Attributed Training Data Generator' (AttrPrompt).
    """
    job = _job(ctx, recipe, seeds, params)
    real_texts = job.real()[0]
    n = min(len(job.syn_texts), len(real_texts))
    acc_syn, acc_real, diffs, se = _paired(
        job, lambda s: [("syn", job.subset("syn", s, n))], lambda s: [("real", job.subset("real", s, n))],
        f"equal-size train-on-real, n={n}")
    mean, ci, sd = combined_interval(diffs, se, -1.0, 1.0)
    d = {**job.base_details(uses_real=True), "rows_compared": n, "per_seed": diffs,
         "tstr_accuracy": acc_syn, "trtr_accuracy": acc_real, **_interval_details(sd, se)}
    if n < len(job.syn_texts):
        d["candidate_sampled"] = (f"the reference has {len(real_texts)} usable rows: both sides use seeded "
                                  f"samples of {n} rows, so this TSTR accuracy differs from utility/{recipe}/accuracy")
    return Score(mean, ci, d)


# ----------------------------------------------------------------------------- gap recovered

def majority_floor(job):
    """(majority label of the real training data, per-test-row correctness of always predicting it).

    The floor of :func:`gap_recovered`: the score a model that learnt nothing but the real label prior
    gets on the same test rows (ties broken by label order, so the floor is deterministic).
    """
    from collections import Counter

    counts = Counter(job.real()[1])
    top = max(counts.values())
    label = sorted((lab for lab, c in counts.items() if c == top), key=str)[0]
    return label, (job.y == label).astype(float)


def _equal_size_correct(job):
    """n and the per-seed correctness (seeds × test rows) of the equal-size candidate and real fits of ``gap``
    (the same seeded samples, so ``gap`` and ``gap-recovered`` share every fit through the prediction cache)."""
    import numpy as np

    n = min(len(job.syn_texts), len(job.real()[0]))
    S = len(job.seeds)
    syn = job.run([([("syn", job.subset("syn", s, n))], s) for s in range(S)], f"equal-size train-on-real, n={n}")
    real = job.run([([("real", job.subset("real", s, n))], s) for s in range(S)],
                   f"equal-size train-on-real, n={n} (baseline)")
    return n, np.array([p == job.y for p in syn], dtype=float), np.array([p == job.y for p in real], dtype=float)


#: gap recovered is not reported when train-on-real beats the floor by less than this (accuracy points)
MIN_HEADROOM = 0.02


@metric(variants=_variants("gap-recovered"), needs=_needs(True), bounds=(-INF, INF),
        range="unbounded; 0 = the majority-class floor, 1 = train-on-real at equal size", resample="none",
        expect={"label-noise": "-", "class-drop": "-"}, **_COMMON)
def gap_recovered(ctx, recipe="tfidf-lr", seeds=3, **params) -> Score:
    """Performance gap recovered: (TSTR − floor) / (TRTR − floor) at equal size; higher is better, 1 = as good as real.

    TSTR and TRTR are the accuracies on the real test rows of the classifier trained on n = min(candidate,
    reference) rows of the candidate and of the real training data (the same seeded samples and fits as
    ``utility/<recipe>/gap``); the floor is the accuracy of always predicting the real training data's
    majority label on the same test rows. 0 = no better than the label prior, 1 = recovers all of what real
    data of the same size gives, above 1 = better than real. Unbounded in principle; typically 0–1.2.
    Not reported when train-on-real beats the floor by less than 0.02 (the ratio would be noise).

    Interval: 95%, the t-interval over the per-seed ratios combined in quadrature with a paired bootstrap of
    the test rows (TSTR, TRTR and the floor re-measured on the same resampled rows, ratio of seed means).
    Kim et al. 2024, 'Evaluating Language Models as Synthetic Data Generators' (AgoraBench, arXiv
    2412.03679), whose performance gap recovered uses the base and reference-trained models as the ends.
    """
    import numpy as np

    job = _job(ctx, recipe, seeds, params)
    n, syn, real = _equal_size_correct(job)
    label, floor_row = majority_floor(job)
    floor = float(floor_row.mean())
    tstr, trtr = syn.mean(axis=1), real.mean(axis=1)
    if float(trtr.mean()) - floor < MIN_HEADROOM:
        raise MetricSkipped(f"train-on-real ({float(trtr.mean()):.3f}) does not beat the majority-class floor "
                            f"({floor:.3f}) by {MIN_HEADROOM}: the gap recovered would be noise")
    value = (float(tstr.mean()) - floor) / (float(trtr.mean()) - floor)
    per_seed = [float((a - floor) / (b - floor)) if b - floor > 0 else math.nan for a, b in zip(tstr, trtr)]
    finite = [v for v in per_seed if math.isfinite(v)]
    seed_half = t_half_width(finite) if len(finite) > 1 else 0.0
    test_se, dropped = 0.0, 0
    if len(job.y) > 1:
        W = job.weights()
        m = len(job.y)
        s_b = W @ syn.mean(axis=0).astype(np.float32) / m
        r_b = W @ real.mean(axis=0).astype(np.float32) / m
        f_b = W @ floor_row.astype(np.float32) / m
        den = r_b - f_b
        ok = den > 1e-9
        dropped = int((~ok).sum())
        if ok.sum() > 1:
            test_se = float(((s_b[ok] - f_b[ok]) / den[ok]).std(ddof=1))
    half = math.sqrt(seed_half ** 2 + (Z95 * test_se) ** 2)
    d = {**job.base_details(uses_real=True), "rows_compared": n, "per_seed": per_seed,
         "tstr_accuracy": tstr.tolist(), "trtr_accuracy": trtr.tolist(), "floor": floor, "floor_label": label,
         "floor_rule": "always predict the real training data's majority label",
         "seed_sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0, "test_se": test_se,
         "interval": (f"95%: t-interval over the per-seed ratios combined in quadrature with a {BOOT}-resample "
                      "paired bootstrap of the test rows (TSTR, TRTR and floor on the same rows)")}
    if dropped:
        d.setdefault("warnings", []).append(
            f"{dropped} of {BOOT} bootstrap resamples had train-on-real at or below the floor and were left out "
            "of the interval: it is optimistic")
    return Score(value, (value - half, value + half), d)


# ----------------------------------------------------------------------------- contamination-aware utility

def contaminated_test_rows(ctx, n: int = 13, near: float = 0.95):
    """Which real test rows the candidate contains: {test row: how} for every test row that has an exact
    (normalised) copy, a shared word n-gram (n = 13; rows shorter than n by exact match only), or an
    embedding near match (cosine ≥ ``near``) among the candidate's rows; the rules of ``contam/*``, seen
    from the test side. Computed once per context."""

    def compute():
        import numpy as np

        from harness.metrics.direct.faithfulness import overlaps
        from harness.stats.knn import nearest

        hits = {i: how for i, _, how in overlaps(ctx.test, ctx, n)}
        if near is not None and ctx.embedder is not None:
            dist, _ = nearest(ctx.test.embeddings, ctx.embeddings)
            for i in np.flatnonzero(1.0 - dist >= near - 1e-6):
                hits.setdefault(int(i), "near")
        return hits

    return ctx.memo(("utility.contaminated", n, near), compute)


def _subset_accuracy(job, correct, mask):
    """Seed-mean accuracy on the test rows in ``mask``, its paired-bootstrap SE and the bootstrap replicates."""
    import numpy as np

    c = correct.mean(axis=0)
    value = float(c[mask].mean())
    W = job.weights()[:, mask]
    tot = W.sum(axis=1)
    ok = tot > 0
    reps = np.full(W.shape[0], np.nan)
    reps[ok] = (W[ok] @ c[mask].astype(np.float32)) / tot[ok]
    return value, reps


def _contamination_split(ctx, recipe, seeds, params, n, near):
    import numpy as np

    job = _job(ctx, recipe, seeds, params)
    hits = contaminated_test_rows(ctx, n, near)
    mask = np.zeros(len(job.y), dtype=bool)
    mask[list(hits)] = True
    correct = np.array([p == job.y for p in job.tstr()], dtype=float)
    how = {k: sum(1 for v in hits.values() if v == k) for k in ("exact", "ngram", "near")}
    d = {**job.base_details(), "contaminated_test_rows": int(mask.sum()), "clean_test_rows": int((~mask).sum()),
         "matched_by": how, "rules": f"exact normalised copy, a shared word {n}-gram, or cosine ≥ {near} to a candidate row",
         "flagged_test_rows": sorted(hits)[:1000]}
    return job, mask, correct, d


_CONTAM = dict(needs=lambda args: ("texts", "labels", "embeddings", "test"), resample="none", seeded=True,
               size_dependent=True, cost="heavy", no_identity="trains on the candidate: not a distance")
# measured by `synthbench validate` on BBC News (200-row samples, 300 test rows) and Banking77 (500, 500), 3 repeats
_SELF_CONTAMINATED = (
    "The check has little to measure on either corpus: both hold near-duplicate rows across their own "
    "splits, so a clean sample already matches test rows (a shared word 13-gram or cosine >= 0.95: BBC News "
    "9-12 of 300, Banking77 14-26 of 500), and the classifiers get nearly all of them right at severity 0 "
    "(contaminated accuracy 1.0 on BBC News and for minilm-lr on Banking77, 0.92-0.94 for tfidf-lr there). "
    "Test copies take it to its ceiling at the first step (0.98-1.0 at 25% and at 50%, with 55-65 and "
    "106-112 matched rows on BBC News, 139-143 and 258-261 on Banking77), a response that a monotone rank "
    "test over three severities cannot pass (tfidf-lr on Banking77: rho +0.70 [-0.03, +0.94], +0.068 at "
    "25%, +0.066 at 50%); the gap is then about 1 minus clean accuracy, which copies move only through "
    "the clean rows. What test-copy does raise, the number of matched rows, is what "
    "contam/test-ngram-overlap and contam/test-near-match report (both pass, rho +0.99 and +0.96).")


def _subset_score(job, correct, rows, d) -> Score:
    """Accuracy on the test rows ``rows`` (a mask): t over seeds and the test-row bootstrap, in quadrature."""
    import numpy as np

    value, reps = _subset_accuracy(job, correct, rows)
    se = float(np.nanstd(reps, ddof=1)) if np.isfinite(reps).sum() > 1 else 0.0
    per_seed = correct[:, rows].mean(axis=1)
    _, ci, sd = combined_interval(per_seed, se, 0.0, 1.0)
    return Score(value, ci, {**d, "per_seed": per_seed.tolist(), **_interval_details(sd, se)})


@metric(variants=_variants("contaminated-accuracy", RECIPES[:2], n=13, near=0.95), bounds=(0, 1),
        higher_is_better=None, expect={"test-copy": "+"}, limits={"test-copy": _SELF_CONTAMINATED}, **_CONTAM)
def contaminated_accuracy(ctx, recipe="tfidf-lr", seeds=3, n=13, near=0.95, **params) -> Score:
    """TSTR accuracy on the real test rows the candidate contains (exact, 13-gram or near copies); no direction.

    Range 0–1. The test rows with an exact normalised copy, a shared word 13-gram or a cosine ≥ 0.95 near
    match among the candidate's rows (the rules of ``contam/*``); the classifier trained on the candidate
    (the fits of ``utility/<recipe>/accuracy``) is scored on them alone. Read it beside
    ``clean-accuracy``: a set that scores by copying test rows is right on these and no better than
    others on the rest. Not reported when no test row is matched. Interval: t over seeds and a bootstrap of
    the test rows, in quadrature. Clean vs contaminated subsets as asked of lm-evaluation-harness (issue
    231) and in Golchin & Surdeanu 2024, 'Time Travel in LLMs: Tracing Data Contamination'.
    """

    job, mask, correct, d = _contamination_split(ctx, recipe, seeds, params, n, near)
    if not mask.any():
        raise MetricSkipped("no test row has an exact, n-gram or near match in the candidate")
    return _subset_score(job, correct, mask, d)


@metric(variants=_variants("clean-accuracy", RECIPES[:2], n=13, near=0.95), bounds=(0, 1),
        higher_is_better=True, expect={"label-noise": "-", "class-drop": "-"}, **_CONTAM)
def clean_accuracy(ctx, recipe="tfidf-lr", seeds=3, n=13, near=0.95, **params) -> Score:
    """TSTR accuracy on the real test rows the candidate does not contain; higher is better.

    Range 0–1. The complement of ``contaminated-accuracy``'s rows: the utility the candidate earns on test
    rows it has no exact, 13-gram or near (cosine ≥ 0.95) copy of; equal to ``utility/<recipe>/accuracy``
    when nothing is matched. Interval: t over seeds and a bootstrap of the test rows, in quadrature. Clean vs
    contaminated subsets as asked of lm-evaluation-harness (issue 231).
    """

    job, mask, correct, d = _contamination_split(ctx, recipe, seeds, params, n, near)
    clean = ~mask
    if not clean.any():
        raise MetricSkipped("every test row has a match in the candidate: no clean test rows")
    return _subset_score(job, correct, clean, d)


@metric(variants=_variants("contaminated-gap", RECIPES[:2], n=13, near=0.95), bounds=(-1, 1),
        higher_is_better=False, expect={"test-copy": "+"}, limits={"test-copy": _SELF_CONTAMINATED}, **_CONTAM)
def contaminated_gap(ctx, recipe="tfidf-lr", seeds=3, n=13, near=0.95, **params) -> Score:
    """Accuracy on the contaminated test rows minus accuracy on the clean ones; lower is better, ≈ 0 when honest.

    Range −1–1. The same classifier (trained on the candidate) on the test rows the candidate contains and
    on the rest: a large positive gap says the score is earned by copying test rows. Not reported when no
    test row (or every test row) is matched. Interval: 95%, the t-interval over seeds combined in quadrature
    with the SE of a paired bootstrap of the test rows (both subsets re-measured on the same resampled rows). Clean vs contaminated subsets as asked of lm-evaluation-harness (issue 231).
    """
    import numpy as np

    job, mask, correct, d = _contamination_split(ctx, recipe, seeds, params, n, near)
    if not mask.any() or mask.all():
        raise MetricSkipped("needs both contaminated and clean test rows"
                            + (": no test row has a match in the candidate" if not mask.any() else ""))
    a, ra = _subset_accuracy(job, correct, mask)
    b, rb = _subset_accuracy(job, correct, ~mask)
    diff = a - b
    reps = ra - rb
    se = float(np.nanstd(reps, ddof=1)) if np.isfinite(reps).sum() > 1 else 0.0
    per_seed = (correct[:, mask].mean(axis=1) - correct[:, ~mask].mean(axis=1))
    seed_half = t_half_width(per_seed) if len(per_seed) > 1 else 0.0
    half = math.sqrt(seed_half ** 2 + (Z95 * se) ** 2)
    return Score(diff, (max(-1.0, diff - half), min(1.0, diff + half)),
                 {**d, "contaminated_accuracy": a, "clean_accuracy": b, "per_seed": per_seed.tolist(),
                  **_interval_details(float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0, se)})


def _curve(job, side: str, desc: str):
    """Learning curve of one side: sizes, per-seed accuracies and per-seed correctness (S × sizes × test)."""
    import numpy as np

    sizes = curve_sizes(len(job.data(side)[0]))
    S = len(job.seeds)
    preds = job.run([([(side, job.subset(side, s, n))], s) for s in range(S) for n in sizes], desc)
    correct = np.array([[preds[s * len(sizes) + i] == job.y for i in range(len(sizes))] for s in range(S)])
    return sizes, correct.mean(axis=2).tolist(), correct


def _bootstrap_equivalents(job, sizes, real_correct, syn_correct):
    """Real-equivalents re-measured on bootstrap resamples of the test rows (paired: the same rows for
    the real curve and the candidate), inverting the seed-averaged curve each time."""
    import numpy as np

    if len(job.y) < 2:
        return None
    W = job.weights()
    n = len(job.y)
    S, K = real_correct.shape[:2]
    real = (W @ real_correct.reshape(S * K, n).T.astype(np.float32) / n).reshape(-1, S, K).mean(axis=1)
    syn = (W @ syn_correct.T.astype(np.float32) / n).mean(axis=1)
    return np.array([invert_curve(sizes, real[b], float(syn[b]))[0] for b in range(W.shape[0])])


@metric(variants=_variants("real-equivalent", RECIPES[:2]), needs=_needs(True), bounds=(50, INF),
        range="[50, reference rows]", resample="none", expect={"label-noise": "-", "class-drop": "-"}, **_COMMON)
def real_equivalent(ctx, recipe="tfidf-lr", seeds=3, synthetic_curve=True, **params) -> Score:
    """How many real training rows this set is worth: the real-data size whose accuracy it matches; higher is better.

    Range: from the smallest to the largest learning-curve size (50 … reference rows; censored values are
    flagged in details and warnings), higher is better. The real learning curve (seeded nested samples of the
    reference at 50, 100, 250, 500, 1k, 2.5k, … rows and all rows) is inverted at the candidate's TSTR
    accuracy, linearly in log(rows); the interval combines the per-seed curves and a paired bootstrap of the
    test rows (a flat real curve gives a wide interval). Details hold both curves (sizes, per-seed accuracies)
    for plotting. synthbench's own definition, after the 'effective data transferred' of Hernandez et al.
    2021, 'Scaling Laws for Transfer'.

    Train-on-synthetic-test-on-real (TSTR): Esteban, Hyland & Rätsch 2017, 'Real-valued (medical) time series
    generation with recurrent conditional GANs'; for LLM-generated text classification data e.g. Yu et al.
    2023, 'Large Language Model as Attributed Training Data Generator' (AttrPrompt).
    """
    import numpy as np

    job = _job(ctx, recipe, seeds, params)
    job.real()
    r_sizes, r_accs, r_correct = _curve(job, "real", "real learning curve")
    if synthetic_curve:
        s_sizes, s_accs, s_correct = _curve(job, "syn", "candidate learning curve")
    else:  # only the full candidate (the value does not depend on the candidate's own curve)
        s_sizes = [len(job.syn_texts)]
        s_correct = np.array([[p == job.y] for p in job.tstr()])
        s_accs = s_correct.mean(axis=2).tolist()
    syn_acc = [a[-1] for a in s_accs]  # the full candidate = the TSTR accuracy of each seed
    r_mean = np.mean(r_accs, axis=0)
    target = float(np.mean(syn_acc))
    value, censored = invert_curve(r_sizes, r_mean, target)
    per_seed = [invert_curve(r_sizes, r_accs[s], syn_acc[s]) for s in range(len(job.seeds))]
    logs = np.log([m for m, _ in per_seed])
    seed_half = t_half_width(logs) if len(logs) > 1 else 0.0
    boot = _bootstrap_equivalents(job, r_sizes, r_correct, s_correct[:, -1, :])
    test_half = Z95 * float(np.log(boot).std(ddof=1)) if boot is not None else 0.0
    half = math.sqrt(seed_half ** 2 + test_half ** 2)
    ci = (max(float(r_sizes[0]), value * math.exp(-half)), min(float(r_sizes[-1]), value * math.exp(half)))
    d = job.base_details(uses_real=True)
    d.update({
        "real_curve": {"sizes": r_sizes, "accuracy": r_accs, "mean": [float(x) for x in r_mean]},
        "synthetic_curve": {"sizes": s_sizes, "accuracy": s_accs,
                            "mean": [float(x) for x in np.mean(s_accs, axis=0)]},
        "synthetic_accuracy": target, "synthetic_accuracy_per_seed": syn_acc,
        "per_seed": [m for m, _ in per_seed], "per_seed_censored": [c for _, c in per_seed],
        "censored": censored,
        "interpolation": "linear in log(rows) on the running maximum of the mean real learning curve",
        "seed_sd_log": float(logs.std(ddof=1)) if len(logs) > 1 else 0.0,
        "test_sd_log": test_half / Z95,
        "interval": (f"95%, in log(rows): t-interval over the per-seed curves combined in quadrature with a "
                     f"{BOOT}-resample paired bootstrap of the test rows (the candidate and the real curve "
                     "re-measured on the same resampled rows); clipped to the curve's sizes"),
    })
    if censored == "above":
        d.setdefault("warnings", []).append(
            f"the candidate beats train-on-real at every size up to all {r_sizes[-1]} reference rows: "
            f"its real-equivalent is at least {r_sizes[-1]} (a lower bound)")
    elif censored == "below":
        d.setdefault("warnings", []).append(
            f"the candidate is below train-on-real at the smallest size ({r_sizes[0]} rows): "
            f"its real-equivalent is at most {r_sizes[0]} (an upper bound)")
    return Score(value, ci, d)


@metric(variants=_variants("mix-gain", RECIPES[:2], k=100), needs=_needs(True), bounds=(-1, 1), resample="test-rows",
        expect={"label-noise": "-"}, **_COMMON)
def mix_gain(ctx, recipe="tfidf-lr", seeds=3, k=100, ratios=RATIOS, sweep=True, **params) -> Score:
    """Accuracy gained by adding this set to k real rows (k = 100 by default); higher is better, 0 = no help.

    Range −1–1, higher is better. Per seed, the same k real rows are trained on with and without the candidate
    (paired on the test rows). Details add a sweep of real:synthetic ratios at a fixed budget of
    min(candidate, reference) rows. Synthetic augmentation of scarce real data as in Anaby-Tavor et al. 2020,
    'Do Not Have Enough Data? Deep Learning to the Rescue!' (LAMBADA), and Cegin et al. 2024, 'Effects of
    diversity incentives on sample diversity and downstream model performance in LLM-based text augmentation'.

    Train-on-synthetic-test-on-real (TSTR): Esteban, Hyland & Rätsch 2017, 'Real-valued (medical) time series
    generation with recurrent conditional GANs'; for LLM-generated text classification data e.g. Yu et al.
    2023, 'Large Language Model as Attributed Training Data Generator' (AttrPrompt).
    """
    import numpy as np

    job = _job(ctx, recipe, seeds, params)
    real_texts = job.real()[0]
    k = min(int(k), len(real_texts))
    acc_mix, acc_real, diffs, se = _paired(
        job, lambda s: [("real", job.subset("real", s, k)), job.full("syn")],
        lambda s: [("real", job.subset("real", s, k))], f"{k} real rows + candidate")
    mean, ci, sd = combined_interval(diffs, se, -1.0, 1.0)
    budget = min(len(job.syn_texts), len(real_texts))
    fr = [float(r) for r in ratios] if sweep else []
    n_real = [int(round(r * budget)) for r in fr]
    S = len(job.seeds)
    tasks = []
    for s in range(S):
        for nr in n_real:
            parts = ([("real", job.subset("real", s, nr))] if nr else []) + \
                    ([("syn", job.subset("syn", s, budget - nr))] if budget - nr else [])
            tasks.append((parts, s))
    preds = job.run(tasks, f"real:synthetic sweep, {budget} rows")
    accs = [[job.accuracy(preds[s * len(fr) + i]) for i in range(len(fr))] for s in range(S)]
    d = {**job.base_details(uses_real=True), "k": k, "per_seed": diffs, "with_candidate": acc_mix,
         "real_only": acc_real, **_interval_details(sd, se)}
    if fr:
        d["ratio_sweep"] = {"budget": budget, "real_fraction": fr, "real_rows": n_real,
                            "synthetic_rows": [budget - x for x in n_real], "accuracy": accs,
                            "mean": [float(x) for x in np.mean(accs, axis=0)]}
    return Score(mean, ci, d)
