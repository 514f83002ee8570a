"""Shared resources the runner resolves once and hands to metrics: the embedder, the causal LM, the judge,
trainers, the lm-eval bridge, engines (local, Ray) and caches. Each imports its libraries inside functions."""
