"""Where the runner hands its results: a sink with one interface, two kinds.

:class:`ResultStore` is the file store of an output folder: ``results.jsonl`` (one JSON object per
(dataset, metric), written atomically) and ``rows/<signature key>.json`` (each result's flagged rows). A
rerun into the same folder reuses every record whose signature matches what would be computed now (MTEB's
'only missing'); records of other datasets or metrics are kept. :class:`MemoryStore` keeps the same
records in memory (``harness.evaluate`` without ``out=``, the ``evaluate`` modules).

Record schema (``schema_version`` 1, :data:`harness.types.RECORD_SCHEMA_VERSION`): ``dataset``, ``metric``, ``value`` (null when failed), ``ci`` [low,
high] or null, ``higher_is_better``, ``role`` (candidate | reference), ``signature`` {harness, metric,
version, args, data, embedder, seed}, ``signature_key``, ``details``, ``seconds``, and for a failure
``status: "failed"`` with ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import UserError
from harness.resources.cache import atomic_write_text
from harness.types import RECORD_SCHEMA_VERSION, Result

RESULTS = "results.jsonl"
#: detail keys whose string values are dataset text (examples, flagged rows, near-duplicate pairs)
TEXT_KEYS = frozenset({"text", "test_text", "reference_text", "examples", "a", "b", "instruction", "input",
                       "output", "output_end", "preview", "synthetic_ngrams", "real_ngrams",
                       "top_synthetic_ngrams", "top_real_ngrams"})
WITHHELD = "<text withheld: quote_text is off>"


def withhold_text(details, under_text_key: bool = False):
    """``details`` with every string under a :data:`TEXT_KEYS` key replaced by :data:`WITHHELD`.

    For data whose licence does not allow redistribution (suite ``quote_text: false``, ``eval
    --no-quote-text``): the numbers, row positions and labels stay, the rows' words do not.

    >>> withhold_text({"n": 3, "examples": [{"row": 4, "text": "hi", "label": "x"}], "a": "y"})
    {'n': 3, 'examples': [{'row': 4, 'text': '<text withheld: quote_text is off>', 'label': 'x'}], \
'a': '<text withheld: quote_text is off>'}
    """
    if isinstance(details, dict):
        return {k: withhold_text(v, k in TEXT_KEYS) for k, v in details.items()}
    if isinstance(details, list):
        return [withhold_text(v, under_text_key) for v in details]
    if isinstance(details, str) and under_text_key:
        return WITHHELD
    return details




class _Records:
    """What both stores share: the records by (dataset, metric), reuse, failures, row flags."""

    quote_text = True
    path: Path | None = None

    def reusable(self, dataset: str, metric: str, signature_key: str) -> Result | None:
        d = self.records.get((dataset, metric))
        if d is not None and d.get("signature_key") == signature_key and d.get("status") != "failed":
            return Result.from_json(d)
        return None  # a failed record is tried again on every rerun

    def put(self, result: Result) -> None:
        self.records[(result.dataset, result.metric)] = result.to_json()

    def put_failure(self, dataset: str, metric: str, signature, role: str, reason: str) -> None:
        """Record that a metric raised on a dataset: the record says so and why (value null), so no report
        can show it as zero or leave it out silently."""
        self.records[(dataset, metric)] = {
            "schema_version": RECORD_SCHEMA_VERSION, "dataset": dataset, "metric": metric, "status": "failed", "error": reason, "value": None,
            "ci": None, "role": role, "signature": signature.as_dict(), "signature_key": signature.key,
            "details": {}, "seconds": 0.0}

    def failures(self) -> list[tuple[str, str, str]]:
        """(dataset, metric, reason) of every failed record."""
        return [(d["dataset"], d["metric"], d.get("error", "")) for d in self.records.values()
                if d.get("status") == "failed"]

    def all(self) -> list[Result]:
        """The computed results (failed records are reported through ``failures()``)."""
        return [Result.from_json(d) for d in self.records.values() if d.get("status") != "failed"]

    def rows_intact(self, result) -> bool:
        """False when a reusable record says it flagged rows but its row file is missing or damaged
        (the runner then computes it again rather than lose the flags)."""
        counts = result.details.get("row_flags")
        if counts is None:
            return True
        d = self.load_rows(result.signature.key)
        return d is not None and {r: len(v) for r, v in d["rows"].items()} == counts


class MemoryStore(_Records):
    """The records of one run, in memory: nothing is written."""

    def __init__(self, quote_text: bool = True):
        self.quote_text = quote_text
        self.records: dict[tuple[str, str], dict] = {}
        self.rows: dict[str, dict] = {}

    def save_rows(self, key: str, metric: str, rows: dict, n: int) -> dict[str, int]:
        from harness.run.flags import FORMAT, check_rows

        rows = check_rows(rows, n, metric)
        self.rows[key] = {"format": FORMAT, "metric": metric, "signature_key": key, "n": n, "rows": rows}
        return {r: len(v) for r, v in rows.items()}

    def load_rows(self, key: str) -> dict | None:
        return self.rows.get(key)

    def flush(self) -> None:
        pass

    def write_flags(self, results, evaluated, keep_keys=None, log=print) -> None:
        pass


class ResultStore(_Records):
    def __init__(self, out_dir: Path, quote_text: bool = True):
        self.quote_text = quote_text  # False: dataset text in details is withheld when written
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / RESULTS
        self.records: dict[tuple[str, str], dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        for lineno, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                key = (d["dataset"], d["metric"])
                d["signature_key"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{self.path}: line {lineno} is not a synthbench result record",
                                "delete the file (or choose another --out folder) to start afresh") from None
            self.records[key] = d

    def flush(self) -> None:
        recs = self.records.values()
        if not self.quote_text:  # records reused from an earlier run are withheld too
            recs = [{**d, "details": withhold_text(d.get("details") or {})} for d in recs]
        lines = [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in recs]
        atomic_write_text(self.path, "\n".join(lines) + ("\n" if lines else ""))

    def save_rows(self, key: str, metric: str, rows: dict, n: int) -> dict[str, int]:
        from harness.run.flags import save_rows

        return save_rows(self.out_dir, key, metric, rows, n)

    def load_rows(self, key: str) -> dict | None:
        from harness.run.flags import load_rows

        return load_rows(self.out_dir, key)

    def write_flags(self, results, evaluated, keep_keys=None, log=print):
        from harness.run.flags import write_flags

        return write_flags(self.out_dir, results, evaluated, keep_keys=keep_keys, log=log, quote_text=self.quote_text)



def load_results(out_dir: Path) -> list[Result]:
    path = Path(out_dir) / RESULTS
    if not path.exists():
        raise UserError(f"{path}: no results here", "run 'synthbench eval ... --out DIR' first")
    return ResultStore(Path(out_dir)).all()


def load_failures(out_dir: Path) -> list[tuple[str, str, str]]:
    """(dataset, metric, reason) for each metric that failed in the run stored in ``out_dir``."""
    path = Path(out_dir) / RESULTS
    return ResultStore(Path(out_dir)).failures() if path.exists() else []
