"""synthbench: evaluation harness for synthetic text datasets.

The library face (each imported on first use, so ``import harness`` does no work: no model loads, no
directories are created, no numpy)::

    import harness
    run = harness.evaluate({"gpt": gpt_rows, "human": human_frame}, reference="real.jsonl")
    run.to_pandas()          # one row per (dataset, metric): value, interval, direction, status
    harness.metrics()        # the metric catalogue as a DataFrame

:func:`evaluate`, :func:`load`, :func:`run_suite` and :func:`compare` live in :mod:`harness.api`;
``harness.metrics`` is both the package of metrics and, called, the catalogue.
"""

__version__ = "0.1.0"

__all__ = ["evaluate", "load", "run_suite", "compare", "metrics", "Run", "Corpus", "Result", "UserError",
           "__version__"]

_API = {"evaluate": "harness.api", "load": "harness.api", "run_suite": "harness.api", "compare": "harness.api",
        "Run": "harness.api", "Corpus": "harness.types", "Result": "harness.types", "Score": "harness.types",
        "UserError": "harness.errors"}


def __getattr__(name):
    import importlib

    if name == "metrics":
        return importlib.import_module("harness.metrics")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
