"""Declared schemas, the lenient load and format/invalid-rate, on real rows with planted defects."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from harness import metrics
from harness.data.load import FieldMap, load_corpus
from harness.data.schema import INVALID_FIELD, Schema, parse_schema, resolve_for_candidates, row_reasons
from harness.errors import UserError
from harness.metrics.base import Context, MetricSkipped
from tests.conftest import ROOT, FakeEmbedder, read_jsonl, shared

SST2 = "sst2_real/glue_validation.jsonl"
GPT4 = "alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl"
PAIRED = "alpaca_gpt4_sample_999/paired_davinci003_vs_gpt4.jsonl"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def invalid(name="format/invalid-rate", corpus=None):
    s = metrics.get(name)(Context(corpus))
    json.dumps(s.details)
    assert s.ci[0] <= s.value <= s.ci[1]
    return s


# ----------------------------------------------------------------------------- planted defects

@pytest.fixture(scope="module")
def sst2_rows():
    return read_jsonl(shared(SST2), limit=120)


@pytest.fixture
def planted(tmp_path, sst2_rows):
    """120 real SST-2 rows with one defect of each kind at known positions."""
    rows = [dict(r) for r in sst2_rows]
    del rows[3]["text"]                              # missing field
    rows[10]["label"] = [1]                          # wrong type (a list)
    rows[20]["label"] = 7                            # label outside {0, 1}
    rows[30]["text"] = " ".join(["word"] * 80)       # too long (max_words 60)
    rows[40]["text"] = "   "                         # empty
    rows[50]["text"] = 12345                         # wrong type (a number)
    rows[60]["label"] = None                         # missing label
    return write_jsonl(tmp_path / "planted.jsonl", rows)


SCHEMA = {"required": ["text", "label"], "types": {"text": "string", "label": ["integer", "string"]},
          "labels": [0, 1], "length": {"text": {"max_words": 60}}}


def test_each_defect_counted_with_its_reason(planted):
    c = load_corpus(str(planted), schema=parse_schema(SCHEMA, "test"))
    assert len(c) == 120 and c.kind == "classification"      # every row kept, in place
    s = invalid(corpus=c)
    assert s.rows == {"missing-field": [3, 60], "empty": [40], "wrong-type": [10, 50],
                      "label-not-allowed": [20], "too-long": [30]}
    assert s.details["count"] == 7 and s.value == pytest.approx(7 / 120)
    assert s.details["by_field"] == {"empty:text": 1, "label-not-allowed:label": 1, "missing-field:label": 1,
                                     "missing-field:text": 1, "too-long:text": 1, "wrong-type:label": 1,
                                     "wrong-type:text": 1}
    assert s.details["examples"]["wrong-type"][1] == {"row": 50, "fields": ["text"], "text": "12345"}
    # coerced so that other metrics never meet a non-string
    assert c.texts[3] == "" and c.texts[50] == "12345" and c.labels[60] == "" and c.labels[10] == "[1]"
    assert all(isinstance(t, str) for t in c.texts) and all(isinstance(x, str) for x in c.labels)


def test_bad_json_counted(tmp_path, sst2_rows):
    rows = [{"text": r["text"], "label": r["label"], "meta": json.dumps({"id": i})} for i, r in enumerate(sst2_rows[:30])]
    rows[4]["meta"] = '{"id": 4'                      # cut JSON
    rows[9]["meta"] = "not json at all"
    rows[12]["meta"] = ""                             # blank: not bad JSON (not required)
    rows[15]["meta"] = {"id": 15}                     # already structured: valid
    c = load_corpus(str(write_jsonl(tmp_path / "j.jsonl", rows)), schema=parse_schema({"json": ["meta"]}, "t"))
    assert invalid(corpus=c).rows == {"bad-json": [4, 9]}


def test_strict_load_still_refuses(planted):
    with pytest.raises(UserError, match="line 4: missing field 'text'"):
        load_corpus(str(planted))


def test_lenient_load_does_not_change_normal_loads(tmp_path):
    """Without a schema: the same corpus as before (no extra field). With a schema on a valid file:
    the same texts, labels and fields, plus the (all empty) reasons."""
    for rel in (SST2, GPT4):
        strict = load_corpus(str(shared(rel)))
        assert INVALID_FIELD not in strict.fields
        lenient = load_corpus(str(shared(rel)), schema=Schema())
        assert lenient.texts == strict.texts and lenient.labels == strict.labels and lenient.kind == strict.kind
        assert {k: v for k, v in lenient.fields.items() if k != INVALID_FIELD} == strict.fields
        assert set(lenient.fields[INVALID_FIELD]) == {""}
        assert lenient.fingerprint != strict.fingerprint  # never shares results with an ordinary load
        s = invalid(corpus=lenient)
        assert s.value == 0.0 and s.rows == {}
    with pytest.raises(MetricSkipped, match="no schema declared"):
        metrics.get("format/invalid-rate")(Context(load_corpus(str(shared(SST2)))))


def test_reasons_survive_subsample_and_holdout(planted):
    c = load_corpus(str(planted), schema=parse_schema(SCHEMA, "t"))
    for part in (c.subsample(60, 1), *c.holdout(0.5, 0)):
        expect = sum(1 for x in part.fields[INVALID_FIELD] if x)
        assert invalid(corpus=part).details["count"] == expect
        for i, reasons in enumerate(row_reasons(part)):
            if ("empty", "text") in reasons:
                assert not part.texts[i].strip()


def test_label_set_defaults_to_the_reference(tmp_path, sst2_rows):
    ref = load_corpus(str(shared(SST2)), schema=Schema())
    rows = [dict(r) for r in sst2_rows[:40]]
    rows[5]["label"] = 2
    rows[6]["label"] = "positive"
    schema = resolve_for_candidates(Schema(), ref)
    assert schema.labels == ("0", "1") and schema.labels_from == f"reference {ref.name}"
    c = load_corpus(str(write_jsonl(tmp_path / "c.jsonl", rows)), schema=schema)
    assert invalid(corpus=c).rows == {"label-not-allowed": [5, 6]}
    assert resolve_for_candidates(parse_schema({"labels": ["0", "1", "2"]}, "t"), ref).labels == ("0", "1", "2")


def test_role_names_follow_the_field_mapping():
    """'output' in the schema means the mapped output column (here output_text_davinci_003)."""
    fields = FieldMap(output="output_text_davinci_003")
    schema = parse_schema({"required": ["instruction", "output"], "length": {"output": {"max_words": 20}}}, "t")
    c = load_corpus(str(shared(PAIRED)), fields, schema=schema)
    rows = read_jsonl(shared(PAIRED))
    long = [i for i, r in enumerate(rows) if len(r["output_text_davinci_003"].split()) > 20]
    assert invalid(corpus=c).rows == {"too-long": long}
    assert c.fields["output"][0] == rows[0]["output_text_davinci_003"]


def test_instruction_rows_with_null_or_missing_output(tmp_path):
    rows = read_jsonl(shared(GPT4), limit=50)
    rows[0] = {"instruction": rows[0]["instruction"], "input": ""}          # first row lacks 'output'
    rows[7]["output"] = None
    rows[8]["input"] = {"k": 1}
    rows[9]["instruction"] = ""
    c = load_corpus(str(write_jsonl(tmp_path / "i.jsonl", rows)), schema=Schema())
    assert c.kind == "instruction"  # columns found in the union of rows, not only the first
    s = invalid(corpus=c)
    assert s.rows == {"missing-field": [0, 7], "empty": [9], "wrong-type": [8]}
    assert c.fields["output"][0] == "" and c.fields["input"][8] == '{"k": 1}'
    # the instruction metrics run on the coerced rows
    e = metrics.get("instr/empty-rate")(Context(c))
    assert {0, 7} <= set(e.rows["empty-output"])


def test_other_metrics_do_not_crash_on_invalid_rows(planted, sst2_rows):
    c = load_corpus(str(planted), schema=parse_schema(SCHEMA, "t"))
    ref = load_corpus(str(shared(SST2))).subsample(200, 0)
    ref_ctx = Context(ref, embedder=FakeEmbedder())
    test_ctx = Context(load_corpus(str(shared(SST2))).subsample(100, 1), embedder=FakeEmbedder())
    ctx = Context(c, embedder=FakeEmbedder(), reference=ref_ctx, test=test_ctx)
    names = [n for n in metrics.names() if n.split("/")[0] in ("lexical", "length", "dup", "semantic", "surface",
                                                             "memo", "format", "perclass")
             and n not in ("semantic/ref-cluster-coverage", "perclass/mauve")]  # slow, and covered by distance tests
    skipped = {}
    for name in names:
        try:
            s = metrics.get(name)(ctx)
        except MetricSkipped as e:
            skipped[name] = str(e)
            continue
        lo, hi = metrics.info(name).bounds
        assert math.isfinite(s.value) and lo <= s.value <= hi, (name, s.value)
    assert skipped == {}, skipped  # every one of them applies to these rows: none may bow out


# ----------------------------------------------------------------------------- schema validation

@pytest.mark.parametrize("raw, key, fix", [
    ({"requird": ["a"]}, "requird", "did you mean 'required'"),
    ({"types": {"a": "strng"}}, "types.a", "did you mean 'string'"),
    ({"length": {"a": {"max_word": 3}}}, "length.a.max_word", "did you mean 'max_words'"),
    ({"length": {"a": {"min_words": 5, "max_words": 3}}}, "length.a", "swap"),
    ({"length": {"a": {"max_chars": -1}}}, "length.a.max_chars", "1000"),
    ({"labels": []}, "labels", "reference's labels"),
    ({"json": "output"}, None, None),  # a single name is accepted
])
def test_schema_errors_name_the_key(raw, key, fix):
    if key is None:
        assert parse_schema(raw, "s.yaml").json == ("output",)
        return
    with pytest.raises(UserError) as e:
        parse_schema(raw, "s.yaml", prefix="schema.")
    assert f"s.yaml: key 'schema.{key}'" in e.value.what and fix in e.value.line()


def test_suite_schema_inline_and_file(tmp_path):
    from harness.data.suite import load_suite

    data = shared(GPT4)
    base = f"name: t\nreference: {{path: {data}}}\ncandidates: [{{path: {data}, name: c}}]\n"
    (tmp_path / "s.yaml").write_text(base + "schema: {required: [output], length: {output: {max_words: 5}}}\n")
    assert load_suite(tmp_path / "s.yaml").schema.length == {"output": {"max_words": 5}}
    (tmp_path / "schema.yaml").write_text("required: [instruction]\njson: [output]\n")
    (tmp_path / "f.yaml").write_text(base + "schema: schema.yaml\n")
    assert load_suite(tmp_path / "f.yaml").schema.json == ("output",)
    (tmp_path / "bad.yaml").write_text(base + "schema: {types: {output: text}}\n")
    with pytest.raises(UserError, match=r"key 'schema.types.output': 'text' is not a type"):
        load_suite(tmp_path / "bad.yaml")
    assert load_suite(ROOT / "suites" / "instruction.yaml").schema.required == ("instruction", "output")


def test_cli_eval_with_schema(tmp_path, planted, cache_dir):
    schema = tmp_path / "schema.yaml"
    schema.write_text("required: [text, label]\nlength: {text: {max_words: 60}}\n")
    ref = shared(SST2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness.cli", "eval", f"planted={planted}", "--reference", str(ref),
           "--schema", str(schema), "--metrics", "format,dup/exact-rate", "--out", str(out), "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    recs = {(r["dataset"], r["metric"]): r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    r = recs[("planted", "format/invalid-rate")]
    # labels default to the reference's {0, 1}: row 20's label 7 is outside; row 10's list is a wrong type
    assert r["details"]["by_reason"] == {"missing-field": 2, "empty": 1, "wrong-type": 2,
                                         "label-not-allowed": 1, "too-long": 1}
    assert json.loads((out / "run.json").read_text())["schema"]["labels"] == ["0", "1"]
    bad_cmd = [str(tmp_path / "nope.yaml") if x == str(schema) else x for x in cmd]
    bad = subprocess.run(bad_cmd,
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "schema file not found" in bad.stderr
