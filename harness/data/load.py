"""Loading datasets: JSONL, JSON, CSV/TSV, Parquet, Hugging Face folders and hub ids, text folders.

Every loader ends in :func:`build_corpus`, which maps columns, validates each row and
returns a :class:`~harness.types.Corpus`. Bad input raises :class:`~harness.errors.UserError`
naming the file, the row (1-based line number for text formats) or the field, and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.types import CLASSIFICATION, INSTRUCTION, TEXT, Corpus

JSONL_EXT = {".jsonl", ".ndjson", ".jsonlines"}
JSON_EXT = {".json"}
CSV_EXT = {".csv", ".tsv"}
PARQUET_EXT = {".parquet", ".pq"}
KNOWN = sorted(JSONL_EXT | JSON_EXT | CSV_EXT | PARQUET_EXT)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: json.loads keeps one, UTF-8 cannot encode it


@dataclass(frozen=True)
class FieldMap:
    """Which columns hold what. ``None`` means the conventional name, if present."""

    text: str | None = None
    label: str | None = None
    instruction: str = "instruction"
    input: str = "input"
    output: str = "output"


def load_corpus(spec: str, fields: FieldMap | None = None, name: str | None = None,
                split: str | None = None, where=None, schema=None, strict: bool = False) -> Corpus:
    """Load ``spec`` (a path, ``builtin:NAME``, ``hf:ID`` or a hub id) into a validated Corpus.

    ``where``: an optional row filter, called with each raw row (a dict of all its columns) before
    columns are mapped; rows it returns False for are left out (suites' ``where:``/``where_not:``).
    ``schema``: a :class:`harness.data.schema.Schema`; with one, invalid rows are kept and their reasons
    recorded (``format/invalid-rate``) instead of refusing the file. ``strict``: an empty or null text
    refuses the file (by default such rows are left out and counted by ``format/empty-rate``).
    """
    fields = fields or FieldMap()
    if spec.startswith("builtin:"):
        if where is not None:
            raise UserError(f"{spec}: row filters apply to data files and hub datasets only",
                            "drop 'where'/'where_not' for builtin datasets")
        if schema is not None:
            raise UserError(f"{spec}: a schema applies to data files, folders and hub datasets",
                            "drop --schema / 'schema:' for builtin datasets (they are valid by construction)")
        from harness.data.builtin import load_builtin

        return load_builtin(spec[len("builtin:"):], fields, name)
    hub = spec[3:] if spec.startswith("hf:") else None
    path = Path(spec).expanduser()
    if hub is None and not path.exists():
        hub = _hub_or_missing(spec, path)
    if hub is not None:
        rows = _filtered(_hub_rows(hub, split), where, f"hf:{hub}", "row")
        return build_corpus(rows, source=f"hf:{hub}", name=name or hub.split("/")[-1], fields=fields,
                            schema=schema, strict=strict)
    row_word = "line"
    if path.is_dir():
        if where is not None:
            raise UserError(f"{path}: row filters apply to data files and hub datasets only",
                            "drop 'where'/'where_not', or export the folder to a .jsonl file")
        return _load_dir(path, fields, name, split, schema, strict)
    ext = data_ext(path)
    if ext in JSONL_EXT:
        rows = _jsonl_rows(path)
    elif ext in JSON_EXT:
        rows = _json_rows(path)
        row_word = "item"
    elif ext in CSV_EXT:
        rows = _csv_rows(path, delimiter="\t" if ext == ".tsv" else ",")
    elif ext in PARQUET_EXT:
        rows = _parquet_rows(path)
        row_word = "row"
    else:
        raise UserError(f"{path}: unknown format '{ext or '(no extension)'}'",
                        f"use one of {', '.join(KNOWN)} (each may end in .gz), a Hugging Face save_to_disk "
                        "folder, or a folder of <label>/*.txt files")
    rows = _filtered(rows, where, str(path), row_word)
    return build_corpus(rows, source=str(path), name=name or _stem(path), fields=fields, row_word=row_word,
                        schema=schema, strict=strict)


def data_ext(path: Path) -> str:
    """The format extension of a data file, looking through a ``.gz`` (``train.jsonl.gz`` -> ``.jsonl``)."""
    suffixes = [x.lower() for x in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _stem(path: Path) -> str:
    """A file's name without its format extension (and ``.gz``): ``gpt.jsonl.gz`` -> ``gpt``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def _hub_or_missing(spec: str, path: Path) -> str:
    """A spec that is no local path: a hub id ('user/name') to try, or a one-line 'file not found'.

    A bare id is only tried when it cannot be a local path: its first folder does not exist here
    (``data/train`` with a ``data/`` folder is a missing file, not a dataset to look for on the hub);
    ``hf:ID`` always means the hub.
    """
    local = path.parent != Path(".") and path.parent.exists()
    if HUB_ID.match(spec) and not spec.endswith(tuple(KNOWN)) and not local:
        return spec
    hint = "check the path (relative paths start from the current directory)"
    if HUB_ID.match(spec):
        hint += "; for a Hugging Face hub dataset of that name write hf:" + spec
    raise UserError(f"{spec}: file not found", hint)


def _filtered(rows: Iterator[tuple[int, dict]], keep, source: str, row_word: str) -> Iterator[tuple[int, dict]]:
    """The rows ``keep(row)`` accepts (all rows when ``keep`` is None); a KeyError from ``keep``
    names a column the row lacks; no row accepted is an error naming the filter."""
    if keep is None:
        yield from rows
        return
    kept = 0
    for row_no, row in rows:
        try:
            ok = keep(row)
        except KeyError as e:
            raise UserError(f"{source}: {row_word} {row_no}: no field {e} to filter on "
                            f"(fields: {', '.join(map(str, row))})",
                            "name an existing column in 'where'/'where_not'") from None
        if ok:
            kept += 1
            yield row_no, row
    if not kept:
        raise UserError(f"{source}: no row passes the row filter ({keep})",
                        "check the values in 'where'/'where_not' against the file (types too: 0 is not '0')")


# --------------------------------------------------------------------------- readers
# Each reader yields (row_number, dict). Row numbers are 1-based lines for text formats.

def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})", "check the path and its permissions") from None
    if path.suffix.lower() == ".gz":
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise UserError(f"{path}: not a complete gzip file ({e})",
                            "check that it was written completely (gzip -t), or give the uncompressed file") from None
    if not data.strip():
        raise UserError(f"{path}: the file is empty", "give a file with at least one row")
    return data


