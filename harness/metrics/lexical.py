"""Lexical diversity and length: n-gram statistics over word tokens.

Tokens are lower-cased runs of letters and digits (inner apostrophes kept: "don't"), with
punctuation dropped. n-grams never cross row boundaries. Statistics that grow with corpus
size (distinct-n, vocabulary size, entropy) compare fairly only at one sample size: use
``--sample-size``.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter

from ..core import Score
from .base import MetricSkipped, metric

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens.

    >>> tokenize("Don't STOP -- it's 9am, OK?")
    ["don't", 'stop', "it's", '9am', 'ok']
    """
    return _TOKEN.findall(text.lower())


def count_ngrams(token_rows, n: int) -> Counter:
    """Counter of n-grams (tuples for n>1, strings for n=1) within each row.

    >>> count_ngrams([["a", "b", "a", "b"]], 2)[("a", "b")]
    2
    """
    c: Counter = Counter()
    if n == 1:
        for toks in token_rows:
            c.update(toks)
        return c
    for toks in token_rows:
        if len(toks) >= n:
            c.update(zip(*(toks[i:] for i in range(n))))
    return c


@metric(needs=("texts",), higher_is_better=True, range="[0, 1]", size_dependent=True)
def distinct_n(ctx, n: int) -> Score:
    """Distinct-n: unique n-grams / all n-grams in the corpus; higher means less repetition.

    Range [0, 1]; 1 when no n-gram repeats. Falls as the corpus grows, so compare datasets at one
    ``--sample-size``. Li et al., "A Diversity-Promoting Objective Function for Neural Conversation
    Models", NAACL 2016.

    >>> from harness.metrics.base import Context
    >>> from harness.core import Corpus
    >>> c = Corpus("x", "x", "text", ("the cat sat", "the cat ran"))
    >>> distinct_n(Context(c), n=2).value  # {the cat, cat sat, cat ran} / 4
    0.75
    """
    counts = ctx.ngram_counts(n)
    total = sum(counts.values())
    if total == 0:
        raise MetricSkipped(f"no row has {n} or more words")
    return Score(len(counts) / total, None, {"unique": len(counts), "total": total})


@metric(needs=("texts",), higher_is_better=True, range="[0, log2(#n-grams)] bits", size_dependent=True)
def ngram_entropy(ctx, n: int) -> Score:
    """n-gram entropy: Shannon entropy (bits) of the corpus n-gram distribution; higher is more varied.

    Range [0, log2(number of n-gram tokens)]. Grows with corpus size: compare at one sample size.
    Used for generation diversity by Zhang et al., "Generating Informative and Diverse Conversational
    Responses via Adversarial Information Maximization", NeurIPS 2018.
    """
    counts = ctx.ngram_counts(n)
    total = sum(counts.values())
    if total == 0:
        raise MetricSkipped(f"no row has {n} or more words")
    h = -sum((c / total) * math.log2(c / total) for c in counts.values())
    return Score(h, None, {"types": len(counts), "total": total})


def gzip_ratio(data: bytes) -> float:
    """Uncompressed size / gzip-compressed size (level 9, no timestamp)."""
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


@metric(needs=("texts",), higher_is_better=False, range="about [1, ∞)", size_dependent=True)
def compression_ratio(ctx) -> Score:
    """Compression ratio: size of all texts joined by spaces / their gzip size; lower is more diverse.

    A corpus that repeats itself compresses well, so its ratio is high; about 2.5-3.5 is usual for
    varied English prose. Shaib et al., "Standardizing the Measurement of Text Diversity: A Tool and
    a Comparative Analysis of Scores", 2024.
    """
    data = " ".join(ctx.texts).encode("utf-8")
    return Score(gzip_ratio(data), None, {"bytes": len(data)})


