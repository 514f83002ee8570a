"""Research comparisons of two candidates (``synthbench compare A B``): for every metric both runs computed
comparably, A's value, B's value, the difference B - A with a 95% interval, a p-value, an effect size, the
Benjamini-Hochberg adjusted p-value (q) over all metrics compared, and a verdict at q < 0.05.

Nothing is taken on trust from the result files: the rows each run evaluated are reloaded the way its
``run.json`` describes them (files, column mapping, suite filters, holdout, seeded sample) and checked
against the recorded fingerprints; every metric is recomputed on them through the registry and
:class:`harness.metrics.base.Context` (embeddings come from the SQLite-cached embedder, read once) and
the recomputed value is checked against the stored one (a mismatch is reported as a warning).

Resampling schemes, chosen per metric (the ``scheme`` column):

``recompute`` (set-level statistics: distinct-n, entropy, compression, duplicate rates, Vendi, cluster
    entropy, pairwise distance, Fréchet, MMD, PRDC, DCR, label and vocabulary divergences, ...).
    *p-value*: a permutation test. A's and B's rows are pooled and reassigned at random to groups of
    A's and B's sizes, the metric is recomputed on both groups (the reference and test held fixed: the
    test is conditional on them, as both candidates share them) and p = (1 + #{|T*| >= |T|}) / (1 + N).
    Rows are never duplicated, so duplicate rates, distinct-n, Vendi and nearest-neighbour metrics are
    not biased the way a bootstrap with replacement biases them (a bootstrap resample repeats about
    37% of the rows). H0 is that A's and B's rows are exchangeable (the same distribution), which
    implies equal metric values. *Interval*: half-sampling (the delete-d jackknife with d = n/2, Shao &
    Wu 1989): each replicate draws half of A's rows, half of B's and half of the shared reference and
    test rows without replacement, and the *same* reference/test half serves A and B (paired). For a
    mean, the spread of a half-sample around the full sample equals the full sample's sampling error
    (finite-population factor (n - m)/n = 1/2 cancels the 1/m), so no rescaling is needed; it is also
    consistent for non-smooth statistics. Size-dependent metrics are lower at half size: the interval
    is centred on the observed difference (difference ± 1.96 SD of the replicate differences), which
    removes that shift; their spread is rescaled by the ratio of full-size to half-size levels (see
    :func:`half_sample_scale`: measured SD ratios 0.91-1.31 of the truth, 0.57 unrescaled for
    vocabulary size). Metrics that are not size-dependent are not rescaled. *Effect*: the difference in units
    of the pooled resampling SD, sqrt((SD_A^2 + SD_B^2) / 2) of each side's half-sample values (a
    z-like standardisation that grows with n, not a Cohen-type effect size).
``rows`` (means over rows of a per-row value that depends on the row alone and on the fixed
    reference/test: mean length, copy and contamination rates, instruction-data defect rates). The
    per-row values come from the recomputed Score (its row flags, or the row lengths) and their mean
    is checked to equal the value. *p*: a permutation test of the per-row values (exactly the same
    as recomputing the metric on relabelled rows, and cheap: 10,000 relabellings). *Interval*:
    Newcombe's hybrid score interval for 0/1 rates, Welch's t-interval otherwise (conditional on the
    reference/test: "how many rows copy *this* data"). *Effect*: Hedges' g (Cliff's delta in the JSON).
``test-rows`` (utility: train on synthetic, test on real). Both classifiers predict the same real test
    rows, so the pairing is over test rows: the per-test-row correctness (averaged over the training
    seeds) of A's and B's models comes from the prediction cache (:mod:`harness.resources.trainers`), the
    interval is a paired bootstrap over test rows (10,000 resamples; a mean over test rows has no
    duplicate bias) and the p-value a paired sign-flip randomisation test (A's and B's predictions
    swapped per test row); for accuracy the exact McNemar test on the first seed's predictions is
    reported as a cross-check. The uncertainty is over test rows given the two training sets.
    ``real-equivalent`` (a learning-curve inversion) has no per-row form and is not compared.
    Utility metrics are left out of the default set: name them with ``--metrics utility/...``.

Resampling on sufficient statistics (issue #26). The ``recompute`` scheme's p-value and interval need
each metric on 2 x N permutation sides and 2 x N half-sample sides. A metric that declares a
``resampler`` (beside its function, in its ``@metric``; see :mod:`harness.stats.sufficient`) has per-row
or per-cluster statistics computed once on the pooled rows (a row x n-gram incidence, per-row count
vectors, unit vectors and d x d Gram contributions, duplicate clusters and verified near-duplicate pairs,
the ROUGE-L of every pooled pair, nearest-neighbour lists, label codes), from which its value on any
resample is computed exactly (to floating-point tolerance; checked against the metric on A's and B's
rows before use, and in ``tests/unit/analysis/test_resamplers.py`` on real data). Four resamplers are
declared approximate and say why in the output (``resampled: approximate``): ``distance/mmd`` holds the
kernel bandwidth fixed, ``semantic/cluster-entropy`` the pooled k-means topics,
``semantic/ref-cluster-coverage`` the full reference's clusters in half-samples and
``faith/reference-agreement`` the full reference's classifier in half-samples; their p-value comes
from the approximate statistic's own observed difference (a valid permutation test). Metrics without a
resampler are recomputed from the rows of every resample, as before, and are counted and named. A
permutation p-value is never below 1 / (1 + N): with N = 200 and some 40 metrics, one metric alone
could never pass Benjamini-Hochberg at q < 0.05. So a metric whose resampler is declared cheap and whose
p-value on the shared permutations is below ``EXTEND_BELOW`` gets ``EXTENDED_PERMUTATIONS`` in all (a
two-stage Monte Carlo test: the reported p-value is the first stage's whenever it stops there, so
P(p <= t) <= t still holds). Set-level metrics are resampled in threads (:func:`resample_workers`), each
on one BLAS thread; the numbers do not depend on their number. Both
paths evaluate the same draws (:func:`draw_resamples`), so a seed gives the same p-values either way
(``compare(..., fast=False)``, ``synthbench compare --recompute``).

Which metrics run by default: the cheap ones; MAUVE, classifier two-sample tests, per-class MAUVE,
utility and fluency only when named with ``--metrics``, and in the default set any set-level metric
without sufficient statistics whose recomputation (4 x N evaluations at the default N) would take more
than ``SLOW_RECOMPUTE_S`` seconds is left out (and listed).
"""

from __future__ import annotations

import inspect
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.errors import UserError
from harness.stats import (
    Z95,
    bootstrap_weights,
    percentile_interval,
    permutation_pvalue,
    resample_indices,
    welch_diff_ci,
)

DEFAULT_RESAMPLES = 200
ROW_PERMUTATIONS = 10_000
TEST_ROW_RESAMPLES = 10_000
#: a set-level metric without sufficient statistics is recomputed from the rows of 4 x N resample sides: in
#: the default set it is left out (and listed) when that would take longer than this at the default N (the
#: same rule for --recompute, so that both paths compare the same metrics; a cost per evaluation alone, as
#: before, let a 1.5 s metric take 20 minutes on a CPU just fast enough to pass it)
SLOW_RECOMPUTE_S = 120.0
# A permutation p-value is at least 1 / (1 + N): with N = 200 and 40 metrics, one metric alone can never
# reach q < 0.05 under Benjamini-Hochberg. A metric whose resampler is declared cheap (``cheap=True``: a
# few vector operations per value) and whose p-value on the shared permutations is below EXTEND_BELOW
# gets EXTENDED_PERMUTATIONS in all: a two-stage Monte Carlo test, still valid (P(p <= t) <= t for every
# t, since the reported p is the first stage's whenever it stops there). The rule reads declarations
# and p-values only, never timings, so a seed gives the same p-values on every machine.
EXTENDED_PERMUTATIONS = 2000
EXTEND_BELOW = 0.2
ALPHA = 0.05

# What each metric is for compare (heavy, size-dependent, value-neutral arguments, its per-row form) is
# read off its declaration (harness/metrics/base.py): ``cost``, ``size_dependent``, ``neutral_args`` and
# ``resample``.

SCHEMES = {
    "recompute": "set-level statistic, recomputed through the registry: permutation test over the pooled rows "
                 "of A and B (reference/test fixed) for p; half-samples without replacement (A, B and the shared "
                 "reference/test halved, the same reference/test half for A and B) for the interval, centred on "
                 "the observed difference (size-dependent metrics: SD rescaled by the full/half-size level "
                 "ratio); effect = difference / pooled half-sample SD. No row is ever duplicated, so "
                 "duplicate, distinct-n, Vendi and nearest-neighbour metrics stay unbiased",
    "rows": "mean of a per-row value that depends only on the row (and the fixed reference/test): permutation "
            "test of the per-row values for p; Newcombe (0/1 rates) or Welch interval; effect = Hedges' g",
    "test-rows": "utility: both models predict the same real test rows; paired bootstrap over test rows for the "
                 "interval, paired sign-flip randomisation test for p (McNemar exact as a cross-check for "
                 "accuracy); effect = Hedges' g of per-row correctness (macro-F1: difference / pooled bootstrap SD)",
}


# ----------------------------------------------------------------------------- what run.json records

def _abs_spec(spec: str | None) -> str | None:
    """A dataset argument made independent of the working directory (builtin:/hf: kept as they are)."""
    if spec is None or spec.startswith(("builtin:", "hf:")):
        return spec
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def load_record(candidates, reference, test, holdout, fields, split, schema, embedder) -> dict:
    """What an evaluation of files must write to run.json so that ``compare`` can reload the same rows:
    ``candidates`` is [[name, path], ...]; paths are made absolute."""
    return {"command": "eval", "cwd": os.getcwd(), "fields": asdict(fields), "split": split,
            "reference": _abs_spec(reference), "test": _abs_spec(test), "holdout": holdout,
            "candidates": [[n, _abs_spec(p)] for n, p in candidates],
            "schema": _abs_spec(schema), "embedder": embedder}