_NOT_TEXT = (  # (magic bytes, what the file is, how to fix it)
    (b"\xff\xfe\x00\x00", "UTF-32", "iconv -f utf-32 -t utf-8 {name} > fixed{ext}"),
    (b"\x00\x00\xfe\xff", "UTF-32", "iconv -f utf-32 -t utf-8 {name} > fixed{ext}"),
    (b"\xff\xfe", "UTF-16", "iconv -f utf-16 -t utf-8 {name} > fixed{ext}"),
    (b"\xfe\xff", "UTF-16", "iconv -f utf-16 -t utf-8 {name} > fixed{ext}"),
    (b"\x1f\x8b", "gzip-compressed", "gunzip -c {name} > fixed{ext}"),
    (b"PK\x03\x04", "a zip archive", "unzip it and point at the file inside"),
    (b"PAR1", "Parquet", "rename it to .parquet"),
)

#: the longest text one row may hold; longer rows are almost always a broken export
MAX_TEXT_CHARS = 1_000_000


def _decode(path: Path, data: bytes) -> str:
    for magic, what, fix in _NOT_TEXT:
        if data.startswith(magic):
            raise UserError(f"{path}: the file is {what}, not UTF-8 text",
                            fix.format(name=path.name, ext=path.suffix))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{path}: line {line}: byte 0x{data[e.start]:02x} at offset {e.start} is not valid UTF-8",
            f"re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix})",
        ) from None


