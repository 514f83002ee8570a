"""Throughput and peak-memory benchmark for synthbench's text metrics and the embedder.

Prints a table (it is not a test). Each block (lexical+length metrics, duplicates, embedding, semantic)
runs for each size in its own subprocess, so the peak RSS reported is that block's alone.

    .venv/bin/python bench/run.py                        # n = 10k and 100k (embedding too)
    .venv/bin/python bench/run.py --quick                # n = 2000 only
    .venv/bin/python bench/run.py --sizes 10000 --embed-sizes 10000 --out bench/out/
    .venv/bin/python bench/run.py --blocks semantic      # Vendi at 100k + surface metrics 10k vs 10k
    .venv/bin/python bench/run.py --blocks distance      # distance/* 10k vs 10k + PRDC 20k beside `prdc`

Inputs are real short texts read in place from ``../shared/data`` (never copied into the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# read first, in this order; then every other *.jsonl with a "text" field, sorted by path
PREFERRED = [
    "intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl",
    "banking77_real/train.jsonl",
    "banking77_real/test.jsonl",
    "ag_news_real/test.jsonl",
    "trec_real/train.jsonl",
    "sms_spam_real/all.jsonl",
    "sst2_real/train_phrases_a.jsonl",
    "sst2_real/train_phrases_b.jsonl",
]

BLOCKS = ("lexical", "dup", "embed", "semantic", "distance")
GOAL_COLD_PER_S = 400.0
GOAL_SPEEDUP = 50.0

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# ----------------------------------------------------------------------------- inputs

class FixedEmbedder:
    """An embedder that returns given vectors (a Context's embeddings in benchmarks on prepared vectors)."""

    def __init__(self, M, identity: str = "bench-fixed"):
        self.M, self.identity = M, identity

    def embed(self, texts, desc=""):
        return self.M


def _has_text_field(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and isinstance(row.get("text"), str)
    return False


def source_files() -> list[Path]:
    if not DATA.is_dir():
        sys.exit(f"bench: no data folder at {DATA}")
    first = [DATA / p for p in PREFERRED if (DATA / p).is_file()]
    seen = {p.resolve() for p in first}
    rest = [p for p in sorted(DATA.rglob("*.jsonl")) if p.resolve() not in seen]
    return [p for p in first + rest if _has_text_field(p)]


def iter_pool_rows(files: list[Path]):
    """(file, text, label or None) of every row with a non-empty ``text``, in file order then line order."""
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                t = row.get("text") if isinstance(row, dict) else None
                if isinstance(t, str) and t.strip():
                    yield path, t, row.get("label")


def iter_pool(files: list[Path]):
    """Non-empty ``text`` values of every file, in file order then line order."""
    for _, t, _ in iter_pool_rows(files):
        yield t


def make_texts(n: int, files: list[Path] | None = None) -> tuple[list[str], int]:
    """The first ``n`` pool texts; if the pool is shorter, later copies get a ' (#k)' suffix.

    Returns (texts, copies) where copies is how many passes over the pool were used (1 = none repeated).
    Reads only as many lines as needed, so a worker's memory is not inflated by the whole pool.
    """
    files = files if files is not None else source_files()
    out: list[str] = []
    for t in iter_pool(files):
        out.append(t)
        if len(out) == n:
            return out, 1
    pool = len(out)
    if pool == 0:
        sys.exit("bench: no texts found")
    k = 1
    while len(out) < n:
        out.extend(f"{t} (#{k})" for t in out[:min(pool, n - len(out))])
        k += 1
    return out, k


def pool_info(files: list[Path]) -> dict:
    rows = uniq = 0
    seen: set[str] = set()
    for t in iter_pool(files):
        rows += 1
        if t not in seen:
            seen.add(t)
            uniq += 1
    return {"files": len(files), "rows": rows, "unique": uniq}


# ----------------------------------------------------------------------------- workers

def _maxrss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / 1024 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux


def _machine_busy_s() -> float | None:
    """CPU seconds all processes on this machine have been busy since boot (Linux /proc/stat)."""
    from harness.resources.perplexity import _machine_busy_s as busy

    return busy()


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _run_metrics(ctx, specs, prep=()):
    """Time ``prep`` steps then each metric spec; returns table rows (dicts)."""
    from harness.metrics.base import MetricSkipped

    rows = []
    for name, fn, describe in prep:
        out, s, c = _timed(fn)
        rows.append({"metric": name, "seconds": s, "cpu": c, "value": describe(out)})
    for spec in specs:
        spec.fn  # noqa: B018  (import the module before the clock starts)
        try:
            score, s, c = _timed(lambda spec=spec: spec(ctx))
            value = _fmt_value(score.value)
        except MetricSkipped as e:
            s = c = float("nan")
            value = f"skipped: {e}"
        rows.append({"metric": spec.name, "seconds": s, "cpu": c, "value": value})
    return rows


def worker_lexical(texts):
    from harness import metrics
    from harness.metrics.base import Context
    from harness.types import Corpus

    ctx = Context(Corpus(name="bench", source="bench", kind="text", texts=tuple(texts)), seed=0)
    specs = metrics.select(["lexical", "length"])
    import harness.stats  # noqa: F401  (imported by the length metrics; keep it out of their time)

    prep = [("(tokenize)", lambda: ctx.tokens,
             lambda toks: f"{sum(map(len, toks)):,} tokens"),
            ("(ngram-counts 1-4)", lambda: [ctx.ngram_counts(k) for k in (1, 2, 3, 4)],
             lambda cs: "types " + " / ".join(f"{len(c):,}" for c in cs))]
    return {"rows": _run_metrics(ctx, specs, prep)}


def worker_dup(texts):
    import datasketch  # noqa: F401  (import cost is not part of the metric time)

    from harness import metrics
    from harness.metrics.base import Context
    from harness.types import Corpus

    ctx = Context(Corpus(name="bench", source="bench", kind="text", texts=tuple(texts)), seed=0)
    return {"rows": _run_metrics(ctx, [metrics.get("dup/exact-rate"), metrics.get("dup/near-rate")])}


def worker_embed(texts):
    import numpy as np
    import torch

    from harness.resources.embedder import Embedder, resolve_embedder

    threads = int(os.environ.get("BENCH_EMBED_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    spec = resolve_embedder("default", batch_size=64)
    tmp = Path(tempfile.mkdtemp(prefix="synthbench-bench-"))
    try:
        cold = Embedder(spec, cache_dir=tmp, progress=False)
        _, load_s, load_c = _timed(cold.model)
        X, cold_s, cold_c = _timed(lambda: cold.embed(texts))
        warm = Embedder(spec, cache_dir=tmp, progress=False)  # new instance: no in-process memo
        Y, warm_s, warm_c = _timed(lambda: warm.embed(texts))
        same = bool(np.array_equal(X, Y))
        cache_mib = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    enc = cold.stats["encoded"]
    return {
        "rows": [
            {"metric": "model load", "seconds": load_s, "cpu": load_c, "value": f"{spec.identity}",
             "no_rate": True},
            {"metric": "cold", "seconds": cold_s, "cpu": cold_c,
             "value": f"encoded {enc} unique ({enc / cold_s:.0f}/s), dim {X.shape[1]}"},
            {"metric": "cached (new Embedder)", "seconds": warm_s, "cpu": warm_c,
             "value": f"from_cache {warm.stats['from_cache']}, encoded {warm.stats['encoded']}, "
                      f"{'identical' if same else 'DIFFERENT'}, cache {cache_mib:.0f} MiB"},
            {"metric": "speed-up cached/cold", "seconds": float("nan"), "cpu": float("nan"),
             "value": f"{cold_s / warm_s:.1f}x", "no_rate": True},
        ],
        "threads": threads,
        "torch": torch.__version__,
        "device": str(cold.model().device),
        "encoded": enc,
        "cold_s": cold_s,
        "cached_s": warm_s,
        "identical": same,
    }


SEMANTIC_DIM = 384          # all-MiniLM-L6-v2's dimension
SEMANTIC_METRIC_N = 10_000  # rows for the other embedding metrics and for each side of the surface metrics
KERNEL_SIZES = (2000, 5000)  # vendi-score's n x n kernel form: impossible at 100k (an 80 GB matrix)
KERNEL_TIMEOUT_S = 240


def unit_mixture(n: int, seed: int, dim: int = SEMANTIC_DIM, centres: int = 50):
    """n random unit vectors drawn around ``centres`` random directions (a stand-in for sentence
    embeddings with topics; float32, like the embedder's output)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, dim))
    lab = rng.integers(0, centres, size=n)
    X = (C[lab] + 1.5 * rng.normal(size=(n, dim))).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, lab


def vendi_kernel_main(n: int, seed: int) -> None:
    """Child process: time vendi-score's kernel form (n x n eigendecomposition) and print JSON."""
    import numpy as np
    from vendi_score import vendi

    X, _ = unit_mixture(n, seed)
    X = X.astype(np.float64)
    w0, c0 = time.perf_counter(), time.process_time()
    v = float(vendi.score_K(X @ X.T))
    print(json.dumps({"value": v, "seconds": time.perf_counter() - w0, "cpu": time.process_time() - c0}))


def _vendi_kernel_child(n: int, seed: int) -> dict:
    """Run ``vendi_kernel_main`` in a child process under KERNEL_TIMEOUT_S."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--vendi-kernel", str(n), str(seed)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=KERNEL_TIMEOUT_S,
                           env={**os.environ, **ENV}, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"timed_out": True}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _labelled_pool(n: int) -> list[tuple[str, str | None]]:
    """The first ``n`` (text, label) pairs of the pool, in the same order as ``iter_pool``."""
    out = []
    for _, t, lab in iter_pool_rows(source_files()):
        out.append((t, None if lab is None else str(lab)))
        if len(out) == n:
            break
    return out


def worker_semantic(texts):
    """Vendi at n rows (ours, dual form, beside vendi-score's dual and kernel forms), the other embedding
    metrics at 10k rows, and the surface metrics on 10k vs 10k real texts."""
    from harness import metrics
    from harness.metrics.base import Context
    from harness.metrics.direct.semantic import vendi_score
    from harness.types import Corpus

    n = len(texts)
    rows = []
    vendi_score(unit_mixture(500, seed=2)[0])  # warm up BLAS/LAPACK before the clock starts
    X, _ = unit_mixture(n, seed=0)
    ours, s, c = _timed(lambda: vendi_score(X))
    rows.append({"metric": "vendi: synthbench dual (d x d, mixed)", "seconds": s, "cpu": c, "value": f"{ours:.4f}"})
    try:
        from vendi_score import vendi as vs
    except ImportError:
        vs = None
        rows.append({"metric": "vendi: vendi-score", "seconds": float("nan"), "cpu": float("nan"),
                     "value": "not installed (pip install vendi-score==0.0.3)", "no_total": True})
    if vs is not None:
        theirs, s, c = _timed(lambda: float(vs.score_dual(X)))
        rows.append({"metric": "vendi: vendi-score score_dual", "seconds": s, "cpu": c, "no_total": True,
                     "value": f"{theirs:.4f} (rel. diff {abs(theirs - ours) / ours:.1e})"})
        if n > max(KERNEL_SIZES):
            rows.append({"metric": "vendi: vendi-score score_K (kernel)", "seconds": float("nan"),
                         "cpu": float("nan"), "no_total": True, "no_rate": True,
                         "value": f"not run: the {n:,} x {n:,} float64 kernel alone is {n * n * 8 / 2**30:,.0f} GiB"})
        for m in sorted(set(KERNEL_SIZES) | ({n} if n <= max(KERNEL_SIZES) else set())):
            Y, _ = unit_mixture(m, seed=0)
            mine = vendi_score(Y)
            k = _vendi_kernel_child(m, 0)
            if "value" in k:
                rows.append({"metric": "vendi: vendi-score score_K (kernel)", "n": m, "seconds": k["seconds"],
                             "cpu": k["cpu"], "no_total": True,
                             "value": f"{k['value']:.4f} vs ours {mine:.4f} (rel. diff "
                                      f"{abs(k['value'] - mine) / mine:.1e})"})
            else:
                rows.append({"metric": "vendi: vendi-score score_K (kernel)", "n": m, "seconds": float("nan"),
                             "cpu": float("nan"), "no_total": True,
                             "value": f"TIMED OUT after {KERNEL_TIMEOUT_S}s" if k.get("timed_out") else k["error"]})
            if m == n:
                continue
            _, s, c = _timed(lambda Y=Y: vendi_score(Y))
            rows.append({"metric": "vendi: synthbench dual (d x d, mixed)", "n": m, "seconds": s, "cpu": c,
                         "no_total": True, "value": f"{mine:.4f}"})

    # the other embedding metrics on random mixture vectors (timings; values are not meaningful)
    m = min(n, SEMANTIC_METRIC_N)
    E, lab = unit_mixture(2 * m, seed=1)

    def ctx_of(M, labels, name, reference=None):
        corpus = Corpus(name, name, "classification", tuple(str(i) for i in range(len(M))),
                        labels=tuple(f"c{x % 20}" for x in labels))
        return Context(corpus, seed=0, embedder=FixedEmbedder(M, "bench-random"), reference=reference)

    ref = ctx_of(E[m:], lab[m:], "ref")
    cand = ctx_of(E[:m], lab[:m], "cand", reference=ref)
    ref.embeddings, cand.embeddings  # noqa: B018  (materialise before timing)
    specs = [metrics.get(x) for x in ("semantic/vendi", "semantic/pairwise-cosine-distance", "semantic/chamfer",
                                      "semantic/cluster-entropy", "semantic/ref-cluster-coverage",
                                      "semantic/aps", "perclass/vendi")]
    for r in _run_metrics(cand, specs):
        r["n"] = m
        rows.append(r)

    # surface metrics on real texts: the first 10k labelled pool texts against the next 10k
    pool = _labelled_pool(2 * SEMANTIC_METRIC_N)
    a, b = pool[:SEMANTIC_METRIC_N], pool[SEMANTIC_METRIC_N:]

    def corpus(rs, name):
        labels = tuple(lab or "(none)" for _, lab in rs)
        return Corpus(name, name, "classification", tuple(t for t, _ in rs), labels=labels)

    sctx = Context(corpus(a, "cand"), seed=0, reference=Context(corpus(b, "ref"), seed=0))
    prep = [("(tokenize both + unigram counts)",
             lambda: (sctx.ngram_counts(1), sctx.reference.ngram_counts(1)),
             lambda cs: f"{len(cs[0]):,} / {len(cs[1]):,} types")]
    for r in _run_metrics(sctx, metrics.select(["surface"]), prep):
        r["n"] = len(a)
        rows.append(r)
    return {"rows": rows, "surface_inputs": f"first {len(a):,} labelled pool texts vs the next {len(b):,}",
            "vectors": f"unit vectors, dim {SEMANTIC_DIM}, around 50 random centres (numpy seed 0/1)"}


# ----------------------------------------------------------------------------- distance block

DISTANCE_GOAL_S = 30.0       # every distance/* metric together, n vs n
PRDC_CHILD_TIMEOUT_S = 600


def _distance_vectors(n2: int, texts: list[str], kind: str):
    """(2n x 384 embeddings of ``texts``, description): mixture vectors, or real MiniLM embeddings
    from the synthbench cache (filled first in a child process, so this worker never loads torch)."""
    import numpy as np

    if kind == "real":
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--distance-embed", str(n2)],
                           cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-4000:])
            sys.exit("bench: embedding the distance inputs failed")
        from harness.resources.embedder import Embedder, resolve_embedder

        emb = Embedder(resolve_embedder("default"), progress=False)
        E = np.asarray(emb.embed(texts))
        assert emb.stats["encoded"] == 0
        return E, f"all-MiniLM-L6-v2 sentence embeddings ({p.stdout.strip().splitlines()[-1]})"
    E, _ = unit_mixture(n2, seed=1)
    return E, f"synthetic unit vectors, dim {SEMANTIC_DIM}, around 50 random centres (not model output)"


def distance_embed_main(n2: int) -> None:
    """Child process: make sure the first ``n2`` pool texts are in the embedding cache."""
    from harness.resources.embedder import Embedder, resolve_embedder

    texts, _ = make_texts(n2)
    emb = Embedder(resolve_embedder("default"), progress=False)
    _, s, _c = _timed(lambda: emb.embed(texts))
    print(f"{emb.stats['from_cache']:,} from the cache, {emb.stats['encoded']:,} encoded now in {s:.0f}s")


def _proc_status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> float:
    """Restart the peak-RSS counter (Linux: clear_refs 5) and return the current RSS in MiB, so that
    the next ``_hwm_mib`` measures what the timed work adds over its inputs. Falls back to the
    lifetime peak where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return _proc_status_mib("VmRSS") or _maxrss_mib()
    except OSError:
        return _hwm_mib()


def _hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM). Unlike ru_maxrss it restarts at exec, so a child
    spawned by a big parent does not inherit the parent's peak."""
    return _proc_status_mib("VmHWM") or _maxrss_mib()


def prdc_child_main(which: str, n: int) -> None:
    """Child process: PRDC (k=5) on n vs n mixture vectors with synthbench or the prdc package;
    prints values, time and peak RSS (its own process, so the memory is that computation's)."""
    import contextlib
    import io

    X, _ = unit_mixture(2 * n, seed=2)
    real, fake = X[:n], X[n:]
    if which == "ours":
        from harness.metrics.direct.distance import prdc

        fn = lambda: prdc(real, fake, 5).values()  # noqa: E731
    else:
        from prdc import compute_prdc

        def fn():
            with contextlib.redirect_stdout(io.StringIO()):
                return {k: float(v) for k, v in compute_prdc(real, fake, 5).items()}
    base = _reset_peak_rss()
    values, s, c = _timed(fn)
    print(json.dumps({"values": values, "seconds": s, "cpu": c, "base_mib": base, "peak_mib": _hwm_mib()}))


def _prdc_child(which: str, n: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--prdc-child", which, str(n)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=PRDC_CHILD_TIMEOUT_S,
                           env={**os.environ, **ENV}, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {PRDC_CHILD_TIMEOUT_S}s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def worker_distance(texts):
    """Every distance/* metric on n candidate vs n reference rows (the first 2n pool texts, shuffled and
    halved: one distribution), then PRDC at the --prdc-sizes beside the prdc package (child processes)."""
    import numpy as np

    from harness import metrics
    from harness.metrics.base import Context
    from harness.types import Corpus

    n = len(texts)
    pair, _ = make_texts(2 * n)
    perm = np.random.default_rng(0).permutation(2 * n)
    E, vectors = _distance_vectors(2 * n, pair, os.environ.get("BENCH_DISTANCE_EMB", "mixture"))
    rows = []

    def corpus(idx, name):
        return Corpus(name, name, "text", tuple(pair[i] for i in idx))

    ref = Context(corpus(perm[n:], "ref"), seed=0, embedder=FixedEmbedder(E[perm[n:]], "bench"))
    ctx = Context(corpus(perm[:n], "cand"), seed=0, embedder=FixedEmbedder(E[perm[:n]], "bench"), reference=ref)
    try:
        _, s, c = _timed(lambda: __import__("mauve"))
        rows.append({"metric": "(import mauve-text: torch + transformers)", "seconds": s, "cpu": c,
                     "value": "once per process, not counted", "no_total": True, "no_rate": True})
    except ImportError:
        pass
    import sklearn.feature_extraction.text  # noqa: F401  (imports are not part of the metric times)
    import sklearn.linear_model  # noqa: F401

    for r in _run_metrics(ctx, metrics.select(["distance"])):
        r["n"] = n
        rows.append(r)
    total = sum(r["seconds"] for r in rows if not r.get("no_total") and r["seconds"] == r["seconds"])

    comparisons = []
    for m in [int(x) for x in os.environ.get("BENCH_PRDC_SIZES", "20000").split(",") if x]:
        ours, pkg = _prdc_child("ours", m), _prdc_child("package", m)
        comparisons.append({"n": m, "ours": ours, "package": pkg})
        for label, res in (("prdc k=5: synthbench (blockwise)", ours), ("prdc k=5: prdc 0.2 package", pkg)):
            if "error" in res:
                rows.append({"metric": label, "n": m, "seconds": float("nan"), "cpu": float("nan"),
                             "value": res["error"], "no_total": True})
                continue
            v = res["values"]
            rows.append({"metric": label, "n": m, "seconds": res["seconds"], "cpu": res["cpu"], "no_total": True,
                         "value": f"P {v['precision']:.4f} R {v['recall']:.4f} D {v['density']:.4f} "
                                  f"C {v['coverage']:.4f}; peak {res['peak_mib']:,.0f} MiB "
                                  f"(+{res['peak_mib'] - res['base_mib']:,.0f} over inputs)"})
        if "error" not in ours and "error" not in pkg:
            same = ours["values"] == pkg["values"]
            diff = max(abs(ours["values"][k] - pkg["values"][k]) for k in ours["values"])
            mem = (pkg["peak_mib"] - pkg["base_mib"]) / max(1.0, ours["peak_mib"] - ours["base_mib"])
            rows.append({"metric": "prdc k=5: package / synthbench", "n": m, "seconds": float("nan"),
                         "cpu": float("nan"), "no_total": True, "no_rate": True,
                         "value": f"time {pkg['seconds'] / ours['seconds']:.1f}x, extra memory {mem:.1f}x; "
                                  + ("all four values identical" if same else f"max |diff| {diff:.2e}")})
    return {"rows": rows, "vectors": vectors, "distance_total_s": total, "prdc": comparisons}


WORKERS = {"lexical": worker_lexical, "dup": worker_dup, "embed": worker_embed, "semantic": worker_semantic,
           "distance": worker_distance}


def worker_main(block: str, n: int) -> None:
    os.environ.update(ENV)
    texts, copies = make_texts(n)
    base = _maxrss_mib()
    busy0, c0, w0 = _machine_busy_s(), time.process_time(), time.perf_counter()
    result = WORKERS[block](texts)
    wall, own = time.perf_counter() - w0, time.process_time() - c0
    busy1 = _machine_busy_s()
    # CPU the rest of the machine used while this block ran, in cores on average (contention)
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - own) / wall)
    result.update({
        "block": block, "n": n, "copies": copies,
        "mean_chars": sum(map(len, texts)) / len(texts),
        "unique_texts": len(set(texts)),
        "wall_s": wall, "own_cores": own / wall, "other_cores": others,
        "base_mib": base, "peak_mib": _maxrss_mib(),
    })
    sys.stdout.flush()
    print("\n" + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- driver

def run_block(block: str, n: int) -> dict:
    print(f"bench: {block} n={n} ...", file=sys.stderr, flush=True)
    env = {**os.environ, **ENV}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", block, str(n)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        sys.exit(f"bench: worker {block} n={n} failed (exit {p.returncode})")
    res = json.loads(lines[-1])
    print(f"bench: {block} n={n} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return res


def _num(x, fmt):
    return "" if x is None or x != x else format(x, fmt)  # x != x: NaN


def _cores(r: dict) -> str:
    other = r.get("other_cores")
    return f"{r['own_cores']:.1f} / {'?' if other is None else format(other, '.1f')}"


def table_rows(results: list[dict]) -> list[list[str]]:
    """Rows grouped by block, then metric, then n (so sizes sit next to each other)."""
    out = []
    for block in BLOCKS:
        res = [r for r in results if r["block"] == block]
        if not res:
            continue
        names: list[str] = []
        for r in res:
            names += [m for m in dict.fromkeys(row["metric"] for row in r["rows"]) if m not in names]
        for name in names:
            for r in res:
                for row in r["rows"]:
                    if row["metric"] != name:
                        continue
                    rn = row.get("n", r["n"])  # a row may time another size than its block's n
                    rate = None if row.get("no_rate") else rn / row["seconds"] if row["seconds"] else None
                    out.append([block, name, str(rn), _num(row["seconds"], ".3f"), _num(row["cpu"], ".2f"),
                                _num(rate, ",.0f"), "", "", "", row["value"]])
        for r in res:
            timed = [row for row in r["rows"] if row["seconds"] == row["seconds"] and not row.get("no_total")]
            if block == "embed":  # total = what a cold run costs: load + encode
                timed = [row for row in timed if row["metric"] in ("model load", "cold")]
            s = sum(row["seconds"] for row in timed)
            c = sum(row["cpu"] for row in timed)
            label = "TOTAL (load + cold)" if block == "embed" else "TOTAL"
            out.append([block, label, str(r["n"]), _num(s, ".3f"), _num(c, ".2f"),
                        _num(r["n"] / s if s else None, ",.0f"), _num(r["peak_mib"], ",.0f"),
                        _num(r["base_mib"], ",.0f"), _cores(r), f"mean {r['mean_chars']:.0f} chars/text"])
        out.append(None)  # separator
    return out


def render(rows: list[list[str] | None]) -> str:
    head = ["block", "metric", "n", "seconds", "cpu s", "rows/s", "peak MiB", "base MiB", "cores self/other",
            "value"]
    right = {2, 3, 4, 5, 6, 7, 8}
    body = [r for r in rows if r is not None]
    widths = [max(len(head[i]), *(len(r[i]) for r in body)) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(head), rule]
    for r in rows:
        if r is None:
            if lines[-1] != rule:
                lines.append(rule)
        else:
            lines.append(line(r))
    return "\n".join(lines)


def goals(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        if r["block"] != "distance":
            continue
        t = r["distance_total_s"]
        out.append({"n": r["n"], "what": f"all distance/* metrics, n vs n, together < {DISTANCE_GOAL_S:.0f} s",
                    "value": t, "text": f"{t:.1f} s", "pass": t < DISTANCE_GOAL_S})
        for c in r["prdc"]:
            ours, pkg = c["ours"], c["package"]
            ok = "error" not in ours and "error" not in pkg
            out.append({"n": c["n"], "what": "PRDC: same four values as the prdc package, faster, less memory",
                        "value": None, "pass": ok and ours["values"] == pkg["values"]
                        and ours["seconds"] < pkg["seconds"] and ours["peak_mib"] < pkg["peak_mib"],
                        "text": (f"{ours['seconds']:.1f} s vs {pkg['seconds']:.1f} s, peak {ours['peak_mib']:,.0f} vs "
                                 f"{pkg['peak_mib']:,.0f} MiB, values "
                                 f"{'identical' if ours['values'] == pkg['values'] else 'DIFFER'}")
                        if ok else f"{ours.get('error') or pkg.get('error')}"})
    for r in results:
        if r["block"] != "embed":
            continue
        cold_rate = r["encoded"] / r["cold_s"] if r["cold_s"] else 0.0
        speedup = r["cold_s"] / r["cached_s"] if r["cached_s"] else float("inf")
        out.append({"n": r["n"], "what": "embedding cold >= 400 sentences/s", "value": cold_rate,
                    "text": f"{cold_rate:,.0f} sentences/s (unique texts encoded / encode seconds, "
                            f"mean {r['mean_chars']:.0f} chars, {r['threads']} torch threads, {r['device']})",
                    "pass": cold_rate >= GOAL_COLD_PER_S})
        out.append({"n": r["n"], "what": "embedding cached >= 50x faster than cold", "value": speedup,
                    "text": f"{speedup:,.1f}x ({r['n'] / r['cached_s']:,.0f} sentences/s cached)",
                    "pass": speedup >= GOAL_SPEEDUP and r["identical"]})
    return out


def update_readme(path: Path, tag: str, text: str) -> bool:
    """Replace the block between ``<!-- {tag}:begin -->`` and ``<!-- {tag}:end -->`` in ``path`` with
    ``text`` (written to a temporary file, then renamed: never half-written). False if the markers are absent."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    old = path.read_text(encoding="utf-8")
    if begin not in old or end not in old:
        return False
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}", encoding="utf-8")
    os.replace(tmp, path)
    return True


def parse_sizes(s: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "")) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {s!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers: {s!r}")
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000],
                    help="corpus sizes for the lexical and duplicate blocks (default 10000,100000)")
    ap.add_argument("--embed-sizes", type=parse_sizes, default=None,
                    help="corpus sizes for the embedding block (default: same as --sizes)")
    ap.add_argument("--semantic-sizes", type=parse_sizes, default=[100_000],
                    help="Vendi sizes for the semantic block (default 100000; its other rows use 10k)")
    ap.add_argument("--distance-sizes", type=parse_sizes, default=[10_000],
                    help="rows per side for the distance block's metrics (default 10000: 10k vs 10k)")
    ap.add_argument("--prdc-sizes", type=parse_sizes, default=[20_000],
                    help="rows per side for PRDC beside the prdc package in the distance block (default 20000)")
    ap.add_argument("--distance-embeddings", choices=("mixture", "real"), default="mixture",
                    help="distance block inputs: synthetic mixture vectors (default), or the default "
                         "embedder's vectors of the texts (encoded into the synthbench cache on first use)")
    ap.add_argument("--quick", action="store_true", help="n = 2000 only, for every block")
    ap.add_argument("--blocks", default=",".join(BLOCKS), help=f"subset of {','.join(BLOCKS)}")
    ap.add_argument("--embed-threads", type=int, default=None,
                    help="torch threads for the embedding block (default: os.cpu_count())")
    ap.add_argument("--out", type=Path, default=None, help="folder to write results.json into")
    ap.add_argument("--worker", nargs=2, metavar=("BLOCK", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--vendi-kernel", nargs=2, type=int, metavar=("N", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--prdc-child", nargs=2, metavar=("WHICH", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--distance-embed", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.prdc_child:
        prdc_child_main(args.prdc_child[0], int(args.prdc_child[1]))
        return 0
    if args.distance_embed:
        distance_embed_main(args.distance_embed)
        return 0

    if args.vendi_kernel:
        vendi_kernel_main(*args.vendi_kernel)
        return 0

    if args.worker:
        block, n = args.worker
        if block not in WORKERS:
            ap.error(f"unknown block {block}")
        worker_main(block, int(n))
        return 0

    os.environ.update(ENV)
    if args.embed_threads:
        os.environ["BENCH_EMBED_THREADS"] = str(args.embed_threads)
    blocks = [b.strip() for b in args.blocks.split(",") if b.strip()]
    if unknown := set(blocks) - set(BLOCKS):
        ap.error(f"unknown blocks: {', '.join(sorted(unknown))}")
    sizes = [2000] if args.quick else args.sizes
    embed_sizes = [2000] if args.quick else (args.embed_sizes or sizes)
    semantic_sizes = [2000] if args.quick else args.semantic_sizes
    distance_sizes = [2000] if args.quick else args.distance_sizes
    os.environ["BENCH_PRDC_SIZES"] = ",".join(map(str, [4000] if args.quick else args.prdc_sizes))
    os.environ["BENCH_DISTANCE_EMB"] = args.distance_embeddings

    files = source_files()
    info = pool_info(files)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    results = []
    for block in blocks:
        for n in {"embed": embed_sizes, "semantic": semantic_sizes, "distance": distance_sizes}.get(block, sizes):
            results.append(run_block(block, n))
    elapsed = time.perf_counter() - t0
    load1 = os.getloadavg()

    per_n = {}
    for r in results:
        per_n.setdefault(r["n"], r)
    print()
    print(f"synthbench bench — {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load avg {load0[0]:.2f} at start / {load1[0]:.2f} at end, "
          f"{elapsed:.0f}s in all"
          + (f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}" if os.environ.get("OMP_WAIT_POLICY") else ""))
    print(f"inputs: {info['rows']:,} texts ({info['unique']:,} unique) from {info['files']} JSONL files "
          f"under {DATA} (read in place)")
    for n, r in sorted(per_n.items()):
        how = ("first n pool texts, none repeated" if r["copies"] == 1 else
               f"pool cycled {r['copies']}x, repeats suffixed ' (#k)'")
        print(f"  n={n:,}: {how}; {r['unique_texts']:,} unique texts, mean {r['mean_chars']:.1f} chars/text")
    print("notes: rows/s = n / seconds; 'cpu s' = process CPU time (cpu < seconds means waiting or contention);")
    print("       peak/base MiB = max RSS of the block's own subprocess at the end / before the timed work;")
    print("       cores self/other = CPU cores this block used / cores other processes kept busy meanwhile,")
    print(f"       averaged over the block (the machine has {os.cpu_count()}; other > 0 means timings are contended);")
    print("       (tokenize) and (ngram-counts 1-4) are timed on their own, so the metric rows after them")
    print("       exclude tokenizing and n-gram counting (Context caches both for every metric).")
    for r in results:
        if r["block"] == "semantic":
            print(f"semantic (n={r['n']:,}): embeddings are synthetic {r['vectors']}, not model output;")
            print(f"       Vendi rows at n={r['n']:,} and at {'/'.join(f'{k:,}' for k in KERNEL_SIZES)} "
                  f"(vendi-score's kernel form, limit {KERNEL_TIMEOUT_S}s each, run in a child process);")
            print(f"       other embedding metrics at n={min(r['n'], SEMANTIC_METRIC_N):,} (timings only); surface: "
                  f"{r['surface_inputs']}. TOTAL counts synthbench rows only.")
        if r["block"] == "distance":
            print(f"distance (n={r['n']:,} per side): candidate and reference are the first {2 * r['n']:,} pool texts,")
            print(f"       shuffled (seed 0) and halved; embeddings: {r['vectors']}. TOTAL = the distance/* rows")
            print("       (precision/recall/density/coverage share one k-NN computation, charged to the first).")
            print("       PRDC rows: k=5 on n vs n mixture vectors (seed 2), each in its own child process, so")
            print("       'peak' is that computation's max RSS; 'over inputs' subtracts RSS before it started")
            print("       (their CPU counts as 'other' in the block's cores column).")
    print()
    print(render(table_rows(results)))
    g = goals(results)
    if g:
        print()
        print("goals")
        for item in g:
            print(f"  [{'PASS' if item['pass'] else 'MISS'}] n={item['n']:,}: {item['what']}: {item['text']}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        dump = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg": [load0, load1], "elapsed_s": elapsed,
                "data": str(DATA), "pool": info, "sizes": sizes, "embed_sizes": embed_sizes,
                "results": results, "goals": g}
        path = args.out / "results.json"
        path.write_text(json.dumps(dump, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
