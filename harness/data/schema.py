"""Declared row schemas and the lenient load that counts invalid rows instead of refusing the file.

An ordinary load (no schema) refuses a file at its first bad row: a dataset with an empty text or a
null output is not evaluated at all. With a schema (``synthbench eval --schema FILE.yaml`` or the
suite key ``schema:``) the loader keeps every row, records why each one is invalid, and the metric
``format/invalid-rate`` reports the share of invalid rows, the counts and examples per reason.

A schema (YAML; every key optional)::

    required: [instruction, output]          # present, not null and, for text, not blank
    types:                                   # JSON types: string integer number boolean array object null
      instruction: string
      input: [string, "null"]
      output: string
    labels: [negative, positive]             # allowed labels (default: the reference's label set)
    length:                                  # per field; words = whitespace-separated words
      output: {min_words: 1, max_words: 1000}
      instruction: {max_chars: 2000}
    json: [output]                           # fields whose text must parse as JSON

Field names: ``text``, ``label``, ``instruction``, ``input`` and ``output`` mean the mapped columns
(``--*-field`` flags, a suite's ``fields:``), so one schema fits files whose columns are named
differently; any other name is a column of the file as written. ``labels`` applies to the label
column. Reasons name fields the same way. On top of what the schema declares, the rules an ordinary load enforces still
hold, reported instead of raised: the text column (or ``instruction`` and ``output``) must be text,
``instruction`` and ``text`` not blank, a label present and a string or integer.

Reasons (kebab-case, one per failed check, with the field): ``missing-field``, ``empty``,
``wrong-type``, ``label-not-allowed``, ``too-short``, ``too-long``, ``bad-json``. A row may fail
several checks; it counts once in the rate.

In the lenient load, values that cannot be text are made text so that every row keeps its position
and no other metric meets a non-string: a missing or null value becomes ``""``, any other non-string
value its JSON text (``42`` -> ``"42"``). The reasons of row i are in ``corpus.fields["_invalid"][i]``
as ``"reason:field;reason:field"`` (``""`` when valid); subsamples and holdouts carry them along, and
they are part of the corpus fingerprint (a schema load and an ordinary load never share results).
Reader-level errors (a malformed JSONL line, a file that is not UTF-8) still refuse the file: they
are errors in the file, not in a row.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import UserError

#: the Corpus field that holds each row's reasons ("" for a valid row)
INVALID_FIELD = "_invalid"

REASONS = ("missing-field", "empty", "wrong-type", "label-not-allowed", "too-short", "too-long", "bad-json")
TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
LENGTH_KEYS = ("min_words", "max_words", "min_chars", "max_chars")
SCHEMA_KEYS = ("required", "types", "labels", "length", "json")


def json_type(v) -> str:
    """The JSON type name of a Python value as a JSON reader returns it.

    >>> [json_type(x) for x in ("a", 1, 1.5, True, None, [1], {"a": 1})]
    ['string', 'integer', 'number', 'boolean', 'null', 'array', 'object']
    """
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _type_ok(v, allowed: tuple[str, ...]) -> bool:
    t = json_type(v)
    return t in allowed or (t == "integer" and "number" in allowed)


@dataclass(frozen=True)
class Schema:
    """What a valid row looks like. ``labels=None`` means "the reference's labels" (resolved by
    :meth:`with_labels` once the reference is loaded) or no label check without a labelled reference."""

    required: tuple[str, ...] = ()
    types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    length: dict[str, dict[str, int]] = field(default_factory=dict)
    json: tuple[str, ...] = ()
    labels_from: str = "schema"  # or "reference" when filled in from the reference's labels

    def with_labels(self, labels: Iterable[str] | None, origin: str = "reference") -> Schema:
        """This schema with the allowed label set filled in (when it declares none)."""
        if self.labels is not None or labels is None:
            return self
        allowed = tuple(sorted({str(x) for x in labels if str(x).strip()}))
        return replace(self, labels=allowed, labels_from=origin) if allowed else self

    def as_dict(self) -> dict:
        """A JSON-serialisable form (for run.json and reports)."""
        return {"required": list(self.required), "types": {k: list(v) for k, v in self.types.items()},
                "labels": list(self.labels) if self.labels is not None else None,
                "labels_from": self.labels_from if self.labels is not None else None,
                "length": {k: dict(v) for k, v in self.length.items()}, "json": list(self.json)}

    def check(self, row: dict, label_col: str | None = None) -> list[tuple[str, str]]:
        """(reason, field) for every declared check that ``row`` (a raw dict) fails."""
        out: list[tuple[str, str]] = []
        for col in self.required:
            v = row.get(col)
            if v is None:
                out.append(("missing-field", col))
            elif isinstance(v, str) and not v.strip():
                out.append(("empty", col))
        for col, allowed in self.types.items():
            v = row.get(col)  # null counts as absent: reported by 'required' when the field is required
            if v is not None and not _type_ok(v, allowed):
                out.append(("wrong-type", col))
        for col, bounds in self.length.items():
            v = row.get(col)
            if not isinstance(v, str):
                continue  # missing or not text: reported by required/types
            words, chars = len(v.split()), len(v)
            if ("min_words" in bounds and words < bounds["min_words"]) or \
                    ("min_chars" in bounds and chars < bounds["min_chars"]):
                out.append(("too-short", col))
            if ("max_words" in bounds and words > bounds["max_words"]) or \
                    ("max_chars" in bounds and chars > bounds["max_chars"]):
                out.append(("too-long", col))
        for col in self.json:
            v = row.get(col)
            if isinstance(v, str) and v.strip():  # a blank value is 'empty' (when required), not bad JSON
                try:
                    json.loads(v)
                except ValueError:
                    out.append(("bad-json", col))
        if self.labels is not None and label_col is not None:
            v = row.get(label_col)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip() and \
                    _label_text(v) not in set(self.labels):
                out.append(("label-not-allowed", label_col))
        return out


def _label_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else as_text(v).strip()


def as_text(v) -> str:
    """A value made text for the lenient load: '' for None, the string itself, else its JSON text.

    >>> as_text(None), as_text("a"), as_text(42), as_text({"k": [1, 2]})
    ('', 'a', '42', '{"k": [1, 2]}')
    """
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


# ----------------------------------------------------------------------------- parsing

def _fail(origin: str, key: str, what: str, fix: str) -> UserError:
    return UserError(f"{origin}: key '{key}': {what}", fix)


def _names(origin: str, key: str, v) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise _fail(origin, key, f"expected a list of field names, got {str(v)[:40]!r}",
                    "write a list such as [instruction, output]")
    return tuple(v)


def parse_schema(raw, origin: str, prefix: str = "") -> Schema:
    """Validate a schema mapping; errors name ``origin`` (a file), the key and the fix."""
    if not isinstance(raw, dict):
        raise _fail(origin, prefix.rstrip(".") or "schema", f"expected a mapping, got {type(raw).__name__}",
                    f"give keys such as {', '.join(SCHEMA_KEYS)}")
    for k in raw:
        if k not in SCHEMA_KEYS:
            close = difflib.get_close_matches(str(k), SCHEMA_KEYS, n=1)
            raise _fail(origin, f"{prefix}{k}", "unknown key",
                        (f"did you mean '{close[0]}'? " if close else "") + f"allowed keys: {', '.join(SCHEMA_KEYS)}")
    required = _names(origin, f"{prefix}required", raw["required"]) if raw.get("required") is not None else ()
    types: dict[str, tuple[str, ...]] = {}
    traw = raw.get("types") or {}
    if not isinstance(traw, dict):
        raise _fail(origin, f"{prefix}types", "expected a mapping of field to type",
                    "write e.g. {output: string, score: [integer, 'null']}")
    for col, t in traw.items():
        ts = [t] if isinstance(t, str) else t
        if not isinstance(ts, list) or not ts or any(x not in TYPES for x in ts):
            bad = next((x for x in (ts if isinstance(ts, list) else [ts]) if x not in TYPES), t)
            close = difflib.get_close_matches(str(bad), TYPES, n=1)
            raise _fail(origin, f"{prefix}types.{col}", f"'{bad}' is not a type",
                        (f"did you mean '{close[0]}'? " if close else "") + f"use one or a list of: {', '.join(TYPES)}")
        types[str(col)] = tuple(ts)
    labels = None
    if raw.get("labels") is not None:
        lv = raw["labels"]
        if not isinstance(lv, list) or not lv or not all(isinstance(x, (str, int)) and not isinstance(x, bool)
                                                          for x in lv):
            raise _fail(origin, f"{prefix}labels", "expected a non-empty list of labels (strings or integers)",
                        "write e.g. [negative, positive], or leave it out to use the reference's labels")
        labels = tuple(str(x).strip() for x in lv)
    length: dict[str, dict[str, int]] = {}
    lraw = raw.get("length") or {}
    if not isinstance(lraw, dict):
        raise _fail(origin, f"{prefix}length", "expected a mapping of field to bounds",
                    "write e.g. {output: {min_words: 1, max_words: 1000}}")
    for col, b in lraw.items():
        key = f"{prefix}length.{col}"
        if not isinstance(b, dict) or not b:
            raise _fail(origin, key, "expected a mapping of bounds", f"use keys {', '.join(LENGTH_KEYS)}")
        for bk, bv in b.items():
            if bk not in LENGTH_KEYS:
                close = difflib.get_close_matches(str(bk), LENGTH_KEYS, n=1)
                raise _fail(origin, f"{key}.{bk}", "unknown bound",
                            (f"did you mean '{close[0]}'? " if close else "") + f"use {', '.join(LENGTH_KEYS)}")
            if not isinstance(bv, int) or isinstance(bv, bool) or bv < 0:
                raise _fail(origin, f"{key}.{bk}", f"expected a whole number ≥ 0, got {bv!r}", "write e.g. 1000")
        for unit in ("words", "chars"):
            lo, hi = b.get(f"min_{unit}"), b.get(f"max_{unit}")
            if lo is not None and hi is not None and lo > hi:
                raise _fail(origin, key, f"min_{unit} {lo} is above max_{unit} {hi}", "swap or fix the bounds")
        length[str(col)] = dict(b)
    js = _names(origin, f"{prefix}json", raw["json"]) if raw.get("json") is not None else ()
    return Schema(required=required, types=types, labels=labels, length=length, json=js)


def load_schema_file(path: str | Path) -> Schema:
    """Read a schema YAML file (``--schema``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{p}: schema file not found", "check the path given to --schema") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: cannot read the schema ({e})", "give a UTF-8 YAML file") from None
    from harness.data.yamlio import load_yaml

    raw = load_yaml(text, p, "fix the YAML syntax")
    return parse_schema(raw if raw is not None else {}, str(p))