def _byte_lines(data: bytes) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) of UTF-8 ``data`` split at b"\\n" only, one line at a time: the
    same lines as ``data.decode("utf-8-sig").split("\\n")`` (a UTF-8 multi-byte sequence never holds the
    byte 0x0a) without holding the decoded file and the list of its lines at once (issue #10: 1M rows)."""
    start, lineno, end = 0, 0, 0
    while end >= 0:
        end = data.find(b"\n", start)
        chunk = data[start:] if end < 0 else data[start:end]
        lineno += 1
        yield lineno, chunk.decode("utf-8-sig" if lineno == 1 else "utf-8")
        start = end + 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    data = _read_bytes(path)
    _decode(path, data)  # the whole file is valid UTF-8 (else the error names the line); the text is not kept
    # JSON Lines ends lines with \n (or \r\n) only: str.splitlines() would also split inside strings
    # at U+2028, U+0085 and other Unicode line breaks that JSON leaves unescaped
    for lineno, line in _byte_lines(data):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {lineno}: malformed JSON ({e.msg} at column {e.colno})",
                            "make each line one complete JSON object") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}",
                            'make each line an object such as {"text": "...", "label": "..."}')
        yield lineno, obj


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    text = _decode(path, _read_bytes(path))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON lines saved as .json
            yield from _jsonl_rows(path)
            return
        raise UserError(f"{path}: line {e.lineno}: malformed JSON ({e.msg} at column {e.colno})",
                        "give a JSON array of objects, or one object per line (JSONL)") from None
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        hint = f" (its key '{lists[0]}' holds a list of rows)" if lists else ""
        raise UserError(f"{path}: expected a JSON array of objects, got one object{hint}",
                        "give a JSON array of row objects, or one object per line (JSONL)")
    if not isinstance(obj, list):
        raise UserError(f"{path}: expected a JSON array of objects, got {type(obj).__name__}",
                        "give a JSON array of objects, or one object per line (JSONL)")
    for i, item in enumerate(obj, 1):
        if not isinstance(item, dict):
            raise UserError(f"{path}: item {i}: expected a JSON object, got {type(item).__name__}",
                            'make each item an object such as {"text": "...", "label": "..."}')
        yield i, item


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, dict]]:
    text = _decode(path, _read_bytes(path))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{path}: the file is empty", "give a file with a header row and data rows") from None
    except csv.Error as e:
        raise UserError(f"{path}: line 1: bad CSV header ({e})", "quote fields that hold the delimiter") from None
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise UserError(f"{path}: duplicate column name(s) {', '.join(map(repr, dupes))} in the header",
                        "give each column a unique name")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise UserError(f"{path}: line {reader.line_num}: malformed CSV ({e})",
                            "quote fields that contain the delimiter, quotes or newlines") from None
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise UserError(f"{path}: line {reader.line_num}: {len(values)} fields where the header has {len(header)}",
                            "quote fields that contain the delimiter, or fix the ragged row")
        yield reader.line_num, dict(zip(header, values))


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise UserError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0][:120]})",
                        "check that the file was written completely, or convert it to JSONL") from None
    if table.num_rows == 0:
        raise UserError(f"{path}: the file has no rows", "give a file with at least one row")
    yield from _table_rows(table, path)


def _table_rows(table, where) -> Iterator[tuple[int, dict]]:
    names = table.column_names
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise UserError(f"{where}: duplicate column name(s) {', '.join(map(repr, dupes))}",
                        "give each column a unique name")
    cols = {n: table.column(n).to_pylist() for n in names}
    for i in range(table.num_rows):
        yield i + 1, {n: cols[n][i] for n in names}


def _load_dir(path: Path, fields: FieldMap, name: str | None, split: str | None, schema=None,
              strict: bool = False) -> Corpus:
    if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
        rows = _hf_folder_rows(path, split)
        return build_corpus(rows, source=str(path), name=name or path.name, fields=fields, schema=schema,
                            strict=strict)
    sub = sorted(p for p in _label_dirs(path) if any(p.glob("*.txt")))
    if sub:
        return load_text_folder(path, fields, name, schema=schema, strict=strict)
    raise UserError(f"{path}: a folder, but neither a Hugging Face save_to_disk folder nor <label>/*.txt files",
                    "give a data file, a folder written by Dataset.save_to_disk, or one sub-folder of .txt files per label")


