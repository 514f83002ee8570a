"""``synthbench card``: a Hugging Face dataset card of one candidate, on small real runs (CLINC150 rows).

Two runs are made once per module: a suite run (provenance with licences, no embedding metric) and an
``eval`` run with the hashed fake embedder and ``quote_text`` off. The cards are read back with
``huggingface_hub`` offline, their numbers compared with the records, and the bad inputs go through the
CLI's main function.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest

from harness.cli import main
from harness.report.markdown import fmt
from tests.conftest import FakeEmbedder, read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"
SUITE_METRICS = ["lexical/distinct-2", "lexical/entropy-2", "dup", "memo/exact-copy-rate",
                 "memo/ngram-overlap-rate", "contam/test-ngram-overlap", "surface/label-jsd", "length",
                 "faith/label-issue-rate"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Real rows: 300 ChatGPT paraphrases with 30 exact repeats and 5 reference rows copied in, 300 crowd
    paraphrases, 400 original training rows (the reference) and 200 original test rows."""
    src = shared(CLINC)
    tmp = tmp_path_factory.mktemp("card-data")
    ref = read_jsonl(src / "orig_train.jsonl", 400)
    gpt = read_jsonl(src / "gpt.jsonl", 300)
    gpt = gpt + gpt[:30] + ref[:5]
    return {"gpt": _write(tmp / "gpt.jsonl", gpt), "crowd": _write(tmp / "crowd.jsonl", read_jsonl(src / "human.jsonl", 300)),
            "ref": _write(tmp / "ref.jsonl", ref), "test": _write(tmp / "test.jsonl", read_jsonl(src / "orig_test.jsonl", 200)),
            "gpt_rows": gpt, "tmp": tmp}


@pytest.fixture(scope="module")
def suite_run(data, tmp_path_factory, cache_dir):
    import yaml

    tmp = tmp_path_factory.mktemp("card-suite")
    suite = {"name": "card-test", "description": "CLINC150 paraphrases for the dataset card test",
             "task": "classification",
             "reference": {"name": "clinc-train", "path": str(data["ref"]),
                           "provenance": {"source": "CLINC150 training rows (Larson et al. 2019)", "licence": "CC BY 3.0"}},
             "test": {"name": "clinc-test", "path": str(data["test"])},
             "candidates": [
                 {"name": "chatgpt", "path": str(data["gpt"]),
                  "provenance": {"generator": "gpt-3.5-turbo", "method": "paraphrases of seed utterances",
                                 "licence": "Apache-2.0"}},
                 {"name": "crowd", "path": str(data["crowd"]),
                  "provenance": {"generator": "none (crowd workers)", "method": "crowdsourced paraphrases",
                                 "licence": "none stated (research use)"}}],
             "metrics": SUITE_METRICS, "seed": 0}
    path = tmp / "card_test.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    out = tmp / "run"
    code, _, err = _cli(["run", str(path), "--out", str(out), "--no-progress"])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def withheld_run(data, tmp_path_factory, cache_dir):
    import harness

    out = tmp_path_factory.mktemp("card-eval") / "run"
    harness.evaluate([f"chatgpt={data['gpt']}", f"crowd={data['crowd']}"], reference=str(data["ref"]),
                     test=str(data["test"]), out=out, quote_text=False, embedder=FakeEmbedder(),
                     metrics=["lexical/distinct-2", "dup", "memo", "contam", "semantic/pairwise-cosine-distance",
                              "distance/c2st-tfidf"], log=lambda m: None)
    return out


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _card(run_dir, tmp_path, name="chatgpt", extra=()):
    out = tmp_path / "cards" / name / "README.md"
    code, _, err = _cli(["card", str(run_dir), "--dataset", name, "--out", str(out), *extra])
    assert code == 0, err
    return out


