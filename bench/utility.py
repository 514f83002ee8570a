"""Utility benchmark: train on synthetic, test on real. Prints Markdown tables (it is not a test).

    .venv/bin/python bench/utility.py                          # every block
    .venv/bin/python bench/utility.py --blocks intent          # intent | agnews | timing | ft | plots
    .venv/bin/python bench/utility.py --datasets liu,atis --ft-dataset liu --ft-seeds 1

Blocks:
- intent: ../shared/data/intent_paraphrases_chatgpt_vs_crowd, five datasets (clinc150 snips atis fb liu):
  models trained on gpt, gpt_filt, human and an orig_train sample of the size of human, tested on
  orig_test; reference (train-on-real, learning curve, mixing) = orig_train. Tiers 1 (tfidf-lr) and
  2 (minilm-lr).
- agnews: ../shared/data/llm_augmentation_diversity_incentives/ag_news, one synthetic set per
  generator, tested on real_test. Per PROVENANCE.md the files hold each run's real seeds
  (is_seed / method == 'seeds') and repeat rows across methods by design: the seeds are dropped
  (reported as their own 'seeds only' baseline) and texts de-duplicated. There is no real training
  split, so gap / real-equivalent use a seeded stratified half of real_test as the real pool and the
  other half as test (marked †).
- timing: tiers 1–2, 3 seeds × 6 sizes (250 … 10k rows) of clinc150_real train (150 intents), tested
  on its 4,500-row test split; embeddings cached, prediction cache cold, then the same again (warm).
- ft: tier 3 (MiniLM fine-tuned, 3 epochs) at full size on one dataset, on this machine's CPU.
- plots: learning-curve PNGs for clinc150 (gpt, gpt_filt, human) into --out.

Embeddings come from the default cache (``$SYNTHBENCH_CACHE`` or ~/.cache/synthbench); a cold run
embeds ~200k texts first (tens of minutes on 2 cores). Predictions are cached there too, so a rerun
of the tables is fast; the timing block uses a temporary prediction cache so its fits are real.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE", "TQDM_DISABLE": "1"}.items():
    os.environ.setdefault(_k, _v)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
INTENT = DATA / "intent_paraphrases_chatgpt_vs_crowd"
AGNEWS = DATA / "llm_augmentation_diversity_incentives" / "ag_news"
TIERS = ("tfidf-lr", "minilm-lr")


def load(path: Path, name: str, rows=None):
    """A classification Corpus from JSONL, dropping rows with an empty text (snips/human has one)."""
    from harness.types import CLASSIFICATION, Corpus

    if rows is None:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    kept = [r for r in rows if isinstance(r.get("text"), str) and r["text"].strip()]
    c = Corpus(name, str(path), CLASSIFICATION, tuple(r["text"] for r in kept),
               labels=tuple(str(r["label"]).strip() for r in kept))
    return c, len(rows) - len(kept)


def contexts(cands, ref, test, emb, seed=0):
    from harness.metrics.base import Context

    t = Context(test, seed, emb, role="test")
    r = Context(ref, seed, emb, test=t, role="reference") if ref is not None else None
    return [Context(c, seed, emb, reference=r, test=t) for c in cands]


def pct(score, signed=False) -> str:
    v = 100 * score.value
    half = 100 * (score.ci[1] - score.ci[0]) / 2 if score.ci else 0.0
    return f"{v:+.1f}±{half:.1f}" if signed else f"{v:.1f}±{half:.1f}"


def rows_eq(score) -> str:
    c = score.details.get("censored")
    if c == "above":
        return f"≥{score.value:,.0f}"
    if c == "below":
        return f"≤{score.value:,.0f}"
    return f"{score.value:,.0f} ({score.ci[0]:,.0f}–{score.ci[1]:,.0f})"


def md(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def utility_scores(ctx, recipe, with_ref=True):
    from harness.metrics.indirect import utility as U

    s = {"acc": U.accuracy(ctx, recipe=recipe), "f1": U.macro_f1(ctx, recipe=recipe)}
    if with_ref:
        s["gap"] = U.gap(ctx, recipe=recipe)
        s["req"] = U.real_equivalent(ctx, recipe=recipe, synthetic_curve=False)
        s["mix"] = U.mix_gain(ctx, recipe=recipe, k=100, sweep=False)
    return s


def _majority(labels, label=None):
    """(the most frequent label, or ``label``; its share of the rows)."""
    from collections import Counter

    counts = Counter(labels)
    label = label if label is not None else counts.most_common(1)[0][0]
    return label, counts.get(label, 0) / max(1, len(labels))


# ----------------------------------------------------------------------------- blocks

def block_intent(emb, datasets) -> str:
    from harness.resources import trainers as train

    lines, notes = [], []
    for ds in datasets:
        t0 = time.perf_counter()
        f0 = train.STATS["fits"]
        ref, _ = load(INTENT / ds / "orig_train.jsonl", "orig_train")
        test, _ = load(INTENT / ds / "orig_test.jsonl", "orig_test")
        cands = []
        for name in ("gpt", "gpt_filt", "human"):
            c, dropped = load(INTENT / ds / f"{name}.jsonl", name)
            if dropped:
                notes.append(f"{ds}/{name}: {dropped} row(s) with an empty text dropped before evaluation")
            cands.append(c)
        n_h = len(cands[-1])
        sample = ref.subsample(n_h, 0)
        cands.append(type(ref)(f"orig_train (n={n_h})", ref.source, ref.kind, sample.texts, labels=sample.labels))
        for c, ctx in zip(cands, contexts(cands, ref, test, emb)):
            row = [ds, c.name, None]
            for recipe in TIERS:
                s = utility_scores(ctx, recipe)
                row += [pct(s["acc"]), pct(s["f1"]), pct(s["gap"], True), rows_eq(s["req"]), pct(s["mix"], True)]
            row[2] = f"{s['acc'].details['rows']:,}"
            for w in s["acc"].details.get("warnings", []):
                notes.append(f"{ds}/{c.name}: {w}")
            lines.append(row)
        top, share = _majority(test.labels)
        notes.append(f"{ds}: orig_train {len(ref):,} rows, orig_test {len(test):,} rows (largest class {top}: "
                     f"{share:.0%} of orig_test, {_majority(cands[0].labels, top)[1]:.0%} of gpt, "
                     f"{_majority(cands[2].labels, top)[1]:.0%} of human); "
                     f"{train.STATS['fits'] - f0} fits, {time.perf_counter() - t0:.0f} s")
        print(f"  intent {ds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    header = ["dataset", "trained on", "rows used"]
    for t in ("T1", "T2"):
        header += [f"{t} acc %", f"{t} macro-F1 %", f"{t} gap pts", f"{t} real-equiv. rows", f"{t} mix-gain pts"]
    return (md(header, lines) + "\n\n" + "\n".join(f"- {n}" for n in notes))


def block_agnews(emb) -> str:
    import numpy as np

    test_full, _ = load(AGNEWS / "real_test.jsonl", "real_test")
    # a seeded stratified half of real_test as the real pool (for gap / real-equivalent only)
    rng = np.random.default_rng(0)
    labels = np.array(test_full.labels)
    pool_idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == lab))[: (labels == lab).sum() // 2]
                                       for lab in sorted(set(labels))]))
    rest = np.setdiff1d(np.arange(len(labels)), pool_idx)
    C = type(test_full)
    pool = C("real_pool", test_full.source, test_full.kind, tuple(test_full.texts[i] for i in pool_idx),
             labels=tuple(test_full.labels[i] for i in pool_idx))
    half = C("real_test_half", test_full.source, test_full.kind, tuple(test_full.texts[i] for i in rest),
             labels=tuple(test_full.labels[i] for i in rest))
    lines, notes = [], []
    for g in ("gpt", "gpt4", "llama", "mistral", "play"):
        raw = [json.loads(x) for x in (AGNEWS / f"synthetic_{g}.jsonl").read_text().splitlines() if x.strip()]
        seeds = [r for r in raw if r.get("is_seed") or r.get("method") == "seeds"]
        syn = [r for r in raw if not (r.get("is_seed") or r.get("method") == "seeds")]
        uniq = list({r["text"]: r for r in syn}.values())
        seeds_u = list({r["text"]: r for r in seeds}.values())
        cand, _ = load(AGNEWS / f"synthetic_{g}.jsonl", g, rows=uniq)
        seed_c, _ = load(AGNEWS / f"synthetic_{g}.jsonl", f"{g} seeds", rows=seeds_u)
        (ctx_full,) = contexts([cand], None, test_full, emb)
        (ctx_seed,) = contexts([seed_c], None, test_full, emb)
        (ctx_half,) = contexts([cand], pool, half, emb)
        row = [g, f"{len(raw):,}", f"{len(cand):,}", f"{len(seed_c)}"]
        for recipe in TIERS:
            from harness.metrics.indirect import utility as U

            a, f = U.accuracy(ctx_full, recipe=recipe), U.macro_f1(ctx_full, recipe=recipe)
            sa = U.accuracy(ctx_seed, recipe=recipe)
            row += [pct(a), pct(f), pct(sa)]
        for recipe in TIERS:
            from harness.metrics.indirect import utility as U

            row += [pct(U.gap(ctx_half, recipe=recipe), True),
                    rows_eq(U.real_equivalent(ctx_half, recipe=recipe, synthetic_curve=False))]
        lines.append(row)
        print(f"  ag_news {g} done", file=sys.stderr, flush=True)
    header = ["generator", "rows shipped", "synthetic rows used", "real seeds"]
    for t in ("T1", "T2"):
        header += [f"{t} acc %", f"{t} macro-F1 %", f"{t} seeds-only acc %"]
    for t in ("T1", "T2"):
        header += [f"{t} gap pts †", f"{t} real-equiv. rows †"]
    notes.append(f"test: real_test, {len(test_full):,} rows (4 classes, 1,900 each); † real pool = a seeded "
                 f"stratified half of real_test ({len(pool):,} rows), tested on the other half ({len(half):,})")
    notes.append("synthetic rows used = rows that are not real seeds (is_seed / method 'seeds'), de-duplicated "
                 "(the method files share the first-round paraphrases); 'seeds-only' trains on that "
                 "generator's real seed rows alone")
    return md(header, lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def block_timing(emb) -> str:
    from harness.metrics.indirect import utility as U
    from harness.resources import trainers as train

    pool, _ = load(DATA / "clinc150_real" / "train.jsonl", "clinc150_real train")
    test, _ = load(DATA / "clinc150_real" / "test.jsonl", "clinc150_real test")
    cand = pool.subsample(10000, 0)
    sizes = [250, 500, 1000, 2500, 5000, 10000]
    lines = []
    old = os.environ.get("SYNTHBENCH_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SYNTHBENCH_CACHE"] = tmp  # a cold prediction cache; the embedder keeps its own folder
        try:
            for recipe in TIERS:
                for label in ("cold", "rerun (disk cache)"):
                    train.clear_memo()
                    train.reset_stats()
                    t0 = time.perf_counter()
                    (ctx,) = contexts([cand], None, test, emb)
                    job = U._job(ctx, recipe, 3, {})
                    if recipe == "minilm-lr":
                        job.embed_fn(list(cand.texts[:1]))  # resolve the cached embeddings (timed)
                    t_emb = time.perf_counter() - t0
                    tasks = [([("syn", job.subset("syn", s, n))], s) for s in range(3) for n in sizes]
                    preds = job.run(tasks, "timing")
                    total = time.perf_counter() - t0
                    acc = [job.accuracy(p) for p in preds]
                    lines.append([recipe, label, len(tasks), int(train.STATS["fits"]), f"{t_emb:.1f}",
                                  f"{total:.1f}", "PASS" if total < 60 else "MISS",
                                  f"{100 * sum(acc[:6]) / 6:.1f}"])
                    print(f"  timing {recipe} {label}: {total:.1f} s", file=sys.stderr, flush=True)
        finally:
            if old is None:
                os.environ.pop("SYNTHBENCH_CACHE", None)
            else:
                os.environ["SYNTHBENCH_CACHE"] = old
    header = ["tier", "run", "trainings", "fits", "load/embed s", "total s", "goal < 60 s",
              "mean acc % (seed 0, 6 sizes)"]
    return (md(header, lines) + f"\n\n- clinc150_real: a 10,000-row sample of train (150 intents), test "
            f"{len(test):,} rows; sizes {sizes}; 3 seeds. Embeddings were already cached. The deterministic "
            "recipes fit the full 10k set once for all three seeds.")


def block_ft(dataset: str, seeds: int, epochs: int) -> str:
    import torch

    from harness.metrics.indirect import utility as U
    from harness.resources import trainers as train

    ref, _ = load(INTENT / dataset / "orig_train.jsonl", "orig_train")
    test, _ = load(INTENT / dataset / "orig_test.jsonl", "orig_test")
    cand, _ = load(INTENT / dataset / "gpt.jsonl", "gpt")
    (ctx,) = contexts([cand], ref, test, None)
    train.reset_stats()
    t0 = time.perf_counter()
    acc = U.accuracy(ctx, recipe="minilm-ft", seeds=seeds, epochs=epochs)
    f1 = U.macro_f1(ctx, recipe="minilm-ft", seeds=seeds, epochs=epochs)
    t_tstr = time.perf_counter() - t0
    fits = int(train.STATS["fits"])
    t1 = time.perf_counter()
    gap = U.gap(ctx, recipe="minilm-ft", seeds=seeds, epochs=epochs)
    t_gap = time.perf_counter() - t1
    dev = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    n = acc.details["rows"]
    rows = [[f"{dataset}/gpt → orig_test", f"{n:,}", len(test), seeds, epochs, dev, pct(acc), pct(f1),
             pct(gap, True), f"{t_tstr:.0f}", f"{t_tstr / max(fits, 1):.0f}", f"{t_gap:.0f}"]]
    header = ["data", "train rows", "test rows", "seeds", "epochs", "device", "acc %", "macro-F1 %",
              "gap pts", "TSTR s (all seeds)", "s per fit", "gap s (TRTR fits)"]
    return md(header, rows)


def block_plots(emb, out: Path) -> str:
    from harness import __version__
    from harness.metrics.indirect import utility as U
    from harness.report.learning_curves import plot_learning_curves
    from harness.types import Result, Signature

    ref, _ = load(INTENT / "clinc150" / "orig_train.jsonl", "orig_train")
    test, _ = load(INTENT / "clinc150" / "orig_test.jsonl", "orig_test")
    cands = [load(INTENT / "clinc150" / f"{n}.jsonl", f"clinc150 {n}")[0] for n in ("gpt", "gpt_filt", "human")]
    results = []
    for c, ctx in zip(cands, contexts(cands, ref, test, emb)):
        for recipe in TIERS:
            s = U.real_equivalent(ctx, recipe=recipe)
            sig = Signature(__version__, f"utility/{recipe}/real-equivalent", {}, {}, None, 0)
            results.append(Result(c.name, f"utility/{recipe}/real-equivalent", s.value, s.ci, True, sig,
                                  details=s.details))
    paths = plot_learning_curves(results, out)
    return "\n".join(f"- {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}" for p in paths)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", default="intent,agnews,timing,ft,plots")
    ap.add_argument("--datasets", default="clinc150,snips,atis,fb,liu")
    ap.add_argument("--ft-dataset", default="liu")
    ap.add_argument("--ft-seeds", type=int, default=3)
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "utility"))
    args = ap.parse_args()
    blocks = args.blocks.split(",")

    import platform

    from harness.resources.embedder import Embedder, resolve_embedder

    emb = Embedder(resolve_embedder("default"), progress=False)
    print(f"# synthbench utility bench\n\n{platform.platform()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    t_all = time.perf_counter()
    if "intent" in blocks:
        t = time.perf_counter()
        print("## Intent paraphrases (Cegin et al. 2023): TSTR on orig_test\n")
        print(block_intent(emb, args.datasets.split(",")))
        print(f"\n({time.perf_counter() - t:.0f} s)\n", flush=True)
    if "agnews" in blocks:
        t = time.perf_counter()
        print("## AG News, one synthetic set per generator (Cegin et al. 2024): TSTR on real_test\n")
        print(block_agnews(emb))
        print(f"\n({time.perf_counter() - t:.0f} s)\n", flush=True)
    if "timing" in blocks:
        print("## Timing: tiers 1–2, 3 seeds × 6 sizes on 10k rows\n")
        print(block_timing(emb) + "\n", flush=True)
    if "ft" in blocks:
        print(f"## Tier 3 (minilm-ft) at full size: {args.ft_dataset}\n")
        print(block_ft(args.ft_dataset, args.ft_seeds, args.ft_epochs) + "\n", flush=True)
    if "plots" in blocks:
        print("## Learning-curve figures\n")
        print(block_plots(emb, Path(args.out)) + "\n", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s; embedder {emb.stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