def suite_load_record(suite_path) -> dict:
    """What a suite run must write to run.json: the suite file and the data root its paths used."""
    from harness.data.suite import data_root

    return {"command": "run", "cwd": os.getcwd(), "suite": str(Path(suite_path).resolve()),
            "data_root": str(data_root().resolve())}


def relative_to_out(load: dict, out) -> dict:
    """``load`` with ``from_out``: each recorded absolute path also relative to the results folder, so that
    a folder copied or cloned together with what surrounds it (a committed report beside its suite files
    and the data checkout) reloads its rows on another machine, where the absolute paths do not exist."""
    base = Path(out).resolve()

    def rel(p):
        if not isinstance(p, str) or p.startswith(("builtin:", "hf:")) or not Path(p).is_absolute():
            return None
        try:
            return os.path.relpath(p, base)
        except ValueError:  # another drive
            return None

    out_rel = {k: rel(load.get(k)) for k in ("suite", "data_root", "reference", "test", "schema") if load.get(k)}
    if load.get("candidates") is not None:
        out_rel["candidates"] = [[n, rel(p)] for n, p in load["candidates"]]
    return {**load, "from_out": out_rel}


def _locate(recorded: str | None, *others: str | None) -> str | None:
    """The first of the recorded path and ``others`` (the same file found another way) that exists, else the
    recorded path, so that the error names what the run read."""
    for p in (recorded, *others):
        if p and (p.startswith(("builtin:", "hf:")) or Path(p).expanduser().exists()):
            return p
    return recorded


def _from_out(side: Side, rel: str | None) -> str | None:
    return str(side.folder / rel) if rel else None


# ----------------------------------------------------------------------------- the two sides

@dataclass
class Side:
    """One candidate of one results folder."""

    label: str           # "A" or "B"
    spec: str            # as given on the command line
    folder: Path
    name: str
    meta: dict
    info: dict           # its run.json entry (name, role, source, rows, fingerprint, sample, ...)
    records: dict        # metric -> Result

    @property
    def rows(self) -> int:
        return int(self.info.get("rows") or 0)

    @property
    def seed(self) -> int:
        return int(self.meta.get("seed") or 0)

    def describe(self) -> dict:
        return {"spec": self.spec, "folder": str(self.folder), "name": self.name, "role": self.info.get("role"),
                "rows": self.rows, "source": self.info.get("source"), "fingerprint": self.info.get("fingerprint"),
                "sample": self.info.get("sample"), "seed": self.seed, "suite": (self.meta.get("suite") or {}).get("name")}


