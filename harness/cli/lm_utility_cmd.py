"""``synthbench lm-utility``: fine-tune a causal LM on each candidate and evaluate it with lm-eval."""

from __future__ import annotations

import argparse
import os

NAME = "lm-utility"
HELP = "fine-tune a small causal LM on each candidate (same token budget) and compare it with the base model in lm-eval"
DESCRIPTION = """\
synthbench lm-utility CANDIDATE... --token-budget N --out DIR
    [--eval-responses [NAME=]FILE]... [--mc-task [NAME=]FILE]... [--gen-task [NAME=]FILE]... [--task NAME]...
    [--lm default] [--full] [--seeds 1] [--limit N] [--device cuda|cpu] [--chat-template] [--max-memory 4G]

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
else on the CPU (minutes per 10k tokens for a 135M model on a laptop).

Memory is bounded by --max-memory (default 4G: resident memory on the CPU, device memory on a GPU),
whatever the token budget: each training step of --batch-size rows is computed in micro-batches that fit
it (gradients accumulated, so the step's loss is unchanged), logits are made only at the response tokens
and a few hundred positions at a time, and lm-eval's batch size is lowered to fit."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.cli.common import add_field_flags

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
    g.add_argument("--eval-batch-size", default="8", metavar="N|auto",
                   help="lm-eval batch size (default 8; lowered to fit --max-memory)")
    t = p.add_argument_group("fine-tuning")
    t.add_argument("--token-budget", type=int, required=True, metavar="N",
                   help="supervised tokens to train on, the same for every candidate")
    t.add_argument("--real", metavar="[NAME=]FILE",
                   help="real training text (same format as a candidate), fine-tuned at the same token budget and "
                        "seeds: adds lm-utility/<task>/<score>-gap-recovered = (candidate - base) / (real - base)")
    t.add_argument("--lm", default="default", help="base causal LM: 'default' (SmolLM2-135M-Instruct, offline), "
                   "a local folder, or a hub id (needs a network)")
    t.add_argument("--full", action="store_true", help="fine-tune all weights instead of LoRA adapters")
    t.add_argument("--seeds", type=int, default=1, metavar="K", help="fine-tune with seeds 0..K-1 (default 1)")
    t.add_argument("--lr", type=float, help="learning rate (default 2e-4 LoRA, 2e-5 full)")
    t.add_argument("--batch-size", type=int, default=16, help="training batch size in rows per optimizer step "
                   "(default 16; computed in micro-batches that fit --max-memory)")
    t.add_argument("--max-length", type=int, default=512, help="longest training sequence in tokens (default 512)")
    t.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8; alpha = 2r)")
    t.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    t.add_argument("--max-memory", default="4G", metavar="SIZE",
                   help="memory budget of fine-tuning and lm-eval, e.g. 4G, 8G, 2.5GiB (default 4G)")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                   help="compute precision of fine-tuning and lm-eval (default auto: bf16 on GPUs that have it and on "
                        "CPUs with AVX512-BF16/AMX, fp16 on other GPUs, fp32 elsewhere)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_field_flags(p)


def _named(spec: str) -> tuple[str, str]:
    from pathlib import Path

    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        if name and path:
            return name, path
    return Path(spec).stem, spec


def _labels_map(text: str | None) -> dict:
    from harness.errors import UserError

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

    from harness.errors import UserError
    from harness.resources import lmeval as L

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


def run(args) -> int:
    import sys
    import time
    from pathlib import Path

    from harness.api import execute
    from harness.cli.common import progress_enabled
    from harness.data.load import FieldMap, load_corpus, parse_named, unique_names
    from harness.errors import UserError
    from harness.metrics.indirect.lm_finetune import specs as lm_specs
    from harness.report.lm_utility_table import render_table
    from harness.resources import lmeval as L
    from harness.resources.cache import atomic_write_text
    from harness.resources.causal_ft import FTRecipe, format_memory, parse_memory, pick_device
    from harness.resources.causal_lm import resolve_lm, with_precision
    from harness.resources.lm_utility import LMUtility
    from harness.types import Corpus

    progress = progress_enabled(args.no_progress)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.token_budget < 1:
        raise UserError(f"--token-budget {args.token_budget}: must be positive", "give a number of tokens, e.g. 100000")
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: must be at least 1", "give 1 or more")
    try:
        max_memory = parse_memory(args.max_memory)
    except ValueError as e:
        raise UserError(f"--max-memory {args.max_memory}: {e}", "give a size such as 4G or 8G") from None
    out = Path(args.out)
    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    parsed = [parse_named(c) for c in args.candidates]
    names = unique_names(parsed)
    if len(set(names)) != len(names):
        raise UserError("two candidates have the same name", "name them apart with NAME=PATH")
    corpora = [load_corpus(path, fields, name=name, split=args.split) for name, (_, path) in zip(names, parsed)]
    real = None
    if args.real:
        rname, (_, rpath) = unique_names([parse_named(args.real)])[0], parse_named(args.real)
        real = load_corpus(rpath, fields, name=rname, split=args.split)
    tasks = build_tasks(args)
    lm = resolve_lm(args.lm)
    recipe = FTRecipe(mode="full" if args.full else "lora", token_budget=args.token_budget, lr=args.lr,
                      batch_size=args.batch_size, max_length=args.max_length, lora_r=args.lora_r,
                      lora_alpha=2 * args.lora_r)
    seeds = list(range(args.seeds))
    folder = L.write_tasks(tasks)
    device = pick_device(args.device)
    precision = args.precision if args.precision is not None else os.environ.get("SYNTHBENCH_PRECISION")
    lm = with_precision(lm, precision, device)  # fine-tuning and lm-eval run at it; "@bf16" in the identity
    if args.eval_batch_size != "auto" and not str(args.eval_batch_size).isdigit():
        raise UserError(f"--eval-batch-size {args.eval_batch_size}: not a number", "give N or 'auto'")
    batch = args.eval_batch_size if args.eval_batch_size == "auto" else int(args.eval_batch_size)
    eval_kw = dict(limit=args.limit, batch_size=batch, device=device, apply_chat_template=args.chat_template,
                   threads=args.threads, precision=lm.precision)
    log(f"lm-utility: {len(corpora)} candidate(s) x {len(seeds)} seed(s), base {lm.name}, "
        f"{recipe.mode} fine-tuning to {recipe.token_budget:,} tokens on {device} ({lm.precision}) "
        f"within {format_memory(max_memory)}; "
        f"tasks {', '.join(s.label for s in tasks)} (folder {folder})")
    t0 = time.perf_counter()
    lmu = LMUtility(lm=lm, recipe=recipe, seeds=seeds, tasks=tasks, folder=folder, eval_kw=eval_kw, device=device,
                    train_device=args.device, threads=args.threads, progress=progress, max_memory=max_memory,
                    log=log, real=real)
    specs = lm_specs(lmu)  # the registered tasks' metrics are known once the base model is evaluated
    base_name = f"{lm.name if lm.name != 'default' else 'SmolLM2-135M-Instruct'} (base)"
    base = Corpus(name=base_name, source=lm.identity, kind="model", texts=())
    extra = {"command": "lm-utility", "lm": {"name": lm.name, "identity": lm.identity, "location": lm.location},
             "recipe": recipe.identity(), "seeds": seeds, "device": device, "lm_eval": L.lm_eval_version(),
             "max_memory": max_memory,
             "real": None if real is None else {"name": real.name, "source": real.source, "rows": len(real),
                                                "fingerprint": real.fingerprint},
             "precision": {"requested": precision or "auto", "ran": lm.precision},
             "tasks": [{"label": s.label, "task": s.name, "kind": s.kind, "docs": len(s.rows) or None,
                        "source": s.source, "fingerprint": s.fingerprint} for s in tasks],
             "task_folder": str(folder), "limit": args.limit, "chat_template": args.chat_template,
             "reference": {"name": base_name, "role": "reference", "source": lm.identity, "kind": "model",
                           "rows": None, "fingerprint": None, "sample": None, "labels": None}}
    result = execute(corpora, base, None, specs, out, seed=seeds[0], progress=progress, extra_meta=extra, log=log,
                     resources={"lm_eval": lmu})
    lmu.timings["total"] = round(time.perf_counter() - t0, 2)
    result.meta.update({"training": lmu.training, "timings_seconds": lmu.timings})
    result.write()  # run.json and the reports again, now with the training record
    table = render_table(result.results, result.meta)
    atomic_write_text(out / "lm-utility.md", table)
    print(table)
    for d, m, why in result.failed:
        log(f"FAILED: {d} {m}: {why}")
    log(f"wrote {out / 'results.jsonl'}, {out / 'lm-utility.md'} and the report in {lmu.timings['total']} s "
        f"({result.computed} computed, {result.reused} reused)")
    return 1 if result.failed else 0
