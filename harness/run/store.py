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
    """The file store of an output folder (see the module docstring).

    A line of results.jsonl that is not a synthbench record (a torn write, an edit) is left out with a note
    in ``notes``, so its metric is computed again; the good records are kept. Every flush merges under the
    folder's lock: records another run wrote into the folder meanwhile are kept (this run's own records
    win for the keys it computed), so two runs into one folder both keep their work.
    """

    def __init__(self, out_dir: Path, quote_text: bool = True):
        self.quote_text = quote_text  # False: dataset text in details is withheld when written
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / RESULTS
        self.records: dict[tuple[str, str], dict] = {}
        self.notes: list[str] = []   # one line per damaged record left out (the runner logs them)
        self._mine: set[tuple[str, str]] = set()
        if self.path.exists():
            self.records, damaged = _read_records(self.path)
            if damaged:
                lines = ", ".join(map(str, damaged[:5])) + (f" (… {len(damaged)} in all)" if len(damaged) > 5 else "")
                self.notes.append(f"{self.path}: line(s) {lines} are not synthbench records (damaged); "
                                  "left out, so their metrics are computed again")

    def put(self, result: Result) -> None:
        super().put(result)
        self._mine.add((result.dataset, result.metric))

    def put_failure(self, dataset: str, metric: str, signature, role: str, reason: str) -> None:
        super().put_failure(dataset, metric, signature, role, reason)
        self._mine.add((dataset, metric))

    def _claim(self) -> None:
        """Before the first write: the folder must be one synthbench may write into (harness.run.outdir)."""
        if not getattr(self, "_claimed", False):
            from harness.run import outdir

            outdir.claim(self.out_dir)
            self._claimed = True

    def flush(self) -> None:
        from harness.run import outdir

        self._claim()
        with outdir.lock(self.out_dir):
            if self.path.exists() and self._stamp() != getattr(self, "_written", None):
                disk, _ = _read_records(self.path)  # another run into this folder added records since we wrote
                for key, d in disk.items():
                    if key not in self._mine:
                        self.records[key] = d
            recs = self.records.values()
            if not self.quote_text:  # records reused from an earlier run are withheld too
                recs = [{**d, "details": withhold_text(d.get("details") or {})} for d in recs]
            lines = [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in recs]
            outdir.write_text(self.path, "\n".join(lines) + ("\n" if lines else ""))
            self._written = self._stamp()  # unchanged at the next flush: nothing to merge, no re-read

    def _stamp(self):
        st = self.path.stat()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def save_rows(self, key: str, metric: str, rows: dict, n: int) -> dict[str, int]:
        from harness.run.flags import save_rows

        self._claim()
        return save_rows(self.out_dir, key, metric, rows, n)

    def load_rows(self, key: str) -> dict | None:
        from harness.run.flags import load_rows

        return load_rows(self.out_dir, key)

    def write_flags(self, results, evaluated, keep_keys=None, log=print):
        from harness.run import outdir
        from harness.run.flags import write_flags

        if not self.out_dir.exists() and not any(getattr(r, "rows", None) for r in results):
            return None  # nothing was written (every metric skipped): no flags to write either
        # claimed before the flags are written even when every record was reused (a rerun of validate, whose
        # per-cell folders sit inside its claimed --out: unclaimed, they were refused as another's files)
        self._claim()
        with outdir.lock(self.out_dir):  # the row files another run is writing are never pruned
            if self.path.exists() and keep_keys is not None:
                disk, _ = _read_records(self.path)
                keep_keys = set(keep_keys) | {d.get("signature_key") for d in disk.values()}
            return write_flags(self.out_dir, results, evaluated, keep_keys=keep_keys, log=log,
                               quote_text=self.quote_text)


def _read_records(path: Path) -> tuple[dict[tuple[str, str], dict], list[int]]:
    """The records of a results.jsonl by (dataset, metric), and the line numbers of damaged lines."""
    records: dict[tuple[str, str], dict] = {}
    damaged: list[int] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})", "check its permissions") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            key = (d["dataset"], d["metric"])
            if not isinstance(d["signature_key"], str) or not isinstance(d["signature"], dict):
                raise TypeError
            if d.get("status") != "failed" and not isinstance(d.get("value"), (int, float)):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            damaged.append(lineno)
            continue
        records[key] = d
    return records, damaged


