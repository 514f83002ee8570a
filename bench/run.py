"""Throughput and peak-memory benchmark for synthbench's text metrics and the embedder.

Prints a table (it is not a test). Each block (lexical+length metrics, duplicates, embedding) runs
for each size in its own subprocess, so the peak RSS reported is that block's alone.

    .venv/bin/python bench/run.py                        # n = 10k and 100k (embedding too)
    .venv/bin/python bench/run.py --quick                # n = 2000 only
    .venv/bin/python bench/run.py --sizes 10000 --embed-sizes 10000 --out bench/out/

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

BLOCKS = ("lexical", "dup", "embed")
GOAL_COLD_PER_S = 400.0
GOAL_SPEEDUP = 50.0

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# ----------------------------------------------------------------------------- inputs

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


def iter_pool(files: list[Path]):
    """Non-empty ``text`` values of every file, in file order then line order."""
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    t = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(t, str) and t.strip():
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
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


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
    from harness.core import Corpus
    from harness.metrics.base import Context

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
    from harness.core import Corpus
    from harness.metrics.base import Context

    ctx = Context(Corpus(name="bench", source="bench", kind="text", texts=tuple(texts)), seed=0)
    return {"rows": _run_metrics(ctx, [metrics.get("dup/exact-rate"), metrics.get("dup/near-rate")])}


def worker_embed(texts):
    import numpy as np
    import torch

    from harness.backends.embed import Embedder, resolve_embedder

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


WORKERS = {"lexical": worker_lexical, "dup": worker_dup, "embed": worker_embed}


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
            names += [row["metric"] for row in r["rows"] if row["metric"] not in names]
        for name in names:
            for r in res:
                for row in r["rows"]:
                    if row["metric"] != name:
                        continue
                    rate = None if row.get("no_rate") else r["n"] / row["seconds"] if row["seconds"] else None
                    out.append([block, name, str(r["n"]), _num(row["seconds"], ".3f"), _num(row["cpu"], ".2f"),
                                _num(rate, ",.0f"), "", "", "", row["value"]])
        for r in res:
            timed = [row for row in r["rows"] if row["seconds"] == row["seconds"]]
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
    ap.add_argument("--quick", action="store_true", help="n = 2000 only, for every block")
    ap.add_argument("--blocks", default=",".join(BLOCKS), help=f"subset of {','.join(BLOCKS)}")
    ap.add_argument("--embed-threads", type=int, default=None,
                    help="torch threads for the embedding block (default: os.cpu_count())")
    ap.add_argument("--out", type=Path, default=None, help="folder to write results.json into")
    ap.add_argument("--worker", nargs=2, metavar=("BLOCK", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

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

    files = source_files()
    info = pool_info(files)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    results = []
    for block in blocks:
        for n in (embed_sizes if block == "embed" else sizes):
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
