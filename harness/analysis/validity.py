"""Metric validity: does every metric move when the data gets worse in its way, and stay put otherwise?

``synthbench validate`` takes a real labelled dataset, damages it on purpose with controlled
*corruptions* at several severities (share of rows affected: 0, 10, 25, 50% by default), runs every
registered metric on each damaged copy through the ordinary runner, and measures how each metric moves:
the Spearman correlation between severity and the metric's change from the clean sample of the same
repeat, with a 95% interval over severities x repeats. Each (metric, corruption) cell is checked
against the expectation each metric declares (``expect=`` in its ``@metric``).

Corruptions are small pure functions ``fn(corpus, severity, rng, sources) -> Corrupted``: seeded,
they keep the number of rows (size-dependent metrics stay comparable) and return which rows they
changed. ``sources`` holds the rows a corruption may draw from: the unused part of the dataset (the
*pool*), the reference, the test split and another dataset.

Layout of the data (``plan_layout``): a test split (``--test``, else 20% of DATASET held out), a
reference (``--reference``, else a disjoint half of what is left of DATASET) and the candidate pool
(the rest). Every repeat draws a fresh sample of n rows from the pool, the *clean* candidate, and
corrupts it at each severity with its own seed; severity 0 is the clean sample itself.

Identity checks (``identity_checks``): for each metric with a declared "no difference" value, a
sample against itself must give that value and two disjoint samples of the pool must come close to it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.stats.rank import spearman_interval
from harness.types import Corpus

DEFAULT_SEVERITIES = (0.0, 0.1, 0.25, 0.5)


# ----------------------------------------------------------------------------- corpora helpers

def take(corpus: Corpus, idx, name: str | None = None, source: str | None = None) -> Corpus:
    """The rows ``idx`` of ``corpus`` (in that order), as a new Corpus."""
    idx = [int(i) for i in idx]
    pick = lambda seq: tuple(seq[i] for i in idx)  # noqa: E731
    return Corpus(name=name or corpus.name, source=source or corpus.source, kind=corpus.kind,
                  texts=pick(corpus.texts), labels=pick(corpus.labels) if corpus.labels is not None else None,
                  fields={k: pick(v) for k, v in corpus.fields.items()}, n_source_rows=len(idx))


def _rows(corpus: Corpus, i: int) -> tuple[str, str | None, dict]:
    return (corpus.texts[i], corpus.labels[i] if corpus.labels is not None else None,
            {k: v[i] for k, v in corpus.fields.items()})


def with_rows(corpus: Corpus, changes: dict[int, tuple[str, str | None, dict]]) -> Corpus:
    """``corpus`` with the rows at the given positions replaced by (text, label, fields)."""
    texts, labels = list(corpus.texts), list(corpus.labels) if corpus.labels is not None else None
    fields = {k: list(v) for k, v in corpus.fields.items()}
    for i, (t, lab, f) in changes.items():
        texts[i] = t
        if labels is not None:
            labels[i] = lab if lab is not None else labels[i]
        for k in fields:
            fields[k][i] = f.get(k, fields[k][i])
    return Corpus(name=corpus.name, source=corpus.source, kind=corpus.kind, texts=tuple(texts),
                  labels=tuple(labels) if labels is not None else None,
                  fields={k: tuple(v) for k, v in fields.items()}, n_source_rows=len(texts))


def n_affected(severity: float, n: int) -> int:
    """round(severity * n), halves rounded up.

    >>> n_affected(0.25, 10), n_affected(0.5, 7), n_affected(0, 100)
    (3, 4, 0)
    """
    return min(n, int(math.floor(severity * n + 0.5)))


# ----------------------------------------------------------------------------- corruptions

@dataclass(frozen=True)
class Sources:
    """Rows a corruption may draw from; none of them overlaps the candidate sample."""

    pool: Corpus | None = None        # the rest of DATASET's candidate part
    reference: Corpus | None = None   # the reference the metrics compare with
    test: Corpus | None = None        # the test split the contamination/utility metrics use
    other: Corpus | None = None       # another real dataset (topic drift)


@dataclass(frozen=True)
class Corrupted:
    corpus: Corpus
    rows: tuple[int, ...]             # positions changed
    note: str = ""


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: Callable
    summary: str
    needs: tuple[str, ...] = ()       # 'labels', 'pool', 'test', 'reference', 'other'


def _positions(rng, n: int, k: int, eligible=None):
    pool = list(range(n)) if eligible is None else list(eligible)
    k = min(k, len(pool))
    return sorted(int(i) for i in rng.choice(pool, size=k, replace=False)) if k else []


def _replace_from(corpus: Corpus, rng, k: int, donor: Corpus, donor_idx, keep_label: bool = False) -> Corrupted:
    """Replace k random rows of ``corpus`` by the donor rows ``donor_idx`` (verbatim)."""
    pos = _positions(rng, len(corpus), k)
    donor_idx = list(donor_idx)[: len(pos)]
    changes = {}
    for p, j in zip(pos, donor_idx):
        t, lab, f = _rows(donor, j)
        if keep_label or donor.labels is None:
            lab = corpus.labels[p] if corpus.labels is not None else None
        changes[p] = (t, lab, f)
    return Corrupted(with_rows(corpus, changes), tuple(sorted(changes)))


def exact_duplicates(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Exact duplicates: round(s·n) random rows are replaced by verbatim copies (text and label) of other,
    kept rows, drawn with replacement."""
    n = len(corpus)
    pos = _positions(rng, n, n_affected(severity, n))
    kept = [i for i in range(n) if i not in set(pos)]
    src = rng.choice(kept, size=len(pos), replace=True) if pos else []
    return Corrupted(with_rows(corpus, {p: _rows(corpus, int(j)) for p, j in zip(pos, src)}), tuple(pos))


