"""Faithfulness, memorisation and contamination.

Memorisation (``memo/*``): does the candidate copy the real data it was generated from
(``ctx.reference``)? Exact normalised copies, shared long word n-grams, and the distance to the
closest reference record compared with real held-out rows (DCR).

Contamination (``contam/*``): does the candidate (a synthetic *training* set) contain rows of the
real evaluation split (``ctx.test``), verbatim, by a long shared n-gram, or as a near paraphrase?

Label faithfulness (``faith/*``): do the candidate's labels mean what the real labels mean
(a classifier trained on the reference agrees), and are they self-consistent (confident learning)?

Matching rules shared by the text metrics: texts are compared after ``duplicates.normalise``
(NFKC, case-folded, whitespace collapsed); n-grams are word n-grams of the run's tokenizer
(``Context.tokens``: lower-cased words, punctuation dropped), hashed to 64-bit ints (Python's
tuple hash, consistent within a process; a false match needs a 64-bit collision). A row with fewer
than ``n`` tokens has no n-gram and is checked by exact normalised match only.

Details list at most ``MAX_LISTED`` flagged rows (row index and the first 160 characters).

Row flags (``Score.rows``, written to the run's flags file for ``synthbench curate``):
``memorised`` (exact copies and long n-gram overlaps with the reference; DCR rows closer to the
reference than every held-out real row), ``contaminated`` (n-gram overlap or embedding near-match
with the test split), ``label-issue`` (confident learning) and ``low-agreement`` (the reference
classifier gives the row's own label a probability below ``LOW_AGREEMENT_P``).
"""

from __future__ import annotations

from harness.metrics.base import MetricSkipped, metric
from harness.metrics.direct.duplicates import normalise
from harness.stats import wilson_ci
from harness.stats.knn import nearest
from harness.types import Score

MAX_LISTED = 20
WIDTH = 160
#: ``low-agreement`` flag: the reference classifier is at least 95% sure the row's label is wrong
LOW_AGREEMENT_P = 0.05


def _cut(text: str) -> str:
    return text[:WIDTH]


def _ids(rows, limit: int = 1000):
    """Every flagged row index as a compact int list (None past ``limit``; the examples stay)."""
    rows = [int(r) for r in rows]
    return rows if len(rows) <= limit else None


# ----------------------------------------------------------------------------- text overlap

def _ngram_hashes(tokens: list[str], n: int):
    return {hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)}


class _Index:
    """Normalised texts and hashed word n-grams of one corpus (built once per context and n)."""

    def __init__(self, ctx, n: int):
        self.exact: dict[str, int] = {}
        for i, t in enumerate(ctx.texts):
            self.exact.setdefault(normalise(t), i)
        self.grams: dict[int, int] = {}
        for i, toks in enumerate(ctx.tokens):
            if len(toks) >= n:
                for h in _ngram_hashes(toks, n):
                    self.grams.setdefault(h, i)


def _index(ctx, n: int) -> _Index:
    return ctx.memo(("faithfulness.index", n), lambda: _Index(ctx, n))


def overlaps(ctx, other, n: int, ngrams: bool = True) -> list[tuple[int, int, str]]:
    """(candidate row, first matching row of ``other``, 'exact' | 'ngram') for every matched candidate row.

    A row matches when its normalised text equals a row of ``other`` ('exact'), or (``ngrams``) when
    it has at least ``n`` tokens and shares a word n-gram with some row of ``other`` ('ngram').
    """
    idx = _index(other, n)
    out = []
    for i, (t, toks) in enumerate(zip(ctx.texts, ctx.tokens)):
        j = idx.exact.get(normalise(t))
        if j is not None:
            out.append((i, j, "exact"))
            continue
        if ngrams and len(toks) >= n:
            for k in range(len(toks) - n + 1):
                j = idx.grams.get(hash(tuple(toks[k:k + n])))
                if j is not None:
                    out.append((i, j, "ngram"))
                    break
    return out


