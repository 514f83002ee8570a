"""Exact and near duplicates."""

from __future__ import annotations

import re
import unicodedata

from ..core import Score
from ..stats import wilson_ci
from .base import metric

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped: what 'the same text' means here.

    >>> normalise("  Hello\\tWORLD ")
    'hello world'
    """
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _examples(texts, groups, k=3, width=120):
    out = []
    for g in sorted(groups, key=len, reverse=True)[:k]:
        out.append({"rows": [int(i) for i in g[:5]], "count": len(g), "text": texts[g[0]][:width]})
    return out


@metric(needs=("texts",), higher_is_better=False, range="[0, 1)")
def exact_duplicate_rate(ctx) -> Score:
    """Exact-duplicate rate: share of rows that repeat an earlier row after normalisation; lower is better.

    Normalisation: Unicode NFKC, case folding, whitespace collapsed. Range [0, 1); 0 when all rows
    differ. Interval: Wilson score. Lee et al., "Deduplicating Training Data Makes Language Models
    Better", ACL 2022, on why duplicates matter. Row flags: ``duplicate`` for every row that repeats
    an earlier one (the first occurrence is kept), so the flagged count equals value × rows.
    """
    seen: dict[str, list[int]] = {}
    for i, t in enumerate(ctx.texts):
        seen.setdefault(normalise(t), []).append(i)
    n = len(ctx.texts)
    dups = n - len(seen)
    groups = [g for g in seen.values() if len(g) > 1]
    return Score(dups / n, wilson_ci(dups, n),
                 {"duplicates": dups, "groups": len(groups), "examples": _examples(ctx.texts, groups)},
                 rows={"duplicate": sorted(i for g in groups for i in g[1:])})


def shingles(text: str, k: int):
    """Sorted unique 32-bit hashes (CRC-32) of the character k-grams of the normalised text."""
    import zlib

    import numpy as np

    s = normalise(text)
    grams = {s[i:i + k] for i in range(max(1, len(s) - k + 1))}
    return np.unique(np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint32,
                                 count=len(grams)))


def jaccard(a, b) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    import numpy as np

    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def near_duplicate_clusters(texts, threshold=0.8, shingle=5, num_perm=128, seed=1, progress=False):
    """Union-find clusters of rows whose character-shingle Jaccard similarity is >= threshold.

    Candidates come from MinHash LSH (datasketch); every candidate pair is then verified with the
    exact Jaccard similarity of the shingle sets, so MinHash false positives never count.
    Returns (root index per row, list of verified pairs (i, j, jaccard)).
    """
    from datasketch import MinHash, MinHashLSH
    from tqdm.auto import tqdm

    n = len(texts)
    # identical normalised texts share one representative (they are trivially near duplicates)
    rep: dict[str, int] = {}
    first = []
    for i, t in enumerate(texts):
        first.append(rep.setdefault(normalise(t), i))
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for i, f in enumerate(first):
        if f != i:
            union(i, f)
    reps = sorted(set(first))
    sh = {i: shingles(texts[i], shingle) for i in tqdm(reps, desc="shingling", disable=not progress, leave=False)}
    # The LSH bands are tuned 0.2 below the verified threshold: tuned at the threshold itself (0.8, 128
    # permutations) LSH finds a pair at Jaccard 0.80 with probability 0.40 and at 0.85 with 0.69, so
    # near duplicates just above the threshold went uncounted (found by `synthbench validate`); at 0.6
    # it finds them with probability 0.986 and 0.999. Extra candidates are dropped by the exact check.
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=num_perm)
    mh = {}
    template = MinHash(num_perm=num_perm, seed=seed)
    perms, scheme = template.permutations, template.scheme  # drawn once, shared by every row
    for i in tqdm(reps, desc="minhash", disable=not progress, leave=False):
        # the shingles are already 32-bit hashes: datasketch only applies its permutations
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=int, permutations=perms, scheme=scheme)
        m.update_batch(sh[i].tolist())
        mh[i] = m
        lsh.insert(i, m, check_duplication=False)
    pairs = []
    for i in reps:
        for j in lsh.query(mh[i]):
            if j <= i:
                continue
            s = jaccard(sh[i], sh[j])
            if s >= threshold:
                pairs.append((i, j, s))
                union(i, j)
    return [find(i) for i in range(n)], pairs


@metric(needs=("texts",), higher_is_better=False, range="[0, 1)")
def near_duplicate_rate(ctx, threshold: float = 0.8, shingle: int = 5, num_perm: int = 128) -> Score:
    """Near-duplicate rate: share of rows within Jaccard 0.8 (character 5-grams) of a kept row; lower is better.

    Counts the rows that could be removed because a kept row is at least ``threshold`` similar
    (Jaccard similarity of character 5-gram sets); exact duplicates are included.
    Range [0, 1). Candidates by MinHash LSH, each verified by the exact Jaccard similarity. Broder,
    "On the resemblance and containment of documents", 1997; Lee et al., ACL 2022. Interval: Wilson.
    Row flags: ``near-duplicate`` for every removable row, i.e. every member of a cluster except its
    first row (exact duplicates included), so the flagged count equals value × rows.
    """
    roots, pairs = near_duplicate_clusters(ctx.texts, threshold, shingle, num_perm, seed=1)
    n = len(roots)
    clusters: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        clusters.setdefault(r, []).append(i)
    removable = n - len(clusters)
    groups = [g for g in clusters.values() if len(g) > 1]
    near_only = [p for p in pairs if p[2] < 1.0]
    ex = [{"rows": [i, j], "jaccard": round(s, 3), "a": ctx.texts[i][:100], "b": ctx.texts[j][:100]}
          for i, j, s in sorted(near_only, key=lambda p: p[2])[:3]]
    return Score(removable / n, wilson_ci(removable, n),
                 {"removable": removable, "clusters": len(groups), "examples": ex,
                  "largest_cluster": max((len(g) for g in groups), default=1)},
                 rows={"near-duplicate": [i for i, r in enumerate(roots) if r != i]})
