"""Growth benchmark: time and peak memory of each metric family against n (1k .. 1M rows), with the
fitted exponent b of time ~ a * n^b, and the 1M-row streaming run of the real CLI (issue #10).

    .venv/bin/python bench/growth.py --make-input                 # build /tmp/growth/1m.jsonl (+ references)
    .venv/bin/python bench/growth.py --quick --out /tmp/growth/q  # n <= 100k, every family
    .venv/bin/python bench/growth.py --families lexical,dup-exact --sizes 1000,10000,100000
    .venv/bin/python bench/growth.py --streaming --out DIR        # only the 1M CLI run (time, peak RSS vs 4 GB)

Inputs are real texts read in place from ``../shared/data`` through bench/run.py's pool (never copied
into the repo); the derived 1M-row file lives under /tmp/growth/ (see ``make_input`` for how it is made).
Each (family, n) point runs in its own subprocess, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench_run  # noqa: E402  (bench/run.py: the real-text pool, peak-RSS helper, env)

ROOT = bench_run.ROOT
WORK = Path(os.environ.get("GROWTH_DIR", "/tmp/growth"))
BIG = WORK / "1m.jsonl"            # 1,000,000 rows: the candidate of every text family and the streaming run
REF100K = WORK / "ref100k.jsonl"   # the streaming run's reference
REF10K = WORK / "ref10k.jsonl"     # the surface family's fixed reference
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
BIG_N = 1_000_000
SHORT_WORDS = 64                   # pool texts of at most this many words
MEMORY_GOAL_MIB = 4096.0
FIT_FROM = 10_000                  # the exponent is fitted over points with n >= this
SUPERLINEAR = 1.2


# ----------------------------------------------------------------------------- the 1M-row input

def _labelled_short_pool() -> list[tuple[str, str]]:
    """(text, label) of every pool row with at most SHORT_WORDS words; the label is the source folder
    plus the row's own label where it has one ('banking77_real:card_arrival'), else the folder alone."""
    out = []
    for path, t, lab in bench_run.iter_pool_rows(bench_run.source_files()):
        if len(t.split()) > SHORT_WORDS:
            continue
        folder = path.relative_to(bench_run.DATA).parts[0]
        out.append((t, folder if lab is None or str(lab).strip() == "" else f"{folder}:{lab}"))
    return out


