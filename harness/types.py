"""The harness's value types: Corpus, Score, Result and Signature (frozen dataclasses)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

#: the version of the record layout of results.jsonl (documented in harness/run/store.py)
RECORD_SCHEMA_VERSION = 1

CLASSIFICATION = "classification"
INSTRUCTION = "instruction"
TEXT = "text"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """One dataset, loaded and validated.

    ``texts`` is what text metrics read (for instruction data, the rendered row unless a
    text field was named); ``labels`` is set for classification data; ``fields`` keeps the
    mapped columns (``instruction``, ``input``, ``output`` ...) as tuples of strings.
    """

    name: str
    source: str
    kind: str
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    n_source_rows: int = 0
    sample: dict | None = None  # {"size": n, "seed": s, "of": n_source_rows} when subsampled
    # Row identity, kept through subsample() and holdout(); neither enters the fingerprint:
    # row_ids[i] is the 0-based index, among the rows of the dataset as loaded, of row i (None: 0..n-1,
    # this corpus is the loaded dataset); origin is (fingerprint, row count) of that loaded dataset.
    row_ids: tuple[int, ...] | None = None
    origin: tuple[str, int] | None = None
    # Rows the loader left out because their text was empty, whitespace or null (0-based among the rows as
    # loaded; kept through subsample and holdout): format/empty-rate counts them, the flags mark them
    # 'empty'. They enter the fingerprint, so adding an empty row makes every record stale.
    empty_rows: tuple[int, ...] = ()
    empty_where: tuple[str, ...] = ()   # where each empty row is, for messages ("line 3248", "file a/1.txt")
    notes: tuple[str, ...] = ()         # what the loader mended or left out, one line each (logged once)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def source_row_ids(self) -> tuple[int, ...]:
        """The loaded dataset's 0-based row index of each row (what ``synthbench curate`` drops)."""
        return self.row_ids if self.row_ids is not None else tuple(range(len(self.texts)))

    @property
    def source_identity(self) -> tuple[str, int]:
        """(fingerprint, row count) of the dataset as loaded, before any sample or holdout."""
        return self.origin if self.origin is not None else (self.fingerprint, len(self.texts))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the content (texts, labels, mapped fields, in order).

        The same rows give the same fingerprint whatever the file format or path.
        """
        fp = content_fingerprint(self.texts, self.labels, self.fields)
        if self.empty_rows:
            fp = sha256_hex(fp, "empty rows", ",".join(map(str, self.empty_rows)))
        return fp

    def holdout(self, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
        """Split into (train, test) with ``fraction`` of the rows in test, stratified by label, seeded.

        For a reference that comes without a test split: the test part is never trained on.
        """
        import numpy as np

        n = len(self.texts)
        rng = np.random.default_rng(seed)
        groups: dict[str, list[int]] = {}
        for i in range(n):
            groups.setdefault(self.labels[i] if self.labels is not None else "", []).append(i)
        test_idx: list[int] = []
        for key in sorted(groups):
            idx = np.array(groups[key])
            k = int(round(len(idx) * fraction))
            if k and len(idx) > 1:
                test_idx += list(rng.choice(idx, size=min(k, len(idx) - 1), replace=False))
        mask = np.zeros(n, dtype=bool)
        mask[test_idx] = True

        def part(sel, suffix, what):
            idx = np.flatnonzero(sel)
            pick = lambda seq: tuple(seq[i] for i in idx)  # noqa: E731
            return Corpus(name=self.name + suffix, source=f"{self.source} ({what} of a {fraction:g} holdout, "
                          f"seed {seed})", kind=self.kind, texts=pick(self.texts),
                          labels=pick(self.labels) if self.labels is not None else None,
                          fields={k: pick(v) for k, v in self.fields.items()}, n_source_rows=len(idx),
                          row_ids=pick(self.source_row_ids), origin=self.source_identity,
                          empty_rows=self.empty_rows if suffix == "" else (),
                          empty_where=self.empty_where if suffix == "" else ())

        return part(~mask, "", "training part"), part(mask, " (held out)", "test part")

    def subsample(self, size: int, seed: int) -> Corpus:
        """A seeded sample of ``size`` rows without replacement (order of the source kept)."""
        import numpy as np

        n = len(self.texts)
        if size >= n:
            return self
        idx = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        pick = lambda seq: tuple(seq[i] for i in idx)  # noqa: E731
        return Corpus(
            name=self.name,
            source=self.source,
            kind=self.kind,
            texts=pick(self.texts),
            labels=pick(self.labels) if self.labels is not None else None,
            fields={k: pick(v) for k, v in self.fields.items()},
            n_source_rows=self.n_source_rows or n,
            sample={"size": size, "seed": seed, "of": n},
            row_ids=pick(self.source_row_ids),
            origin=self.source_identity,
            empty_rows=self.empty_rows,
            empty_where=self.empty_where,
        )


def content_fingerprint(texts, labels=None, fields=None) -> str:
    """sha256 over texts, labels and named fields, in order."""
    fields = fields or {}
    h = hashlib.sha256()
    h.update(b"texts\x00")
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    if labels is not None:
        h.update(b"labels\x00")
        for lab in labels:
            h.update(str(lab).encode("utf-8"))
            h.update(b"\x1e")
    for name in sorted(fields):
        h.update(b"field:" + name.encode("utf-8") + b"\x00")
        for v in fields[name]:
            h.update(v.encode("utf-8"))
            h.update(b"\x1e")
    return h.hexdigest()


@dataclass(frozen=True)
class Score:
    """What a metric function returns: the value, an optional interval and details.

    ``ci`` is a (low, high) 95% interval or None where no interval is meaningful;
    ``details`` holds small, JSON-serialisable extras (examples, counts, the estimator used).
    ``rows`` holds row-level findings, ``{reason: [row positions in ctx.texts]}`` (e.g.
    ``{"duplicate": [4, 17]}``); the runner maps them to source rows and writes the flags file
    that ``synthbench curate`` reads. Reasons are short kebab-case words.
    """

    value: float
    ci: tuple[float, float] | None = None
    details: dict = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            raise ValueError("a Score needs a finite value; report no Score instead of NaN")


@dataclass(frozen=True)
class Signature:
    """How a number was computed: two results compare only if their signatures match
    (apart from the dataset fingerprint). Modelled on sacrebleu's signature."""

    harness: str
    metric: str
    args: dict
    data: dict  # {"candidate": fingerprint, "reference": fingerprint|None, "sample": {...}|None}
    embedder: str | None
    seed: int
    version: int | None = None  # the metric's declared version (None: a record from before versions)

    def as_dict(self) -> dict:
        return {"harness": self.harness, "metric": self.metric, "version": self.version, "args": self.args,
                "data": self.data, "embedder": self.embedder, "seed": self.seed}

    @property
    def key(self) -> str:
        return sha256_hex(canonical_json(self.as_dict()))[:16]

    def short(self) -> str:
        """A one-line human-readable form, e.g. for report footers."""
        args = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        parts = [f"synthbench:{self.harness}", self.metric + (f"({args})" if args else "")
                 + (f"@v{self.version}" if self.version is not None else ""),
                 f"data:{self.data.get('candidate', '')[:10]}"]
        if self.data.get("reference"):
            parts.append(f"ref:{self.data['reference'][:10]}")
        if self.data.get("sample"):
            parts.append(f"n:{self.data['sample']['size']}")
        if self.embedder:
            parts.append(f"emb:{self.embedder}")
        parts.append(f"seed:{self.seed}")
        return "|".join(parts)


