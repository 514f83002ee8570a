"""synthbench beside the published implementation of each metric it shares with one (issue #10): time, peak
memory and agreement of the values, on the same input in the same run, at n = 1k to 100k.

    .venv/bin/python bench/versus.py                          # every case, default sizes; prints one table
    .venv/bin/python bench/versus.py --cases vendi-dual,prdc --limit 120
    .venv/bin/python bench/versus.py --out bench/out          # also writes versus.json and versus.md
    .venv/bin/python bench/versus.py --cases vendi-dual --merge bench/out/versus.json --out bench/out \
        --readme bench/README.md                              # re-measure one case inside the saved table

Every (case, n, side) runs in its own subprocess: its peak memory is what that computation adds over its
inputs (VmHWM after a reset), and the published code is killed at ``--limit`` seconds (default 300) and
shown as "> limit"; once it is past the limit at one size the larger sizes are not tried. Published
array code runs under a 16 GiB address-space limit, so an n x n matrix that does not fit fails with
"out of memory" instead of swapping the machine. A side that finishes in under 2 s is run 3 times in its
process and the fastest run kept (both sides alike; not the encode case, whose model load counts).

Inputs are real texts read in place from ``../shared/data`` through bench/run.py's pool (never copied into
the repo): CLINC150 ChatGPT paraphrases first, then Banking77, AG News, TREC, SMS, SST-2... Vectors are
all-MiniLM-L6-v2 embeddings of those texts, made by the "sentence-transformers encode" case at its largest
size and kept under /tmp/versus/ (embedded, untimed, if that case did not run). Cases with a candidate and a
reference (PRDC, MAUVE) take n rows per side: the reference is pool rows [0, n), the candidate rows [n, 2n).

Where the published code cannot finish within the limit at a goal size, agreement is still checked: rows
are independent in self-BLEU and both homogenization scores, so the published per-row value (its own loop
body, on the full data) is computed for 50 seeded random rows and compared with ours row by row; its full
time is then estimated as the per-row time x n, divided by the cores where it runs rows in a pool (Texygen)
(marked "est.").

The published code, as run here:
- ``diversity`` 0.3.1 (Shaib et al. 2024): see bench/versus_lexical.py (its modules loaded from their files
  without spaCy, its rounding disabled; its BLEU homogenization through Hugging Face evaluate's bleu code,
  which ``evaluate.load`` would fetch from the hub).
- self-BLEU: Texygen's ``get_bleu_parallel`` (nltk ``sentence_bleu``, smoothing method 1, a Pool of all cores).
- ``vendi-score`` 0.0.3 (Friedman & Dieng 2023): ``score(samples, k)`` (kernel form: a Python kernel function
  called for every pair), ``score_X`` (feature form: the n x n Gram matrix) and ``score_dual`` (the d x d form).
- ``prdc`` 0.2 (Naeem et al. 2020): ``compute_prdc(real, fake, nearest_k=5)``.
- ``mauve-text`` (Pillutla et al. 2021): ``compute_mauve(p_features, q_features)`` with its defaults (its own
  featurisation needs GPT-2 large from the hub); ours is ``distance/mauve`` as registered.
- ``sentence-transformers``: ``SentenceTransformer(all-MiniLM-L6-v2).encode(texts)`` (batch 32, defaults);
  ours is ``harness.resources.embedder.Embedder`` into an empty cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench_run  # noqa: E402  (the real-text pool, peak-RSS helpers, offline env)

ROOT = bench_run.ROOT
WORK = Path(os.environ.get("VERSUS_DIR", "/tmp/versus"))
TEXT_SIZES = (1_000, 5_000, 10_000, 100_000)
VECTOR_SIZES = (1_000, 10_000, 100_000)
PAIR_SIZES = (1_000, 10_000, 20_000, 50_000)
ENCODE_SIZES = (1_000, 10_000, 100_000)
AS_LIMIT = 16 << 30       # address-space limit of the published array code (bytes)
REPEATS = 3               # runs under REPEAT_BELOW seconds are repeated and the fastest kept
REPEAT_BELOW = 2.0
ROW_CHECKS = 50           # rows checked one by one where the published code is past the limit


def _lexical():
    import versus_lexical

    return versus_lexical


# ----------------------------------------------------------------------------- inputs


def texts(n: int) -> list[str]:
    return bench_run.make_texts(n)[0]


def vectors(n: int, offset: int = 0):
    """Rows [offset, offset + n) of the pool's MiniLM embeddings (float32), from WORK/vectors.npy."""
    import numpy as np

    path = WORK / "vectors.npy"
    if path.is_file():
        X = np.load(path, mmap_mode="r")
        if len(X) >= offset + n:
            return np.array(X[offset:offset + n])
    return np.asarray(_embed_ours(texts(offset + n), WORK / "embed-cache")[offset:], dtype=np.float32)


