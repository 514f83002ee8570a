"""One declaration per metric: every table that describes metrics is derived from the ``@metric``
declarations, and a test fails where a derived table and the declarations disagree."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from harness.metrics.base import metric
from harness.types import Score
from tests.conftest import ROOT  # noqa: E402


def test_docs_metric_table_is_generated_from_the_declarations():
    from harness import metrics

    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert doc == metrics.markdown_table(), ("docs/metrics.md is out of date: run "
                                             "'synthbench metrics --markdown > docs/metrics.md'")


def test_every_metric_is_declared_completely():
    from harness import metrics
    from harness.metrics.base import DIMENSIONS, GROUPS

    decls = metrics.declarations()
    assert len(decls) >= 80
    for name, d in decls.items():
        assert d.summary and d.doc, name
        assert d.group in GROUPS and d.dimension in DIMENSIONS, name
        assert d.version >= 1, name
        lo, hi = d.bounds
        m = re.match(r"^\s*[\[(]\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*[\])]", d.range)
        if m:  # a range text that states numbers states the declared bounds
            assert (float(m.group(1)), float(m.group(2))) == (lo, hi), name
        fn = metrics.get(name).fn
        assert name in {x.name for x in fn.declarations}, name  # the catalogue points at the declaring function
        if d.resample == "test-rows":
            assert "test" in d.needs, name


def test_derived_tables_agree_with_declarations():
    from harness import metrics
    from harness.analysis import validity as V
    from harness.integrations import hf_evaluate
    from harness.metrics.base import CORRUPTIONS

    assert tuple(V.CORRUPTIONS) == CORRUPTIONS  # the corruptions expectations may name are the ones validate runs
    for name, d in metrics.declarations().items():
        assert V.expectations_for(name) == dict(d.expect or {})
        assert V.declared(name) == (d.expect is not None)
        for c in CORRUPTIONS:
            assert V.limit_for(name, c) == d.limits.get(c)
        assert hf_evaluate.is_opt_in(name) == d.opt_in
    assert hf_evaluate.all_groups() == metrics.groups()
    for g in metrics.groups():
        assert hf_evaluate.group_metrics(g) == [n for n in metrics.names() if n.split("/")[0] == g]
    # 'synthbench metrics' prints every declared metric, in the catalogue's order
    out = subprocess.run([sys.executable, "-m", "harness.cli", "metrics"], capture_output=True, text=True,
                         check=True).stdout
    listed = [line.split()[0] for line in out.splitlines() if "/" in line.split(" ", 1)[0]]
    assert listed == metrics.names()


def test_catalogue_frame():
    import harness
    from harness import metrics

    cat = harness.metrics()
    assert list(cat["name"]) == metrics.names()
    for col in ("name", "group", "higher_is_better", "range", "size_dependent", "needs", "opt_in", "version",
                "summary"):
        assert col in cat.columns, col
    row = cat.set_index("name").loc["dup/exact-rate"]
    assert bool(row["size_dependent"]) and row["version"] == 1 and not row["opt_in"]
    assert harness.metrics(as_frame=False)[0]["name"] == metrics.names()[0]


def test_needs_follow_from_arguments():
    from harness import metrics

    lr, tf = metrics.get("utility/minilm-lr/accuracy"), metrics.get("utility/tfidf-lr/accuracy")
    assert "embeddings" in lr.info.needs and "embeddings" not in tf.info.needs
    moved = metrics.MetricSpec(tf.name, tf.target, {**tf.args, "recipe": "minilm-lr"})  # a suite's metric_args
    assert "embeddings" in moved.info.needs


def test_a_contradictory_declaration_fails_at_import():
    from harness.metrics.base import metric

    with pytest.raises(ValueError, match="demo/x: .*expect"):
        metric("demo/x", expect={"exact-dup": "up"}, register=False)(lambda ctx: None)
    with pytest.raises(ValueError, match="unknown needs"):
        metric("demo/x", needs=("texts", "gpu"), register=False)(lambda ctx: None)
    with pytest.raises(ValueError, match="name or a list of variants"):
        metric(register=False)


@metric("test/rows", version=1, bounds=(0, math.inf), register=False)
def rows_v1(ctx):
    """Rows (version 1)."""
    return Score(float(len(ctx.texts)))


@metric("test/rows", version=2, bounds=(0, math.inf), register=False)
def rows_v2(ctx):
    """Rows (version 2)."""
    return Score(float(len(ctx.texts)))


def test_every_result_signature_carries_the_metric_version(tmp_path, fake_embedder, register_metrics):
    from harness import metrics
    from harness.run.runner import RunConfig, run
    from harness.types import Corpus

    corpus = Corpus("c", "x", "text", ("a b c", "d e f", "a b d"))
    specs = metrics.select(["lexical/distinct-1", "dup/exact-rate"])
    out = run([(corpus, "candidate")], None, specs, tmp_path / "a", RunConfig(progress=False), log=lambda m: None)
    assert out.results and all(r.signature.version == metrics.info(r.metric).version for r in out.results)

    # a version bump makes the stored record stale: it is computed again, not reused
    register_metrics(rows_v1)
    first = run([(corpus, "candidate")], None, [metrics.get("test/rows")], tmp_path / "b", RunConfig(progress=False),
                log=lambda m: None)
    again = run([(corpus, "candidate")], None, [metrics.get("test/rows")], tmp_path / "b", RunConfig(progress=False),
                log=lambda m: None)
    assert (first.computed, again.reused) == (1, 1)
    register_metrics(rows_v2)
    bumped = run([(corpus, "candidate")], None, [metrics.get("test/rows")], tmp_path / "b", RunConfig(progress=False),
                 log=lambda m: None)
    assert (bumped.computed, bumped.reused) == (1, 0) and bumped.results[0].signature.version == 2


def test_the_readme_contributing_example_is_real_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Contributing: a new metric", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    module = re.search(r"`(harness/metrics/\S+\.py)`", section).group(1)
    assert code.strip() in (ROOT / module).read_text(encoding="utf-8"), f"the README example is not in {module}"