def _pick_split(dd, where: str, split: str | None):
    splits = list(dd.keys())
    if split is not None:
        if split not in dd:
            raise UserError(f"{where}: no split '{split}' (splits: {', '.join(splits)})", "pass --split with one of those")
        return dd[split]
    if len(splits) == 1:
        return dd[splits[0]]
    if "train" in dd:
        return dd["train"]
    raise UserError(f"{where}: several splits ({', '.join(splits)}) and none is 'train'", "pass --split NAME")


def _hf_folder_rows(path: Path, split: str | None) -> Iterator[tuple[int, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path}: not a readable Hugging Face dataset folder ({str(e).splitlines()[0][:120]})",
                        "write it with Dataset.save_to_disk, or give a data file") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, str(path), split)
    if len(ds) == 0:
        raise UserError(f"{path}: the dataset has no rows", "give a dataset with at least one row")
    yield from _table_rows(ds.data.table if hasattr(ds.data, "table") else ds.data, path)


def _hub_rows(hub_id: str, split: str | None) -> Iterator[tuple[int, dict]]:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as e:
        raise UserError(f"{hub_id}: could not load from the Hugging Face hub ({str(e).splitlines()[0][:160]})",
                        "check the id and your network, or download it and pass the local file or folder") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, hub_id, split)
    yield from _table_rows(ds.data.table if hasattr(ds.data, "table") else ds.data, hub_id)


def _label_dirs(path: Path) -> list[Path]:
    """The label sub-folders of a text folder: hidden ones (``.git``, ``.ipynb_checkpoints``) are not labels."""
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def load_text_folder(path: Path, fields: FieldMap | None = None, name: str | None = None,
                     fallback_encoding: str | None = None, source: str | None = None, schema=None,
                     strict: bool = False) -> Corpus:
    """A folder with one sub-folder per label, each holding ``*.txt`` documents (sklearn's load_files layout).

    Files are read in sorted (label, file name) order, so the fingerprint is stable. Hidden folders are
    not labels; an empty file is an empty row (named by its path in messages).
    """
    rows = []
    for label_dir in _label_dirs(path):
        for f in sorted(label_dir.glob("*.txt")):
            data = f.read_bytes()
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                if fallback_encoding is None:
                    _decode(f, data)  # raises the UTF-8 error naming the file
                text = data.decode(fallback_encoding)
            rows.append((len(rows) + 1, {"text": text.strip(), "label": label_dir.name, "_file": str(f)}))
    if not rows:
        raise UserError(f"{path}: no .txt files under its label folders", "put documents in <folder>/<label>/*.txt")
    return build_corpus(iter(rows), source=source or str(path), name=name or path.name,
                        fields=fields or FieldMap(), row_word="file", schema=schema, strict=strict)


# --------------------------------------------------------------------------- mapping + validation

def _describe(v) -> str:
    return "null" if v is None else type(v).__name__


