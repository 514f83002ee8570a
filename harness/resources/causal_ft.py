"""Fine-tune a causal language model on a dataset under a fixed token budget (LoRA or full), cached.

This is the training half of the ``lm-utility`` metrics (issue 6): does a small causal LM fine-tuned on
a synthetic dataset get better on real text and tasks? ``harness.resources.lmeval`` is the evaluation half.

Data. Instruction rows (``instruction``, ``input``, ``output``) are rendered with the model's chat
template (user turn = instruction, a blank line, input; assistant turn = output) and trained with the
loss on the response only: every prompt token gets the label -100. Plain-text rows are trained on every
token (long texts are cut into windows of ``max_length``). Tokenizers without a chat template get the
Alpaca prompt (``### Instruction:`` / ``### Input:`` / ``### Response:``) and the EOS token.

Budget. Training runs until exactly ``token_budget`` *supervised* tokens (tokens with a label, i.e. the
response tokens of instruction data, all but the first token of each plain-text window) have been
trained on, cycling through the data in a new seeded order each pass. Datasets of different sizes thus
get the same amount of training signal; a small set is repeated, a large one is only partly seen
(``meta['passes']`` says how far). The last batch is cut to the budget by masking the surplus labels.
The learning rate follows the budget: linear warm-up over the first ``warmup`` fraction of the tokens,
then linear decay to zero.

Cache. A checkpoint is stored under ``cache_root()/lmft/<key>/`` where the key is sha256 of (the model
identity, the recipe's fields, the data fingerprint, the seed). It is written into a temporary folder
and renamed into place, so a crash leaves nothing half-written; a second call with the same key loads
nothing and trains nothing. LoRA checkpoints hold the adapter (``adapter_config.json``,
``adapter_model.safetensors``); full fine-tuning holds the whole model and tokenizer. ``meta.json``
records what was trained: tokens, steps, passes, seconds, device, loss curve.

Memory (issue 25). A step trains on ``batch_size`` rows, but the rows go through the model in
*micro-batches* whose padded tokens fit a memory budget (``max_memory``, default 4 GiB: the process's
resident memory on the CPU, device memory on CUDA), with the gradients accumulated over them: the step's
loss is still the mean over all its supervised tokens. The budget is planned before training from the
model's shape (:func:`plan_memory`: weights, gradients and AdamW moments of the trained weights, an
allowance for the process, then activations per token), so the peak depends on ``max_length`` and the
budget, never on the token budget or the number of steps. Full-vocabulary logits are never made for a
whole batch: the decoder's last hidden states are taken at the supervised positions only and projected
through the output layer ``LOGIT_CHUNK`` positions at a time (:func:`response_loss`), each chunk's
gradient flowing back before the next is made. How a step is split changes nothing in what is
minimised; it changes the float summation order and, for LoRA, which dropout masks are drawn (a split
step draws them per micro-batch), so ``max_memory`` is recorded in ``meta.json`` and is not part of
the key.

Device: CUDA when available, else the CPU with ``torch.set_num_threads``. Weights stay float32; the
products run in the LM spec's precision (``--precision``, :mod:`harness.resources.precision`: ``auto``
is bf16 on GPUs that have it and on CPUs with AVX512-BF16/AMX, fp16 with loss scaling on other GPUs,
fp32 elsewhere), which is part of the LM identity and so of the key. The device is recorded in ``meta.json`` but is not part of the key.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.types import canonical_json, content_fingerprint, sha256_hex

#: counters for tests and benchmarks: trainings run and cache hits
STATS = {"trained": 0, "cached": 0}

CHAT = "chat"
TEXT = "text"
IGNORE = -100
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
KEY_VERSION = "synthbench-lmft-v1"
GiB = 1 << 30
DEFAULT_MAX_MEMORY = 4 * GiB
#: positions projected to the vocabulary at once (256 x 49,152 float32 logits = 48 MiB per copy)
LOGIT_CHUNK = 256
#: resident memory of the process besides the model: interpreter, torch, transformers, lm-eval,
#: tokenizer (0.25-0.5 GiB measured for ``synthbench lm-utility`` on the CPU), and allocator slack
PROCESS_ALLOWANCE = int(0.8 * GiB)
#: activation bytes kept for the backward pass per token, as a multiple of 4 x layers x (hidden +
#: intermediate) bytes; measured on SmolLM2-135M (30 layers, 576 + 1536) at up to 3.5 MiB per token with
#: LoRA (its dropout keeps a copy of every adapted input) and 1.2-1.4 MiB fully fine-tuned (logits included)
ACTIVATION_FACTOR = {"lora": 15.0, "full": 6.5}


@dataclass(frozen=True)
class FTRecipe:
    """How to fine-tune: every field changes the weights, so every field enters the cache key.

    ``mode`` is ``"lora"`` (default: rank-``lora_r`` adapters on ``lora_targets``) or ``"full"`` (all
    weights). ``lr`` defaults to 2e-4 for LoRA and 2e-5 for full fine-tuning. ``token_budget`` counts
    supervised tokens (see the module docstring).
    """

    mode: str = "lora"
    token_budget: int = 100_000
    lr: float | None = None
    batch_size: int = 16
    max_length: int = 512
    warmup: float = 0.05
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self):
        if self.mode not in ("lora", "full"):
            raise ValueError(f"mode must be 'lora' or 'full', not {self.mode!r}")
        if self.token_budget < 1 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("token_budget and batch_size must be positive and max_length at least 8")
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return 2e-4 if self.mode == "lora" else 2e-5

    def identity(self) -> dict:
        """The fields as they enter the key (LoRA fields only for LoRA; the learning rate resolved)."""
        d = asdict(self)
        d["lr"] = self.learning_rate
        d["lora_targets"] = list(self.lora_targets)
        if self.mode != "lora":
            for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
                d.pop(k)
        return d


@dataclass(frozen=True)
class TrainSet:
    """What to fine-tune on: instruction rows (``format='chat'``) or plain texts (``format='text'``)."""

    format: str
    rows: tuple = ()          # chat: (instruction, input, output) triples; text: strings
    name: str = ""

    @classmethod
    def from_corpus(cls, corpus) -> TrainSet:
        """Instruction corpora train as chat (response-only loss); any other corpus as plain text."""
        f = corpus.fields
        if {"instruction", "output"} <= set(f):
            ins, out = f["instruction"], f["output"]
            inp = f.get("input") or ("",) * len(ins)
            return cls(CHAT, tuple(zip(ins, inp, out)), corpus.name)
        return cls(TEXT, tuple(corpus.texts), corpus.name)

    @classmethod
    def instructions(cls, instructions: Sequence[str], inputs: Sequence[str] | None, outputs: Sequence[str],
                     name: str = "") -> TrainSet:
        inputs = inputs if inputs is not None else [""] * len(instructions)
        return cls(CHAT, tuple(zip(instructions, inputs, outputs)), name)

    @classmethod
    def texts(cls, texts: Sequence[str], name: str = "") -> TrainSet:
        return cls(TEXT, tuple(texts), name)

    @property
    def fingerprint(self) -> str:
        if self.format == CHAT:
            cols = list(zip(*self.rows)) if self.rows else [(), (), ()]
            return content_fingerprint((), None, {"format:chat": (), "instruction": cols[0], "input": cols[1],
                                                  "output": cols[2]})
        return content_fingerprint(self.rows, None, {"format:text": ()})

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Checkpoint:
    """A fine-tuned model in the cache. ``lm_eval_args()`` is what lm-eval's ``hf`` model needs."""

    key: str
    path: Path
    mode: str
    base: str            # the base model's location (folder or hub id)
    meta: dict = field(default_factory=dict)
    cached: bool = False  # True when this call trained nothing

    def lm_eval_args(self) -> dict:
        if self.mode == "lora":
            return {"pretrained": self.base, "peft": str(self.path)}
        return {"pretrained": str(self.path)}