@dataclass(frozen=True)
class Result:
    """One record of results.jsonl: one (dataset, metric) pair."""

    dataset: str
    metric: str
    value: float
    ci: tuple[float, float] | None
    higher_is_better: bool | None
    signature: Signature
    role: str = "candidate"  # or "reference"
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "schema_version": RECORD_SCHEMA_VERSION,
            "dataset": self.dataset,
            "metric": self.metric,
            "value": self.value,
            "ci": list(self.ci) if self.ci is not None else None,
            "higher_is_better": self.higher_is_better,
            "role": self.role,
            "signature": self.signature.as_dict(),
            "signature_key": self.signature.key,
            "details": self.details,
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_json(cls, d: dict) -> Result:
        s = d["signature"]
        return cls(
            dataset=d["dataset"], metric=d["metric"], value=d["value"],
            ci=tuple(d["ci"]) if d.get("ci") is not None else None,
            higher_is_better=d.get("higher_is_better"),
            signature=Signature(harness=s["harness"], metric=s["metric"], args=s.get("args", {}),
                                data=s.get("data", {}), embedder=s.get("embedder"), seed=s.get("seed", 0),
                                version=s.get("version")),
            role=d.get("role", "candidate"), details=d.get("details", {}), seconds=d.get("seconds", 0.0),
        )
