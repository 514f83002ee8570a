"""The scalable counting paths (issue #10) give exactly the old values on real data.

Each test builds the old value with the old code path (Counters of token tuples from ``Context.tokens``,
``mattr_of`` on token lists, ``gzip.compress`` of the joined text, dicts of normalised strings, per-row
datasketch MinHash + MinHashLSH) and compares it with the metric as it is now. Real texts are read in place
from ../shared/data; the tests skip where it is absent.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter

import pytest

from harness.metrics.base import Context
from harness.metrics.direct import lexical, surface
from harness.types import Corpus
from tests.conftest import shared  # noqa: E402


def _rows(rel: str, n: int | None = None) -> list[dict]:
    path = shared(rel)
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if n is not None and len(out) == n:
                    break
    return out


def _ctx(rel: str, n: int | None = None, reference: Context | None = None) -> Context:
    rows = _rows(rel, n)
    corpus = Corpus(rel, rel, "classification", tuple(r["text"] for r in rows),
                    labels=tuple(str(r["label"]) for r in rows))
    return Context(corpus, seed=0, reference=reference)


@pytest.fixture(scope="module")
def sst2():
    # 60k short movie-review phrases (many repeated words and phrases) + 12k ag_news-style rows
    return _ctx("sst2_real/train_phrases_a.jsonl", 20_000)


@pytest.fixture(scope="module")
def banking():
    return _ctx("banking77_real/train.jsonl")


def test_token_ids_match_tokenize(sst2):
    ids, off, vocab = lexical.token_ids(sst2)
    assert len(off) == len(sst2.texts) + 1
    for i in range(0, len(sst2.texts), 97):
        assert [vocab[k] for k in ids[off[i]:off[i + 1]]] == sst2.tokens[i]
    assert vocab == list(Counter(t for row in sst2.tokens for t in row))  # first-occurrence order


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ngram_counts_exact(sst2, banking, n):
    for ctx in (sst2, banking):
        old = lexical.count_ngrams(ctx.tokens, n)
        new = lexical.ngram_count_array(ctx, n)
        assert new.tolist() == list(old.values())  # same counts, same (first-occurrence) order
        assert lexical.distinct_n(ctx, n=n).value == len(old) / sum(old.values())
        if n <= 3:
            total = sum(old.values())
            h = -sum((c / total) * math.log2(c / total) for c in old.values())
            assert lexical.ngram_entropy(ctx, n=n).value == h  # bit for bit


def test_vocab_length_mattr_compression_exact(sst2, banking):
    for ctx in (sst2, banking):
        assert lexical.vocab_size(ctx).value == float(len(lexical.count_ngrams(ctx.tokens, 1)))
        x = [len(t) for t in ctx.tokens]
        assert lexical.length_mean(ctx).value == float(sum(x) / len(x)) or \
            lexical.length_mean(ctx).value == pytest.approx(sum(x) / len(x), rel=0, abs=0)
        for order in ("hashed", "file"):
            rows = ctx.tokens if order == "file" else [ctx.tokens[i] for i in lexical.hashed_order(ctx.texts)]
            stream = [t for row in rows for t in row]
            assert lexical.mattr(ctx, window=50, order=order).value == lexical.mattr_of(stream, 50)
        assert lexical.mattr_ids(lexical.token_ids(ctx)[0][:30], 50) == lexical.mattr_of(
            [t for row in ctx.tokens for t in row][:30], 50)
        data = " ".join(ctx.texts).encode("utf-8")
        assert lexical.compression_ratio(ctx).value == lexical.gzip_ratio(data)
        assert lexical.gzip_sizes(ctx.texts, chunk=777) == (len(data), len(gzip.compress(data, 9, mtime=0)))


def test_surface_vocab_and_lengths_exact(sst2, banking):
    ref = _ctx("banking77_real/test.jsonl")
    cand = _ctx("sst2_real/train_phrases_a.jsonl", 5_000, reference=ref)
    same = _ctx("banking77_real/train.jsonl", reference=ref)
    for ctx in (cand, same):
        assert surface.word_counts(ctx) == ctx.ngram_counts(1)
        assert list(surface.word_counts(ctx)) == list(ctx.ngram_counts(1))
        # the old metric bodies, on the old Counters and token lists
        c, r = ctx.ngram_counts(1), ctx.reference.ngram_counts(1)
        _, a, b = surface.aligned_counts(c, r)
        assert surface.vocab_jsd(ctx).value == surface.jsd_bits(a, b)
        oov = Counter({w: k for w, k in c.items() if w not in r})
        got = surface.oov_rate(ctx)
        assert got.value == sum(oov.values()) / sum(c.values())
        assert got.details["top"] == [[w, k] for w, k in oov.most_common(20)]
        from scipy.stats import ks_2samp, wasserstein_distance

        la = [float(len(t)) for t in ctx.tokens]
        lb = [float(len(t)) for t in ctx.reference.tokens]
        assert surface.length_ks(ctx).value == float(ks_2samp(la, lb).statistic)
        assert surface.length_wasserstein(ctx).value == float(wasserstein_distance(la, lb))


def _datasketch_near_pairs(texts, threshold=0.8, shingle=5, num_perm=128, seed=1):
    """The pre-#10 path: one datasketch MinHash per distinct row, MinHashLSH insert and query, exact check."""
    from datasketch import MinHash, MinHashLSH

    from harness.metrics.direct.duplicates import jaccard, normalise, shingles

    rep: dict[str, int] = {}
    reps = sorted({rep.setdefault(normalise(t), i) for i, t in enumerate(texts)})
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=seed)
    sh, mh = {}, {}
    for i in reps:
        sh[i] = shingles(texts[i], shingle)
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=int, permutations=template.permutations,
                    scheme=template.scheme)
        m.update_batch(sh[i].tolist())
        mh[i] = m
        lsh.insert(i, m, check_duplication=False)
    pairs = []
    for i in reps:
        for j in lsh.query(mh[i]):
            if j > i and jaccard(sh[i], sh[j]) >= threshold:
                pairs.append((i, j))
    return sorted(pairs)


def test_near_duplicates_equal_datasketch_lsh():
    """Vectorised MinHash signatures and banding find exactly the verified pairs datasketch's MinHashLSH
    finds, on real paraphrases with many near duplicates (and the exact duplicates the file holds)."""
    from harness.metrics.direct.duplicates import first_occurrence, near_duplicate_clusters, normalise

    texts = [r["text"] for r in _rows("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl", 6000)]
    roots, pairs = near_duplicate_clusters(texts, threshold=0.7)
    assert sorted((i, j) for i, j, _ in pairs) == _datasketch_near_pairs(texts, threshold=0.7)
    assert len(pairs) >= 20
    first = first_occurrence(texts)
    seen: dict[str, int] = {}
    assert first.tolist() == [seen.setdefault(normalise(t), i) for i, t in enumerate(texts)]
    assert all(roots[i] <= i for i in range(len(texts)))
