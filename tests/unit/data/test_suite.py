"""Suites: validation errors name the file, the key and the fix; `synthbench run` resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.data.suite import load_suite, suite_specs
from harness.errors import UserError
from tests.conftest import ROOT, SHARED, read_jsonl, shared

GOOD = """
name: tiny
description: two intent paraphrase sets against the originals
task: classification
reference: {name: orig, path: intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_train.jsonl}
test: intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_test.jsonl
candidates:
  - name: gpt
    path: intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl
    provenance: {generator: gpt-3.5-turbo, method: paraphrase, licence: none stated}
  - {name: human, path: intent_paraphrases_chatgpt_vs_crowd/clinc150/human.jsonl}
metrics: [lexical/distinct-2, dup]
metric_args: {dup/near-rate: {threshold: 0.9}}
sample_size: 200
seed: 1
"""


@pytest.fixture
def suite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHBENCH_DATA", str(shared("")))

    def write(text: str):
        p = tmp_path / "s.yaml"
        p.write_text(textwrap.dedent(text), encoding="utf-8")
        return p

    return write


def test_good_suite(suite_file):
    s = load_suite(suite_file(GOOD))
    assert s.name == "tiny" and [c.name for c in s.candidates] == ["gpt", "human"]
    assert s.candidates[0].provenance["generator"] == "gpt-3.5-turbo"
    assert s.test.name == "test" and s.sample_size == 200 and s.seed == 1
    specs = {x.name: x for x in suite_specs(s)}
    assert set(specs) == {"lexical/distinct-2", "dup/exact-rate", "dup/near-rate"}
    assert specs["dup/near-rate"].args["threshold"] == 0.9


@pytest.mark.parametrize("edit,expected", [
    (("seed: 1", "sead: 1"), "key 'sead': unknown key -- fix: did you mean 'seed'?"),
    (("seed: 1", "seed: one"), "key 'seed': expected an integer seed, got str"),
    (("sample_size: 200", "sample_size: 1"), "key 'sample_size': 1 is too small"),
    (("clinc150/gpt.jsonl", "clinc150/nope.jsonl"), "key 'candidates[0].path': 'intent_paraphrases_chatgpt_vs_crowd/clinc150/nope.jsonl' not found"),
    (("clinc150/gpt.jsonl", "../../etc/passwd"), "leaves the data root"),
    (("{threshold: 0.9}", "{treshold: 0.9}"), "key 'metric_args.dup/near-rate.treshold': unknown key -- fix: did you mean 'threshold'?"),
    (("dup/near-rate: {", "dup/nearrate: {"), "key 'metric_args.dup/nearrate': no such metric -- fix: did you mean 'dup/near-rate'?"),
    (("metrics: [lexical/distinct-2, dup]", "metrics: [nothing]"), "key 'metrics': no metric or group named 'nothing'"),
    (("task: classification", "task: regression"), "key 'task': 'regression' is not a task type"),
    (("name: tiny", "name: ../../etc"), "key 'name': '../../etc' is not a plain name"),
    (("seed: 1", "seed: 1\nholdout: 0.2"), "key 'holdout': given together with 'test'"),
    (("test: intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_test.jsonl", "holdout: 1.5"),
     "key 'holdout': 1.5 is not between 0 and 1"),
    (("  - {name: human,", "  - {name: gpt,"), "key 'candidates': name(s) used twice: gpt"),
    (("name: tiny", "name: !!python/object:os.system tiny"), "not valid YAML"),
    (("provenance: {generator", "provenance: [generator"), "not valid YAML"),
])
def test_bad_suites_name_file_key_and_fix(suite_file, edit, expected):
    old, new = edit
    assert old in GOOD
    p = suite_file(GOOD.replace(old, new, 1))
    with pytest.raises(UserError) as ei:
        load_suite(p)
    line = ei.value.line()
    assert str(p) in line and expected in line and "fix:" in line


def test_missing_required_key(suite_file):
    with pytest.raises(UserError, match="key 'candidates': missing"):
        load_suite(suite_file("name: x\nreference: builtin:bbc-news\n"))


def test_shipped_suites_validate():
    env = os.environ.get("SYNTHBENCH_DATA")
    for p in sorted((ROOT / "suites").glob("*.yaml")):
        if not SHARED.exists() and "shared" in p.read_text():
            continue
        os.environ["SYNTHBENCH_DATA"] = str(SHARED)
        try:
            assert load_suite(p).candidates
        finally:
            if env is None:
                os.environ.pop("SYNTHBENCH_DATA", None)


def test_run_suite_end_to_end_and_resume(suite_file, tmp_path):
    p = suite_file(GOOD)
    out = tmp_path / "out"
    env = dict(os.environ, TQDM_DISABLE="1", SYNTHBENCH_DATA=str(SHARED))
    cmd = [sys.executable, "-m", "harness.cli", "run", str(p), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {x["dataset"] for x in recs} == {"orig", "gpt", "human"}
    near = [x for x in recs if x["metric"] == "dup/near-rate"]
    assert all(x["signature"]["args"]["threshold"] == 0.9 for x in near)
    meta = json.loads((out / "run.json").read_text())
    assert meta["suite"]["name"] == "tiny" and meta["provenance"]["gpt"]["generator"] == "gpt-3.5-turbo"
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert again.returncode == 0 and f"0 computed, {len(recs)} reused" in again.stderr
    bad = subprocess.run(cmd[:-3] + [str(tmp_path / "missing.yaml")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 2 and "suite file not found" in bad.stderr and "Traceback" not in bad.stderr


# --- row filters, label maps and normalisation (issue 7) ---

FILTERED = """
name: filtered
reference: {name: real, path: llm_augmentation_diversity_incentives/sst5/real_test.jsonl}
candidates:
  - name: gpt-taboo
    path: llm_augmentation_diversity_incentives/sst5/synthetic_gpt.jsonl
    where: {method: taboo, is_seed: false}
    where_not: {text: " ", method: [taboo, hints]}
  - name: s3
    path: s3_synthetic_imdb_rte/IMDb/imdb_additional_2.jsonl
    label_map: {0: neg, 1: pos}
