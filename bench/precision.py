"""Compute precision (issue 22): bf16 against fp32, agreement and speed, in one run.

    .venv/bin/python bench/precision.py                       # every part, default sizes; prints the tables
    .venv/bin/python bench/precision.py --parts cosine,metrics --n 2000 --out bench/out
    .venv/bin/python bench/precision.py --parts lm,lora,e2e --n 1000   # the speed rows

Parts:
- ``cosine``: per-text cosine between the bf16 and the fp32 all-MiniLM-L6-v2 vector of the same text, on
  three real corpora (CLINC150 ChatGPT paraphrases, Banking77 train, AG News test; ``--n`` texts each, read
  in place from ../shared/data), with the time of each precision into an empty cache.
- ``metrics``: every embedding-based default metric (MAUVE, Fréchet, MMD, PRDC, C2ST, Vendi, chamfer,
  cluster metrics, the MiniLM utility accuracies ...) on CLINC150 (ChatGPT and crowd paraphrases against
  the original training rows, the original test split; ``--sample`` rows each) at fp32 and at bf16: the
  bf16 value's distance from the fp32 value in units of the fp32 interval's half-width. A metric whose
  bf16 value leaves the fp32 interval is listed.
- ``lm``: perplexity scoring of ``--n`` real texts (SmolLM2-135M) at auto and fp32.
- ``lora``: LoRA fine-tuning of SmolLM2-135M (the lm-utility recipe) to ``--lora-budget`` supervised tokens of
  the real Alpaca-GPT-4 rows, at fp32 and at auto, into empty checkpoint caches.
- ``e2e``: the cold CLINC150 suite (suites/intent_clinc150.yaml, empty cache) at ``--precision auto`` and
  ``--precision fp32``, each in its own process: wall time and peak resident memory.

``auto`` is bf16 only on a CPU with AVX512-BF16/AMX (or a GPU); elsewhere it is fp32 and the auto rows
equal the fp32 rows. bf16 forced on a CPU without those instructions is emulated by oneDNN: its *values*
are those of native bf16 (bf16 inputs, fp32 accumulation), its *times* are not, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench_run  # noqa: E402

ROOT = bench_run.ROOT
DATA = bench_run.DATA
CORPORA = {
    "CLINC150 ChatGPT": "intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl",
    "Banking77 train": "banking77_real/train.jsonl",
    "AG News test": "ag_news_real/test.jsonl",
}
CLINC = DATA / "intent_paraphrases_chatgpt_vs_crowd" / "clinc150"


def _texts(rel: str, n: int) -> list[str]:
    out = []
    with open(DATA / rel, encoding="utf-8") as f:
        for line in f:
            t = (json.loads(line).get("text") or "").strip()
            if t:
                out.append(t)
            if len(out) >= n:
                break
    return out


def machine() -> str:
    from harness.resources import precision as P

    native = "with" if P.cpu_has_bf16() else "without"
    return f"{os.cpu_count()} cores, {native} AVX512-BF16/AMX; auto = {P.resolve('auto', 'cpu').precision}"


def part_cosine(n: int, log) -> list[str]:
    import numpy as np

    from harness.resources import precision as P
    from harness.resources.embedder import Embedder, resolve_embedder

    emulated = "" if P.cpu_has_bf16() else " (emulated)"
    rows = ["| corpus | texts | fp32 s | bf16 s | bf16 / fp32 time | cosine mean | cosine min |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, rel in CORPORA.items():
        ts = _texts(rel, n)
        vec, secs = {}, {}
        for p in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as d:
                e = Embedder(resolve_embedder("default", precision=p), cache_dir=Path(d), progress=False)
                e.model()
                t0 = time.perf_counter()
                vec[p] = e.embed(ts)
                secs[p] = time.perf_counter() - t0
        cos = np.einsum("ij,ij->i", vec["fp32"], vec["bf16"])
        log(f"cosine {name}: mean {cos.mean():.6f} min {cos.min():.6f}")
        rows.append(f"| {name} | {len(ts):,} | {secs['fp32']:.1f} | {secs['bf16']:.1f}{emulated} | "
                    f"{secs['bf16'] / secs['fp32']:.2f} | {cos.mean():.6f} | {cos.min():.6f} |")
    return rows


def part_metrics(sample: int, log) -> list[str]:
    from harness.api import evaluate

    runs = {}
    for p in ("fp32", "bf16"):
        t0 = time.perf_counter()
        runs[p] = evaluate({"gpt": str(CLINC / "gpt.jsonl"), "crowd": str(CLINC / "human.jsonl")},
                           reference=str(CLINC / "orig_train.jsonl"), test=str(CLINC / "orig_test.jsonl"),
                           sample_size=sample, precision=p, log=lambda m: None)
        log(f"metrics at {p}: {time.perf_counter() - t0:.0f} s")
    base = {(r.dataset, r.metric): r for r in runs["fp32"].results}
    rows = ["| metric | dataset | fp32 [95% interval] | bf16 | change / half-width | relative change | within |",
            "|---|---|---|---:|---:|---:|:---:|"]
    outside, unbounded = [], []
    for r in runs["bf16"].results:
        b = base.get((r.dataset, r.metric))
        if b is None or not (r.signature.embedder or "").endswith("@bf16"):
            continue  # not embedding-based: bf16 cannot move it
        if b.value is None or r.value is None:
            continue
        d = r.value - b.value
        ci = b.ci
        half = (ci[1] - ci[0]) / 2 if ci else None
        rel = f"{d / abs(b.value):+.2%}" if b.value else ("0" if d == 0 else "–")
        if ci is None:  # no interval to hold it against: its relative change is the agreement, listed
            if d != 0:
                unbounded.append(f"{r.metric} ({r.dataset}, {rel})")
            rows.append(f"| {r.metric} | {r.dataset} | {b.value:.6g} (no interval) | {r.value:.6g} | – | {rel} | – |")
            continue
        within = ci[0] <= r.value <= ci[1]
        if not within:
            outside.append(f"{r.metric} ({r.dataset})")
        ratio = f"{abs(d) / half:.3f}" if half else ("0" if d == 0 else "∞")
        rows.append(f"| {r.metric} | {r.dataset} | {b.value:.6g} [{ci[0]:.4g}, {ci[1]:.4g}] | {r.value:.6g} | {ratio} | "
                    f"{rel} | {'yes' if within else '**no**'} |")
    rows.append("")
    rows.append("Outside the fp32 interval: " + (", ".join(outside) if outside else "none."))
    rows.append("Without an interval (moved by): " + (", ".join(unbounded) if unbounded else "none."))
    return rows


def part_lm(n: int, log) -> list[str]:
    from harness.resources.causal_lm import resolve_lm
    from harness.resources.perplexity import PerplexityScorer

    ts = _texts(CORPORA["AG News test"], n)
    rows = ["| scorer | precision ran | texts | seconds | mean NLL/token |", "|---|---|---:|---:|---:|"]
    for p in ("fp32", "auto", "bf16"):
        spec = resolve_lm("default", precision=p)
        with tempfile.TemporaryDirectory() as d:
            s = PerplexityScorer(spec, cache_dir=Path(d), progress=False)
            s.load()
            t0 = time.perf_counter()
            nll = s.score(ts)
            secs = time.perf_counter() - t0
        mean = float(nll.nll.sum() / max(1, nll.tokens.sum()))
        rows.append(f"| SmolLM2-135M `{p}` | {spec.precision} | {len(ts):,} | {secs:.1f} | {mean:.4f} |")
        log(f"lm {p}: {secs:.1f} s")
    return rows


def part_lora(budget: int, log) -> list[str]:
    """LoRA fine-tuning of the default causal LM (the lm-utility recipe) to ``budget`` supervised tokens of the
    real Alpaca-GPT-4 rows, at fp32 and at auto, each into an empty checkpoint cache (so it really trains)."""
    import lm_finetune as bench_ft

    from harness.resources import causal_ft as ft
    from harness.resources.causal_lm import resolve_lm

    rows = ["| run | precision ran | supervised tokens | train s | tokens/s | final loss |",
            "|---|---|---:|---:|---:|---:|"]
    for p in ("fp32", "auto"):
        lm = resolve_lm("default", precision=p)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            ck = ft.finetune(lm, bench_ft._train_set(), ft.FTRecipe(mode="lora", token_budget=budget), seed=0,
                             cache_dir=Path(d), progress=False)
            wall = time.perf_counter() - t0
        m = ck.meta
        secs = m.get("seconds") or wall
        loss = (m.get("loss_curve") or [[None, None]])[-1][1]
        rows.append(f"| LoRA, SmolLM2-135M `{p}` | {lm.precision} | {m.get('tokens_trained', 0):,} | {secs:.1f} | "
                    f"{m.get('tokens_trained', 0) / secs:.0f} | {loss:.4f} |")
        log(f"lora {p}: {secs:.1f} s")
    return rows


def part_e2e(log) -> list[str]:
    rows = ["| run | precision | wall s | peak RSS (GiB) |", "|---|---|---:|---:|"]
    for p in ("auto", "fp32"):
        with tempfile.TemporaryDirectory() as d:
            env = {**os.environ, **bench_run.ENV, "SYNTHBENCH_CACHE": str(Path(d) / "cache")}
            cmd = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "suites" / "intent_clinc150.yaml"),
                   "--out", str(Path(d) / "out"), "--precision", p, "--no-progress"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            secs = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            ran = json.loads((Path(d) / "out" / "run.json").read_text())["precision"]["embedder"]["precision"]
        note = "" if peak > before else " (≤ an earlier child's)"
        rows.append(f"| CLINC150 suite, cold | `{p}` → {ran} | {secs:.0f} | {peak / 2**20:.2f}{note} |")
        log(f"e2e {p}: {secs:.0f} s")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="cosine,metrics,lm,lora,e2e")
    ap.add_argument("--lora-budget", type=int, default=3000, help="supervised tokens of the LoRA rows")
    ap.add_argument("--n", type=int, default=3000, help="texts per corpus (cosine) and scored texts (lm)")
    ap.add_argument("--sample", type=int, default=1000, help="rows per dataset in the metrics part")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    os.environ.update(bench_run.ENV)

    def log(m):
        print(m, file=sys.stderr, flush=True)

    parts = a.parts.split(",")
    t0 = time.perf_counter()
    out = [f"Machine: {machine()}."]
    if "cosine" in parts:
        out += ["", "**bf16 against fp32 vectors** (all-MiniLM-L6-v2, empty cache):", ""] + part_cosine(a.n, log)
    if "metrics" in parts:
        out += ["", f"**Embedding-based metrics at bf16 against fp32** (CLINC150, {a.sample:,} rows each):", ""] \
            + part_metrics(a.sample, log)
    if "lm" in parts:
        out += ["", "**Perplexity scoring**:", ""] + part_lm(a.n, log)
    if "lora" in parts:
        out += ["", f"**LoRA fine-tuning** ({a.lora_budget:,} supervised tokens, empty checkpoint cache):", ""] \
            + part_lora(a.lora_budget, log)
    if "e2e" in parts:
        out += ["", "**End to end**:", ""] + part_e2e(log)
    out += ["", f"Load average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:,.0f} s in all."]
    text = "\n".join(out)
    print(text)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "precision.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
