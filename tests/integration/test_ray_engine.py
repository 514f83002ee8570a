"""--engine ray: embeddings computed on a Ray cluster with Ray Data give the local engine's values."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest

from harness.cli import main
from tests.conftest import shared

DATA = "intent_paraphrases_chatgpt_vs_crowd/clinc150"
METRICS = "semantic/vendi,semantic/pairwise-cosine-distance,distance/precision,distance/recall"
N = 200  # rows of each dataset (a seeded sample)


def _eval(out, cache, monkeypatch, *extra):
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(cache))
    code = main(["eval", f"gpt={shared(DATA) / 'gpt.jsonl'}", "-r", str(shared(DATA) / "orig_train.jsonl"),
                 "-m", METRICS, "--sample-size", str(N), "--out", str(out), "--no-progress", *extra])
    assert code == 0
    results = {(r["dataset"], r["metric"]): r["value"]
               for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    return results, json.loads((out / "run.json").read_text())


def _cached_vectors(cache) -> dict[bytes, np.ndarray]:
    """Every vector in the run's embedding cache (read through the cache's own checks)."""
    import sqlite3

    from harness.resources.cache import VectorStore

    (db,) = (cache / "embeddings").glob("*.sqlite")
    with sqlite3.connect(db) as con:
        keys = [bytes(r[0]) for r in con.execute("SELECT h FROM vec")]
    store = VectorStore(db)
    try:
        return store.get_many(keys)
    finally:
        store.close()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                       "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


def test_ray_engine_equals_local_engine(ray_cluster, tmp_path, monkeypatch):
    """Real rows, empty caches: the Ray run embeds every text on two Ray workers; values equal the local run's."""
    local, local_meta = _eval(tmp_path / "local", tmp_path / "cache-local", monkeypatch)
    remote, meta = _eval(tmp_path / "ray", tmp_path / "cache-ray", monkeypatch, "--engine", "ray")
    assert "engine" not in local_meta
    assert set(local) == set(remote) and len(local) == 6
    for key, v in local.items():
        assert remote[key] == pytest.approx(v, rel=1e-5, abs=1e-6), key
    assert remote[("gpt", "distance/precision")] == local[("gpt", "distance/precision")]  # same k-NN sets

    eng = meta["engine"]
    on_ray, here = _cached_vectors(tmp_path / "cache-ray"), _cached_vectors(tmp_path / "cache-local")
    assert set(on_ray) == set(here) and len(here) > N  # the driver wrote every vector into the cache
    cos = [float(on_ray[k] @ here[k]) for k in here]
    assert min(cos) > 1 - 1e-5
    assert eng["name"] == "ray" and eng["jobs"] == 1 and eng["rows"] == len(here)
    assert eng["cluster_cpus"] == 2
    assert eng["batches"] >= 4  # at least two batches for each of the two actors
    assert eng["workers"] == 2  # both actors of the pool embedded a batch
    assert all(int(w.rsplit(":", 1)[1]) != os.getpid() for w in eng["worker_processes"])

    # a rerun finds every embedding in the cache: nothing goes to the cluster
    again, meta2 = _eval(tmp_path / "ray2", tmp_path / "cache-ray", monkeypatch, "--engine", "ray")
    assert again == remote
    assert meta2["engine"]["jobs"] == 0 and meta2["engine"]["rows"] == 0


@pytest.mark.slow
def test_embedder_on_ray_matches_local_vectors(ray_cluster, tmp_path):
    """The vectors themselves (not only the metrics): cosine of local and Ray embeddings of the same texts ≈ 1."""
    from harness.resources.embedder import Embedder, resolve_embedder
    from harness.resources.engines import make_engine, resolve_engine
    from tests.conftest import read_jsonl

    texts = [r["text"] for r in read_jsonl(shared(DATA) / "human.jsonl", limit=120)]
    spec = resolve_embedder("default")
    eng = make_engine(resolve_engine("ray"))
    a = Embedder(spec, cache_dir=tmp_path / "a", progress=False).embed(texts)
    b = Embedder(spec, cache_dir=tmp_path / "b", progress=False, engine=eng).embed(texts)
    assert a.shape == b.shape
    assert np.min(np.sum(a * b, axis=1)) > 1 - 1e-5
    assert eng.stats["rows"] == len(set(texts)) and eng.stats["jobs"] == 1
    eng.close()  # did not start the cluster: leaves it running
    assert ray_cluster.is_initialized()