# ----------------------------------------------------------------------------- the lenient load

def build_lenient(rows: Iterable[tuple[int, dict]], source: str, name: str, fields, schema: Schema,
                  row_word: str = "row"):
    """Like :func:`harness.data.load.build_corpus`, but every row is kept and its failed checks recorded.

    Columns are found in the union of all rows' keys (not only the first row's), so a first row that
    lacks a field does not decide the dataset's kind. A file-level problem (no text column anywhere)
    is still a UserError.
    """
    from harness.data.load import MAX_TEXT_CHARS
    from harness.types import CLASSIFICATION, INSTRUCTION, TEXT, Corpus

    rows = list(rows)
    if not rows:
        raise UserError(f"{source}: no rows", "give a dataset with at least one row")
    cols: dict[str, None] = {}
    for _, r in rows:
        cols.update(dict.fromkeys(r))
    listed = ", ".join(cols) or "none"

    text_col = fields.text
    if text_col is not None and text_col not in cols:
        raise UserError(f"{source}: no row has a field '{text_col}' (fields: {listed})",
                        "name the text column with --text-field")
    if text_col is None:
        if "text" in cols:
            text_col = "text"
        elif not (fields.instruction in cols and fields.output in cols):
            raise UserError(f"{source}: no 'text' field and no '{fields.instruction}'/'{fields.output}' pair "
                            f"in any row (fields: {listed})",
                            "name the text column with --text-field (or --instruction-field/--output-field)")
    kind = TEXT if text_col is not None else INSTRUCTION
    label_col = fields.label
    if label_col is not None and label_col not in cols:
        raise UserError(f"{source}: no row has a field '{label_col}' (fields: {listed})",
                        "name the label column with --label-field, or leave it out for unlabelled data")
    if label_col is None and "label" in cols and kind == TEXT:
        label_col = "label"
    if label_col is not None and kind == TEXT:
        kind = CLASSIFICATION

    texts: list[str] = []
    labels: list[str] | None = [] if label_col is not None else None
    extra: dict[str, list[str]] = {"instruction": [], "input": [], "output": []} if kind == INSTRUCTION else {}
    invalid: list[str] = []

    def text_of(row, col, reasons, required=True, allow_blank=False) -> str:
        v = row.get(col)
        if v is None:
            if required:
                reasons.append(("missing-field", col))
            return ""
        if not isinstance(v, str):
            reasons.append(("wrong-type", col))
            v = as_text(v)
        elif not allow_blank and not v.strip():
            reasons.append(("empty", col))
        if len(v) > MAX_TEXT_CHARS:
            reasons.append(("too-long", col))
            v = v[:MAX_TEXT_CHARS]
        return v

    # the roles (text, label, instruction, input, output) name the mapped columns, so one schema fits
    # files whose columns are named differently; every other name is a column as written
    roles = ({"instruction": fields.instruction, "input": fields.input, "output": fields.output}
             if kind == INSTRUCTION else {"text": text_col})
    if label_col is not None:
        roles["label"] = label_col
    for _, raw in rows:
        row = dict(raw)
        for role, col in roles.items():
            if col != role:
                if col in raw:
                    row[role] = raw[col]
                else:
                    row.pop(role, None)
        reasons: list[tuple[str, str]] = []
        if kind == INSTRUCTION:
            ins = text_of(row, "instruction", reasons)
            inp = text_of(row, "input", reasons, required=False, allow_blank=True)
            out = text_of(row, "output", reasons, allow_blank=True)
            extra["instruction"].append(ins)
            extra["input"].append(inp)
            extra["output"].append(out)
            texts.append("\n\n".join(p for p in (ins, inp, out) if p.strip()))
        else:
            texts.append(text_of(row, "text", reasons))
        if labels is not None:
            lab = row.get("label")
            if lab is None:
                reasons.append(("missing-field", "label"))
                lab = ""
            elif isinstance(lab, str) and not lab.strip():
                reasons.append(("empty", "label"))
            elif isinstance(lab, bool) or not isinstance(lab, (str, int)):
                if isinstance(lab, float) and lab.is_integer():
                    lab = int(lab)
                else:
                    reasons.append(("wrong-type", "label"))
            labels.append(_label_text(lab))
        reasons += schema.check(row, "label" if label_col is not None else None)
        seen: dict[tuple[str, str], None] = dict.fromkeys(reasons)
        invalid.append(";".join(f"{r}:{f}" for r, f in seen))
    extra[INVALID_FIELD] = invalid
    return Corpus(name=name, source=source, kind=kind, texts=tuple(texts),
                  labels=tuple(labels) if labels is not None else None,
                  fields={k: tuple(v) for k, v in extra.items()}, n_source_rows=len(texts))