# ----------------------------------------------------------------------------- rendering

def _user_content(instruction: str, inp: str) -> str:
    return instruction.strip() + (f"\n\n{inp.strip()}" if inp and inp.strip() else "")


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def render_prompt(tok, instruction: str, inp: str = "") -> str:
    """The prompt text up to where the response starts (the chat template's generation prompt)."""
    if has_chat_template(tok):
        return tok.apply_chat_template([{"role": "user", "content": _user_content(instruction, inp)}],
                                       tokenize=False, add_generation_prompt=True)
    block = f"### Input:\n{inp.strip()}\n\n" if inp and inp.strip() else ""
    return ALPACA_PROMPT.format(instruction=instruction.strip(), input_block=block)


def render_chat(tok, instruction: str, inp: str, output: str) -> tuple[str, str]:
    """(prompt text, response text) whose concatenation is the full rendered conversation."""
    prompt = render_prompt(tok, instruction, inp)
    if has_chat_template(tok):
        full = tok.apply_chat_template([{"role": "user", "content": _user_content(instruction, inp)},
                                        {"role": "assistant", "content": output}], tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation; "
                             "response-only masking needs that")
        return prompt, full[len(prompt):]
    return prompt, output + (tok.eos_token or "")


def encode_chat(tok, instruction: str, inp: str, output: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of one instruction row: the prompt's labels are -100 (response-only loss).

    The prompt and the response are tokenized apart, as at inference time (the model reads the prompt's
    tokens, then writes the response's). Cut to ``max_length`` tokens; a row whose prompt leaves no room
    for a response token has no supervised token (the caller drops it).
    """
    prompt, response = render_chat(tok, instruction, inp, output)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"]
    ids = (p + r)[:max_length]
    labels = ([IGNORE] * len(p) + r)[:max_length]
    return ids, labels


def encode_text(tok, text: str, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Windows of up to ``max_length`` tokens (the text, then EOS); every token but the first is a label."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        ids = ids + [tok.eos_token_id]
    out = []
    for s in range(0, len(ids), max_length):
        w = ids[s:s + max_length]
        if len(w) >= 2:
            out.append((w, [IGNORE] + w[1:]))
    return out


def encode(tok, data: TrainSet, max_length: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """All training examples of ``data`` and the number of rows dropped (no supervised token left)."""
    examples, dropped = [], 0
    for row in data.rows:
        if data.format == CHAT:
            ins, inp, out = row
            if not out.strip():
                dropped += 1
                continue
            ids, labels = encode_chat(tok, ins, inp, out, max_length)
            if sum(lab != IGNORE for lab in labels) == 0:
                dropped += 1
                continue
            examples.append((ids, labels))
        else:
            windows = encode_text(tok, row, max_length)
            dropped += not windows
            examples += windows
    return examples, dropped


# ----------------------------------------------------------------------------- batching and budget

def _batches(lengths, bs: int, rng):
    """One pass: shuffled batches of examples of similar length, in a shuffled order (the classifier
    fine-tuning's batching, :func:`harness.resources.trainers._length_batches`)."""
    from harness.resources.trainers import _length_batches

    return _length_batches(lengths, bs, rng)


def budget_batches(examples, batch_size: int, budget: int, seed: int):
    """Yield ``(rows, allowed)`` until ``budget`` supervised tokens are covered.

    ``allowed`` is the number of supervised tokens of this batch to train on: all of them, except in
    the last batch, where it is what is left of the budget. Passes over the data are reshuffled with
    the seed. Yields nothing for data without supervised tokens.
    """
    import numpy as np

    sup = np.array([sum(lab != IGNORE for lab in ex[1]) for ex in examples], dtype=np.int64)
    if len(examples) == 0 or sup.sum() == 0:
        return
    lengths = np.array([len(ex[0]) for ex in examples])
    rng = np.random.default_rng(seed)
    seen = 0
    while True:
        for b in _batches(lengths, batch_size, rng):
            n = int(sup[b].sum())
            if n == 0:
                continue
            take = min(n, budget - seen)
            yield b, take
            seen += take
            if seen >= budget:
                return


def collate(examples, rows, allowed: int, pad_id: int):
    """Right-padded tensors (input_ids, attention_mask, labels); labels past ``allowed`` supervised
    tokens (counted row by row, left to right) are masked to -100."""
    import torch

    width = max(len(examples[i][0]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    left = allowed
    for j, i in enumerate(rows):
        x, y = examples[i]
        ids[j, :len(x)] = torch.tensor(x)
        att[j, :len(x)] = 1
        yt = torch.tensor(y)
        if left <= 0:
            yt[:] = IGNORE
        else:
            pos = (yt != IGNORE).nonzero().flatten()
            if len(pos) > left:
                yt[pos[left:]] = IGNORE
            left -= min(len(pos), left)
        lab[j, :len(y)] = yt
    return ids, att, lab


def lr_at(progress: float, recipe: FTRecipe) -> float:
    """Learning rate at a fraction of the budget: linear warm-up, then linear decay to 0."""
    w = recipe.warmup
    if w > 0 and progress < w:
        return recipe.learning_rate * (progress + 1e-9) / w
    return recipe.learning_rate * max(0.0, (1 - progress) / max(1e-9, 1 - w))


# ----------------------------------------------------------------------------- memory

def parse_memory(text) -> int:
    """Bytes from ``4G``, ``4GiB``, ``512M``, ``3.5g`` or a plain number of bytes (suffixes are powers of 1024).

    >>> parse_memory("4G"), parse_memory("512MiB"), parse_memory(1000)
    (4294967296, 536870912, 1000)
    """
    import re

    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a size (write e.g. 4G, 2.5GiB or 512M)")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


def format_memory(n: int) -> str:
    """``4.0 GiB``, ``512 MiB``."""
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / (1 << 20):.0f} MiB"


@dataclass(frozen=True)
class MemoryPlan:
    """How a training step is computed within ``budget`` bytes (see the module docstring).

    ``micro_tokens``: padded tokens per forward/backward pass (rows x width of a micro-batch);
    ``fixed``: the bytes planned for the process, the weights and the trainable state;
    ``per_token``: the activation bytes planned per token; ``logit_chunk``: positions projected at once.
    """

    budget: int
    micro_tokens: int
    fixed: int
    per_token: int
    logit_chunk: int = LOGIT_CHUNK

    def to_json(self) -> dict:
        return {"max_memory": self.budget, "micro_tokens": self.micro_tokens, "planned_fixed": self.fixed,
                "planned_per_token": self.per_token, "logit_chunk": self.logit_chunk}


def _shape(config) -> tuple[int, int, int, int]:
    """(layers, hidden, intermediate, vocabulary) of a transformers config, with GPT-2-style fallbacks."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None) or 12
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 768
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    vocab = getattr(config, "vocab_size", None) or 50_000
    return int(layers), int(hidden), int(inter), int(vocab)


def plan_memory(config, n_params: int, n_trainable: int, mode: str, max_length: int,
                budget: int = DEFAULT_MAX_MEMORY) -> MemoryPlan:
    """The micro-batch size (in padded tokens) that keeps a training step within ``budget`` bytes.

    Planned: the process allowance, float32 weights (4 bytes a parameter), the trained weights' gradient
    and two AdamW moments (12 bytes a trained parameter), one chunk of logits with its log-softmax and
    gradient, then ``ACTIVATION_FACTOR`` x 4 x layers x (hidden + intermediate) bytes per token. Raises
    ValueError when not even one row of ``max_length`` tokens fits, naming the budget that would.
    """
    layers, hidden, inter, vocab = _shape(config)
    per_token = int(ACTIVATION_FACTOR.get(mode, ACTIVATION_FACTOR["full"]) * 4 * layers * (hidden + inter))
    fixed = PROCESS_ALLOWANCE + 4 * int(n_params) + 12 * int(n_trainable) + 4 * 4 * LOGIT_CHUNK * vocab
    micro = (int(budget) - fixed) // per_token
    if micro < max_length:
        need = fixed + per_token * max_length
        raise ValueError(f"a memory budget of {format_memory(int(budget))} does not hold one training row of "
                         f"{max_length} tokens for this model ({mode}: about {format_memory(need)} needed); "
                         f"raise --max-memory to {format_memory(need)} or lower --max-length")
    return MemoryPlan(budget=int(budget), micro_tokens=int(micro), fixed=int(fixed), per_token=per_token)


def micro_batches(widths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Consecutive groups of row indices whose padded size (rows x the longest row) is at most ``max_tokens``
    (a row longer than that is a group of its own). Rows of a step are of similar length, so little is padded.

    >>> micro_batches([3, 5, 4, 9, 2], 10)
    [[0, 1], [2], [3], [4]]
    >>> micro_batches([2, 2, 3, 3, 8], 9)
    [[0, 1, 2], [3], [4]]
    """
    groups: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for i, w in enumerate(widths):
        if cur and (len(cur) + 1) * max(width, w) > max_tokens:
            groups.append(cur)
            cur, width = [], 0
        cur.append(i)
        width = max(width, w)
    if cur:
        groups.append(cur)
    return groups


def _heads(model):
    """(decoder, output projection) of a causal LM (through a PEFT wrapper), or None when it has no plain head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        dec, head = base.get_decoder(), base.get_output_embeddings()
    except Exception:  # noqa: BLE001  (architectures without the accessors)
        return None
    return (dec, head) if dec is not None and head is not None else None


def head_is_plain(model, ids) -> bool:
    """Whether the model's logits are its output projection of the decoder's last hidden state (checked on
    ``ids`` in eval mode); models that scale or cap their logits fall back to full logits per micro-batch."""
    import torch

    parts = _heads(model)
    if parts is None:
        return False
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            full = model(input_ids=ids).logits.float()
            mine = parts[1](parts[0](input_ids=ids).last_hidden_state).float()
        return bool(torch.allclose(full, mine, rtol=1e-4, atol=1e-4))
    except Exception:  # noqa: BLE001
        return False
    finally:
        model.train(was)


def response_loss(model, ids, att, lab, denom: float, chunk: int = LOGIT_CHUNK, plain: bool = True,
                  scale: float = 1.0) -> float:
    """Forward and backward of one micro-batch; returns its summed cross-entropy (nats) over the labels.

    The gradient is that of (summed cross-entropy / ``denom``), so micro-batches of one step add up to the
    gradient of the step's mean loss. Labels are shifted by one (position t predicts ``lab[t]`` from the
    tokens before it) and -100 is ignored. ``scale`` multiplies the gradient (fp16 loss scaling). With ``plain`` the logits are made only at the labelled
    positions, ``chunk`` at a time, each chunk's gradient taken back to the hidden states before the next
    chunk is made; otherwise the model's own logits are used (one micro-batch of them).
    """
    import torch.nn.functional as F

    sel = lab[:, 1:] != IGNORE
    targets = lab[:, 1:][sel]
    if not plain:
        logits = model(input_ids=ids, attention_mask=att).logits
        loss = F.cross_entropy(logits[:, :-1][sel].float(), targets, reduction="sum")
        (loss / denom if scale == 1.0 else loss * (scale / denom)).backward()
        return float(loss.detach())
    dec, head = _heads(model)
    hidden = dec(input_ids=ids, attention_mask=att).last_hidden_state
    h = hidden[:, :-1][sel]
    hd = h.detach().requires_grad_(True)
    total = 0.0
    for i in range(0, targets.shape[0], chunk):
        loss = F.cross_entropy(head(hd[i:i + chunk]).float(), targets[i:i + chunk], reduction="sum")
        (loss / denom if scale == 1.0 else loss * (scale / denom)).backward()
        total += float(loss.detach())
    if hd.grad is not None:
        h.backward(hd.grad)
    del hidden, h, hd
    return total


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc ``malloc_trim``; a no-op elsewhere),
    so that what training freed does not stay resident while the model is evaluated."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ----------------------------------------------------------------------------- cache

def checkpoint_key(lm, recipe: FTRecipe, data: TrainSet, seed: int) -> str:
    return sha256_hex(KEY_VERSION, lm.identity, canonical_json(recipe.identity()), data.fingerprint,
                      str(int(seed)))


def checkpoint_root(cache_dir: Path | None = None) -> Path:
    from harness.resources.cache import cache_root

    return Path(cache_dir) if cache_dir is not None else cache_root() / "lmft"


def load_checkpoint(lm, recipe: FTRecipe, data: TrainSet, seed: int, cache_dir: Path | None = None):
    """The cached checkpoint for these inputs, or None."""
    key = checkpoint_key(lm, recipe, data, seed)
    path = checkpoint_root(cache_dir) / key
    meta_path = path / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Checkpoint(key=key, path=path, mode=recipe.mode, base=lm.location, meta=meta, cached=True)


# ----------------------------------------------------------------------------- training

def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def finetune(lm, data: TrainSet, recipe: FTRecipe, seed: int = 0, *, cache_dir: Path | None = None,
             device: str | None = None, threads: int | None = None, progress: bool = True,
             callback: Callable | None = None, log_every: int = 10,
             max_memory: int | str | None = None) -> Checkpoint:
    """Fine-tune ``lm`` (an :class:`~harness.resources.causal_lm.LMSpec`) on ``data``; cached by key.

    ``max_memory`` (bytes or ``"4G"``; default ``DEFAULT_MAX_MEMORY``) bounds the training step's memory
    (:func:`plan_memory`). ``callback(step, labels)`` is called with the label tensor of every batch (one
    optimizer step) the model is trained on (tests count the supervised tokens with it). Returns the
    :class:`Checkpoint`.
    """
    hit = load_checkpoint(lm, recipe, data, seed, cache_dir)
    if hit is not None:
        STATS["cached"] += 1
        return hit
    if len(data) == 0:
        raise ValueError(f"{data.name or 'the training set'} has no rows")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    dev = pick_device(device)
    if dev == "cpu":
        torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    key = checkpoint_key(lm, recipe, data, seed)
    t0 = time.perf_counter()
    torch.manual_seed(seed)

    tok = AutoTokenizer.from_pretrained(lm.location)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    examples, dropped = encode(tok, data, recipe.max_length)
    if not examples:
        raise ValueError(f"{data.name or 'the training set'}: no row has a token to train on")
    model = AutoModelForCausalLM.from_pretrained(lm.location, dtype=torch.float32)
    model.config.use_cache = False
    if recipe.mode == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                         target_modules=list(recipe.lora_targets), bias="none", task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            model = get_peft_model(model, cfg)
    model.to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    n_params = sum(p.numel() for p in model.parameters())
    mem_budget = parse_memory(max_memory) if max_memory is not None else DEFAULT_MAX_MEMORY
    try:
        plan = plan_memory(model.config, n_params, n_trainable, recipe.mode, recipe.max_length, mem_budget)
    except ValueError as e:
        from harness.errors import UserError

        raise UserError(f"{data.name or 'fine-tuning'}: {e}", "give --max-memory SIZE (e.g. 8G)") from None
    probe = torch.tensor([examples[0][0][:16]], device=dev)
    plain = head_is_plain(model, probe)
    opt = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay,
                            betas=(0.9, 0.999))
    from harness.resources.precision import autocast

    prec = getattr(lm, "precision", "fp32")  # the LM spec's compute precision (fp32 weights, autocast products)
    scaler = torch.amp.GradScaler("cuda", enabled=prec == "fp16" and dev.startswith("cuda"))
    budget = recipe.token_budget
    seen = inputs = steps = passes_fwd = 0
    pass_rows = len(examples)
    rows_done = 0
    curve: list[list[float]] = []
    acc_loss = acc_tok = 0.0
    with tqdm(total=budget, desc=f"fine-tuning on {data.name or 'data'}", unit="tok", unit_scale=True,
              leave=False, disable=True if not progress else None) as bar:
        for rows, allowed in budget_batches(examples, recipe.batch_size, budget, seed):
            for group in opt.param_groups:
                group["lr"] = lr_at(seen / budget, recipe)
            ids, att, lab = collate(examples, rows, allowed, pad_id)
            n_sup = int((lab != IGNORE).sum())
            if callback is not None:
                callback(steps, lab)
            # the loss in float32: the mean over this step's supervised tokens, its gradient accumulated
            # over micro-batches that fit the memory plan (each cut to its own longest row)
            widths = [int(w) for w in att.sum(dim=1)]
            loss_sum = 0.0
            for part in micro_batches(widths, plan.micro_tokens):
                w = max(widths[j] for j in part)
                g_ids, g_att, g_lab = (t[part, :w].to(dev) for t in (ids, att, lab))
                if not bool((g_lab[:, 1:] != IGNORE).any()):
                    continue
                with autocast(prec, dev):
                    loss_sum += response_loss(model, g_ids, g_att, g_lab, float(n_sup), plan.logit_chunk, plain,
                                              scale=scaler.get_scale() if scaler.is_enabled() else 1.0)
                passes_fwd += 1
                del g_ids, g_att, g_lab
            if scaler.is_enabled():  # fp16: gradients were scaled against underflow
                scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            if scaler.is_enabled():
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            step_loss = loss_sum / max(1, n_sup)
            steps += 1
            seen += n_sup
            inputs += int(att.sum())
            rows_done += len(rows)
            acc_loss += loss_sum
            acc_tok += n_sup
            if steps % log_every == 0:
                curve.append([seen, round(acc_loss / max(1.0, acc_tok), 4)])
                acc_loss = acc_tok = 0.0
            bar.update(n_sup)
            bar.set_postfix(loss=f"{step_loss:.3f}", refresh=False)
    if acc_tok:
        curve.append([seen, round(acc_loss / acc_tok, 4)])
    seconds = time.perf_counter() - t0
    meta = {
        "key": key, "model": lm.identity, "base": lm.location, "recipe": recipe.identity(), "seed": int(seed),
        "data": {"name": data.name, "format": data.format, "fingerprint": data.fingerprint,
                 "rows": len(data), "examples": len(examples), "dropped_rows": dropped},
        "tokens_trained": int(seen), "tokens_input": int(inputs), "steps": steps,
        "passes": round(rows_done / max(1, pass_rows), 3), "trainable_parameters": int(n_trainable),
        "loss_curve": curve, "seconds": round(seconds, 2), "device": _device_name(dev),
        "torch": torch.__version__, "bf16": prec == "bf16", "precision": prec,
        "memory": {**plan.to_json(), "forward_passes": passes_fwd, "plain_head": plain},
    }
    del opt, params
    model.eval()
    path = _save(model, tok, recipe, meta, checkpoint_root(cache_dir), key)
    del model
    release_memory()
    STATS["trained"] += 1
    return Checkpoint(key=key, path=path, mode=recipe.mode, base=lm.location, meta=meta, cached=False)


def _device_name(dev: str) -> str:
    import torch

    if dev.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name()}"
    return f"cpu ({torch.get_num_threads()} threads)"


def _save(model, tok, recipe: FTRecipe, meta: dict, root: Path, key: str) -> Path:
    """Write the checkpoint into a temporary folder, then rename it to ``root/key`` (atomic)."""
    from harness.resources.cache import atomic_write_text

    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key[:12]}-"))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    try:
        model = model.to("cpu")
        model.save_pretrained(tmp)
        if recipe.mode == "full":
            tok.save_pretrained(tmp)
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1) + "\n")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same key first: keep theirs
            if not (target / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def merge_lora(ckpt: Checkpoint, out: Path | None = None) -> Path:
    """Merge a LoRA checkpoint into its base model and save a full Hugging Face folder (cached next to it)."""
    if ckpt.mode != "lora":
        return ckpt.path
    target = Path(out) if out is not None else ckpt.path.parent / f"{ckpt.key}-merged"
    if (target / "config.json").exists():
        return target
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(ckpt.base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(ckpt.path)).merge_and_unload()
    tok = AutoTokenizer.from_pretrained(ckpt.base)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".merge-"))
    try:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
