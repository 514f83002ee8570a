"""Metrics: each declared once beside its function (:mod:`harness.metrics.base`), found by the registry
(:mod:`harness.metrics.registry`). ``direct/`` holds the scores computed on the data itself, ``indirect/``
those of models trained on it. Nothing is imported until a metric is looked up."""

from harness.metrics.registry import (  # noqa: F401  (the registry's face)
    MetricSpec,
    declarations,
    get,
    groups,
    info,
    is_metric,
    is_opt_in,
    markdown_table,
    names,
    register,
    registered,
    select,
    unregister,
)


def catalogue(as_frame: bool = True):
    """Every metric's declaration as a table: a pandas DataFrame (``as_frame=False``: a list of dicts) with
    ``name``, ``group``, ``dimension``, ``higher_is_better``, ``range``, ``bounds``, ``size_dependent``,
    ``needs``, ``opt_in``, ``cost``, ``version``, ``seeded``, ``resample``, ``args``, ``summary``, ``function``."""
    rows = [d.as_record() for d in declarations().values()]
    if not as_frame:
        return rows
    import pandas as pd

    return pd.DataFrame(rows)


class _CallablePackage(type(__import__("sys"))):
    """``harness.metrics()`` is the catalogue while ``harness.metrics`` stays the package of metric modules."""

    def __call__(self, as_frame: bool = True):
        return catalogue(as_frame)


__import__("sys").modules[__name__].__class__ = _CallablePackage
