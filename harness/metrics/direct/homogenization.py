"""Published similarity-based diversity scores, computed exactly and fast: self-BLEU, homogenization
(BLEU and ROUGE-L) and the ``diversity`` package's n-gram diversity.

The definitions are those of the published code, read from its source:

- **self-BLEU** (Zhu et al., "Texygen: A Benchmarking Platform for Text Generation Models", SIGIR 2018;
  ``SelfBleu.get_bleu_parallel``): for every row, nltk's ``sentence_bleu(references=<every other row>,
  hypothesis=<the row>, weights=(1/N,)*N, smoothing_function=SmoothingFunction().method1)``, averaged over
  rows. Texygen tokenises with ``nltk.word_tokenize``, which needs NLTK's Punkt data (a download); here the
  tokenizer is a parameter, by default ``13a`` (see below), and the BLEU given the tokens is nltk's to 1e-12.
- **homogenization** (Shaib et al., "Standardizing the Measurement of Text Diversity: A Tool and a
  Comparative Analysis of Scores", 2024, package ``diversity`` 0.3.1, ``homogenization_score``; the score
  of Padmakumar & He, "Does Writing with Language Models Reduce Content Diversity?", ICLR 2024):

  * ``measure='rougel'``: the mean of rouge_score's ROUGE-L F-measure over all ordered pairs of distinct
    rows (F is symmetric, so this is the mean over unordered pairs), with rouge_score's default tokenizer
    (lower-cased runs of ``[a-z0-9]``; every other character, accented letters included, separates tokens)
    and no stemming. F = 2·LCS/(len_a + len_b), 0 when either row has no token.
  * ``measure='bleu'``: for every row i, Hugging Face evaluate's ``bleu`` (tensorflow/nmt ``compute_bleu``,
    BLEU-4, no smoothing, 13a tokens, case kept) of the *corpus* whose predictions are all other rows and
    whose single reference is row i: clipped n-gram matches and n-gram counts are summed over the n − 1
    pairs before the precisions are taken, and the brevity penalty compares Σ_{j≠i} len_j with (n−1)·len_i.
    The package then divides each row's corpus BLEU by n − 1 a second time (its code says "Need to double
    check that this is right"), so the number it prints is ours / (n − 1), rounded to 3 decimals (0.000
    beyond a few hundred rows). We report the mean of the per-row corpus BLEU, a number in [0, 1] that does
    not shrink with n; the tests check it equals the package's unrounded value × (n − 1).

  Two more quirks of the package that we do not copy: when every pair scores 0 it returns 1.0 (the
  comment says it meant "all strings the same"), and it rounds to 3 decimals.
- **n-gram diversity** (``diversity.ngram_diversity_score``): Σ_{n=1..4} distinct n-grams / n-grams of the
  whole corpus joined by single spaces and split on single spaces (tokens keep case and punctuation;
  n-grams cross row boundaries). Range [0, 4].

Algorithms (all exact unless stated):

- n-grams are integer ids: token ids, then each order's ids compacted from (id of the (n−1)-gram, next
  token) with ``np.unique``; per-row counts come from one more ``np.unique`` of (gram, row).
- self-BLEU in O(N log N) for N tokens, not O(n²): with every other row as reference, the clipped count of
  an n-gram in row i is min(c_i, max_{j≠i} c_j); per n-gram we keep the largest and second-largest per-row
  count (the largest row's references see the second). The brevity penalty's closest reference length
  (nltk's tie rule: the shorter wins) is found among the other rows in a sorted array of lengths.
- homogenization-BLEU in O(N log N): row i's matches are Σ_g Σ_{j≠i} min(c_j(g), c_i(g)); sorting each
  n-gram's per-row counts and taking prefix sums gives Σ_j min(c_j, c) for every row at once.
- homogenization-ROUGE-L is quadratic by nature: LCS of every pair with rapidfuzz's bit-parallel
  ``LCSseq`` (tokens mapped to one character each) in blocks over the upper triangle, while the estimated
  work n(n−1)/2 · mean(len) · mean(⌈len/64⌉) stays under ``max_work`` (2·10⁹ by default: about 17,000
  rows of 12 words, or 1,200 rows of 400 words, roughly ten seconds on two cores). Beyond it, the mean
  over ``pairs`` uniformly drawn pairs (seeded), with a normal (CLT) 95% interval of the pair mean, which
  is an unbiased estimate of the exact value; ``details['estimator']`` says which was used.
"""

from __future__ import annotations

import math
import re

from harness.metrics.base import LEXICAL_MODE_COLLAPSE, MODE_COLLAPSE_BBC, MetricSkipped, metric
from harness.types import Score

