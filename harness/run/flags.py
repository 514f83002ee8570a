"""Row-level findings: the flags file a run writes, ``synthbench curate`` reads, and before/after tables.

Metrics return row-level findings in ``Score.rows`` (``{reason: [positions in ctx.texts]}``). The
runner keeps each result's findings in ``OUT/rows/<signature key>.json`` (positions in the sample the
metric saw, which the signature fixes, so a resumed run that reuses the result reuses its findings)
and records their counts in the result's ``details["row_flags"]``. At the end of every run it writes
``OUT/flags.parquet`` and its twin ``OUT/flags.jsonl``: one row per flagged (dataset, row) with

- ``dataset``: the dataset's name in the run;
- ``row``: the 0-based index of the row among the data rows of the dataset *as loaded* (JSONL: the
  non-blank lines; CSV/TSV: the lines after the header; JSON: array items; Parquet and Hugging Face
  data: table rows; text folders: files in sorted (label, file) order), whatever sample or holdout
  the run evaluated. Line numbers in messages are 1-based;
- ``reasons``: the short kebab-case reasons (``duplicate``, ``memorised``, ``contaminated`` ...; the LLM
  judge's ``judge-mislabelled``, ``judge-unfollowed``, ``judge-inconsistent``, ``judge-dispreferred``);
- ``metrics``: the metrics that flagged the row;
- ``preview``: the first 120 characters of the row's text.

The file also stores, per dataset, the fingerprint and row count of the dataset as loaded, what the
run evaluated (all rows or a sample) and which metric checked for which reason with how many rows
found (Parquet key-value metadata ``synthbench.flags``; the first line of the JSONL twin). Metrics
computed on extra samples (``--repeats``) flag rows of the primary sample only.

``synthbench curate`` loads the user's file again with the same loader, checks the fingerprint,
drops the rows flagged with the chosen reasons and writes the rest in the row format of the input
(the original row objects, so extra columns survive). ``harness.report.curation_report.compare_runs`` renders a before/after table
of two result folders (the run on the original data and the run on the curated data).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.run.outdir import remove as remove_own
from harness.run.outdir import write_bytes as atomic_write_bytes
from harness.run.outdir import write_text as atomic_write_text
from harness.run.store import WITHHELD
from harness.stats.conformal import conformal_outliers  # noqa: F401  (re-export: its old place)

ROWS_DIR = "rows"
FLAGS_PARQUET = "flags.parquet"
FLAGS_JSONL = "flags.jsonl"
META_KEY = b"synthbench.flags"
FORMAT = 1
PREVIEW = 120
_REASON = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_WS = re.compile(r"\s+")
OUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl", ".json": "json",
               ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


# ----------------------------------------------------------------------------- per-row rules

# ``conformal_outliers`` (conformal p-values against a reference, Benjamini-Hochberg selection; Bates et
# al. 2023) lives in harness.stats.conformal; it is imported above so that this old place still works.


# ----------------------------------------------------------------------------- runner side

def check_rows(rows: dict, n: int, metric: str) -> dict[str, list[int]]:
    """Validate a Score's ``rows`` against the n rows the metric saw: sorted unique positions per reason."""
    out: dict[str, list[int]] = {}
    for reason, positions in rows.items():
        if not isinstance(reason, str) or not _REASON.match(reason):
            raise ValueError(f"{metric}: row-flag reason {reason!r} is not a short kebab-case word")
        ids = sorted({int(i) for i in positions})
        if ids and (ids[0] < 0 or ids[-1] >= n):
            raise ValueError(f"{metric}: flagged position {ids[0] if ids[0] < 0 else ids[-1]} outside 0..{n - 1}")
        out[reason] = ids
    return out


def rows_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / ROWS_DIR / f"{key}.json"


def save_rows(out_dir: Path, key: str, metric: str, rows: dict, n: int) -> dict[str, int]:
    """Write one result's findings (positions in its sample of n rows) atomically; return counts per reason."""
    rows = check_rows(rows, n, metric)
    doc = {"format": FORMAT, "metric": metric, "signature_key": key, "n": n, "rows": rows}
    atomic_write_text(rows_path(out_dir, key), json.dumps(doc, separators=(",", ":")) + "\n")
    return {r: len(v) for r, v in rows.items()}