def row_reasons(corpus) -> list[list[tuple[str, str]]] | None:
    """Each row's (reason, field) pairs from a lenient load; None when the corpus was loaded without a schema."""
    col = corpus.fields.get(INVALID_FIELD)
    if col is None:
        return None
    out = []
    for s in col:
        pairs = []
        for item in filter(None, s.split(";")):
            reason, _, fld = item.partition(":")
            pairs.append((reason, fld))
        out.append(pairs)
    return out


def schema_from_suite(raw, suite_path: Path) -> Schema | None:
    """The suite key ``schema:``: an inline mapping, or a YAML file path relative to the suite file."""
    if raw is None:
        return None
    if isinstance(raw, str):
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else (Path(suite_path).parent / p).resolve()
        if not p.exists():
            raise _fail(str(suite_path), "schema", f"'{raw}' not found (looked at {p})",
                        "give a schema YAML file relative to the suite file, or write the schema inline")
        return load_schema_file(p)
    return parse_schema(raw, str(suite_path), prefix="schema.")


def resolve_for_candidates(schema: Schema | None, reference) -> Schema | None:
    """The schema candidates are checked with: its label set, or else the reference's labels."""
    if schema is None or reference is None or reference.labels is None:
        return schema
    return schema.with_labels(reference.labels, origin=f"reference {reference.name}")
