"""results.jsonl: one JSON object per (dataset, metric), written atomically.

A rerun into the same folder reuses every record whose signature matches what would be
computed now (MTEB's 'only missing'); records of other datasets or metrics are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from .cache import atomic_write_text
from .core import Result
from .errors import UserError

RESULTS = "results.jsonl"
#: detail keys whose string values are dataset text (examples, flagged rows, near-duplicate pairs)
TEXT_KEYS = frozenset({"text", "test_text", "reference_text", "examples", "a", "b", "instruction", "input",
                       "output", "output_end", "preview"})
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


class ResultStore:
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
            "dataset": dataset, "metric": metric, "status": "failed", "error": reason, "value": None,
            "ci": None, "role": role, "signature": signature.as_dict(), "signature_key": signature.key,
            "details": {}, "seconds": 0.0}

    def failures(self) -> list[tuple[str, str, str]]:
        """(dataset, metric, reason) of every failed record."""
        return [(d["dataset"], d["metric"], d.get("error", "")) for d in self.records.values()
                if d.get("status") == "failed"]

    def flush(self) -> None:
        recs = self.records.values()
        if not self.quote_text:  # records reused from an earlier run are withheld too
            recs = [{**d, "details": withhold_text(d.get("details") or {})} for d in recs]
        lines = [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in recs]
        atomic_write_text(self.path, "\n".join(lines) + ("\n" if lines else ""))

    def all(self) -> list[Result]:
        """The computed results (failed records are reported through ``failures()``)."""
        return [Result.from_json(d) for d in self.records.values() if d.get("status") != "failed"]


def load_results(out_dir: Path) -> list[Result]:
    path = Path(out_dir) / RESULTS
    if not path.exists():
        raise UserError(f"{path}: no results here", "run 'synthbench eval ... --out DIR' first")
    return ResultStore(Path(out_dir)).all()


def load_failures(out_dir: Path) -> list[tuple[str, str, str]]:
    """(dataset, metric, reason) for each metric that failed in the run stored in ``out_dir``."""
    path = Path(out_dir) / RESULTS
    return ResultStore(Path(out_dir)).failures() if path.exists() else []
