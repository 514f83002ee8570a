"""Suites: YAML files that declare a benchmark, validated into typed objects.

A suite names the reference (real) data, optionally a real test split, the candidates with
their provenance, the metrics and their arguments, seeds and the common sample size. Every
error names the file, the key and the fix. YAML holds data only: no code, no tags, no class
paths (``yaml.safe_load``).

Paths: ``builtin:NAME`` and ``hf:ID`` are used as they are; absolute paths too; paths starting
with ``./`` or ``../`` are relative to the suite file; any other relative path is relative to
the data root (``$SYNTHBENCH_DATA``, default ``../shared/data``) and may not leave it.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .data import FieldMap
from .errors import UserError

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


def _dataset(where: _Where, key: str, raw, fields: FieldMap, default_name: str | None = None) -> DatasetSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    _typed(where, key, raw, dict, "a mapping with at least 'path'")
    where.unknown(key + ".", raw, ("name", "path", "split", "fields", "provenance"))
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
    return DatasetSpec(name=name, path=_resolve_path(where, f"{key}.path", declared), declared=declared,
                       split=split, fields=_fields(where, f"{key}.fields", raw.get("fields"), fields),
                       provenance={k: str(v) for k, v in prov.items()})


SUITE_KEYS = ("name", "description", "task", "fields", "reference", "test", "holdout", "candidates", "metrics",
              "metric_args", "sample_size", "repeats", "seed", "embedder")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise UserError naming the file, key and fix."""
    import yaml

    from . import metrics as registry

    path = Path(path)
    where = _Where(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: suite file not found", "check the path (suites live in suites/)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text", "save the suite as UTF-8") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark else "somewhere"
        raise UserError(f"{path}: {at}: not valid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})",
                        "fix the YAML syntax (tags such as !!python or !function are not allowed)") from None
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
        if m not in registry.REGISTRY:
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
    return Suite(path=path, name=name, description=desc, task=task, reference=reference, test=test,
                 candidates=candidates, metrics=tuple(metric_list) if metric_list is not None else None,
                 metric_args={m: dict(a) for m, a in margs.items()}, holdout=holdout, sample_size=sample_size,
                 repeats=repeats, seed=seed, embedder=embedder)


def suite_specs(suite: Suite):
    """The suite's metrics as MetricSpecs, with its argument overrides applied."""
    from . import metrics as registry
    from .metrics import MetricSpec

    specs = registry.select(list(suite.metrics) if suite.metrics is not None else None)
    return [MetricSpec(s.name, s.target, {**s.args, **suite.metric_args.get(s.name, {})}) for s in specs]

