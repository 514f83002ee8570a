"""``synthbench lm-utility``: fine-tune a causal LM on each candidate and evaluate it with lm-eval."""

from __future__ import annotations

import argparse

NAME = "lm-utility"
HELP = "fine-tune a small causal LM on each candidate (same token budget) and compare it with the base model in lm-eval"
DESCRIPTION = """\
synthbench lm-utility CANDIDATE... --token-budget N --out DIR
    [--eval-responses [NAME=]FILE]... [--mc-task [NAME=]FILE]... [--gen-task [NAME=]FILE]... [--task NAME]...
    [--lm default] [--full] [--seeds 1] [--limit N] [--device cuda|cpu] [--chat-template]

For instruction and free-text data the downstream question is whether a language model fine-tuned on it
gets better on real tasks. Each CANDIDATE (a path or NAME=PATH; instruction rows instruction/input/output,
or plain text) fine-tunes the base model (--lm; default SmolLM2-135M-Instruct, offline) with LoRA (or all
weights with --full) until exactly --token-budget supervised tokens have been trained on (instruction rows:
the response tokens, rendered with the model's chat template, loss on the response only; plain text: every
token), so datasets of different sizes get the same training. Checkpoints are cached by (model, recipe,
data fingerprint, seed). The base model and every fine-tuned model are then evaluated by EleutherAI
lm-eval (lm_eval.simple_evaluate) on tasks written over local files:

  --eval-responses FILE  held-out real texts (field 'output', else 'text', or --eval-field):
                         bits per byte and word perplexity (loglikelihood_rolling)
  --mc-task FILE         multiple choice: rows {query, choices, gold}, or a labelled set {text, label}
                         asked as 'which of these labels fits' with the label names as choices (accuracy)
  --gen-task FILE        generation: rows {query, answer}, greedy, exact match
  --task NAME            any registered lm-eval task whose data this machine can reach

The utility score is the difference to the base model (fine-tuned minus base; for bits per byte lower is
better), with a 95% paired bootstrap interval over the documents (and over seeds when --seeds > 1).
Writes DIR/results.jsonl (one record per dataset and metric, the base model as the reference),
DIR/lm-utility.md (the table), DIR/run.json and the usual report files. Runs on a GPU when one is present,
else on the CPU (minutes per 10k tokens for a 135M model on a laptop)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import _add_field_flags

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    g = p.add_argument_group("evaluation tasks (at least one)")
    g.add_argument("--eval-responses", action="append", default=[], metavar="[NAME=]FILE",
                   help="held-out real texts for perplexity (repeatable)")
    g.add_argument("--eval-field", metavar="FIELD", help="field of --eval-responses holding the text "
                   "(default: output, else text)")
    g.add_argument("--eval-rows", type=int, metavar="N", help="use a seeded sample of N texts per --eval-responses")
    g.add_argument("--mc-task", action="append", default=[], metavar="[NAME=]FILE",
                   help="multiple-choice task file (repeatable)")
    g.add_argument("--mc-rows", type=int, default=500, metavar="N",
                   help="stratified seeded sample of N rows per --mc-task (default 500; 0 = all)")
    g.add_argument("--mc-labels", metavar="RAW=NAME,...", help="label names for a labelled --mc-task, e.g. "
                   "0=negative,1=positive")
    g.add_argument("--gen-task", action="append", default=[], metavar="[NAME=]FILE",
                   help="generation task file, exact match (repeatable)")
    g.add_argument("--gen-rows", type=int, metavar="N", help="seeded sample of N rows per --gen-task")
    g.add_argument("--task", action="append", default=[], metavar="NAME", help="a registered lm-eval task (repeatable)")
    g.add_argument("--limit", type=int, metavar="N", help="lm-eval's limit: the first N documents of every task")
    g.add_argument("--chat-template", action="store_true",
                   help="wrap task prompts in the model's chat template (lm-eval apply_chat_template)")
    g.add_argument("--eval-batch-size", default="8", metavar="N|auto", help="lm-eval batch size (default 8)")
    t = p.add_argument_group("fine-tuning")
    t.add_argument("--token-budget", type=int, required=True, metavar="N",
                   help="supervised tokens to train on, the same for every candidate")
    t.add_argument("--lm", default="default", help="base causal LM: 'default' (SmolLM2-135M-Instruct, offline), "
                   "a local folder, or a hub id (needs a network)")
    t.add_argument("--full", action="store_true", help="fine-tune all weights instead of LoRA adapters")
    t.add_argument("--seeds", type=int, default=1, metavar="K", help="fine-tune with seeds 0..K-1 (default 1)")
    t.add_argument("--lr", type=float, help="learning rate (default 2e-4 LoRA, 2e-5 full)")
    t.add_argument("--batch-size", type=int, default=16, help="training batch size in rows (default 16)")
    t.add_argument("--max-length", type=int, default=512, help="longest training sequence in tokens (default 512)")
    t.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8; alpha = 2r)")
    t.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_field_flags(p)


def _named(spec: str) -> tuple[str, str]:
    from pathlib import Path

    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        if name and path:
            return name, path
    return Path(spec).stem, spec


def _labels_map(text: str | None) -> dict:
    from ..errors import UserError

    if not text:
        return {}
    out = {}
    for part in text.split(","):
        raw, sep, name = part.partition("=")
        if not sep or not raw.strip() or not name.strip():
            raise UserError(f"--mc-labels {text}: '{part}' is not RAW=NAME", "write e.g. 0=negative,1=positive")
        out[raw.strip()] = name.strip()
    return out


def build_tasks(args) -> list:
    from pathlib import Path

    from .. import lmeval as L
    from ..errors import UserError

    specs = []
    for s in args.eval_responses:
        name, path = _named(s)
        specs.append(L.perplexity_task(name, Path(path), field=args.eval_field, limit_rows=args.eval_rows))
    for s in args.mc_task:
        name, path = _named(s)
        specs.append(L.mc_task(name, Path(path), limit_rows=args.mc_rows or None, names=_labels_map(args.mc_labels)))
    for s in args.gen_task:
        name, path = _named(s)
        specs.append(L.generation_task(name, Path(path), limit_rows=args.gen_rows))
    specs += [L.registered_task(n) for n in args.task]
    if not specs:
        raise UserError("lm-utility needs at least one evaluation task",
                        "give --eval-responses FILE, --mc-task FILE, --gen-task FILE or --task NAME")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise UserError(f"two evaluation tasks are both named '{[x for x in labels if labels.count(x) > 1][0]}'",
                        "name them apart with NAME=FILE")
    return specs


# metric name stem, lm-eval metric, higher is better
_PRIMARY = {
    "perplexity": [("bits-per-byte", "bits_per_byte", False), ("word-perplexity", "word_perplexity", False)],
    "multiple_choice": [("mc-accuracy", "acc", True), ("mc-accuracy-norm", "acc_norm", True)],
    "generation": [("exact-match", "exact_match", True)],
}
_DELTA = {"bits_per_byte", "acc", "exact_match"}  # local tasks: the metrics whose difference is reported


def _metrics_of(spec, result) -> list[tuple[str, str, bool | None, bool]]:
    """(name stem, lm-eval metric, higher is better, report a delta) for one task."""
    if spec.kind in _PRIMARY:
        return [(stem, m, hib, m in _DELTA) for stem, m, hib in _PRIMARY[spec.kind]]
    return [(m.replace("_", "-").replace(",", "-"), m, result.higher.get(m.split(",")[0]), True)
            for m in result.metrics]


def run(args) -> int:
    import json
    import sys
    import time
    from pathlib import Path

    from .. import __version__
    from .. import lmeval as L
    from ..backends.causal_ft import FTRecipe, TrainSet, finetune, pick_device
    from ..backends.lm import resolve_lm
    from ..cache import atomic_write_text
    from ..cli import _parse_candidate, _progress, _unique_names, write_report
    from ..core import Result, Signature
    from ..data import FieldMap, load_corpus
    from ..errors import UserError
    from ..results import ResultStore

    progress = _progress(args.no_progress)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.token_budget < 1:
        raise UserError(f"--token-budget {args.token_budget}: must be positive", "give a number of tokens, e.g. 100000")
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: must be at least 1", "give 1 or more")
    out = Path(args.out)
    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    parsed = [_parse_candidate(c) for c in args.candidates]
    names = _unique_names(parsed)
    if len(set(names)) != len(names):
        raise UserError("two candidates have the same name", "name them apart with NAME=PATH")
    corpora = [load_corpus(path, fields, name=name, split=args.split) for name, (_, path) in zip(names, parsed)]
    specs = build_tasks(args)
    lm = resolve_lm(args.lm)
    recipe = FTRecipe(mode="full" if args.full else "lora", token_budget=args.token_budget, lr=args.lr,
                      batch_size=args.batch_size, max_length=args.max_length, lora_r=args.lora_r,
                      lora_alpha=2 * args.lora_r)
    seeds = list(range(args.seeds))
    folder = L.write_tasks(specs)
    device = pick_device(args.device)
    if args.eval_batch_size != "auto" and not str(args.eval_batch_size).isdigit():
        raise UserError(f"--eval-batch-size {args.eval_batch_size}: not a number", "give N or 'auto'")
    batch = args.eval_batch_size if args.eval_batch_size == "auto" else int(args.eval_batch_size)
    eval_kw = dict(limit=args.limit, batch_size=batch, device=device, apply_chat_template=args.chat_template,
                   threads=args.threads)
    log(f"lm-utility: {len(corpora)} candidate(s) x {len(seeds)} seed(s), base {lm.name}, "
        f"{recipe.mode} fine-tuning to {recipe.token_budget:,} tokens on {device}; "
        f"tasks {', '.join(s.label for s in specs)} (folder {folder})")

    timings: dict = {}
    t0 = time.perf_counter()
    base = L.evaluate({"pretrained": lm.location}, specs, folder, model_key=lm.identity, **eval_kw)
    timings["eval:base"] = round(time.perf_counter() - t0, 2)
    tuned: dict[str, list] = {}
    train_meta: dict[str, list] = {}
    for corpus in corpora:
        data = TrainSet.from_corpus(corpus)
        tuned[corpus.name], train_meta[corpus.name] = [], []
        for seed in seeds:
            t1 = time.perf_counter()
            ck = finetune(lm, data, recipe, seed, device=args.device, threads=args.threads, progress=progress)
            t2 = time.perf_counter()
            res = L.evaluate(ck.lm_eval_args(), specs, folder, model_key=f"lmft:{ck.key}", **eval_kw)
            timings[f"eval:{corpus.name}:{seed}"] = round(time.perf_counter() - t2, 2)
            timings[f"train:{corpus.name}:{seed}"] = round(t2 - t1, 2)
            tuned[corpus.name].append(res)
            m = ck.meta
            train_meta[corpus.name].append({
                "seed": seed, "key": ck.key, "cached": ck.cached, "tokens_trained": m.get("tokens_trained"),
                "tokens_input": m.get("tokens_input"), "steps": m.get("steps"), "passes": m.get("passes"),
                "train_seconds": m.get("seconds"), "device": m.get("device"),
                "final_loss": (m.get("loss_curve") or [[None, None]])[-1][1]})
            log(f"  {corpus.name} seed {seed}: {'cached' if ck.cached else 'trained'} "
                f"({m.get('tokens_trained'):,} tokens, {m.get('passes')} passes, {m.get('seconds')} s on "
                f"{m.get('device')}); evaluated in {timings[f'eval:{corpus.name}:{seed}']} s")

    base_name = f"{lm.name if lm.name != 'default' else 'SmolLM2-135M-Instruct'} (base)"
    version = L.lm_eval_version()
    results = []

    def sig(metric, spec, candidate_fp):
        return Signature(harness=__version__, metric=metric,
                         args={"lm": lm.identity, "recipe": recipe.identity() if candidate_fp else None,
                               "seeds": seeds if candidate_fp else None, "task": spec.fingerprint,
                               "limit": args.limit, "chat_template": args.chat_template, "lm_eval": version},
                         data={"candidate": candidate_fp, "reference": spec.fingerprint, "sample": None},
                         embedder=None, seed=seeds[0])

    for spec in specs:
        b = base[spec.label]
        for stem, m, hib, with_delta in _metrics_of(spec, b):
            metric = f"lm-utility/{spec.label}/{stem}"
            results.append(Result(dataset=base_name, metric=metric, value=L.score(b, m),
                                  ci=L.bootstrap_score(b, m), higher_is_better=hib, role="reference",
                                  signature=sig(metric, spec, None),
                                  details={"task": spec.name, "docs": b.n,
                                           "lm_eval_stderr": (b.metrics.get(m) or [None, None])[1]}))
            for corpus in corpora:
                runs = [r[spec.label] for r in tuned[corpus.name]]
                vals = [L.score(r, m) for r in runs]
                common = {"task": spec.name, "docs": b.n, "seeds": seeds, "per_seed": [round(v, 6) for v in vals]}
                results.append(Result(
                    dataset=corpus.name, metric=metric, value=sum(vals) / len(vals), ci=L.bootstrap_score(runs, m),
                    higher_is_better=hib, signature=sig(metric, spec, corpus.fingerprint),
                    details={**common, "lm_eval_stderr": [(r.metrics.get(m) or [None, None])[1] for r in runs]}))
                if with_delta:
                    dmetric = f"{metric}-delta"
                    delta, dci = L.paired_delta(b, runs, m)
                    results.append(Result(
                        dataset=corpus.name, metric=dmetric, value=delta, ci=dci, higher_is_better=hib,
                        signature=sig(dmetric, spec, corpus.fingerprint),
                        details={**common, "base": L.score(b, m),
                                 "interval": ("paired percentile bootstrap over documents"
                                              + (" and seeds" if len(seeds) > 1 else "")) if dci else None}))
    store = ResultStore(out)
    for r in results:
        store.put(r)
    store.flush()
    timings["total"] = round(time.perf_counter() - t0, 2)
    meta = {
        "harness": __version__, "seed": seeds[0], "sample_size": None, "embedder": None,
        "command": "lm-utility", "lm": {"name": lm.name, "identity": lm.identity, "location": lm.location},
        "recipe": recipe.identity(), "seeds": seeds, "device": device, "lm_eval": version,
        "tasks": [{"label": s.label, "task": s.name, "kind": s.kind, "docs": len(s.rows) or None,
                   "source": s.source, "fingerprint": s.fingerprint} for s in specs],
        "task_folder": str(folder), "limit": args.limit, "chat_template": args.chat_template,
        "training": train_meta, "timings_seconds": timings,
        "reference": {"name": base_name, "role": "reference", "source": lm.identity, "kind": "model",
                      "rows": None, "fingerprint": None, "sample": None, "labels": None},
        "candidates": [{"name": c.name, "role": "candidate", "source": c.source, "kind": c.kind, "rows": len(c),
                        "fingerprint": c.fingerprint, "sample": None, "labels": None} for c in corpora],
        "metrics": list(dict.fromkeys(r.metric for r in results)),
    }
    write_report(out, store.all(), meta)
    table = render_table(store.all(), meta)
    atomic_write_text(out / "lm-utility.md", table)
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(table)
    log(f"wrote {out / 'results.jsonl'}, {out / 'lm-utility.md'} and the report in {timings['total']} s")
    return 0


def _fmt(v, ci=None, signed=False, digits=4):
    if v is None:
        return "–"
    s = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    if ci is not None:
        s += f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if signed else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return s


def render_table(results, meta) -> str:
    """The Markdown table: one row per model (the base first), per task its score and the delta to the base."""
    from ..report.markdown import md_escape

    cell = {(r.dataset, r.metric): r for r in results}
    rows = [meta["reference"]["name"]] + [c["name"] for c in meta["candidates"]]
    cols = []
    for t in meta["tasks"]:
        lab = t["label"]
        if t["kind"] == "perplexity":
            cols += [(f"lm-utility/{lab}/bits-per-byte", f"{lab}: bits/byte ↓", False),
                     (f"lm-utility/{lab}/bits-per-byte-delta", f"{lab}: Δ bits/byte ↓", True),
                     (f"lm-utility/{lab}/word-perplexity", f"{lab}: word ppl ↓", False)]
        elif t["kind"] == "multiple_choice":
            cols += [(f"lm-utility/{lab}/mc-accuracy", f"{lab}: accuracy ↑", False),
                     (f"lm-utility/{lab}/mc-accuracy-delta", f"{lab}: Δ accuracy ↑", True)]
        elif t["kind"] == "generation":
            cols += [(f"lm-utility/{lab}/exact-match", f"{lab}: exact match ↑", False),
                     (f"lm-utility/{lab}/exact-match-delta", f"{lab}: Δ exact match ↑", True)]
        else:
            for m in meta["metrics"]:
                if m.startswith(f"lm-utility/{lab}/"):
                    cols.append((m, m.split("/", 1)[1], m.endswith("-delta")))
    r = meta["recipe"]
    lines = [f"Base model {md_escape(meta['lm']['identity'])}; {r['mode']} fine-tuning to {r['token_budget']:,} "
             f"supervised tokens (lr {r['lr']:g}, batch {r['batch_size']}, max length {r['max_length']}"
             + (f", LoRA r={r['lora_r']} alpha={r['lora_alpha']}" if r["mode"] == "lora" else "")
             + f"), seeds {', '.join(map(str, meta['seeds']))}; lm-eval {meta['lm_eval']} on {meta['device']}. "
             "Values are means over seeds with 95% bootstrap intervals; Δ = fine-tuned − base, paired over the "
             "same documents.", ""]
    lines.append("| model | " + " | ".join(c[1] for c in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for name in rows:
        vals = []
        for metric, _, signed in cols:
            x = cell.get((name, metric))
            digits = 2 if "perplexity" in metric and not signed else (4 if "bits" in metric else 3)
            vals.append(_fmt(x.value, x.ci, signed, digits) if x else "–")
        lines.append(f"| {md_escape(name)} | " + " | ".join(vals) + " |")
    lines.append("")
    tr = meta.get("training") or {}
    if tr:
        lines += ["| candidate | rows | seed | tokens trained | input tokens | passes | train s | device | final loss |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        rows_of = {c["name"]: c["rows"] for c in meta["candidates"]}
        for name, runs in tr.items():
            for t in runs:
                lines.append(f"| {md_escape(name)} | {rows_of.get(name, '?')} | {t['seed']} | {t['tokens_trained']:,} | "
                             f"{t['tokens_input']:,} | {t['passes']} | {t['train_seconds']} | {t['device']} | "
                             f"{t['final_loss']} |")
        lines.append("")
    lines.append("Tasks: " + "; ".join(f"{t['label']} = {t['kind']}, {t['docs'] or '?'} documents from "
                                         f"{md_escape(t['source'])}" for t in meta["tasks"]) + ".")
    return "\n".join(lines) + "\n"
