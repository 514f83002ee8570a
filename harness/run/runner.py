"""Plan -> resolve shared needs once -> compute -> write results.

The runner knows nothing about individual metrics: it reads each metric's declared needs,
resolves them once per corpus (embeddings through the cached embedder), computes the metrics
that are not already done, and writes every finished result at once (atomically), so an
interrupted run loses at most the metric in progress.

Sampling lives here too: with ``sample_size`` every corpus larger than N is evaluated on a
seeded sample of N rows; with ``repeats`` R > 1, metrics whose value moves with n are computed
on R independent samples and reported as their mean with a t-interval.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import __version__
from harness.errors import UserError
from harness.metrics import MetricSpec
from harness.metrics.base import Context, MetricSkipped
from harness.resources import providers
from harness.run.store import MemoryStore, ResultStore, withhold_text
from harness.types import Corpus, Result, Score, Signature


@dataclass
class RunConfig:
    seed: int = 0
    embedder: object | None = None          # EmbedderSpec (or a test double with .identity)
    sample_size: int | None = None
    repeats: int = 1
    progress: bool = True
    cache_dir: Path | None = None
    lm: object | None = None                # LMSpec for the fluency metrics (or a ready PerplexityScorer)
    judge: object | None = None             # JudgeSpec for the judge/ metrics (or a ready Judge)
    quote_text: bool = True                 # False: dataset text in result details is withheld (licences)
    engine: object | None = None            # harness.resources.engines.RayEngine: embeddings computed on a Ray cluster
    resources: dict = field(default_factory=dict)  # ready resources by need (e.g. "lm_eval": the LM-utility bridge)
    label_mismatch: dict = field(default_factory=dict)  # candidate name -> why its labels cannot be compared
    precision: str = "fp32"                 # requested compute precision of the models (resources/precision.py)


@dataclass
class RunOutcome:
    results: list[Result]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, metric, reason)
    failed: list[tuple[str, str, str]] = field(default_factory=list)   # (dataset, metric, error) raised
    reused: int = 0
    computed: int = 0
    embed_stats: dict = field(default_factory=dict)
    evaluated: dict[str, Corpus] = field(default_factory=dict)  # name -> the (sampled) corpus metrics saw
    store: object | None = None  # where the records went (harness.run.store)


def sample_seed(seed: int, repeat: int) -> int:
    """The sampling seed of repeat r (r = 0 is the primary sample every metric sees)."""
    return seed + 7919 * repeat


def primary(corpus: Corpus, cfg: RunConfig) -> Corpus:
    """The corpus as every metric sees it: the seeded sample when it is larger than sample_size."""
    if cfg.sample_size and len(corpus) > cfg.sample_size:
        return corpus.subsample(cfg.sample_size, sample_seed(cfg.seed, 0))
    return corpus


def _repeated(spec: MetricSpec, full: Corpus, cfg: RunConfig) -> bool:
    return bool(spec.info.size_dependent and cfg.repeats > 1 and cfg.sample_size
                and len(full) > cfg.sample_size)


def signature_for(spec: MetricSpec, corpus: Corpus, reference: Corpus | None, cfg: RunConfig,
                  full: Corpus | None = None, test: Corpus | None = None) -> Signature:
    info = spec.info
    uses_emb = "embeddings" in info.needs or "reference_embeddings" in info.needs
    uses_ref = "reference" in info.needs or "reference_embeddings" in info.needs
    uses_test = "test" in info.needs
    args = dict(spec.args)
    if "texts" in info.needs or "reference" in info.needs:
        args.setdefault("tokenizer", Context.TOKENIZER)
    if full is not None and _repeated(spec, full, cfg):
        args["repeats"] = cfg.repeats
    if "lm" in info.needs and cfg.lm is not None:  # a different causal LM never reuses a result
        args["lm"] = getattr(cfg.lm, "identity", str(cfg.lm))
    if "judge" in info.needs and cfg.judge is not None:  # another judge model or rubric never reuses a result
        from harness.metrics.direct.judge import judge_signature

        args["judge"] = judge_signature(cfg.judge, spec.args, reference)
    return Signature(
        harness=__version__,
        metric=spec.name,
        args=args,
        data={"candidate": corpus.fingerprint,
              "reference": reference.fingerprint if (uses_ref and reference is not None) else None,
              "sample": corpus.sample,
              **({"test": test.fingerprint} if (uses_test and test is not None) else {})},
        embedder=(getattr(cfg.embedder, "identity", None) if (uses_emb and cfg.embedder is not None) else None),
        seed=cfg.seed,
        version=info.version,
    )


REFERENCE_ITSELF = "compares a dataset with the reference"


def applicable(spec: MetricSpec, corpus: Corpus, reference: Corpus | None, role: str = "candidate",
               test: Corpus | None = None, resources: dict | None = None) -> str | None:
    """None if the metric can run on this corpus, else the reason it cannot."""
    needs = spec.info.needs
    if "lm_eval" in needs and not (resources or {}).get("lm_eval"):
        return "needs 'synthbench lm-utility' (a fine-tuning and lm-eval bridge)"
    if role == "reference" and ("reference" in needs or "reference_embeddings" in needs):
        return REFERENCE_ITSELF
    if "labels" in needs and corpus.labels is None:
        return "needs labels"
    if "test" in needs:
        if test is None:
            return "needs --test (a real test split)"
        if "labels" in needs and test.labels is None:
            return "needs a labelled --test split"
    if "reference" in needs or "reference_embeddings" in needs:
        if reference is None:
            return "needs --reference"
        if role == "reference":
            return REFERENCE_ITSELF
        if "labels" in needs and reference.labels is None:
            return "needs a labelled reference"
    return None


def combine_repeats(scores: list[Score], sizes: tuple[int, int], bounds=(-math.inf, math.inf)) -> Score:
    """Mean over R samples of N rows, with a t-interval of that mean (clipped to the metric's range);
    the first sample's details."""
    import numpy as np

    from harness.stats import t_half_width

    vals = np.array([s.value for s in scores], dtype=float)
    mean = float(vals.mean())
    half = t_half_width(vals)
    details = dict(scores[0].details)
    details["repeats"] = {"values": [float(v) for v in vals], "sample_size": sizes[0], "of": sizes[1],
                          "interval": "t-interval of the mean over repeated seeded samples"}
    # row flags come from the primary sample only (the extra samples hold other rows)
    return Score(mean, (max(bounds[0], mean - half), min(bounds[1], mean + half)), details, rows=scores[0].rows)


def run(corpora: list[tuple[Corpus, str]], reference: Corpus | None, specs: list[MetricSpec],
        out_dir, cfg: RunConfig, log: Callable[[str], None] = print, embedder=None,
        test: Corpus | None = None) -> RunOutcome:
    """Evaluate every (corpus, metric) pair and hand each result to a sink.

    ``out_dir`` is the sink: an output folder (its :class:`~harness.run.store.ResultStore`: records are
    reused on rerun and written as they finish), a store object, or None (a
    :class:`~harness.run.store.MemoryStore`: nothing is written). The runner itself does no other file
    I/O. ``corpora`` holds (corpus, role) with role 'candidate' or 'reference', as loaded (the runner
    samples them). ``embedder`` overrides the one built from ``cfg.embedder`` (anything with
    ``embed(texts) -> array`` and an ``identity``; tests pass a fake). ``test`` is the real
    held-out split for trained-model metrics; it is never sampled.
    """
    from tqdm.auto import tqdm

    store = (out_dir if isinstance(out_dir, (ResultStore, MemoryStore)) else
             MemoryStore(quote_text=cfg.quote_text) if out_dir is None else ResultStore(out_dir, quote_text=cfg.quote_text))
    outcome = RunOutcome(results=[])
    for note in getattr(store, "notes", []):
        log(f"warning: {note}")
    if embedder is not None:
        cfg.embedder = embedder.spec if hasattr(embedder, "spec") else embedder
    # the shared resources the planned metrics need, each built once (harness/resources/providers.py)
    provided = providers.resolve(specs, cfg, log, given={"embedder": embedder})
    embedder, lm_scorer, judge = (provided.get(k) for k in ("embedder", "lm_scorer", "judge"))

    reference = primary(reference, cfg) if reference is not None else None
    shared = cfg.resources  # ready resources by need, the same for every context
    test_ctx = (Context(test, cfg.seed, embedder, role="test", lm_scorer=lm_scorer, judge=judge, resources=shared)
                if test is not None else None)
    ref_ctx = (Context(reference, cfg.seed, embedder, test=test_ctx, role="reference", lm_scorer=lm_scorer,
                       judge=judge, resources=shared) if reference is not None else None)
    plan = []
    for full, role in corpora:
        corpus = reference if (role == "reference" and reference is not None) else primary(full, cfg)
        outcome.evaluated[corpus.name] = corpus
        for spec in specs:
            reason = applicable(spec, corpus, reference, role, test, cfg.resources)
            if reason is None and "labels" in spec.info.needs and corpus.name in cfg.label_mismatch:
                reason = cfg.label_mismatch[corpus.name]
            if reason == REFERENCE_ITSELF:
                continue  # a comparison with the reference has no row for the reference itself
            if reason:
                outcome.skipped.append((corpus.name, spec.name, reason))
                continue
            sig = signature_for(spec, corpus, reference, cfg, full=full, test=test)
            done = store.reusable(corpus.name, spec.name, sig.key)
            if done is not None and not store.rows_intact(done):
                done = None  # its row flags (rows/<key>.json) were lost: compute it again
            if done is not None:
                if not cfg.quote_text:  # a record reused from a run that quoted text
                    done = replace(done, details=withhold_text(done.details))
                outcome.results.append(done)
                outcome.reused += 1
            else:
                plan.append((full, corpus, role, spec, sig))
    if outcome.reused:
        log(f"reusing {outcome.reused} finished result(s) from {store.path or 'memory'}")

    if cfg.engine is not None and hasattr(embedder, "warm"):  # one cluster job for every text to embed
        texts = {}
        for _full, corpus, _role, spec, _sig in plan:
            if "embeddings" in spec.info.needs:
                texts.setdefault(corpus.name, corpus.texts)
            if "reference_embeddings" in spec.info.needs and reference is not None:
                texts.setdefault(reference.name, reference.texts)
        if texts:
            embedder.warm([t for ts in texts.values() for t in ts], desc="embedding (ray)")

    bar = tqdm(total=len(plan), desc="metrics", unit="metric", disable=not cfg.progress or not plan)
    contexts: dict[tuple[str, int], Context] = {}

    def context(full: Corpus, corpus: Corpus, role: str, repeat: int) -> Context:
        if role == "reference" and repeat == 0 and ref_ctx is not None:
            return ref_ctx
        key = (corpus.name, repeat)
        if key not in contexts:
            if repeat == 0:
                contexts.clear()  # one dataset's derived data in memory at a time
                sample = corpus
            else:
                sample = full.subsample(cfg.sample_size, sample_seed(cfg.seed, repeat))
            contexts[key] = Context(sample, cfg.seed, embedder, reference=ref_ctx if role != "reference" else None,
                                    test=test_ctx, role=role, lm_scorer=lm_scorer, judge=judge, resources=shared)
        return contexts[key]

    warned: list[tuple[str, str, str]] = []  # (dataset, metric, warning): logged once per cause at the end
    stage = {"name": None, "t0": 0.0, "n": 0}  # without bars: one line per dataset with its elapsed time

    stages = not cfg.progress and getattr(log, "stages", False)  # a log that asks for them (the CLI's)

    def end_stage():
        if stages and stage["n"]:
            log(f"{stage['name']}: {stage['n']} metric(s) in {time.perf_counter() - stage['t0']:.1f} s")

    for full, corpus, role, spec, sig in plan:
        bar.set_postfix_str(f"{corpus.name}: {spec.name}", refresh=True)
        if corpus.name != stage["name"]:
            end_stage()
            stage.update(name=corpus.name, t0=time.perf_counter(), n=0)
        t0 = time.perf_counter()
        try:
            score = spec(context(full, corpus, role, 0))
            if _repeated(spec, full, cfg):
                more = [spec(context(full, corpus, role, r)) for r in range(1, cfg.repeats)]
                score = combine_repeats([score] + more, (cfg.sample_size, len(full)), spec.info.bounds)
        except MetricSkipped as e:
            outcome.skipped.append((corpus.name, spec.name, str(e)))
            bar.update(1)
            continue
        except (UserError, KeyboardInterrupt, MemoryError):
            providers.finish(provided, cfg, log, report=False)  # e.g. stops the local judge server
            raise  # the user must act (or asked to stop): finished results are already on disk
        except Exception as e:  # one metric failing on one dataset must not sink the run
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}".rstrip(": ")
            log(f"error: {corpus.name} {spec.name} failed ({reason}); the run goes on, the failure is recorded")
            if os.environ.get("SYNTHBENCH_DEBUG"):  # the traceback, for whoever debugs a metric
                import traceback

                for line in "".join(traceback.format_exception(e)).rstrip().splitlines():
                    log(line)
            outcome.failed.append((corpus.name, spec.name, reason))
            stage["n"] += 1
            store.put_failure(corpus.name, spec.name, sig, role, reason)
            store.flush()
            bar.update(1)
            continue
        warned += [(corpus.name, spec.name, w) for w in score.details.get("warnings", [])]
        # withheld at the source, so that no record, report or figure of this run can show it
        details = score.details if cfg.quote_text else withhold_text(score.details)
        if score.rows:  # row-level findings: kept beside the results, counted in the record
            details = {**details, "row_flags": store.save_rows(sig.key, spec.name, score.rows, len(corpus))}
        res = Result(dataset=corpus.name, metric=spec.name, value=float(score.value),
                     ci=tuple(float(x) for x in score.ci) if score.ci is not None else None,
                     higher_is_better=spec.info.higher_is_better, signature=sig, role=role,
                     details=details, seconds=time.perf_counter() - t0)
        store.put(res)
        store.flush()
        outcome.results.append(res)
        outcome.computed += 1
        stage["n"] += 1
        bar.update(1)
    bar.close()
    end_stage()
    if warned:  # one line per cause, across metrics and datasets (harness/report/notes.py)
        from harness.report.notes import group_warnings

        for line in group_warnings(warned, [c.name for c, _ in corpora]):
            log(f"warning: {line}")
    if not cfg.quote_text and store.records:
        store.flush()  # also withholds the text of records reused from a run that quoted it
    if embedder is not None and hasattr(embedder, "stats"):
        outcome.embed_stats = dict(embedder.stats)
    providers.finish(provided, cfg, log)
    order = {c.name: i for i, (c, _) in enumerate(corpora)}
    mindex = {s.name: i for i, s in enumerate(specs)}
    outcome.results.sort(key=lambda r: (order.get(r.dataset, 1e9), mindex.get(r.metric, 1e9)))
    store.write_flags(outcome.results, outcome.evaluated, keep_keys={d.get("signature_key") for d in
                      store.records.values()}, log=log)
    outcome.store = store
    return outcome
