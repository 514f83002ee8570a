"""The bridge to EleutherAI lm-evaluation-harness: local task YAMLs, runs through its Python API, a cache.

synthbench writes lm-eval tasks over local JSONL files (``dataset_path: json`` with absolute
``data_files``), so they load offline:

- ``perplexity``: ``loglikelihood_rolling`` over held-out real texts (e.g. human-written responses),
  metrics ``word_perplexity``, ``byte_perplexity``, ``bits_per_byte`` (as lm-eval's wikitext task);
- ``multiple_choice``: rows ``{"query", "choices", "gold"}``, metrics ``acc``, ``acc_norm``; a labelled
  classification set becomes one with :func:`mc_rows_from_classification` (label names as choices);
- ``generation``: rows ``{"query", "answer"}``, greedy ``generate_until`` and ``exact_match``.

A task folder holds each task's YAML next to its normalised JSONL and is content-addressed under
``cache_root()/lmeval/tasks/<hash>/`` (the data are copies of the user's files: they stay out of the
project and the report folders). Tasks registered in lm-eval can be named too; offline their data are
usually not reachable, which :func:`check_registered` turns into a one-line error.

:func:`evaluate` runs ``lm_eval.simple_evaluate(model="hf", ...)`` with a ``TaskManager`` whose include
path is the task folder, and keeps the per-document values (``log_samples``) so that differences
between two models are bootstrapped *paired* over the same documents (:func:`paired_delta`). Results are
cached under ``cache_root()/lmeval/results/`` keyed by (model identity, task fingerprints, limit, chat
template, lm-eval version), so a rerun or a second report evaluates nothing.

Memory (issue 25). lm-eval materialises the full-vocabulary log-softmax of a whole batch (batch x padded
length x vocabulary floats, twice). :func:`plan_eval` bounds it by ``max_memory`` (default 4 GiB, as
fine-tuning): the batch size is lowered until a batch of the longest request fits; when even one request
does not, lm-eval's ``max_length`` is capped (longer texts are then scored in rolling windows, and the
cap enters the results key). Under ``progress=False`` lm-eval's progress bars are silenced, and its git
probe (``git describe``, which prints ``fatal: not a git repository`` outside a checkout) never prints.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.types import canonical_json, sha256_hex

PERPLEXITY = "perplexity"
MULTIPLE_CHOICE = "multiple_choice"
GENERATION = "generation"
REGISTERED = "registered"
MC_QUESTION = "Question: Which of these labels fits the text best: {labels}?\nAnswer:"
LN2 = math.log(2)


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task as synthbench uses it. ``label`` names it in metric names and tables."""

    label: str
    kind: str
    rows: tuple = ()            # normalised rows (dicts) for local tasks
    task: str = ""              # the lm-eval task name (local tasks: derived from label)
    source: str = ""            # where the rows came from
    options: tuple = ()         # sorted (key, value) pairs: generation settings

    @property
    def name(self) -> str:
        if self.kind == REGISTERED:
            return self.task
        return self.task or f"synthbench_{_slug(self.label)}"

    @property
    def fingerprint(self) -> str:
        if self.kind == REGISTERED:
            return sha256_hex("registered", self.task)[:16]
        return sha256_hex(canonical_json({"kind": self.kind, "name": self.name, "rows": list(self.rows),
                                          "options": list(self.options)}))[:16]

    def __len__(self) -> int:
        return len(self.rows)


