"""The library face of synthbench: one call on your data, from a notebook or a script.

Everything the ``synthbench`` command does goes through these functions (the CLI is argument parsing over
them), so a notebook and a shell give the same records:

- :func:`load` — a path, ``NAME=PATH``, ``builtin:NAME``, ``hf:ID``, a list of strings, a list of dicts,
  a pandas DataFrame or a ``datasets.Dataset`` into a validated :class:`~harness.types.Corpus`;
- :func:`evaluate` — every metric on every candidate (and the reference): a :class:`Run`;
- :func:`run_suite` — a declared benchmark (YAML);
- :func:`compare` — two candidates of stored runs, metric by metric;
- ``harness.metrics()`` — the metric catalogue as a DataFrame.

>>> import harness
>>> run = harness.evaluate({"a": ["the cat sat", "the cat ran"], "b": ["a dog", "a dog"]},
...                        metrics=["lexical/distinct-1", "dup/exact-rate"])
>>> run.to_pandas()[["dataset", "metric", "value"]].round(3).values.tolist()
[['a', 'lexical/distinct-1', 0.667], ['a', 'dup/exact-rate', 0.0], ['b', 'lexical/distinct-1', 0.5], ['b', 'dup/exact-rate', 0.5]]
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import __version__
from harness.errors import UserError

RUN_SCHEMA_VERSION = 1


def log_line(msg: str) -> None:
    """The default log: one line on stderr, with every control character, bidi override and line break
    that data put into it shown as an escape (a label cannot colour, reorder or split the line)."""
    from harness.report.markdown import term_safe

    print(term_safe(msg), file=sys.stderr)


# ----------------------------------------------------------------------------- data in

def _fieldmap(text_field=None, label_field=None, instruction_field="instruction", input_field="input",
              output_field="output"):
    from harness.data.load import FieldMap

    return FieldMap(text=text_field, label=label_field, instruction=instruction_field, input=input_field,
                    output=output_field)


def _is_frame(x) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "to_dict")


def _is_hf(x) -> bool:
    return type(x).__module__.startswith("datasets") and hasattr(x, "column_names")


def _rows_of(data, what: str, split: str | None):
    """(rows, source, row word, first row number) of in-memory data."""
    import math

    if _is_frame(data):
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        rows = [{str(k): clean(v) for k, v in r.items()} for r in data.to_dict("records")]
        return rows, f"{what} (a DataFrame of {len(rows)} rows)", "index", 0
    if _is_hf(data):
        if hasattr(data, "keys") and not hasattr(data, "features"):  # a DatasetDict
            from harness.data.load import _pick_split

            data = _pick_split(data, what, split)
        rows = [dict(r) for r in data]
        return rows, f"{what} (a datasets.Dataset of {len(rows)} rows)", "index", 0
    if isinstance(data, (list, tuple)):
        if all(isinstance(r, dict) for r in data):
            return [dict(r) for r in data], f"{what} (a list of {len(data)} dicts)", "index", 0
        if all(r is None or isinstance(r, str) for r in data):
            return [{"text": r} for r in data], f"{what} (a list of {len(data)} strings)", "index", 0
        kinds = sorted({type(r).__name__ for r in data})
        raise UserError(f"{what}: a list of {', '.join(kinds)}",
                        "give a list of strings (texts) or of dicts (rows with text/label or instruction/output)")
    raise UserError(f"{what}: cannot read a {type(data).__name__}",
                    "give a path, a list of strings or dicts, a pandas DataFrame or a datasets.Dataset")


def load(data, *, name: str | None = None, text_field: str | None = None, label_field: str | None = None,
         instruction_field: str = "instruction", input_field: str = "input", output_field: str = "output",
         split: str | None = None, schema=None, strict: bool = False):
    """One dataset as a validated :class:`~harness.types.Corpus`.

    ``data`` is a path (``.jsonl .json .csv .tsv .parquet``, a Hugging Face ``save_to_disk`` folder, a
    folder of ``<label>/*.txt``), ``NAME=PATH``, ``builtin:NAME``, ``hf:ID``, a list of strings, a list of
    dicts, a pandas DataFrame, a ``datasets.Dataset`` (or ``DatasetDict`` with ``split``) or a Corpus.
    Columns map as in the CLI: ``text`` and ``label``, or ``instruction``/``input``/``output``. ``schema``
    (a path to a schema YAML, a dict or a Schema) makes the load lenient: invalid rows are kept and counted
    by ``format/invalid-rate``. Rows with empty or null text are left out and counted (``Corpus.empty_rows``,
    ``format/empty-rate``); ``strict=True`` refuses them instead.

    >>> load(["a b", "c d"], name="toy").texts
    ('a b', 'c d')
    """
    from harness.data.load import build_corpus, load_corpus, parse_named
    from harness.types import Corpus

    fields = _fieldmap(text_field, label_field, instruction_field, input_field, output_field)
    schema = _schema(schema)
    if isinstance(data, Corpus):
        return replace(data, name=name) if name and name != data.name else data
    if isinstance(data, (str, os.PathLike)):
        named, spec = parse_named(str(data))
        return load_corpus(spec, fields, name=name or named, split=split, schema=schema, strict=strict)
    what = f"dataset '{name}'" if name else "dataset"
    rows, source, word, start = _rows_of(data, what, split)
    return build_corpus(enumerate(rows, start), source=source, name=name or "data", fields=fields, row_word=word,
                        schema=schema, strict=strict)


def _schema(schema):
    if schema is None or hasattr(schema, "as_dict"):
        return schema
    from harness.data.schema import load_schema_file, parse_schema

    if isinstance(schema, dict):
        return parse_schema(schema, "schema=")
    return load_schema_file(schema)


class DataSpec(str):
    """A string that names data (a path, ``NAME=PATH``, ``builtin:NAME``, ``hf:ID``), never a text: what the
    command line passes, so a missing file is 'file not found' rather than a one-row dataset of its name."""


def _is_spec(x) -> bool:
    """A string that names data (a path that exists, NAME=PATH, builtin:, hf:), not a text."""
    from harness.data.load import parse_named

    if isinstance(x, (os.PathLike, DataSpec)):
        return True
    if not isinstance(x, str):
        return False
    _, spec = parse_named(x)
    return spec.startswith(("builtin:", "hf:")) or Path(spec).expanduser().exists()


def _looks_like_path(x) -> bool:
    """A string shaped like a file name (no spaces; a data extension, a folder or NAME=PATH), not a text."""
    from harness.data.load import KNOWN

    if not isinstance(x, str) or not x or any(ch.isspace() for ch in x) or len(x) > 4096:
        return False
    spec = x.split("=", 1)[-1]
    return spec.lower().removesuffix(".gz").endswith(tuple(KNOWN)) or "/" in spec


def _candidates(candidates) -> list[tuple[str | None, object]]:
    """(name or None, data) per candidate. A list of strings is a list of data specs when each names data
    (exists, ``builtin:``, ``hf:``) or each is shaped like a path (then a missing one is 'file not found',
    never a one-row dataset of its name); otherwise it is a list of texts."""
    if isinstance(candidates, dict):
        return [(str(k), v) for k, v in candidates.items()]
    if isinstance(candidates, (list, tuple)) and candidates and all(
            _is_spec(c) or _looks_like_path(c) for c in candidates):
        return [(None, c) for c in candidates]
    if (isinstance(candidates, (list, tuple)) and candidates
            and all(_is_frame(c) or _is_hf(c) or type(c).__name__ == "Corpus" for c in candidates)):
        return [(None, c) for c in candidates]
    return [(None, candidates)]


def load_candidates(candidates, fields: dict, split=None, schema=None, strict: bool = False) -> list:
    """The candidates of :func:`evaluate`, loaded and named apart (file stems, made unique as in the CLI)."""
    from harness.data.load import parse_named, unique_names

    items = _candidates(candidates)
    specs = []
    for i, (name, data) in enumerate(items):
        if name is None and (_is_spec(data) or _looks_like_path(data)):
            specs.append(parse_named(str(data)))
        else:
            specs.append((name or getattr(data, "name", None) or (f"candidate-{i + 1}" if len(items) > 1
                                                                  else "candidate"), f"<{i}>"))
    names = unique_names(specs)
    if len(set(names)) != len(names):
        raise UserError("two candidates have the same name", "name them apart (a dict name -> data, or NAME=PATH)")
    out = []
    for nm, (_, data) in zip(names, items):
        src = parse_named(str(data))[1] if (_is_spec(data) or _looks_like_path(data)) else data
        out.append(load(src, name=nm, split=split, schema=schema, strict=strict, **fields))
    return out


# ----------------------------------------------------------------------------- the run

@dataclass
class Run:
    """What :func:`evaluate` returns: the records of one evaluation and what they were computed on.

    ``records`` are the same dicts as the lines of ``results.jsonl`` (failed metrics included, with
    ``status: "failed"``); ``results`` the typed :class:`~harness.types.Result` of each computed one;
    ``meta`` is run.json; ``skipped`` and ``failed`` list (dataset, metric, reason).
    """

    results: list
    meta: dict
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    out: Path | None = None
    evaluated: dict = field(default_factory=dict)
    store: object | None = None
    written: list = field(default_factory=list)  # the report files written into ``out``

    @property
    def records(self) -> list[dict]:
        order = {(r.dataset, r.metric): i for i, r in enumerate(self.results)}
        failed = {(d, m) for d, m, _ in self.failed}  # this run's failures, not an older run's
        recs = [d for d in self.store.records.values()
                if (d["dataset"], d["metric"]) in order or (d["dataset"], d["metric"]) in failed]
        return sorted(recs, key=lambda d: order.get((d["dataset"], d["metric"]), len(order)))

    def to_pandas(self):
        """A tidy frame: one row per (dataset, metric) with dataset, role, metric, group, value, ci_low,
        ci_high, higher_is_better, status, error, version, signature_key, seconds."""
        import pandas as pd

        rows = []
        for d in self.records:
            ci = d.get("ci") or (None, None)
            rows.append({"dataset": d["dataset"], "role": d.get("role"), "metric": d["metric"],
                         "group": d["metric"].split("/", 1)[0], "value": d.get("value"), "ci_low": ci[0],
                         "ci_high": ci[1], "higher_is_better": d.get("higher_is_better"),
                         "status": d.get("status", "ok"), "error": d.get("error"),
                         "version": (d.get("signature") or {}).get("version"),
                         "signature_key": d.get("signature_key"), "seconds": d.get("seconds")})
        return pd.DataFrame(rows, columns=["dataset", "role", "metric", "group", "value", "ci_low", "ci_high",
                                           "higher_is_better", "status", "error", "version", "signature_key",
                                           "seconds"])

    @property
    def flags(self):
        """Every flagged row as a DataFrame: dataset, row (0-based, in the data as loaded), reasons, metrics,
        preview (withheld when quote_text is off)."""
        import pandas as pd

        from harness.run.flags import collect_flags

        _, recs = collect_flags(self.store, self.results, self.evaluated, log=lambda m: None,
                                quote_text=getattr(self.store, "quote_text", True))
        return pd.DataFrame(recs, columns=["dataset", "row", "reasons", "metrics", "preview"])

    def write(self, out=None) -> list[Path]:
        """Write results.jsonl, the row flags, run.json and the reports into ``out`` (default: the run's own
        folder); an in-memory run is written out whole."""
        from harness.report.write import write_report
        from harness.run.outdir import claim
        from harness.run.store import ResultStore

        if out is None and self.out is None:
            raise UserError("this run has no output folder", "give one: run.write('results/')")
        target = claim(out if out is not None else self.out)
        if self.out is None or target.resolve() != self.out.resolve():
            store = ResultStore(target, quote_text=getattr(self.store, "quote_text", True))
            for d in self.records:
                store.records[(d["dataset"], d["metric"])] = d
                doc = self.store.load_rows(d["signature_key"]) if d.get("status") != "failed" else None
                if doc is not None:
                    store.save_rows(d["signature_key"], doc["metric"], doc["rows"], doc["n"])
            store.flush()
            store.write_flags(self.results, self.evaluated, log=lambda m: None)
        self.written = write_report(target, self.results, self.meta)
        return self.written

    def __repr__(self) -> str:
        names = list(self.evaluated)
        return (f"<synthbench Run: {len(names)} dataset(s), {len(self.results)} result(s), {len(self.failed)} "
                f"failed, {len(self.skipped)} not computed{f', in {self.out}' if self.out else ''}>")


def resolve_sample_size(value, candidates, flag="--sample-size", reference=None):
    """N, 'min' (the smallest dataset's size: candidates and reference) or None; refused when a candidate
    or the reference is smaller than N (the two would then be scored at different sizes)."""
    if value in (None, ""):
        return None
    sized = list(candidates) + ([reference] if reference is not None else [])
    if value == "min":
        return min(len(c) for c in sized)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag} {value}: not a number", "give N (an integer) or 'min'") from None
    if n < 2:
        raise UserError(f"{flag} {n}: too small", "give at least 2")
    small = [c for c in sized if len(c) < n]
    if small:
        what = "the reference " if small[0] is reference else ""
        raise UserError(f"{flag} {n}: {what}{small[0].name} has only {len(small[0])} rows",
                        f"use {flag} {min(len(c) for c in sized)} or less (or 'min')")
    return n


def label_mismatch(candidates, reference) -> dict[str, str]:
    """{candidate name: why} for each labelled candidate that shares no label with a labelled reference.

    That is almost always a label-name mismatch (0/1 against neg/pos): every label metric would compare
    nothing with something, so those are not computed for it (with this reason); the rest are.
    """
    if reference is None or reference.labels is None:
        return {}
    ref = set(reference.labels)
    out = {}
    for c in candidates:
        if c.labels is not None and not set(c.labels) & ref:
            mine = ", ".join(sorted(set(c.labels))[:5])
            theirs = ", ".join(sorted(ref)[:5])
            out[c.name] = f"no label in common with the reference (candidate: {mine}; reference: {theirs})"
    return out


def describe(c, role) -> dict:
    """A dataset's entry in run.json."""
    return {"name": c.name, "role": role, "source": c.source, "kind": c.kind, "rows": len(c),
            "fingerprint": c.fingerprint, "sample": c.sample,
            "labels": sorted(set(c.labels)) if c.labels is not None else None}


def execute(candidates, reference, test, specs, out, *, seed: int = 0, sample_size=None, repeats: int = 1,
            embedder="default", batch_size: int = 64, progress: bool = False, extra_meta: dict | None = None,
            lm="default", quote_text: bool = True, judge: dict | None = None, engine: dict | None = None,
            log=None, embedder_override=None, resources: dict | None = None, force: bool = False,
            precision: str | None = None) -> Run:
    """Run ``specs`` on loaded corpora: the one path every face (API, CLI, suites) takes.

    ``out`` is an output folder (records reused on rerun, results and reports written) or None (in memory).
    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``; None: ``$SYNTHBENCH_PRECISION`` or ``auto``) is
    the compute precision of the models (:mod:`harness.resources.precision`).
    """
    from harness.resources import precision as P
    from harness.resources.embedder import resolve_embedder
    from harness.run.runner import RunConfig, run

    log = log or log_line
    if repeats < 1:
        raise UserError(f"--repeats {repeats}: must be at least 1", "give 1 (no repeats) or more")
    sample_size = resolve_sample_size(sample_size, candidates, reference=reference)
    for c in ([reference] if reference is not None else []) + list(candidates) + ([test] if test is not None else []):
        for note in c.notes:  # what the loader mended or left out, once per dataset
            log(f"warning: {note}")
    if any(c.empty_rows for c in candidates + ([reference] if reference is not None else [])):
        from harness import metrics as registry

        if "format/empty-rate" not in {s.name for s in specs}:  # empty rows are always counted
            specs = list(specs) + [registry.get("format/empty-rate")]
    mismatch = label_mismatch(candidates, reference)
    for name, why in mismatch.items():
        log(f"warning: {name}: {why}; its label metrics are not computed (map its labels to the reference's "
            "names, e.g. a suite's label_map, or pick the right label column)")
    needs_emb = any("embeddings" in s.info.needs or "reference_embeddings" in s.info.needs for s in specs)
    emb = None
    precision = P.normalise(precision if precision is not None else os.environ.get("SYNTHBENCH_PRECISION"))
    specs = _with_training_precision(specs, precision)
    if needs_emb and embedder_override is None:
        emb = resolve_embedder(embedder, batch_size=batch_size, precision=precision)
    needs_lm = any("lm" in s.info.needs for s in specs)
    lm_spec = None
    if needs_lm or (lm or "default") != "default":  # a named model is checked even when no metric uses it
        from harness.resources.causal_lm import resolve_lm

        lm_spec = resolve_lm(lm, precision=precision if needs_lm else "fp32")
    judge_spec = None
    if any("judge" in s.info.needs for s in specs):  # the server itself starts only for an uncached request
        from harness.resources.judge_client import resolve_judge

        judge_spec = resolve_judge(**(judge or {}))
    from harness.resources.engines import make_engine, resolve_engine

    engine_spec = resolve_engine(**(engine or {}))
    eng = make_engine(engine_spec, log=log) if (needs_emb or needs_lm) else None
    cfg = RunConfig(seed=seed, embedder=emb, sample_size=sample_size, repeats=repeats, progress=progress,
                    lm=lm_spec if needs_lm else None, quote_text=quote_text, judge=judge_spec, engine=eng,
                    resources=dict(resources or {}), label_mismatch=mismatch, precision=precision)
    corpora = ([(reference, "reference")] if reference is not None else []) + [(c, "candidate") for c in candidates]
    if out is not None:
        from harness.run.outdir import claim

        out = claim(out, force=force)
    try:
        with _bars(progress):
            outcome = run(corpora, reference, specs, out, cfg, log=log, test=test, embedder=embedder_override)
    finally:
        if eng is not None:
            eng.close()
    emb_identity = (emb.identity if emb else getattr(embedder_override, "identity", None) if needs_emb else None)
    reference = outcome.evaluated.get(reference.name, reference) if reference is not None else None
    candidates = [outcome.evaluated.get(c.name, c) for c in candidates]
    meta = {
        "schema_version": RUN_SCHEMA_VERSION,
        "harness": __version__, "seed": seed, "sample_size": sample_size, "repeats": repeats,
        "embedder": emb_identity,
        **({"engine": {**engine_spec.describe(), **(eng.stats if eng is not None else {})}}
           if engine_spec.name != "local" else {}),
        "lm": lm_spec.identity if (lm_spec and needs_lm) else None,
        "precision": _precision_record(precision, emb, lm_spec if needs_lm else None),
        **({"judge": judge_spec.identity} if judge_spec is not None else {}),
        "reference": describe(reference, "reference") if reference is not None else None,
        "candidates": [describe(c, "candidate") for c in candidates],
        "test": describe(test, "test") if test is not None else None,
        "metrics": [s.name for s in specs],
        "metric_versions": {s.name: s.info.version for s in specs},
        "metric_args": {s.name: dict(s.args) for s in specs if s.args},
        "size_dependent": [s.name for s in specs if s.info.size_dependent],
        "skipped": [list(x) for x in outcome.skipped],
        "failed": [list(x) for x in outcome.failed],
        **(extra_meta or {}),
    }
    if out is not None and meta.get("load"):
        from harness.analysis.comparison import relative_to_out

        meta["load"] = relative_to_out(meta["load"], out)  # the rows stay reloadable where the folder is cloned
    result = Run(results=outcome.results, meta=meta, skipped=outcome.skipped, failed=outcome.failed,
                 computed=outcome.computed, reused=outcome.reused, out=out, evaluated=outcome.evaluated,
                 store=outcome.store)
    if out is not None:
        result.write()
    return result


@contextlib.contextmanager
def _bars(progress: bool):
    """Without ``progress``, no progress bar of the metrics' own loops either (they read ``TQDM_DISABLE``
    when they start): set for the run and restored after, so a notebook's later bars are untouched."""
    if progress or "TQDM_DISABLE" in os.environ:
        yield
        return
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TQDM_DISABLE", None)


def _with_training_precision(specs, precision: str):
    """The utility metrics that fine-tune a model (recipe ``minilm-ft``) with the precision their training
    device runs at as an argument (so it is in their signature), when it is not fp32."""
    if precision == "fp32" or not any(s.args.get("recipe") == "minilm-ft" for s in specs):
        return specs
    from harness.resources import precision as P

    out = []
    for s in specs:
        if s.args.get("recipe") == "minilm-ft" and "precision" not in s.args:
            import torch

            device = s.args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
            choice = P.resolve(precision, device)
            if choice.precision != "fp32":
                s = replace(s, args={**s.args, "precision": choice.precision})
        out.append(s)
    return out


def _precision_record(requested: str, emb, lm_spec) -> dict:
    """run.json's ``precision``: what was asked for and what each model ran at."""
    from harness.resources import precision as P

    models = {}
    for name, spec in (("embedder", emb), ("lm", lm_spec)):
        if spec is not None and hasattr(spec, "precision"):
            choice = P.resolve(requested, spec.device) if requested != "fp32" else None
            models[name] = choice or P.Choice("fp32", spec.device, "asked for")
    return P.describe(requested, **models)


def evaluate(candidates, reference=None, test=None, metrics=None, sample_size=None, repeats: int = 1,
             seed: int = 0, out=None, *, holdout: float | None = None, embedder="default", batch_size: int = 64,
             lm: str = "default", judge: dict | None = None, engine: dict | None = None, quote_text: bool = True,
             schema=None, text_field: str | None = None, label_field: str | None = None,
             instruction_field: str = "instruction", input_field: str = "input", output_field: str = "output",
             split: str | None = None, progress: bool = False, log=None, force: bool = False,
             strict: bool = False, precision: str | None = None) -> Run:
    """Evaluate synthetic datasets against a real reference: every metric, one record per (dataset, metric).

    ``candidates``: one dataset (a path, ``NAME=PATH``, a list of strings or dicts, a pandas DataFrame, a
    ``datasets.Dataset``), a list of paths or frames, or a dict name -> dataset. ``reference`` and ``test``
    take the same forms (``test`` is a real held-out split for the metrics that train models or check
    contamination; ``holdout=0.25`` carves one out of the reference instead). ``metrics``: names, groups or
    globs (default: every metric that is not opt-in). ``sample_size`` (N or ``"min"``) evaluates every
    dataset on N seeded rows; ``repeats`` R averages size-dependent metrics over R samples.

    ``embedder`` is ``"default"`` (all-MiniLM-L6-v2, offline), a local folder, a hub name (with a network) or
    an object with ``embed(texts)`` and ``identity``; ``lm`` the causal LM of the fluency metrics;
    ``precision`` their compute precision: ``"auto"`` (default: bf16 where the CPU or GPU runs it fast,
    fp16 on a GPU without bf16, fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"``. With
    ``out=`` the run resumes exactly as ``synthbench eval --out`` does (finished records are reused) and
    writes results.jsonl, run.json, the row flags and the reports there; without it nothing is written.
    ``out`` must be new, empty or a folder synthbench wrote (``force=True`` writes beside other files and
    still never overwrites one of them).
    """
    from harness import metrics as registry

    _check_options(metrics=metrics, sample_size=sample_size, repeats=repeats, seed=seed, holdout=holdout,
                   batch_size=batch_size)
    if out is not None:  # before any work: a folder of other files, or an unwritable one, is refused now
        from harness.run.outdir import claim

        out = claim(out, force=force)

    fields = dict(text_field=text_field, label_field=label_field, instruction_field=instruction_field,
                  input_field=input_field, output_field=output_field)
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    specs = registry.select([m.strip() for m in metrics if m.strip()] if metrics is not None else None)
    schema_arg = schema if isinstance(schema, (str, os.PathLike)) else None
    schema = _schema(schema)
    ref = load(reference, name=_default_name(reference, "reference"), split=split, schema=schema, strict=strict,
               **fields) if reference is not None else None
    cands = load_candidates(candidates, fields, split=split, schema=_candidate_schema(schema, ref), strict=strict)
    if ref is not None and ref.name in {c.name for c in cands}:
        ref = replace(ref, name=ref.name + " (reference)")
    tst = load(test, name="test", split=split, strict=strict, **fields) if test is not None else None
    if holdout is not None:
        if tst is not None or ref is None:
            raise UserError("--holdout needs --reference and no --test", "hold out part of the reference, or give --test")
        if not 0 < holdout < 1:
            raise UserError(f"--holdout {holdout}: not between 0 and 1", "give a fraction such as 0.25")
        ref, tst = ref.holdout(holdout, seed)
    extra = {}
    cs = _candidate_schema(schema, ref)
    if cs is not None:
        extra["schema"] = cs.as_dict()
    record = _load_record(candidates, reference, test, holdout, fields, split, schema_arg, embedder, cands)
    if record is not None:
        extra["load"] = record
    emb_obj = embedder if hasattr(embedder, "embed") else None
    return execute(cands, ref, tst, specs, out, seed=seed, sample_size=sample_size, repeats=repeats,
                   embedder="default" if emb_obj is not None else embedder, batch_size=batch_size,
                   progress=progress, lm=lm, quote_text=quote_text, judge=judge, engine=engine, log=log,
                   extra_meta=extra, embedder_override=emb_obj, force=force, precision=precision)


def _check_options(*, metrics, sample_size, repeats, seed, holdout, batch_size) -> None:
    """The options of :func:`evaluate`, checked before any data is read: one line each."""
    if metrics is not None:
        names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
        if not [m for m in names if str(m).strip()]:
            raise UserError("--metrics is empty", "give metric names, groups or globs ('synthbench metrics' lists "
                            "them), or leave --metrics out for every default metric")
    if sample_size not in (None, "", "min"):
        try:
            ok = int(sample_size) >= 2 and not isinstance(sample_size, bool)
        except (TypeError, ValueError):
            raise UserError(f"--sample-size {sample_size}: not a number", "give N (an integer) or 'min'") from None
        if not ok:
            raise UserError(f"--sample-size {sample_size}: too small", "give at least 2")
    for flag, v in (("--repeats", repeats), ("--batch-size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{flag} {v}: must be a whole number of at least 1", f"give {flag} 1 or more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"--seed {seed!r}: not a whole number", "give an integer seed such as 0")
    if holdout is not None and not (isinstance(holdout, (int, float)) and 0 < holdout < 1):
        raise UserError(f"--holdout {holdout}: not between 0 and 1", "give a fraction such as 0.25")


def _default_name(data, fallback: str) -> str | None:
    if isinstance(data, (str, os.PathLike)):
        return None  # a path names itself (its stem), as in the CLI
    return getattr(data, "name", None) if type(data).__name__ == "Corpus" else fallback


def _candidate_schema(schema, reference):
    if schema is None:
        return None
    from harness.data.schema import resolve_for_candidates

    return resolve_for_candidates(schema, reference)


def _load_record(candidates, reference, test, holdout, fields, split, schema_path, embedder,
                 cands) -> dict | None:
    """How ``compare`` reloads the rows (run.json's ``load``): only when every input is a file or a builtin."""
    from harness.analysis.comparison import load_record
    from harness.data.load import parse_named

    items = _candidates(candidates)
    if not all(_is_spec(d) for _, d in items):
        return None
    if any(x is not None and not _is_spec(x) for x in (reference, test)):
        return None

    return load_record(candidates=[[c.name, parse_named(str(d))[1]] for c, (_, d) in zip(cands, items)],
                       reference=str(reference) if reference is not None else None,
                       test=str(test) if test is not None else None, holdout=holdout,
                       fields=_fieldmap(**fields), split=split,
                       schema=str(schema_path) if schema_path is not None else None,
                       embedder=embedder if isinstance(embedder, str) else "default")


def run_suite(suite, out=None, *, progress: bool = False, log=None, force: bool = False,
              precision: str | None = None) -> Run:
    """Run a declared benchmark: ``suite`` is a path to its YAML (or a loaded Suite); ``out`` defaults to
    ``reports/<suite name>``. Finished records in ``out`` are reused. ``precision`` overrides the suite's
    ``precision:`` (default ``auto``)."""
    from harness.analysis.comparison import suite_load_record
    from harness.data.schema import resolve_for_candidates
    from harness.data.suite import load_dataset, load_suite, suite_specs

    suite = load_suite(suite) if isinstance(suite, (str, os.PathLike)) else suite
    specs = suite_specs(suite)
    from harness.run.outdir import claim

    out = claim(Path("reports") / suite.name if out is None else out, force=force)  # before any work
    reference = load_dataset(suite.reference, suite.normalize, schema=suite.schema, strict=suite.strict)
    test = load_dataset(suite.test, suite.normalize, strict=suite.strict) if suite.test else None
    cand_schema = resolve_for_candidates(suite.schema, reference)
    candidates = [load_dataset(c, suite.normalize, schema=cand_schema, strict=suite.strict) for c in suite.candidates]
    if suite.holdout:
        reference, test = reference.holdout(suite.holdout, suite.seed)
    (log or log_line)(
        f"suite {suite.name}: {len(candidates)} candidate(s) against {reference.name}, {len(specs)} metric(s) -> {out}")
    extra = {"suite": {"name": suite.name, "description": suite.description, "file": str(suite.path),
                       "task": suite.task},
             "provenance": {c.name: c.provenance for c in suite.candidates}}
    extra["provenance"][suite.reference.name] = suite.reference.provenance
    if cand_schema is not None:
        extra["schema"] = cand_schema.as_dict()
    extra["load"] = suite_load_record(suite.path)  # how 'synthbench compare' reloads the rows
    return execute(candidates, reference, test, specs, out, seed=suite.seed, sample_size=suite.sample_size,
                   repeats=suite.repeats, embedder=suite.embedder, progress=progress, extra_meta=extra,
                   lm=suite.lm, quote_text=suite.quote_text, judge=suite.judge, engine=suite.engine, log=log,
                   force=force, precision=precision if precision is not None else suite.precision)


def compare(a, b, metrics=None, resamples: int | None = None, seed: int = 0, out=None, *, embedder=None,
            progress: bool = False, log=None) -> dict:
    """Compare two candidates of stored runs, metric by metric (``synthbench compare``).

    ``a`` and ``b`` name a candidate of a run folder: ``"DIR:NAME"`` (or ``"DIR"`` when it has one
    candidate), or ``(run, name)`` with a :class:`Run` written to a folder. Returns the comparison
    (``metrics``: per metric A, B, B − A with a 95% interval, p, BH q, effect size, verdict); with ``out=``
    also writes its Markdown and JSON.
    """
    from harness.analysis.comparison import DEFAULT_RESAMPLES
    from harness.analysis.comparison import compare as _compare
    from harness.report.comparison_report import render_markdown, write_outputs

    def spec(x):
        if isinstance(x, tuple):
            r, name = x
            if getattr(r, "out", None) is None:
                raise UserError("compare: this run is in memory", "evaluate it with out=DIR first")
            return f"{r.out}:{name}"
        return str(x)

    if isinstance(metrics, str):
        metrics = metrics.split(",")
    res = _compare(spec(a), spec(b), metrics=list(metrics) if metrics else None,
                   resamples=resamples or DEFAULT_RESAMPLES, seed=seed, progress=progress, embedder_name=embedder,
                   log=log or log_line)
    if out is not None:
        write_outputs(res, render_markdown(res), Path(out))
    return res


def card(run, dataset: str, out=None, *, force: bool = False) -> str:
    """A Hugging Face dataset card (``README.md``: YAML header and Markdown) for candidate ``dataset`` of a
    finished run (``synthbench card``): ``run`` is its result folder or a :class:`Run` written to one.
    Nothing is recomputed (:func:`harness.report.dataset_card.render_card`). With ``out=`` the card is also
    written there atomically; an existing file is replaced only when synthbench wrote it, or with
    ``force=True``. Returns the card's text."""
    from harness.report.dataset_card import render_card, written_by_synthbench
    from harness.run.flags import load_rows
    from harness.run.outdir import check_path, write_text
    from harness.run.store import ResultStore, read_run_meta

    shown = str(run.out) if isinstance(run, Run) and run.out is not None else run
    folder = check_path(shown, "RUN_DIR")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder", "give a result folder written by 'synthbench run' or 'eval --out'")
    meta = read_run_meta(folder)
    store = ResultStore(folder)
    for note in store.notes:
        log_line(f"warning: {note}")
    records = list(store.records.values())
    rows = {}
    for d in records:
        if d.get("dataset") == dataset and (d.get("details") or {}).get("row_flags") is not None:
            doc = load_rows(folder, d["signature_key"])
            if doc is not None:
                rows[d["signature_key"]] = doc
    text = render_card(records, meta, dataset, rows, run_dir=str(shown))
    if out is not None:
        path = check_path(out, "--out")
        if path.is_dir():
            raise UserError(f"--out {path}: is a folder", f"give a file, e.g. --out {path / 'README.md'}")
        if path.exists() and not force:
            try:
                mine = written_by_synthbench(path.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                mine = False
            if not mine:
                raise UserError(f"--out {path}: exists and was not written by synthbench (it is kept)",
                                "choose another file, or pass --force to replace it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {path}: cannot create its folder ({e.strerror})", "choose another --out") from None
        write_text(path, text)
    return text
