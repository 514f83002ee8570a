"""The metric registry: names map to ``"module:function"`` strings plus fixed arguments.

Adding a metric touches one module, one line here and one test. Modules are imported only
when a metric is looked up, so ``import harness`` and ``synthbench --help`` stay fast.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass

REGISTRY: dict[str, tuple[str, dict]] = {
    # lexical diversity
    "lexical/distinct-1": ("harness.metrics.lexical:distinct_n", {"n": 1}),
    "lexical/distinct-2": ("harness.metrics.lexical:distinct_n", {"n": 2}),
    "lexical/distinct-3": ("harness.metrics.lexical:distinct_n", {"n": 3}),
    "lexical/distinct-4": ("harness.metrics.lexical:distinct_n", {"n": 4}),
    "lexical/entropy-1": ("harness.metrics.lexical:ngram_entropy", {"n": 1}),
    "lexical/entropy-2": ("harness.metrics.lexical:ngram_entropy", {"n": 2}),
    "lexical/entropy-3": ("harness.metrics.lexical:ngram_entropy", {"n": 3}),
    "lexical/compression-ratio": ("harness.metrics.lexical:compression_ratio", {}),
    "lexical/mattr": ("harness.metrics.lexical:mattr", {"window": 50}),
    "lexical/vocab-size": ("harness.metrics.lexical:vocab_size", {}),
    "length/mean-words": ("harness.metrics.lexical:length_mean", {}),
    "length/std-words": ("harness.metrics.lexical:length_std", {}),
    # duplicates
    "dup/exact-rate": ("harness.metrics.duplicates:exact_duplicate_rate", {}),
    "dup/near-rate": ("harness.metrics.duplicates:near_duplicate_rate",
                      {"threshold": 0.8, "shingle": 5, "num_perm": 128}),
    # semantic diversity
    "semantic/pairwise-cosine-distance": ("harness.metrics.semantic:mean_pairwise_cosine_distance", {}),
}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    target: str
    args: dict

    @property
    def fn(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def info(self):
        return self.fn.info

    def __call__(self, ctx):
        return self.fn(ctx, **self.args)


def get(name: str) -> MetricSpec:
    target, args = REGISTRY[name]
    return MetricSpec(name, target, dict(args))


def names() -> list[str]:
    return list(REGISTRY)


def select(patterns: list[str] | None) -> list[MetricSpec]:
    """Expand names, groups ('lexical') and globs ('lexical/distinct-*') into specs, registry order."""
    from ..errors import UserError

    if not patterns:
        return [get(n) for n in REGISTRY]
    chosen: list[str] = []
    for pat in patterns:
        pat = pat.strip()
        if not pat:
            continue
        hits = [n for n in REGISTRY if n == pat or n.split("/")[0] == pat or fnmatch.fnmatch(n, pat)]
        if not hits:
            groups = sorted({n.split("/")[0] for n in REGISTRY})
            raise UserError(f"--metrics: no metric or group named '{pat}'",
                            f"run 'synthbench metrics' for the list (groups: {', '.join(groups)})")
        chosen += [h for h in hits if h not in chosen]
    return [get(n) for n in REGISTRY if n in chosen]
