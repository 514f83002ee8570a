"""The one token-id encoding that lexical, surface and homogenization metrics share.

Rows of tokens (from any tokenizer) become one flat integer array plus the row lengths, with ids given
in order of first occurrence. Counting n-grams, distinct-n, self-BLEU and MATTR on integer ids instead
of strings keeps a million rows within memory.
"""

from __future__ import annotations


class Vocab(dict):
    """token -> id, a new token getting the next id (so ids follow first occurrence)."""

    def __missing__(self, key):
        v = self[key] = len(self)
        return v


def encode_rows(token_rows):
    """(flat ids int64, row lengths int64, vocabulary list) of token rows (any iterable, read once).

    >>> flat, lens, vocab = encode_rows([["a", "b", "a"], [], ["b", "c"]])
    >>> flat.tolist(), lens.tolist(), vocab
    ([0, 1, 0, 1, 2], [3, 0, 2], ['a', 'b', 'c'])
    """
    from array import array

    import numpy as np

    vocab = Vocab()
    get = vocab.__getitem__
    ids, lengths = array("q"), array("q")
    for row in token_rows:
        before = len(ids)
        ids.extend(map(get, row))
        lengths.append(len(ids) - before)
    return np.frombuffer(ids, dtype=np.int64).copy(), np.frombuffer(lengths, dtype=np.int64).copy(), list(vocab)
