"""What every metric shares: the one declaration (``@metric``), the Context it reads, and MetricSkipped.

A metric is a pure function ``fn(ctx, **args) -> Score``. Everything the harness knows about it is
declared once, in the ``@metric(...)`` decorator beside the function: its name (or several named
variants with their default arguments), what it needs, its direction and numeric range, whether it moves
with the sample size, its cost, its version, how ``compare`` resamples it, what ``validate`` expects of
it under each corruption and its "no difference" value. The registry (:mod:`harness.metrics.registry`),
``compare``'s rules, the validity matrix, ``synthbench metrics``, the ``evaluate`` modules and the
docs' metric table are all read off these declarations.

>>> @metric("demo/rows", bounds=(0, float("inf")), higher_is_better=None, register=False)
... def rows(ctx):
...     '''Number of rows.'''
...     return Score(float(len(ctx.texts)))
>>> rows.declarations[0].name, rows.declarations[0].range, rows.declarations[0].version
('demo/rows', '[0, ∞)', 1)

Needs: ``texts``, ``labels``, ``embeddings``, ``reference``, ``reference_embeddings``, ``test``, ``lm``
(a causal language model, reached through ``ctx.lm_scorer``), ``judge`` (an LLM judge, ``ctx.judge``) and
``lm_eval`` (fine-tuning and lm-eval runs, ``ctx.resource("lm_eval")``, given by ``synthbench lm-utility``).
The runner resolves each need once per corpus and hands it over through the Context; a metric never
loads files or models itself. ``reference`` is the real data the candidate is compared with (for
trained-model metrics, the real training data); ``test`` is a held-out real test split, never trained on.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

from harness.types import Score  # noqa: F401  (re-exported for metric modules and doctests)

NEEDS = {"texts", "labels", "embeddings", "reference", "reference_embeddings", "test", "lm", "judge", "lm_eval"}

#: how ``compare`` recomputes a metric on resampled rows (its per-row decomposition):
#: ``set`` recompute the set-level statistic from the rows (permutation test, half-samples);
#: ``row-flags`` the value is the mean of a 0/1 per-row flag (the Score's row flags) that depends on the
#: row alone and the fixed reference/test; ``row-lengths`` the mean of the rows' word counts;
#: ``test-rows`` a model trained on the candidate predicts the real test rows (paired over test rows);
#: ``none`` no resampling scheme (not compared).
RESAMPLE = ("set", "row-flags", "row-lengths", "test-rows", "none")
COSTS = ("light", "heavy")  # heavy: seconds or minutes per evaluation (compare leaves it out unless named)

#: the corruptions of ``synthbench validate`` (defined in harness/analysis/validity.py), and the signs a
#: metric may be expected to show under them: "+" rises with severity, "-" falls, "0" stays put
CORRUPTIONS = ("exact-dup", "near-dup", "label-noise", "mode-collapse", "class-drop", "truncation",
               "length-shift", "topic-drift", "shuffled-words", "test-copy", "reference-copy")
SIGNS = ("+", "-", "0")

#: metric groups (the part of a name before the first '/') in display order, with their title and the
#: evaluation dimension of the survey (Long et al. 2024) they belong to
GROUPS: dict[str, tuple[str, str]] = {
    "lexical": ("Lexical diversity", "diversity"),
    "length": ("Lengths", "descriptive"),
    "dup": ("Duplicates", "diversity"),
    "semantic": ("Semantic diversity", "diversity"),
    "perclass": ("Per-class distance and diversity", "fidelity"),
    "surface": ("Surface divergences from the reference", "fidelity"),
    "distance": ("Distribution distance on embeddings", "fidelity"),
    "memo": ("Memorisation", "privacy"),
    "contam": ("Contamination", "privacy"),
    "faith": ("Label faithfulness", "faithfulness"),
    "utility": ("Utility (train on synthetic, test on real)", "utility"),
    "fluency": ("Fluency", "faithfulness"),
    "format": ("Format validity", "faithfulness"),
    "instr": ("Instruction faithfulness", "faithfulness"),
    "judge": ("LLM judge", "faithfulness"),
    "lm-utility": ("LM fine-tuning utility (synthbench lm-utility)", "utility"),
}
DIMENSIONS = ("faithfulness", "diversity", "fidelity", "privacy", "utility", "descriptive")

#: the scorecard's columns (harness/report/scorecard.py, docs/scorecard.md): the survey's five dimensions in
#: display order, each with its title, what it covers, and how its metrics become one verdict per
#: candidate ("descriptive" metrics, lengths, have no direction and no column). Every dimension uses
#: SCORECARD_RULE; a dimension with another rule would say so here.
SCORECARD: dict[str, tuple[str, str]] = {
    "faithfulness": ("Faithfulness", "format, labels, instructions, fluency, judge"),
    "diversity": ("Diversity", "lexical, semantic, duplicates"),
    "fidelity": ("Fidelity", "distance to the real distribution"),
    "privacy": ("Privacy & contamination", "memorisation, test overlap"),
    "utility": ("Utility", "train on synthetic, test on real; LM fine-tuning"),
}
SCORECARD_RULE = (
    "Against the other candidates (with a single candidate: against the reference, on the metrics the "
    "reference has). Only metrics with a direction count, and size-dependent ones only when the datasets "
    "were compared at one size. Per metric and pair of datasets: +1 when both records carry a 95% interval "
    "and the two intervals do not overlap (the better side wins), -1 the other way, 0 when they overlap or "
    "an interval is missing (no test). Per metric family (group): the sign of the sum of its metrics, so "
    "a family with many variants weighs as much as one with a single metric. Per dimension and pair: the "
    "sign of the sum over its families. A candidate is 'better' when it wins against at least one other "
    "and loses to none, 'worse' when it loses to at least one and wins against none, 'mixed' when both, "
    "and 'not distinguishable' otherwise.")

# ----------------------------------------------------------------------------- validity notes
# Explanations of validity FAILs that several families share (a metric's own ones sit in its declaration).

MODE_COLLAPSE_BBC = (
    "Mode collapse replaces rows by the nearest pool rows (TF-IDF cosine) of three random pool rows. On "
    "Banking77 those are same-intent queries, a tight collapse; a BBC News pool of ~700 articles holds no "
    "tight cluster of 30-70 articles, so there the 'modes' are loose topical neighbourhoods and the "
    "corruption is weak.")
LEXICAL_MODE_COLLAPSE = MODE_COLLAPSE_BBC + (
    " Its neighbour articles share topic words, not phrases or vocabulary size, so n-gram entropies, "
    "vocabulary size and compression barely move there. On Banking77 trigram entropy does fall, by 0.25 bits "
    "at 25%, but no further at 50% (-0.22): the three intents' trigrams already dominate, and a monotone "
    "check cannot pass a response that saturates.")
KNN_RECALL = (
    "k-NN recall uses the candidate's own k-NN balls: a candidate row far from the others (an off-topic row, or a "
    "random row left among collapsed ones) has a large ball that swallows many reference rows, so recall rises "
    "or holds instead of falling. This is the outlier sensitivity that made Naeem et al. (ICML 2020) replace "
    "recall by coverage, which uses the reference's balls and falls as declared.")


class MetricSkipped(Exception):
    """The metric does not apply to this corpus (e.g. too few rows); the reason is reported."""


@dataclass(frozen=True)
class Identity:
    """The "no difference" value of a metric that compares a candidate with a reference (``validate``'s
    identity check): its value for a dataset against itself (within ``self_tol``) and against a disjoint
    random sample of the same data (within ``halves_tol``). A tolerance is a number or the name of a rule
    the validity analysis computes from the data: ``"null-999:<jsd|v|ks|w1>"`` (the 99.9% point of the
    statistic's permutation null) or ``"frechet-bias"`` (150 / n)."""

    self_value: float
    self_tol: float
    halves_value: float
    halves_tol: float | str
    why: str


@dataclass(frozen=True)
class Variant:
    """One named metric of a function that computes several: its name, its default arguments and any
    declaration fields that differ from the function's (``needs``, ``opt_in``, ``expect`` ...)."""

    name: str
    args: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


def variant(name: str, args: dict | None = None, **overrides) -> Variant:
    return Variant(name, dict(args or {}), overrides)


@dataclass(frozen=True)
class MetricInfo:
    """Everything a registered metric is: one per name, read off its ``@metric`` declaration."""

    name: str
    target: str                      # "module:function"
    args: dict                       # default arguments (they enter the signature)
    needs: tuple[str, ...]
    higher_is_better: bool | None
    bounds: tuple[float, float]      # numeric range (intervals are clipped to it)
    range: str                       # the range as shown to people
    summary: str
    doc: str
    size_dependent: bool = False     # the value moves with the number of rows
    seeded: bool = False
    opt_in: bool = False             # computed only when named (minutes, a model server, an API)
    cost: str = "light"
    version: int = 1                 # bump when the value changes for the same data and arguments
    resample: str = "set"
    neutral_args: dict = field(default_factory=dict)   # value-neutral arguments compare may set to save time
    expect: dict | None = None       # {corruption: sign}; None: no expectation declared
    limits: dict = field(default_factory=dict)         # {corruption or "identity": why a FAIL is a known limit}
    identity: Identity | None = None
    no_identity: str | None = None   # why a metric that needs a reference has no "no difference" value
    needs_of: Callable | None = None  # needs that follow from arguments: fn(args) -> needs
    # Determinism: 0 means bit-identical across runs on one machine whatever the BLAS threads (the golden
    # test and the committed-report check compare exactly); > 0 is the relative (and absolute) tolerance
    # those checks allow a metric whose floating-point sums move with BLAS threads or hardware.
    tolerance: float = 0.0
    # compare's resampling on sufficient statistics: fn(pool_ctx, **args) -> an object whose
    # ``value(rows, ref_rows=None, test_rows=None)`` is the metric's value on those rows (see
    # harness/stats/sufficient.py); a callable or the name of a function in the metric's module; None:
    # compare recomputes the metric from the rows of every resample
    resampler: Callable | str | None = None

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def dimension(self) -> str:
        return GROUPS.get(self.group, ("", "descriptive"))[1]

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    def for_args(self, args: dict) -> MetricInfo:
        """This declaration with the needs that follow from ``args`` (see ``needs_of``)."""
        if self.needs_of is None:
            return self
        return replace(self, needs=tuple(self.needs_of({**self.args, **args})))

    def as_record(self) -> dict:
        """A flat, JSON-serialisable row of the catalogue (``harness.metrics()``)."""
        return {"name": self.name, "group": self.group, "dimension": self.dimension,
                "higher_is_better": self.higher_is_better, "range": self.range,
                "bounds": list(self.bounds), "size_dependent": self.size_dependent, "needs": list(self.needs),
                "opt_in": self.opt_in, "cost": self.cost, "version": self.version, "seeded": self.seeded,
                "resample": self.resample, "tolerance": self.tolerance, "args": dict(self.args),
                "summary": self.summary,
                "function": self.target}


_MEMO_GUARD = threading.Lock()  # guards the creation of Context.memo's per-key locks
_DECLARED: dict[str, MetricInfo] = {}  # every registered declaration, by name, in declaration order


def _range_text(bounds: tuple[float, float]) -> str:
    def num(x: float) -> str:
        return "∞" if x == math.inf else "-∞" if x == -math.inf else f"{x:g}"

    lo, hi = bounds
    return f"{'(' if lo == -math.inf else '['}{num(lo)}, {num(hi)}{')' if hi == math.inf else ']'}"


def metric(name: str | None = None, *, args: dict | None = None, variants: list[Variant] | None = None,
           needs=("texts",), higher_is_better: bool | None = None, bounds=(-math.inf, math.inf),
           range: str | None = None, size_dependent: bool = False, seeded: bool = False, opt_in: bool = False,
           cost: str = "light", version: int = 1, resample: str = "set", neutral_args: dict | None = None,
           expect: dict | None = None, limits: dict | None = None, identity: Identity | None = None,
           no_identity: str | None = None, tolerance: float = 0.0, register: bool = True,
           resampler: Callable | str | None = None):
    """Declare a function a metric: once, here, beside it. Its docstring's first line is the one-line meaning.

    ``name`` (with ``args``, its default arguments) names one metric; ``variants`` names several that the
    function computes with different arguments. ``needs`` may be a callable ``fn(args) -> needs`` for
    needs that follow from arguments. ``bounds`` is the numeric range; ``range`` the text shown for it
    (default: rendered from ``bounds``). ``size_dependent`` marks values that move with the number of
    rows (compared at one sample size; repeated under ``--repeats``); a test measures it for every metric.
    ``version`` enters every signature: bump it when the value changes for the same data and arguments
    (``tests/unit/metrics/test_golden.py`` fails when a stored golden value moves without a bump).
    ``tolerance`` states the metric's determinism: 0 (bit-identical on one machine), or the relative
    tolerance its value may move by with BLAS threads or hardware (measured, see docs/design.md).
    """
    if (name is None) == (variants is None):
        raise ValueError("give a metric name or a list of variants")
    if variants is None:
        variants = [Variant(name, dict(args or {}))]

    def wrap(fn):
        doc = inspect.getdoc(fn) or ""
        base = dict(target=f"{fn.__module__}:{fn.__name__}", higher_is_better=higher_is_better,
                    summary=doc.split("\n", 1)[0].strip(), doc=doc, size_dependent=size_dependent,
                    seeded=seeded, opt_in=opt_in, cost=cost, version=version, resample=resample,
                    neutral_args=dict(neutral_args or {}), expect=expect, limits=dict(limits or {}),
                    identity=identity, no_identity=no_identity, tolerance=float(tolerance),
                    resampler=resampler)
        decls = []
        for v in variants:
            fields_ = {**base, **v.overrides}
            nd = fields_.pop("needs", needs)
            b = tuple(float(x) for x in fields_.pop("bounds", bounds))
            text = fields_.pop("range", range) or _range_text(b)
            info = MetricInfo(name=v.name, args=dict(v.args), bounds=b, range=text,
                              needs=tuple(nd(v.args)) if callable(nd) else tuple(nd),
                              needs_of=nd if callable(nd) else None, **fields_)
            _check(info)
            decls.append(info)
            if register:
                if info.name in _DECLARED and _DECLARED[info.name].target != info.target:
                    raise ValueError(f"metric {info.name} declared twice ({_DECLARED[info.name].target}, "
                                     f"{info.target})")
                _DECLARED[info.name] = info
        fn.declarations = tuple(decls)
        fn.info = decls[0]
        return fn

    return wrap


def extend_doc(tail: str, *fns) -> None:
    """Append a paragraph shared by several metrics to their docstrings and declarations."""
    for f in fns:
        f.__doc__ = (f.__doc__ or "").rstrip() + "\n" + tail
        doc = inspect.getdoc(f) or ""
        f.declarations = tuple(replace(d, doc=doc) for d in f.declarations)
        f.info = f.declarations[0]
        for d in f.declarations:
            if _DECLARED.get(d.name) is not None and _DECLARED[d.name].target == d.target:
                _DECLARED[d.name] = d


def _check(info: MetricInfo) -> None:
    """A declaration that contradicts itself fails at import, naming the metric."""
    bad = []
    if set(info.needs) - NEEDS:
        bad.append(f"unknown needs {sorted(set(info.needs) - NEEDS)}")
    if info.resample not in RESAMPLE:
        bad.append(f"resample {info.resample!r} is not one of {RESAMPLE}")
    if info.cost not in COSTS:
        bad.append(f"cost {info.cost!r} is not one of {COSTS}")
    if not isinstance(info.version, int) or info.version < 1:
        bad.append("version must be a positive integer")
    if not 0 <= info.tolerance < 0.1:
        bad.append(f"tolerance {info.tolerance} must be in [0, 0.1)")
    if not info.bounds[0] <= info.bounds[1]:
        bad.append(f"bounds {info.bounds} are empty")
    for k, v in (info.expect or {}).items():
        if k not in CORRUPTIONS or v not in SIGNS:
            bad.append(f"expect {{{k!r}: {v!r}}}: corruptions are {CORRUPTIONS}, signs {SIGNS}")
    for k in info.limits:
        if k not in CORRUPTIONS and k != "identity":
            bad.append(f"limits key {k!r} is not a corruption or 'identity'")
    if "/" not in info.name:
        bad.append("a metric name is group/name")
    if bad:
        raise ValueError(f"metric {info.name}: " + "; ".join(bad))


class Context:
    """The resolved inputs of one corpus. Derived views (tokens, n-gram counts, encodings, k-NN tables) are
    computed once through :meth:`memo` and shared by every metric that reads them."""

    TOKENIZER = "words-lower-v1"

    def __init__(self, corpus, seed: int = 0, embedder=None, reference: Context | None = None,
                 test: Context | None = None, role: str = "candidate", lm_scorer=None, judge=None,
                 resources: dict | None = None):
        self.corpus = corpus
        self.resources = dict(resources or {})
        self._lm_scorer = lm_scorer
        self._judge = judge
        self.seed = seed
        self._embedder = embedder
        self.reference = reference
        self.test = test
        self.role = role
        self._memo: dict = {}
        self._key_locks: dict = {}

    def memo(self, key, compute: Callable):
        """``compute()`` once per context and key: the one place shared derived work is kept.

        Keys are tuples whose first item names the owner, e.g. ``("lexical.ngram-array", n)``.

        >>> ctx = Context(corpus=None)
        >>> ctx.memo(("demo", 1), lambda: [1, 2]) is ctx.memo(("demo", 1), lambda: [3])
        True
        """
        try:
            return self._memo[key]
        except KeyError:
            pass
        # a lock per key: threads that need the same work (compare builds statistics in parallel) wait for
        # the first to compute it, others go on; compute() may itself memoise other keys
        with _MEMO_GUARD:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
        return self._memo[key]

    def peek(self, key, default=None):
        """The memoised value for ``key`` if computed, else ``default`` (nothing is computed)."""
        return self._memo.get(key, default)

    def forget(self, key) -> None:
        self._memo.pop(key, None)

    def resource(self, need: str):
        """The ready resource the runner resolved for ``need`` (e.g. ``"lm_eval"``)."""
        if need not in self.resources:
            raise MetricSkipped(f"needs the '{need}' resource")
        return self.resources[need]

    @property
    def embedder(self):
        """The shared (cached) embedder, for metrics that embed derived texts; None if not configured."""
        return self._embedder

    @property
    def lm_scorer(self):
        """The shared (cached) causal-LM scorer (``harness.resources.perplexity``); None if not configured."""
        return self._lm_scorer

    @property
    def judge(self):
        """The shared (cached) LLM judge (``harness.resources.judge_client.Judge``); None if not configured."""
        return self._judge

    @property
    def texts(self):
        return self.corpus.texts

    @property
    def labels(self):
        return self.corpus.labels

    @cached_property
    def embeddings(self):
        """L2-normalised sentence embeddings, one row per text (cached on disk by the embedder)."""
        if self._embedder is None:
            raise RuntimeError("this context has no embedder")
        return self._embedder.embed(self.texts, desc=f"embedding {self.corpus.name}")

    @cached_property
    def tokens(self) -> list[list[str]]:
        """Lower-cased word tokens per row (letters, digits and inner apostrophes; punctuation dropped)."""
        from harness.metrics.direct.lexical import tokenize

        return [tokenize(t) for t in self.texts]

    def ngram_counts(self, n: int):
        """Counter of n-grams (within rows) over the corpus, computed once per n."""
        from harness.metrics.direct.lexical import count_ngrams

        return self.memo(("context.ngram-counts", n), lambda: count_ngrams(self.tokens, n))

    def rng(self, salt: str = ""):
        """A numpy Generator seeded from the run seed and a per-metric salt."""
        import zlib

        import numpy as np

        return np.random.default_rng([self.seed, zlib.crc32(salt.encode())])