def make_input(force: bool = False) -> dict:
    """Write BIG (1M rows), REF100K and REF10K under WORK from the real short-text pool.

    BIG holds every short pool row as it is (so its natural exact and near duplicates stay), then
    spliced rows until 1M: the first half (by words) of pool row a joined to the second half of pool row
    b, a and b drawn at random (seed 0), each kept only if that text is new, with a's label. The rows are
    then shuffled (seed 0), so any prefix of n rows is a fair sample for the growth points. REF100K is
    100,000 pool rows drawn without replacement (seed 1); REF10K its first 10,000.
    """
    import numpy as np

    meta_path = WORK / "input.json"
    if not force and BIG.is_file() and REF100K.is_file() and REF10K.is_file() and meta_path.is_file():
        return json.loads(meta_path.read_text())
    WORK.mkdir(parents=True, exist_ok=True)
    pool = _labelled_short_pool()
    rng = np.random.default_rng(0)
    rows = list(pool)
    seen = {t for t, _ in pool}
    words = [t.split() for t, _ in pool]
    spliced = 0
    while len(rows) < BIG_N:
        a, b = rng.integers(0, len(pool), size=(2, 4096))
        for i, j in zip(a.tolist(), b.tolist()):
            wa, wb = words[i], words[j]
            if len(wa) < 2 or len(wb) < 2:
                continue
            t = " ".join(wa[:len(wa) // 2] + wb[len(wb) // 2:])
            if t in seen:
                continue
            seen.add(t)
            rows.append((t, pool[i][1]))
            spliced += 1
            if len(rows) == BIG_N:
                break
    order = rng.permutation(len(rows))

    def write(path, idx, src):
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for k in idx:
                t, lab = src[int(k)]
                f.write(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n")
        tmp.replace(path)

    write(BIG, order, rows)
    ref = np.random.default_rng(1).choice(len(pool), size=min(100_000, len(pool)), replace=False)
    write(REF100K, ref, pool)
    write(REF10K, ref[:10_000], pool)
    meta = {"rows": len(rows), "pool_rows": len(pool), "pool_unique": len({t for t, _ in pool}),
            "spliced": spliced, "labels": len({lab for _, lab in rows}), "short_words": SHORT_WORDS,
            "bytes": BIG.stat().st_size,
            "how": (f"every real text of at most {SHORT_WORDS} words from {bench_run.DATA} ({len(pool):,} rows, "
                    f"natural repeats kept), then {spliced:,} spliced rows (first half of one real row's words + "
                    "second half of another's, seed 0, each text new), shuffled (seed 0); label = source folder"
                    "[:row label]. Growth points read the first n rows.")}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def read_rows(n: int, path: Path = BIG) -> tuple[list[str], list[str]]:
    """The first n (text, label) rows of a file written by make_input."""
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
            if len(texts) == n:
                break
    return texts, labels



# ----------------------------------------------------------------------------- families

FAMILIES = {
    # family: (metric names or globs, input); "lexical" = the metrics of harness/metrics/direct/lexical.py
    "lexical": (["lexical/distinct-*", "lexical/entropy-*", "lexical/compression-ratio", "lexical/mattr",
                 "lexical/vocab-size", "length/*"], "texts"),
    # the published lexical scores of harness/metrics/direct/homogenization.py (lexical/* names, another module)
    "homogenization": (["lexical/self-bleu", "lexical/homogenization-*", "lexical/ngram-diversity"], "texts"),
    "dup-exact": (["dup/exact-rate"], "texts"),
    "dup-near": (["dup/near-rate"], "texts"),
    "surface": (["surface/*"], "texts+ref10k"),
    "semantic": (["semantic/vendi", "semantic/pairwise-cosine-distance", "semantic/chamfer",
                  "semantic/cluster-entropy"], "vectors"),
    "distance": (["distance/precision", "distance/recall", "distance/density", "distance/coverage",
                  "distance/frechet", "distance/mmd", "distance/c2st-embed"], "vectors+ref"),
}
SAMPLING_ARGS = ("max_rows", "subsample", "max_exact", "fit_rows", "max_queries", "max_work")
VEC_BASE = 10_000      # real MiniLM embeddings of this many texts, tiled beyond
VEC_NOISE = 0.01       # per-dimension Gaussian noise added to tiled copies (then re-normalised)


def sampled_args(family: str) -> dict[str, dict]:
    """The registry arguments that cap the rows a metric reads (its sampled estimator), per metric."""
    from harness import metrics
    from harness.errors import UserError

    out = {}
    try:
        specs = metrics.select(FAMILIES[family][0])
    except UserError:  # a family whose metrics are not (yet) registered
        return out
    for spec in specs:
        caps = {k: v for k, v in spec.args.items() if k in SAMPLING_ARGS}
        if caps:
            out[spec.name] = caps
    return out


def vectors_path(which: str) -> Path:
    return WORK / f"vectors-{which}-{VEC_BASE}.npy"


def prepare_vectors() -> dict:
    """Embed the first VEC_BASE rows of BIG (candidate) and REF10K (reference) with the default embedder
    (MiniLM, offline; its default on-disk cache keeps them for the next run) into WORK/*.npy."""
    import numpy as np

    from harness.resources.embedder import Embedder, resolve_embedder

    info = {}
    for which, path in (("cand", BIG), ("ref", REF10K)):
        out = vectors_path(which)
        if out.is_file():
            info[which] = "present"
            continue
        texts, _ = read_rows(VEC_BASE, path)
        t0 = time.perf_counter()
        emb = Embedder(resolve_embedder("default", batch_size=64), progress=False)
        X = np.asarray(emb.embed(texts), dtype=np.float32)
        np.save(out, X)
        info[which] = f"embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f}s ({emb.stats})"
    return info


def tiled_vectors(which: str, n: int, seed: int):
    """n unit vectors: the real embeddings (VEC_BASE rows) for n <= VEC_BASE, else copies of them with
    N(0, VEC_NOISE^2) noise per dimension, re-normalised (float32)."""
    import numpy as np

    base = np.load(vectors_path(which))
    if n <= len(base):
        return base[:n].copy()
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        idx = np.arange(a, b) % len(base)
        X = base[idx] + rng.normal(scale=VEC_NOISE, size=(b - a, base.shape[1])).astype(np.float32)
        X[idx < len(base)] = base[idx[idx < len(base)]]  # the first copy is the real vectors themselves
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        out[a:b] = X
    return out


def worker_main(family: str, n: int) -> None:
    os.environ.update(bench_run.ENV)
    from harness import metrics
    from harness.metrics.base import Context, MetricSkipped
    from harness.types import Corpus

    names, kind = FAMILIES[family]
    specs = metrics.select(names)
    for spec in specs:
        spec.fn  # noqa: B018  (import the metric modules before the clock starts)
    import scipy.sparse.csgraph  # noqa: F401  (imports are not part of a metric's time)
    import scipy.stats  # noqa: F401

    import harness.stats  # noqa: F401
    if family.startswith("dup"):
        import datasketch  # noqa: F401
    if kind.startswith("texts"):
        texts, labels = read_rows(n)
        ref = None
        if kind == "texts+ref10k":
            rt, rl = read_rows(10_000, REF10K)
            ref = Context(Corpus("ref", "ref", "classification", tuple(rt), labels=tuple(rl)), seed=0,
                          role="reference")
        ctx = Context(Corpus("cand", "cand", "classification", tuple(texts), labels=tuple(labels)), seed=0,
                      reference=ref)
        del texts, labels
    else:
        X = tiled_vectors("cand", n, seed=1)
        ref = None
        if kind == "vectors+ref":
            ref = Context(Corpus("ref", "ref", "text", tuple(map(str, range(n)))), seed=0,
                          embedder=bench_run.FixedEmbedder(tiled_vectors("ref", n, seed=2)), role="reference")
        ctx = Context(Corpus("cand", "cand", "text", tuple(map(str, range(n)))), seed=0, embedder=bench_run.FixedEmbedder(X),
                      reference=ref)
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a worker started by a big parent (the one that
    # embedded the vectors) would report the parent's peak
    base = bench_run._hwm_mib()
    rows = []
    w0, c0 = time.perf_counter(), time.process_time()
    for spec in specs:
        t0 = time.perf_counter()
        try:
            v = spec(ctx).value
        except MetricSkipped as e:
            v = f"skipped: {e}"
        rows.append({"metric": spec.name, "seconds": time.perf_counter() - t0, "value": v})
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print("\n" + json.dumps({"family": family, "n": n, "seconds": wall, "cpu": cpu, "base_mib": base,
                             "peak_mib": bench_run._hwm_mib(), "metrics": rows}, default=str), flush=True)


def run_point(family: str, n: int, limit: float) -> dict:
    print(f"growth: {family} n={n:,} (load {os.getloadavg()[0]:.2f}) ...", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", family, str(n)],
                           cwd=ROOT, env={**os.environ, **bench_run.ENV}, capture_output=True, text=True,
                           timeout=limit)
    except subprocess.TimeoutExpired:
        print(f"growth: {family} n={n:,} over the {limit:.0f}s limit", file=sys.stderr, flush=True)
        return {"family": family, "n": n, "timed_out": True, "limit_s": limit, "load": load}
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        print(f"growth: {family} n={n:,} failed: {err}", file=sys.stderr, flush=True)
        return {"family": family, "n": n, "error": err, "load": load}
    res = json.loads(lines[-1])
    res["load"] = load
    print(f"growth: {family} n={n:,}: {res['seconds']:.2f}s, peak {res['peak_mib']:,.0f} MiB "
          f"({time.perf_counter() - t0:.0f}s with input)", file=sys.stderr, flush=True)
    return res


def fit_exponent(points: list[tuple[int, float]]) -> float | None:
    """b of t ~ a * n^b, least squares on log-log over the points with n >= FIT_FROM (None if < 2)."""
    import numpy as np

    pts = [(n, t) for n, t in points if n >= FIT_FROM and t and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


# ----------------------------------------------------------------------------- streaming (the real CLI)

def streaming_run(out: Path, limit: float) -> dict:
    """``synthbench eval`` of BIG (1M rows, no --sample-size) against REF100K with the lexical, length,
    duplicate and surface metrics, under /usr/bin/time -v: wall time and peak RSS against 4 GB."""
    dest = WORK / "stream-out"
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    cmd = [str(ROOT / ".venv" / "bin" / "synthbench"), "eval", str(BIG), "-r", str(REF100K),
           "-m", "lexical/*,length/*,dup/*,surface/*", "--out", str(dest), "--no-progress"]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    print(f"growth: streaming: {' '.join(cmd)}", file=sys.stderr, flush=True)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    peak_kib = 0
    try:
        import psutil
    except ImportError:
        psutil = None
    proc = subprocess.Popen(timer + cmd, cwd=ROOT, env={**os.environ, **bench_run.ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        timed_out = True
    wall = time.perf_counter() - t0
    for line in stderr.splitlines():
        if "Maximum resident set size" in line:
            peak_kib = int(line.rsplit(":", 1)[1])
    if not peak_kib and psutil is None:
        import resource

        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = {"command": " ".join(cmd), "rows": BIG_N, "wall_s": wall, "peak_mib": peak_kib / 1024,
           "exit": proc.returncode, "timed_out": timed_out, "load_start": load0, "load_end": os.getloadavg()[0],
           "goal_mib": MEMORY_GOAL_MIB, "pass": (not timed_out and proc.returncode == 0
                                                 and peak_kib / 1024 <= MEMORY_GOAL_MIB)}
    results = dest / "results.jsonl"
    if results.is_file():
        res["values"] = {}
        for line in results.read_text().splitlines():
            r = json.loads(line)
            if r.get("role", "candidate") == "candidate" and "value" in r:
                res["values"][r["metric"]] = {"value": r["value"], "seconds": r.get("seconds")}
    res["stdout_tail"] = stdout[-3000:]
    res["stderr_tail"] = "\n".join(ln for ln in stderr.splitlines() if "\t" not in ln)[-2000:]
    return res


# ----------------------------------------------------------------------------- report

def _cell(r: dict | None) -> str:
    if r is None:
        return ""
    if r.get("timed_out"):
        return f"> {r['limit_s']:.0f} s"
    if r.get("error"):
        return "error"
    return f"{r['seconds']:.2f} s / {r['peak_mib']:,.0f}"


def render(results: list[dict], sizes: list[int], families: list[str]) -> tuple[str, dict]:
    by = {(r["family"], r["n"]): r for r in results}
    head = ["family"] + [f"n={n:,}" for n in sizes] + ["exponent b", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fits = {}
    for fam in families:
        pts = [(n, by[(fam, n)]["seconds"]) for n in sizes if (fam, n) in by and "seconds" in by[(fam, n)]]
        b = fit_exponent(pts)
        caps = sampled_args(fam)
        if b is None:
            status = "too few points"
        elif b <= SUPERLINEAR:
            status = "linear" if b < 1.1 else "near-linear"
        elif caps:
            status = "SAMPLED estimator beyond its cap"
        else:
            status = "SUPERLINEAR: fix"
        fits[fam] = {"exponent": b, "status": status, "sampled": caps, "points": pts}
        lines.append("| " + " | ".join([fam] + [_cell(by.get((fam, n))) for n in sizes]
                                       + ["" if b is None else f"{b:.2f}", status]) + " |")
    # per-metric exponents (the family's total hides a quadratic metric behind a slow linear one)
    mlines = ["| family | metric | exponent b | time at largest n | sampled (registry cap) |", "|---|---|---|---|---|"]
    for fam in families:
        done = [by[(fam, n)] for n in sizes if (fam, n) in by and "metrics" in by[(fam, n)]]
        if not done:
            continue
        caps = fits[fam]["sampled"]
        for m in [row["metric"] for row in done[-1]["metrics"]]:
            pts = [(r["n"], next(x["seconds"] for x in r["metrics"] if x["metric"] == m)) for r in done]
            b = fit_exponent(pts)
            fits[fam].setdefault("metrics", {})[m] = b
            cap = ", ".join(f"{k}={v:,}" for k, v in caps.get(m, {}).items())
            mlines.append(f"| {fam} | {m} | {'' if b is None else f'{b:.2f}'} | {pts[-1][1]:.2f} s "
                          f"(n={pts[-1][0]:,}) | {cap} |")
    return "\n".join(lines) + "\n\nper metric:\n\n" + "\n".join(mlines), fits


def plot(results: list[dict], families: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for fam in families:
        pts = sorted((r["n"], r["seconds"], r["peak_mib"]) for r in results
                     if r["family"] == fam and "seconds" in r)
        if not pts:
            continue
        ns = [p[0] for p in pts]
        ax1.plot(ns, [p[1] for p in pts], marker="o", label=fam)
        ax2.plot(ns, [p[2] for p in pts], marker="o", label=fam)
    if results:
        lo = min(r["n"] for r in results)
        ref = [r for r in results if "seconds" in r]
        if ref:
            t0 = min(r["seconds"] for r in ref if r["n"] == lo) if any(r["n"] == lo for r in ref) else 1e-2
            ax1.plot([lo, BIG_N], [t0, t0 * BIG_N / lo], "k:", lw=1, label="slope 1 (linear)")
    ax1.set(xscale="log", yscale="log", xlabel="rows n", ylabel="seconds", title="time vs n")
    ax2.set(xscale="log", yscale="log", xlabel="rows n", ylabel="peak RSS (MiB)", title="peak memory vs n")
    ax2.axhline(MEMORY_GOAL_MIB, color="r", ls="--", lw=1, label="4 GB")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_sizes(s: str) -> list[int]:
    return bench_run.parse_sizes(s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_sizes, default=list(SIZES), help="default 1k,3k,10k,30k,100k,300k,1M")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"subset of {','.join(FAMILIES)}")
    ap.add_argument("--quick", action="store_true", help="only sizes <= 100k")
    ap.add_argument("--limit", type=float, default=600.0, help="seconds per (family, n) point (default 600)")
    ap.add_argument("--streaming", action="store_true", help="run the 1M-row CLI streaming check")
    ap.add_argument("--no-growth", action="store_true", help="with --streaming: skip the growth points")
    ap.add_argument("--out", type=Path, default=None, help="folder for growth.json, growth.md, growth.png")
    ap.add_argument("--readme", type=Path, default=None,
                    help="also replace the text between <!-- growth:begin/end --> in this file (bench/README.md)")
    ap.add_argument("--merge", type=Path, default=None,
                    help="a previous growth.json: keep its points for the families not run now (and its "
                         "streaming run unless --streaming), then render everything together")
    ap.add_argument("--make-input", action="store_true", help="(re)build the inputs under /tmp/growth and stop")
    ap.add_argument("--worker", nargs=2, metavar=("FAMILY", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker_main(args.worker[0], int(args.worker[1]))
        return 0
    if args.make_input:
        print(json.dumps(make_input(force=True), indent=2))
        return 0
    os.environ.update(bench_run.ENV)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if unknown := set(families) - set(FAMILIES):
        ap.error(f"unknown families: {', '.join(sorted(unknown))}")
    sizes = sorted(n for n in args.sizes if not args.quick or n <= 100_000)
    meta = make_input()
    vec_info = prepare_vectors() if any(FAMILIES[f][1].startswith("vectors") for f in families) \
        and not args.no_growth else {}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    results = []
    if not args.no_growth:
        for fam in families:
            for n in sizes:
                r = run_point(fam, n, args.limit)
                results.append(r)
                if r.get("timed_out") or r.get("error"):
                    break  # larger n would not finish either
    stream = streaming_run(args.out or WORK, max(args.limit, 1800.0)) if args.streaming else None
    load1 = os.getloadavg()
    total = time.perf_counter() - t0
    if args.merge:
        old = json.loads(args.merge.read_text(encoding="utf-8"))
        ran = {r["family"] for r in results}
        results = [r for r in old["results"] if r["family"] not in ran] + results
        families = [f for f in FAMILIES if f in {r["family"] for r in results}]
        sizes = sorted({r["n"] for r in results})
        vec_info = vec_info or old.get("vectors", {})
        if stream is None:
            stream = old.get("streaming")
        if not ran and not args.streaming:  # a re-render: the measured run's own load and time
            load0, load1 = old["loadavg"]
            total = old.get("seconds", total)

    out = []
    out.append(f"Measured with {platform.python_implementation()} {platform.python_version()}, "
               f"{os.cpu_count()} CPUs, load avg {load0[0]:.2f} at start / {load1[0]:.2f} at end, "
               f"{total:.0f}s in all")
    out.append("")
    out.append(f"input: {meta['how']}")
    if vec_info or any(FAMILIES[f][1].startswith("vectors") for f in families):
        out.append(f"vectors (semantic, distance): real all-MiniLM-L6-v2 embeddings of the first {VEC_BASE:,} "
                   f"rows of the candidate file (reference: of the {VEC_BASE:,}-row reference file); beyond "
                   f"{VEC_BASE:,} rows, copies of them plus N(0, {VEC_NOISE}^2) noise per dimension, "
                   "re-normalised. distance: n candidate vs n reference vectors.")
    out.append("surface: n candidate rows vs a fixed 10,000-row real reference. Cells: metric seconds (input "
               "loading excluded) / peak RSS MiB of the point's own subprocess (input included). Exponent b: "
               f"least squares on log t = log a + b log n over points with n >= {FIT_FROM:,}.")
    out.append("")
    md, fits = render(results, sizes, families) if results else ("", {})
    out.append(md)
    if fits:
        out.append("")
        out.append("sampled estimators (registry caps: above the cap the metric reads a seeded subsample and its "
                   "time stops growing with n):")
        for fam, f in fits.items():
            for m, caps in f["sampled"].items():
                out.append(f"  {fam}: {m}: {', '.join(f'{k}={v:,}' for k, v in caps.items())}")
        bad = [fam for fam, f in fits.items() if f["status"].startswith("SUPERLINEAR")]
        out.append("superlinear without a sampled estimator: " + (", ".join(bad) if bad else "none"))
    if stream is not None:
        out.append("")
        out.append("**Streaming: the 1M-row CLI run**")
        out.append("")
        out.append(f"`{stream['command']}`")
        out.append("")
        verdict = "PASS" if stream["pass"] else "MISS"
        out.append(f"[{verdict}] {BIG_N:,} rows, all of them (no --sample-size): wall {stream['wall_s']:.0f} s, "
                   f"peak RSS {stream['peak_mib']:,.0f} MiB (goal <= {MEMORY_GOAL_MIB:,.0f} MiB), exit "
                   f"{stream['exit']}{', TIMED OUT' if stream['timed_out'] else ''}; load avg "
                   f"{stream['load_start']:.2f} -> {stream['load_end']:.2f}")
        for m, v in (stream.get("values") or {}).items():
            out.append(f"- {m}: {v['value']:.6g} ({v['seconds'] or 0:.1f} s)")
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "growth.md").write_text(text + "\n", encoding="utf-8")
        (args.out / "growth.json").write_text(json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "loadavg": [load0, load1],
             "seconds": total,
             "input": meta, "vectors": vec_info, "sizes": sizes, "results": results, "fits": fits,
             "streaming": stream}, indent=2, default=str) + "\n", encoding="utf-8")
        if results:
            plot(results, families, args.out / "growth.png")
        print(f"\nwrote {args.out}/growth.md, growth.json" + (", growth.png" if results else ""))
    if args.readme and results:
        plot(results, families, args.readme.parent / "growth.png")  # committed beside the README
        text += "\n\n![time and peak memory against n](growth.png)"
    if args.readme and not bench_run.update_readme(args.readme, "growth", text):
        print(f"growth: {args.readme} has no <!-- growth:begin --> / <!-- growth:end --> markers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
