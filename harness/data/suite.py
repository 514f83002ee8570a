"""Suites: YAML files that declare a benchmark, validated into typed objects.

A suite names the reference (real) data, optionally a real test split, the candidates with
their provenance, the metrics and their arguments, seeds and the common sample size. Every
error names the file, the key and the fix. YAML holds data only: no code, no tags, no class
paths (``yaml.safe_load``).

Paths: ``builtin:NAME`` and ``hf:ID`` are used as they are; absolute paths too; paths starting
with ``./`` or ``../`` are relative to the suite file; any other relative path is relative to
the data root (``$SYNTHBENCH_DATA``, default ``../shared/data``) and may not leave it.

Shipped data often needs light handling before a like-for-like comparison, declared (never coded)
per dataset: ``where: {column: value or [values]}`` keeps the rows whose raw columns match every
condition (one method's rows of a file that mixes several), ``where_not:`` drops the rows that
match every one of its conditions (intents the real data lacks), ``label_map: {0: neg, 1: pos}``
renames labels to the reference's names. Values match with their JSON type (``0`` is not ``"0"``,
``false`` is not ``0``). For the whole suite, ``normalize: [strip-html, lowercase,
strip-punctuation]`` rewrites every text (reference, test and candidates alike) when one side was
normalised by its authors and the other was not. All of it enters the data fingerprints.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.load import FieldMap
from harness.data.schema import schema_from_suite
from harness.errors import UserError

TASKS = ("classification", "instruction", "text")
FIELD_KEYS = ("text", "label", "instruction", "input", "output")


def data_root() -> Path:
    return Path(os.environ.get("SYNTHBENCH_DATA", "../shared/data")).expanduser()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: str                      # resolved: a filesystem path, builtin:NAME or hf:ID
    declared: str                  # as written in the suite
    split: str | None = None
    fields: FieldMap = field(default_factory=FieldMap)
    provenance: dict = field(default_factory=dict)
    rows: RowFilter | None = None            # where / where_not
    label_map: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    description: str
    task: str | None
    reference: DatasetSpec
    test: DatasetSpec | None
    candidates: tuple[DatasetSpec, ...]
    metrics: tuple[str, ...] | None
    metric_args: dict[str, dict]
    holdout: float | None
    sample_size: int | str | None
    repeats: int
    seed: int
    embedder: str
    normalize: tuple[str, ...] = ()
    lm: str = "default"  # causal LM of the fluency metrics: 'default', a local folder or a hub id
    schema: object | None = None  # harness.data.schema.Schema: rows are checked, invalid ones counted (format/*)
    quote_text: bool = True  # False: dataset text is withheld from results.jsonl (data that may not be shared)
    judge: dict | None = None  # LLM judge of the judge/ metrics: options of harness.resources.judge_client.resolve_judge
    engine: dict | None = None  # {name: local|ray, address: ...}: options of harness.resources.engines.resolve_engine
    strict: bool = False  # True: a row with empty or null text refuses the file (default: counted, left out)
    precision: str | None = None  # compute precision of its models: auto, fp32, bf16, fp16 (None: the run's default)


def _json_key(value) -> str:
    """How filter values compare: canonical JSON, so 0, '0' and false stay apart."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class RowFilter:
    """Keeps a raw row when it matches every ``where`` condition and not every ``where_not`` one.

    Each condition is (column, accepted values as canonical JSON).

    >>> f = RowFilter(where=(("method", ('"taboo"',)), ("is_seed", ("false",))))
    >>> f({"method": "taboo", "is_seed": False}), f({"method": "taboo", "is_seed": 0}), str(f)
    (True, False, 'where method=taboo, is_seed=false')
    >>> RowFilter(where_not=(("label", ('"a"', '"b"')),))({"label": "b"})
    False
    >>> drop_blank_taboo = RowFilter(where_not=(("text", ('" "',)), ("method", ('"taboo"',))))
    >>> drop_blank_taboo({"text": " ", "method": "taboo"}), drop_blank_taboo({"text": " ", "method": "hints"})
    (False, True)
    """

    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    where_not: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __call__(self, row: dict) -> bool:
        # lists, not generators: every column is looked up on every row, so a missing one fails at row 1
        keep = all([_json_key(row[col]) in ok for col, ok in self.where])
        drop = bool(self.where_not) and all([_json_key(row[col]) in bad for col, bad in self.where_not])
        return keep and not drop

    def __str__(self) -> str:
        def part(conds):
            return ", ".join(f"{c}=" + "|".join(json.loads(v) if v.startswith('"') else v for v in vals)
                             for c, vals in conds)
        return "; ".join(p for p in (("where " + part(self.where)) if self.where else "",
                                     ("where_not " + part(self.where_not)) if self.where_not else "") if p)