def parse_target(spec: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR:NAME`` (the last colon splits, so a folder name may hold colons)."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return p, None
    if ":" in spec:
        folder, _, name = spec.rpartition(":")
        if folder and Path(folder).expanduser().is_dir():
            return Path(folder).expanduser(), name
    raise UserError(f"{spec}: not a results folder",
                    "give DIR or DIR:NAME, where DIR was written by 'synthbench eval --out DIR' or 'synthbench run'")


def open_side(spec: str, label: str) -> Side:
    from harness.run.store import load_results, read_run_meta

    folder, name = parse_target(spec)
    meta = read_run_meta(folder)
    entries = {c["name"]: c for c in meta.get("candidates") or []}
    ref = meta.get("reference")
    names = list(entries) + ([ref["name"]] if ref else [])
    if name is None:
        if len(entries) != 1:
            raise UserError(f"{folder} holds {len(entries)} candidates: name one as {folder}:NAME",
                            f"available names: {', '.join(names)}")
        name = next(iter(entries))
    if name in entries:
        info = entries[name]
    elif ref and name == ref["name"]:
        info = ref
    else:
        raise UserError(f"{folder}: no candidate named '{name}'", f"available names: {', '.join(names)}")
    records = {r.metric: r for r in load_results(folder) if r.dataset == name}
    return Side(label, spec, folder, name, meta, info, records)


# ----------------------------------------------------------------------------- reloading the rows

@contextmanager
def _env(key: str, value: str | None):
    old = os.environ.get(key)
    if value is not None:
        os.environ[key] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _in_dir(spec: str | None, cwd: str | None) -> str | None:
    """A recorded relative path, read from the folder the run was started in."""
    if spec is None or spec.startswith(("builtin:", "hf:")) or not cwd or Path(spec).is_absolute():
        return spec
    return str(Path(cwd) / spec)


def _loaded_inputs(side: Side, want_reference: bool, want_test: bool):
    """(candidate, reference, test) as the run loaded them: before the holdout split and the sample."""
    meta = side.meta
    load = meta.get("load") or {}
    command = load.get("command") or ("run" if meta.get("suite") else "eval")
    role = side.info.get("role", "candidate")
    if command == "run":
        from harness.data.schema import resolve_for_candidates
        from harness.data.suite import load_dataset, load_suite

        cwd = load.get("cwd")
        rel = load.get("from_out") or {}
        declared = (meta.get("suite") or {}).get("file")
        # on another machine the recorded absolute paths are missing: the suite relative to the results
        # folder, or as it was given (from the run's folder, then from here); the data likewise, or where
        # this session's SYNTHBENCH_DATA points (the fingerprints below catch other data)
        file = _locate(load.get("suite") or _in_dir(declared, cwd), _from_out(side, rel.get("suite")),
                       _in_dir(declared, cwd), declared)
        if not file:
            raise UserError(f"{side.folder}/run.json: no suite file recorded", "rerun 'synthbench run' into this folder")
        from harness.data.suite import data_root

        root = _locate(load.get("data_root"), _from_out(side, rel.get("data_root")), str(data_root()))
        with _env("SYNTHBENCH_DATA", root):
            suite = load_suite(file)
            reference = load_dataset(suite.reference, suite.normalize, schema=suite.schema)
            test = load_dataset(suite.test, suite.normalize) if (suite.test and want_test) else None
            cand = None
            if role != "reference":
                specs = {c.name: c for c in suite.candidates}
                if side.name not in specs:
                    raise UserError(f"{file}: no candidate named '{side.name}' any more",
                                    "restore the suite as it was when the run was made")
                cand_schema = resolve_for_candidates(suite.schema, reference)
                cand = load_dataset(specs[side.name], suite.normalize, schema=cand_schema)
        holdout = suite.holdout
        seed = suite.seed
    else:
        from harness.data.load import FieldMap, load_corpus
        from harness.data.schema import load_schema_file, resolve_for_candidates

        cwd = load.get("cwd")
        fields = FieldMap(**load["fields"]) if load.get("fields") else FieldMap()
        split = load.get("split")
        rel = load.get("from_out") or {}
        rel_cands = dict(rel.get("candidates") or [])
        if load.get("candidates") is not None:
            cand_specs = {n: _locate(_in_dir(p, cwd), _from_out(side, rel_cands.get(n))) for n, p in load["candidates"]}
        else:  # run.json from before the load record: the recorded sources, default columns
            cand_specs = {c["name"]: c["source"] for c in meta.get("candidates") or []}
        ref_spec = (_locate(_in_dir(load.get("reference"), cwd), _from_out(side, rel.get("reference"))) if load
                    else (meta.get("reference") or {}).get("source"))
        test_spec = (_locate(_in_dir(load.get("test"), cwd), _from_out(side, rel.get("test"))) if load
                     else (meta.get("test") or {}).get("source"))
        schema = (load_schema_file(_locate(_in_dir(load["schema"], cwd), _from_out(side, rel.get("schema"))))
                  if load.get("schema") else None)
        holdout = load.get("holdout")
        seed = side.seed
        need_ref = ref_spec is not None and (want_reference or role == "reference" or schema is not None
                                             or (holdout and want_test))
        reference = load_corpus(ref_spec, fields, split=split, schema=schema) if need_ref else None
        if reference is not None and reference.name in cand_specs:
            reference = replace(reference, name=reference.name + " (reference)")
        cand = None
        if role != "reference":
            if side.name not in cand_specs:
                raise UserError(f"{side.folder}/run.json: no source recorded for '{side.name}'",
                                "rerun 'synthbench eval' into this folder")
            cand = load_corpus(cand_specs[side.name], fields, name=side.name, split=split,
                               schema=resolve_for_candidates(schema, reference))
        test = load_corpus(test_spec, fields, name="test", split=split) if (test_spec and want_test and not holdout) else None
    if holdout and reference is not None:
        reference, test = reference.holdout(holdout, seed)
    return cand, reference, test


def _check_fp(side: Side, what: str, corpus, entry: dict | None):
    if entry is None or corpus is None:
        return
    if corpus.fingerprint != entry.get("fingerprint"):
        raise UserError(f"{side.folder}: the {what} reloaded from {entry.get('source')} is not the data the run "
                        f"evaluated (fingerprint {corpus.fingerprint[:12]}, recorded {str(entry.get('fingerprint'))[:12]})",
                        "restore the data as it was (same file, columns and suite), or rerun the evaluation into "
                        "this folder; run.json written before 'compare' existed may lack the column mapping: rerun it")


def evaluated_rows(side: Side, want_reference: bool, want_test: bool):
    """(candidate, reference, test) exactly as the run's metrics saw them, fingerprints checked."""
    from harness.run.runner import RunConfig, primary

    cfg = RunConfig(seed=side.seed, sample_size=side.meta.get("sample_size"))
    try:
        cand, reference, test = _loaded_inputs(side, want_reference, want_test)
    except UserError as e:
        raise UserError(f"{side.folder}: cannot reload the data of '{side.name}': {e.what}",
                        e.fix or "run compare where the evaluation ran, with the data in place") from None
    reference = primary(reference, cfg) if reference is not None else None
    if side.info.get("role") == "reference":
        cand = reference
    else:
        cand = primary(cand, cfg)
    _check_fp(side, f"candidate '{side.name}'", cand, side.info)
    _check_fp(side, "reference", reference, side.meta.get("reference"))
    _check_fp(side, "test split", test, side.meta.get("test"))
    return cand, (reference if want_reference else None), (test if want_test else None)


# ----------------------------------------------------------------------------- comparability

def _uses(info) -> dict:
    n = info.needs
    return {"emb": "embeddings" in n or "reference_embeddings" in n,
            "ref": "reference" in n or "reference_embeddings" in n, "test": "test" in n, "lm": "lm" in n}


#: what the runner adds to a signature's arguments besides the metric function's own
RUNNER_ARGS = {"tokenizer", "repeats", "lm"}


def _fn_args(spec, record) -> dict:
    """The metric function's arguments as the run used them (suite metric_args included)."""
    params = inspect.signature(spec.fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):  # fn(ctx, **args)
        return {k: v for k, v in record.signature.args.items() if k not in RUNNER_ARGS}
    return {k: v for k, v in record.signature.args.items() if k in params and k != "ctx"}


def _utility_kind(name: str) -> str | None:
    if not name.startswith("utility/"):
        return None
    return name.rsplit("/", 1)[-1]


def _skip_reason(side: Side, metric: str) -> str | None:
    for d, m, why in side.meta.get("skipped") or []:
        if d == side.name and m == metric:
            return why
    return None


def incompatibility(metric: str, a: Side, b: Side) -> str | None:
    """Why A's and B's values of ``metric`` cannot be compared (None: they can)."""
    from harness import metrics as registry

    if not registry.is_metric(metric):
        return "not a registered metric (renamed or removed since the run)"
    ra, rb = a.records.get(metric), b.records.get(metric)
    for side, r in ((a, ra), (b, rb)):
        if r is None:
            why = _skip_reason(side, metric)
            return f"{side.label} ({side.name}) has no result" + (f" ({why})" if why else "")
    spec = registry.get(metric)
    info = spec.info
    use = _uses(info)
    if use["lm"]:
        return "needs the causal LM (fluency): compare does not recompute it; compare the stored intervals"
    if info.resample == "none":
        return "no per-row form to resample (declared resample='none'): compare the stored intervals"
    aa, ab = _fn_args(spec, ra), _fn_args(spec, rb)
    if aa != ab:
        diff = sorted(k for k in set(aa) | set(ab) if aa.get(k) != ab.get(k))
        show = lambda d: ", ".join(f"{k}={d.get(k)}" for k in diff)  # noqa: E731
        return f"metric arguments differ (A: {show(aa)}; B: {show(ab)}): rerun one with the other's metric_args"
    ta, tb = ra.signature.args.get("tokenizer"), rb.signature.args.get("tokenizer")
    if ta != tb:
        return f"tokenizers differ (A: {ta}; B: {tb}): rerun both with this synthbench"
    if use["emb"] and ra.signature.embedder != rb.signature.embedder:
        return (f"embedders differ (A: {ra.signature.embedder}; B: {rb.signature.embedder}): "
                "rerun both with the same --embedder")
    if use["ref"] and ra.signature.data.get("reference") != rb.signature.data.get("reference"):
        return ("different reference data (fingerprints "
                f"{str(ra.signature.data.get('reference'))[:10]} and {str(rb.signature.data.get('reference'))[:10]}): "
                "evaluate both against the same reference (same file, holdout, --sample-size and seed)")
    if use["test"] and ra.signature.data.get("test") != rb.signature.data.get("test"):
        return ("different test splits (fingerprints "
                f"{str(ra.signature.data.get('test'))[:10]} and {str(rb.signature.data.get('test'))[:10]}): "
                "evaluate both with the same --test (or holdout and seed)")
    if info.size_dependent and a.rows != b.rows:
        return (f"size-dependent, and evaluated on {a.rows} rows (A) and {b.rows} rows (B): "
                f"rerun both with the same --sample-size (e.g. {min(a.rows, b.rows)})")
    if info.seeded and ra.signature.seed != rb.signature.seed:
        return (f"seeded metric computed with run seeds {ra.signature.seed} (A) and {rb.signature.seed} (B): "
                "rerun both with the same --seed")
    return None


# ----------------------------------------------------------------------------- corpora and embeddings

def take(corpus, idx, name: str | None = None):
    """The rows ``idx`` of ``corpus`` (in that order) as a new Corpus."""
    from harness.types import Corpus

    pick = lambda seq: tuple(seq[int(i)] for i in idx)  # noqa: E731
    return Corpus(name=name or corpus.name, source=corpus.source, kind=corpus.kind, texts=pick(corpus.texts),
                  labels=pick(corpus.labels) if corpus.labels is not None else None,
                  fields={k: pick(v) for k, v in corpus.fields.items()}, n_source_rows=len(idx))


def pooled(a, b):
    """A's rows then B's rows, with the labels and fields both have."""
    from harness.types import Corpus

    labels = a.labels + b.labels if (a.labels is not None and b.labels is not None) else None
    keys = sorted(set(a.fields) & set(b.fields))
    return Corpus(name="pooled", source="pooled", kind=a.kind, texts=a.texts + b.texts, labels=labels,
                  fields={k: a.fields[k] + b.fields[k] for k in keys}, n_source_rows=len(a) + len(b))


class VectorTable:
    """Every vector a comparison needs, read once from the cached embedder and then looked up by text
    (resampled corpora are cut from the same rows); unknown texts go to the embedder."""

    def __init__(self, embedder, texts):
        import numpy as np

        self.base = embedder
        self.identity = getattr(embedder, "identity", None) or getattr(getattr(embedder, "spec", None), "identity", None)
        import threading

        uniq = list(dict.fromkeys(texts))
        self.lock = threading.Lock()  # metrics run in threads: texts not yet here are embedded one call at a time
        self.index = {t: i for i, t in enumerate(uniq)}
        self.matrix = np.asarray(embedder.embed(uniq, desc="embeddings (cache)")) if uniq else np.zeros((0, 1))

    def embed(self, texts, desc: str = ""):
        import numpy as np

        texts = list(texts)
        if any(t not in self.index for t in texts):
            with self.lock:
                missing = list(dict.fromkeys(t for t in texts if t not in self.index))
                if missing:
                    extra = np.asarray(self.base.embed(missing, desc=desc or "embedding"))
                    matrix = np.vstack([self.matrix, extra]) if len(self.matrix) else extra
                    self.matrix = matrix  # before the index names its rows: a reader never sees a row missing
                    for t in missing:
                        self.index[t] = len(self.index)
        matrix = self.matrix
        return matrix[[self.index[t] for t in texts]]


def build_embedder(a: Side, b: Side, override: str | None, progress: bool):
    """The run's embedder, rebuilt from run.json (or ``override``), checked against the recorded identity."""
    from harness.resources.embedder import Embedder, resolve_embedder

    identity = a.meta.get("embedder") or b.meta.get("embedder")
    # the runs' precision is in the identity (``model@bf16``, ``model@fp16``; none for fp32): the
    # comparison embeds at the same precision, so its vectors are the runs' (and their cache entries)
    base, _, precision = (identity or "").partition("@")
    name = override or (a.meta.get("load") or {}).get("embedder") or (b.meta.get("load") or {}).get("embedder")
    if name is None:
        name = "default" if base == "sentence-transformers/all-MiniLM-L6-v2" else base
    spec = resolve_embedder(name, precision=precision or "fp32")
    if identity is not None and spec.identity != identity:
        raise UserError(f"the runs used the embedder {identity}, but '{name}' resolves to {spec.identity}",
                        "pass --embedder with the model (folder) the runs used")
    return Embedder(spec, progress=progress)


# ----------------------------------------------------------------------------- per-row values

def _flagged_indicator(score, n: int):
    import numpy as np

    x = np.zeros(n)
    for rows in (score.rows or {}).values():
        x[np.asarray(rows, dtype=int)] = 1.0
    return x


def row_values(metric: str, ctx, score):
    """Per-row values whose mean is the metric's value (None if this metric has no exact per-row form
    or the decomposition does not reproduce the value)."""
    import numpy as np

    from harness import metrics as registry

    resample = registry.info(metric).resample if registry.is_metric(metric) else "set"
    if resample == "row-lengths":
        x = np.array([len(t) for t in ctx.tokens], dtype=np.float64)
    elif resample == "row-flags":
        x = _flagged_indicator(score, len(ctx.texts))
    else:
        return None
    if len(x) == 0 or not math.isclose(float(x.mean()), float(score.value), rel_tol=1e-9, abs_tol=1e-12):
        return None
    return x


def row_schemes(pairs, n_perm: int, seed: int) -> list[dict]:
    """Permutation test, interval and effect sizes for a mean of per-row values, for each ``(xa, xb)`` of
    ``pairs``. Every metric's test draws the same relabellings (stream ``_rng(seed, 2)``), so metrics of
    the same sizes share one draw: the same p-values as one draw per metric, for a third of the time
    with the default set's three row metrics."""
    import numpy as np

    from harness.stats import cliffs_delta, hedges_g, newcombe_diff_ci

    pairs = [(np.asarray(xa, dtype=np.float64), np.asarray(xb, dtype=np.float64)) for xa, xb in pairs]
    nulls: list[list] = [[] for _ in pairs]
    for na, nb in dict.fromkeys((len(xa), len(xb)) for xa, xb in pairs):
        group = [i for i, (xa, xb) in enumerate(pairs) if (len(xa), len(xb)) == (na, nb)]
        pools = [np.concatenate(pairs[i]) for i in group]
        totals = [pool.sum() for pool in pools]
        rng = _rng(seed, 2)
        block = max(1, 2_000_000 // (na + nb))
        for s in range(0, n_perm, block):
            k = min(block, n_perm - s)
            # a uniformly random A side: the positions of the na smallest of N uniforms (argpartition finds
            # the same set as a full argsort, and the sums of these integer or 0/1 values do not depend on
            # order)
            idx = np.argpartition(rng.random((k, na + nb)), na - 1, axis=1)[:, :na]
            for i, pool, total in zip(group, pools, totals):
                sa = pool[idx].sum(axis=1)
                nulls[i].append((total - sa) / nb - sa / na)
    out = []
    for (xa, xb), null in zip(pairs, nulls):
        na, nb = len(xa), len(xb)
        diff = float(xb.mean() - xa.mean())
        p, used = permutation_pvalue(diff, np.concatenate(null))
        if bool(np.isin(np.concatenate([xa, xb]), (0.0, 1.0)).all()):
            ci = newcombe_diff_ci(int(xa.sum()), na, int(xb.sum()), nb)
            interval = "Newcombe hybrid score (0/1 rows)"
        else:
            ci = welch_diff_ci(xa, xb) if na > 1 and nb > 1 else None
            interval = "Welch t"
        out.append({"diff": diff, "ci": list(ci) if ci else None, "p": p, "resamples": used,
                    "effect": hedges_g(xa, xb), "effect_kind": "Hedges' g", "interval": interval,
                    "cliffs_delta": cliffs_delta(xa, xb)})
    return out


# ----------------------------------------------------------------------------- utility: per test row

def _utility_parts(ctx, spec):
    """(job, per-seed predictions of the metric's training set(s)) from the metric's own cached job.

    Returns ("preds", y, [preds per seed]) for accuracy / macro-F1, or ("rows", per-row values) for
    gap and mix-gain (per test row: mean over seeds of correct(with) - correct(without)).
    """
    import numpy as np

    from harness.metrics.indirect import utility as U

    kind = _utility_kind(spec.name)
    args = dict(spec.args)
    recipe, seeds = args.pop("recipe", "tfidf-lr"), args.pop("seeds", 3)
    if kind == "mix-gain":
        k = args.pop("k", 100)
        args.pop("ratios", None)
        args.pop("sweep", None)
    job = U._job(ctx, recipe, seeds, args)
    S = len(job.seeds)
    if kind in ("accuracy", "macro-f1"):
        return job.y, [np.asarray(p, dtype=object) for p in job.tstr()], None
    if kind == "gap":
        n = min(len(job.syn_texts), len(job.real()[0]))
        with_ = lambda s: [("syn", job.subset("syn", s, n))]  # noqa: E731
        without = lambda s: [("real", job.subset("real", s, n))]  # noqa: E731
    else:
        k = min(int(k), len(job.real()[0]))
        with_ = lambda s: [("real", job.subset("real", s, k)), job.full("syn")]  # noqa: E731
        without = lambda s: [("real", job.subset("real", s, k))]  # noqa: E731
    a = job.run([(with_(s), s) for s in range(S)], "with")
    b = job.run([(without(s), s) for s in range(S)], "baseline")
    rows = np.mean([(pa == job.y).astype(float) - (pb == job.y) for pa, pb in zip(a, b)], axis=0)
    return job.y, [np.asarray(p, dtype=object) for p in a], rows


def _f1_parts(y, preds, classes):
    """One-hot (n x C) true-positive, false-positive and false-negative indicators of each seed's predictions."""
    import numpy as np

    ix = {c: i for i, c in enumerate(classes)}
    yi = np.array([ix[c] for c in y])
    eye = np.eye(len(classes), dtype=np.float64)
    out = []
    for p in preds:
        pi = np.array([ix[c] for c in p])
        ok = (pi == yi)[:, None]
        out.append((eye[yi] * ok, eye[pi] * ~ok, eye[yi] * ~ok))
    return out


def _macro_f1(tp, fp, fn):
    """Macro-F1 over the classes present (in the truth or the predictions), as sklearn's f1_score; rows
    of the inputs are replicates."""
    import numpy as np

    den = 2 * tp + fp + fn
    present = den > 0
    f1 = np.where(present, 2 * tp / np.where(present, den, 1), 0.0)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def utility_scheme(kind: str, ya, preds_a, rows_a, preds_b, rows_b, value_a, value_b, n_boot: int, rng) -> dict:
    """Paired bootstrap over test rows, sign-flip randomisation p-value, McNemar (accuracy), effect size."""
    import numpy as np

    from harness.stats import hedges_g, mcnemar_exact

    n = len(ya)
    out: dict = {"notes": []}
    if kind in ("accuracy", "gap", "mix-gain"):
        va = rows_a if rows_a is not None else np.mean([(p == ya).astype(float) for p in preds_a], axis=0)
        vb = rows_b if rows_b is not None else np.mean([(p == ya).astype(float) for p in preds_b], axis=0)
        for v, value, who in ((va, value_a, "A"), (vb, value_b, "B")):
            if not math.isclose(float(v.mean()), value, abs_tol=1e-9):
                raise ValueError(f"the per-test-row values of {who} do not reproduce its value "
                                 f"({float(v.mean())} vs {value})")
        d = vb - va
        diff = float(d.mean())
        reps, null = [], []
        for s in range(0, n_boot, max(1, 1_000_000 // n)):
            k = min(max(1, 1_000_000 // n), n_boot - s)
            reps.append(d[resample_indices(rng, n, k)].mean(axis=1))
            null.append((d[None, :] * rng.choice((-1.0, 1.0), size=(k, n))).mean(axis=1))
        reps = np.concatenate(reps)
        out.update({"diff": diff, "ci": list(percentile_interval(reps, tails=(0.025, 0.975))),
                    "effect": hedges_g(va, vb), "effect_kind": "Hedges' g (per test row)"})
        p, used = permutation_pvalue(diff, np.concatenate(null))
        if kind == "accuracy":
            ca, cb = preds_a[0] == ya, preds_b[0] == ya
            b_, c_ = int((ca & ~cb).sum()), int((~ca & cb).sum())
            out["mcnemar"] = {"p": mcnemar_exact(b_, c_), "a_right_b_wrong": b_, "a_wrong_b_right": c_, "seed": 0}
            out["notes"].append(f"McNemar exact p = {out['mcnemar']['p']:.3g} ({b_} vs {c_} discordant rows, first seed)")
    else:  # macro-F1: not a mean over rows; recompute it on resampled / swapped rows
        classes = sorted({*map(str, ya), *(str(x) for p in list(preds_a) + list(preds_b) for x in p)})
        ys = np.array([str(x) for x in ya], dtype=object)
        pa = [np.array([str(x) for x in p], dtype=object) for p in preds_a]
        pb = [np.array([str(x) for x in p], dtype=object) for p in preds_b]
        parts_a, parts_b = _f1_parts(ys, pa, classes), _f1_parts(ys, pb, classes)
        f1 = lambda parts, W: np.mean([_macro_f1(W @ tp, W @ fp, W @ fn) for tp, fp, fn in parts], axis=0)  # noqa: E731
        one = np.ones((1, n))
        fa, fb = float(f1(parts_a, one)[0]), float(f1(parts_b, one)[0])
        for got, value, who in ((fa, value_a, "A"), (fb, value_b, "B")):
            if not math.isclose(got, value, abs_tol=1e-9):
                raise ValueError(f"macro-F1 of {who} recomputed from its predictions is {got}, not {value}")
        diff = fb - fa
        ra, rb, null = [], [], []
        block = max(1, 2_000_000 // n)
        for s in range(0, n_boot, block):
            k = min(block, n_boot - s)
            W = bootstrap_weights(rng, n, k, np.float64)
            ra.append(f1(parts_a, W))
            rb.append(f1(parts_b, W))
            swap = rng.random((k, n)) < 0.5
            # A's predictions on the swapped rows become B's and the reverse (counts are linear in the swap)
            S, K = swap.astype(np.float64), (~swap).astype(np.float64)
            fa_s, fb_s = [], []
            for (tpa, fpa, fna), (tpb, fpb, fnb) in zip(parts_a, parts_b):
                fa_s.append(_macro_f1(K @ tpa + S @ tpb, K @ fpa + S @ fpb, K @ fna + S @ fnb))
                fb_s.append(_macro_f1(K @ tpb + S @ tpa, K @ fpb + S @ fpa, K @ fnb + S @ fna))
            null.append(np.mean(fb_s, axis=0) - np.mean(fa_s, axis=0))
        ra, rb = np.concatenate(ra), np.concatenate(rb)
        reps = rb - ra
        sd = math.sqrt((ra.var(ddof=1) + rb.var(ddof=1)) / 2)
        out.update({"diff": diff, "ci": list(percentile_interval(reps, tails=(0.025, 0.975))),
                    "effect": diff / sd if sd > 0 else None,
                    "effect_kind": "difference / pooled bootstrap SD"})
        p, used = permutation_pvalue(diff, np.concatenate(null))
    out.update({"p": p, "resamples": used, "interval": "paired bootstrap over test rows (percentile)"})
    return out


# ----------------------------------------------------------------------------- the comparison

@dataclass
class _Ctxs:
    a: object
    b: object
    ref: object | None
    test: object | None


def _contexts(ca, cb, ref, test, emb, seed_a: int, seed_b: int) -> _Ctxs:
    from harness.metrics.base import Context

    test_ctx = Context(test, seed_a, emb, role="test") if test is not None else None
    ref_ctx = Context(ref, seed_a, emb, test=test_ctx, role="reference") if ref is not None else None
    return _Ctxs(Context(ca, seed_a, emb, reference=ref_ctx, test=test_ctx),
                 Context(cb, seed_b, emb, reference=ref_ctx, test=test_ctx), ref_ctx, test_ctx)


def _recorded_seconds(side: Side, metric: str) -> float:
    """The seconds the run recorded for one evaluation of ``metric`` (0 when it recorded none)."""
    return float(side.records[metric].seconds or 0.0)


def _too_slow(metric: str, info, seconds: float, where: str) -> str | None:
    """Why a set-level metric without sufficient statistics is left out by default (both paths recompute
    it from the rows of every resample; --recompute also recomputes the others, whose cost the fast path
    would not pay, so they are not judged by it: the same set either way), or None."""
    total = seconds * 4 * DEFAULT_RESAMPLES
    if info.resample != "set" or resampler_of(info) is not None or total <= SLOW_RECOMPUTE_S:
        return None
    return (f"slow to recompute ({seconds:.2f} s per evaluation{' ' + where if where else ''}, about "
            f"{_duration(total)} at {DEFAULT_RESAMPLES} resamples): name it with --metrics {metric} to include it")


def _stored(record) -> float:
    rep = (record.details or {}).get("repeats")
    if isinstance(rep, dict) and rep.get("values"):
        return float(rep["values"][0])  # the primary sample's value; the record holds a mean over samples
    return float(record.value)


@dataclass
class _Row:
    metric: str
    spec: object
    hib: bool | None
    a: float = float("nan")
    b: float = float("nan")
    stored: tuple = (None, None)
    seconds: float = 0.0
    scheme: str = "recompute"
    rows_a: object = None
    rows_b: object = None
    result: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    resampled: str | None = None      # set-level metrics: "statistics", "approximate" or "recomputed"
    observed_stat: tuple | None = None  # an approximate resampler's own values for A and B
    resample_seconds: float | None = None


@contextmanager
def _one_blas_thread():
    # scipy's OpenBLAS is loaded here, before the limit: threadpoolctl limits only the libraries already
    # loaded, and one loaded later (by the first k-means) would run two BLAS threads inside scikit-learn's
    # OpenMP loops, which OpenBLAS reports hundreds of times ("Detect OpenMP Loop") and oversubscribes
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _rng(seed: int, stream: int):
    import numpy as np

    return np.random.default_rng([int(seed), 7727, stream])


def compare(a_spec: str, b_spec: str, metrics: list[str] | None = None, resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0, progress: bool = False, embedder=None, embedder_name: str | None = None,
            log=None, fast: bool = True, extend: bool = True) -> dict:
    """Compare candidate B with candidate A (see the module docstring); returns a JSON-ready dict.

    ``a_spec``/``b_spec``: ``DIR`` or ``DIR:NAME``. ``metrics``: names, groups or globs (default: every
    cheap metric both computed). ``embedder``: an object with ``embed(texts)`` and ``identity`` to use
    instead of the run's (tests); ``embedder_name``: a model name or folder that overrides run.json's.
    ``fast``: resample set-level metrics on their declared sufficient statistics (``resampler=`` in their
    ``@metric``); False recomputes every one from the rows of each resample (the scheme before issue #26,
    kept for the bench and the agreement tests: the numbers are the same). ``extend``: a metric whose
    resampler is declared cheap and whose p-value on the shared permutations is below ``EXTEND_BELOW``
    gets ``EXTENDED_PERMUTATIONS``
    (False: exactly ``resamples``, the same p-values as the recompute scheme).
    """

    from harness import metrics as registry
    from harness.metrics.base import MetricSkipped

    log = log or (lambda msg: None)
    if resamples < 20:
        raise UserError(f"--resamples {resamples}: too few for a p-value or an interval", "give 20 or more (default 200)")
    A, B = open_side(a_spec, "A"), open_side(b_spec, "B")
    warnings: list[str] = []
    if A.meta.get("harness") != B.meta.get("harness"):
        warnings.append(f"the runs were made with synthbench {A.meta.get('harness')} (A) and "
                        f"{B.meta.get('harness')} (B); values are recomputed with this version")
    named = metrics is not None
    if named:
        names = [s.name for s in registry.select(metrics)]
    else:
        names = [m for m in registry.names() if m in A.records and m in B.records]
    rows: list[_Row] = []
    not_compared: list[dict] = []
    for m in names:
        decl = registry.info(m)
        if not named and (decl.cost == "heavy" or decl.opt_in):
            not_compared.append({"metric": m, "reason": f"heavy (seconds or more per evaluation, or model fits): "
                                 f"name it with --metrics {m} to include it"})
            continue
        why = incompatibility(m, A, B)
        if why:
            not_compared.append({"metric": m, "reason": why})
            continue
        spec = registry.get(m)
        # judged by B's run's recorded time, not this machine's load; without one, after the recomputation below
        why = None if named else _too_slow(m, decl, _recorded_seconds(B, m), "in B's run")
        if why:
            not_compared.append({"metric": m, "reason": why})
            continue
        args = {**spec.args, **_fn_args(spec, A.records[m])}
        rows.append(_Row(m, registry.MetricSpec(m, spec.target, args), spec.info.higher_is_better))
    if not rows:
        shown = "; ".join(f"{d['metric']}: {d['reason']}" for d in not_compared[:3]) or "no metric was requested"
        more = f" (and {len(not_compared) - 3} more)" if len(not_compared) > 3 else ""
        fix = next((d["reason"].split(": ")[-1] for d in not_compared if ": " in d["reason"]),
                   "evaluate both candidates with the same metrics, reference, --sample-size and seed")
        raise UserError(f"nothing to compare between {A.spec} and {B.spec}: {shown}{more}", fix)

    uses = [_uses(r.spec.info) for r in rows]
    want_ref = any(u["ref"] for u in uses)
    want_test = any(u["test"] for u in uses)
    ca, ref, test = evaluated_rows(A, want_ref, want_test)
    same = A.folder.resolve() == B.folder.resolve() and A.name == B.name
    cb = ca if same else evaluated_rows(B, False, False)[0]
    emb = None
    if any(u["emb"] for u in uses):
        base = embedder if embedder is not None else build_embedder(A, B, embedder_name, progress)
        texts = list(ca.texts) + list(cb.texts) + (list(ref.texts) if ref is not None else []) + \
            (list(test.texts) if test is not None else [])
        emb = VectorTable(base, texts)
        want = A.records[next(r.metric for r, u in zip(rows, uses) if u["emb"])].signature.embedder
        if emb.identity != want:
            raise UserError(f"the embedder given ({emb.identity}) is not the one the runs used ({want})",
                            "pass --embedder with the runs' model")

    # single-threaded BLAS: small eigendecompositions and GEMMs repeated thousands of times run many times
    # faster on one thread than with OpenBLAS/OpenMP workers spin-waiting for busy cores
    workers = resample_workers()
    with _one_blas_thread(), _Prebuild(rows if fast else [], ca, cb, ref, test, emb, A.seed, B.seed,
                                       workers) as prebuilt:
        # observed values, recomputed on the evaluated rows and checked against the stored ones, in the
        # same threads that build the sufficient statistics of the set-level metrics
        ctx = prebuilt.fixed

        def side(r, which):
            """The metric's Score on A's or B's rows and the seconds it took, or the MetricSkipped."""
            t0 = time.perf_counter()
            try:
                score = r.spec(ctx.a if which == "a" else ctx.b)
            except MetricSkipped as e:
                return e, 0.0
            return score, time.perf_counter() - t0

        def cost(r, what):
            sec = {"a": _recorded_seconds(A, r.metric), "b": _recorded_seconds(B, r.metric)}
            return sec["a"] + sec["b"] if what == "statistics" else sec[what]

        kept: list[_Row] = []
        row_pairs: list = []
        for r, (fa, fb) in zip(rows, prebuilt.start(side, rows, cost)):
            (sa, _), (sb, took) = fa.result(), fb.result()
            # one evaluation's time (the estimate of a recomputed metric): B's run's record, measured alone;
            # here A and B run side by side and either may pay the shared work, or wait for it
            r.seconds = _recorded_seconds(B, r.metric) or took
            skip = sa if isinstance(sa, MetricSkipped) else sb if isinstance(sb, MetricSkipped) else None
            if skip is not None:
                not_compared.append({"metric": r.metric, "reason": f"skipped when recomputed: {skip}"})
                continue
            r.a, r.b = float(sa.value), float(sb.value)
            r.stored = (_stored(A.records[r.metric]), _stored(B.records[r.metric]))
            for who, got, rec in ((A, r.a, A.records[r.metric]), (B, r.b, B.records[r.metric])):
                want = _stored(rec)
                if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                    warnings.append(f"{r.metric}: recomputed {got:.6g} for {who.label} ({who.name}), stored {want:.6g}; "
                                    "the comparison uses the recomputed values")
            if "repeats" in (A.records[r.metric].details or {}) or "repeats" in (B.records[r.metric].details or {}):
                r.notes.append("primary sample (the stored value is a mean over repeated samples)")
            why = None if named or _recorded_seconds(B, r.metric) else _too_slow(r.metric, r.spec.info, r.seconds, "")
            if why:  # no recorded time: the measured one
                not_compared.append({"metric": r.metric, "reason": why})
                continue
            if r.spec.info.resample == "test-rows":
                r.scheme = "test-rows"
                try:
                    ya, preds_a, rows_a = _utility_parts(ctx.a, r.spec)
                    _, preds_b, rows_b = _utility_parts(ctx.b, r.spec)
                    r.result = utility_scheme(_utility_kind(r.metric), ya, preds_a, rows_a, preds_b, rows_b,
                                               r.a, r.b, max(resamples, TEST_ROW_RESAMPLES), _rng(seed, 3))
                except (ValueError, MetricSkipped) as e:
                    not_compared.append({"metric": r.metric, "reason": f"per-test-row form unavailable: {e}"})
                    continue
                r.notes += r.result.pop("notes", [])
            else:
                xa, xb = row_values(r.metric, ctx.a, sa), row_values(r.metric, ctx.b, sb)
                if xa is not None and xb is not None:
                    r.scheme = "rows"
                    row_pairs.append((r, xa, xb))
            kept.append(r)
        # the row metrics' permutation tests, on one draw of relabellings
        for (r, _, _), result in zip(row_pairs, row_schemes([(xa, xb) for _, xa, xb in row_pairs],
                                                            max(resamples, ROW_PERMUTATIONS), seed)):
            r.result = result
        rows = kept
        heavy = [r for r in rows if r.scheme == "recompute"]
        resampling = None
        if heavy:
            resampling = _resample_set_metrics(heavy, ca, cb, ref, test, emb, A.seed, B.seed, resamples, seed,
                                               progress, log, fast=fast, extend=extend, prebuilt=prebuilt)
    # multiplicity, verdicts
    valid = _bh_q(rows)
    if heavy and len(valid) / (resamples + 1) > ALPHA:
        warnings.append(f"with {resamples} permutations the smallest p of a recomputed metric is 1/{resamples + 1}; "
                        f"over {len(valid)} metrics a lone difference needs p ≤ {ALPHA}/{len(valid)} for q below "
                        f"{ALPHA}: use --resamples {math.ceil(len(valid) / ALPHA)} or more, or fewer --metrics")
    out_rows = [_finish(r) for r in rows]
    return {
        "a": A.describe(), "b": B.describe(),
        "reference": _corpus_info(ref, A.meta.get("reference")), "test": _corpus_info(test, A.meta.get("test")),
        "resamples": resamples, "row_permutations": max(resamples, ROW_PERMUTATIONS),
        "test_row_resamples": max(resamples, TEST_ROW_RESAMPLES), "seed": seed, "alpha": ALPHA,
        "metrics": out_rows, "not_compared": not_compared, "warnings": warnings, "schemes": SCHEMES,
        "resampling": resampling,
    }


def _bh_q(rows) -> list[int]:
    """Benjamini–Hochberg q-values over the rows that have a p-value (set in place, as ``result["q"]``);
    returns the indices of those rows. Shared by :func:`compare` and :func:`compare_corpora`."""
    from harness.stats import bh_adjust

    ps = [r.result.get("p") for r in rows]
    valid = [i for i, p in enumerate(ps) if p is not None and not math.isnan(p)]
    for i, q in zip(valid, bh_adjust([ps[i] for i in valid])):
        rows[i].result["q"] = q
    return valid


def _corpus_info(corpus, entry) -> dict | None:
    if corpus is None:
        return None
    return {"name": corpus.name, "rows": len(corpus), "fingerprint": corpus.fingerprint,
            "source": (entry or {}).get("source")}


@dataclass
class Draws:
    """The resample index sets of one comparison, drawn once and shared by both evaluation paths (the
    sufficient-statistics resamplers and the recomputation from rows), so both see the same subsets.
    ``perms``: permutations of the pooled positions (A's rows 0..na-1, then B's); ``halves``: per
    half-sample, (A's rows, B's rows, reference rows or None, test rows or None), each sorted positions
    within its own corpus."""

    na: int
    nb: int
    perms: list
    halves: list

    def pooled_half(self, i: int):
        """Half-sample ``i`` as pooled positions: (A rows, B rows, reference rows, test rows)."""
        ha, hb, hr, ht = self.halves[i]
        return ha, hb + self.na, hr, ht


def draw_resamples(na: int, nb: int, n_ref: int | None, n_test: int | None, resamples: int, seed: int) -> Draws:
    """The permutations and half-samples of a comparison (the same draws, in the same order, as before
    issue #26: the p-values and intervals of a seed did not change)."""
    import numpy as np

    rp, rh = _rng(seed, 0), _rng(seed, 1)
    perms = [rp.permutation(na + nb) for _ in range(resamples)]
    halves = []
    for _ in range(resamples):
        half = lambda n: np.sort(rh.choice(n, n // 2, replace=False))  # noqa: E731
        ha, hb = half(na), half(nb)
        hr = half(n_ref) if n_ref is not None else None
        ht = half(n_test) if n_test is not None else None
        halves.append((ha, hb, hr, ht))
    return Draws(na, nb, perms, halves)


def resampler_of(info):
    """The declared resampler function of a metric (``resampler=`` in its ``@metric``), or None."""
    import importlib

    fn = info.resampler
    if fn is None or callable(fn):
        return fn
    return getattr(importlib.import_module(info.module), fn)


def _resampler_args(r: _Row) -> dict:
    neutral = r.spec.info.neutral_args
    return {**r.spec.args, **neutral} if neutral else dict(r.spec.args)


def _agrees(got: float, want: float, tol: float) -> bool:
    return math.isclose(got, want, rel_tol=max(1e-7, tol), abs_tol=1e-9)


class _Prebuild:
    """The pre-phase of a comparison in ``workers`` threads: the set-level metrics' sufficient statistics,
    built on the pooled rows (with their values on A's and B's rows), and the observed values of every
    metric on A and B (:meth:`start`), all on one set of contexts, so that shared work (the reference's
    neighbours, clusters and classifier) is computed once (:meth:`Context.memo` holds a lock per key);
    the same contexts and objects the resampling then uses, so nothing differs but the time. The results
    are taken in the metrics' order. A context manager: leaving it waits for the threads (and drops
    what was not started)."""

    def __init__(self, rows, ca, cb, ref, test, emb, seed_a, seed_b, workers: int = 1):
        from harness.metrics.base import Context

        self.fixed = _contexts(ca, cb, ref, test, emb, seed_a, seed_b)
        self.pool = Context(pooled(ca, cb), seed_a, emb, reference=self.fixed.ref, test=self.fixed.test)
        self.n_a, self.n = len(ca), len(ca) + len(cb)
        self.todo = [r for r in rows if r.spec.info.resample == "set" and resampler_of(r.spec.info) is not None]
        self.futures: dict = {}
        self.ex = None
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compare")

    def start(self, side, rows, cost) -> list:
        """Starts the statistics and ``side(r, "a")``, ``side(r, "b")`` for each row, longest first by
        ``cost(r, what)`` (what: "a", "b" or "statistics"; the run's recorded seconds), and returns the
        sides' ``(a, b)`` results, in the rows' order, as futures (finished ones when there are no threads)."""
        if self.ex is None:
            return [(_done(side(r, "a")), _done(side(r, "b"))) for r in rows]
        jobs = [(cost(r, "statistics"), 0, i, "statistics") for i, r in enumerate(self.todo)]
        jobs += [(cost(r, w), 1, i, w) for i, r in enumerate(rows) for w in "ab"]
        sides: dict = {}
        for _, kind, i, what in sorted(jobs, key=lambda j: (-j[0], j[1], j[2], j[3])):
            if kind == 0:
                self.futures[self.todo[i].metric] = self.ex.submit(self._build, self.todo[i])
            else:
                sides[(i, what)] = self.ex.submit(side, rows[i], what)
        return [(sides[(i, "a")], sides[(i, "b")]) for i in range(len(rows))]

    def _build(self, r):
        """(resampler, its values on A's and B's rows, seconds, None) or (None, None, None, the error)."""
        import numpy as np

        t0 = time.perf_counter()
        try:
            res = resampler_of(r.spec.info)(self.pool, **_resampler_args(r))
            ab = None
            if res is not None:
                ab = (res.value(np.arange(self.n_a, dtype=np.int64)), res.value(np.arange(self.n_a, self.n, dtype=np.int64)))
            return res, ab, time.perf_counter() - t0, None
        except Exception as e:  # raised again where the resampler is asked for
            return None, None, None, e

    def has(self, r) -> bool:
        return r.metric in self.futures

    def get(self, r):
        """(resampler, values on A and B, build seconds) of a metric whose statistics were submitted."""
        res, ab, took, err = self.futures[r.metric].result()
        if err is not None:
            raise err
        return res, ab, took

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.ex is not None:
            self.ex.shutdown(wait=True, cancel_futures=True)
        return False


def _done(value):
    """A finished future holding ``value`` (computed in place, without threads)."""
    from concurrent.futures import Future

    f = Future()
    f.set_result(value)
    return f


def _resample_set_metrics(rows: list[_Row], ca, cb, ref, test, emb, seed_a, seed_b, resamples, seed, progress,
                          log, fast: bool = True, extend: bool = True, workers: int | None = None,
                          prebuilt: _Prebuild | None = None) -> dict:
    """Permutation test and half-sampling for the set-level metrics: each metric with a declared
    resampler is evaluated on its sufficient statistics, computed once on the pooled rows (and checked
    to reproduce A's and B's values before it is used); the others are recomputed from the rows of every
    resample. Returns what was done, with the time estimate and the time taken."""
    import numpy as np

    from harness.metrics.base import Context, MetricSkipped

    t_start = time.perf_counter()
    draws = draw_resamples(len(ca), len(cb), len(ref) if ref is not None else None,
                           len(test) if test is not None else None, resamples, seed)
    na = len(ca)
    out = {r.metric: (np.full(resamples, np.nan), np.full(resamples, np.nan), np.full(resamples, np.nan))
           for r in rows}
    skipped: dict[str, str] = {}
    fixed = prebuilt.fixed if prebuilt is not None else _contexts(ca, cb, ref, test, emb, seed_a, seed_b)
    ready, slow, why_slow = [], [], {}
    prep_s: dict[str, float] = {}
    workers = resample_workers() if workers is None else max(1, int(workers))
    if fast:
        pool = prebuilt.pool if prebuilt is not None else Context(pooled(ca, cb), seed_a, emb, reference=fixed.ref,
                                                                    test=fixed.test)
        ia, ib = np.arange(na, dtype=np.int64), np.arange(na, na + len(cb), dtype=np.int64)

        def prepare(r):
            """("ready", resampler, one replicate's seconds, build seconds) or ("slow", why)."""
            fn = resampler_of(r.spec.info)
            if fn is None:
                return ("slow", "no sufficient statistics declared")
            t0 = time.perf_counter()
            try:
                if prebuilt is not None and prebuilt.has(r):
                    res, ab, build_s = prebuilt.get(r)
                else:
                    res, ab = fn(pool, **_resampler_args(r)), None
                if res is None:
                    raise ValueError("its statistics do not represent it on these rows")
                va, vb = ab if ab is not None else (res.value(ia), res.value(ib))
            except (MetricSkipped, ValueError) as e:
                return ("slow", f"resampler unavailable: {e}")
            if ab is None:
                build_s = time.perf_counter() - t0
            if getattr(res, "approximate", None):
                return ("ready", res, build_s, (va, vb))
            if not (_agrees(va, r.a, r.spec.info.tolerance) and _agrees(vb, r.b, r.spec.info.tolerance)):
                return ("slow", f"resampler disagrees with the metric (A {va:.9g} vs {r.a:.9g}, B {vb:.9g} vs "
                                f"{r.b:.9g}): recomputed instead")
            return ("ready", res, build_s, None)

        def replicate_seconds(res):
            """The estimate: one permutation's and one half-sample's sides, timed after the check (which
            paid the first call's one-off work), one metric at a time (threads would slow each other)."""
            t2 = time.perf_counter()
            ha, hb, hr, ht = draws.pooled_half(0)
            calls = [(draws.perms[0][:na], None, None), (draws.perms[0][na:], None, None), (ha, hr, ht), (hb, hr, ht)]
            try:
                if hasattr(res, "values"):  # a batched resampler, timed as the resampling calls it: in one batch
                    res.values(calls)
                else:
                    for call in calls:
                        _value_or_skip(res, call)
            except ValueError as e:
                return e
            return time.perf_counter() - t2

        # the statistics of different metrics are built in the worker threads too (shared work, such as
        # the k-NN distances of the PRDC family, is computed once: Context.memo holds a lock per key);
        # the results are taken in the metrics' order, so the lists do not depend on the threads
        prepared = _in_threads(prepare, rows, workers)
        for r, got in zip(rows, prepared):
            if got[0] == "slow":
                slow.append(r)
                why_slow[r.metric] = got[1]
                continue
            _, res, build_s, observed = got
            t_eval = replicate_seconds(res)
            if isinstance(t_eval, ValueError):
                slow.append(r)
                why_slow[r.metric] = f"resampler unavailable: {t_eval}"
                continue
            if observed is not None:
                va, vb = observed
                r.observed_stat = (va, vb)
                r.notes.append(f"resampled approximately ({res.approximate}; A {va:.6g}, B {vb:.6g} on this "
                               f"statistic)")
            prep_s[r.metric] = build_s
            ready.append((r, res, t_eval))
    else:
        slow = list(rows)
        why_slow = {r.metric: "recomputation requested (fast=False)" for r in rows}
    # estimates: the timed replicate pair times the replicates (batched resamplers run faster than that),
    # spread over the worker threads (no faster than the slowest metric alone)
    times = [t * resamples for _, _, t in ready]
    est_fast = max(sum(times) / workers, max(times)) if times else 0.0
    est_slow = sum(r.seconds for r in slow) * 4 * resamples
    # the recomputation runs in the same threads as the resamplers
    est_total = max((sum(times) + est_slow) / workers, max(times + [est_slow]))
    if ready:
        cheap = sum(1 for _, res, _ in ready if getattr(res, "cheap", False))
        more = (f", more for any of the {cheap} cheap one(s) whose first {resamples} permutations give p < "
                f"{EXTEND_BELOW}: they get {EXTENDED_PERMUTATIONS - resamples:,} more"
                ) if extend and cheap and resamples < EXTENDED_PERMUTATIONS else ""
        log(f"compare: {len(ready)} metric(s) resampled on sufficient statistics ({resamples} permutations and "
            f"{resamples} half-samples, about {_duration(est_fast)}{more})")
    if slow:
        log(f"compare: {len(slow)} metric(s) recomputed from the rows of {resamples} permutations and {resamples} "
            f"half-samples (about {_duration(est_slow)}): {', '.join(r.metric for r in slow)}")
    spent: dict[str, float] = {}
    extra: dict[str, object] = {}  # metric -> the null values of its extended permutations
    total = len(ready) + (1 if slow else 0)
    calls = []
    for idx in draws.perms:
        calls += [(idx[:na], None, None), (idx[na:], None, None)]
    for i in range(resamples):
        ha, hb, hr, ht = draws.pooled_half(i)
        calls += [(ha, hr, ht), (hb, hr, ht)]
    import threading

    done, lock = [0], threading.Lock()

    def resample_one(r, res):
        t0 = time.perf_counter()
        perm, half_a, half_b = out[r.metric]
        vals = res.values(calls) if hasattr(res, "values") else [_value_or_skip(res, c) for c in calls]
        for i in range(resamples):
            va, vb = vals[2 * i], vals[2 * i + 1]
            ha_, hb_ = vals[2 * (resamples + i)], vals[2 * (resamples + i) + 1]
            for v in (va, vb, ha_, hb_):
                if isinstance(v, Exception):
                    skipped.setdefault(r.metric, str(v))
            if not isinstance(va, Exception) and not isinstance(vb, Exception):
                perm[i] = vb - va
            if not isinstance(ha_, Exception) and not isinstance(hb_, Exception):
                half_a[i], half_b[i] = ha_, hb_
        took = time.perf_counter() - t0
        more = ""
        if extend and resamples < EXTENDED_PERMUTATIONS:
            sa, sb = r.observed_stat if r.observed_stat is not None else (r.a, r.b)
            p1, used = permutation_pvalue(sb - sa, perm)
            extra_n = EXTENDED_PERMUTATIONS - resamples
            if used and p1 < EXTEND_BELOW and getattr(res, "cheap", False):
                t1 = time.perf_counter()
                extra[r.metric] = _extra_permutations(res, na, len(cb), extra_n, seed, skipped, r.metric)
                took += time.perf_counter() - t1
                more = f", then {extra_n} more permutations (p {p1:.3g} on the first {resamples})"
        with lock:
            spent[r.metric] = took
            done[0] += 1
            log(f"compare: [{done[0]}/{total}] {r.metric}: {4 * resamples} resample sides in {_duration(took)} "
                f"({res.what or 'sufficient statistics'}{more})")

    # metrics in parallel threads, each on one BLAS thread (numpy's linear algebra releases the GIL), the
    # slowest first; every metric's values depend only on its own statistics and the shared draws
    order = sorted(ready, key=lambda x: -x[2])

    def recompute_slow():
        t0 = time.perf_counter()
        took = _recompute(slow, ca, cb, ref, test, emb, seed_a, seed_b, draws, out, skipped, progress)
        with lock:
            spent.update(took)
            done[0] += 1
            log(f"compare: [{done[0]}/{total}] recomputed {len(slow)} metric(s) from the rows in "
                f"{_duration(time.perf_counter() - t0)}")

    # the recomputation runs beside the resamplers (its own metrics' state, as each resampler's), and
    # first when it is the longest job
    jobs = [(t, resample_one, (r, res)) for r, res, t in order]
    if slow:
        jobs.append((est_slow / resamples, recompute_slow, ()))
    jobs.sort(key=lambda j: -j[0])
    _in_threads(lambda job: job[1](*job[2]), jobs, workers)
    for r in rows:
        perm, half_a, half_b = out[r.metric]
        if r.metric in extra:
            perm = np.concatenate([perm, extra[r.metric]])
            r.notes.append(f"p-value from {len(perm)} permutations: the first {resamples} are shared with the "
                           f"recompute scheme, the rest were drawn because their p-value was below {EXTEND_BELOW}")
        _summarise(r, perm, half_a, half_b, skipped, resamples)
        r.resampled = ("recomputed" if r.metric in why_slow else
                       "approximate" if r.observed_stat is not None else "statistics")
        r.resample_seconds = round(spent.get(r.metric, 0.0) + prep_s.get(r.metric, 0.0), 3)
        if r.metric in why_slow and fast:
            r.notes.append(f"recomputed from the rows of every resample ({why_slow[r.metric]})")
    return {"statistics": [r.metric for r, _, _ in ready if r.observed_stat is None],
            "approximate": [r.metric for r, _, _ in ready if r.observed_stat is not None],
            "recomputed": [{"metric": r.metric, "reason": why_slow[r.metric]} for r in slow],
            "extended": sorted(extra), "extended_permutations": EXTENDED_PERMUTATIONS, "extend_below": EXTEND_BELOW,
            "estimate_s": round(est_total, 1), "seconds": round(time.perf_counter() - t_start, 1),
            "permutations": resamples, "half_samples": resamples}


def _in_threads(fn, items, workers: int) -> list:
    """``[fn(x) for x in items]``, in up to ``workers`` threads (in order, one at a time, with one); the
    results in the items' order, the first exception raised."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items))


def resample_workers() -> int:
    """Threads that resample metrics on sufficient statistics at once: ``$SYNTHBENCH_COMPARE_WORKERS``, else
    the CPU cores this process may use, at most 4 (each runs its linear algebra on one BLAS thread)."""
    import os

    env = os.environ.get("SYNTHBENCH_COMPARE_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise UserError(f"SYNTHBENCH_COMPARE_WORKERS={env!r} is not a number", "give a whole number, e.g. 2") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _extra_permutations(res, na: int, nb: int, count: int, seed: int, skipped: dict, metric: str):
    """The null values B* - A* of ``count`` further permutations (their own random stream, drawn in
    chunks so that memory stays small), evaluated on the metric's sufficient statistics."""
    import numpy as np

    rng = _rng(seed, 3)
    out = np.full(count, np.nan)
    done = 0
    while done < count:
        m = min(500, count - done)
        calls = []
        for _ in range(m):
            idx = rng.permutation(na + nb)
            calls += [(idx[:na], None, None), (idx[na:], None, None)]
        vals = res.values(calls) if hasattr(res, "values") else [_value_or_skip(res, c) for c in calls]
        for i in range(m):
            va, vb = vals[2 * i], vals[2 * i + 1]
            if isinstance(va, Exception) or isinstance(vb, Exception):
                skipped.setdefault(metric, str(va if isinstance(va, Exception) else vb))
                continue
            out[done + i] = vb - va
        done += m
    return out


def _value_or_skip(res, call):
    from harness.metrics.base import MetricSkipped

    try:
        return res.value(*call)
    except MetricSkipped as e:
        return e


def _duration(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _recompute(rows: list[_Row], ca, cb, ref, test, emb, seed_a, seed_b, draws: Draws, out: dict, skipped: dict,
               progress) -> dict:
    """The set-level metrics without sufficient statistics, recomputed from the rows of every resample
    (one pass per replicate, every metric evaluated on the same contexts so that shared work is done
    once). Fills ``out``; returns the seconds spent per metric."""
    from tqdm.auto import tqdm

    from harness.metrics.base import Context, MetricSkipped

    specs = []
    for r in rows:
        neutral = r.spec.info.neutral_args
        specs.append(replace(r.spec, args={**r.spec.args, **neutral}) if neutral else r.spec)
    na = len(ca)
    pool = pooled(ca, cb)
    fixed = _contexts(ca, cb, ref, test, emb, seed_a, seed_b)
    spent = {r.metric: 0.0 for r in rows}
    resamples = len(draws.perms)

    def evaluate(ctxs, i, kind):
        for r, spec in zip(rows, specs):
            t0 = time.perf_counter()
            try:
                va = spec(ctxs.a).value
                vb = spec(ctxs.b).value
            except MetricSkipped as e:
                skipped.setdefault(r.metric, str(e))
                continue
            finally:
                spent[r.metric] += time.perf_counter() - t0
            perm, half_a, half_b = out[r.metric]
            if kind == "perm":
                perm[i] = vb - va
            else:
                half_a[i], half_b[i] = va, vb

    with tqdm(total=2 * resamples, desc="compare: recomputing", unit="replicate", disable=not progress) as bar:
        for i, idx in enumerate(draws.perms):
            pa, pb = take(pool, idx[:na], ca.name), take(pool, idx[na:], cb.name)
            ctxs = _Ctxs(Context(pa, seed_a, emb, reference=fixed.ref, test=fixed.test),
                         Context(pb, seed_b, emb, reference=fixed.ref, test=fixed.test), fixed.ref, fixed.test)
            evaluate(ctxs, i, "perm")
            bar.update(1)
        for i, (ha, hb, hr, ht) in enumerate(draws.halves):
            evaluate(_contexts(take(ca, ha), take(cb, hb), take(ref, hr) if ref is not None else None,
                               take(test, ht) if test is not None else None, emb, seed_a, seed_b), i, "half")
            bar.update(1)
    return spent


def _summarise(r: _Row, perm, half_a, half_b, skipped: dict, resamples: int) -> None:
    """p-value, interval and effect of one set-level metric from its permutation and half-sample values
    (for an approximate resampler, the p-value and the size rescaling use its own observed values)."""
    import numpy as np

    diff = r.b - r.a
    sa, sb = r.observed_stat if r.observed_stat is not None else (r.a, r.b)
    p, used = permutation_pvalue(sb - sa, perm)
    va, vb = half_a, half_b
    ok = np.isfinite(va) & np.isfinite(vb)
    d = (vb - va)[ok]
    res = {"diff": diff, "p": p, "resamples": used, "half_samples": int(ok.sum()),
           "interval": "half-sampling, difference ± 1.96 SD"}
    if ok.sum() >= max(10, int(0.8 * resamples)):
        scale = half_sample_scale(sa, sb, va[ok], vb[ok]) if _size_dependent(r) else 1.0
        sd = float(d.std(ddof=1)) * scale
        res["ci"] = [diff - Z95 * sd, diff + Z95 * sd]
        res["ci_percentile"] = [float(diff + scale * x) for x in np.quantile(d - d.mean(), [0.025, 0.975])]
        pooled_sd = scale * math.sqrt((va[ok].var(ddof=1) + vb[ok].var(ddof=1)) / 2)
        res["effect"] = diff / pooled_sd if pooled_sd > 0 else (0.0 if diff == 0 else None)
        res["effect_kind"] = "difference / pooled half-sample SD"
        res["half_sample_sd"] = sd
        res["half_sample_scale"] = scale
    else:
        res["ci"] = None
        r.notes.append(f"no interval: the metric could not be computed on {resamples - int(ok.sum())} of "
                       f"{resamples} half-samples ({skipped.get(r.metric, 'skipped')})")
    if used < len(perm):
        r.notes.append(f"{len(perm) - used} permutation(s) skipped ({skipped.get(r.metric, '')})")
    r.result = res


def _size_dependent(r: _Row) -> bool:
    return bool(r.spec.info.size_dependent)


def half_sample_scale(a: float, b: float, half_a, half_b) -> float:
    """How much larger the spread is at n rows than at n/2 for a size-dependent metric: the ratio of the
    full-size level to the mean half-size level, (|a| + |b|) / (|mean a*| + |mean b*|), clipped to
    [0.5, 2] (a constant coefficient of variation between n/2 and n). Vocabulary size, entropy and Vendi
    grow with n, so their half-samples are less spread in absolute terms. Measured on disjoint 200-row
    samples of CLINC150 ChatGPT paraphrases (half-sample SD of B - A over the true SD, 12 pairs x 100
    half-samples): vocabulary size 0.57 unrescaled / 0.91 rescaled, near-duplicate rate 0.67 / 1.31,
    distinct-2 1.00 / 0.91, entropy-2 0.96 / 1.03, compression ratio 0.96 / 1.05 (MATTR, not
    size-dependent: 1.18). ``tests/integration/analysis/test_compare.py`` keeps a slow calibration test.

    >>> round(half_sample_scale(750.0, 700.0, [500.0, 510.0], [470.0, 480.0]), 4)  # 1450 / 980
    1.4796
    """
    import numpy as np

    lev_half = abs(float(np.mean(half_a))) + abs(float(np.mean(half_b)))
    lev_full = abs(a) + abs(b)
    if lev_half <= 0 or lev_full <= 0 or not math.isfinite(lev_full / lev_half):
        return 1.0
    return min(2.0, max(0.5, lev_full / lev_half))


def _verdict(hib, diff, q) -> str:
    if hib is None:
        return "·"
    if q is None or math.isnan(q) or q >= ALPHA or diff == 0:
        return "no significant difference"
    better_b = (diff > 0) == bool(hib)
    return "B better" if better_b else "A better"


def _finish(r: _Row) -> dict:
    res = r.result
    q = res.get("q")
    return {"metric": r.metric, "higher_is_better": r.hib, "a": r.a, "b": r.b,
            "stored": list(r.stored), "diff": res.get("diff", r.b - r.a), "ci": res.get("ci"), "p": res.get("p"), "q": q,
            "effect": res.get("effect"), "effect_kind": res.get("effect_kind"),
            "verdict": _verdict(r.hib, res.get("diff", r.b - r.a), q), "scheme": r.scheme,
            "resamples": res.get("resamples"), "interval": res.get("interval"),
            "seconds_per_evaluation": round(r.seconds, 4), "notes": r.notes,
            **({"resampled": r.resampled, "resample_seconds": r.resample_seconds} if r.resampled else {}),
            **{k: res[k] for k in ("cliffs_delta", "mcnemar", "half_samples", "ci_percentile", "half_sample_sd",
                                   "half_sample_scale") if k in res}}


# ----------------------------------------------------------------------------- corpora in memory

def compare_corpora(ca, cb, ref=None, test=None, metrics: list[str] | None = None,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = 0, embedder=None, fast: bool = True,
                    progress: bool = False, log=None, skip_recomputed: bool = False, extend: bool = True) -> dict:
    """:func:`compare` on two corpora held in memory, against a shared reference (and test split), with
    the metrics' default arguments: the same observed values, schemes, p-values, q-values and verdicts,
    without result folders (the calibration check, the bench and tests use it). ``metrics``: names,
    groups or globs (default: every light metric that is not opt-in); metrics that do not apply are
    left out (``not_compared``). ``skip_recomputed``: leave out set-level metrics that have no declared
    resampler (they would be recomputed from the rows of every resample)."""
    from harness import metrics as registry
    from harness.metrics.base import MetricSkipped

    log = log or (lambda msg: None)
    specs = registry.select(metrics)
    if metrics is None:
        specs = [s for s in specs if s.info.cost == "light" and not s.info.opt_in]
    not_compared: list[dict] = []
    rows: list[_Row] = []
    for spec in specs:
        info = spec.info
        use = _uses(info)
        why = ("needs the causal LM" if use["lm"] else "no per-row form (resample='none')" if info.resample == "none"
               else "utility (test-rows): compare it from result folders" if info.resample == "test-rows"
               else "needs a reference" if use["ref"] and ref is None else "needs a test split" if use["test"] and test is None
               else "needs embeddings" if use["emb"] and embedder is None
               else "no declared resampler" if skip_recomputed and info.resample == "set" and resampler_of(info) is None
               else None)
        if why:
            not_compared.append({"metric": spec.name, "reason": why})
            continue
        rows.append(_Row(spec.name, spec, info.higher_is_better))
    emb = None
    if embedder is not None and any(_uses(r.spec.info)["emb"] for r in rows):
        texts = list(ca.texts) + list(cb.texts) + (list(ref.texts) if ref is not None else []) + \
            (list(test.texts) if test is not None else [])
        emb = embedder if isinstance(embedder, VectorTable) else VectorTable(embedder, texts)
    resampling = None
    with _one_blas_thread():
        ctx = _contexts(ca, cb, ref, test, emb, seed, seed)
        kept, row_pairs = [], []
        for r in rows:
            try:
                sa = r.spec(ctx.a)
                t0 = time.perf_counter()
                sb = r.spec(ctx.b)
                r.seconds = time.perf_counter() - t0
            except MetricSkipped as e:
                not_compared.append({"metric": r.metric, "reason": f"skipped: {e}"})
                continue
            r.a, r.b = float(sa.value), float(sb.value)
            if not (math.isfinite(r.a) and math.isfinite(r.b)):
                not_compared.append({"metric": r.metric, "reason": "not finite"})
                continue
            xa, xb = row_values(r.metric, ctx.a, sa), row_values(r.metric, ctx.b, sb)
            if xa is not None and xb is not None:
                r.scheme = "rows"
                row_pairs.append((r, xa, xb))
            kept.append(r)
        for (r, _, _), result in zip(row_pairs, row_schemes([(xa, xb) for _, xa, xb in row_pairs],
                                                            max(resamples, ROW_PERMUTATIONS), seed)):
            r.result = result
        rows = kept
        heavy = [r for r in rows if r.scheme == "recompute"]
        if heavy:
            resampling = _resample_set_metrics(heavy, ca, cb, ref, test, emb, seed, seed, resamples, seed, progress,
                                               log, fast=fast, extend=extend)
    _bh_q(rows)
    return {"a": {"name": ca.name, "rows": len(ca)}, "b": {"name": cb.name, "rows": len(cb)},
            "reference": _corpus_info(ref, None), "test": _corpus_info(test, None), "resamples": resamples,
            "seed": seed, "alpha": ALPHA, "metrics": [_finish(r) for r in rows], "not_compared": not_compared,
            "resampling": resampling}
