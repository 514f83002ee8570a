"""Per-row negative log-likelihood under a causal language model, batched and cached.

For each text the scorer returns the *sum* of the token negative log-likelihoods (nats) and the number
of tokens scored, so that perplexity = exp(sum / count) and bits per byte = sum / ln 2 / bytes can be
derived, per row or pooled over a corpus.

How a text is scored (``SCHEME``; a change here changes the cache key):

- **Tokens**: the text is tokenized without special tokens and cut to its first ``max_length`` tokens
  (the number of truncated rows is reported). Every one of those tokens is scored.
- **Document start (BOS handling)**: one start token is put in front, so the first token of the text is
  predicted too: the tokenizer's own BOS when it adds one by itself (Llama, Mistral, Gemma); otherwise
  ``<|endoftext|>`` when the vocabulary has it (the GPT-2-style document separator, which SmolLM2, GPT-2,
  Pythia and Qwen were pretrained with); otherwise ``bos_token``, otherwise ``eos_token``. The start
  token itself is never scored. (For SmolLM2-135M-Instruct ``bos_token`` is the chat-turn marker
  ``<|im_start|>``: on 40 AG News articles it gives 93.4 against 83.1 for ``<|endoftext|>``.)
- **Batching**: texts are sorted by length and batched (at most ``batch_size`` texts and
  ``max_batch_tokens`` padded tokens per batch), padded on the **right** with the pad token (the EOS
  token when the tokenizer has none) and an attention mask. Right padding keeps every real token at
  the position it has when the text is scored alone (left padding would shift rotary positions unless
  position ids were rebuilt); padded positions are never scored.
- **Model**: eval mode, ``torch.inference_mode``, float32 weights on the CPU, products in the spec's
  precision (fp32 unless ``--precision`` says otherwise, :mod:`harness.resources.precision`). Logits are computed only for
  the scored positions, in chunks (a batch of 16 × 512 tokens would otherwise hold 1.6 GB of float32
  logits for a 49k vocabulary); a once-per-load check against the model's full forward pass falls back
  to full logits for models whose head is not a plain projection of the last hidden state.

Results are cached in SQLite per (model identity, max_length, scheme) and text hash, as embeddings are
(``harness.resources.cache.VectorStore``): a rerun, or another metric on the same texts, never calls the model.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.resources.embedder import text_key

SCHEME = "nll-v1:right-pad:doc-start-token"
DEFAULT_MAX_LENGTH = 512
DEFAULT_BATCH_SIZE = 8
DEFAULT_BATCH_TOKENS = 4096
_LOGIT_CHUNK = 1024  # scored positions per head projection (1024 × 49152 × 4 B = 200 MB)


@dataclass(frozen=True)
class RowNLL:
    """Per-row results, in input order (numpy arrays of equal length).

    ``nll``: sum of token negative log-likelihoods in nats over the scored tokens; ``tokens``: tokens
    scored (0 for an empty text); ``total_tokens``: the text's length in tokens before truncation;
    ``bytes``: UTF-8 bytes of the scored part of the text.
    """

    nll: object
    tokens: object
    total_tokens: object
    bytes: object

    def __len__(self) -> int:
        return len(self.nll)

    @property
    def scored(self):
        """Rows with at least one token (empty texts have no perplexity)."""
        return self.tokens > 0

    @property
    def truncated(self):
        return self.total_tokens > self.tokens

    @property
    def perplexity(self):
        """exp(mean NLL per token) per row; NaN for rows with no token."""
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.scored, np.exp(self.nll / np.maximum(self.tokens, 1)), np.nan)

    @property
    def bits_per_byte(self):
        """NLL in bits per UTF-8 byte per row (tokenizer-independent); NaN for empty rows."""
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.bytes > 0, self.nll / math.log(2) / np.maximum(self.bytes, 1), np.nan)


class PerplexityScorer:
    """Loads the causal LM on first use (a fully cached call never loads it); ``score`` returns RowNLL.

    ``spec`` is an ``LMSpec`` from ``harness.resources.causal_lm.resolve_lm`` (anything with ``name``,
    ``location`` and ``identity``). ``threads``: torch CPU threads while scoring (default: adapt to the
    cores other processes leave free, see ``ThreadGovernor``; ``SYNTHBENCH_THREADS`` fixes it).
    """

    def __init__(self, spec, cache_dir: Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_length: int = DEFAULT_MAX_LENGTH, progress: bool = True,
                 max_batch_tokens: int = DEFAULT_BATCH_TOKENS, threads: int | None = None, engine=None):
        if max_length < 1:
            raise UserError(f"max_length {max_length}: must be at least 1", "give a number of tokens such as 512")
        self.spec = spec
        self.batch_size = max(1, int(batch_size))
        self.max_length = int(max_length)
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.progress = progress
        self.threads = threads
        self.engine = engine  # harness.resources.engines.RayEngine: missing rows are scored on a cluster
        if cache_dir is None:
            from harness.resources.cache import cache_root

            cache_dir = cache_root()
        self.cache_dir = Path(cache_dir) / "perplexity"
        self._model = None
        self._tok = None
        self._prefix: int | None = None
        self._fast: bool | None = None
        self._stores: dict[int, object] = {}
        self._memo: dict[tuple, RowNLL] = {}
        # texts: scored by the model / found in the cache; model_calls: forward passes (batches)
        self.stats = {"scored": 0, "from_cache": 0, "model_calls": 0, "tokens": 0, "truncated": 0, "empty": 0}

    @property
    def identity(self) -> str:
        return self.spec.identity

    # ------------------------------------------------------------------ cache

    def cache_key(self, max_length: int) -> str:
        return hashlib.sha256(f"{self.spec.identity}|max_length={max_length}|{SCHEME}".encode()).hexdigest()[:20]

    def store(self, max_length: int):
        if max_length not in self._stores:
            from harness.resources.cache import VectorStore

            self._stores[max_length] = VectorStore(self.cache_dir / f"{self.cache_key(max_length)}.sqlite")
        return self._stores[max_length]

    # ------------------------------------------------------------------ model

    def _thread_plan(self) -> int | None:
        """Threads asked for (``threads=`` or ``SYNTHBENCH_THREADS``), or None to adapt to the load."""
        want = self.threads or int(os.environ.get("SYNTHBENCH_THREADS", "0") or 0)
        return want or None

    def load(self):
        """(model, tokenizer), loaded once; a model that cannot be loaded is a one-line UserError."""
        if self._model is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            from harness.resources.embedder import _device

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            device = _device()
            try:
                tok = AutoTokenizer.from_pretrained(self.spec.location)
                model = AutoModelForCausalLM.from_pretrained(
                    self.spec.location, dtype=torch.float32 if device == "cpu" else "auto")
            except Exception as e:  # offline hub ids, broken folders, not a causal LM
                first = (str(e).splitlines() or [type(e).__name__])[0][:160]
                raise UserError(f"--lm {self.spec.name}: could not load a causal language model ({first})",
                                "use 'default' (SmolLM2-135M-Instruct, offline), a local causal-LM folder, "
                                "or a hub id with a network") from None
            model.to(device).eval()
            if tok.pad_token_id is None:  # padding is masked out; any id will do, EOS is conventional
                tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
            tok.padding_side = "right"
            self._tok, self._model = tok, model
            self._prefix = self._start_token(tok)
        return self._model, self._tok

    def _start_token(self, tok) -> int:
        """The document-start token put in front of every text (see the module docstring)."""
        plain = tok("a", add_special_tokens=False)["input_ids"]
        special = tok("a", add_special_tokens=True)["input_ids"]
        if len(special) > len(plain) and special[-len(plain):] == plain and special[0] in tok.all_special_ids:
            return int(special[0])  # the tokenizer adds its own BOS
        vocab = tok.get_vocab()
        if "<|endoftext|>" in vocab:
            return int(vocab["<|endoftext|>"])
        for tid in (tok.bos_token_id, tok.eos_token_id):
            if tid is not None:
                return int(tid)
        raise UserError(f"--lm {self.spec.name}: the tokenizer has no BOS, EOS or <|endoftext|> token",
                        "use a causal LM whose tokenizer defines a bos_token or eos_token")

    @property
    def start_token(self) -> str:
        """The start token as text (loads the tokenizer and model)."""
        _, tok = self.load()
        return tok.convert_ids_to_tokens(self._prefix)

    def _forward_nll(self, ids, mask, fast: bool):
        """Per-position NLL of tokens 1.. given the previous ones, only where the target is real.

        Returns (row index, nll) tensors over the scored positions.
        """
        import torch
        import torch.nn.functional as F

        model = self._model
        sel = mask[:, 1:].bool()
        targets = ids[:, 1:][sel]
        rows = sel.nonzero()[:, 0]
        if fast:
            hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            h = hidden[:, :-1][sel]
            head = model.get_output_embeddings()
            parts = [F.cross_entropy(head(h[i:i + _LOGIT_CHUNK]).float(), targets[i:i + _LOGIT_CHUNK],
                                     reduction="none") for i in range(0, h.shape[0], _LOGIT_CHUNK)]
            nll = torch.cat(parts) if parts else h.new_zeros(0)
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits
            nll = F.cross_entropy(logits[:, :-1][sel].float(), targets, reduction="none")
        return rows, nll

    def _check_fast(self) -> bool:
        """Whether hidden-state × output-embedding equals the model's own logits (once per load)."""
        if self._fast is None:
            import torch

            model, tok = self.load()
            ok = model.get_output_embeddings() is not None
            if ok:
                try:
                    model.get_decoder()
                except Exception:
                    ok = False
            if ok:
                probe = [self._prefix] + tok("The quick brown fox jumps over the lazy dog.",
                                             add_special_tokens=False)["input_ids"]
                ids = torch.tensor([probe], device=model.device)
                mask = torch.ones_like(ids)
                with torch.inference_mode():
                    try:
                        _, a = self._forward_nll(ids, mask, True)
                    except Exception:
                        a = None
                    _, b = self._forward_nll(ids, mask, False)
                ok = a is not None and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4))
            self._fast = ok
        return self._fast

    # ------------------------------------------------------------------ scoring

    def score(self, texts, max_length: int | None = None, desc: str = "perplexity") -> RowNLL:
        """Score ``texts``; identical texts are scored once, cached rows never reach the model."""
        import numpy as np

        max_length = int(max_length or self.max_length)
        keys = [text_key(t) for t in texts]
        memo_key = (max_length, hashlib.sha256(b"".join(keys)).hexdigest())
        if memo_key in self._memo:
            return self._memo[memo_key]
        uniq: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            uniq.setdefault(k, t)
        empty = {k for k, t in uniq.items() if not t}
        store = self.store(max_length)
        found = store.get_many([k for k in uniq if k not in empty])
        found = {k: v for k, v in found.items() if v.shape == (4,)}
        self.stats["from_cache"] += len(found)
        missing = {k: t for k, t in uniq.items() if k not in found and k not in empty}
        if missing and self.engine is not None:  # scored on the cluster; cached here, on the driver
            remote = self.engine.score(self, missing, max_length)
            store.put_many(list(remote.items()))
            self.stats["scored"] += len(remote)
            found.update(remote)
        elif missing:
            found.update(self._compute(missing, max_length, desc))
        zero = np.zeros(4, dtype=np.float32)
        self.stats["empty"] += len(empty)
        arr = np.stack([found.get(k, zero) if k not in empty else zero for k in keys]) if keys \
            else np.zeros((0, 4), dtype=np.float32)
        out = RowNLL(nll=arr[:, 0].astype(np.float64), tokens=arr[:, 1].astype(np.int64),
                     total_tokens=arr[:, 2].astype(np.int64), bytes=arr[:, 3].astype(np.int64))
        for a in (out.nll, out.tokens, out.total_tokens, out.bytes):
            a.setflags(write=False)
        self._memo[memo_key] = out
        return out

    def _compute(self, todo: dict[bytes, str], max_length: int, desc: str) -> dict:
        import numpy as np
        import torch
        from tqdm.auto import tqdm

        from harness.resources.precision import autocast

        model, tok = self.load()
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 1:
            max_length = min(max_length, limit - 1)  # the start token takes one position
        items = list(todo.items())
        enc = tok([t for _, t in items], add_special_tokens=False)["input_ids"]
        rows = []  # (key, scored ids, total tokens, bytes)
        for (k, t), ids in zip(items, enc):
            if len(ids) > max_length:
                nbytes = len(tok.decode(ids[:max_length]).encode("utf-8"))
                rows.append((k, ids[:max_length], len(ids), nbytes))
                self.stats["truncated"] += 1
            else:
                rows.append((k, ids, len(ids), len(t.encode("utf-8"))))
        zero_tok = [r for r in rows if not r[1]]  # e.g. text made only of characters the tokenizer drops
        rows = sorted((r for r in rows if r[1]), key=lambda r: len(r[1]), reverse=True)
        done = {r[0]: np.array([0.0, 0, r[2], 0], dtype=np.float32) for r in zero_tok}
        device = model.device
        pad = tok.pad_token_id
        governor = ThreadGovernor(self._thread_plan()) if model.device.type == "cpu" else None
        try:
            fast = self._check_fast()
            with tqdm(total=len(rows), desc=desc, unit="text", disable=not self.progress, leave=False) as bar, \
                    torch.inference_mode(), autocast(getattr(self.spec, "precision", "fp32"), str(device)):
                start = 0
                while start < len(rows):
                    if governor is not None:
                        governor.step()
                    width = len(rows[start][1]) + 1  # longest in the batch (sorted), plus the start token
                    take = max(1, min(self.batch_size, self.max_batch_tokens // width))
                    batch = rows[start:start + take]
                    start += len(batch)
                    ids = torch.full((len(batch), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for i, (_, seq, _, _) in enumerate(batch):
                        ids[i, 0] = self._prefix
                        ids[i, 1:len(seq) + 1] = torch.tensor(seq, dtype=torch.long)
                        mask[i, :len(seq) + 1] = 1
                    ridx, nll = self._forward_nll(ids.to(device), mask.to(device), fast)
                    sums = torch.zeros(len(batch), dtype=torch.float64, device=nll.device)
                    sums.index_add_(0, ridx, nll.double())
                    sums = sums.cpu().numpy()
                    pairs = [(k, np.array([sums[i], len(seq), total, nbytes], dtype=np.float32))
                             for i, (k, seq, total, nbytes) in enumerate(batch)]
                    self.store(max_length).put_many(pairs)
                    done.update(pairs)
                    self.stats["model_calls"] += 1
                    self.stats["scored"] += len(batch)
                    self.stats["tokens"] += sum(len(r[1]) for r in batch)
                    bar.update(len(batch))
        finally:
            if governor is not None:
                governor.restore()
                self.stats["threads"] = governor.used
        if zero_tok:
            self.store(max_length).put_many(list((k, done[k]) for k, *_ in zero_tok))
        return done


def _machine_busy_s() -> float | None:
    """CPU seconds every process on this machine has been busy since boot (Linux /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class ThreadGovernor:
    """Torch CPU threads for the scoring loop: fixed when asked for, else as many as the cores other
    processes leave free, re-measured every ``every_s`` seconds.

    Why: with two OpenMP threads on two cores that other processes also use, every parallel region
    waits for its descheduled thread; measured here under a load average of 15 on 2 cores, the model ran
    at 6 tokens/s with 2 threads and 80 tokens/s with 1. On an idle machine both cores are used. The
    other processes' share is (machine busy CPU - this process's CPU) / wall time (Linux /proc/stat;
    elsewhere torch's default is kept). The caller's thread count is restored afterwards.
    """

    def __init__(self, fixed: int | None = None, every_s: float = 20.0, probe_s: float = 0.3):
        import time

        import torch

        self._torch = torch
        self.before = torch.get_num_threads()
        try:
            self.cores = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            self.cores = os.cpu_count() or 1
        self.cap = min(self.before, self.cores)
        self.fixed = fixed
        self.every_s = every_s
        self.used: list[int] = []
        self._mark = None
        if fixed:
            self._set(fixed)
            return
        busy = _machine_busy_s()
        if busy is None:
            self._set(self.cap)
            return
        self._mark = (time.perf_counter(), time.process_time(), busy)
        time.sleep(probe_s)  # a first look at what the other processes use
        self._adapt()

    def _set(self, n: int) -> None:
        n = max(1, int(n))
        if n != self._torch.get_num_threads():
            self._torch.set_num_threads(n)
        if not self.used or self.used[-1] != n:
            self.used.append(n)

    def _adapt(self) -> None:
        import time

        w0, c0, b0 = self._mark
        w1, c1, b1 = time.perf_counter(), time.process_time(), _machine_busy_s()
        if b1 is None or w1 - w0 <= 0:
            return
        others = max(0.0, (b1 - b0 - (c1 - c0)) / (w1 - w0))
        self._set(min(self.cap, max(1, round(self.cores - others))))
        self._mark = (w1, c1, b1)

    def step(self) -> None:
        """Called before each batch: re-measure once ``every_s`` seconds have passed."""
        import time

        if self._mark is not None and time.perf_counter() - self._mark[0] >= self.every_s:
            self._adapt()

    def restore(self) -> None:
        if self._torch.get_num_threads() != self.before:
            self._torch.set_num_threads(self.before)
