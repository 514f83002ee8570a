"""Committed reports reproduce (issue #24): each committed suite, re-run by the landed code into a temporary
folder, gives every committed record again: the same (dataset, metric) pairs, none missing and none extra,
each value and interval exact or within the metric's declared tolerance (and, for a value computed from a
model's vectors, within the cross-CPU allowance below). Slow (minutes per suite): run by ``make test-all``.

``reports/demo`` keeps no raw results (``make demo`` computes on a fresh clone): its rendered report.md,
a pure function of the records, is compared instead (text exact, each number to its last printed digit:
see :func:`report_differences`).
"""

from __future__ import annotations

import json
import math

import pytest

from harness import metrics as registry
from harness.cli import main
from tests.conftest import ROOT

SUITES = sorted(p for p in (ROOT / "suites").glob("*.yaml"))


def _committed():
    from harness.data.suite import load_suite

    out = []
    for p in SUITES:
        name = load_suite(p).name
        if (ROOT / "reports" / name / "results.jsonl").exists() or name == "demo":
            out.append(pytest.param(p, name, id=name))
    return out


def _records(path):
    return {(d["dataset"], d["metric"]): d for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())
            if d.get("status") != "failed"}


def _portable(text: str) -> str:
    """A report with the checkout's and the data root's absolute paths cut (they name the machine)."""
    import re

    return re.sub(r"/[^\s|()`]*?/(suites|shared/data)/", r"<\1>/", text)


_NUMBER = r"[-+−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def report_differences(committed: str, fresh: str) -> list[str]:
    """Where two rendered reports differ, beyond a number's last printed digit. The text between numbers
    must be the same; a number may move by one unit of its last printed digit, which is what a value
    inside its declared tolerance does when it sits on a rounding boundary (perclass/vendi 15.4204990
    prints 15.420 on one machine and, 1e-7 relative away, 15.421 on another)."""
    import re

    def split(text):
        return re.split(f"({_NUMBER})", text)

    a, b = split(committed), split(fresh)
    if len(a) != len(b):
        return [f"the reports differ in structure ({len(a) // 2} numbers committed, {len(b) // 2} now)"]
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x == y:
            continue
        if i % 2 == 0:
            out.append(f"text differs: {x[-60:]!r} vs {y[-60:]!r}")
            continue
        digits = len(x.split("e")[0].split(".")[1]) if "." in x.split("e")[0] else 0
        if "e" in x or "e" in y or digits != (len(y.split(".")[1]) if "." in y else 0):
            out.append(f"number differs: {x} vs {y}")
            continue
        fx, fy = (float(v.replace("−", "-")) for v in (x, y))
        if abs(fx - fy) > 1.5 * 10 ** -digits:
            out.append(f"number differs: {x} vs {y}")
    return out


def test_report_differences_allow_the_last_digit_and_nothing_else():
    base = "| `perclass/vendi` | ↑ | 15.420 | **0.2916** [0.1, 0.2] |"
    assert report_differences(base, base.replace("15.420", "15.421")) == []
    assert report_differences(base, base.replace("15.420", "15.422"))
    assert report_differences(base, base.replace("15.420", "15.42"))  # another precision is not a rounding flip
    assert report_differences(base, base.replace("**0.2916**", "0.2916"))
    assert report_differences(base, base + " extra")


#: A committed folder may hold records computed on another CPU (a rerun reuses what still matches), and a
#: record does not say which. Across CPUs, glibc's libm and OpenBLAS pick other kernels: a value computed
#: from the rows alone may move in its last bits (CROSS_MACHINE_REL, as the golden check allows), and one
#: computed from a model's vectors (the embedder or the causal LM, named in its signature) moves more:
#: measured between a Zen 3 EPYC without and one with AVX512, utility/minilm-lr/accuracy by one test row of
#: 759 (a twentieth of its interval), MAUVE by 6e-5, Vendi by 1e-8 relative. Such a value must stay within
#: MODEL_HALF_WIDTHS of its committed interval's half-width, or MODEL_REL relative where it has no interval.
#: A code change that moves a value is caught exactly, on fixed vectors, by the golden test (make test).
CROSS_MACHINE_REL = 1e-12
MODEL_HALF_WIDTHS = 0.25
MODEL_REL = 1e-3


