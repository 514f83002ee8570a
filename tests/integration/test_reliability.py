"""Reliability: bad input gives one clear line (exit 2), never a traceback; caches detect damage.

The broken inputs live in tests/bad_inputs/ (small files, committed) plus a few generated here
(a 10 MB row, a nested Parquet column, labels the reference lacks). Each must exit with code 2
and print exactly one line that names the file or key and carries a fix.
"""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from tests.conftest import ROOT  # noqa: E402

BAD = ROOT / "tests" / "bad_inputs"

# file -> words the one-line error must contain (besides the file name and a fix)
EXPECTED = {
    "malformed_line.jsonl": ["line 3", "malformed JSON"],
    "array_line.jsonl": ["line 2", "expected a JSON object"],
    "truncated_last_line.jsonl": ["line 4", "malformed JSON"],
    "ragged_long.csv": ["line 3", "3 fields"],
    "ragged_short.csv": ["line 3", "1 fields"],
    "latin1.csv": ["line 2", "not valid UTF-8", "iconv"],
    "utf16.jsonl": ["UTF-16", "iconv"],
    "binary_garbage.jsonl": ["not valid UTF-8"],
    "gzip_named_jsonl.jsonl": ["gzip", "gunzip"],
    "empty.jsonl": ["empty"],
    "whitespace_only.jsonl": ["empty"],
    "header_only.csv": ["no rows"],
    "whitespace_rows.csv": ["line 2", "empty"],
    "missing_text_column.jsonl": ["no 'text' field", "sentence", "--text-field"],
    "null_text.jsonl": ["line 2", "null"],
    "number_text.jsonl": ["line 2", "int"],
    "list_text.jsonl": ["line 2", "list"],
    "empty_string_text.jsonl": ["line 2", "empty"],
    "null_label.jsonl": ["line 2", "null"],
    "dict_label.jsonl": ["line 2", "dict"],
    "missing_label_later.jsonl": ["line 2", "missing field 'label'"],
    "duplicate_columns.csv": ["duplicate column", "'text'"],
    "json_object_not_list.json": ["JSON array", "object"],
    "json_list_of_strings.json": ["item 1", "expected a JSON object"],
    "unbalanced_quote.tsv": ["malformed CSV"],
    "unknown_extension.xlsx": ["unknown format", ".xlsx"],
    "instruction_missing_output.jsonl": ["line 2", "missing field 'output'"],
    "not_parquet.parquet": ["not a readable Parquet file"],
    "suite_unknown_key.yaml": ["sample_szie", "did you mean 'sample_size'"],
    "suite_wrong_type.yaml": ["sample_size", "lots"],
    "suite_missing_file.yaml": ["candidates[0].path", "not found"],
    "suite_escapes_root.yaml": ["candidates[0].path", "leaves the suite's folder"],
    "suite_escapes_root2.yaml": ["reference.path", "leaves the data root"],
    "suite_not_mapping.yaml": ["mapping"],
    "suite_syntax.yaml": ["line 4", "not valid YAML"],
    "suite_python_tag.yaml": ["not valid YAML", "python"],
    "suite_no_candidates.yaml": ["candidates", "empty"],
    "suite_bad_name.yaml": ["'name'", "not a plain name"],
    "suite_empty.yaml": ["mapping"],
    "suite_duplicate_key.yaml": ["'candidates'", "line 5", "line 3", "given twice"],
    "suite_duplicate_nested_key.yaml": ["'path'", "line 5", "line 3", "given twice"],
}

# file -> words of the one warning it gives; such data is evaluated (exit 0), its defect counted or mended
LENIENT = {
    "lone_surrogate.jsonl": ["lone UTF-16 surrogate", "line 1", "U+FFFD"],
    "empty_rows_among_good.jsonl": ["2 of 4 rows", "line 2, line 4", "format/empty-rate", "'empty'"],
    "compressed.jsonl.gz": [],
}