_WORD = re.compile(r"[^\W\d_]{3,}")


def small_edit(text: str, rng, min_jaccard: float = 0.82) -> str:
    """A near copy: typos (two adjacent letters swapped inside a word), about one per 80 characters,
    backing off to fewer while the character-5-gram Jaccard similarity to ``text`` stays below
    ``min_jaccard``; a text too short for any typo gets its last character doubled. Word counts and
    token boundaries are unchanged; the result never equals ``text`` after normalisation."""
    from harness.metrics.direct.duplicates import jaccard, normalise, shingles

    spans = []
    for m in _WORD.finditer(text):
        w = m.group(0)
        inner = [m.start() + j for j in range(len(w) - 1) if w[j].lower() != w[j + 1].lower()]
        if inner:
            spans.append(inner)
    base = shingles(text, 5)
    want = max(1, round(len(text) / 80))
    order = rng.permutation(len(spans)) if spans else []
    picks = [spans[i][int(rng.integers(len(spans[i])))] for i in order]
    for m in range(min(want, len(picks)), 0, -1):
        chars = list(text)
        for p in picks[:m]:
            chars[p], chars[p + 1] = chars[p + 1], chars[p]
        out = "".join(chars)
        if normalise(out) != normalise(text) and jaccard(base, shingles(out, 5)) >= min_jaccard:
            return out
    return text + text[-1] if text else "."