def build_corpus(rows: Iterable[tuple[int, dict]], source: str, name: str, fields: FieldMap,
                 row_word: str = "row", schema=None, strict: bool = False) -> Corpus:
    """Map columns and validate every row; a row whose structure is broken raises a UserError.

    A row whose text (for instruction data: its instruction) is empty, whitespace-only or null is a finding,
    not a reason to refuse the data: it is left out of the corpus, and its position is kept in
    ``Corpus.empty_rows`` (counted by ``format/empty-rate``, flagged ``empty``). With ``strict`` such a row
    is refused as before. A lone UTF-16 surrogate (``"\\ud83d"``: an emoji cut in half by a truncated
    generation) is replaced by U+FFFD and noted. Nothing usable left (every row empty) is an error.

    With a ``schema`` the load is lenient in every check (:func:`harness.data.schema.build_lenient`): every
    row is kept and the checks it fails are recorded for ``format/invalid-rate``.
    """
    if schema is not None:
        from harness.data.schema import build_lenient

        return build_lenient(rows, source, name, fields, schema, row_word)
    it = iter(rows)
    try:
        first_no, first = next(it)
    except StopIteration:
        raise UserError(f"{source}: no rows", "give a dataset with at least one row") from None
    cols = list(first.keys())

    text_col = fields.text
    if text_col is not None and text_col not in first:
        raise UserError(f"{source}: {row_word} {first_no}: no field '{text_col}' (fields: {', '.join(cols)})",
                        "name the text column with --text-field")
    if text_col is None:
        if "text" in first:
            text_col = "text"
        elif fields.instruction in first and fields.output in first:
            text_col = None
        else:
            raise UserError(f"{source}: {row_word} {first_no}: no 'text' field and no '{fields.instruction}'/"
                            f"'{fields.output}' pair (fields: {', '.join(cols) or 'none'})",
                            "name the text column with --text-field (or --instruction-field/--output-field)")
    kind = TEXT if text_col is not None else INSTRUCTION

    label_col = fields.label
    if label_col is not None and label_col not in first:
        raise UserError(f"{source}: {row_word} {first_no}: no field '{label_col}' (fields: {', '.join(cols)})",
                        "name the label column with --label-field, or leave it out for unlabelled data")
    if label_col is None and "label" in first and kind == TEXT:
        label_col = "label"
    if label_col is not None and kind == TEXT:
        kind = CLASSIFICATION

    texts: list[str] = []
    row_ids: list[int] = []
    empty_rows: list[int] = []
    empty_where: list[str] = []
    mended: list[str] = []   # where a lone surrogate was replaced
    labels: list[str] | None = [] if label_col is not None else None
    label_once: dict[str, str] = {}
    extra: dict[str, list[str]] = {}
    if kind == INSTRUCTION:
        extra = {"instruction": [], "input": [], "output": []}

    def where(row_no, row) -> str:
        return f"file {row['_file']}" if "_file" in row else f"{row_word} {row_no}"

    def need_str(row_no, row, col, allow_empty=False, required=True):
        """The field as text; None when it is empty/null and the row is to be left out as empty."""
        if col not in row:
            if not required:
                return ""
            raise UserError(f"{source}: {row_word} {row_no}: missing field '{col}'",
                            f"add '{col}' to every row, or name another column with --{_flag(col, fields)}")
        v = row[col]
        if v is None and (not required or (allow_empty and not strict)):
            return ""
        if v is None and not strict:
            return None
        if not isinstance(v, str):
            raise UserError(f"{source}: {where(row_no, row)}: field '{col}' is {_describe(v)}, expected text",
                            f"make '{col}' a string in every row" + (" (drop rows with nulls, or leave out "
                                                                     "--strict)" if v is None else ""))
        if not allow_empty and not v.strip():
            if not strict:
                return None
            raise UserError(f"{source}: {where(row_no, row)}: field '{col}' is empty",
                            "drop empty rows before evaluating, or leave out --strict (empty rows are then "
                            "counted by format/empty-rate and left out)")
        if _SURROGATE.search(v):
            v = _SURROGATE.sub("\ufffd", v)
            mended.append(where(row_no, row))
        if len(v) > MAX_TEXT_CHARS:
            raise UserError(f"{source}: {row_word} {row_no}: field '{col}' holds {len(v):,} characters "
                            f"(limit {MAX_TEXT_CHARS:,})",
                            "split long documents into rows, or check the export (a whole file in one row)")
        return v

    for index, (row_no, row) in enumerate(_chain_first(first_no, first, it)):
        if kind == INSTRUCTION:
            ins = need_str(row_no, row, fields.instruction)
            if ins is None:
                empty_rows.append(index)
                empty_where.append(where(row_no, row))
                continue
            inp = need_str(row_no, row, fields.input, allow_empty=True, required=False)
            out = need_str(row_no, row, fields.output, allow_empty=True)
            extra["instruction"].append(ins)
            extra["input"].append(inp)
            extra["output"].append(out)
            texts.append("\n\n".join(p for p in (ins, inp, out) if p.strip()))
        else:
            text = need_str(row_no, row, text_col)
            if text is None:
                empty_rows.append(index)
                empty_where.append(where(row_no, row))
                continue
            texts.append(text)
        row_ids.append(index)
        if labels is not None:
            if label_col not in row:
                raise UserError(f"{source}: {row_word} {row_no}: missing field '{label_col}'",
                                "give every row a label, or leave out --label-field for unlabelled data")
            lab = row[label_col]
            if lab is None or (isinstance(lab, str) and not lab.strip()):
                raise UserError(f"{source}: {row_word} {row_no}: label field '{label_col}' is "
                                f"{'null' if lab is None else 'empty'}",
                                "fill in or drop rows without a label, or leave out --label-field")
            if isinstance(lab, bool) or not isinstance(lab, (str, int)):
                if isinstance(lab, float) and lab.is_integer():
                    lab = int(lab)
                else:
                    raise UserError(f"{source}: {row_word} {row_no}: label field '{label_col}' is {_describe(lab)}",
                                    "use string or integer labels")
            lab = _SURROGATE.sub("\ufffd", str(lab).strip())
            labels.append(label_once.setdefault(lab, lab))  # one string object per distinct label
    if not texts:
        shown = ", ".join(empty_where[:3]) + (", …" if len(empty_rows) > 3 else "")
        raise UserError(f"{source}: every row is empty ({len(empty_rows)} row(s) with an empty or null "
                        f"{'instruction' if kind == INSTRUCTION else repr(text_col)}: {shown})",
                        "check the column (--text-field) and that the generation wrote its output")
    notes = []
    if empty_rows:
        shown = ", ".join(empty_where[:3]) + (", …" if len(empty_rows) > 3 else "")
        notes.append(f"{name}: {len(empty_rows)} of {len(empty_rows) + len(texts)} rows have an empty or null "
                     f"{'instruction' if kind == INSTRUCTION else 'text'} ({shown}); left out of every metric, "
                     "counted by format/empty-rate and flagged 'empty' (--strict refuses them)")
    if mended:
        shown = ", ".join(mended[:3]) + (", …" if len(mended) > 3 else "")
        notes.append(f"{name}: {len(mended)} row(s) hold a lone UTF-16 surrogate (a character cut in half, "
                     f"{shown}); replaced by U+FFFD")
    corpus = Corpus(
        name=name, source=source, kind=kind, texts=tuple(texts),
        labels=tuple(labels) if labels is not None else None,
        fields={k: tuple(v) for k, v in extra.items()}, n_source_rows=len(texts),
        empty_rows=tuple(empty_rows), empty_where=tuple(empty_where), notes=tuple(notes),
    )
    if empty_rows:  # positions among the rows as loaded, so flags and curate address the file's rows
        from dataclasses import replace

        corpus = replace(corpus, row_ids=tuple(row_ids), origin=(corpus.fingerprint, len(texts) + len(empty_rows)))
    return corpus


