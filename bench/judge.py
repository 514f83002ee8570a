"""Throughput of the local LLM judge (transformers serve + SmolLM2-135M-Instruct, CPU) on this machine.

Prints a table (it is not a test). For each server thread count, one ``transformers serve`` process is
started (its start-up time is measured) and judged through ``harness.resources.judge_client.Judge`` at each
client concurrency, every configuration into an empty judgment cache (so every row is a request), then
once more from the cache. Rows are real, read in place from ``../shared/data``:

    label        CLINC150 test utterances with their true intent (rubric label_correctness; ~65 prompt tokens)
    instruction  Alpaca (GPT-4) rows, fields cut to 600 characters (rubric instruction_following; ~250)

    .venv/bin/python bench/judge.py                          # both workloads, concurrency 1 and 2, 1 thread
    .venv/bin/python bench/judge.py --quick                  # label rows only, fewer rows
    .venv/bin/python bench/judge.py --threads 1,2 --out bench/out/

The machine is shared: the load average before and after each configuration is printed beside it
("load"), and "server cpu-s" is the CPU time the server process used (``psutil``), so a slow row can be
told apart from a busy machine.
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
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "TOKENIZERS_PARALLELISM": "false"})


def _rows(path: Path, n: int) -> list[dict]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    step = max(1, len(out) // n)
    return out[::step][:n]  # spread over the file (it is ordered by label)


def workload(name: str, n: int):
    """(rubric, list of chat requests) for the workload."""
    from harness.metrics.direct.judge import _field, load_rubric

    if name == "label":
        rub = load_rubric("label_correctness")
        rows = _rows(DATA / "intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_test.jsonl", n)
        return rub, [rub.messages(text=_field(r["text"], 600), label=r["label"]) for r in rows]
    rub = load_rubric("instruction_following")
    rows = _rows(DATA / "alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl", n)
    return rub, [rub.messages(instruction=_field(r["instruction"], 600), input=_field(r["input"], 600),
                              output=_field(r["output"], 600)) for r in rows]


def server_cpu(proc) -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        p = psutil.Process(proc.pid)
        procs = [p] + p.children(recursive=True)
        return sum(q.cpu_times().user + q.cpu_times().system for q in procs)
    except psutil.Error:
        return None


def run(workloads, n: int, concurrencies, threads_list) -> list[dict]:
    from harness.resources.causal_lm import resolve_lm
    from harness.resources.judge_client import Judge, LocalServer, resolve_judge

    location = resolve_lm("default").location
    rows = []
    for threads in threads_list:
        load0 = os.getloadavg()[0]
        with LocalServer(location, threads=threads) as srv:
            started = srv.started_in
            for wl in workloads:
                rub, reqs = workload(wl, n)
                for conc in concurrencies:
                    spec = resolve_judge(srv.base_url, model=location, concurrency=conc, retries=0, timeout=300)
                    with tempfile.TemporaryDirectory() as cache:
                        judge = Judge(spec, cache_dir=Path(cache))
                        la, cpu0, t0 = os.getloadavg()[0], server_cpu(srv.proc), time.perf_counter()
                        answers = judge.complete(reqs, max_tokens=rub.max_tokens, stop=list(rub.stop))
                        wall = time.perf_counter() - t0
                        cpu1, lb = server_cpu(srv.proc), os.getloadavg()[0]
                        t1 = time.perf_counter()
                        again = Judge(spec, cache_dir=Path(cache)).complete(reqs, max_tokens=rub.max_tokens,
                                                                              stop=list(rub.stop))
                        cached = time.perf_counter() - t1
                        judge.close()
                    assert [a.content for a in again] == [a.content for a in answers]
                    pt = sum(a.prompt_tokens or 0 for a in answers)
                    ct = sum(a.completion_tokens or 0 for a in answers)
                    parsed = sum(rub.parse(a.content) is not None for a in answers)
                    rows.append({"workload": wl, "rows": len(reqs), "server_threads": threads, "concurrency": conc,
                                 "start_s": round(started, 1), "wall_s": round(wall, 2),
                                 "rows_per_s": round(len(reqs) / wall, 2),
                                 "prompt_tokens_per_row": round(pt / len(reqs), 1),
                                 "prompt_tok_per_s": round(pt / wall, 1), "completion_tok_per_s": round(ct / wall, 2),
                                 "server_cpu_s": round(cpu1 - cpu0, 1) if cpu0 is not None and cpu1 is not None
                                 else None,
                                 "parsed": parsed, "cached_rows_per_s": round(len(reqs) / cached),
                                 "load": f"{la:.1f}→{lb:.1f}"})
                    print(_line(rows[-1]), flush=True)
        print(f"(server with {threads} thread(s): load average {load0:.1f} before it started)", flush=True)
    return rows


COLS = [("workload", "workload"), ("rows", "rows"), ("server_threads", "threads"), ("concurrency", "concurrency"),
        ("start_s", "server start s"), ("wall_s", "wall s"), ("rows_per_s", "rows/s"),
        ("prompt_tokens_per_row", "prompt tok/row"), ("prompt_tok_per_s", "prompt tok/s"),
        ("completion_tok_per_s", "completion tok/s"), ("server_cpu_s", "server cpu-s"), ("parsed", "parsed"),
        ("cached_rows_per_s", "cached rows/s"), ("load", "load")]


def _line(r: dict) -> str:
    return "| " + " | ".join(str(r[k]) if r[k] is not None else "–" for k, _ in COLS) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=32, help="rows per configuration (default 32)")
    p.add_argument("--workloads", default="label,instruction")
    p.add_argument("--concurrency", default="1,2", help="client concurrencies (default 1,2)")
    p.add_argument("--threads", default="1", help="server CPU threads to compare (default 1)")
    p.add_argument("--quick", action="store_true", help="label rows only, n = 16")
    p.add_argument("--out", help="folder to write judge.json into")
    a = p.parse_args(argv)
    workloads = ["label"] if a.quick else [w.strip() for w in a.workloads.split(",") if w.strip()]
    n = 16 if a.quick else a.n
    print(f"local judge throughput, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print("| " + " | ".join(h for _, h in COLS) + " |")
    print("|" + "---|" * len(COLS))
    rows = run(workloads, n, [int(x) for x in a.concurrency.split(",")], [int(x) for x in a.threads.split(",")])
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "judge.json").write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