# ----------------------------------------------------------------------------- tokenizers

# mteval-v13a as in sacrebleu (tokenizers/tokenizer_13a.py) and Hugging Face evaluate's bleu (whose copy
# returns the list of tokens), both Apache-2.0.
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]
_ROUGE_SEP = re.compile(r"[^a-z0-9]+")


def tokenize_13a(line: str) -> list[str]:
    """The 13a (mteval-v13a) tokenizer of sacrebleu and of Hugging Face evaluate's ``bleu``; case is kept.

    >>> tokenize_13a("Hello, world! It costs $3.50-ish.")
    ['Hello', ',', 'world', '!', 'It', 'costs', '$', '3.50', '-', 'ish', '.']
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pat, repl in _13A:
        line = pat.sub(repl, line)
    return line.split()


def tokenize_rouge(text: str) -> list[str]:
    """rouge_score's default tokenizer without stemming: lower-cased runs of [a-z0-9].

    >>> tokenize_rouge("Don't STOP -- café 9am!")
    ['don', 't', 'stop', 'caf', '9am']
    """
    return _ROUGE_SEP.sub(" ", text.lower()).split()


def _tokenizer(name: str):
    from harness.metrics.direct.lexical import tokenize

    table = {"13a": tokenize_13a, "rouge": tokenize_rouge, "words": tokenize}
    if name not in table:
        raise ValueError(f"tokenizer must be one of {sorted(table)}, not {name!r}")
    return table[name]


def _encoded(ctx, name: str):
    """The context's rows under one tokenizer as (int32 token ids, None, None, row lengths, vocabulary size),
    computed once per context and kept compact: the token lists are never all held (1M rows: 4 bytes a
    token instead of ~60), and the row and position arrays are rebuilt by :func:`_full` while a metric runs."""
    import numpy as np

    def compute():
        fn = _tokenizer(name)
        flat, _, _, lens, vocab = encode((fn(t) for t in ctx.texts), positions=False)
        return (flat.astype(np.int32) if vocab < 2**31 else flat, None, None, lens, vocab)

    return ctx.memo(("homogenization.encoded", name), compute)


def _full(enc):
    """An :func:`encode` tuple with int64 ids and the row and position arrays, from a compact one."""
    import numpy as np

    flat, rows, pos, lens, vocab = enc
    if rows is None:
        flat = flat.astype(np.int64)
        rows, pos = _rows_positions(lens, len(flat))
    return flat, rows, pos, lens, vocab


def _rows_positions(lens, total: int):
    import numpy as np

    rows = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    starts = np.cumsum(lens) - lens
    return rows, np.arange(total, dtype=np.int64) - np.repeat(starts, lens)


# ----------------------------------------------------------------------------- n-gram ids


def encode(token_rows, positions: bool = True):
    """Token rows (any iterable, read once) as integer arrays: (flat token ids, row of each token, position
    in its row, row lengths, vocabulary size).

    >>> [a.tolist() if hasattr(a, "tolist") else a for a in encode([["a", "b"], [], ["b"]])]
    [[0, 1, 1], [0, 0, 2], [0, 1, 0], [2, 0, 1], 2]
    """
    from harness.metrics.tokens import encode_rows

    flat, lens, vocab = encode_rows(token_rows)
    if not positions:
        return flat, None, None, lens, len(vocab)
    rows, pos = _rows_positions(lens, len(flat))
    return flat, rows, pos, lens, len(vocab)


def ngram_ids(flat, rows, pos, lens, vocab: int, max_n: int):
    """For n = 1..max_n, one order at a time (a generator: only the current order's arrays are held): (compact
    n-gram id, row) of every n-gram that fits in its row, as int64 arrays."""
    import numpy as np

    start = np.arange(len(flat), dtype=np.int64)
    gid = flat
    for n in range(1, max_n + 1):
        if n > 1:
            keep = pos[start] + n <= lens[rows[start]]
            start, prev = start[keep], gid[keep]
            if len(start):
                # prev < #(n-1)-grams <= N and vocab <= N: the key fits in int64 for N < 3·10^9
                _, gid = np.unique(prev * max(vocab, 1) + flat[start + n - 1], return_inverse=True)
                gid = gid.astype(np.int64).ravel()
            else:
                gid = prev
        yield gid, rows[start]


def _row_counts(gid, row, n_rows: int):
    """Per (n-gram, row) counts: gram, row and count arrays, sorted by gram then row."""
    import numpy as np

    u, c = np.unique(gid * n_rows + row, return_counts=True)
    return u // n_rows, u % n_rows, c.astype(np.int64)


def _group_starts(sorted_keys):
    """For a sorted array: the index where each element's run of equal keys starts."""
    import numpy as np

    n = len(sorted_keys)
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