def mattr_of(tokens: list[str], window: int) -> float:
    """Moving-average type-token ratio of one token stream (O(len) with a sliding counter)."""
    n = len(tokens)
    if n <= window:
        return len(set(tokens)) / n
    counts: Counter = Counter(tokens[:window])
    distinct = len(counts)
    total = distinct
    for i in range(window, n):
        out, inc = tokens[i - window], tokens[i]
        counts[out] -= 1
        if counts[out] == 0:
            distinct -= 1
        if counts[inc] == 0:
            distinct += 1
        counts[inc] += 1
        total += distinct
    return total / (n - window + 1) / window


def hashed_order(texts) -> list[int]:
    """Row positions sorted by a hash of (text, occurrence number): an order that depends only on the
    multiset of rows, not on the file's order, and scatters repeated rows like a random shuffle would.

    >>> hashed_order(["b", "a", "b"]) == hashed_order(["b", "a", "b"]), sorted(hashed_order(["b", "a", "b"]))
    (True, [0, 1, 2])
    """
    import hashlib

    seen: Counter = Counter()
    keys = []
    for i, t in enumerate(texts):
        keys.append((hashlib.blake2b(f"{seen[t]}\x00{t}".encode("utf-8", "surrogatepass"), digest_size=8).digest(), i))
        seen[t] += 1
    return [i for _, i in sorted(keys)]


@metric(needs=("texts",), higher_is_better=True, range="[0, 1]")
def mattr(ctx, window: int = 50, order: str = "hashed") -> Score:
    """MATTR: type-token ratio averaged over every window of 50 tokens; higher is more varied.

    Range [0, 1]. Unlike plain TTR it does not fall with corpus length. Rows are concatenated in an
    order fixed by a hash of their text (``order="hashed"``, :func:`hashed_order`), so the value
    describes the set of rows, not the order of the file: in file order a file sorted by label reads
    as less varied than the same rows shuffled (found by ``synthbench validate`` on Banking77).
    ``order="file"`` keeps the file's order. Covington & McFall, "Cutting the Gordian Knot: The
    Moving-Average Type-Token Ratio", Journal of Quantitative Linguistics 2010.
    """
    if order not in ("hashed", "file"):
        raise ValueError(f"order must be 'hashed' or 'file', not {order!r}")
    rows = ctx.tokens if order == "file" else [ctx.tokens[i] for i in hashed_order(ctx.texts)]
    stream = [t for row in rows for t in row]
    if not stream:
        raise MetricSkipped("no tokens")
    return Score(mattr_of(stream, window), None, {"tokens": len(stream), "order": order})


@metric(needs=("texts",), higher_is_better=True, range="[0, #tokens]", size_dependent=True)
def vocab_size(ctx) -> Score:
    """Vocabulary size: number of distinct word types; higher is richer (grows with size: use --sample-size).

    Range [0, number of tokens]; higher means a richer vocabulary at equal size.
    """
    counts = ctx.ngram_counts(1)
    if not counts:
        raise MetricSkipped("no tokens")
    return Score(float(len(counts)), None, {"tokens": sum(counts.values())})


def _lengths(ctx):
    import numpy as np

    return np.array([len(t) for t in ctx.tokens], dtype=np.float64)


@metric(needs=("texts",), higher_is_better=None, range="[0, ∞) words")
def length_mean(ctx) -> Score:
    """Mean length in words per row, with a bootstrap 95% interval; no better direction (compare with the reference).

    Range [0, ∞) words.
    """
    import numpy as np

    from ..stats import bootstrap_ci

    x = _lengths(ctx)
    return Score(float(x.mean()), bootstrap_ci(x, seed=ctx.seed),
                 {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())})


@metric(needs=("texts",), higher_is_better=None, range="[0, ∞) words")
def length_std(ctx) -> Score:
    """Standard deviation of row length in words, with a bootstrap 95% interval; no better direction.

    A spread far below the reference's means the generator writes to one length.
    """
    from ..stats import bootstrap_ci

    x = _lengths(ctx)
    if len(x) < 2:
        raise MetricSkipped("needs at least 2 rows")
    std = lambda v: float(v.std(ddof=1))  # noqa: E731
    return Score(std(x), bootstrap_ci(x, std, n_boot=500, seed=ctx.seed))
