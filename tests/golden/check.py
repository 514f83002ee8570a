"""Compare recomputed golden values with the stored ones (``values.json``), metric by metric."""

from __future__ import annotations

import math
import platform

# A metric declared bit-identical (tolerance 0) is so on one machine. On another CPU its last bits may move:
# glibc's libm (exp, log, pow) and OpenBLAS pick their kernels by the CPU's instruction set, so BLEU or a
# matrix product can round differently (measured: homogenization-bleu moved 4e-19 on 1.4e-3 between two CI
# machines). Across machines the check allows this much relative change for those metrics; on the machine
# the values were stored on it stays exact. A change of code that means something moves values far more.
CROSS_MACHINE_REL = 1e-12


def machine() -> str:
    """The CPU the values are computed on: its model name and the SIMD flags that select libm/BLAS kernels."""
    from harness.resources.precision import cpu_flags

    name = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        name = platform.processor()
    simd = sorted(f for f in cpu_flags() if f.startswith(("avx", "fma", "amx", "sse4")))
    return f"{platform.machine()} | {name} | {' '.join(simd)}"


def problems(stored: dict, fresh: dict, infos: dict, same_machine: bool = True) -> list[str]:
    """One line per disagreement between ``stored`` and ``fresh`` ({metric: {"version", "values"}}).

    A value that moved while the declared version stayed the same is the failure this exists for: the
    metric's code changed what it computes, so every stored record of it elsewhere is now wrong and must
    be made stale by a version bump. ``infos``: {metric: MetricInfo} for the tolerance and the version.
    ``same_machine``: False when the values were stored on another CPU (``CROSS_MACHINE_REL`` applies to
    the metrics declared bit-identical).
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
                      or (not same_machine and math.isclose(a, b, rel_tol=CROSS_MACHINE_REL, abs_tol=1e-300))
                      or (math.isnan(a) and math.isnan(b))):
                out.append(f"{m} on {ds}: {a!r} stored, {b!r} now, with version {version} unchanged "
                           f"(tolerance {tol:g}): bump its version in its @metric(...) and say in the commit why "
                           "the value moved, then regenerate (python -m tests.golden.golden)")
    return out
