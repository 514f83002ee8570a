from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Tests check numbers at the reference precision, the same on every CPU: on one with AVX512-BF16 or AMX,
# `auto` would run the models at bf16 (identities '@bf16', values moved within their intervals). The tests
# of precision itself (tests/unit/resources/test_precision.py) ask for auto, bf16 and fp16 by name.
os.environ.setdefault("SYNTHBENCH_PRECISION", "fp32")


def shared(rel: str) -> Path:
    """A file of ../shared/data: skipped where the data is absent, but a failure under CI (CI=true), which
    always has it beside the clone, so that a moved file cannot silently turn tests into skips."""
    p = SHARED / rel
    if not p.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"../shared/data/{rel} is not available (CI=true: data tests must run)")
        pytest.skip(f"../shared/data/{rel} is not available")
    return p


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
    return rows


class FakeEmbedder:
    """Deterministic hashed bag-of-words vectors: for tests where the model is not the point."""

    identity = "fake-bow-64"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def embed(self, texts, desc=""):
        self.calls += 1
        X = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.md5(w.encode()).hexdigest(), 16)
                X[i, h % self.dim] += 1.0 if (h >> 8) & 1 else -1.0
        X[:, 0] += 0.01
        return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def register_metrics():
    """Register test metrics (declared with ``@metric(..., register=False)``) for one test."""
    from harness import metrics

    added: list[str] = []

    def add(*fns):
        metrics.register(*fns)
        added.extend(d.name for f in fns for d in f.declarations)

    yield add
    metrics.unregister(*added)


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sbcache")
    os.environ["SYNTHBENCH_CACHE"] = str(d)
    return d
