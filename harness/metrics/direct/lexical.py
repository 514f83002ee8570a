"""Lexical diversity and length: n-gram statistics over word tokens.

Tokens are lower-cased runs of letters and digits (inner apostrophes kept: "don't"), with
punctuation dropped. n-grams never cross row boundaries. Statistics that grow with corpus
size (distinct-n, vocabulary size, entropy) compare fairly only at one sample size: use
``--sample-size``.

Counting scales to millions of rows (issue #10): each row's tokens become integer ids (first-occurrence
order) in one flat numpy array with row offsets (:func:`token_ids`, cached on the Context), and an
n-gram is an exact integer code built level by level (dense id of its (n-1)-gram prefix x vocabulary
size + last token id), counted with ``np.unique``. No hashing, so counts equal the old Counter's exactly;
the old path (:func:`count_ngrams`, ``Context.ngram_counts``) stays for other callers.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter

from harness.metrics.base import LEXICAL_MODE_COLLAPSE, MetricSkipped, metric, variant
from harness.types import Score

INF = math.inf

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


def encode_tokens(texts):
    """(ids, offsets, vocab): every row's :func:`tokenize` tokens as int32 ids in one flat array, row i's
    at ``ids[offsets[i]:offsets[i + 1]]``; ``vocab[id]`` is the token, ids in first-occurrence order.

    >>> ids, off, vocab = encode_tokens(["a b a", "", "b c"])
    >>> ids.tolist(), off.tolist(), vocab
    ([0, 1, 0, 1, 2], [0, 3, 3, 5], ['a', 'b', 'c'])
    """
    import numpy as np

    from harness.metrics.tokens import encode_rows

    find = _TOKEN.findall
    flat, lens, vocab = encode_rows(find(t.lower()) for t in texts)
    off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return flat.astype(np.int32), off, vocab


def token_ids(ctx):
    """:func:`encode_tokens` of the context's texts, computed once per Context (like ``ctx.tokens``)."""
    return ctx.memo(("lexical.token-ids",), lambda: encode_tokens(ctx.texts))


def _ngram_level(ids, off, vocab_size: int, prev, n: int):
    """(starts, codes) of every n-gram within a row: ``starts`` its first token's position, ``codes`` an
    exact int64 code. ``prev`` is the (n-1)-level (starts, codes) or None for n = 1."""
    import numpy as np

    if n == 1 or prev is None:
        return np.arange(len(ids), dtype=np.int64), ids.astype(np.int64)
    starts, codes = prev
    ends = np.repeat(off[1:], np.diff(off))  # end of the row holding each token position
    keep = starts + n <= ends[starts]
    starts = starts[keep]
    _, dense = np.unique(codes[keep], return_inverse=True)  # dense ids < #distinct (n-1)-grams
    return starts, dense.astype(np.int64).ravel() * vocab_size + ids[starts + n - 1]


def ngram_count_array(ctx, n: int):
    """Counts of each distinct n-gram (within rows), in first-occurrence order, as an int64 array: the
    values of ``ctx.ngram_counts(n)`` in the same order, computed with numpy (cached on the Context)."""
    import numpy as np

    done = ctx.peek(("lexical.ngram-array", n))
    if done is not None:
        return done
    ids, off, vocab = token_ids(ctx)
    if n == 1:
        return ctx.memo(("lexical.ngram-array", 1), lambda: np.bincount(ids, minlength=len(vocab)).astype(np.int64))
    level = ctx.peek(("lexical.ngram-level",))
    if level is None or level[0] >= n:
        level = (1, _ngram_level(ids, off, len(vocab), None, 1))
    k, lv = level
    while k < n:
        k += 1
        lv = _ngram_level(ids, off, len(vocab), lv, k)
    ctx.forget(("lexical.ngram-level",))
    ctx.memo(("lexical.ngram-level",), lambda: (k, lv))  # the next n builds on this level
    _, first, counts = np.unique(lv[1], return_index=True, return_counts=True)
    return ctx.memo(("lexical.ngram-array", n), lambda: counts[np.argsort(first, kind="stable")].astype(np.int64))