def load_rows(out_dir: Path, key: str) -> dict | None:
    """A result's stored findings, or None if missing or unreadable."""
    try:
        d = json.loads(rows_path(out_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("signature_key") != key or not isinstance(d.get("rows"), dict):
        return None
    return d


def _preview(text: str) -> str:
    return _WS.sub(" ", text).strip()[:PREVIEW]


EMPTY_METRIC = "format/empty-rate"


def collect_flags(out_dir, results, evaluated: dict, log=print, quote_text: bool = True) -> tuple[dict, list[dict]]:
    """(per-dataset metadata, flag records) from the stored findings of ``results``.

    ``out_dir`` is an output folder or a store (:mod:`harness.run.store`) that holds the findings;
    ``evaluated`` maps dataset name to the corpus the metrics saw (its ``row_ids`` map positions to
    rows of the dataset as loaded).
    """
    store = out_dir if hasattr(out_dir, "load_rows") else None
    roles = {}
    for r in results:
        roles.setdefault(r.dataset, r.role)
    meta: dict[str, dict] = {}
    flagged: dict[str, dict[int, list]] = {}
    for name, corpus in evaluated.items():
        fp, n_rows = corpus.source_identity
        meta[name] = {"role": roles.get(name, "candidate"), "source": corpus.source, "fingerprint": fp,
                      "rows": n_rows, "evaluated_rows": len(corpus), "evaluated_fingerprint": corpus.fingerprint,
                      "sample": corpus.sample, "checks": {}, "flagged_rows": 0}
        flagged[name] = {}
    for r in results:
        if "row_flags" not in r.details or r.dataset not in evaluated:
            continue
        corpus = evaluated[r.dataset]
        d = store.load_rows(r.signature.key) if store is not None else load_rows(out_dir, r.signature.key)
        if d is None or d.get("n") != len(corpus):
            where = getattr(store, "out_dir", out_dir) if store is not None else out_dir
            log(f"warning: {r.dataset} {r.metric}: its row flags are missing from {Path(where) / ROWS_DIR}; "
                "delete its record from results.jsonl to recompute them")
            continue
        ids = corpus.source_row_ids
        meta[r.dataset]["checks"][r.metric] = {reason: len(pos) for reason, pos in d["rows"].items()}
        for reason, positions in d["rows"].items():
            for p in positions:
                entry = flagged[r.dataset].setdefault(ids[p], [set(), set(), p])
                entry[0].add(reason)
                entry[1].add(r.metric)
    for r in results:  # rows the loader left out as empty: flagged from the corpus (no metric saw them)
        corpus = evaluated.get(r.dataset)
        if r.metric != EMPTY_METRIC or corpus is None or not corpus.empty_rows:
            continue
        meta[r.dataset]["checks"][r.metric] = {"empty": len(corpus.empty_rows)}
        for row in corpus.empty_rows:
            entry = flagged[r.dataset].setdefault(row, [set(), set(), None])
            entry[0].add("empty")
            entry[1].add(r.metric)
    records = []
    for name, rows in flagged.items():
        meta[name]["flagged_rows"] = len(rows)
        texts = evaluated[name].texts
        for row in sorted(rows):
            reasons, metrics, p = rows[row]
            preview = "" if p is None else (_preview(texts[p]) if quote_text else WITHHELD)
            records.append({"dataset": name, "row": int(row), "reasons": sorted(reasons),
                            "metrics": sorted(metrics), "preview": preview})
    return meta, records


def write_flags(out_dir: Path, results, evaluated: dict, keep_keys=None, log=print, quote_text: bool = True) -> Path:
    """Write OUT/flags.parquet and OUT/flags.jsonl (atomically) for this run's results.

    ``keep_keys``: signature keys of every record kept in results.jsonl; row files of other keys are
    stale (their records were recomputed) and removed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    meta, records = collect_flags(out_dir, results, evaluated, log, quote_text=quote_text)
    head = {"synthbench_flags": FORMAT, "row_index": "0-based, among the data rows of the dataset as loaded",
            "datasets": meta}
    schema = pa.schema([("dataset", pa.string()), ("row", pa.int64()), ("reasons", pa.list_(pa.string())),
                        ("metrics", pa.list_(pa.string())), ("preview", pa.string())],
                       metadata={META_KEY: json.dumps(head, ensure_ascii=False).encode("utf-8")})
    cols = {c: [rec[c] for rec in records] for c in schema.names}
    table = pa.Table.from_pydict(cols, schema=schema)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    atomic_write_bytes(out_dir / FLAGS_PARQUET, buf.getvalue().to_pybytes())
    lines = [json.dumps(head, ensure_ascii=False)] + [json.dumps(rec, ensure_ascii=False) for rec in records]
    atomic_write_text(out_dir / FLAGS_JSONL, "\n".join(lines) + "\n")
    if keep_keys is not None and (out_dir / ROWS_DIR).is_dir():
        for f in (out_dir / ROWS_DIR).glob("*.json"):
            if f.stem not in keep_keys:
                remove_own(f)  # only a row file synthbench wrote (the folder's manifest lists it)
    return out_dir / FLAGS_PARQUET


# ----------------------------------------------------------------------------- reading

@dataclass
class FlagsFile:
    path: Path
    datasets: dict
    records: list[dict] = field(default_factory=list)

    def reasons(self, dataset: str) -> dict[str, int]:
        """Every reason some metric checked for on this dataset, with the number of flagged rows."""
        out: dict[str, int] = {}
        for checks in self.datasets[dataset].get("checks", {}).values():
            for reason in checks:
                out.setdefault(reason, 0)
        for rec in self.records:
            if rec["dataset"] == dataset:
                for reason in rec["reasons"]:
                    out[reason] = out.get(reason, 0) + 1
        return dict(sorted(out.items()))


def read_flags(path) -> FlagsFile:
    """Read flags.parquet or flags.jsonl (or the one in a results folder)."""
    path = Path(path)
    if path.is_dir():
        for name in (FLAGS_PARQUET, FLAGS_JSONL):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise UserError(f"{path}: no {FLAGS_PARQUET} in this folder",
                            "run 'synthbench eval ... --out DIR' (or 'synthbench run') into it first")
    if not path.exists():
        raise UserError(f"{path}: file not found", "give the flags.parquet (or flags.jsonl) a run wrote")
    bad = UserError(f"{path}: not a synthbench flags file", "give the flags.parquet (or flags.jsonl) a run wrote")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
            head = json.loads((table.schema.metadata or {}).get(META_KEY, b"null"))
        except Exception:  # pyarrow raises several types for foreign or damaged files
            raise bad from None
        if not isinstance(head, dict) or "datasets" not in head:
            raise bad
        records = table.to_pylist()
    else:
        try:
            lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise bad from None
        if not lines or not isinstance(lines[0], dict) or "synthbench_flags" not in lines[0]:
            raise bad
        head, records = lines[0], lines[1:]
    if head.get("synthbench_flags", FORMAT) > FORMAT:
        raise UserError(f"{path}: written by a newer synthbench (flags format {head['synthbench_flags']})",
                        "upgrade synthbench")
    return FlagsFile(path, head["datasets"], records)


# ----------------------------------------------------------------------------- curate

def _raw_rows(spec: str, corpus, split: str | None) -> tuple[list[dict], str]:
    """The row objects of ``spec`` in load order, and the input's format, read with the loader's readers.

    Sources without row objects (builtin datasets, folders of text files) give rows rebuilt from the
    mapped columns.
    """
    from harness.data import load as data

    def rebuilt():
        keys = list(corpus.fields) or ["text"]
        cols = corpus.fields if corpus.fields else {"text": corpus.texts}
        rows = [{k: cols[k][i] for k in keys} for i in range(len(corpus))]
        if corpus.labels is not None:
            for r, lab in zip(rows, corpus.labels):
                r["label"] = lab
        return rows, "rebuilt"

    if spec.startswith("builtin:"):
        return rebuilt()
    hub = spec[3:] if spec.startswith("hf:") else None
    path = Path(spec).expanduser()
    if hub is None and not path.exists():
        hub = spec
    if hub is not None:
        return [r for _, r in data._hub_rows(hub, split)], "hf"
    if path.is_dir():
        if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return [r for _, r in data._hf_folder_rows(path, split)], "hf"
        return rebuilt()
    ext = data.data_ext(path)
    if ext in data.JSONL_EXT:
        return [r for _, r in data._jsonl_rows(path)], "jsonl"
    if ext in data.JSON_EXT:
        return [r for _, r in data._json_rows(path)], "json"
    if ext in data.CSV_EXT:
        return [r for _, r in data._csv_rows(path, "\t" if ext == ".tsv" else ",")], ext[1:]
    if ext in data.PARQUET_EXT:
        return [r for _, r in data._parquet_rows(path)], "parquet"
    raise UserError(f"{path}: unknown format '{ext}'", "give the file that was evaluated")


def _cell(v) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


def write_rows(out: Path, rows: list[dict], src_format: str, src_path: Path | None, keep: list[int]) -> None:
    """Write the kept rows atomically in the format the extension of ``out`` names."""
    import csv
    import io

    fmt = OUT_FORMATS[out.suffix.lower()]
    kept = [rows[i] for i in keep]
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in kept)
        atomic_write_text(out, text)
    elif fmt == "json":
        body = ",\n".join("  " + json.dumps(r, ensure_ascii=False, default=str) for r in kept)
        atomic_write_text(out, "[\n" + body + ("\n" if kept else "") + "]\n")
    elif fmt in ("csv", "tsv"):
        header = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        w.writerow(header)
        for r in kept:
            w.writerow([_cell(r.get(k)) for k in header])
        atomic_write_text(out, buf.getvalue())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if src_format == "parquet" and src_path is not None:
            table = pq.read_table(src_path).take(pa.array(keep, type=pa.int64()))
        else:
            try:
                table = pa.Table.from_pylist(kept) if kept else pa.table({k: [] for k in rows[0]})
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise UserError(f"{out}: the rows do not fit one Parquet schema ({str(e).splitlines()[0][:100]})",
                                "write JSONL instead (--out CLEAN.jsonl)") from None
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        atomic_write_bytes(out, buf.getvalue().to_pybytes())


def _pick_dataset(flags: FlagsFile, fp: str, n_rows: int, spec: str, name: str | None) -> str:
    listing = ", ".join(f"{k} ({v.get('rows')} rows)" for k, v in flags.datasets.items()) or "none"
    fix_fields = ("give the file that was evaluated, loaded with the same column flags (--text-field, "
                  "--label-field, ... as in the run or suite)")
    if name is not None:
        if name not in flags.datasets:
            close = difflib.get_close_matches(name, list(flags.datasets), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"{flags.path}: no dataset named '{name}' (it holds: {listing})",
                            hint + "pass --dataset-name with one of those")
        m = flags.datasets[name]
        if m.get("fingerprint") != fp:
            raise UserError(f"{spec}: not the dataset these flags are for: '{name}' was {m.get('rows')} rows with "
                            f"fingerprint {str(m.get('fingerprint'))[:12]}, this file is {n_rows} rows with "
                            f"fingerprint {fp[:12]}", fix_fields)
        return name
    hits = [k for k, v in flags.datasets.items() if v.get("fingerprint") == fp]
    same_file = [k for k, v in flags.datasets.items() if str(v.get("source", "")).split(" (")[0] == str(Path(spec).expanduser())]
    if not hits and same_file:
        m = flags.datasets[same_file[0]]
        raise UserError(f"{spec}: the flags for '{same_file[0]}' come from this file, but it now reads differently "
                        f"({n_rows} rows, fingerprint {fp[:12]}; then {m.get('rows')} rows, fingerprint "
                        f"{str(m.get('fingerprint'))[:12]}): the file changed, or the column flags differ",
                        "use the column flags of the run (--text-field, --label-field, ...), or evaluate the file again")
    if not hits:
        raise UserError(f"{spec}: no dataset in {flags.path} matches this file ({n_rows} rows, fingerprint "
                        f"{fp[:12]}; the flags are for: {listing})", fix_fields)
    if len(hits) > 1:
        raise UserError(f"{spec}: several datasets in {flags.path} match this file ({', '.join(hits)})",
                        "choose one with --dataset-name")
    return hits[0]


def parse_drop(drop: str, available: dict[str, int], dataset: str) -> list[str]:
    """The reasons to drop: a comma list of reasons some metric checked on this dataset, or 'all'."""
    asked = [x.strip() for x in (drop or "").split(",") if x.strip()]
    if not asked:
        raise UserError("--drop: no reason given", "give a comma list of reasons or 'all' "
                        f"(available: {', '.join(available) or 'none'})")
    if asked == ["all"]:
        return list(available)
    out = []
    for reason in asked:
        if reason not in available:
            close = difflib.get_close_matches(reason, list(available), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"--drop: no metric of the run checked '{dataset}' for '{reason}' "
                            f"(available: {', '.join(available) or 'none'})",
                            hint + "give reasons from that list, or 'all'")
        if reason not in out:
            out.append(reason)
    return out


@dataclass
class Curated:
    dataset: str
    rows: int                     # rows of the input
    kept: int
    dropped: list[int]            # 0-based row indices
    by_reason: dict[str, int]     # flagged rows per reason (dropped or not)
    dropped_reasons: list[str]
    evaluated_rows: int
    out: Path


def curate(spec: str, flags_path, drop: str, out, fields=None, split: str | None = None,
           dataset_name: str | None = None) -> Curated:
    """Drop the rows of ``spec`` flagged with the ``drop`` reasons and write the rest to ``out``."""
    from harness.data.load import load_corpus

    out = Path(out)
    if out.suffix.lower() not in OUT_FORMATS:
        raise UserError(f"--out {out}: unknown format '{out.suffix or '(no extension)'}'",
                        f"end it with one of {', '.join(sorted(OUT_FORMATS))}")
    src = Path(spec).expanduser()
    if src.exists() and (out.resolve() == src.resolve() or (out.exists() and out.samefile(src))):
        raise UserError(f"--out {out}: is the input dataset", "write the curated rows to a new file")
    flags = read_flags(flags_path)
    corpus = load_corpus(spec, fields, split=split)
    fp, n_rows = corpus.source_identity
    name = _pick_dataset(flags, fp, n_rows, spec, dataset_name)
    meta = flags.datasets[name]
    available = flags.reasons(name)
    reasons = parse_drop(drop, available, name)
    chosen = set(reasons)
    drop_ids = sorted({int(rec["row"]) for rec in flags.records
                       if rec["dataset"] == name and chosen.intersection(rec["reasons"])})
    rows, fmt = _raw_rows(spec, corpus, split)
    if len(rows) != n_rows or len(rows) != meta.get("rows"):
        raise UserError(f"{spec}: read {len(rows)} row objects but the loader gives {n_rows} rows",
                        "convert the file to JSONL and evaluate that file")
    if drop_ids and drop_ids[-1] >= len(rows):
        raise UserError(f"{flags.path}: row {drop_ids[-1]} is past the end of {spec}", "rerun the evaluation")
    gone = set(drop_ids)
    keep = [i for i in range(len(rows)) if i not in gone]
    write_rows(out, rows, fmt, src if fmt == "parquet" else None, keep)
    return Curated(dataset=name, rows=len(rows), kept=len(keep), dropped=drop_ids, by_reason=available,
                   dropped_reasons=reasons, evaluated_rows=int(meta.get("evaluated_rows") or len(rows)), out=out)


# ----------------------------------------------------------------------------- reports
