"""Providers: how the runner obtains the shared resource that a metric's need asks for.

One entry per resource (the embedder for ``embeddings``/``reference_embeddings``, the causal-LM scorer
for ``lm``, the LLM judge for ``judge``): what it serves, how it is built from the run's configuration,
what it reports when the run ends, and how it is closed. The runner builds a resource only when a
planned metric needs it, and each is built once per run; adding a resource is one entry here and the
module that implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str                                   # the Context attribute it fills
    needs: frozenset
    build: Callable                             # (cfg, log) -> resource or None
    report: Callable = lambda resource, log: None
    close: Callable = lambda resource, cfg: None


def _embedder(cfg, log):
    if cfg.embedder is None:
        return None
    from harness.resources.embedder import Embedder

    return Embedder(cfg.embedder, cache_dir=cfg.cache_dir, progress=cfg.progress, engine=cfg.engine)


def _lm_scorer(cfg, log):
    if cfg.lm is None:  # it loads the model only for texts not in its cache
        return None
    if hasattr(cfg.lm, "score"):
        return cfg.lm
    from harness.resources.perplexity import PerplexityScorer

    return PerplexityScorer(cfg.lm, cache_dir=cfg.cache_dir, progress=cfg.progress, engine=cfg.engine)


def _lm_report(scorer, log):
    st = getattr(scorer, "stats", None)
    if st and (st.get("scored") or st.get("from_cache")):
        log(f"perplexity: {st.get('scored', 0)} text(s) scored by the LM ({st.get('tokens', 0)} tokens, "
            f"{st.get('truncated', 0)} truncated), {st.get('from_cache', 0)} from the cache")


def _judge(cfg, log):
    if cfg.judge is None:  # the local server starts only for a request not in its cache
        return None
    if hasattr(cfg.judge, "complete"):
        return cfg.judge
    from harness.resources.judge_client import Judge

    return Judge(cfg.judge, cache_dir=cfg.cache_dir, log=log)


def _judge_report(judge, log):
    st = judge.stats
    log(f"judge: {st['requests']} request(s) sent ({st['retries']} retried, {st['failed_requests']} failed), "
        f"{st['from_cache']} answer(s) from the cache, {st['prompt_tokens']} + {st['completion_tokens']} "
        f"tokens, cost {st['cost']:.4f}")


def _judge_close(judge, cfg):
    if judge is not cfg.judge:  # a judge the caller built stays open for the caller
        judge.close()


PROVIDERS: tuple[Provider, ...] = (
    Provider("embedder", frozenset({"embeddings", "reference_embeddings"}), _embedder),
    Provider("lm_scorer", frozenset({"lm"}), _lm_scorer, report=_lm_report),
    Provider("judge", frozenset({"judge"}), _judge, report=_judge_report, close=_judge_close),
)


def resolve(specs, cfg, log, given: dict | None = None) -> dict:
    """{provider name: resource} for every provider a spec needs (``given`` ones are used as they are)."""
    given = dict(given or {})
    out = {}
    for p in PROVIDERS:
        if not any(p.needs & set(s.info.needs) for s in specs):
            continue
        out[p.name] = given[p.name] if given.get(p.name) is not None else p.build(cfg, log)
    return out


def finish(resources: dict, cfg, log, report: bool = True) -> None:
    """Report what each resource did and close it (``report=False``: only close, after an interruption)."""
    for p in PROVIDERS:
        r = resources.get(p.name)
        if r is None:
            continue
        if report:
            p.report(r, log)
        p.close(r, cfg)
