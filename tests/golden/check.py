"""Compare recomputed golden values with the stored ones (``values.json``), metric by metric."""

from __future__ import annotations

import math


def problems(stored: dict, fresh: dict, infos: dict) -> list[str]:
    """One line per disagreement between ``stored`` and ``fresh`` ({metric: {"version", "values"}}).

    A value that moved while the declared version stayed the same is the failure this exists for: the
    metric's code changed what it computes, so every stored record of it elsewhere is now wrong and must
    be made stale by a version bump. ``infos``: {metric: MetricInfo} for the tolerance and the version.
    """
    out = []
    for m in sorted(set(stored) | set(fresh)):
        if m not in fresh:
            out.append(f"{m}: stored but no longer computed on the golden corpus (removed, or it now skips: "
                       "regenerate with python -m tests.golden.golden if that is intended)")
            continue
        info = infos.get(m)
        version = info.version if info is not None else fresh[m]["version"]
        if m not in stored:
            out.append(f"{m}: no golden value yet: run python -m tests.golden.golden and commit values.json")
            continue
        if stored[m]["version"] != version:
            out.append(f"{m}: version {stored[m]['version']} stored, {version} declared: regenerate the golden "
                       "values (python -m tests.golden.golden) in the commit that bumps it")
            continue
        tol = info.tolerance if info is not None else 0.0
        for ds in sorted(set(stored[m]["values"]) | set(fresh[m]["values"])):
            a, b = stored[m]["values"].get(ds), fresh[m]["values"].get(ds)
            if a is None or b is None:
                out.append(f"{m} on {ds}: {'missing now' if b is None else 'new'} (stored {a}, now {b})")
            elif not (a == b or (tol > 0 and math.isclose(a, b, rel_tol=tol, abs_tol=tol))
                      or (math.isnan(a) and math.isnan(b))):
                out.append(f"{m} on {ds}: {a!r} stored, {b!r} now, with version {version} unchanged "
                           f"(tolerance {tol:g}): bump its version in its @metric(...) and say in the commit why "
                           "the value moved, then regenerate (python -m tests.golden.golden)")
    return out
