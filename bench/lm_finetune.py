"""Fine-tuning throughput and peak memory, and lm-eval time per task, for the LM-utility path (``synthbench lm-utility``).

    .venv/bin/python bench/lm_finetune.py [--budgets 8000,100000] [--modes lora,full] [--max-memory 4G]
                                          [--eval-rows 40] [--no-eval] [--out DIR]

Fine-tunes the default causal LM (SmolLM2-135M-Instruct, ``harness.resources.causal_lm.resolve_lm``) on the
999 real Alpaca-GPT-4 rows of ../shared/data with the CLI's default recipe (batches of 16 rows, 512 tokens),
at each token budget and mode, each run in a fresh process into an empty checkpoint cache (so it really
trains), and reports supervised (response) and input tokens per second and the *peak resident memory of
that process and its children* (sampled every 0.5 s, and ``ru_maxrss``, whichever is higher): with the
memory plan of issue 25 the peak must not grow with the budget. Then it times lm-eval
(``harness.resources.lmeval.evaluate``, its results cache off) on each task alone: rolling log-likelihood
over held-out human responses (Self-Instruct user-oriented) and 4-way multiple choice over AG News
articles. Prints the tables; ``--out DIR`` also writes ``lm_finetune.json``.
Runs on a GPU too (the device is chosen by torch; the peak is then host memory); the table names the
device and the load average.
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


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (psutil, else /proc)."""
    try:
        import psutil

        root = psutil.Process(pid)
        total = 0
        for q in [root, *root.children(recursive=True)]:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")
        kids: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d.name))
        total, todo = 0, [pid]
        while todo:
            p = todo.pop()
            todo += kids.get(p, [])
            try:
                total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):
                pass
        return total
    except Exception:  # noqa: BLE001  (the process has ended)
        return 0


def peak_rss_of(cmd: list[str], every_s: float = 0.5) -> tuple[int, int, str]:
    """(return code, peak resident bytes of the process tree, its stdout) of ``cmd``, sampled every ``every_s``."""
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(every_s)
    out = proc.stdout.read()
    proc.wait()
    return proc.returncode, peak, out


def _train_set():
    from harness.resources import causal_ft as ft

    rows = [r for r in _rows(DATA / "alpaca_gpt4_sample_999" / "alpaca_gpt4_sample.jsonl", 10**9) if r.get("output")]
    return ft.TrainSet.instructions([r["instruction"] for r in rows], [r.get("input", "") for r in rows],
                                    [r["output"] for r in rows], name="alpaca-gpt4")


def worker(mode: str, budget: int, threads: int | None, max_memory: str, cache: str) -> None:
    """One fine-tuning run (in its own process); prints its record as JSON, with the kernel's high-water mark
    of its resident memory (``ru_maxrss``, which catches a peak between two samples)."""
    import resource

    from harness.resources import causal_ft as ft
    from harness.resources.causal_lm import resolve_lm

    lm = resolve_lm("default")
    recipe = ft.FTRecipe(mode=mode, token_budget=budget)  # the CLI's defaults: 16 rows, 512 tokens
    t0 = time.perf_counter()
    ck = ft.finetune(lm, _train_set(), recipe, seed=0, cache_dir=Path(cache), threads=threads, progress=False,
                     max_memory=max_memory)
    wall = time.perf_counter() - t0
    m = ck.meta
    secs = m.get("seconds") or wall
    print(json.dumps({"what": f"fine-tune ({mode})", "mode": mode, "budget": budget, "device": m.get("device"),
                      "steps": m.get("steps"), "tokens_trained": m.get("tokens_trained"),
                      "tokens_input": m.get("tokens_input"), "train_s": round(secs, 1), "wall_s": round(wall, 1),
                      "supervised_tok_s": round(m.get("tokens_trained", 0) / secs, 1),
                      "input_tok_s": round((m.get("tokens_input") or 0) / secs, 1), "memory": m.get("memory"),
                      "final_loss": (m.get("loss_curve") or [[None, None]])[-1][1],
                      "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def bench_finetune(mode: str, budget: int, threads: int | None, max_memory: str, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--budgets", str(budget), "--max-memory", max_memory,
           "--cache", str(cache / f"{mode}-{budget}")] + (["--threads", str(threads)] if threads else [])
    rc, peak, out = peak_rss_of(cmd)
    if rc != 0:
        raise SystemExit(f"fine-tuning {mode} at {budget} failed (exit {rc})")
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_rss_gib"] = round(max(peak, row.pop("ru_maxrss")) / 2**30, 2)
    return row


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
    ap.add_argument("--budgets", default="8000,100000", help="supervised tokens per fine-tuning run (comma list)")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--max-memory", default="4G", help="the fine-tuning memory budget (as synthbench lm-utility)")
    ap.add_argument("--eval-rows", type=int, default=40)
    ap.add_argument("--no-eval", action="store_true", help="fine-tuning only")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", metavar="MODE", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(k, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        worker(args.worker, int(args.budgets), args.threads, args.max_memory, args.cache)
        return 0
    from harness.resources.causal_lm import resolve_lm

    lm = resolve_lm("default")  # converted once here, not in every worker
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for mode in args.modes.split(","):
            for budget in args.budgets.split(","):
                rows.append(bench_finetune(mode.strip(), int(budget), args.threads, args.max_memory, Path(cache)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    evals = [] if args.no_eval else bench_eval(lm, args.eval_rows, args.threads)
    load_after = os.getloadavg()
    print(f"model {lm.identity}; {os.cpu_count()} cores; load average {load[0]:.1f} before, {load_after[0]:.1f} after; "
          f"--max-memory {args.max_memory}")
    print("| what | budget | device | steps | supervised tokens | input tokens | train s | supervised tok/s | "
          "input tok/s | peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['budget']:,} | {r['device']} | {r['steps']} | {r['tokens_trained']:,} | "
              f"{r['tokens_input'] or 0:,} | {r['train_s']} | {r['supervised_tok_s']} | {r['input_tok_s']} | "
              f"{r['peak_rss_gib']} GiB |")
    if evals:
        print()
        print("| lm-eval task | docs | seconds | docs/s |")
        print("|---|---:|---:|---:|")
        for e in evals:
            print(f"| {e['what']} | {e['docs']} | {e['eval_s']} | {e['docs_s']} |")
    if args.out:
        from harness.resources.cache import atomic_write_text

        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out) / "lm_finetune.json",
                          json.dumps({"finetune": rows, "eval": evals, "load": [load, load_after],
                                      "max_memory": args.max_memory}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