# ----------------------------------------------------------------------------- self-BLEU


def self_bleu_rows(token_rows, max_n: int = 4):
    """Per-row self-BLEU: nltk ``sentence_bleu(<all other rows>, row, weights=(1/max_n,)*max_n,
    smoothing_function=SmoothingFunction().method1)``, exactly, in O(N log N) for N tokens.

    >>> [round(float(x), 4) for x in self_bleu_rows([["a", "b", "c"], ["a", "b", "d"], ["x"]], max_n=2)]
    [0.5774, 0.5774, 0.0]
    """
    return _self_bleu_encoded(encode(token_rows), max_n)


def _self_bleu_encoded(enc, max_n: int, grams=None):
    """Per-row self-BLEU of an encoded corpus; ``grams``: its (n-gram id, row) arrays per order, when
    already at hand (a subset's, cut from the pooled rows' by :func:`subset_ngrams`)."""
    import numpy as np

    flat, rows, pos, lens, vocab = enc
    n = len(lens)
    if n < 2:
        raise ValueError("self-BLEU needs at least 2 rows")
    log_p = np.zeros(n)
    first_matches = None
    grams = ngram_ids(flat, rows, pos, lens, vocab, max_n) if grams is None else grams
    for k, (gid, row) in enumerate(grams, start=1):
        g, r, c = _row_counts(gid, row, n)
        order = np.lexsort((-c, g))  # by gram, largest count first
        g, r, c = g[order], r[order], c[order]
        gs = _group_starts(g)
        head = np.arange(len(g)) == gs
        nxt = np.minimum(np.arange(len(g)) + 1, max(len(g) - 1, 0))
        second = np.where((np.arange(len(g)) + 1 < len(g)) & (g[nxt] == g), c[nxt], 0)
        # the row holding the largest count sees the second largest among the others; every other row the largest
        ref_max = np.where(head, second, c[gs])
        matches = np.bincount(r, weights=np.minimum(c, ref_max), minlength=n)
        if k == 1:
            first_matches = matches
        denom = np.maximum(1, lens - k + 1).astype(np.float64)
        p = np.where(matches > 0, matches / denom, 0.1 / denom)  # method1: epsilon 0.1 for zero counts
        log_p += (1.0 / max_n) * np.log(p)
    # closest other-row length (ties: the shorter), nltk's closest_ref_length
    srt = np.sort(lens)
    left = np.searchsorted(srt, lens, "left")
    right = np.searchsorted(srt, lens, "right")
    own_twice = right - left >= 2
    below = np.where(left > 0, srt[np.maximum(left - 1, 0)], -1)
    above = np.where(right < n, srt[np.minimum(right, n - 1)], -1)
    d_below = np.where(below >= 0, lens - below, np.iinfo(np.int64).max)
    d_above = np.where(above >= 0, above - lens, np.iinfo(np.int64).max)
    ref_len = np.where(own_twice, lens, np.where(d_below <= d_above, below, above))
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(lens > ref_len, 1.0, np.where(lens == 0, 0.0, np.exp(1 - ref_len / np.maximum(lens, 1))))
    return np.where(first_matches > 0, bp * np.exp(log_p), 0.0)


@metric("lexical/self-bleu", args={"max_n": 4, "tokenizer": "13a"},
        higher_is_better=False,
        bounds=(0, 1),
        size_dependent=True,
        expect={"exact-dup": "+", "near-dup": "+", "mode-collapse": "+", "label-noise": "0", "shuffled-words": "-"},
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        resampler="self_bleu_resampler")
def self_bleu(ctx, max_n: int = 4, tokenizer: str = "13a") -> Score:
    """Self-BLEU: BLEU-4 of each row against all other rows as references, averaged; lower is more diverse.

    Range [0, 1]: 1 when every row repeats others, near 0 for rows that share no phrase. Texygen's
    definition (Zhu et al., "Texygen: A Benchmarking Platform for Text Generation Models", SIGIR 2018):
    nltk ``sentence_bleu`` with uniform weights up to ``max_n`` and smoothing method 1, reproduced exactly
    (equal to nltk per row to 1e-12) in O(tokens) instead of nltk's O(rows²). Tokens: 13a (mteval-v13a, as
    sacrebleu and Hugging Face ``bleu``; case kept) by default, since Texygen's ``nltk.word_tokenize`` needs
    NLTK data; ``tokenizer="words"`` uses the harness's lower-cased words. Rises with the number of rows
    (more references, more matches): compare datasets at one ``--sample-size``.
    """
    import numpy as np

    enc = _encoded(ctx, tokenizer)
    if len(enc[3]) < 2:
        raise MetricSkipped("needs at least 2 rows")
    per_row = _self_bleu_encoded(_full(enc), max_n)
    return Score(float(np.mean(per_row)), None,
                 {"rows": len(enc[3]), "max_n": max_n, "tokenizer": tokenizer,
                  "median_row": float(np.median(per_row))})