def _run_cli(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _check_one_line(code, err, must, where):
    assert code == 2, (code, err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("synthbench: error: "), line
    assert "Traceback" not in err
    assert "-- fix: " in line, line
    assert where in line, line
    for word in must:
        assert word in line, (word, line)


def test_bad_input_corpus_is_complete():
    files = sorted(p.name for p in BAD.iterdir() if not p.name.startswith("."))
    assert sorted({**EXPECTED, **LENIENT}) == files
    assert len(files) + len(GENERATED) >= 30


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_messy_input_is_evaluated_with_one_warning(name, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _run_cli(["eval", str(BAD / name), "--out", str(out), "-m", "lexical/distinct-1",
                             "--no-progress"], capsys)
    assert code == 0, err
    warns = [x for x in err.splitlines() if x.startswith("warning:")]
    assert len(warns) == (1 if LENIENT[name] else 0), warns
    for w in LENIENT[name]:
        assert w in warns[0], (w, warns)
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(r["metric"] == "lexical/distinct-1" and r["value"] > 0 for r in recs)


#: an empty or null text among good rows is a finding (counted, flagged); --strict refuses it
STRICT_ONLY = {"null_text.jsonl", "empty_string_text.jsonl"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_gives_one_line_and_exit_2(name, tmp_path, capsys):
    path = BAD / name
    out = tmp_path / "out"
    if name.endswith(".yaml"):
        code, _, err = _run_cli(["run", str(path), "--out", str(out), "--no-progress"], capsys)
    else:
        code, _, err = _run_cli(["eval", str(path), "--out", str(out), "-m", "lexical/distinct-1",
                                 "--no-progress"] + (["--strict"] if name in STRICT_ONLY else []), capsys)
    _check_one_line(code, err, EXPECTED[name], name)
    assert not (out / "results.jsonl").exists()


def _ten_mb_row(tmp):
    p = tmp / "huge_row.jsonl"
    p.write_text(json.dumps({"text": "word " * 2_100_000, "label": "a"}) + "\n", encoding="utf-8")
    return p, ["line 1", "characters"]


def _nested_parquet(tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp / "nested.parquet"
    t = pa.table({"text": [{"body": "hello", "lang": "en"}, {"body": "bye", "lang": "en"}], "label": ["a", "b"]})
    pq.write_table(t, p)
    return p, ["row 1", "'text'", "dict"]


def _wrong_column_flag(tmp):
    p = tmp / "ok.jsonl"
    p.write_text('{"text": "hello", "label": "a"}\n', encoding="utf-8")
    return p, ["no field 'body'", "--text-field"]


GENERATED = {"huge_row": _ten_mb_row, "nested_parquet": _nested_parquet, "wrong_column_flag": _wrong_column_flag}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_bad_inputs(name, tmp_path, capsys):
    path, must = GENERATED[name](tmp_path)
    extra = ["--text-field", "body"] if name == "wrong_column_flag" else []
    code, _, err = _run_cli(["eval", str(path), "--out", str(tmp_path / "o"), "-m", "lexical/distinct-1",
                             "--no-progress", *extra], capsys)
    _check_one_line(code, err, must, path.name)


def test_labels_the_reference_lacks(tmp_path, capsys):
    """No label in common: label metrics are not computed (with the reason), the others are; exit 0."""
    ref = tmp_path / "ref.jsonl"
    cand = tmp_path / "cand.jsonl"
    ref.write_text("".join(json.dumps({"text": f"real text {i}", "label": ["pos", "neg"][i % 2]}) + "\n"
                           for i in range(20)), encoding="utf-8")
    cand.write_text("".join(json.dumps({"text": f"fake text {i}", "label": ["1", "0"][i % 2]}) + "\n"
                            for i in range(20)), encoding="utf-8")
    code, _, err = _run_cli(["eval", str(cand), "--reference", str(ref), "--out", str(tmp_path / "o"),
                             "-m", "surface/label-jsd,lexical/distinct-1", "--no-progress"], capsys)
    assert code == 0, err
    warn = [x for x in err.splitlines() if x.startswith("warning: cand")]
    assert len(warn) == 1 and "no label in common" in warn[0] and "0, 1" in warn[0] and "neg, pos" in warn[0]
    recs = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert {(r["dataset"], r["metric"]) for r in recs} >= {("cand", "lexical/distinct-1")}
    assert ("cand", "surface/label-jsd") not in {(r["dataset"], r["metric"]) for r in recs}
    assert any("no label in common" in x for x in err.splitlines() if x.startswith("not computed"))


def test_missing_reference_file(tmp_path, capsys):
    cand = BAD.parent / "bad_inputs" / "malformed_line.jsonl"
    code, _, err = _run_cli(["eval", str(cand), "--reference", str(tmp_path / "nope.jsonl"),
                             "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    _check_one_line(code, err, ["file not found"], "nope.jsonl")


# ----------------------------------------------------------------------------- fuzzing the loaders

def _load_or_user_error(path):
    from harness.data.load import load_corpus
    from harness.errors import UserError

    try:
        c = load_corpus(str(path))
    except UserError as e:
        line = e.line()
        assert "\n" not in line and line
        return None
    assert len(c) >= 1 and all(isinstance(t, str) and t.strip() for t in c.texts)
    return c


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_fuzz_random_bytes(fuzz_dir):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.binary(max_size=400), ext=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]))
    def check(data, ext):
        p = fuzz_dir / f"f{ext}"
        p.write_bytes(data)
        _load_or_user_error(p)

    check()


def test_fuzz_random_json(fuzz_dir):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                       max_size=3), max_leaves=8)
    rows = st.dictionaries(st.sampled_from(["text", "label", "instruction", "output", "input", "x"]), values,
                           max_size=4)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(objs=st.lists(rows | values, max_size=5), as_lines=st.booleans())
    def check(objs, as_lines):
        if as_lines:
            p = fuzz_dir / "r.jsonl"
            p.write_text("\n".join(json.dumps(o) for o in objs), encoding="utf-8")
        else:
            p = fuzz_dir / "r.json"
            p.write_text(json.dumps(objs), encoding="utf-8")
        _load_or_user_error(p)

    check()


# ----------------------------------------------------------------------------- damaged caches

def test_damaged_embedding_is_recomputed(tmp_path):
    import sqlite3

    import numpy as np

    from harness.resources.cache import VectorStore

    store = VectorStore(tmp_path / "v.sqlite")
    v = np.arange(8, dtype=np.float32)
    store.put_many([(b"k" * 16, v), (b"j" * 16, v + 1)])
    assert set(store.get_many([b"k" * 16, b"j" * 16])) == {b"k" * 16, b"j" * 16}
    store.close()
    db = sqlite3.connect(tmp_path / "v.sqlite")
    blob = bytearray(db.execute("SELECT v FROM vec WHERE h = ?", (b"k" * 16,)).fetchone()[0])
    blob[5] ^= 0xFF  # one flipped byte: same length, wrong content
    with db:
        db.execute("UPDATE vec SET v = ? WHERE h = ?", (bytes(blob), b"k" * 16))
        db.execute("UPDATE vec SET v = ? WHERE h = ?", (v.tobytes()[:12], b"j" * 16))  # truncated
    db.close()
    assert VectorStore(tmp_path / "v.sqlite").get_many([b"k" * 16, b"j" * 16]) == {}


def test_damaged_prediction_cache_is_recomputed(tmp_path, monkeypatch):
    from harness.resources import trainers as train

    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path))
    recipe = train.TfidfLR()
    tr = ["good film", "great movie", "bad film", "awful movie"] * 5
    lab = ["pos", "pos", "neg", "neg"] * 5
    te = ["good movie", "awful film"]
    train.clear_memo()
    before = dict(train.STATS)
    p1 = train.fit_predict_cached(recipe, tr, lab, te, seed=0)
    files = list((tmp_path / "models").rglob("*.json"))
    assert len(files) == 1
    train.clear_memo()
    train.fit_predict_cached(recipe, tr, lab, te, seed=0)
    assert train.STATS["disk"] == before["disk"] + 1
    def flip_a_code(b):
        rec = json.loads(b)
        rec["codes"][0] = 1 - rec["codes"][0]  # well-formed JSON, wrong content
        return json.dumps(rec).encode()

    for damage in (lambda b: b[: len(b) // 2], flip_a_code):
        files[0].write_bytes(damage(files[0].read_bytes()))
        train.clear_memo()
        fits = train.STATS["fits"]
        p2 = train.fit_predict_cached(recipe, tr, lab, te, seed=0)
        assert train.STATS["fits"] == fits + 1
        assert list(p2) == list(p1)


# ----------------------------------------------------------------------------- a metric that fails

from harness.metrics.base import metric  # noqa: E402


@metric("test/boom", needs=("texts",), higher_is_better=True, bounds=(0, 1), register=False)
def boom(ctx):
    """Fails on datasets whose name starts with 'bad' (a test double)."""
    if ctx.corpus.name.startswith("bad"):
        raise ValueError("planted failure\nsecond line")
    from harness.types import Score

    return Score(0.5)


def test_a_failing_metric_is_recorded_and_shown(tmp_path, capsys, register_metrics):
    register_metrics(boom)
    rows = "".join(json.dumps({"text": f"row {i} text", "label": "a"}) + "\n" for i in range(10))
    for name in ("good", "bad"):
        (tmp_path / f"{name}.jsonl").write_text(rows, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["eval", str(tmp_path / "good.jsonl"), str(tmp_path / "bad.jsonl"), "--out", str(out),
            "-m", "test/boom,lexical/distinct-1", "--no-progress"]
    code, stdout, err = _run_cli(argv, capsys)
    assert code == 1  # the run finished, but not everything was computed
    assert "FAILED: bad test/boom: ValueError: planted failure" in err and "Traceback" not in err
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r.get("status") == "failed"]
    assert [(r["dataset"], r["metric"], r["value"]) for r in failed] == [("bad", "test/boom", None)]
    assert len([r for r in recs if r.get("status") != "failed"]) == 3  # good/boom, good+bad distinct-1
    md = (out / "report.md").read_text()
    assert "**failed**" in md and "## Failed" in md and "planted failure" in md
    assert "failed" in (out / "index.html").read_text() and "FAILED" in stdout
    # the report renders the failure again from the files alone
    assert main(["report", str(out)]) == 0
    assert "## Failed" in (out / "report.md").read_text()
    capsys.readouterr()
    # a rerun reuses the three results and tries the failed one again
    code, _, err = _run_cli(argv, capsys)
    assert code == 1 and "0 computed, 3 reused" in err