def test_ray_missing_is_one_line_user_error(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "ray" else real(name, *a))
    code = main(["eval", str(shared(DATA) / "gpt.jsonl"), "-m", "semantic/vendi", "--out", str(tmp_path / "o"),
                 "--engine", "ray", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ray" in err and "pip install" in err


def test_ray_address_needs_engine_ray(capsys, tmp_path):
    code = main(["eval", str(shared(DATA) / "gpt.jsonl"), "-m", "semantic/vendi", "--out", str(tmp_path / "o"),
                 "--ray-address", "auto", "--no-progress"])
    assert code == 2 and "--engine ray" in capsys.readouterr().err


def test_local_engine_imports_no_ray():
    import subprocess
    import sys

    code = ("import sys; from harness.cli import build_parser; from harness.resources.engines import resolve_engine, "
            "make_engine; assert make_engine(resolve_engine('local')) is None; import harness.run.runner; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("value, want", [("ray", {"name": "ray"}),
                                         ("{name: ray, address: 'ray://head:10001'}",
                                          {"name": "ray", "address": "ray://head:10001"}),
                                         (None, None)])
def test_suite_engine_key(tmp_path, value, want):
    from harness.data.suite import load_suite

    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(f"""\
        name: ray-suite
        reference: {{path: {shared(DATA) / 'orig_train.jsonl'}}}
        candidates: [{{name: gpt, path: {shared(DATA) / 'gpt.jsonl'}}}]
        """) + (f"engine: {value}\n" if value else ""), encoding="utf-8")
    assert load_suite(p).engine == want


@pytest.mark.parametrize("value", ["spark", "{name: ray, adress: auto}", "[ray]"])
def test_suite_engine_key_errors(tmp_path, value):
    from harness.data.suite import load_suite
    from harness.errors import UserError

    p = tmp_path / "s.yaml"
    p.write_text(f"name: x\nreference: {{path: {shared(DATA) / 'orig_train.jsonl'}}}\n"
                 f"candidates: [{{path: {shared(DATA) / 'gpt.jsonl'}}}]\nengine: {value}\n", encoding="utf-8")
    with pytest.raises(UserError, match="engine"):
        load_suite(p)


@pytest.mark.slow
def test_ray_engine_on_a_two_node_cluster(tmp_path, monkeypatch):
    """--ray-address: a separate two-node cluster (cluster_utils), one embedding actor on each node."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                          "object_store_memory": 150 * 1024 * 1024})
    cluster.add_node(num_cpus=1, object_store_memory=150 * 1024 * 1024)
    cluster.wait_for_nodes()
    try:
        local, _ = _eval(tmp_path / "local", tmp_path / "cache-local", monkeypatch)
        remote, meta = _eval(tmp_path / "ray", tmp_path / "cache-ray", monkeypatch, "--engine", "ray",
                             "--ray-address", cluster.address)
        for key, v in local.items():
            assert remote[key] == pytest.approx(v, rel=1e-5, abs=1e-6), key
        eng = meta["engine"]
        assert eng["address"] == cluster.address and eng["nodes"] == 2 and eng["workers"] == 2
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_ray_engine_scores_fluency_rows_like_the_local_engine(ray_cluster, tmp_path, monkeypatch):
    """Per-row LM work on Ray: the fluency metrics' negative log-likelihoods are computed by two Ray
    actors (SmolLM2-135M-Instruct each) and equal the local scorer's."""
    from harness.resources.causal_lm import resolve_lm

    mp = pytest.MonkeyPatch()
    mp.delenv("SYNTHBENCH_CACHE", raising=False)
    try:
        lm = resolve_lm("default").location  # the converted folder in the user's cache, converted once
    finally:
        mp.undo()
    cand = shared("sst2_supergen_synthetic/train_synthetic.jsonl")
    ref = shared("sst2_real/glue_validation.jsonl")
    runs = {}
    for name, extra in (("local", ()), ("ray", ("--engine", "ray"))):
        monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / f"cache-{name}"))
        out = tmp_path / name
        assert main(["eval", f"supergen={cand}", "-r", str(ref), "--sample-size", "12", "--metrics", "fluency",
                     "--lm", lm, "--out", str(out), "--no-progress", *extra]) == 0
        runs[name] = ({(r["dataset"], r["metric"]): r["value"]
                       for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())},
                      json.loads((out / "run.json").read_text()))
    (local, _), (remote, meta) = runs["local"], runs["ray"]
    assert set(local) == set(remote) and len(local) == 5
    for key, v in local.items():
        assert remote[key] == pytest.approx(v, rel=1e-4), key
    eng = meta["engine"]
    assert eng["score_rows"] == 24 and eng["jobs"] == 2  # one job per corpus: 12 + 12 distinct texts
    assert eng["workers"] >= 2 and "embed_rows" not in eng