def _embed_ours(ts, cache_dir: Path, precision: str = "fp32"):
    from harness.resources.embedder import Embedder, resolve_embedder

    return Embedder(resolve_embedder("default", precision=precision), cache_dir=cache_dir, progress=False).embed(ts)


# ----------------------------------------------------------------------------- the two sides of each case
# Each function takes the input and returns (value, extra): extra is a dict kept in the JSON (per-row values
# for the row checks, an interval, vectors written to disk...).


def ours_metric(name: str, **override):
    def run(inp):
        from harness import metrics
        from harness.metrics.base import Context
        from harness.types import Corpus

        spec = metrics.get(name)
        if isinstance(inp, tuple):  # (reference vectors, candidate vectors)
            ref = Context(Corpus("ref", "ref", "text", tuple(map(str, range(len(inp[0]))))), seed=0,
                          embedder=bench_run.FixedEmbedder(inp[0]), role="reference")
            ctx = Context(Corpus("cand", "cand", "text", tuple(map(str, range(len(inp[1]))))), seed=0,
                          embedder=bench_run.FixedEmbedder(inp[1]), reference=ref)
        else:
            ctx = Context(Corpus("bench", "bench", "text", tuple(inp)), seed=0)
        s = spec.fn(ctx, **{**spec.args, **override})
        return s.value, {"ci": list(s.ci) if s.ci else None,
                         "estimator": (s.details or {}).get("estimator")}

    return run


def ours_vendi(X):
    from harness.metrics.direct.semantic import vendi_score

    return vendi_score(X), {}


def theirs_vendi(form: str):
    def run(X):
        import numpy as np
        from vendi_score import vendi

        if form == "kernel":
            # the documented use: a similarity function k(x, y), here the cosine of unit rows
            return vendi.score(list(X), lambda a, b: float(np.dot(a, b))), {}
        if form == "feature":
            return vendi.score_X(X), {}
        return vendi.score_dual(X), {}

    return run


def ours_prdc(pair):
    from harness.metrics.direct.distance import prdc

    real, fake = pair
    p = prdc(real, fake, k=5)
    return p.precision, {"values": [p.precision, p.recall, p.density, p.coverage]}


def theirs_prdc(pair):
    from prdc import compute_prdc

    real, fake = pair
    r = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    return r["precision"], {"values": [r["precision"], r["recall"], r["density"], r["coverage"]]}


def theirs_mauve(pair):
    import mauve

    ref, cand = pair
    return float(mauve.compute_mauve(p_features=ref, q_features=cand, verbose=False).mauve), {}


def ours_encode(ts, precision: str = "fp32"):
    import numpy as np

    from harness.resources.embedder import resolve_embedder

    cache = WORK / f"encode-cache-{os.getpid()}"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        X = np.asarray(_embed_ours(ts, cache, precision), dtype=np.float32)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    out = WORK / f"encode-ours-{precision}-{len(ts)}.npy"
    np.save(out, X)
    ran = resolve_embedder("default", precision=precision).precision
    return float(len(X)), {"vectors": str(out), "precision": ran}


