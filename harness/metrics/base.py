"""What every metric shares: the ``@metric`` decorator, the Context it reads, and MetricSkipped.

A metric is a pure function ``fn(ctx, **args) -> Score``. It declares what it needs
(``texts``, ``labels``, ``embeddings``, ``reference``, ``reference_embeddings``, ``test``);
the runner resolves those once per corpus and hands them over through the Context. A metric
never loads files or models itself.

``reference`` is the real data the candidate is compared with (for trained-model metrics, the
real training data); ``test`` is a held-out real test split (``--test``), never trained on.
``lm`` is a causal language model (``--lm``) reached through ``ctx.lm_scorer`` (per-row NLL, cached).
``judge`` is an LLM judge (``--judge-url``, default a local server) reached through ``ctx.judge`` (cached).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property

NEEDS = {"texts", "labels", "embeddings", "reference", "reference_embeddings", "test", "lm", "judge"}


class MetricSkipped(Exception):
    """The metric does not apply to this corpus (e.g. too few rows); the reason is reported."""


@dataclass(frozen=True)
class MetricInfo:
    needs: tuple[str, ...]
    higher_is_better: bool | None
    seeded: bool
    range: str
    summary: str
    doc: str
    size_dependent: bool = False


def metric(needs=("texts",), higher_is_better: bool | None = None, seeded: bool = False, range: str = "",
           size_dependent: bool = False):
    """Mark a function as a metric. Its docstring's first line is the one-line meaning.

    ``size_dependent`` marks values that move with the number of rows (compare at one sample size).
    """
    unknown = set(needs) - NEEDS
    if unknown:
        raise ValueError(f"unknown needs {unknown}")

    def wrap(fn):
        doc = inspect.getdoc(fn) or ""
        fn.info = MetricInfo(needs=tuple(needs), higher_is_better=higher_is_better, seeded=seeded,
                             range=range, summary=doc.split("\n", 1)[0].strip(), doc=doc,
                             size_dependent=size_dependent)
        return fn

    return wrap


class Context:
    """The resolved inputs of one corpus. Derived views (tokens, n-gram counts) are computed once
    and shared by every metric that reads them."""

    TOKENIZER = "words-lower-v1"

    def __init__(self, corpus, seed: int = 0, embedder=None, reference: Context | None = None,
                 test: Context | None = None, role: str = "candidate", lm_scorer=None, judge=None):
        self.corpus = corpus
        self._lm_scorer = lm_scorer
        self._judge = judge
        self.seed = seed
        self._embedder = embedder
        self.reference = reference
        self.test = test
        self.role = role

    @property
    def embedder(self):
        """The shared (cached) embedder, for metrics that embed derived texts; None if not configured."""
        return self._embedder

    @property
    def lm_scorer(self):
        """The shared (cached) causal-LM scorer (``harness.backends.perplexity``); None if not configured."""
        return self._lm_scorer

    @property
    def judge(self):
        """The shared (cached) LLM judge (``harness.backends.judge.Judge``); None if not configured."""
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
        from .lexical import tokenize

        return [tokenize(t) for t in self.texts]

    def ngram_counts(self, n: int):
        """Counter of n-grams (within rows) over the corpus, computed once per n."""
        cache = self.__dict__.setdefault("_ngrams", {})
        if n not in cache:
            from .lexical import count_ngrams

            cache[n] = count_ngrams(self.tokens, n)
        return cache[n]

    def rng(self, salt: str = ""):
        """A numpy Generator seeded from the run seed and a per-metric salt."""
        import zlib

        import numpy as np

        return np.random.default_rng([self.seed, zlib.crc32(salt.encode())])
