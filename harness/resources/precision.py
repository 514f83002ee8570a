"""Numeric precision of the models the harness runs: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

Every model the harness runs (the sentence embedder, the causal-LM scorer of the fluency metrics, the
MiniLM fine-tuning tier of the utility metrics, LoRA/full fine-tuning and lm-eval in ``lm-utility``)
keeps its weights in float32 and runs its matrix products in the *compute* precision chosen here, through
``torch.autocast``: bfloat16 or float16 products with float32 accumulation, float32 outputs.

``auto`` picks, per device:

- a CUDA GPU: ``bf16`` when it supports it (``torch.cuda.is_bf16_supported()``), else ``fp16``;
- a CPU with AVX512-BF16 or AMX-BF16 (the ``avx512_bf16`` / ``amx_bf16`` flags of ``/proc/cpuinfo``):
  ``bf16``, whose matrix products run at twice the float32 peak there;
- anything else (a CPU without those instructions, Apple's MPS): ``fp32``. On such a CPU bfloat16 is
  emulated and slower than float32, so ``auto`` never picks it; ``bf16`` asked for by name still runs.

``fp32`` is the reference precision: its results are those of the harness before precision existed, so
an fp32 model identity carries no suffix and every earlier record stays current. Any other precision
appends ``@bf16`` / ``@fp16`` to the model identity that enters signatures and cache keys, so a bf16
vector or score never answers an fp32 request, and records say which precision made them. ``run.json``
records what was asked for and what each model ran at (:func:`describe`).

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache

from harness.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
REFERENCE = "fp32"
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "32": "fp32"}


def normalise(requested: str | None) -> str:
    """``requested`` as one of :data:`PRECISIONS` (None: ``auto``); a UserError names the choices."""
    if requested is None:
        return "auto"
    p = str(requested).strip().lower()
    p = _ALIASES.get(p, p)
    if p not in PRECISIONS:
        raise UserError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}",
                        "give --precision auto (the fastest this machine runs accurately), fp32, bf16 or fp16")
    return p


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none: macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 dot products natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


@dataclass(frozen=True)
class Choice:
    """What a model runs at: the precision, the device and why (shown in run.json and the log)."""

    precision: str
    device: str
    reason: str

    @property
    def suffix(self) -> str:
        """What the model identity gets: nothing for fp32, ``@bf16``/``@fp16`` otherwise."""
        return "" if self.precision == REFERENCE else f"@{self.precision}"

    def to_json(self) -> dict:
        return {"precision": self.precision, "device": self.device, "reason": self.reason}


def resolve(requested: str | None, device: str = "cpu") -> Choice:
    """The precision a model on ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) runs at for ``requested``."""
    p = normalise(requested)
    kind = device.split(":")[0]
    if p != "auto":
        if p == "fp16" and kind == "cpu":
            raise UserError("precision fp16 on the CPU: torch has no fast float16 products there",
                            "give --precision bf16 or fp32 (or auto) on the CPU")
        return Choice(p, device, "asked for")
    if kind == "cuda":
        return (Choice("bf16", device, "the GPU supports bfloat16") if _cuda_bf16()
                else Choice("fp16", device, "the GPU has no bfloat16; float16 autocast"))
    if kind == "cpu" and cpu_has_bf16():
        return Choice("bf16", device, "the CPU has AVX512-BF16/AMX")
    return Choice("fp32", device, "no fast bfloat16 on this " + ("CPU" if kind == "cpu" else kind))


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def autocast(choice: Choice | str | None, device: str | None = None):
    """A context in which ``torch`` runs at the chosen precision (a no-op for fp32)."""
    if choice is None:
        return contextlib.nullcontext()
    if isinstance(choice, str):
        choice = Choice(choice, device or "cpu", "")
    if choice.precision == REFERENCE:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(choice.device.split(":")[0], dtype=torch_dtype(choice.precision))


def identity(base: str, choice: Choice | None) -> str:
    """``base`` for fp32 (or no choice), else ``base@bf16`` / ``base@fp16``."""
    return base + (choice.suffix if choice is not None else "")


def describe(requested: str | None, **models: Choice | None) -> dict:
    """run.json's ``precision`` entry: what was asked for and what each model ran at."""
    return {"requested": normalise(requested),
            **{name: c.to_json() for name, c in models.items() if c is not None}}