#: suite-wide text normalisation steps, applied in this order whatever order the suite lists them
NORMALIZE_STEPS = ("strip-html", "lowercase", "strip-punctuation")
_TAG = re.compile(r"<[^<>]{0,200}>")
_APOSTROPHE = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")


def _punct_to_space(m: re.Match) -> str:
    """ASCII punctuation and symbols, and Unicode punctuation (P*), become a space; emoji and other
    symbols stay (some real rows are nothing but an emoji)."""
    import string
    import unicodedata

    c = m.group()
    return " " if c in string.punctuation or unicodedata.category(c).startswith("P") else c


def normalize_text(text: str, steps) -> str:
    """Apply the named steps (then collapse white space). ``strip-punctuation`` joins words around
    apostrophes (I'm -> im, as in the crowd-sourced intent data) and turns other punctuation into spaces.

    >>> normalize_text("I'm <b>sure</b>: St. Louis &amp; first-class, 10/10! \u201cOK\u201d \U0001F914", NORMALIZE_STEPS)
    'im sure st louis first class 10 10 ok \U0001f914'
    """
    if "strip-html" in steps:
        import html

        text = html.unescape(_TAG.sub(" ", text))
    if "lowercase" in steps:
        text = text.lower()
    if "strip-punctuation" in steps:
        text = _NON_WORD.sub(_punct_to_space, _APOSTROPHE.sub("", text))
    return _SPACE.sub(" ", text).strip()