def _chain_first(no, row, it):
    yield no, row
    yield from it


def _flag(col: str, fields: FieldMap) -> str:
    for attr in ("instruction", "input", "output", "label", "text"):
        if getattr(fields, attr) == col or col == attr:
            return f"{attr}-field"
    return "text-field"


def parse_named(spec: str) -> tuple[str | None, str]:
    """'name=path' names a dataset; a plain path is named by its file stem (None here).

    >>> parse_named("gpt=data/gpt.jsonl"), parse_named("data/gpt.jsonl")
    (('gpt', 'data/gpt.jsonl'), (None, 'data/gpt.jsonl'))
    """
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        if name and "/" not in name and path:
            return name, path
        if name and path and Path(path).expanduser().exists():
            raise UserError(f"{spec}: the dataset name '{name}' holds a '/'",
                            "name datasets with letters, digits, '-', '_' and '.' only (NAME=PATH)")
    return None, spec


def unique_names(specs: list[tuple[str | None, str]]) -> list[str]:
    """Names for (name or None, path) pairs: file stems, made unique with parent folders when two share one.

    >>> unique_names([(None, "a/gpt.jsonl"), (None, "b/gpt.jsonl"), ("x", "c.jsonl")])
    ['a/gpt', 'b/gpt', 'x']
    """
    def stem_at(path: str, depth: int) -> str:
        p = Path(path)
        parts = [_stem(p)] + [q.name for q in p.parents][: depth]
        return "/".join(reversed(parts[: depth + 1]))

    for depth in range(0, 6):
        auto = [n or stem_at(path, depth) for (n, path) in specs]
        if len(set(auto)) == len(auto):
            return auto
    return [n or f"{stem_at(path, 0)}#{i + 1}" for i, (n, path) in enumerate(specs)]