normalize: [lowercase, strip-punctuation]
"""


def test_row_filters_label_map_and_normalize(suite_file):
    from harness.data.suite import load_dataset

    s = load_suite(suite_file(FILTERED))
    assert s.normalize == ("lowercase", "strip-punctuation")
    gpt = load_dataset(s.candidates[0], s.normalize)
    rows = [r for r in read_jsonl(SHARED / "llm_augmentation_diversity_incentives/sst5/synthetic_gpt.jsonl")
            if r["method"] == "taboo" and r["is_seed"] is False and r["text"] != " "]
    assert len(gpt) == len(rows) and gpt.labels == tuple(str(r["label"]) for r in rows)
    assert "where method=taboo, is_seed=false" in gpt.source and "normalised: lowercase" in gpt.source
    assert all(t == t.lower() and "." not in t for t in gpt.texts)
    s3 = load_dataset(s.candidates[1], s.normalize)
    assert set(s3.labels) == {"neg", "pos"} and "labels 0->neg, 1->pos" in s3.source
    plain = load_dataset(s.reference)                 # nothing declared: the corpus as load_corpus reads it
    from harness.data.load import load_corpus
    assert plain.fingerprint == load_corpus(s.reference.path, name="real").fingerprint


@pytest.mark.parametrize("edit,expected", [
    (("where: {method: taboo, is_seed: false}", "where: {method: []}"), "key 'candidates[0].where.method': an empty list"),
    (("where: {method: taboo, is_seed: false}", "where: method"), "key 'candidates[0].where': expected a mapping"),
    (("where: {method: taboo, is_seed: false}", "wher: {method: taboo}"), "unknown key -- fix: did you mean 'where'?"),
    (("label_map: {0: neg, 1: pos}", "label_map: {0: [neg]}"), "key 'candidates[1].label_map.0': new label"),
    (("[lowercase, strip-punctuation]", "[lowercase, strip-punctuaton]"),
     "key 'normalize[1]': 'strip-punctuaton' is not a normalisation step -- fix: did you mean 'strip-punctuation'?"),
    (("[lowercase, strip-punctuation]", "lowercase"), "key 'normalize': expected a list"),
])
def test_bad_filters_name_file_key_and_fix(suite_file, edit, expected):
    old, new = edit
    assert old in FILTERED
    p = suite_file(FILTERED.replace(old, new, 1))
    with pytest.raises(UserError) as ei:
        load_suite(p)
    line = ei.value.line()
    assert str(p) in line and expected in line and "fix:" in line


def test_filter_errors_when_loading(suite_file):
    from harness.data.suite import load_dataset

    s = load_suite(suite_file(FILTERED.replace("method: taboo,", "method: tabu,")))
    with pytest.raises(UserError, match=r"synthetic_gpt.jsonl: no row passes the row filter \(where method=tabu"):
        load_dataset(s.candidates[0])
    s = load_suite(suite_file(FILTERED.replace("is_seed: false", "seeded: false")))
    with pytest.raises(UserError, match=r"line 1: no field 'seeded' to filter on"):
        load_dataset(s.candidates[0])
    s = load_suite(suite_file(FILTERED.replace("label_map: {0: neg, 1: pos}", "label_map: {0: neg}")
                              .replace("[lowercase, strip-punctuation]", "[strip-punctuation]")))
    assert set(load_dataset(s.candidates[1]).labels) == {"neg", "1"}   # unmapped labels stay