def stale_reason(d: dict, meta: dict) -> str | None:
    """Why a stored record no longer describes the data and code of the run in ``meta`` (run.json), or None.

    A record is current while the datasets it was computed on are the ones run.json names (content
    fingerprints and sample), its metric version is the declared one, its arguments are the ones the run
    used for that metric, and seed and embedder match.
    """
    from harness import metrics as registry

    sig = d.get("signature") or {}
    data = sig.get("data") or {}
    ds = {x["name"]: x for x in [meta.get("reference"), meta.get("test"), *(meta.get("candidates") or [])] if x}
    me = ds.get(d.get("dataset"))
    if me is None:
        return "its dataset is not part of the last run"
    if data.get("candidate") != me.get("fingerprint") or (data.get("sample") or None) != (me.get("sample") or None):
        return "computed on other data under this name"
    ref = meta.get("reference") or {}
    if data.get("reference") is not None and data.get("reference") != ref.get("fingerprint"):
        return "computed against another reference"
    test = meta.get("test") or {}
    if data.get("test") is not None and data.get("test") != test.get("fingerprint"):
        return "computed with another test split"
    m = d.get("metric")
    if registry.is_metric(m) and sig.get("version") != registry.info(m).version:
        if sig.get("version") is None:
            return "computed before metric versions were recorded (by older code)"
        return f"computed by version {sig.get('version')} of the metric (now {registry.info(m).version})"
    wanted = (meta.get("metric_args") or {}).get(m)
    if wanted and m in (meta.get("metrics") or []):
        have = sig.get("args") or {}
        norm = lambda v: json.loads(json.dumps(v, sort_keys=True, default=str))  # noqa: E731 - tuples as lists
        moved = sorted(k for k, v in wanted.items() if norm(have.get(k)) != norm(v))
        if moved:
            return f"computed with other arguments ({', '.join(moved)})"
    if meta.get("seed") is not None and sig.get("seed") not in (None, meta.get("seed")):
        return f"computed with seed {sig.get('seed')} (the run used {meta.get('seed')})"
    if sig.get("embedder") and meta.get("embedder") and sig.get("embedder") != meta.get("embedder"):
        return "computed with another embedder"
    return None


def read_run_meta(folder: Path) -> dict:
    """A result folder's run.json, checked: a folder without results.jsonl, a missing run.json and a
    damaged one (not JSON, not an object, no candidates) each raise one UserError naming the file."""
    folder = Path(folder)
    if not (folder / RESULTS).exists():
        raise UserError(f"{folder}: no {RESULTS} here", "give a folder written by 'synthbench eval --out' or 'synthbench run'")
    path = folder / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing", "rerun the evaluation into this folder to recreate it") from None
    except (OSError, ValueError):  # not JSON, not UTF-8, unreadable
        raise UserError(f"{path}: not valid JSON", "rerun the evaluation into this folder to recreate it") from None
    if not isinstance(meta, dict) or not meta.get("candidates"):
        raise UserError(f"{path}: damaged (no candidates recorded)", "rerun the evaluation into this folder to recreate it")
    return meta


def load_results(out_dir: Path) -> list[Result]:
    path = Path(out_dir) / RESULTS
    if not path.exists():
        raise UserError(f"{path}: no results here", "run 'synthbench eval ... --out DIR' first")
    return ResultStore(Path(out_dir)).all()


def current_records(out_dir: Path, meta: dict) -> tuple[list[Result], list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(current results, current failures, stale (dataset, metric, why)) of a stored run: a record is shown
    only while :func:`stale_reason` finds nothing (``synthbench report``)."""
    path = Path(out_dir) / RESULTS
    if not path.exists():
        raise UserError(f"{path}: no results here", "run 'synthbench eval ... --out DIR' first")
    store = ResultStore(Path(out_dir))
    results, failures, stale = [], [], []
    for d in store.records.values():
        why = stale_reason(d, meta) if meta else None
        if why:
            stale.append((d["dataset"], d["metric"], why))
        elif d.get("status") == "failed":
            failures.append((d["dataset"], d["metric"], d.get("error", "")))
        else:
            results.append(Result.from_json(d))
    return results, failures, stale


def load_failures(out_dir: Path) -> list[tuple[str, str, str]]:
    """(dataset, metric, reason) for each metric that failed in the run stored in ``out_dir``."""
    path = Path(out_dir) / RESULTS
    return ResultStore(Path(out_dir)).failures() if path.exists() else []