# ----------------------------------------------------------------------------- homogenization (BLEU)


def homogenization_bleu_rows(token_rows, max_order: int = 4):
    """Per-row corpus BLEU of the ``diversity`` package's BLEU homogenization: evaluate's ``bleu``
    (nmt ``compute_bleu``, no smoothing) with every other row as a prediction and row i as the reference.

    >>> [round(float(x), 4) for x in homogenization_bleu_rows([["a", "b"], ["a", "b"], ["a", "c"]], max_order=2)]
    [0.6124, 0.6124, 0.0]
    """
    return _homogenization_bleu_encoded(encode(token_rows), max_order)


def _homogenization_bleu_encoded(enc, max_order: int, grams=None):
    """Per-row BLEU homogenization of an encoded corpus; ``grams`` as in :func:`_self_bleu_encoded`."""
    import numpy as np

    flat, rows, pos, lens, vocab = enc
    n = len(lens)
    if n < 2:
        raise ValueError("homogenization needs at least 2 rows")
    log_sum = np.zeros(n)
    all_positive = np.ones(n, dtype=bool)
    grams = ngram_ids(flat, rows, pos, lens, vocab, max_order) if grams is None else grams
    for k, (gid, row) in enumerate(grams, start=1):
        g, r, c = _row_counts(gid, row, n)
        order = np.lexsort((c, g))  # by gram, smallest count first
        g, r, c = g[order], r[order], c[order]
        gs = np.searchsorted(g, g, "left")  # each element's gram group: [gs, ge)
        ge = np.searchsorted(g, g, "right")
        key = g * (int(c.max(initial=0)) + 1) + c  # sorted too: (gram, count)
        lo = np.searchsorted(key, key, "left")  # first element of the group with count >= c
        csum = np.r_[0, np.cumsum(c)]
        # Σ_{j≠i} min(c_j, c_i) over the rows j that hold the gram (others contribute 0)
        overlap = (csum[lo] - csum[gs]) + c * (ge - lo) - c
        matches = np.bincount(r, weights=overlap.astype(np.float64), minlength=n)
        per_row = np.maximum(lens - k + 1, 0)
        possible = per_row.sum() - per_row
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = np.where(possible > 0, matches / np.maximum(possible, 1), 0.0)
        all_positive &= prec > 0
        log_sum += np.where(prec > 0, (1.0 / max_order) * np.log(np.where(prec > 0, prec, 1.0)), 0.0)
    geo = np.where(all_positive, np.exp(log_sum), 0.0)
    trans = lens.sum() - lens
    ref = (n - 1) * lens
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = trans / np.where(ref > 0, ref, 1)
        bp = np.where((ref == 0) | (trans == 0), 0.0,
                      np.where(ratio > 1.0, 1.0, np.exp(1 - 1.0 / np.where(ratio > 0, ratio, 1.0))))
    return geo * bp


@metric("lexical/homogenization-bleu", args={"max_order": 4, "tokenizer": "13a"},
        size_dependent=True,
        higher_is_better=False,
        bounds=(0, 1),
        expect={"exact-dup": "+", "near-dup": "+", "mode-collapse": "+", "label-noise": "0", "shuffled-words": "-"},
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        resampler="homogenization_bleu_resampler")
def homogenization_bleu(ctx, max_order: int = 4, tokenizer: str = "13a") -> Score:
    """Homogenization (BLEU): mean over rows of the corpus BLEU of all other rows against it; lower is more diverse.

    Range [0, 1]; 1 when all rows are the same. The ``diversity`` package's ``homogenization_score(
    measure='bleu')`` (Shaib et al., "Standardizing the Measurement of Text Diversity", 2024; after
    Padmakumar & He, ICLR 2024): for row i, Hugging Face evaluate's ``bleu`` (BLEU-4, no smoothing, 13a
    tokens) with the other n − 1 rows as predictions and row i as their single reference, so n-gram matches
    are pooled over the pairs before the precision is taken. Exact in O(tokens) (the package is O(rows²)).
    The package divides by n − 1 once more and rounds, printing ours/(n − 1) to 3 decimals; we report the
    undivided mean (see the module docstring).
    """
    import numpy as np

    enc = _encoded(ctx, tokenizer)
    if len(enc[3]) < 2:
        raise MetricSkipped("needs at least 2 rows")
    per_row = _homogenization_bleu_encoded(_full(enc), max_order)
    return Score(float(np.mean(per_row)), None,
                 {"rows": len(enc[3]), "max_order": max_order, "tokenizer": tokenizer, "estimator": "exact"})