def _overlap_score(ctx, other, n: int, ngrams: bool, other_name: str, reason: str) -> Score:
    hits = overlaps(ctx, other, n, ngrams)
    total = len(ctx.texts)
    if total == 0:
        raise MetricSkipped("no rows")
    ex = [{"row": i, f"{other_name}_row": j, "match": how, "text": _cut(ctx.texts[i]),
           f"{other_name}_text": _cut(other.texts[j])} for i, j, how in hits[:MAX_LISTED]]
    details = {"count": len(hits), "rows": total, "flagged_rows": _ids([h[0] for h in hits]), "examples": ex}
    if ngrams:
        short = sum(1 for toks in ctx.tokens if len(toks) < n)
        details.update({"n": n, "exact_matches": sum(1 for h in hits if h[2] == "exact"),
                        "ngram_matches": sum(1 for h in hits if h[2] == "ngram"),
                        "rows_shorter_than_n": short})
    return Score(len(hits) / total, wilson_ci(len(hits), total), details, rows={reason: [h[0] for h in hits]})


@metric("memo/exact-copy-rate",
        needs=("texts", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags",
        expect={"reference-copy": "+", "test-copy": "0", "label-noise": "0", "exact-dup": "0"},
        no_identity="a copy detector, not a distance: a set against itself is all copies (1)")
def exact_copy_rate(ctx) -> Score:
    """Exact-copy rate: share of candidate rows that repeat a reference row verbatim (normalised); lower is better.

    A row counts when its normalised text (NFKC, case-folded, whitespace collapsed) equals the
    normalised text of some reference row. Range [0, 1]; 0 when nothing is copied. Interval: Wilson.
    Carlini et al., "Extracting Training Data from Large Language Models", USENIX Security 2021, on
    verbatim memorisation. details: count, examples (candidate row, reference row, texts).
    """
    if ctx.reference is None:
        raise MetricSkipped("needs --reference")
    return _overlap_score(ctx, ctx.reference, 13, ngrams=False, other_name="reference", reason="memorised")


@metric("memo/ngram-overlap-rate", args={"n": 13},
        needs=("texts", "reference"),
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags",
        expect={"reference-copy": "+", "test-copy": "0", "label-noise": "0", "exact-dup": "0"},
        no_identity="a copy detector, not a distance: a set against itself is all copies (1)")
def ngram_overlap_rate(ctx, n: int = 13) -> Score:
    """Long n-gram overlap rate: share of candidate rows sharing a word 13-gram with some reference row; lower is better.

    A row counts when it shares a word n-gram (n = 13 by default, the decontamination n-gram of
    GPT-3, Brown et al. 2020, and of lm-eval-harness) with any reference row, or when its
    normalised text equals a reference row. Rows with fewer than n tokens have no n-gram: they are
    checked by exact normalised match only (``rows_shorter_than_n`` in details says how many).
    Range [0, 1]. Interval: Wilson. details: count, exact/ngram split, examples.
    """
    if ctx.reference is None:
        raise MetricSkipped("needs --reference")
    return _overlap_score(ctx, ctx.reference, n, ngrams=True, other_name="reference", reason="memorised")


@metric("contam/test-ngram-overlap", args={"n": 13},
        needs=("texts", "test"),
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags",
        expect={"test-copy": "+", "reference-copy": "0", "label-noise": "0", "exact-dup": "0"})
def test_ngram_overlap(ctx, n: int = 13) -> Score:
    """Test-set contamination: share of candidate rows sharing a word 13-gram (or, if shorter, the whole text) with the test split; lower is better.

    The synthetic training data contains evaluation data: a row counts when it shares a word
    n-gram (n = 13, Brown et al. 2020; lm-eval-harness decontamination) with a row of the real test
    split (``--test``) or, for any row and the only check for rows shorter than n tokens, when its
    normalised text equals a test row. Range [0, 1]; 0 when clean. Interval: Wilson. details: the
    contaminated candidate rows and the test rows they match.
    """
    if ctx.test is None:
        raise MetricSkipped("needs --test (a real test split)")
    return _overlap_score(ctx, ctx.test, n, ngrams=True, other_name="test", reason="contaminated")


# ----------------------------------------------------------------------------- embedding neighbours

# ``nearest`` (cosine distance and index of each row's nearest row of another set) is harness.stats.knn's


@metric("memo/dcr-closer-than-holdout", args={"quantile": 0.05},
        needs=("embeddings", "reference_embeddings", "test"),
        higher_is_better=False,
        bounds=(0, 1),
        expect={"reference-copy": "+", "test-copy": "0", "label-noise": "0"},
        limits={
            "test-copy": ("DCR calibrates its threshold on the held-out split, assuming it is exchangeable with the rows "
             "the generator saw. Banking77's official test split is not: test queries lie farther from the "
             "training queries than training queries lie from each other, so a clean candidate drawn from the "
             "training split already sits above the nominal 5%, and test copies pull it down towards 5%. With "
             "a random holdout (BBC News) it stays flat, as declared."),
        },
        no_identity="a copy detector, not a distance: a set against itself is all copies (1)")
def dcr_closer_than_holdout(ctx, quantile: float = 0.05) -> Score:
    """DCR memorisation: share of candidate rows closer to the reference than the closest 5% of held-out real rows; lower is better, ≈ 0.05 without memorisation.

    Distance to closest record (DCR): each candidate row's cosine distance to its nearest
    reference (training) row, compared with the same distance for the rows of the real held-out
    test split, which the generator never saw. Value = share of candidate rows whose DCR is at or
    below the ``quantile`` (5%) quantile of the held-out DCRs. A generator that samples fresh rows
    from the real distribution gives ≈ ``holdout_share`` (≈ 0.05; details); copies of the
    reference push it towards 1. Range [0, 1]. Interval: Wilson (candidate rows only; the
    threshold's own noise is not included). Platzer & Reutterer, "Holdout-based fidelity and
    privacy assessment of mixed-type synthetic data", Frontiers in Big Data 2021; Zhao et al.,
    CTAB-GAN, ACML 2021. Row flags: ``memorised`` only for rows closer to the reference than *every*
    held-out row (DCR at or below the held-out minimum, or below 1e-6: an embedding copy), a per-row
    rule whose false-positive rate for a fresh row is about 1 / (held-out rows + 1), where the 5% rule
    of the value would flag 5%.
    """
    import numpy as np

    if ctx.reference is None:
        raise MetricSkipped("needs --reference")
    if ctx.test is None:
        raise MetricSkipped("needs --test (a held-out real split)")
    R = ctx.reference.embeddings
    d_syn, j_syn = nearest(ctx.embeddings, R)
    d_test, _ = nearest(ctx.test.embeddings, R)
    if len(d_test) < 20:
        raise MetricSkipped(f"needs at least 20 held-out rows for a {quantile:.0%} quantile, got {len(d_test)}")
    thr = float(np.quantile(d_test, quantile))
    close = d_syn <= thr + 1e-9
    k = int(close.sum())
    copied = np.flatnonzero(d_syn <= max(float(d_test.min()), 1e-6) + 1e-9)  # 1e-6: float noise of a copy
    order = np.argsort(d_syn, kind="stable")
    ex = [{"row": int(i), "reference_row": int(j_syn[i]), "distance": round(float(d_syn[i]), 4),
           "text": _cut(ctx.texts[i]), "reference_text": _cut(ctx.reference.texts[int(j_syn[i])])}
          for i in order[:MAX_LISTED] if close[i]]
    return Score(k / len(d_syn), wilson_ci(k, len(d_syn)),
                 {"count": k, "threshold": round(thr, 6), "quantile": quantile,
                  "holdout_share": round(float(np.mean(d_test <= thr + 1e-9)), 4),
                  "median_dcr": round(float(np.median(d_syn)), 4),
                  "median_dcr_holdout": round(float(np.median(d_test)), 4),
                  "copies": int((d_syn < 1e-6).sum()), "flagged_rows": _ids(np.flatnonzero(close)),
                  "examples": ex, "closer_than_every_holdout_row": len(copied)},
                 rows={"memorised": [int(i) for i in copied]})


@metric("contam/test-near-match", args={"threshold": 0.95},
        needs=("embeddings", "test"),
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags",
        expect={"test-copy": "+", "reference-copy": "0", "label-noise": "0"})
def test_near_match(ctx, threshold: float = 0.95) -> Score:
    """Paraphrased test contamination: share of candidate rows with cosine similarity ≥ 0.95 to some test row; lower is better.

    Embedding near-matches catch contamination that n-gram checks miss (paraphrases, reordered
    or re-punctuated test items). Each candidate row's nearest test row by cosine similarity of
    the run's sentence embeddings; a row counts at or above ``threshold``. Range [0, 1].
    Interval: Wilson. Yang et al., "Rethinking Benchmark and Contamination for Language Models with
    Rephrased Samples", 2023 (embedding similarity as a contamination detector). Row flags:
    ``contaminated`` for every counted row.
    """
    import numpy as np

    if ctx.test is None:
        raise MetricSkipped("needs --test (a real test split)")
    d, j = nearest(ctx.embeddings, ctx.test.embeddings)
    sim = 1.0 - d
    hit = sim >= threshold - 1e-6
    k = int(hit.sum())
    rows = np.flatnonzero(hit)
    rows = rows[np.argsort(-sim[rows], kind="stable")]
    ex = [{"row": int(i), "test_row": int(j[i]), "similarity": round(float(sim[i]), 4),
           "text": _cut(ctx.texts[i]), "test_text": _cut(ctx.test.texts[int(j[i])])} for i in rows[:MAX_LISTED]]
    return Score(k / len(sim), wilson_ci(k, len(sim)),
                 {"count": k, "threshold": threshold, "flagged_rows": _ids(np.sort(rows)), "examples": ex},
                 rows={"contaminated": [int(i) for i in np.sort(rows)]})


# ----------------------------------------------------------------------------- label faithfulness

def _classifier(C: float):
    from harness.resources.trainers import make_embed_classifier

    return make_embed_classifier(C)


def _fit_proba(X, y, Xt, C: float):
    """Multinomial LR (the minilm-lr recipe's classifier) fitted on (X, y); class order and probabilities for Xt."""
    import numpy as np

    from harness.resources.trainers import _limited, _quiet_sklearn

    clf = _classifier(C)
    with _quiet_sklearn(), _limited(1):
        clf.fit(np.asarray(X), np.asarray(y))
        return clf.classes_, clf.predict_proba(np.asarray(Xt))


@metric("faith/reference-agreement", args={"C": 10},
        needs=("labels", "embeddings", "reference", "reference_embeddings"),
        size_dependent=True,
        higher_is_better=True,
        bounds=(0, 1),
        expect={"label-noise": "-", "topic-drift": "-"},
        no_identity="against itself it is the reference classifier's training accuracy",
        resampler="reference_agreement_resampler")
def reference_agreement(ctx, C: float = 10.0) -> Score:
    """Reference-classifier agreement: share of candidate rows whose label a classifier trained on the real data predicts; higher is better.

    Label faithfulness: a multinomial logistic regression (the minilm-lr recipe's classifier) is
    trained on the reference's embeddings and labels and predicts each candidate row; the value is
    the share of candidate rows where it predicts the row's own label. Only rows whose label occurs
    in the reference are scored (details: ``left_out`` and ``labels_not_in_reference``). Range
    [0, 1]; bounded above by the reference classifier's own accuracy. Interval: Wilson.
    Long et al., "On LLMs-Driven Synthetic Data Generation, Curation, and Evaluation: A Survey",
    2024 (faithfulness); Yu et al., "Large Language Model as Attributed Training Data Generator",
    NeurIPS 2023. details: per-class agreement, top confusions, the 10 least-agreeing rows.
    Row flags: ``low-agreement`` for scored rows to whose own label the classifier gives a
    probability below ``LOW_AGREEMENT_P`` (0.05: it is at least 95% sure the label is wrong).
    """
    import numpy as np

    ref = ctx.reference
    if ref is None or ref.labels is None:
        raise MetricSkipped("needs a labelled --reference")
    if ctx.labels is None:
        raise MetricSkipped("needs labels")
    ref_labels = np.asarray(ref.labels, dtype=object)
    known = set(ref.labels)
    if len(known) < 2:
        raise MetricSkipped("the reference has fewer than 2 labels")
    y = np.asarray(ctx.labels, dtype=object)
    keep = np.array([lab in known for lab in ctx.labels], dtype=bool)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise MetricSkipped("no candidate row has a label that occurs in the reference")
    X = ctx.embeddings
    classes, P = _fit_proba(ref.embeddings, ref_labels.astype(str), X[rows], C)
    classes = [str(c) for c in classes]
    col = {c: i for i, c in enumerate(classes)}
    given = [str(v) for v in y[rows]]
    pred = [classes[i] for i in P.argmax(axis=1)]
    own = np.array([P[r, col[g]] for r, g in enumerate(given)])
    agree = np.array([p == g for p, g in zip(pred, given)])
    k, n = int(agree.sum()), len(rows)
    per_class: dict[str, dict] = {}
    for g, a in zip(given, agree):
        d = per_class.setdefault(g, {"rows": 0, "agree": 0})
        d["rows"] += 1
        d["agree"] += int(a)
    for d in per_class.values():
        d["rate"] = round(d["agree"] / d["rows"], 4)
    conf: dict[tuple[str, str], int] = {}
    for g, p, a in zip(given, pred, agree):
        if not a:
            conf[(g, p)] = conf.get((g, p), 0) + 1
    top = sorted(conf.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED]
    worst = np.argsort(own, kind="stable")[:10]
    gone = sorted({str(lab) for lab in y[~keep]})
    low = [int(rows[r]) for r in np.flatnonzero(own < LOW_AGREEMENT_P)]
    return Score(k / n, wilson_ci(k, n), rows={"low-agreement": low}, details={
        "agree": k, "scored": n, "left_out": int((~keep).sum()), "labels_not_in_reference": gone[:MAX_LISTED],
        "per_class": dict(sorted(per_class.items())),
        "top_confusions": [{"given": g, "predicted": p, "count": c} for (g, p), c in top],
        "least_agreeing": [{"row": int(rows[r]), "label": given[r], "predicted": pred[r],
                            "p_label": round(float(own[r]), 4), "text": _cut(ctx.texts[int(rows[r])])}
                           for r in worst],
    })


@metric("faith/label-issue-rate", args={"folds": 5, "C": 10, "min_rows": 5},
        needs=("labels", "embeddings"),
        higher_is_better=False,
        bounds=(0, 1),
        seeded=True,
        expect={"label-noise": "+"})
def label_issue_rate(ctx, folds: int = 5, C: float = 10.0, min_rows: int = 5) -> Score:
    """Label-issue rate: share of rows whose label confident learning flags as likely wrong; lower is better.

    Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in
    Dataset Labels", JAIR 2021) via ``cleanlab.filter.find_label_issues`` on out-of-fold predicted
    probabilities: ``folds``-fold stratified cross-validation (seeded split) of a multinomial
    logistic regression on the candidate's own embeddings. Rows of classes with fewer than
    ``min_rows`` rows (5) cannot be cross-validated: they are left out of the numerator and the
    denominator (details: ``left_out``, ``small_classes``). Range [0, 1]. Interval: Wilson.
    details: flagged rows (index, given label, suggested label, text), at most 20 listed.
    Row flags: ``label-issue`` for every flagged row.
    """
    import numpy as np
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold

    if ctx.labels is None:
        raise MetricSkipped("needs labels")
    labels = [str(v) for v in ctx.labels]
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    small = sorted(lab for lab, c in counts.items() if c < max(min_rows, folds))
    keep = np.array([counts[lab] >= max(min_rows, folds) for lab in labels], dtype=bool)
    rows = np.flatnonzero(keep)
    classes = sorted({labels[i] for i in rows})
    if len(classes) < 2:
        raise MetricSkipped(f"fewer than 2 classes with at least {max(min_rows, folds)} rows")
    code = {c: i for i, c in enumerate(classes)}
    y = np.array([code[labels[i]] for i in rows])
    X = np.asarray(ctx.embeddings)[rows]
    P = np.zeros((len(rows), len(classes)))
    seed = int(ctx.rng("faith/label-issue-rate").integers(2**31 - 1))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        cls, p = _fit_proba(X[tr], y[tr], X[te], C)
        P[np.ix_(te, np.asarray(cls, dtype=int))] = p  # every class is in every training fold (>= folds rows)
    issues = find_label_issues(labels=y, pred_probs=P, return_indices_ranked_by="self_confidence")
    k, n = len(issues), len(rows)
    flagged = [{"row": int(rows[r]), "label": classes[y[r]], "suggested": classes[int(P[r].argmax())],
                "p_label": round(float(P[r, y[r]]), 4), "text": _cut(ctx.texts[int(rows[r])])}
               for r in issues[:MAX_LISTED]]
    return Score(k / n, wilson_ci(k, n), rows={"label-issue": sorted(int(rows[r]) for r in issues)}, details={
        "flagged": k, "scored": n, "left_out": int((~keep).sum()), "small_classes": small[:MAX_LISTED],
        "flagged_rows": _ids(sorted(int(rows[r]) for r in issues)),
        "examples": flagged, "oof_accuracy": round(float((P.argmax(axis=1) == y).mean()), 4),
    })


# ----------------------------------------------------------------------------- resamplers (compare)

def reference_agreement_resampler(ctx, C: float = 10.0, refit: bool = False):
    """Reference agreement on a subset: the reference classifier predicts every pooled row once; a
    subset's value is the share of its scored rows (labels the reference has) whose label it predicts.
    Exact under permutations (the classifier is fitted on the reference only, which they keep). A
    half-sample halves the reference, on which the metric would fit anew: with ``refit`` each reference
    half gets its own classifier (exact, one fit per half-sample, shared by A's and B's halves: minutes
    for thousands of reference rows and a hundred classes); by default the full reference's classifier is
    kept (an approximation, stated in compare's notes: the interval leaves out the refit's own noise,
    which A and B share; the p-value, from permutations, is exact)."""
    import numpy as np

    from harness.stats.sufficient import PerRef, Resampler

    ref = ctx.reference
    if ref is None or ref.labels is None or ctx.labels is None:
        return None
    ref_labels = np.asarray([str(v) for v in ref.labels], dtype=object)
    y = np.asarray([str(v) for v in ctx.labels], dtype=object)
    X, R = np.asarray(ctx.embeddings), np.asarray(ref.embeddings)
    fitted = PerRef()

    def fit(ref_rows):
        idx = np.arange(len(ref_labels)) if ref_rows is None else np.asarray(ref_rows, dtype=np.int64)
        labs = ref_labels[idx]
        known = set(labs)
        if len(known) < 2:
            return None
        keep = np.array([lab in known for lab in y], dtype=bool)
        agree = np.zeros(len(y), dtype=bool)
        rows = np.flatnonzero(keep)
        if len(rows):
            classes, P = _fit_proba(R[idx], labs.astype(str), X[rows], C)
            classes = np.asarray([str(c) for c in classes], dtype=object)
            agree[rows] = classes[P.argmax(axis=1)] == y[rows]
        return keep, agree

    def value(rows, ref_rows=None, test_rows=None):
        state = fitted.get(ref_rows if refit else None, fit)
        if state is None:
            raise MetricSkipped("the reference has fewer than 2 labels")
        keep, agree = state
        rows = np.asarray(rows, dtype=np.int64)
        n = int(keep[rows].sum())
        if n == 0:
            raise MetricSkipped("no candidate row has a label that occurs in the reference")
        return float(agree[rows].sum() / n)

    res = Resampler(value, "reference-classifier predictions per row"
                    + (", refitted per reference half" if refit else ", classifier held fixed"),
                    cheap=True)  # permutations keep the reference: one fit, then lookups
    if not refit:
        res.approximate = ("half-samples keep the full reference's classifier instead of fitting one on each "
                           "reference half; permutations are exact")
    return res