def near_duplicates(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Near duplicates: round(s·n) random rows are replaced by copies of other, kept rows with small edits
    (typos; character-5-gram Jaccard >= 0.82 to the original, never an exact copy), labels copied. Each
    kept row is copied at most once while there are enough (two edited copies of one short row could
    otherwise coincide and make exact duplicates)."""
    n = len(corpus)
    pos = _positions(rng, n, n_affected(severity, n))
    kept = [i for i in range(n) if i not in set(pos)]
    src = rng.choice(kept, size=len(pos), replace=len(pos) > len(kept)) if pos else []
    changes = {}
    for p, j in zip(pos, src):
        t, lab, f = _rows(corpus, int(j))
        changes[p] = (small_edit(t, rng), lab, f)
    return Corrupted(with_rows(corpus, changes), tuple(pos))


def label_noise(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Label noise: round(s·n) random rows get a different label, drawn uniformly from the other labels."""
    labels = sorted(set(corpus.labels) | (set(sources.pool.labels) if sources.pool is not None
                                          and sources.pool.labels is not None else set()), key=str)
    n = len(corpus)
    pos = _positions(rng, n, n_affected(severity, n))
    changes = {}
    for p in pos:
        t, lab, f = _rows(corpus, p)
        others = [x for x in labels if x != lab]
        changes[p] = (t, others[int(rng.integers(len(others)))], f)
    return Corrupted(with_rows(corpus, changes), tuple(pos))


def _tfidf_neighbours(pool_texts, seeds, per_seed: int):
    """For each seed row of the pool, its ``per_seed`` nearest pool rows by TF-IDF cosine (itself first)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    X = TfidfVectorizer(sublinear_tf=True, min_df=1).fit_transform(pool_texts)
    sims = (X[list(seeds)] @ X.T).toarray()
    return [list(np.argsort(-s, kind="stable")[:per_seed]) for s in sims]


def mode_collapse(corpus: Corpus, severity: float, rng, sources: Sources, modes: int = 3) -> Corrupted:
    """Mode collapse: round(s·n) random rows are replaced by real rows drawn from a few (3) tight clusters:
    the nearest pool rows (TF-IDF cosine) to 3 random pool rows, each row used once, with their labels."""
    n, pool = len(corpus), sources.pool
    k = n_affected(severity, n)
    if k == 0:
        return Corrupted(corpus, ())
    if pool is None or len(pool) < k + modes:
        raise ValueError(f"mode-collapse needs a pool of at least {k + modes} rows")
    seeds = [int(i) for i in rng.choice(len(pool), size=modes, replace=False)]
    lists = _tfidf_neighbours(pool.texts, seeds, k + modes)
    chosen: list[int] = []
    taken: set[int] = set()
    quota = [k // modes + (1 if m < k % modes else 0) for m in range(modes)]
    for m in range(modes):
        got = 0
        for j in lists[m]:
            if got == quota[m]:
                break
            if int(j) not in taken:
                taken.add(int(j))
                chosen.append(int(j))
                got += 1
    order = rng.permutation(len(chosen))
    return _replace_from(corpus, rng, k, pool, [chosen[i] for i in order])


def class_drop(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Class drop: ceil(s·C) of the C labels (at most C - 2) lose every row; those rows are replaced by
    random pool rows of the remaining labels, so the size stays n. Severity is the share of labels."""
    labels = sorted(set(corpus.labels), key=str)
    m = min(len(labels) - 2, int(math.ceil(severity * len(labels) - 1e-9))) if severity > 0 else 0
    if m <= 0:
        return Corrupted(corpus, (), "no label dropped")
    dropped = {labels[int(i)] for i in rng.choice(len(labels), size=m, replace=False)}
    pos = [i for i, lab in enumerate(corpus.labels) if lab in dropped]
    pool = sources.pool
    donors = [j for j, lab in enumerate(pool.labels) if lab not in dropped]
    if len(donors) < len(pos):
        raise ValueError(f"class-drop needs {len(pos)} pool rows of the kept labels, the pool has {len(donors)}")
    src = rng.choice(donors, size=len(pos), replace=False)
    changes = {p: _rows(pool, int(j)) for p, j in zip(pos, src)}
    return Corrupted(with_rows(corpus, changes), tuple(pos),
                     f"dropped {m} of {len(labels)} labels: {', '.join(sorted(map(str, dropped)))}")


def _token_spans(text: str):
    from harness.metrics.direct.lexical import _TOKEN

    return [m.span() for m in _TOKEN.finditer(text.lower())]


def truncation(corpus: Corpus, severity: float, rng, sources: Sources, keep: float = 1 / 3) -> Corrupted:
    """Truncation: round(s·n) random rows of at least 2 words are cut after their first ceil(words/3)
    words (a strict prefix of the text, cut mid-sentence), labels kept."""
    n = len(corpus)
    spans = [_token_spans(t) for t in corpus.texts]
    eligible = [i for i in range(n) if len(spans[i]) >= 2]
    pos = _positions(rng, n, n_affected(severity, n), eligible)
    changes = {}
    for p in pos:
        t, lab, f = _rows(corpus, p)
        w = max(1, math.ceil(len(spans[p]) * keep))
        changes[p] = (t[: spans[p][w - 1][1]], lab, f)
    return Corrupted(with_rows(corpus, changes), tuple(pos))


def length_shift(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Length shift: round(s·n) random rows are replaced by random real rows of the pool's longest quarter
    (word count at or above its 75th percentile), with their labels: natural text, longer on average."""
    import numpy as np

    pool = sources.pool
    k = n_affected(severity, len(corpus))
    lengths = np.array([len(s) for s in (_token_spans(t) for t in pool.texts)])
    long_rows = np.flatnonzero(lengths >= np.quantile(lengths, 0.75))
    if len(long_rows) < k:
        long_rows = np.argsort(-lengths, kind="stable")[:k]
    return _replace_from(corpus, rng, k, pool, rng.choice(long_rows, size=min(k, len(long_rows)), replace=False))


def topic_drift(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Topic drift: round(s·n) random rows are replaced by random rows of another real dataset, keeping the
    replaced row's label (a generator asked for that label that wrote about something else)."""
    k = n_affected(severity, len(corpus))
    other = sources.other
    if len(other) < k:
        raise ValueError(f"topic-drift needs {k} rows of the other dataset, it has {len(other)}")
    donor = replace(other, fields={})
    return _replace_from(corpus, rng, k, donor, rng.choice(len(other), size=k, replace=False), keep_label=True)


def shuffle_words(text: str, rng) -> str:
    """The whitespace-separated words of ``text`` in a random order (another order than the original when
    the words are not all equal); the multiset of word tokens, and so every unigram count, is kept."""
    words = text.split()
    if len(set(words)) < 2:
        return text
    for _ in range(20):
        out = [words[i] for i in rng.permutation(len(words))]
        if out != words:
            return " ".join(out)
    return " ".join(words[1:] + words[:1])


def shuffled_words(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Shuffled words: round(s·n) random rows (of at least 2 different words) have their words put in a
    random order, labels kept: the same bag of words, no syntax."""
    n = len(corpus)
    eligible = [i for i, t in enumerate(corpus.texts) if len(set(t.split())) >= 2]
    pos = _positions(rng, n, n_affected(severity, n), eligible)
    changes = {}
    for p in pos:
        t, lab, f = _rows(corpus, p)
        changes[p] = (shuffle_words(t, rng), lab, f)
    return Corrupted(with_rows(corpus, changes), tuple(pos))


def test_copies(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Test copies: round(s·n) random rows are replaced by distinct rows of the test split, verbatim
    (text and label): contamination."""
    k = n_affected(severity, len(corpus))
    if len(sources.test) < k:
        raise ValueError(f"test-copy needs {k} test rows, the test split has {len(sources.test)}")
    return _replace_from(corpus, rng, k, sources.test, rng.choice(len(sources.test), size=k, replace=False))


def reference_copies(corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Reference copies: round(s·n) random rows are replaced by distinct rows of the reference, verbatim:
    memorisation of the data the generator was seeded with."""
    k = n_affected(severity, len(corpus))
    ref = sources.reference
    if len(ref) < k:
        raise ValueError(f"reference-copy needs {k} reference rows, the reference has {len(ref)}")
    return _replace_from(corpus, rng, k, ref, rng.choice(len(ref), size=k, replace=False))


def _corruption(name, fn, needs=()):
    return Corruption(name, fn, (fn.__doc__ or "").split(":", 1)[1].strip().split("\n\n")[0].replace("\n", " ")
                      if ":" in (fn.__doc__ or "") else "", tuple(needs))


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in [
    _corruption("exact-dup", exact_duplicates),
    _corruption("near-dup", near_duplicates),
    _corruption("label-noise", label_noise, ("labels",)),
    _corruption("mode-collapse", mode_collapse, ("pool",)),
    _corruption("class-drop", class_drop, ("labels", "pool")),
    _corruption("truncation", truncation),
    _corruption("length-shift", length_shift, ("pool",)),
    _corruption("topic-drift", topic_drift, ("other",)),
    _corruption("shuffled-words", shuffled_words),
    _corruption("test-copy", test_copies, ("test",)),
    _corruption("reference-copy", reference_copies, ("reference",)),
]}


def corruption_rng(seed: int, repeat: int, name: str, severity: float):
    """The generator of one (repeat, corruption, severity) cell: independent of every other cell."""
    import numpy as np

    return np.random.default_rng([seed, repeat, zlib.crc32(name.encode()), int(round(severity * 10000))])


def corrupt(name: str, corpus: Corpus, severity: float, rng, sources: Sources) -> Corrupted:
    """Apply corruption ``name`` at ``severity`` (0 returns the corpus unchanged)."""
    if not 0 <= severity <= 1:
        raise ValueError(f"severity {severity} is not in [0, 1]")
    if severity == 0:
        return Corrupted(corpus, ())
    return CORRUPTIONS[name].fn(corpus, severity, rng, sources)


def missing_sources(name: str, corpus: Corpus, sources: Sources) -> str | None:
    """Why corruption ``name`` cannot run here, or None."""
    for need in CORRUPTIONS[name].needs:
        if need == "labels" and corpus.labels is None:
            return "needs labels"
        if need == "labels" and len(set(corpus.labels)) < 3 and name == "class-drop":
            return "needs at least 3 labels"
        if need in ("pool", "test", "reference", "other") and getattr(sources, need) is None:
            return {"other": "needs --other (rows of another dataset)", "test": "needs a test split",
                    "reference": "needs a reference", "pool": "needs spare rows of DATASET"}[need]
    return None


# ----------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    pool: Corpus                  # the candidate part of DATASET (samples and spare rows come from here)
    reference: Corpus             # what every candidate is compared with
    test: Corpus | None
    other: Corpus | None
    notes: tuple[str, ...] = ()


def _split(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """(rest, part) with ``fraction`` of the rows in part, stratified by label where there are labels."""
    rest, part = corpus.holdout(fraction, seed)
    return rest, part


def plan_layout(dataset: Corpus, reference: Corpus | None, test: Corpus | None, other: Corpus | None,
                sample_size: int, test_size: int, seed: int) -> Layout:
    """Disjoint parts of DATASET: test (unless given), reference (unless given), the candidate pool."""
    import numpy as np

    notes = []
    pool = dataset
    if test is None:
        pool, test = _split(pool, 0.2, seed)
        notes.append(f"test split: 20% of {dataset.name} held out (stratified, seed {seed}), {len(test)} rows")
    else:
        notes.append(f"test split: {test.name}, {len(test)} rows")
    if reference is None:
        pool, reference = _split(pool, 0.5, seed + 1)
        notes.append(f"reference: a disjoint half of the rest of {dataset.name} ({len(reference)} rows)")
    else:
        notes.append(f"reference: {reference.name}, {len(reference)} rows")
    if len(reference) > sample_size:
        idx = np.sort(np.random.default_rng([seed, 1]).choice(len(reference), size=sample_size, replace=False))
        reference = take(reference, idx)
        notes.append(f"reference sampled to {sample_size} rows (seed {seed})")
    if len(test) > test_size:
        idx = np.sort(np.random.default_rng([seed, 2]).choice(len(test), size=test_size, replace=False))
        test = take(test, idx)
        notes.append(f"test split sampled to {test_size} rows (seed {seed})")
    reference = replace(reference, name="reference")
    test = replace(test, name="test")
    notes.append(f"candidate pool: {len(pool)} rows of {dataset.name}; each repeat samples {sample_size}")
    if other is not None:
        notes.append(f"topic-drift rows from {other.name} ({len(other)} rows)")
    return Layout(pool=pool, reference=reference, test=test, other=other, notes=tuple(notes))


@dataclass(frozen=True)
class Cell:
    """One corrupted (or clean) candidate: which corruption, severity and repeat it is."""

    name: str
    corruption: str | None        # None for the clean sample
    severity: float
    repeat: int
    corpus: Corpus
    rows: tuple[int, ...] = ()
    note: str = ""


def build_cells(layout: Layout, corruptions: list[str], severities, repeats: int, sample_size: int,
                seed: int) -> tuple[list[Cell], dict[str, str]]:
    """The clean sample of each repeat and its corrupted copies; returns (cells, {corruption: why not run})."""
    import numpy as np

    cells: list[Cell] = []
    not_run: dict[str, str] = {}
    pool = layout.pool
    if len(pool) < sample_size:
        raise ValueError(f"the candidate pool has {len(pool)} rows, fewer than the sample size {sample_size}")
    for r in range(repeats):
        idx = np.sort(np.random.default_rng([seed, 1000 + r]).choice(len(pool), size=sample_size, replace=False))
        rest = np.setdiff1d(np.arange(len(pool)), idx)
        clean = take(pool, idx, name=f"clean#r{r}")
        sources = Sources(pool=take(pool, rest) if len(rest) else None, reference=layout.reference,
                          test=layout.test, other=layout.other)
        cells.append(Cell(clean.name, None, 0.0, r, clean))
        for c in corruptions:
            why = missing_sources(c, clean, sources)
            if why:
                not_run[c] = why
                continue
            for s in severities:
                if s == 0:
                    continue
                try:
                    out = corrupt(c, clean, s, corruption_rng(seed, r, c, s), sources)
                except ValueError as e:
                    not_run[c] = str(e)
                    break
                name = f"{c}@{s:g}#r{r}"
                cells.append(Cell(name, c, float(s), r, replace(out.corpus, name=name), out.rows, out.note))
    if not_run:
        bad = set(not_run)
        cells = [c for c in cells if c.corruption not in bad]
    return cells, not_run


# ----------------------------------------------------------------------------- statistics

# ``spearman_interval`` (Spearman's rho with the Bonett-Wright Fisher-z interval) is harness.stats.rank's.


def verdict(expect: str | None, stat: dict) -> str:
    """'pass', 'FAIL', 'none' (no expectation) or 'n/a' (too few points) for one cell.

    >>> verdict("+", {"rho": 0.9, "low": 0.5, "high": 0.97}), verdict("0", {"rho": 0.9, "low": 0.5, "high": 0.97})
    ('pass', 'FAIL')
    """
    if stat.get("rho") is None:
        return "n/a"
    if expect is None:
        return "none"
    lo, hi = stat["low"], stat["high"]
    if expect == "+":
        return "pass" if lo > 0 else "FAIL"
    if expect == "-":
        return "pass" if hi < 0 else "FAIL"
    return "pass" if lo <= 0 <= hi else "FAIL"


# ----------------------------------------------------------------------------- expectations

def _declaration(metric: str):
    from harness import metrics as registry

    return registry.info(metric) if registry.is_metric(metric) else None


def expectations_for(metric: str) -> dict[str, str]:
    """{corruption: sign} declared with ``metric`` (its ``expect``; empty if none is declared)."""
    d = _declaration(metric)
    return dict(d.expect or {}) if d is not None else {}


def declared(metric: str) -> bool:
    """Whether ``metric`` declares an expectation at all (a new metric without one shows as unvalidated)."""
    d = _declaration(metric)
    return d is not None and d.expect is not None


def limit_for(metric: str, corruption: str) -> str | None:
    """Why a FAIL of ``metric`` under ``corruption`` (or ``"identity"``) is its documented limit."""
    d = _declaration(metric)
    return d.limits.get(corruption) if d is not None else None


def _null_999(facts: dict, statistic: str) -> float:
    """The 99.9% point of a statistic between two samples of one distribution, by permutation: the rows of
    both samples are pooled and split at random 1,000 times (seeded). Exact where the chi-square or
    asymptotic approximations are not (77 intents at 500 rows). The 99.9% level, not 99%, because a run
    makes about 20 identity checks: at 99% one would fail by chance in about one run of five."""
    from collections import Counter

    import numpy as np
    from scipy.stats import ks_2samp, wasserstein_distance

    from harness.metrics.direct.surface import aligned_counts, jsd_bits, label_chi2

    side = "labels" if statistic in ("jsd", "v") else "lengths"
    a, b = list(facts[f"{side}_a"]), list(facts[f"{side}_b"])
    pooled = np.array(a + b, dtype=object if side == "labels" else float)
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(1000):
        perm = rng.permutation(len(pooled))
        x, y = pooled[perm[:len(a)]], pooled[perm[len(a):]]
        if statistic == "jsd":
            vals.append(jsd_bits(*aligned_counts(Counter(x), Counter(y))[1:]))
        elif statistic == "v":
            vals.append(label_chi2(Counter(x), Counter(y))["cramers_v_corrected"])
        elif statistic == "ks":
            vals.append(float(ks_2samp(x, y).statistic))
        else:
            vals.append(float(wasserstein_distance(x, y)))
    return float(np.quantile(vals, 0.999))


def tolerance(rule, facts: dict) -> float:
    """A declared identity tolerance (:class:`harness.metrics.base.Identity`): a number, ``"null-999:<stat>"``
    or ``"frechet-bias"`` (0.5 at 300 rows a side, growing as 1/n: the bias of Fréchet distances is linear in
    1/n; Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020)."""
    if isinstance(rule, (int, float)):
        return float(rule)
    if rule.startswith("null-999:"):
        return _null_999(facts, rule.split(":", 1)[1])
    if rule == "frechet-bias":
        return 150.0 / max(2, facts["n"])
    raise ValueError(f"unknown identity tolerance rule {rule!r}")


# ----------------------------------------------------------------------------- running

@dataclass
class Validation:
    """Everything ``synthbench validate`` reports (and writes to validity.json)."""

    dataset: str
    metrics: list[str]
    corruptions: list[str]
    severities: list[float]
    repeats: int
    sample_size: int
    cells: dict = field(default_factory=dict)       # (metric, corruption) -> cell record
    identity: list = field(default_factory=list)
    not_run: dict = field(default_factory=dict)     # corruption -> why
    skipped: dict = field(default_factory=dict)     # metric -> why it was not computed
    layout: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def failures(self, strict: bool = False) -> list[dict]:
        bad = [c for c in self.cells.values() if c["verdict"] == "FAIL" or (strict and c["verdict"] == "limit")]
        bad += [i for i in self.identity if i["verdict"] == "FAIL" or (strict and i["verdict"] == "limit")]
        return bad

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "metrics": self.metrics, "corruptions": self.corruptions,
                "severities": self.severities, "repeats": self.repeats, "sample_size": self.sample_size,
                "layout": self.layout, "not_run": self.not_run, "skipped": self.skipped, "meta": self.meta,
                "cells": [self.cells[k] for k in sorted(self.cells, key=lambda k: (self.metrics.index(k[0]),
                                                                              self.corruptions.index(k[1])))],
                "identity": self.identity}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@#-]+", "_", name)


def run_metrics(cells: list[Cell], reference: Corpus, test: Corpus | None, specs, work, cfg, embedder=None,
                log=print, counts: dict | None = None) -> tuple[dict, dict]:
    """Every metric on every cell through the runner, one results folder per cell (resumable).

    Returns ({(cell name, metric): value}, {metric: reason it was skipped}); ``counts`` (if given) adds up
    the results computed and reused.
    """
    from pathlib import Path

    from harness.run.runner import run

    values: dict[tuple[str, str], float] = {}
    skipped: dict[str, str] = {}
    counts = counts if counts is not None else {"computed": 0, "reused": 0}
    work = Path(work)
    for i, cell in enumerate(cells):
        out = run([(cell.corpus, "candidate")], reference, specs, work / _safe(cell.name), cfg,
                  log=lambda m: None, embedder=embedder, test=test)
        for r in out.results:
            values[(cell.name, r.metric)] = r.value
        for _, m, why in out.skipped:
            skipped.setdefault(m, why)
        counts["computed"] += out.computed
        counts["reused"] += out.reused
        if (i + 1) % 10 == 0 or i + 1 == len(cells):
            log(f"validate: {i + 1}/{len(cells)} candidates ({out.computed} computed, {out.reused} reused)")
    return values, skipped


def analyse(cells: list[Cell], values: dict, metrics: list[str], corruptions: list[str]) -> dict:
    """The (metric, corruption) cells: points, ρ with its interval, expectation and verdict."""
    import numpy as np

    clean = {c.repeat: c.name for c in cells if c.corruption is None}
    out = {}
    for m in metrics:
        exp = expectations_for(m)
        has_row = declared(m)
        for cor in corruptions:
            pts = []
            for c in cells:
                if c.corruption != cor:
                    continue
                v, v0 = values.get((c.name, m)), values.get((clean[c.repeat], m))
                if v is not None and v0 is not None:
                    pts.append((c.severity, c.repeat, v, v - v0))
            for r, name in clean.items():
                if (name, m) in values and any(p[1] == r for p in pts):
                    pts.append((0.0, r, values[(name, m)], 0.0))
            pts.sort()
            stat = spearman_interval([p[0] for p in pts], [p[3] for p in pts])
            e = exp.get(cor)
            v = verdict(e, stat)
            why = limit_for(m, cor) if v == "FAIL" else None
            if why:
                v = "limit"
            by_sev = {}
            for s, _, val, d in pts:
                by_sev.setdefault(s, []).append((val, d))
            out[(m, cor)] = {
                "metric": m, "corruption": cor, "expect": e, "declared": has_row, "verdict": v,
                "rho": stat["rho"], "low": stat["low"], "high": stat["high"], "n": stat["n"],
                "constant": stat["constant"], "limit": why,
                "mean_by_severity": {f"{s:g}": float(np.mean([x[0] for x in xs])) for s, xs in sorted(by_sev.items())},
                "mean_change_by_severity": {f"{s:g}": float(np.mean([x[1] for x in xs]))
                                            for s, xs in sorted(by_sev.items())},
            }
    return out


def identity_checks(layout: Layout, specs, work, cfg, sample_size: int, seed: int, embedder=None) -> list[dict]:
    """Self and two-disjoint-samples checks for every metric that compares with a reference."""
    from pathlib import Path

    import numpy as np

    from harness.run.runner import run

    ref_specs = [s for s in specs if "reference" in s.info.needs or "reference_embeddings" in s.info.needs]
    if not ref_specs:
        return []
    pool = layout.pool
    n = min(sample_size, len(pool) // 2)
    perm = np.random.default_rng([seed, 77]).permutation(len(pool))
    a = take(pool, np.sort(perm[:n]), name="half-a")
    b = take(pool, np.sort(perm[n:2 * n]), name="half-b")
    same = replace(b, name="self")
    work = Path(work)
    got: dict[tuple[str, str], float] = {}
    skipped: dict[tuple[str, str], str] = {}
    for cand in (same, a):
        out = run([(cand, "candidate")], b, ref_specs, work / f"identity-{cand.name}", cfg, log=lambda m: None,
                  embedder=embedder, test=layout.test)
        for r in out.results:
            got[(cand.name, r.metric)] = r.value
        for _, m, why in out.skipped:
            skipped[(cand.name, m)] = why
    lengths = np.array([len(_token_spans(t)) for t in b.texts], dtype=float)
    facts = {"n": n, "classes": len(set(b.labels)) if b.labels is not None else 1,
             "labels_a": a.labels or (), "labels_b": b.labels or (),
             "lengths_a": [len(_token_spans(t)) for t in a.texts], "lengths_b": list(lengths),
             "length_std": float(lengths.std(ddof=1)) if n > 1 else 0.0}
    rows = []
    for s in ref_specs:
        m = s.name
        decl = s.info
        if decl.identity is None:
            why = decl.no_identity or "no identity value declared"
            rows.append({"metric": m, "verdict": "none", "why": why,
                         "self": got.get(("self", m)), "halves": got.get(("half-a", m))})
            continue
        idn = decl.identity
        v_self, tol_self, v_half, why = idn.self_value, idn.self_tol, idn.halves_value, idn.why
        tol_half = tolerance(idn.halves_tol, facts)
        x_self, x_half = got.get(("self", m)), got.get(("half-a", m))
        if x_self is None or x_half is None:
            rows.append({"metric": m, "verdict": "n/a", "why": skipped.get(("self", m)) or skipped.get(("half-a", m))
                         or "not computed", "self": x_self, "halves": x_half})
            continue
        ok_self = abs(x_self - v_self) <= tol_self
        ok_half = abs(x_half - v_half) <= tol_half
        v = "pass" if ok_self and ok_half else "FAIL"
        limit = limit_for(m, "identity") if v == "FAIL" else None
        rows.append({"metric": m, "expect_self": v_self, "tol_self": tol_self, "self": x_self, "self_ok": ok_self,
                     "expect_halves": v_half, "tol_halves": tol_half, "halves": x_half, "halves_ok": ok_half,
                     "rows": n, "why": why + (f" Known limit: {limit}" if limit else ""),
                     "verdict": "limit" if limit else v})
    return rows


def validate(dataset: Corpus, specs, work, *, reference: Corpus | None = None, test: Corpus | None = None,
             other: Corpus | None = None, corruptions: list[str] | None = None, severities=DEFAULT_SEVERITIES,
             repeats: int = 3, sample_size: int = 300, test_size: int = 500, seed: int = 0, embedder=None,
             embedder_spec=None, progress: bool = False, log=print) -> Validation:
    """Run the whole validation and return its results (nothing is written here but the runner's caches)."""
    import time

    from harness.run.runner import RunConfig

    t0 = time.perf_counter()
    corruptions = list(corruptions or CORRUPTIONS)
    severities = sorted({float(s) for s in severities} | {0.0})
    layout = plan_layout(dataset, reference, test, other, sample_size, test_size, seed)
    cells, not_run = build_cells(layout, corruptions, severities, repeats, sample_size, seed)
    cfg = RunConfig(seed=seed, embedder=embedder_spec, progress=progress)
    if embedder is None and embedder_spec is not None and any(
            "embeddings" in s.info.needs or "reference_embeddings" in s.info.needs for s in specs):
        from harness.resources.embedder import Embedder

        embedder = Embedder(embedder_spec, progress=progress)
    log(f"validate: {len(cells)} candidates ({repeats} repeat(s) x {len(severities)} severities x "
        f"{len(corruptions) - len(not_run)} corruption(s)) x {len(specs)} metric(s)")
    counts = {"computed": 0, "reused": 0}
    values, skipped = run_metrics(cells, layout.reference, layout.test, specs, work, cfg, embedder, log, counts)
    metrics = [s.name for s in specs]
    ran = [c for c in corruptions if c not in not_run]
    v = Validation(dataset=dataset.name, metrics=metrics, corruptions=ran, severities=severities,
                   repeats=repeats, sample_size=sample_size, not_run=not_run, layout=list(layout.notes))
    v.cells = analyse(cells, values, metrics, ran)
    v.skipped = {m: why for m, why in skipped.items() if not any((c.name, m) in values for c in cells)}
    log("validate: identity checks")
    v.identity = identity_checks(layout, specs, work, cfg, sample_size, seed, embedder)
    v.meta = {"seconds": round(time.perf_counter() - t0, 1), "seed": seed, "test_size": test_size,
              "results_computed": counts["computed"], "results_reused": counts["reused"],
              "embedder": getattr(embedder_spec, "identity", None) or getattr(embedder, "identity", None),
              "candidates": len(cells),
              "corruption_notes": sorted({f"{c.name}: {c.note}" for c in cells if c.note})[:20],
              "definitions": {c: CORRUPTIONS[c].summary for c in ran}}
    return v


# ----------------------------------------------------------------------------- reports


def summary_counts(v: Validation) -> dict:
    cells = list(v.cells.values())
    count = lambda what: sum(1 for c in cells if c["verdict"] == what)  # noqa: E731
    return {"checks": sum(1 for c in cells if c["verdict"] in ("pass", "FAIL", "limit")), "pass": count("pass"),
            "FAIL": count("FAIL"), "limit": count("limit"), "unchecked": count("none"), "n/a": count("n/a"),
            "identity_pass": sum(1 for i in v.identity if i["verdict"] == "pass"),
            "identity_FAIL": sum(1 for i in v.identity if i["verdict"] == "FAIL"),
            "identity_limit": sum(1 for i in v.identity if i["verdict"] == "limit"),
            "undeclared": [m for m in v.metrics if m not in v.skipped
                           and not any(c["declared"] for (mm, _), c in v.cells.items() if mm == m)]}