def test_card_loads_on_the_hub_with_its_metadata(suite_run, tmp_path):
    """The YAML header is what huggingface_hub reads offline: licence mapped to the hub's id, task and size
    categories, the reference as source, the tags, and the provenance under 'synthbench:'."""
    from huggingface_hub import DatasetCard

    path = _card(suite_run, tmp_path)
    card = DatasetCard.load(path)
    assert DatasetCard(path.read_text(encoding="utf-8")).data.to_dict() == card.data.to_dict()
    d = card.data
    assert d.license == "apache-2.0"
    assert d.task_categories == ["text-classification"]
    assert d.size_categories == ["n<1K"]
    assert d.source_datasets == ["clinc-train"]
    assert {"synthetic", "synthbench"} <= set(d.tags)
    sb = d.to_dict()["synthbench"]
    assert sb["generator"] == "gpt-3.5-turbo" and sb["method"] == "paraphrases of seed utterances"
    assert sb["licence"] == "Apache-2.0" and sb["reference"]["licence"] == "CC BY 3.0"
    meta = json.loads((suite_run / "run.json").read_text(encoding="utf-8"))
    assert sb["fingerprint"] == next(c["fingerprint"] for c in meta["candidates"] if c["name"] == "chatgpt")
    assert set(sb["scorecard"]) <= {"faithfulness", "diversity", "fidelity", "privacy", "utility"}
    # a licence that is no hub id ("none stated (research use)") becomes 'other'
    crowd = DatasetCard.load(_card(suite_run, tmp_path, "crowd"))
    assert crowd.data.license == "other"
    assert crowd.data.to_dict()["synthbench"]["licence"] == "none stated (research use)"


def test_scorecard_and_metric_values_equal_the_records(suite_run, tmp_path):
    """Every current record of the candidate is in the card with its value and 95% interval, and the
    reference's value beside it; the scorecard comes first."""
    text = _card(suite_run, tmp_path).read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]
    assert body.index("## Scorecard") < body.index("## Memorisation") < body.index("## Metrics")
    recs = {(d["dataset"], d["metric"]): d for d in _records(suite_run)}
    mine = [d for (ds, _), d in recs.items() if ds == "chatgpt" and d.get("status") != "failed"]
    assert len(mine) >= 10
    for d in mine:
        ci = f"[{fmt(d['ci'][0])}, {fmt(d['ci'][1])}]" if d["ci"] else "–"
        row = re.search(rf"^\| `{re.escape(d['metric'])}` \| . \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", body, re.M)
        assert row, d["metric"]
        assert row.group(1).strip().lstrip("≤≥ ") == fmt(d["value"]), d["metric"]
        assert row.group(2).strip() == ci, d["metric"]
        ref = recs.get(("clinc-train", d["metric"]))
        assert row.group(3).strip().startswith(fmt(ref["value"]) if ref else "–"), d["metric"]
    # the scorecard table has one row per dimension with a verdict against the reference and the other candidate
    assert "| dimension | against the reference (clinc-train) | against the run's other 1 candidate |" in body


def test_findings_and_flag_counts_follow_the_records_and_row_files(suite_run, tmp_path):
    """The 30 planted repeats and 5 copied reference rows are counted, by reason, as the row files hold them."""
    body = _card(suite_run, tmp_path).read_text(encoding="utf-8")
    recs = {d["metric"]: d for d in _records(suite_run) if d["dataset"] == "chatgpt"}
    exact = recs["dup/exact-rate"]
    assert exact["details"]["row_flags"]["duplicate"] >= 30
    assert re.search(rf"^\| duplicate \| {exact['details']['row_flags']['duplicate']} \| `dup/exact-rate` ", body, re.M)
    copies = recs["memo/exact-copy-rate"]["details"]["row_flags"]["memorised"]
    assert copies >= 5
    assert re.search(rf"^\| Exact-copy rate \| `memo/exact-copy-rate` \| {re.escape(fmt(recs['memo/exact-copy-rate']['value']))} "
                     rf"\| [^|]+ \| {copies} \|", body, re.M)
    assert "rows carry at least one flag" in body


