"""Fine-tuning throughput and lm-eval time per task for the LM-utility path (``synthbench lm-utility``).

    .venv/bin/python bench/lm_finetune.py [--budget 3000] [--modes lora,full] [--eval-rows 40] [--markdown]

Fine-tunes the default causal LM (SmolLM2-135M-Instruct, ``harness.resources.causal_lm.resolve_lm``) on real
Alpaca-GPT-4 rows from ../shared/data at a small token budget, into an empty checkpoint cache (so it
really trains), and reports supervised (response) tokens per second and input tokens per second. Then it
times lm-eval (``harness.resources.lmeval.evaluate``, its results cache off) on each task alone: rolling
log-likelihood over held-out human responses (Self-Instruct user-oriented) and 4-way multiple choice
over AG News articles. Prints one table; ``--out DIR`` also writes ``lm_finetune.json``.
Runs on a GPU too (the device is chosen by torch); the table names the device and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SYNTHBENCH_DATA", ROOT.parent / "shared" / "data"))


def _rows(path: Path, n: int) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
        if len(out) >= n:
            break
    return out


def bench_finetune(lm, mode: str, budget: int, threads: int | None, cache: Path) -> dict:
    from harness.resources import causal_ft as ft

    rows = [r for r in _rows(DATA / "alpaca_gpt4_sample_999" / "alpaca_gpt4_sample.jsonl", 400) if r.get("output")]
    data = ft.TrainSet.instructions([r["instruction"] for r in rows], [r.get("input", "") for r in rows],
                                    [r["output"] for r in rows], name="alpaca-gpt4")
    recipe = ft.FTRecipe(mode=mode, token_budget=budget, batch_size=8, max_length=512)
    t0 = time.perf_counter()
    ck = ft.finetune(lm, data, recipe, seed=0, cache_dir=cache / mode, threads=threads, progress=False)
    wall = time.perf_counter() - t0
    m = ck.meta
    secs = m.get("seconds") or wall
    return {"what": f"fine-tune ({mode})", "device": m.get("device"), "steps": m.get("steps"),
            "tokens_trained": m.get("tokens_trained"), "tokens_input": m.get("tokens_input"),
            "train_s": round(secs, 1), "wall_s": round(wall, 1),
            "supervised_tok_s": round(m.get("tokens_trained", 0) / secs, 1),
            "input_tok_s": round((m.get("tokens_input") or 0) / secs, 1)}


def bench_eval(lm, eval_rows: int, threads: int | None) -> list[dict]:
    from harness.resources import lmeval

    tasks = [lmeval.perplexity_task("self-instruct-user", DATA / "self_instruct_user_oriented_252" / "human_reference.jsonl",
                                    limit_rows=eval_rows),
             lmeval.mc_task("ag-news-mc", DATA / "ag_news_real" / "test.jsonl", limit_rows=eval_rows)]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in tasks:
            folder = lmeval.write_tasks([spec], Path(tmp) / spec.name)
            t0 = time.perf_counter()
            res = lmeval.evaluate({"pretrained": lm.location}, [spec], folder, model_key=lm.identity,
                                  batch_size=8, threads=threads, use_cache=False)
            secs = time.perf_counter() - t0
            r = res[spec.label]
            out.append({"what": f"lm-eval {spec.kind}: {spec.label}", "docs": len(spec), "eval_s": round(secs, 1),
                        "docs_s": round(len(spec) / secs, 2),
                        "metrics": {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in r.metrics.items()}})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=3000, help="supervised tokens per fine-tuning run")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--eval-rows", type=int, default=40)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(k, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from harness.resources.causal_lm import resolve_lm

    lm = resolve_lm("default")
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for mode in args.modes.split(","):
            rows.append(bench_finetune(lm, mode.strip(), args.budget, args.threads, Path(cache)))
    evals = bench_eval(lm, args.eval_rows, args.threads)
    load_after = os.getloadavg()
    print(f"model {lm.identity}; {os.cpu_count()} cores; load average {load[0]:.1f} before, {load_after[0]:.1f} after")
    print("| what | device | steps | supervised tokens | input tokens | train s | supervised tok/s | input tok/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['device']} | {r['steps']} | {r['tokens_trained']:,} | {r['tokens_input'] or 0:,} | "
              f"{r['train_s']} | {r['supervised_tok_s']} | {r['input_tok_s']} |")
    print()
    print("| lm-eval task | docs | seconds | docs/s |")
    print("|---|---:|---:|---:|")
    for e in evals:
        print(f"| {e['what']} | {e['docs']} | {e['eval_s']} | {e['docs_s']} |")
    if args.out:
        from harness.resources.cache import atomic_write_text

        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out) / "lm_finetune.json",
                          json.dumps({"finetune": rows, "eval": evals, "load": [load, load_after]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