# ----------------------------------------------------------------------------- homogenization (ROUGE-L)


def _lcs_inputs(enc, rows=None):
    """Each row (or each of ``rows``) as a string of one character per token (distinct token ids, distinct
    characters), so that rapidfuzz compares token sequences at string speed; lists of ids if the vocabulary
    does not fit in Unicode."""
    import numpy as np

    flat, _, _, lens, vocab = enc
    starts = np.cumsum(lens) - lens
    idx = range(len(lens)) if rows is None else rows
    if vocab > 0x10FFFF - 0x800 - 0x20:
        return [flat[starts[i]:starts[i] + lens[i]].tolist() for i in idx]
    cp = (flat + 0x20).astype(np.uint32)
    cp[cp >= 0xD800] += 0x800  # skip control characters and the surrogate block
    text = cp.astype("<u4").tobytes().decode("utf-32-le")
    return [text[starts[i]:starts[i] + lens[i]] for i in idx]


def _rapidfuzz():
    try:
        from rapidfuzz import process
        from rapidfuzz.distance import LCSseq
    except ImportError as e:  # a declared dependency; a clear message if an install lacks it
        raise RuntimeError("homogenization-rougel needs the 'rapidfuzz' package (pip install rapidfuzz)") from e
    return process, LCSseq


def rougel_pair_sum(token_rows, workers: int = -1, block_cells: int = 4_000_000) -> float:
    """Σ over unordered pairs i < j of ROUGE-L F = 2·LCS/(len_i + len_j) (0 if either row is empty), exactly."""
    return _rougel_pair_sum_encoded(encode(token_rows), workers, block_cells)