_DISTINCT_N_EXPECT = {"exact-dup": "-", "near-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "+"}


@metric(variants=[
            variant("lexical/distinct-1", {"n": 1}, expect={"exact-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "0"}),
            variant("lexical/distinct-2", {"n": 2}, expect=_DISTINCT_N_EXPECT),
            variant("lexical/distinct-3", {"n": 3}, expect=_DISTINCT_N_EXPECT),
            variant("lexical/distinct-4", {"n": 4}, expect=_DISTINCT_N_EXPECT),
        ],
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        resampler="distinct_n_resampler")
def distinct_n(ctx, n: int) -> Score:
    """Distinct-n: unique n-grams / all n-grams in the corpus; higher means less repetition.

    Range [0, 1]; 1 when no n-gram repeats. Falls as the corpus grows, so compare datasets at one
    ``--sample-size``. Li et al., "A Diversity-Promoting Objective Function for Neural Conversation
    Models", NAACL 2016.

    >>> from harness.metrics.base import Context
    >>> from harness.types import Corpus
    >>> c = Corpus("x", "x", "text", ("the cat sat", "the cat ran"))
    >>> distinct_n(Context(c), n=2).value  # {the cat, cat sat, cat ran} / 4
    0.75
    """
    counts = ngram_count_array(ctx, n)
    total = int(counts.sum())
    if total == 0:
        raise MetricSkipped(f"no row has {n} or more words")
    return Score(len(counts) / total, None, {"unique": len(counts), "total": total})


def ngram_row_counts(ctx, n: int):
    """Row x n-gram incidence of the context's rows (:class:`harness.stats.sufficient.Counts`: one
    entry per n-gram occurrence, its row and its n-gram's dense id), the sufficient statistic of
    distinct-n, n-gram entropy and vocabulary size on any subset of rows (cached on the Context)."""
    import numpy as np

    from harness.stats.sufficient import Counts

    def compute():
        ids, off, vocab = token_ids(ctx)
        lv = _ngram_level(ids, off, len(vocab), None, 1)
        for k in range(2, n + 1):
            lv = _ngram_level(ids, off, len(vocab), lv, k)
        starts, codes = lv
        row = np.searchsorted(off, starts, side="right") - 1
        uniq, col = np.unique(codes, return_inverse=True)
        return Counts(row, col.ravel(), np.ones(len(row)), len(off) - 1, len(uniq))

    return ctx.memo(("lexical.ngram-row-counts", n), compute)


def distinct_n_resampler(ctx, n: int):
    """Distinct-n on a subset: n-gram totals over its rows from the row x n-gram incidence."""
    from harness.stats.sufficient import Resampler

    counts = ngram_row_counts(ctx, n)

    def value(rows, ref_rows=None, test_rows=None):
        c = counts.sums(rows)
        total = c.sum()
        if total == 0:
            raise MetricSkipped(f"no row has {n} or more words")
        return int((c > 0).sum()) / int(total)

    return Resampler(value, "row x n-gram incidence", cheap=True)


_NGRAM_ENTROPY_EXPECT = {"exact-dup": "-", "near-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "+"}


@metric(variants=[
            variant("lexical/entropy-1", {"n": 1}, expect={"exact-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "0"}),
            variant("lexical/entropy-2", {"n": 2}, expect=_NGRAM_ENTROPY_EXPECT),
            variant("lexical/entropy-3", {"n": 3}, expect=_NGRAM_ENTROPY_EXPECT),
        ],
        higher_is_better=True,
        bounds=(0, INF),
        size_dependent=True,
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        range="[0, log2(#n-grams)] bits",
        resampler="ngram_entropy_resampler")
def ngram_entropy(ctx, n: int) -> Score:
    """n-gram entropy: Shannon entropy (bits) of the corpus n-gram distribution; higher is more varied.

    Range [0, log2(number of n-gram tokens)]. Grows with corpus size: compare at one sample size.
    Used for generation diversity by Zhang et al., "Generating Informative and Diverse Conversational
    Responses via Adversarial Information Maximization", NeurIPS 2018.
    """
    counts = ngram_count_array(ctx, n)
    total = int(counts.sum())
    if total == 0:
        raise MetricSkipped(f"no row has {n} or more words")
    # summed in Python, in first-occurrence order, with math.log2: bit for bit the old Counter value
    h = -sum((c / total) * math.log2(c / total) for c in counts.tolist())
    return Score(h, None, {"types": len(counts), "total": total})


def ngram_entropy_resampler(ctx, n: int):
    """n-gram entropy on a subset: the n-gram counts over its rows from the row x n-gram incidence."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    counts = ngram_row_counts(ctx, n)

    def value(rows, ref_rows=None, test_rows=None):
        c = counts.sums(rows)
        total = c.sum()
        if total == 0:
            raise MetricSkipped(f"no row has {n} or more words")
        p = c[c > 0] / total
        return float(-(p * np.log2(p)).sum())

    return Resampler(value, "row x n-gram counts", cheap=True)


def gzip_ratio(data: bytes) -> float:
    """Uncompressed size / gzip-compressed size (level 9, no timestamp)."""
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


@metric("lexical/compression-ratio",
        higher_is_better=False,
        size_dependent=True,
        expect={"exact-dup": "+", "near-dup": "+", "mode-collapse": "+", "label-noise": "0", "shuffled-words": "-"},
        limits={
            "near-dup": ("gzip matches repeats only within its 32 KB window: BBC News articles average about 2.3 KB, so a "
             "near copy compresses against its source only when it lies within the ~14 rows after it; in a "
             "200-article sample most copies are farther away (exact copies, which also repeat their typos' "
             "neighbourhoods, still register weakly). On short texts (Banking77) the window spans hundreds of "
             "rows and it responds."),
            "mode-collapse": LEXICAL_MODE_COLLAPSE,
        },
        range="about [1, ∞)")
def compression_ratio(ctx) -> Score:
    """Compression ratio: size of all texts joined by spaces / their gzip size; lower is more diverse.

    A corpus that repeats itself compresses well, so its ratio is high; about 2.5-3.5 is usual for
    varied English prose. Shaib et al., "Standardizing the Measurement of Text Diversity: A Tool and
    a Comparative Analysis of Scores", 2024.
    """
    size, packed = gzip_sizes(ctx.texts)
    return Score(size / packed, None, {"bytes": size})


def gzip_sizes(texts, chunk: int = 10_000) -> tuple[int, int]:
    """(bytes, gzip bytes) of the texts joined by single spaces, compressed in chunks of rows (level 9,
    no timestamp): the same sizes as ``gzip.compress`` of the whole joined string, without holding it
    (zlib's output does not depend on how its input is split; tests/parity/metrics/test_streaming.py checks it)."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream, as gzip.compress writes
    size = packed = 0
    for a in range(0, len(texts), chunk):
        data = (" " if a else "") + " ".join(texts[a:a + chunk])
        b = data.encode("utf-8")
        size += len(b)
        packed += len(z.compress(b))
    packed += len(z.flush())
    return size, packed


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


@metric("lexical/mattr", args={"window": 50, "order": "hashed"},
        higher_is_better=True,
        bounds=(0, 1),
        expect={"exact-dup": "0", "label-noise": "0"},
        limits={
            "exact-dup": ("Flat, but the rank check cannot show it with 3 repeats: on BBC News, over 30 seeded 200-row "
             "samples, 50% exact duplicates change MATTR by +0.0005 on average (SD 0.002, t = 1.35, 15 of 30 "
             "negative): no effect. Severity 0 is exactly 0 by construction, so when the six other changes "
             "(about 0.1% of the value) happen to share a sign (probability about 3%), Spearman's rho and its "
             "interval exclude 0. A flatness check needs a magnitude tolerance, which the matrix does not "
             "have yet. On Banking77 (500 queries of about 12 words, four to a 50-token window) the fall is "
             "real but small: -0.002 at 25% and -0.009 at 50% (1% of the value; rho -0.80 [-0.97, -0.19]), "
             "because a copy now and then lands in the same window as its original or another copy of the "
             "same row, and the window counts their words once; windows of long texts (BBC News articles of "
             "~400 words) hardly ever hold two rows, so there the declared 0 holds."),
            "mode-collapse": LEXICAL_MODE_COLLAPSE,
        },
        resampler="mattr_resampler")
def mattr(ctx, window: int = 50, order: str = "hashed") -> Score:
    """MATTR: type-token ratio averaged over every window of 50 tokens; higher is more varied.

    Range [0, 1]. Unlike plain TTR it does not fall with corpus length. Rows are concatenated in an
    order fixed by a hash of their text (``order="hashed"``, :func:`hashed_order`), so the value
    describes the set of rows, not the order of the file: in file order a file sorted by label reads
    as less varied than the same rows shuffled (found by ``synthbench validate`` on Banking77).
    ``order="file"`` keeps the file's order. Covington & McFall, "Cutting the Gordian Knot: The
    Moving-Average Type-Token Ratio", Journal of Quantitative Linguistics 2010.
    """
    import numpy as np

    if order not in ("hashed", "file"):
        raise ValueError(f"order must be 'hashed' or 'file', not {order!r}")
    ids, off, _ = token_ids(ctx)
    if order == "hashed":
        rows = np.asarray(hashed_order(ctx.texts), dtype=np.int64)
        lens = np.diff(off)[rows]
        # positions of the rows' tokens, row after row in hashed order
        shift = off[rows] - np.concatenate([[0], np.cumsum(lens)[:-1]])
        stream = ids[np.repeat(shift, lens) + np.arange(int(lens.sum()), dtype=np.int64)]
    else:
        stream = ids
    if len(stream) == 0:
        raise MetricSkipped("no tokens")
    return Score(mattr_ids(stream, window), None, {"tokens": len(stream), "order": order})


def mattr_ids(stream, window: int) -> float:
    """:func:`mattr_of` of a stream of integer token ids, vectorised (the same float, bit for bit).

    The sum over windows of their distinct counts is the sum over positions j of the number of windows
    that hold j and not the previous occurrence of j's token: an integer, computed exactly.

    >>> mattr_ids(__import__("numpy").array([1, 2, 1, 3]), 2) == mattr_of(["a", "b", "a", "c"], 2)
    True
    """
    import numpy as np

    n = len(stream)
    if n <= window:
        return len(np.unique(stream)) / n
    order = np.argsort(stream, kind="stable")
    same = np.zeros(n, dtype=bool)
    same[1:] = stream[order[1:]] == stream[order[:-1]]
    prev = np.full(n, -1, dtype=np.int64)
    prev[order[1:][same[1:]]] = order[:-1][same[1:]]
    j = np.arange(n, dtype=np.int64)
    lo = np.maximum(j - window + 1, prev + 1)  # window starts s with s > prev[j], s >= j - w + 1, s >= 0
    hi = np.minimum(j, n - window)
    total = int(np.maximum(hi - lo + 1, 0).sum())
    return total / (n - window + 1) / window


@metric("lexical/vocab-size",
        higher_is_better=True,
        bounds=(0, INF),
        size_dependent=True,
        expect={"exact-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "0"},
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        range="[0, #tokens]",
        resampler="vocab_size_resampler")
def vocab_size(ctx) -> Score:
    """Vocabulary size: number of distinct word types; higher is richer (grows with size: use --sample-size).

    Range [0, number of tokens]; higher means a richer vocabulary at equal size.
    """
    ids, _, vocab = token_ids(ctx)
    if not vocab:
        raise MetricSkipped("no tokens")
    return Score(float(len(vocab)), None, {"tokens": len(ids)})


def vocab_size_resampler(ctx):
    """Vocabulary size on a subset: word types with a count over its rows (row x word incidence)."""
    from harness.stats.sufficient import Resampler

    counts = ngram_row_counts(ctx, 1)

    def value(rows, ref_rows=None, test_rows=None):
        k = int((counts.sums(rows) > 0).sum())
        if k == 0:
            raise MetricSkipped("no tokens")
        return float(k)

    return Resampler(value, "row x word incidence", cheap=True)


def row_lengths(ctx):
    """Words per row (float64), from :func:`token_ids`: ``[len(t) for t in ctx.tokens]`` without the lists."""
    import numpy as np

    return np.diff(token_ids(ctx)[1]).astype(np.float64)


def _lengths(ctx):
    return row_lengths(ctx)


@metric("length/mean-words",
        bounds=(0, INF),
        resample="row-lengths",
        expect={
            "exact-dup": "0",
            "near-dup": "0",
            "label-noise": "0",
            "shuffled-words": "0",
            "truncation": "-",
            "length-shift": "+",
        },
        range="[0, ∞) words")
def length_mean(ctx) -> Score:
    """Mean length in words per row, with a bootstrap 95% interval; no better direction (compare with the reference).

    Range [0, ∞) words.
    """
    import numpy as np

    from harness.stats import bootstrap_ci

    x = _lengths(ctx)
    return Score(float(x.mean()), bootstrap_ci(x, seed=ctx.seed),
                 {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())})


@metric("length/std-words",
        bounds=(0, INF),
        expect={"near-dup": "0", "label-noise": "0", "shuffled-words": "0"},
        range="[0, ∞) words",
        resampler="length_std_resampler")
def length_std(ctx) -> Score:
    """Standard deviation of row length in words, with a bootstrap 95% interval; no better direction.

    A spread far below the reference's means the generator writes to one length.
    """
    from harness.stats import bootstrap_ci

    x = _lengths(ctx)
    if len(x) < 2:
        raise MetricSkipped("needs at least 2 rows")
    return Score(float(x.std(ddof=1)), bootstrap_ci(x, "std", n_boot=500, seed=ctx.seed))


def length_std_resampler(ctx):
    """Length SD on a subset: the per-row word counts of its rows."""
    from harness.stats.sufficient import Resampler

    x = row_lengths(ctx)

    def value(rows, ref_rows=None, test_rows=None):
        if len(rows) < 2:
            raise MetricSkipped("needs at least 2 rows")
        return float(x[rows].std(ddof=1))

    return Resampler(value, "per-row word counts", cheap=True)


def mattr_resampler(ctx, window: int = 50, order: str = "hashed"):
    """MATTR on a subset: the rows' token ids and their hash keys (text, occurrence number) computed once;
    a subset's stream is its rows in key order (occurrence numbers counted within the subset, in the
    order the subset lists its rows, as :func:`hashed_order` counts them), then :func:`mattr_ids`."""
    import hashlib

    import numpy as np

    from harness.stats.sufficient import Resampler

    if order != "hashed":
        return None
    ids, off, _ = token_ids(ctx)
    lens = np.diff(off)
    texts = ctx.texts
    _, group = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    group = group.ravel().astype(np.int64)
    sizes = np.bincount(group)
    first_key = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    keys = np.empty(int(sizes.sum()), dtype=np.uint64)
    done = np.zeros(len(sizes), dtype=bool)
    for i, t in enumerate(texts):
        g = group[i]
        if done[g]:
            continue
        done[g] = True
        for occ in range(int(sizes[g])):
            d = hashlib.blake2b(f"{occ}\x00{t}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
            keys[first_key[g] + occ] = int.from_bytes(d, "big")

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.asarray(rows, dtype=np.int64)
        g = group[rows]
        srt = np.argsort(g, kind="stable")  # within a group: the subset's order
        gs = g[srt]
        start = np.searchsorted(gs, gs, side="left")
        occ = np.empty(len(rows), dtype=np.int64)
        occ[srt] = np.arange(len(rows)) - start
        k = keys[first_key[g] + occ]
        sel = rows[np.argsort(k, kind="stable")]
        ln = lens[sel]
        total = int(ln.sum())
        if total == 0:
            raise MetricSkipped("no tokens")
        shift = off[sel] - np.concatenate([[0], np.cumsum(ln)[:-1]])
        stream = ids[np.repeat(shift, ln) + np.arange(total, dtype=np.int64)]
        return mattr_ids(stream, window)

    return Resampler(value, "per-row token ids and hash keys", cheap=True)