def _model_derived(record: dict) -> bool:
    sig = record.get("signature") or {}
    return bool(sig.get("embedder")) or "lm" in (sig.get("args") or {})


def _same(a, b, tol, allow: float = 0.0):
    if a is None or b is None:
        return a is b
    return a == b or (tol > 0 and math.isclose(a, b, rel_tol=tol, abs_tol=tol)) or \
        math.isclose(a, b, rel_tol=CROSS_MACHINE_REL, abs_tol=1e-300) or abs(a - b) <= allow


def differences(committed: dict, fresh: dict) -> list[str]:
    """One line per record that differs, is missing or is extra."""
    out = [f"missing now: {k}" for k in sorted(set(committed) - set(fresh))]
    out += [f"extra now (not committed): {k}" for k in sorted(set(fresh) - set(committed))]
    for k in sorted(set(committed) & set(fresh)):
        tol = registry.info(k[1]).tolerance if registry.is_metric(k[1]) else 0.0
        a, b = committed[k], fresh[k]
        allow = 0.0
        if _model_derived(a) and a["value"] is not None:
            ci = a.get("ci")
            allow = MODEL_HALF_WIDTHS * (ci[1] - ci[0]) / 2 if ci else MODEL_REL * abs(a["value"])
        if not _same(a["value"], b["value"], tol, allow):
            out.append(f"{k}: committed {a['value']!r}, now {b['value']!r}")
        elif (a.get("ci") is None) != (b.get("ci") is None) or (
                a.get("ci") and not all(_same(x, y, tol, allow) for x, y in zip(a["ci"], b["ci"]))):
            out.append(f"{k}: interval committed {a.get('ci')}, now {b.get('ci')}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("suite,name", _committed())
def test_committed_suite_reproduces(suite, name, tmp_path):
    out = tmp_path / name
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) in (0, 1)
    committed = ROOT / "reports" / name
    if name == "demo":
        bad = report_differences(_portable((committed / "report.md").read_text(encoding="utf-8")),
                                 _portable((out / "report.md").read_text(encoding="utf-8")))
        assert not bad, f"{len(bad)} difference(s):\n" + "\n".join(bad[:40])
        return
    bad = differences(_records(committed / "results.jsonl"), _records(out / "results.jsonl"))
    assert not bad, f"{len(bad)} difference(s):\n" + "\n".join(bad[:40])


def test_differences_finds_moved_missing_and_extra_records():
    rec = lambda v, ci=None: {"value": v, "ci": ci}  # noqa: E731
    a = {("x", "lexical/distinct-1"): rec(0.5), ("x", "semantic/vendi"): rec(10.0), ("x", "dup/exact-rate"): rec(0.1)}
    b = {("x", "lexical/distinct-1"): rec(0.5000001), ("x", "semantic/vendi"): rec(10.0000000001),
         ("y", "dup/exact-rate"): rec(0.1)}
    d = differences(a, b)
    assert any("lexical/distinct-1" in x for x in d)  # exact metric: any change counts
    assert not any("semantic/vendi" in x for x in d)  # within its declared tolerance
    assert any(x.startswith("missing now") for x in d) and any(x.startswith("extra now") for x in d)
    # a model-derived value may move across CPUs by a quarter of its interval, and no further
    emb = lambda v, ci: {"value": v, "ci": ci, "signature": {"embedder": "minilm"}}  # noqa: E731
    a = {("x", "utility/minilm-lr/accuracy"): emb(0.8858, [0.86, 0.91]), ("x", "semantic/vendi"): emb(40.0, None)}
    near = {("x", "utility/minilm-lr/accuracy"): emb(0.8854, [0.8596, 0.9096]), ("x", "semantic/vendi"): emb(40.02, None)}
    far = {("x", "utility/minilm-lr/accuracy"): emb(0.8758, [0.85, 0.90]), ("x", "semantic/vendi"): emb(40.1, None)}
    assert differences(a, near) == [] and len(differences(a, far)) == 2
    assert differences({("x", "lexical/distinct-1"): rec(0.25)}, {("x", "lexical/distinct-1"): rec(0.25 * (1 + 1e-15))}) == []