def theirs_encode(ts):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from harness.resources.embedder import resolve_embedder

    model = SentenceTransformer(resolve_embedder("default").location, device="cpu")
    X = np.asarray(model.encode(ts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
    out = WORK / f"encode-theirs-{len(ts)}.npy"
    np.save(out, X)
    return float(len(X)), {"vectors": str(out)}


# per-row checks where the published code is past the limit: (ours rows, theirs rows)(texts, rows) -> values


def _rows_self_bleu_ours(ts, rows):
    from harness.metrics.direct import homogenization as H

    return H.self_bleu_rows([H.tokenize_13a(t) for t in ts])[rows]


def _rows_self_bleu_theirs(ts, rows):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    tok = _lexical().EvaluateBleu().tokenize
    ref = [tok(t) for t in ts]
    return [sentence_bleu(ref[:i] + ref[i + 1:], ref[i], (0.25,) * 4,
                          smoothing_function=SmoothingFunction().method1) for i in rows]


def _rows_hbleu_ours(ts, rows):
    from harness.metrics.direct import homogenization as H

    return H.homogenization_bleu_rows([H.tokenize_13a(t) for t in ts])[rows]


def _rows_hbleu_theirs(ts, rows):
    scorer = _lexical().EvaluateBleu()
    out = []
    for i in rows:  # the body of diversity 0.3.1's loop for row i, before its two divisions
        preds = [x for j, x in enumerate(ts) if j != i]
        out.append(scorer.compute(predictions=preds, references=[[ts[i]] for _ in preds])["bleu"])
    return out


def _rows_rougel_ours(ts, rows):
    from harness.metrics.direct import homogenization as H

    return H.rougel_row_means([H.tokenize_rouge(t) for t in ts], rows)


def _rows_rougel_theirs(ts, rows):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    out = []
    for i in rows:  # the body of diversity 0.3.1's loop for row i, divided by n - 1 as it does
        preds = [x for j, x in enumerate(ts) if j != i]
        out.append(sum(scorer.score(p, ts[i])["rougeL"].fmeasure for p in preds) / (len(ts) - 1))
    return out


def _lex(name):
    return lambda ts: (getattr(_lexical(), name)(ts), {})


CASES = {
    "compression": {
        "metric": "compression ratio (gzip)", "input": "texts", "sizes": TEXT_SIZES,
        "ours": ours_metric("lexical/compression-ratio"), "theirs": _lex("theirs_compression"),
        "theirs_name": "diversity 0.3.1 compression_ratio", "tol": 0.01},
    "ngram-diversity": {
        "metric": "n-gram diversity (n ≤ 4)", "input": "texts", "sizes": TEXT_SIZES,
        "ours": ours_metric("lexical/ngram-diversity"), "theirs": _lex("theirs_ngram_diversity"),
        "theirs_name": "diversity 0.3.1 ngram_diversity_score", "tol": 0.01},
    "homogenization-rougel": {
        "metric": "homogenization ROUGE-L", "input": "texts", "sizes": TEXT_SIZES,
        "ours": ours_metric("lexical/homogenization-rougel"),
        "theirs": lambda ts: (_lexical().theirs_homogenization(ts, "rougel"), {}),
        "rows": (_rows_rougel_ours, _rows_rougel_theirs),
        "theirs_name": "diversity 0.3.1 homogenization_score('rougel')", "tol": 0.01,
        "goal": {"n": 5_000, "speedup": 20}},
    "homogenization-bleu": {
        "metric": "homogenization BLEU", "input": "texts", "sizes": TEXT_SIZES,
        "ours": ours_metric("lexical/homogenization-bleu"),
        "theirs": lambda ts: (_lexical().theirs_homogenization(ts, "bleu"), {}),
        "rows": (_rows_hbleu_ours, _rows_hbleu_theirs),
        "theirs_name": "diversity 0.3.1 homogenization_score('bleu') × (n−1)", "tol": 0.01,
        "goal": {"n": 5_000, "speedup": 20}},
    "self-bleu": {
        "metric": "self-BLEU-4", "input": "texts", "sizes": TEXT_SIZES,
        "ours": ours_metric("lexical/self-bleu"), "theirs": _lex("texygen_self_bleu"),
        "rows": (_rows_self_bleu_ours, _rows_self_bleu_theirs),
        "theirs_name": "nltk sentence_bleu, Texygen get_bleu_parallel", "tol": 0.01, "theirs_parallel": True,
        "goal": {"n": 5_000, "speedup": 20}},
    "vendi-kernel": {
        "metric": "Vendi (cosine)", "input": "vectors", "sizes": VECTOR_SIZES, "ours": ours_vendi,
        "theirs": theirs_vendi("kernel"), "theirs_name": "vendi-score 0.0.3 score(samples, k)", "tol": 1e-4,
        "as_limit": True, "goal": {"n": 10_000, "speedup": 100}},
    "vendi-feature": {
        "metric": "Vendi (cosine)", "input": "vectors", "sizes": VECTOR_SIZES, "ours": ours_vendi,
        "theirs": theirs_vendi("feature"), "theirs_name": "vendi-score 0.0.3 score_X", "tol": 1e-4,
        "as_limit": True, "goal": {"n": 10_000, "speedup": 100}},
    "vendi-dual": {
        "metric": "Vendi (cosine)", "input": "vectors", "sizes": VECTOR_SIZES, "ours": ours_vendi,
        "theirs": theirs_vendi("dual"), "theirs_name": "vendi-score 0.0.3 score_dual", "tol": 1e-4,
        "as_limit": True, "goal": {"n": 100_000, "speedup": 1}},
    "prdc": {
        "metric": "precision/recall/density/coverage (k=5)", "input": "pair", "sizes": PAIR_SIZES,
        "ours": ours_prdc, "theirs": theirs_prdc, "theirs_name": "prdc 0.2 compute_prdc", "tol": 1e-9,
        "as_limit": True, "goal": {"n": 20_000, "speedup": 5, "memory": 10}},
    "mauve": {
        "metric": "MAUVE", "input": "pair", "sizes": PAIR_SIZES[:2],
        "ours": ours_metric("distance/mauve"), "theirs": theirs_mauve,
        "theirs_name": "mauve-text compute_mauve(features), defaults", "tol": None},
    "encode": {
        "metric": "sentence-transformers encode (MiniLM)", "input": "texts", "sizes": ENCODE_SIZES,
        "ours": ours_encode, "theirs": theirs_encode,
        "theirs_name": "SentenceTransformer.encode(batch_size=32)", "tol": 1e-4},
    # issue 22: ours at --precision auto (bf16 on CPUs with AVX512-BF16/AMX, fp32 elsewhere: the row says
    # which it ran at) and forced bf16 (emulated, and slower, on a CPU without those instructions)
    "encode-auto": {
        "metric": "encode at --precision auto", "input": "texts", "sizes": ENCODE_SIZES[:2],
        "ours": lambda ts: ours_encode(ts, "auto"), "theirs": theirs_encode,
        "theirs_name": "SentenceTransformer.encode(batch_size=32), fp32", "tol": 1e-3},
    "encode-bf16": {
        "metric": "encode at --precision bf16", "input": "texts", "sizes": ENCODE_SIZES[:2],
        "ours": lambda ts: ours_encode(ts, "bf16"), "theirs": theirs_encode,
        "theirs_name": "SentenceTransformer.encode(batch_size=32), fp32", "tol": 1e-3},
}
ORDER = ["encode", "encode-auto", "encode-bf16", "compression", "ngram-diversity", "self-bleu", "homogenization-bleu",
         "homogenization-rougel", "vendi-dual", "vendi-feature", "vendi-kernel", "prdc", "mauve"]


def load_input(case: dict, n: int):
    if case["input"] == "texts":
        return texts(n)
    if case["input"] == "vectors":
        return vectors(n)
    return vectors(n, 0), vectors(n, n)  # (reference, candidate)


def _tiny(inp):
    if isinstance(inp, tuple):
        return inp[0][:60], inp[1][:60]
    return inp[:60]


# ----------------------------------------------------------------------------- children


def child_main(key: str, side: str, n: int) -> None:
    os.environ.update(bench_run.ENV)
    case = CASES[key]
    inp = load_input(case, n)
    fn = case[side]
    if key != "encode":
        fn(_tiny(inp))  # imports and first-call costs outside the timing (encode: its model load counts)
    base = bench_run._reset_peak_rss()
    wall = cpu = math.inf
    for _ in range(REPEATS):  # best of REPEATS for sub-second runs (both sides alike): timeit's practice
        t0, c0 = time.perf_counter(), time.process_time()
        value, extra = fn(inp)
        w, c = time.perf_counter() - t0, time.process_time() - c0
        wall, cpu = min(wall, w), min(cpu, c)
        if w >= REPEAT_BELOW or key == "encode":
            break
    print("\n" + json.dumps({"seconds": wall, "cpu": cpu, "value": float(value), "extra": extra,
                             "base_mib": base, "peak_mib": bench_run._hwm_mib()}, default=float), flush=True)


def rows_main(key: str, side: str, n: int) -> None:
    import numpy as np

    os.environ.update(bench_run.ENV)
    ts = texts(n)
    rows = np.sort(np.random.default_rng(0).choice(n, ROW_CHECKS, replace=False))
    fn = CASES[key]["rows"][0 if side == "ours" else 1]
    t0 = time.perf_counter()
    vals = [float(v) for v in fn(ts, rows)]
    print("\n" + json.dumps({"seconds": time.perf_counter() - t0, "rows": rows.tolist(), "values": vals}),
          flush=True)


def _limit_as():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def spawn(args: list[str], limit: float, as_limit: bool = False) -> dict:
    """Run this script with ``args`` in its own process group; the parsed last JSON line, or a reason."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], cwd=ROOT,
                         env={**os.environ, **bench_run.ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, preexec_fn=_limit_as if as_limit else None)
    try:
        out, err = p.communicate(timeout=limit + 120)  # + input loading and imports
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the child and any Pool workers it started
        p.communicate()
        return {"timed_out": True}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}"
        if "MemoryError" in err or "Unable to allocate" in err or "bad_alloc" in err or p.returncode == -9:
            return {"oom": True, "error": tail}
        return {"error": tail}
    r = json.loads(lines[-1])
    if r.get("seconds", 0) > limit:
        return {"timed_out": True, "seconds_seen": r["seconds"]}
    r["wall_with_start"] = time.perf_counter() - t0
    return r


# ----------------------------------------------------------------------------- comparing


def agreement(key: str, ours: dict, theirs: dict):
    """(text, relative difference or None)."""
    import numpy as np

    if key.startswith("encode"):
        A, B = np.load(ours["extra"]["vectors"]), np.load(theirs["extra"]["vectors"])
        cos = np.einsum("ij,ij->i", A, B) / (np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1))
        d = float(np.max(1 - cos))
        if key == "encode":
            return f"max 1 − cos = {d:.1e}", d
        return (f"ran {ours['extra'].get('precision')}: cos mean {float(cos.mean()):.6f}, "
                f"min {float(cos.min()):.6f}"), d
    if key == "prdc":
        a, b = np.array(ours["extra"]["values"]), np.array(theirs["extra"]["values"])
        d = float(np.max(np.abs(a - b)))
        return "P/R/D/C " + "/".join(f"{x:.4f}" for x in a) + (" identical" if d == 0 else f", max diff {d:.1e}"), d
    if key == "mauve":
        ci = ours["extra"].get("ci")
        inside = ci is not None and ci[0] <= theirs["value"] <= ci[1]
        return (f"{ours['value']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] vs {theirs['value']:.4f}"
                + (" (inside)" if inside else " (outside)")), None
    rel = abs(ours["value"] - theirs["value"]) / max(abs(theirs["value"]), 1e-300)
    return f"{ours['value']:.6g} vs {theirs['value']:.6g} (rel. {rel:.1e})", rel


def row_check(key: str, n: int, limit: float) -> dict | None:
    if "rows" not in CASES[key]:
        return None
    ours = spawn(["--_rows", key, "ours", str(n)], limit)
    theirs = spawn(["--_rows", key, "theirs", str(n)], limit * 4)
    if "values" not in ours or "values" not in theirs:
        return {"error": ours.get("error") or theirs.get("error") or "timed out"}
    import numpy as np

    a, b = np.array(ours["values"]), np.array(theirs["values"])
    rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
    return {"rows": len(a), "max_rel": rel, "theirs_row_s": theirs["seconds"] / len(a)}


def theirs_estimate(rec: dict) -> float | None:
    """The published code's estimated full time: its per-row time x n, divided by the cores where it runs
    rows in parallel (Texygen's Pool)."""
    rc = rec.get("row_check") or {}
    if "theirs_row_s" not in rc:
        return None
    procs = (os.cpu_count() or 1) if CASES[rec["case"]].get("theirs_parallel") else 1
    return rc["theirs_row_s"] * rec["n"] / procs


def run_case(key: str, sizes, limit: float, log) -> list[dict]:
    case = CASES[key]
    out = []
    theirs_over = None
    for n in sizes:
        log(f"versus: {key} n={n:,} ours ...")
        ours = spawn(["--_child", key, "ours", str(n)], max(limit, 600))
        rec = {"case": key, "metric": case["metric"], "theirs_name": case["theirs_name"], "n": n, "ours": ours,
               "load": os.getloadavg()[0]}
        if theirs_over is not None:
            rec["theirs"] = {"skipped": f"past the limit at {theirs_over:,}"}
        else:
            log(f"versus: {key} n={n:,} theirs ...")
            rec["theirs"] = spawn(["--_child", key, "theirs", str(n)], limit, case.get("as_limit", False))
            if rec["theirs"].get("timed_out") or rec["theirs"].get("oom"):
                theirs_over = n
        goal = case.get("goal")
        if "value" in ours and "value" in rec["theirs"]:
            rec["agreement"], rec["rel"] = agreement(key, ours, rec["theirs"])
        elif goal and goal["n"] == n and "value" in ours:
            rec["row_check"] = row_check(key, n, limit)
        out.append(rec)
        log("versus:   " + render_row(rec, limit))
    return out


# ----------------------------------------------------------------------------- the table


def _mib(r: dict) -> float | None:
    if "peak_mib" not in r:
        return None
    return max(0.0, r["peak_mib"] - r["base_mib"])


def verdict(rec: dict) -> str:
    case = CASES[rec["case"]]
    goal = case.get("goal")
    if not goal or goal["n"] != rec["n"] or "seconds" not in rec["ours"]:
        return ""
    o, t = rec["ours"], rec["theirs"]
    notes = []
    ok = True
    if "seconds" in t:
        speed = t["seconds"] / o["seconds"]
    elif theirs_estimate(rec) is not None:
        speed = theirs_estimate(rec) / o["seconds"]
    elif t.get("timed_out"):
        speed = math.inf
    else:
        return "MISS (no reference run)"
    ok &= speed >= goal["speedup"] * (0.9 if goal["speedup"] == 1 else 1.0)  # "match": within 10%
    tol = case["tol"]
    if rec.get("rel") is not None:
        ok &= rec["rel"] <= tol
    elif rec.get("row_check") and "max_rel" in rec["row_check"]:
        ok &= rec["row_check"]["max_rel"] <= tol
    else:
        notes.append("value unchecked")
    if goal.get("memory"):
        mo, mt = _mib(o), _mib(t)
        if mo is None or mt is None:
            notes.append("memory unchecked")
        else:
            ok &= mo * goal["memory"] <= mt
    text = f"≥{goal['speedup']}×" if goal["speedup"] > 1 else "match speed"
    if goal.get("memory"):
        text += f", ≤1/{goal['memory']} memory"
    return ("PASS" if ok else "MISS") + f" ({text}" + (", " + ", ".join(notes) if notes else "") + ")"


def _secs(r: dict, limit: float) -> str:
    if "seconds" in r:
        return f"{r['seconds']:.3f}" if r["seconds"] < 10 else f"{r['seconds']:.1f}"
    if r.get("timed_out"):
        return f"> {limit:.0f}"
    if r.get("oom"):
        return f"out of memory (> {AS_LIMIT >> 30} GiB)"
    if r.get("skipped"):
        return f"not run ({r['skipped']})"
    return "error: " + str(r.get("error", "?"))[:60]


def render_row(rec: dict, limit: float) -> str:
    o, t = rec["ours"], rec["theirs"]
    speed = ""
    rc = rec.get("row_check") or {}
    est = theirs_estimate(rec)
    if "seconds" in o and "seconds" in t:
        speed = f"{t['seconds'] / o['seconds']:,.1f}×"
    elif "seconds" in o and est is not None:
        speed = f"~{est / o['seconds']:,.0f}× (est.)"
    elif "seconds" in o and t.get("timed_out"):
        r = limit / o["seconds"]
        speed = f"> {r:,.0f}×" if r >= 10 else f"> {r:.1f}×"
    theirs_s = _secs(t, limit)
    if est is not None:
        theirs_s += f" (est. {est:,.0f})"
    mo, mt = _mib(o), _mib(t)
    mem = f"{mo:,.0f}" if mo is not None else "–"
    mem += f" / {mt:,.0f}" if mt is not None else " / –"
    agree = rec.get("agreement", "")
    if not agree and "max_rel" in rc:
        agree = f"{rc['rows']} rows vs its loop body: max rel. {rc['max_rel']:.1e}"
    elif not agree and rc.get("error"):
        agree = f"row check failed: {rc['error']}"
    elif not agree and "value" in o and rec["case"] != "encode":
        ci = o["extra"].get("ci") if isinstance(o.get("extra"), dict) else None
        agree = f"ours {o['value']:.6g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
        if o["extra"].get("estimator") not in (None, "exact"):
            agree += f" ({o['extra']['estimator']})"
    return (f"| {rec['metric']} | {rec['theirs_name']} | {rec['n']:,} | {_secs(o, limit)} | {theirs_s} | "
            f"{speed} | {mem} | {agree} | {verdict(rec)} |")


HEADER = ("| metric | published code | n | ours s | theirs s | speed-up | peak MiB ours / theirs | agreement | goal |\n"
          "|---|---|---:|---:|---:|---:|---:|---|---|")


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="", help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds for the published code (default 300)")
    ap.add_argument("--max-n", type=int, default=None, help="skip sizes above this")
    ap.add_argument("--out", type=Path, default=None, help="folder for versus.json and versus.md")
    ap.add_argument("--readme", type=Path, default=None,
                    help="also replace the table between <!-- versus:begin/end --> in this file (bench/README.md)")
    ap.add_argument("--render", type=Path, default=None, help="print the table of a saved versus.json again")
    ap.add_argument("--merge", type=Path, default=None,
                    help="a previous versus.json: the cases run now replace its rows for those cases, the "
                         "other rows are kept, and the table says which cases were re-measured")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--_rows", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._child:
        child_main(a._child[0], a._child[1], int(a._child[2]))
        return 0
    if a._rows:
        rows_main(a._rows[0], a._rows[1], int(a._rows[2]))
        return 0
    if a.render:
        saved = json.loads(a.render.read_text(encoding="utf-8"))
        print("\n".join(([saved["header"], ""] if saved.get("header") else []) + [HEADER]
                        + [render_row(r, saved["limit_s"]) for r in saved["results"]]))
        return 0
    keys = [k for k in ORDER if not a.cases or k in a.cases.split(",")]
    unknown = set(a.cases.split(",")) - set(ORDER) if a.cases else set()
    if unknown:
        raise SystemExit(f"versus: unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(ORDER)}")
    WORK.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    results = []
    t0 = time.perf_counter()
    if "encode" in keys:
        results.extend(run_case("encode", [n for n in ENCODE_SIZES if a.max_n is None or n <= a.max_n],
                                a.limit, log))
    big = max(max(VECTOR_SIZES), 2 * max(PAIR_SIZES))
    if a.max_n:
        big = min(big, 2 * a.max_n)
    made = WORK / f"encode-ours-fp32-{max(ENCODE_SIZES)}.npy"
    if not (WORK / "vectors.npy").is_file() and made.is_file() and max(ENCODE_SIZES) >= big:
        shutil.copyfile(made, WORK / "vectors.npy")  # the encode case's own vectors of texts(100k)
    if any(CASES[k]["input"] != "texts" for k in keys) and not (WORK / "vectors.npy").is_file():
        log(f"versus: embedding {big:,} pool texts for the vector cases (untimed, cached under {WORK})")
        import numpy as np

        os.environ.update(bench_run.ENV)
        X = np.asarray(_embed_ours(texts(big), WORK / "embed-cache"), dtype=np.float32)
        np.save(WORK / "vectors.npy", X)
    for k in keys:
        if k == "encode":
            continue
        sizes = [n for n in CASES[k]["sizes"] if a.max_n is None or n <= a.max_n]
        results.extend(run_case(k, sizes, a.limit, log))
    header = (f"Machine: {machine()}; published code stopped at {a.limit:.0f} s; "
              f"load average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:,.0f} s in all.")
    if a.merge:
        old = json.loads(a.merge.read_text(encoding="utf-8"))
        rank = {k: i for i, k in enumerate(ORDER)}
        results = sorted([r for r in old["results"] if r["case"] not in keys] + results,
                         key=lambda r: (rank.get(r["case"], len(ORDER)), r["n"]))
        old_header = old.get("header") or f"Machine: {old.get('machine', '?')}; published code stopped at " \
                                            f"{old.get('limit_s', a.limit):.0f} s."
        header = (f"{old_header} Re-measured afterwards, on their own: {', '.join(keys)} (best of "
                  f"{REPEATS} runs where one takes under {REPEAT_BELOW:.0f} s; load average "
                  f"{os.getloadavg()[0]:.1f} at the end, {time.perf_counter() - t0:,.0f} s).")
    table = "\n".join([header, "", HEADER] + [render_row(r, a.limit) for r in results])
    print(table)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "versus.md").write_text(table + "\n", encoding="utf-8")
        tmp = a.out / "versus.json.tmp"  # written whole, then renamed: a merge source is never half-written
        tmp.write_text(json.dumps({"machine": machine(), "limit_s": a.limit, "header": header,
                                   "results": results}, indent=1, default=float), encoding="utf-8")
        tmp.replace(a.out / "versus.json")
    if a.readme and not bench_run.update_readme(a.readme, "versus", table):
        log(f"versus: {a.readme} has no <!-- versus:begin --> / <!-- versus:end --> markers; not updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
