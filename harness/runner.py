"""Plan -> resolve shared needs once -> compute -> write results.

The runner knows nothing about individual metrics: it reads each metric's declared needs,
resolves them once per corpus (embeddings through the cached embedder), computes the metrics
that are not already done, and writes every finished result at once (atomically), so an
interrupted run loses at most the metric in progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .core import Corpus, Result, Signature
from .metrics import MetricSpec
from .metrics.base import Context, MetricSkipped
from .results import ResultStore


@dataclass
class RunConfig:
    seed: int = 0
    embedder: object | None = None          # EmbedderSpec
    sample_size: int | None = None
    progress: bool = True
    cache_dir: Path | None = None


@dataclass
class RunOutcome:
    results: list[Result]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, metric, reason)
    reused: int = 0
    computed: int = 0
    embed_stats: dict = field(default_factory=dict)


def signature_for(spec: MetricSpec, corpus: Corpus, reference: Corpus | None, cfg: RunConfig) -> Signature:
    info = spec.info
    uses_emb = "embeddings" in info.needs or "reference_embeddings" in info.needs
    uses_ref = "reference" in info.needs or "reference_embeddings" in info.needs
    args = dict(spec.args)
    if "texts" in info.needs or "reference" in info.needs:
        args.setdefault("tokenizer", Context.TOKENIZER)
    return Signature(
        harness=__version__,
        metric=spec.name,
        args=args,
        data={"candidate": corpus.fingerprint,
              "reference": reference.fingerprint if (uses_ref and reference is not None) else None,
              "sample": corpus.sample},
        embedder=(cfg.embedder.identity if (uses_emb and cfg.embedder is not None) else None),
        seed=cfg.seed,
    )


def applicable(spec: MetricSpec, corpus: Corpus, reference: Corpus | None) -> str | None:
    """None if the metric can run on this corpus, else the reason it cannot."""
    needs = spec.info.needs
    if "labels" in needs and corpus.labels is None:
        return "needs labels"
    if ("reference" in needs or "reference_embeddings" in needs) and reference is None:
        return "needs --reference"
    return None


def run(corpora: list[tuple[Corpus, str]], reference: Corpus | None, specs: list[MetricSpec],
        out_dir: Path, cfg: RunConfig, log: Callable[[str], None] = print, embedder=None) -> RunOutcome:
    """Evaluate every (corpus, metric) pair; ``corpora`` holds (corpus, role) with role
    'candidate' or 'reference'. ``embedder`` overrides the one built from ``cfg.embedder``
    (anything with ``embed(texts) -> array`` and an ``identity``; tests pass a fake)."""
    from tqdm.auto import tqdm

    store = ResultStore(out_dir)
    outcome = RunOutcome(results=[])
    if embedder is not None:
        cfg.embedder = embedder.spec if hasattr(embedder, "spec") else embedder
    elif cfg.embedder is not None and any("embeddings" in s.info.needs or "reference_embeddings" in s.info.needs
                                          for s in specs):
        from .backends.embed import Embedder

        embedder = Embedder(cfg.embedder, cache_dir=cfg.cache_dir, progress=cfg.progress)

    ref_ctx = Context(reference, cfg.seed, embedder) if reference is not None else None
    plan = []
    for corpus, role in corpora:
        for spec in specs:
            reason = applicable(spec, corpus, reference)
            if reason:
                outcome.skipped.append((corpus.name, spec.name, reason))
                continue
            sig = signature_for(spec, corpus, reference, cfg)
            done = store.reusable(corpus.name, spec.name, sig.key)
            if done is not None:
                outcome.results.append(done)
                outcome.reused += 1
            else:
                plan.append((corpus, role, spec, sig))
    if outcome.reused:
        log(f"reusing {outcome.reused} finished result(s) from {store.path}")

    bar = tqdm(total=len(plan), desc="metrics", unit="metric", disable=not cfg.progress or not plan)
    contexts: dict[str, Context] = {}
    for corpus, role, spec, sig in plan:
        if role == "reference" and ref_ctx is not None:
            ctx = ref_ctx
        else:
            ctx = contexts.get(corpus.name)
            if ctx is None:
                contexts.clear()  # one candidate's derived data in memory at a time
                ctx = contexts[corpus.name] = Context(corpus, cfg.seed, embedder, reference=ref_ctx)
        bar.set_postfix_str(f"{corpus.name}: {spec.name}", refresh=True)
        t0 = time.perf_counter()
        try:
            score = spec(ctx)
        except MetricSkipped as e:
            outcome.skipped.append((corpus.name, spec.name, str(e)))
            bar.update(1)
            continue
        res = Result(dataset=corpus.name, metric=spec.name, value=float(score.value),
                     ci=tuple(float(x) for x in score.ci) if score.ci is not None else None,
                     higher_is_better=spec.info.higher_is_better, signature=sig, role=role,
                     details=score.details, seconds=time.perf_counter() - t0)
        store.put(res)
        store.flush()
        outcome.results.append(res)
        outcome.computed += 1
        bar.update(1)
    bar.close()
    if embedder is not None and hasattr(embedder, "stats"):
        outcome.embed_stats = dict(embedder.stats)
    order = {(c.name): i for i, (c, _) in enumerate(corpora)}
    mindex = {s.name: i for i, s in enumerate(specs)}
    outcome.results.sort(key=lambda r: (order.get(r.dataset, 1e9), mindex.get(r.metric, 1e9)))
    return outcome