class _Where:
    """Builds error messages that name the suite file and the key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, what: str, fix: str) -> UserError:
        return UserError(f"{self.path}: key '{key}': {what}", fix)

    def unknown(self, key_prefix: str, got: dict, allowed: tuple[str, ...]) -> None:
        for k in got:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise self.fail(f"{key_prefix}{k}", "unknown key",
                                f"{hint}allowed keys here: {', '.join(allowed)}")


def _typed(where: _Where, key: str, value, types, what: str):
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise where.fail(key, f"expected {what}, got {type(value).__name__} ({str(value)[:40]!r})", f"write {what}")
    return value


def _resolve_path(where: _Where, key: str, declared: str) -> str:
    if declared.startswith(("builtin:", "hf:")):
        return declared
    p = Path(declared).expanduser()
    if p.is_absolute():
        resolved = p
    elif declared.startswith(("./", "../")):
        base = where.path.parent.resolve()
        resolved = (base / p).resolve()
        if base not in resolved.parents:
            raise where.fail(key, f"'{declared}' leaves the suite's folder {base}",
                             "keep ./ paths inside the suite's folder; name shared data relative to the data "
                             "root (SYNTHBENCH_DATA), or give an absolute path")
    else:
        root = data_root().resolve()
        resolved = (root / p).resolve()
        if root not in resolved.parents and resolved != root:
            raise where.fail(key, f"'{declared}' leaves the data root {root}",
                             "use a path inside the data root, or start it with ./ to mean the suite's folder")
    if not resolved.exists():
        raise where.fail(key, f"'{declared}' not found (looked at {resolved})",
                         "fix the path, or set SYNTHBENCH_DATA to the folder that holds the data "
                         "(default ../shared/data from the current directory)")
    return str(resolved)


def _fields(where: _Where, key: str, raw, base: FieldMap | None = None) -> FieldMap:
    base = base or FieldMap()
    if raw is None:
        return base
    _typed(where, key, raw, dict, "a mapping such as {text: body, label: intent}")
    where.unknown(key + ".", raw, FIELD_KEYS)
    vals = {}
    for k, v in raw.items():
        vals[k] = _typed(where, f"{key}.{k}", v, str, "a column name (string)")
    return FieldMap(text=vals.get("text", base.text), label=vals.get("label", base.label),
                    instruction=vals.get("instruction", base.instruction),
                    input=vals.get("input", base.input), output=vals.get("output", base.output))


def _conditions(where: _Where, key: str, raw) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    _typed(where, key, raw, dict, "a mapping of column to a value or a list of values, such as {method: taboo}")
    if not raw:
        raise where.fail(key, "empty", "name at least one column, or leave the key out")
    conds = []
    for col, val in raw.items():
        _typed(where, f"{key}.{col}", col, str, "a column name (string)")
        vals = val if isinstance(val, list) else [val]
        if not vals:
            raise where.fail(f"{key}.{col}", "an empty list", "list at least one value")
        for v in vals:
            if not isinstance(v, (str, int, float, bool)) or v is None:
                raise where.fail(f"{key}.{col}", f"{v!r} is not a plain value", "use strings, numbers or true/false")
        conds.append((col, tuple(sorted({_json_key(v) for v in vals}))))
    return tuple(conds)


def _label_map(where: _Where, key: str, raw) -> dict:
    if raw is None:
        return {}
    _typed(where, key, raw, dict, "a mapping of label to new label, such as {0: neg, 1: pos}")
    out = {}
    for k, v in raw.items():
        if isinstance(k, bool) or not isinstance(k, (str, int)):
            raise where.fail(f"{key}.{k}", f"label {k!r} is not a string or integer", "write labels as they appear in the file")
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise where.fail(f"{key}.{k}", f"new label {v!r} is not a non-empty string or integer",
                             "map to the reference's label names")
        out[str(k).strip()] = str(v).strip()
    return out


def _dataset(where: _Where, key: str, raw, fields: FieldMap, default_name: str | None = None) -> DatasetSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    _typed(where, key, raw, dict, "a mapping with at least 'path'")
    where.unknown(key + ".", raw, ("name", "path", "split", "fields", "provenance", "where", "where_not", "label_map"))
    if "path" not in raw:
        raise where.fail(f"{key}.path", "missing", "give the dataset's path (or builtin:NAME, hf:ID)")
    declared = _typed(where, f"{key}.path", raw["path"], str, "a path (string)")
    name = raw.get("name", default_name or Path(declared.split(":")[-1]).stem)
    _typed(where, f"{key}.name", name, str, "a display name (string)")
    split = raw.get("split")
    if split is not None:
        _typed(where, f"{key}.split", split, str, "a split name (string)")
    prov = raw.get("provenance", {}) or {}
    _typed(where, f"{key}.provenance", prov, dict, "a mapping of strings (generator, method, licence, ...)")
    for k, v in prov.items():
        _typed(where, f"{key}.provenance.{k}", v, (str, int, float), "a string")
    keep = _conditions(where, f"{key}.where", raw.get("where"))
    drop = _conditions(where, f"{key}.where_not", raw.get("where_not"))
    path = _resolve_path(where, f"{key}.path", declared)
    if (keep or drop) and (path.startswith("builtin:") or Path(path).is_dir()):
        raise where.fail(f"{key}.where", "row filters apply to data files and hub datasets only",
                         "drop 'where'/'where_not' here, or export the data to a .jsonl file")
    return DatasetSpec(name=name, path=path, declared=declared,
                       split=split, fields=_fields(where, f"{key}.fields", raw.get("fields"), fields),
                       provenance={k: str(v) for k, v in prov.items()},
                       rows=RowFilter(keep, drop) if (keep or drop) else None,
                       label_map=_label_map(where, f"{key}.label_map", raw.get("label_map")))


SUITE_KEYS = ("name", "description", "task", "fields", "reference", "test", "holdout", "candidates", "metrics",
              "metric_args", "sample_size", "repeats", "seed", "embedder", "normalize", "lm", "schema",
              "quote_text", "judge", "engine", "strict", "precision")
JUDGE_KEYS = ("url", "model", "key_env", "concurrency", "timeout", "retries", "price_in", "price_out", "threads")


def _judge(where: _Where, raw) -> dict | None:
    """``judge: local``, ``judge: URL`` or a mapping of JUDGE_KEYS (the API key itself never: key_env names it)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"url": raw}
    _typed(where, "judge", raw, dict, "'local', a URL, or a mapping such as {url: ..., model: ...}")
    where.unknown("judge.", raw, JUDGE_KEYS)
    for k, v in raw.items():
        want = {"url": (str, "a URL or 'local'"), "model": (str, "a model name"), "key_env": (str, "a variable name"),
                "concurrency": (int, "a whole number"), "retries": (int, "a whole number"),
                "threads": (int, "a whole number")}.get(k, ((int, float), "a number"))
        _typed(where, f"judge.{k}", v, want[0], want[1])
    return dict(raw)