def _slug(text: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return s or "task"


# ----------------------------------------------------------------------------- reading task data

def _read_rows(path: Path) -> list[dict]:
    """Rows of a .jsonl/.json file (a list of objects or one object per line)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found", "check the path")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON list of objects", "give a .jsonl file or a list")
        return data
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {i}: not JSON ({e.msg})", "give one JSON object per line") from None
    return rows


def _sample(rows: list, n: int | None, seed: int, strata: list | None = None) -> list:
    """``n`` rows drawn without replacement (seeded; stratified by ``strata`` when given), source order kept."""
    import numpy as np

    if n is None or n >= len(rows):
        return list(rows)
    rng = np.random.default_rng(seed)
    if strata is None:
        idx = rng.choice(len(rows), size=n, replace=False)
    else:
        groups: dict = {}
        for i, s in enumerate(strata):
            groups.setdefault(s, []).append(i)
        keys = sorted(groups, key=str)
        share = {k: n * len(groups[k]) // len(rows) for k in keys}
        for k in sorted(keys, key=lambda k: -(n * len(groups[k]) % len(rows)))[: n - sum(share.values())]:
            share[k] += 1  # largest remainders
        idx = np.concatenate([rng.choice(groups[k], size=min(share[k], len(groups[k])), replace=False)
                              for k in keys])
    return [rows[i] for i in sorted(int(i) for i in idx)]


def perplexity_task(label: str, path: Path, field: str | None = None, limit_rows: int | None = None,
                    seed: int = 0) -> TaskSpec:
    """A rolling-loglikelihood task over the texts of ``path`` (field ``output``, else ``text``, or ``field``)."""
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows", "give held-out texts, one JSON object per line")
    col = field or ("output" if "output" in rows[0] else "text" if "text" in rows[0] else None)
    if col is None or any(col not in r for r in rows):
        raise UserError(f"{path}: no '{field or 'output'}' or 'text' field in every row",
                        "name the field holding the held-out texts with --eval-field")
    texts = [str(r[col]) for r in rows if isinstance(r.get(col), str) and r[col].strip()]
    texts = _sample(texts, limit_rows, seed)
    return TaskSpec(label=label, kind=PERPLEXITY, rows=tuple({"text": t} for t in texts),
                    source=f"{Path(path).resolve()}:{col}")


def mc_rows_from_classification(texts: Sequence[str], labels: Sequence, choices: Sequence[str] | None = None,
                                names: dict | None = None, question: str = MC_QUESTION) -> list[dict]:
    """Classification rows as multiple choice: the text, a question listing the label names, the names as
    choices (lm-eval scores each choice's log-likelihood after the query), the true one as gold.

    ``names`` maps raw labels to the words used as choices (e.g. ``{"0": "negative", "1": "positive"}``).

    >>> mc_rows_from_classification(["Stocks fell."], ["Business"], choices=["Business", "Sports"])[0]["gold"]
    0
    """
    names = {str(k): str(v) for k, v in (names or {}).items()}
    named = [names.get(str(lab), str(lab)) for lab in labels]
    choices = list(choices) if choices is not None else sorted(set(named))
    index = {c: i for i, c in enumerate(choices)}
    q = question.format(labels=", ".join(choices))
    rows = []
    for text, lab in zip(texts, named):
        if lab not in index:
            raise UserError(f"label '{lab}' is not among the choices {choices}", "list every label name")
        rows.append({"query": f"{text.strip()}\n{q}", "choices": choices, "gold": index[lab]})
    return rows


def mc_task(label: str, path: Path, limit_rows: int | None = None, seed: int = 0, names: dict | None = None,
            text_field: str = "text", label_field: str = "label") -> TaskSpec:
    """A multiple-choice task from ``path``: rows with ``query``/``choices``/``gold`` are taken as they are;
    rows with a text and a label become classification-as-multiple-choice (a stratified seeded sample of
    ``limit_rows``)."""
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows", "give multiple-choice rows or labelled texts")
    if all(k in rows[0] for k in ("query", "choices", "gold")):
        out = []
        for i, r in enumerate(rows, 1):
            ok = (isinstance(r.get("query"), str) and isinstance(r.get("choices"), list) and r["choices"]
                  and isinstance(r.get("gold"), int) and 0 <= r["gold"] < len(r["choices"]))
            if not ok:
                raise UserError(f"{path}: row {i}: needs a text 'query', a list 'choices' and an integer 'gold' "
                                "indexing it", "fix the row")
            out.append({"query": r["query"], "choices": [str(c) for c in r["choices"]], "gold": r["gold"]})
        out = _sample(out, limit_rows, seed)
    elif text_field in rows[0] and label_field in rows[0]:
        rows = [r for r in rows if isinstance(r.get(text_field), str) and r[text_field].strip()]
        labels = [r[label_field] for r in rows]
        names = names or {}
        choices = sorted({names.get(str(x), str(x)) for x in labels})
        rows = _sample(rows, limit_rows, seed, strata=[str(x) for x in labels])
        out = mc_rows_from_classification([r[text_field] for r in rows], [r[label_field] for r in rows],
                                          choices=choices, names=names)
    else:
        raise UserError(f"{path}: rows need 'query', 'choices', 'gold' (multiple choice) or "
                        f"'{text_field}' and '{label_field}' (a labelled set)", "convert the file")
    return TaskSpec(label=label, kind=MULTIPLE_CHOICE, rows=tuple(out), source=str(Path(path).resolve()))


def generation_task(label: str, path: Path, limit_rows: int | None = None, seed: int = 0,
                    until: Sequence[str] = ("\n",), max_gen_toks: int = 32) -> TaskSpec:
    """A greedy generation task scored by exact match (case, punctuation and outer spaces ignored):
    rows ``{"query", "answer"}`` (or ``instruction``/``input``/``output``, the prompt ending in ``Answer:``)."""
    rows = _read_rows(path)
    out = []
    for i, r in enumerate(rows, 1):
        if "query" in r and "answer" in r:
            q, a = r["query"], r["answer"]
        elif "instruction" in r and "output" in r:
            inp = (r.get("input") or "").strip()
            q, a = r["instruction"].strip() + (f"\n{inp}" if inp else "") + "\nAnswer:", r["output"]
        else:
            raise UserError(f"{path}: row {i}: needs 'query' and 'answer' (or 'instruction' and 'output')",
                            "fix the row")
        out.append({"query": str(q), "answer": str(a).strip()})
    out = _sample(out, limit_rows, seed)
    opts = (("max_gen_toks", int(max_gen_toks)), ("until", list(until)))
    return TaskSpec(label=label, kind=GENERATION, rows=tuple(out), source=str(Path(path).resolve()), options=opts)


def registered_task(name: str) -> TaskSpec:
    return TaskSpec(label=name, kind=REGISTERED, task=name, source="lm-eval registry")


# ----------------------------------------------------------------------------- YAML

def task_config(spec: TaskSpec, data_file: Path) -> dict:
    """The lm-eval task config (as YAML data) of a local task reading ``data_file`` (absolute)."""
    base = {"task": spec.name, "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
            "test_split": "test", "metadata": {"version": 1.0, "synthbench": spec.fingerprint}}
    if spec.kind == PERPLEXITY:
        return {**base, "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "text",
                "metric_list": [{"metric": m, "aggregation": a, "higher_is_better": False} for m, a in
                                (("word_perplexity", "weighted_perplexity"),
                                 ("byte_perplexity", "weighted_perplexity"), ("bits_per_byte", "bits_per_byte"))]}
    if spec.kind == MULTIPLE_CHOICE:
        return {**base, "output_type": "multiple_choice", "doc_to_text": "query", "doc_to_choice": "choices",
                "doc_to_target": "gold",
                "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                for m in ("acc", "acc_norm")]}
    if spec.kind == GENERATION:
        opts = dict(spec.options)
        return {**base, "output_type": "generate_until", "doc_to_text": "query", "doc_to_target": "answer",
                "generation_kwargs": {"until": list(opts.get("until", ["\n"])), "do_sample": False,
                                      "max_gen_toks": int(opts.get("max_gen_toks", 32))},
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                 "ignore_case": True, "ignore_punctuation": True,
                                 "regexes_to_ignore": ["^\\s+", "\\s+$"]}]}
    raise ValueError(f"{spec.kind}: not a local task kind")


def write_tasks(specs: Sequence[TaskSpec], folder: Path | None = None) -> Path:
    """Write the YAML and JSONL of every local task into one folder (default: content-addressed in the
    cache) and return it; lm-eval's ``TaskManager(include_path=folder)`` finds them there."""
    import yaml

    from harness.resources.cache import atomic_write_text, cache_root

    local = [s for s in specs if s.kind != REGISTERED]
    names = [s.name for s in local]
    if len(set(names)) != len(names):
        raise UserError(f"two tasks have the same name ({', '.join(names)})", "label them apart with NAME=FILE")
    if folder is None:
        folder = cache_root() / "lmeval" / "tasks" / sha256_hex(*(s.fingerprint for s in local))[:16]
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for s in local:
        data = folder / f"{s.name}.jsonl"
        atomic_write_text(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in s.rows))
        atomic_write_text(folder / f"{s.name}.yaml", yaml.safe_dump(task_config(s, data), sort_keys=False,
                                                                    allow_unicode=True))
    return folder


# ----------------------------------------------------------------------------- running lm-eval

def _git_hash_quietly():
    """lm-eval's ``get_git_commit_hash`` without its stderr: the checkout's hash, or None outside one."""
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@contextlib.contextmanager
def quiet_lm_eval(progress: bool = False):
    """While lm-eval runs: its git probe prints nothing, and without ``progress`` neither do its progress
    bars (lm-eval passes ``disable=False`` to some of them, so the module-level ``tqdm`` of every loaded
    lm-eval module is swapped for one that is always disabled), nor those of datasets and transformers."""
    import importlib
    import sys

    import tqdm as tqdm_pkg
    import tqdm.auto

    for name in ("lm_eval.evaluator", "lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (a module of another lm-eval version)
            pass
    undo = []

    def patch(obj, attr, value):
        undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    ev = sys.modules.get("lm_eval.evaluator")
    if ev is not None and hasattr(ev, "get_git_commit_hash"):
        patch(ev, "get_git_commit_hash", _git_hash_quietly)
    restore_bars = []
    if not progress:
        bars = {tqdm_pkg.tqdm, tqdm.auto.tqdm}

        class Silent(tqdm_pkg.tqdm):
            def __init__(self, *a, **k):
                k["disable"] = True
                super().__init__(*a, **k)

        for name, mod in list(sys.modules.items()):
            if name.split(".")[0] == "lm_eval" and getattr(mod, "tqdm", None) in bars:
                patch(mod, "tqdm", Silent)
        try:
            from datasets.utils import logging as ds_logging

            if ds_logging.is_progress_bar_enabled():
                ds_logging.disable_progress_bar()
                restore_bars.append(ds_logging.enable_progress_bar)
        except ImportError:
            pass
        from transformers.utils import logging as hf_logging

        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            restore_bars.append(hf_logging.enable_progress_bar)
    try:
        yield
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)
        for enable in restore_bars:
            enable()


@dataclass(frozen=True)
class EvalPlan:
    """lm-eval's batch size and ``max_length`` within a memory budget (``max_length`` None: the model's own)."""

    batch_size: int | str
    max_length: int | None
    longest: int | None      # tokens of the longest request (None: not known, a registered task)
    positions: int           # padded positions a batch may hold


def _request_lengths(tok, specs: Sequence[TaskSpec]) -> int | None:
    """Tokens of the longest request lm-eval will make for ``specs`` (an upper bound: the start token, the
    choice delimiter and a chat template's wrapping are counted generously); None with a registered task."""
    if any(s.kind == REGISTERED for s in specs):
        return None
    enc = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    longest = 0
    for s in specs:
        for r in s.rows:
            if s.kind == PERPLEXITY:
                n = enc(r["text"])
            elif s.kind == MULTIPLE_CHOICE:
                n = max(enc(f"{r['query']} {c}") for c in r["choices"])
            else:
                n = enc(r["query"]) + int(dict(s.options).get("max_gen_toks", 32))
            longest = max(longest, n)
    return longest + 32


def plan_eval(model_args: dict, specs: Sequence[TaskSpec], max_memory: int | None = None,
              batch_size: int | str = 8) -> EvalPlan:
    """Batch size (at most ``batch_size``) and ``max_length`` keeping an lm-eval run within ``max_memory``.

    Planned: the process allowance and the float32 weights, then per padded position three
    vocabulary-sized float32 rows (logits, log-softmax, slack) and the activations of one position.
    ``batch_size="auto"`` is left to lm-eval (it probes a GPU's memory).
    """
    from transformers import AutoConfig, AutoTokenizer

    from harness.resources.causal_ft import DEFAULT_MAX_MEMORY, PROCESS_ALLOWANCE, _shape, format_memory

    budget = int(max_memory) if max_memory else DEFAULT_MAX_MEMORY
    base = model_args["pretrained"]
    cfg = AutoConfig.from_pretrained(base)
    layers, hidden, inter, vocab = _shape(cfg)
    n_params = vocab * hidden * (1 if getattr(cfg, "tie_word_embeddings", False) else 2) \
        + layers * (4 * hidden * hidden + 3 * hidden * inter)
    per_pos = 3 * 4 * vocab + 4 * 16 * (hidden + inter)
    positions = (budget - PROCESS_ALLOWANCE - 4 * n_params) // per_pos
    if positions < 64:
        need = PROCESS_ALLOWANCE + 4 * n_params + 64 * per_pos
        raise UserError(f"a memory budget of {format_memory(budget)} does not hold this model's evaluation",
                        f"give --max-memory {format_memory(need)} or more")
    model_max = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    longest = _request_lengths(AutoTokenizer.from_pretrained(base), specs)
    need = min(int(model_max), longest) if longest is not None else int(model_max)
    max_length = None
    if need > positions:  # not even one request fits: lm-eval scores in windows of what does
        max_length = int(positions // 64 * 64)
        need = max_length
    if batch_size == "auto":
        return EvalPlan("auto", max_length, longest, int(positions))
    return EvalPlan(max(1, min(int(batch_size), positions // max(1, need))), max_length, longest, int(positions))


@dataclass
class TaskResult:
    """What one model scored on one task: lm-eval's aggregate metrics (value, stderr or None) and the
    per-document values that paired comparisons need."""

    task: str
    kind: str
    metrics: dict = field(default_factory=dict)   # name -> [value, stderr|None]
    docs: dict = field(default_factory=dict)      # name -> per-doc values (perplexity: loglikelihood, bytes, words)
    n: int = 0
    higher: dict = field(default_factory=dict)    # name -> lm-eval's higher_is_better

    def to_json(self) -> dict:
        return {"task": self.task, "kind": self.kind, "metrics": self.metrics, "docs": self.docs, "n": self.n,
                "higher": self.higher}

    @classmethod
    def from_json(cls, d: dict) -> TaskResult:
        return cls(task=d["task"], kind=d["kind"], metrics=d["metrics"], docs=d["docs"], n=d["n"],
                   higher=d.get("higher", {}))


def lm_eval_version() -> str:
    from importlib.metadata import version

    try:
        return version("lm_eval")
    except Exception:  # noqa: BLE001  (not installed: evaluate() raises the actionable error)
        return "missing"


def _import_lm_eval():
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("the lm-utility metrics need EleutherAI lm-eval",
                        "pip install 'lm-eval[hf]' peft gguf (or: pip install -e '.[lm]')") from None
    return lm_eval, TaskManager


def check_registered(names: Sequence[str], task_manager) -> None:
    """Raise a UserError for a registered task name lm-eval does not know, or whose data cannot be loaded."""
    if not names:
        return
    known = set(task_manager.all_tasks)
    for n in names:
        if n not in known:
            raise UserError(f"lm-eval knows no task named '{n}'",
                            "run 'lm_eval ls tasks' for the names, or declare a local task with --mc-task / "
                            "--eval-responses / --gen-task")
    from lm_eval.tasks import get_task_dict

    for n in names:
        try:
            get_task_dict([n], task_manager)
        except Exception as e:  # noqa: BLE001  (datasets raises many kinds when offline)
            offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            raise UserError(f"lm-eval task '{n}': its data could not be loaded "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})",
                            ("this machine is offline: run once with a network to fill the Hugging Face "
                             "datasets cache, or declare the task over a local file" if offline else
                             "check the network and the Hugging Face datasets cache")) from None


def _docs_of(kind: str, samples: list[dict]) -> tuple[dict, int]:
    samples = sorted(samples, key=lambda s: int(s["doc_id"]))
    docs: dict[str, list] = {}
    if kind == PERPLEXITY:
        docs["loglikelihood"] = [float(s["bits_per_byte"][0]) for s in samples]
        docs["bytes"] = [int(s["bits_per_byte"][1]) for s in samples]
        docs["words"] = [int(s["word_perplexity"][1]) for s in samples]
    else:
        for key in samples[0] if samples else []:
            vals = [s.get(key) for s in samples]
            if key not in ("doc_id", "target") and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in vals):
                docs[key] = [float(v) for v in vals]
    return docs, len(samples)


def evaluate(model_args: dict, specs: Sequence[TaskSpec], folder: Path | None, *, model_key: str,
             limit: int | None = None, batch_size: int | str = 8, device: str | None = None,
             apply_chat_template: bool = False, bootstrap_iters: int = 1000, threads: int | None = None,
             use_cache: bool = True, cache_dir: Path | None = None, max_memory: int | str | None = None,
             progress: bool = False, precision: str = "fp32") -> dict[str, TaskResult]:
    """Evaluate one model (lm-eval ``hf`` with ``model_args``) on ``specs``; results by task label.

    ``model_key`` identifies the weights for the cache (the LM identity, or a fine-tuning checkpoint key).
    ``batch_size`` is an upper bound, lowered to fit ``max_memory`` (:func:`plan_eval`); ``progress``
    shows lm-eval's progress bars. ``precision`` (resolved: fp32, bf16, fp16) is the compute precision
    (autocast around lm-eval, float32 weights); it is in ``model_key`` through the LM identity, and
    enters the results key here too when it is not fp32.
    """
    from harness.resources.cache import atomic_write_text, cache_root
    from harness.resources.causal_ft import parse_memory

    version = lm_eval_version()
    plan = plan_eval(model_args, specs, parse_memory(max_memory) if max_memory is not None else None, batch_size)
    key = sha256_hex("synthbench-lmeval-v1", model_key, canonical_json(sorted(s.fingerprint for s in specs)),
                     str(limit), str(bool(apply_chat_template)), version,
                     *([f"max_length={plan.max_length}"] if plan.max_length else []),
                     *([f"precision={precision}"] if precision != "fp32" else []))
    path = (Path(cache_dir) if cache_dir else cache_root() / "lmeval" / "results") / f"{key}.json"
    if use_cache and path.exists():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return {label: TaskResult.from_json(r) for label, r in d["tasks"].items()}
        except (OSError, ValueError, KeyError):
            pass
    lm_eval, TaskManager = _import_lm_eval()
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    registered = [s.task for s in specs if s.kind == REGISTERED]
    # lm-eval's own task index (thousands of YAMLs) is read only when a registered task is asked for
    tm = TaskManager(include_path=str(folder) if folder else None, include_defaults=bool(registered))
    check_registered(registered, tm)
    import logging

    for name in ("lm_eval", "lm-eval", "lm_eval.evaluator", "lm_eval.api.task"):
        logging.getLogger(name).setLevel(logging.ERROR)
    args = {"dtype": "float32", **model_args, **({"max_length": plan.max_length} if plan.max_length else {})}
    from harness.resources.precision import autocast

    with quiet_lm_eval(progress), autocast(precision, dev or "cpu"):
        out = lm_eval.simple_evaluate(model="hf", model_args=args, tasks=[s.name for s in specs], task_manager=tm,
                                      limit=limit, batch_size=plan.batch_size, device=dev,
                                      bootstrap_iters=bootstrap_iters, log_samples=True,
                                      apply_chat_template=apply_chat_template, verbosity="ERROR")
    results: dict[str, TaskResult] = {}
    for s in specs:
        agg = out["results"].get(s.name, {})
        metrics = {}
        for k, v in agg.items():
            if "," not in k or "_stderr," in k or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            m, filt = k.split(",", 1)
            se = agg.get(f"{m}_stderr,{filt}")
            metrics[m if filt == "none" else f"{m},{filt}"] = [float(v), float(se) if isinstance(se, (int, float))
                                                                and math.isfinite(se) else None]
        docs, n = _docs_of(s.kind, out.get("samples", {}).get(s.name, []))
        hib = {k: bool(v) for k, v in (out.get("higher_is_better", {}).get(s.name) or {}).items()
               if isinstance(v, bool)}
        results[s.label] = TaskResult(task=s.name, kind=s.kind, metrics=metrics, docs=docs, n=n, higher=hib)
    if use_cache:
        atomic_write_text(path, json.dumps({"model": model_key, "model_args": model_args, "limit": limit,
                                            "lm_eval": version, "device": dev, "batch_size": plan.batch_size,
                                            "max_length": plan.max_length,
                                            "tasks": {k: r.to_json() for k, r in results.items()}}) + "\n")
    return results


# ----------------------------------------------------------------------------- statistics

def bits_per_byte(loglik, nbytes) -> float:
    """lm-eval's bits_per_byte aggregation: -Σ log-likelihood / Σ bytes / ln 2."""
    import numpy as np

    return float(-np.sum(loglik) / np.sum(nbytes) / LN2)


def word_perplexity(loglik, nwords) -> float:
    """lm-eval's weighted perplexity: exp(-Σ log-likelihood / Σ words)."""
    import numpy as np

    return float(np.exp(-np.sum(loglik) / np.sum(nwords)))


def _stat(kind: str, metric: str, docs: dict, idx=None):
    """The statistic on a subset of documents (all when idx is None); vectorised over rows of idx."""
    import numpy as np

    def take(v):
        a = np.asarray(v, dtype=np.float64)
        return a if idx is None else a[idx]

    if kind == PERPLEXITY:
        ll = take(docs["loglikelihood"])
        if metric == "bits_per_byte":
            return -ll.sum(axis=-1) / take(docs["bytes"]).sum(axis=-1) / LN2
        return np.exp(-ll.sum(axis=-1) / take(docs["words"]).sum(axis=-1))
    return take(docs[metric]).mean(axis=-1)


def has_docs(result: TaskResult, metric: str) -> bool:
    """Whether per-document values of ``metric`` are there (for intervals and paired differences)."""
    if result.kind == PERPLEXITY:
        return metric in ("bits_per_byte", "word_perplexity") and bool(result.docs.get("loglikelihood"))
    return bool(result.docs.get(metric))


def score(result: TaskResult, metric: str) -> float:
    """The metric over all documents, from the per-document values (lm-eval's aggregate where none)."""
    if has_docs(result, metric):
        return float(_stat(result.kind, metric, result.docs))
    return float(result.metrics[metric][0])


def _replicates(runs: Sequence[TaskResult], metric: str, idx, rng):
    """Per replicate (a row of ``idx``): the mean over seeds of the score, seeds resampled when > 1."""
    import numpy as np

    per_seed = np.stack([_stat(r.kind, metric, r.docs, idx) for r in runs])  # seeds x replicates
    if len(runs) == 1:
        return per_seed[0]
    pick = rng.integers(0, len(runs), size=(idx.shape[0], len(runs)))
    return np.take_along_axis(per_seed.T, pick, axis=1).mean(axis=1)


def _bootstrap(fn, n: int, n_boot: int, seed: int):
    """95% percentile interval of ``fn(idx, rng)`` over ``n_boot`` document resamples (blocks of ~200k indices)."""
    import numpy as np

    from harness.stats import bootstrap_replicates, percentile_interval

    rng = np.random.default_rng(seed)
    reps = bootstrap_replicates(n, lambda idx: fn(idx, rng), n_boot, rng, max(1, 200_000 // n))
    return percentile_interval(np.asarray(reps, dtype=np.float64), tails=(0.025, 0.975))


def bootstrap_score(runs: TaskResult | Sequence[TaskResult], metric: str, n_boot: int = 2000, seed: int = 0):
    """95% percentile-bootstrap interval of the (seed-mean) score, resampling documents and, with several
    runs, seeds. Falls back to lm-eval's stderr (normal interval) without per-document values; None where
    neither exists or there are fewer than 2 documents."""
    from harness.stats import normal_ci

    runs = [runs] if isinstance(runs, TaskResult) else list(runs)
    n = runs[0].n
    if not all(has_docs(r, metric) for r in runs) or any(r.n != n for r in runs):
        se = [(r.metrics.get(metric) or [None, None])[1] for r in runs]
        if len(runs) == 1 and se[0] is not None:
            return normal_ci(score(runs[0], metric), se[0])
        return None
    if n < 2:
        return None
    return _bootstrap(lambda idx, rng: _replicates(runs, metric, idx, rng), n, n_boot, seed)


def paired_delta(base: TaskResult, tuned: Sequence[TaskResult], metric: str, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, tuple[float, float] | None]:
    """(mean over seeds of the fine-tuned score − base score, 95% percentile-bootstrap interval).

    Documents are resampled together for both models (paired: the same held-out texts); with more than
    one fine-tuning seed the seeds are resampled too, so the interval covers seed-to-seed variation.
    The interval is None without per-document values or with fewer than 2 documents.
    """
    import numpy as np

    value = float(np.mean([score(t, metric) for t in tuned]) - score(base, metric))
    n = base.n
    if n < 2 or any(t.n != n for t in tuned) or not all(has_docs(r, metric) for r in [base, *tuned]):
        return value, None
    return value, _bootstrap(lambda idx, rng: _replicates(tuned, metric, idx, rng)
                             - _stat(base.kind, metric, base.docs, idx), n, n_boot, seed)


def gap_recovered(base: TaskResult, tuned: Sequence[TaskResult], real: Sequence[TaskResult], metric: str,
                  n_boot: int = 2000, seed: int = 0) -> tuple[float, tuple[float, float] | None, int]:
    """(performance gap recovered, 95% percentile-bootstrap interval, resamples left out).

    ``(tuned − base) / (real − base)``: what fine-tuning on the candidate gained over the base model, as a
    share of what fine-tuning on real training text at the same token budget gained (mean over seeds of
    each). The ratio does not depend on the metric's direction. Documents are resampled together for the
    three models, and seeds with them; resamples where the real model's gain vanishes are left out and
    counted. Interval None without per-document values or with fewer than 2 documents. AgoraBench (Kim et
    al. 2024, arXiv 2412.03679).
    """
    import numpy as np

    from harness.stats import bootstrap_replicates, percentile_interval

    b0 = score(base, metric)
    value = float((np.mean([score(t, metric) for t in tuned]) - b0) / (np.mean([score(r, metric) for r in real]) - b0))
    n = base.n
    runs = [base, *tuned, *real]
    if n < 2 or any(r.n != n for r in runs) or not all(has_docs(r, metric) for r in runs):
        return value, None, 0
    rng = np.random.default_rng(seed)

    def ratio(idx):
        b = _stat(base.kind, metric, base.docs, idx)
        num = _replicates(tuned, metric, idx, rng) - b
        den = _replicates(real, metric, idx, rng) - b
        ok = np.abs(den) > 1e-12
        return num[ok] / den[ok]

    reps = np.asarray(bootstrap_replicates(n, ratio, n_boot, rng, max(1, 200_000 // n)), dtype=np.float64)
    if len(reps) < 2:
        return value, None, n_boot - len(reps)
    return value, percentile_interval(reps, tails=(0.025, 0.975)), n_boot - len(reps)