def test_withheld_run_yields_a_card_without_row_text(withheld_run, data, tmp_path):
    """A run with quote_text off (and, as well, any run): the card quotes no row, only counts and shares."""
    from huggingface_hub import DatasetCard

    path = _card(withheld_run, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "text withheld" in (withheld_run / "results.jsonl").read_text(encoding="utf-8")
    texts = {r["text"] for r in data["gpt_rows"] if len(r["text"]) >= 15}
    assert texts and not [t for t in texts if t in text]
    assert data["gpt_rows"][0]["text"] not in text  # a known row, and a planted repeat of it
    assert "withheld dataset text" in text
    assert "--no-quote-text" in text and "synthbench eval chatgpt=" in text  # the eval command that made it
    assert DatasetCard.load(path).data.task_categories == ["text-classification"]
    assert "embedder: fake-bow-64" in text and "handed in from Python" in text


def test_stale_and_failed_records_are_caveats_not_values(suite_run, tmp_path):
    """A record of another metric version is stale: counted under Caveats, absent from the tables; a failed
    record is named as failed."""
    run = tmp_path / "run"
    shutil.copytree(suite_run, run)
    lines = []
    for d in _records(run):
        if d["dataset"] == "chatgpt" and d["metric"] == "lexical/distinct-2":
            d["signature"]["version"] = 999
        if d["dataset"] == "chatgpt" and d["metric"] == "surface/label-jsd":
            d.update(status="failed", error="ValueError: boom", value=None, ci=None)
        lines.append(json.dumps(d))
    (run / "results.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    body = _card(run, tmp_path).read_text(encoding="utf-8")
    assert "1 stored record(s) are stale and not shown: lexical/distinct-2 (computed by version 999" in body
    assert "| `lexical/distinct-2` |" not in body
    assert "1 metric(s) failed" in body and "surface/label-jsd: ValueError: boom" in body
    assert "| `surface/label-jsd` |" not in body


def test_reproduce_names_the_suite_command(suite_run, tmp_path):
    body = _card(suite_run, tmp_path).read_text(encoding="utf-8")
    meta = json.loads((suite_run / "run.json").read_text(encoding="utf-8"))
    assert re.search(r"^synthbench run \S*card_test\.yaml( --precision \S+)?$", body, re.M), meta["load"]
    assert "synthbench card reports/card-test --dataset chatgpt --out README.md" in body
    assert f"`{meta['candidates'][0]['fingerprint']}`" in body and "seed: 0" in body


def _one_line_error(code, out, err):
    assert code == 2
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthbench: error: ")
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(suite_run, tmp_path):
    line = _one_line_error(*_cli(["card", str(suite_run), "--dataset", "nope"]))
    assert "no such dataset" in line and "chatgpt, crowd" in line
    line = _one_line_error(*_cli(["card", str(suite_run), "--dataset", "clinc-train"]))
    assert "is the reference of this run" in line and "chatgpt, crowd" in line
    line = _one_line_error(*_cli(["card", str(suite_run), "--dataset", "clinc-test"]))
    assert "is the test of this run" in line
    line = _one_line_error(*_cli(["card", str(tmp_path), "--dataset", "chatgpt"]))
    assert "no results.jsonl here" in line
    line = _one_line_error(*_cli(["card", str(tmp_path / "missing"), "--dataset", "chatgpt"]))
    assert "no such folder" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(suite_run / "results.jsonl", broken / "results.jsonl")
    (broken / "run.json").write_text("{not json", encoding="utf-8")
    # card, compare and annotate read run.json through one check, with one message per fault
    for argv in (["card", str(broken), "--dataset", "chatgpt"], ["compare", str(broken), str(suite_run)],
                 ["annotate", "export", str(broken), "--out", str(tmp_path / "study")]):
        assert "run.json: not valid JSON" in _one_line_error(*_cli(argv)), argv
    (broken / "run.json").write_text("[]", encoding="utf-8")
    assert "run.json: damaged" in _one_line_error(*_cli(["card", str(broken), "--dataset", "chatgpt"]))
    (broken / "run.json").unlink()
    assert "run.json: missing" in _one_line_error(*_cli(["compare", str(broken), str(suite_run)]))
    line = _one_line_error(*_cli(["card", str(suite_run), "--dataset", "chatgpt", "--out", str(tmp_path)]))
    assert "is a folder" in line


def test_an_existing_file_is_replaced_only_when_synthbench_wrote_it(suite_run, tmp_path):
    out = tmp_path / "README.md"
    out.write_text("# my own dataset card\n", encoding="utf-8")
    line = _one_line_error(*_cli(["card", str(suite_run), "--dataset", "chatgpt", "--out", str(out)]))
    assert "was not written by synthbench" in line and "--force" in line
    assert out.read_text(encoding="utf-8") == "# my own dataset card\n"
    assert _cli(["card", str(suite_run), "--dataset", "chatgpt", "--out", str(out), "--force"])[0] == 0
    first = out.read_text(encoding="utf-8")
    assert first.startswith("---\n")
    assert _cli(["card", str(suite_run), "--dataset", "crowd", "--out", str(out)])[0] == 0  # its own card: replaced
    assert out.read_text(encoding="utf-8") != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left behind


def test_without_out_the_card_is_printed(suite_run):
    code, out, err = _cli(["card", str(suite_run), "--dataset", "chatgpt"])
    assert code == 0 and out.startswith("---\n") and "# chatgpt" in out


def test_api_card_equals_the_command(suite_run, tmp_path):
    import harness.api

    text = harness.api.card(suite_run, "chatgpt")
    assert text == _cli(["card", str(suite_run), "--dataset", "chatgpt"])[1]