def _engine(where: _Where, raw) -> dict | None:
    """``engine: ray`` or ``engine: {name: ray, address: auto}`` (harness.resources.engines)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"name": raw}
    _typed(where, "engine", raw, dict, "'local', 'ray', or a mapping such as {name: ray, address: auto}")
    where.unknown("engine.", raw, ("name", "address"))
    for k, v in raw.items():
        _typed(where, f"engine.{k}", v, str, "a string")
    if raw.get("name", "local") not in ("local", "ray"):
        raise where.fail("engine.name", f"'{raw['name']}' is not an engine", "use local or ray")
    return dict(raw)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise UserError naming the file, key and fix."""
    from harness import metrics as registry

    path = Path(path)
    where = _Where(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: suite file not found", "check the path (suites live in suites/)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text", "save the suite as UTF-8") from None
    from harness.data.yamlio import load_yaml

    raw = load_yaml(text, path, "fix the YAML syntax (tags such as !!python or !function are not allowed)")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the suite must be a YAML mapping", "start with keys such as name:, reference:, candidates:")
    where.unknown("", raw, SUITE_KEYS)
    for req in ("name", "reference", "candidates"):
        if req not in raw:
            raise where.fail(req, "missing", f"add '{req}:' to the suite")
    name = _typed(where, "name", raw["name"], str, "a suite name (string)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name):
        raise where.fail("name", f"'{name[:40]}' is not a plain name (it names the default folder reports/<name>)",
                         "use letters, digits, '.', '_' and '-' only, such as ag-news")
    desc = _typed(where, "description", raw.get("description", ""), str, "a description (string)")
    task = raw.get("task")
    if task is not None and task not in TASKS:
        raise where.fail("task", f"'{task}' is not a task type", f"use one of {', '.join(TASKS)}")
    fields = _fields(where, "fields", raw.get("fields"))
    reference = _dataset(where, "reference", raw["reference"], fields)
    test = _dataset(where, "test", raw["test"], fields, default_name="test") if raw.get("test") else None
    holdout = raw.get("holdout")
    if holdout is not None:
        _typed(where, "holdout", holdout, (int, float), "a fraction of the reference, e.g. 0.25")
        if not 0 < holdout < 1:
            raise where.fail("holdout", f"{holdout} is not between 0 and 1", "give a fraction such as 0.25")
        if test is not None:
            raise where.fail("holdout", "given together with 'test'", "keep one: a test file, or a holdout of the reference")
    cands_raw = _typed(where, "candidates", raw["candidates"], list, "a list of datasets")
    if not cands_raw:
        raise where.fail("candidates", "empty", "list at least one candidate dataset")
    candidates = tuple(_dataset(where, f"candidates[{i}]", c, fields) for i, c in enumerate(cands_raw))
    names = [c.name for c in candidates] + [reference.name]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise where.fail("candidates", f"name(s) used twice: {', '.join(dup)}", "give each dataset a distinct name:")

    metric_list = raw.get("metrics")
    if metric_list is not None:
        _typed(where, "metrics", metric_list, list, "a list of metric names, groups or globs")
        for i, m in enumerate(metric_list):
            _typed(where, f"metrics[{i}]", m, str, "a metric name, group or glob (string)")
        try:
            registry.select(metric_list)
        except UserError as e:
            raise where.fail("metrics", e.what.replace("--metrics: ", ""), e.fix or "") from None
    margs = raw.get("metric_args", {}) or {}
    _typed(where, "metric_args", margs, dict, "a mapping of metric name to arguments")
    for m, args in margs.items():
        if not registry.is_metric(m):
            close = difflib.get_close_matches(str(m), registry.names(), n=1)
            raise where.fail(f"metric_args.{m}", "no such metric",
                             (f"did you mean '{close[0]}'? " if close else "") + "see 'synthbench metrics'")
        _typed(where, f"metric_args.{m}", args, dict, "a mapping of argument to value")
        params = inspect.signature(registry.get(m).fn).parameters
        allowed = tuple(p for p in params if p != "ctx")
        where.unknown(f"metric_args.{m}.", args, allowed)
        for k, v in args.items():
            _typed(where, f"metric_args.{m}.{k}", v, (int, float, str, bool, list), "a number, string or list")

    sample_size = raw.get("sample_size")
    if sample_size is not None and sample_size != "min":
        _typed(where, "sample_size", sample_size, int, "a number of rows or 'min'")
        if sample_size < 2:
            raise where.fail("sample_size", f"{sample_size} is too small", "give at least 2, or 'min'")
    repeats = _typed(where, "repeats", raw.get("repeats", 1), int, "a whole number ≥ 1")
    if repeats < 1:
        raise where.fail("repeats", f"{repeats} is below 1", "give 1 (no repeats) or more")
    seed = _typed(where, "seed", raw.get("seed", 0), int, "an integer seed")
    embedder = _typed(where, "embedder", raw.get("embedder", "default"), str, "an embedder name or folder")
    lm = _typed(where, "lm", raw.get("lm", "default"), str,
                "a causal language model: 'default', a local model folder or a hub id")
    if lm.startswith(("./", "../")):  # like dataset paths: relative to the suite file
        lm = str((path.parent / lm).resolve())
    judge = _judge(where, raw.get("judge"))
    engine = _engine(where, raw.get("engine"))
    quote_text = _typed(where, "quote_text", raw.get("quote_text", True), bool,
                        "true or false (false withholds dataset text from results.jsonl)")
    strict = _typed(where, "strict", raw.get("strict", False), bool,
                    "true or false (true refuses a file with an empty or null row; false counts them)")
    precision = raw.get("precision")
    if precision is not None:
        from harness.resources.precision import PRECISIONS, normalise

        precision = _typed(where, "precision", precision, str, "auto, fp32, bf16 or fp16")
        try:
            precision = normalise(precision)
        except UserError:
            raise where.fail("precision", f"'{precision}' is not a precision",
                             f"use {', '.join(PRECISIONS)}") from None
    norm = raw.get("normalize") or []
    _typed(where, "normalize", norm, list, f"a list of steps from {', '.join(NORMALIZE_STEPS)}")
    for i, step in enumerate(norm):
        if step not in NORMALIZE_STEPS:
            close = difflib.get_close_matches(str(step), NORMALIZE_STEPS, n=1)
            raise where.fail(f"normalize[{i}]", f"'{step}' is not a normalisation step",
                             (f"did you mean '{close[0]}'? " if close else "") + f"use {', '.join(NORMALIZE_STEPS)}")
    return Suite(path=path, name=name, description=desc, task=task, reference=reference, test=test,
                 candidates=candidates, metrics=tuple(metric_list) if metric_list is not None else None,
                 metric_args={m: dict(a) for m, a in margs.items()}, holdout=holdout, sample_size=sample_size,
                 repeats=repeats, seed=seed, embedder=embedder, lm=lm, quote_text=quote_text, judge=judge, engine=engine,
                 strict=strict, precision=precision,
                 normalize=tuple(s for s in NORMALIZE_STEPS if s in norm),
                 schema=schema_from_suite(raw.get("schema"), path))


def load_dataset(spec: DatasetSpec, normalize: tuple[str, ...] = (), schema=None, strict: bool = False):
    """Load one dataset of a suite: its row filter, label map and the suite's normalisation applied.

    What was done is appended to the corpus' source (shown in run.json and the reports); the
    fingerprint is that of the rows as evaluated.
    """
    from dataclasses import replace

    from harness.data.load import load_corpus

    corpus = load_corpus(spec.path, spec.fields, name=spec.name, split=spec.split, where=spec.rows, schema=schema,
                         strict=strict)
    notes = [str(spec.rows)] if spec.rows is not None else []
    changes = {}
    if spec.label_map:
        if corpus.labels is None:
            raise UserError(f"{spec.path}: 'label_map' given but the dataset has no labels",
                            "name the label column under 'fields', or drop 'label_map'")
        changes["labels"] = tuple(spec.label_map.get(lab, lab) for lab in corpus.labels)
        notes.append("labels " + ", ".join(f"{k}->{v}" for k, v in spec.label_map.items()))
    if normalize:
        texts = tuple(normalize_text(t, normalize) for t in corpus.texts)
        empty = next((i for i, t in enumerate(texts) if not t), None)
        if empty is not None:
            raise UserError(f"{spec.path}: row {empty + 1} of {spec.name} is empty after normalize "
                            f"({', '.join(normalize)}): {corpus.texts[empty][:60]!r}",
                            "drop such rows with 'where_not', or leave out the normalisation step")
        changes["texts"] = texts
        changes["fields"] = {k: vals if k.startswith("_") else tuple(normalize_text(v, normalize) for v in vals)
                             for k, vals in corpus.fields.items()}  # "_invalid": schema reasons, not text
        notes.append("normalised: " + ", ".join(normalize))
    if notes:
        changes["source"] = f"{corpus.source} [{'; '.join(notes)}]"
    return replace(corpus, **changes) if changes else corpus


def suite_specs(suite: Suite):
    """The suite's metrics as MetricSpecs, with its argument overrides applied."""
    from harness import metrics as registry
    from harness.metrics import MetricSpec

    specs = registry.select(list(suite.metrics) if suite.metrics is not None else None)
    return [MetricSpec(s.name, s.target, {**s.args, **suite.metric_args.get(s.name, {})}) for s in specs]