def _rougel_pair_sum_encoded(enc, workers: int = -1, block_cells: int = 4_000_000) -> float:
    import numpy as np

    process, LCSseq = _rapidfuzz()
    seqs = _lcs_inputs(enc)
    lens = enc[3].astype(np.float64)
    n = len(lens)
    total = 0.0
    step = max(1, block_cells // max(n, 1))
    for a in range(0, n - 1, step):
        b = min(n - 1, a + step)
        lcs = process.cdist(seqs[a:b], seqs[a:], scorer=LCSseq.similarity, dtype=np.int32, workers=workers)
        den = lens[a:b, None] + lens[None, a:]
        f = np.divide(2.0 * lcs, den, out=np.zeros(lcs.shape), where=den > 0)
        total += float(np.triu(f, k=1).sum())  # column c is row a + c: keep j > i
    return total


def rougel_row_means(token_rows, rows, workers: int = -1):
    """For each row i in ``rows``: the mean ROUGE-L F of row i against every other row (the per-row term of
    the ``diversity`` package's loop, doc_score / (n − 1)); used to check rows one by one against it."""
    import numpy as np

    process, LCSseq = _rapidfuzz()
    enc = encode(token_rows)
    seqs = _lcs_inputs(enc)
    lens = enc[3].astype(np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    lcs = process.cdist([seqs[i] for i in rows], seqs, scorer=LCSseq.similarity, dtype=np.int32, workers=workers)
    den = lens[rows, None] + lens[None, :]
    f = np.divide(2.0 * lcs, den, out=np.zeros(lcs.shape), where=den > 0)
    f[np.arange(len(rows)), rows] = 0.0  # not against itself
    return f.sum(axis=1) / (len(token_rows) - 1)


@metric("lexical/homogenization-rougel", args={"tokenizer": "rouge", "max_work": 2000000000, "pairs": 200000},
        higher_is_better=False,
        bounds=(0, 1),
        seeded=True,
        expect={"exact-dup": "+", "near-dup": "+", "mode-collapse": "+", "label-noise": "0", "shuffled-words": "-"},
        limits={
            "mode-collapse": ("A mean over all pairs: with half of the rows in three modes only about (1/2)^2/3 = 8% of the "
             "pairs are pairs within one mode, so the mean rises by little (Banking77, 200 rows: 0.113 at "
             "severity 0, +0.003 at 25%, +0.007 at 50%) against the spread between random samples, and 3 "
             "repeats do not always separate it (rho +0.32 [-0.45, +0.82] with 3 repeats; +0.71, a pass, with "
             "8). The BLEU scores, which pool n-gram matches, respond clearly. On BBC News: ") + MODE_COLLAPSE_BBC,
            "near-dup": ("A mean over all n(n-1)/2 pairs, at most 1 per pair: the s x n typo'd copies (F = 0.92 against "
             "their originals) add about 2 x s x 0.8 / n, +0.004 at 50% on BBC News's 200-row samples and "
             "+0.0016 on Banking77's 500, while each replaced row's n-1 pairs take the copied row's "
             "similarities instead of its own, which moves the mean by as much either way from draw to draw. "
             "With 3 repeats the rank check does not separate the two (mean change at 25% and 50%: BBC News "
             "-0.0004 and +0.0002, Banking77 -0.0002 and -0.002); on BBC News 10 repeats give rho +0.32 "
             "[-0.06, +0.61] and 30 pass (rho +0.31 [+0.11, +0.49], +0.0009 at 50%). Exact copies (F = 1) "
             "respond, and the BLEU scores, in which a near copy's long n-gram matches dominate the pooled "
             "counts, respond clearly (rho +0.96)."),
        },
        resampler="homogenization_rougel_resampler")
def homogenization_rougel(ctx, tokenizer: str = "rouge", max_work: float = 2e9, pairs: int = 200_000,
                          workers: int = -1) -> Score:
    """Homogenization (ROUGE-L): mean ROUGE-L F-measure over all pairs of rows; lower is more diverse.

    Range [0, 1]; 1 when all rows are the same. The ``diversity`` package's ``homogenization_score(
    measure='rougel')`` (Shaib et al., "Standardizing the Measurement of Text Diversity", 2024; Padmakumar &
    He, "Does Writing with Language Models Reduce Content Diversity?", ICLR 2024) with rouge_score's
    tokenizer and no stemming: F = 2·LCS/(len_a + len_b) over word tokens. Exact (every pair, bit-parallel
    LCS) while n(n−1)/2 · mean(len) · mean(⌈len/64⌉) ≤ ``max_work``; beyond, the mean of ``pairs`` random
    pairs (seeded) with a 95% normal interval for the exact value (``details['estimator']``).
    """
    import numpy as np

    from harness.stats import normal_ci

    enc = _encoded(ctx, tokenizer)
    n = len(enc[3])
    if n < 2:
        raise MetricSkipped("needs at least 2 rows")
    lens = enc[3].astype(np.float64)
    n_pairs = n * (n - 1) // 2
    work = n_pairs * max(lens.mean(), 1.0) * float(np.mean(np.ceil(np.maximum(lens, 1) / 64)))
    details = {"rows": n, "tokenizer": tokenizer, "pairs_total": n_pairs}
    if work <= max_work or n_pairs <= pairs:
        value = _rougel_pair_sum_encoded(enc, workers) / n_pairs
        return Score(float(value), None, {**details, "estimator": "exact"})
    process, LCSseq = _rapidfuzz()
    rng = ctx.rng("homogenization-rougel")
    i = rng.integers(0, n, size=pairs)
    j = rng.integers(0, n - 1, size=pairs)
    j = j + (j >= i)  # uniform over pairs of distinct rows
    used, where = np.unique(np.concatenate([i, j]), return_inverse=True)  # only the sampled rows' strings
    seqs = _lcs_inputs(enc, used.tolist())
    wi, wj = where[:pairs], where[pairs:]
    lcs = process.cpdist([seqs[x] for x in wi], [seqs[x] for x in wj], scorer=LCSseq.similarity,
                         dtype=np.int32, workers=workers)
    den = lens[i] + lens[j]
    f = np.divide(2.0 * lcs, den, out=np.zeros(len(den)), where=den > 0)
    mean, se = float(f.mean()), float(f.std(ddof=1) / math.sqrt(pairs))
    return Score(mean, normal_ci(mean, se, 0.0, 1.0),
                 {**details, "estimator": "sampled-pairs", "pairs": pairs, "se": se})


# ----------------------------------------------------------------------------- n-gram diversity


def ngram_diversity_of(texts, max_n: int = 4) -> float:
    """Σ_{n=1..max_n} distinct n-grams / n-grams of ``' '.join(texts).split(' ')`` (the ``diversity`` package).

    >>> round(ngram_diversity_of(["a b", "a b"], max_n=2), 6)  # 2/4 + 2/3 (the bigram "b a" crosses rows)
    1.166667
    """
    import numpy as np
    import pandas as pd

    # one token stream (n-grams cross rows): each order's n-grams get compact codes from the previous
    # order's codes and the next word, by hashing (pandas.factorize, O(N)) rather than sorting
    words = " ".join(texts).split(" ")
    if len(words) < max_n:
        raise ValueError(f"fewer than {max_n} words")
    word, vocab = pd.factorize(np.asarray(words, dtype=object))
    del words
    word = word.astype(np.int64)
    v = max(len(vocab), 1)
    score = len(vocab) / len(word)
    code = word
    for n in range(2, max_n + 1):
        # code < #(n-1)-grams <= N and v <= N: the key fits in int64 for N < 3·10^9
        code, grams = pd.factorize(code[:-1] * v + word[n - 1:])
        score += len(grams) / len(code)
    return score


@metric("lexical/ngram-diversity", args={"max_n": 4},
        higher_is_better=True,
        bounds=(0, 4),
        size_dependent=True,
        expect={"exact-dup": "-", "near-dup": "-", "mode-collapse": "-", "label-noise": "0", "shuffled-words": "+"},
        limits={"mode-collapse": LEXICAL_MODE_COLLAPSE},
        resampler="ngram_diversity_resampler")
def ngram_diversity(ctx, max_n: int = 4) -> Score:
    """n-gram diversity: the sum over n = 1..4 of distinct n-grams / n-grams; higher is more diverse.

    Range [0, 4] (0-1 per order). The ``diversity`` package's ``ngram_diversity_score`` (Shaib et al.,
    "Standardizing the Measurement of Text Diversity", 2024; after Meister et al., "Locally Typical
    Sampling", TACL 2023): rows joined by single spaces and split on single spaces, so tokens keep case and
    punctuation and n-grams cross row boundaries (unlike ``lexical/distinct-n``). Exact, unrounded (the
    package rounds to 3 decimals). Falls as the corpus grows: compare at one ``--sample-size``.
    """
    total_words = len(" ".join(ctx.texts).split(" "))
    if total_words < max_n:
        raise MetricSkipped(f"fewer than {max_n} words")
    return Score(ngram_diversity_of(ctx.texts, max_n), None, {"words": total_words, "max_n": max_n})


# ----------------------------------------------------------------------------- resamplers (compare)
# fn(pool_ctx, **args) -> harness.stats.sufficient.Resampler (harness/stats/sufficient.py): the pooled
# rows are tokenised once; a subset is its rows' token ids, in the order the subset lists them.

def subset_encoded(enc, rows):
    """The compact :func:`_encoded` tuple of the rows ``rows`` (in that order) of an encoded corpus: the
    same token ids (the vocabulary size is kept: ids need not be dense)."""
    import numpy as np

    flat, _, _, lens, vocab = enc
    rows = np.asarray(rows, dtype=np.int64)
    off = np.concatenate([[0], np.cumsum(lens)])
    ln = lens[rows]
    total = int(ln.sum())
    shift = off[rows] - np.concatenate([[0], np.cumsum(ln)[:-1]])
    return (flat[np.repeat(shift, ln) + np.arange(total, dtype=np.int64)], None, None, ln, vocab)


def subset_ngrams(pooled, rows, n_pool: int):
    """The (n-gram id, row) arrays of the subset ``rows`` (distinct pooled rows, in that order), per order,
    cut from the pooled rows' (``pooled``: :func:`ngram_ids` of the whole pool, as a list). The ids are the
    pool's, which order the n-grams as a subset's own compact ids do (both rank the same keys), and a row
    is its position in ``rows``: the per-row statistics are the subset's own, bit for bit."""
    import numpy as np

    where = np.full(n_pool, -1, dtype=np.int64)
    where[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows))
    for gid, row in pooled:
        at = where[row]
        keep = at >= 0
        yield gid[keep], at[keep]


def _bleu_resampler(ctx, per_row, max_n: int, tokenizer: str):
    """A subset's mean of ``per_row`` (self-BLEU or BLEU homogenization) from the pooled rows' token ids and
    n-gram ids, computed once (a subset with repeated rows is encoded afresh)."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    enc = _encoded(ctx, tokenizer)
    lens = enc[3]
    pooled = ctx.memo(("lexical.pooled-ngram-ids", tokenizer, max_n),
                      lambda: list(ngram_ids(*_full(enc), max_n)))

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) < 2:
            raise MetricSkipped("needs at least 2 rows")
        if len(np.unique(rows)) < len(rows):
            return float(np.mean(per_row(_full(subset_encoded(enc, rows)), max_n)))
        sub = (None, None, None, lens[rows], enc[4])
        return float(np.mean(per_row(sub, max_n, subset_ngrams(pooled, rows, len(lens)))))

    return Resampler(value, "per-row token ids and pooled n-gram ids")


def self_bleu_resampler(ctx, max_n: int = 4, tokenizer: str = "13a"):
    """Self-BLEU on a subset (see _bleu_resampler)."""
    return _bleu_resampler(ctx, _self_bleu_encoded, max_n, tokenizer)


def homogenization_bleu_resampler(ctx, max_order: int = 4, tokenizer: str = "13a"):
    """Homogenization-BLEU on a subset (see _bleu_resampler)."""
    return _bleu_resampler(ctx, _homogenization_bleu_encoded, max_order, tokenizer)


def homogenization_rougel_resampler(ctx, tokenizer: str = "rouge", max_work: float = 2e9, pairs: int = 200_000,
                                    workers: int = -1):
    """Homogenization-ROUGE-L on a subset: the ROUGE-L F of every pair of pooled rows, computed once
    (bit-parallel LCS); a subset's value is the mean over its pairs. None when a side would use the
    sampled estimator (beyond ``max_work``), or the pooled pair matrix would not fit in 1 GB."""
    import numpy as np

    from harness.stats.sufficient import BatchResampler

    enc = _encoded(ctx, tokenizer)
    lens = enc[3].astype(np.float64)
    n = len(lens)
    if n * n * 8 > 1 << 30:
        return None

    def exact(m, ln):
        n_pairs = m * (m - 1) // 2
        work = n_pairs * max(ln.mean(), 1.0) * float(np.mean(np.ceil(np.maximum(ln, 1) / 64)))
        return work <= max_work or n_pairs <= pairs

    process, LCSseq = _rapidfuzz()
    seqs = _lcs_inputs(enc)
    F = np.zeros((n, n))
    step = max(1, 4_000_000 // max(n, 1))
    for a in range(0, n, step):
        lcs = process.cdist(seqs[a:a + step], seqs, scorer=LCSseq.similarity, dtype=np.int32, workers=workers)
        den = lens[a:a + step, None] + lens[None, :]
        F[a:a + step] = np.divide(2.0 * lcs, den, out=np.zeros(lcs.shape), where=den > 0)
    np.fill_diagonal(F, 0.0)

    def check(rows):
        m = len(rows)
        if m < 2:
            raise MetricSkipped("needs at least 2 rows")
        if not exact(m, lens[rows]):
            raise ValueError("a subset beyond max_work (sampled estimator)")
        return m * (m - 1) // 2

    def values(calls):
        """Many subsets at once: their indicator rows times the pair matrix, one GEMM per block."""
        out = []
        for b in range(0, len(calls), 128):
            block = calls[b:b + 128]
            W = np.zeros((len(block), n))
            for i, (rows, _, _) in enumerate(block):
                W[i, np.asarray(rows, dtype=np.int64)] = 1.0
            sums = np.einsum("ij,ij->i", W @ F, W) / 2
            for (rows, _, _), s2 in zip(block, sums):
                try:
                    out.append(float(s2) / check(np.asarray(rows, dtype=np.int64)))
                except MetricSkipped as e:
                    out.append(e)
        return out

    res = BatchResampler(values, "ROUGE-L of every pooled pair")
    return res


def ngram_diversity_resampler(ctx, max_n: int = 4):
    """n-gram diversity on a subset: each pooled row's space-separated words as ids, found once; a
    subset's stream is its rows' words in the subset's order (n-grams cross rows, as in the metric)."""
    import numpy as np
    import pandas as pd

    from harness.stats.sufficient import Resampler

    per_row = [t.split(" ") for t in ctx.texts]
    lens = np.array([len(w) for w in per_row], dtype=np.int64)
    words, _ = pd.factorize(np.asarray([w for ws in per_row for w in ws], dtype=object))
    words = words.astype(np.int64)
    off = np.concatenate([[0], np.cumsum(lens)])

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.asarray(rows, dtype=np.int64)
        ln = lens[rows]
        total = int(ln.sum())
        if total < max_n:
            raise MetricSkipped(f"fewer than {max_n} words")
        shift = off[rows] - np.concatenate([[0], np.cumsum(ln)[:-1]])
        word, vocab = pd.factorize(words[np.repeat(shift, ln) + np.arange(total, dtype=np.int64)])
        word = word.astype(np.int64)
        v = max(len(vocab), 1)
        score = len(vocab) / len(word)
        code = word
        for k in range(2, max_n + 1):
            code, grams = pd.factorize(code[:-1] * v + word[k - 1:])
            score += len(grams) / len(code)
        return float(score)

    return Resampler(value, "per-row word ids", cheap=True)
