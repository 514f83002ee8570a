"""The human-evaluation loop on real CLINC150 paraphrases: a blinded export, simulated annotators with a
known agreement, the import (alpha against ``krippendorff.alpha`` and by hand, human scores through the
key), refusals (a shuffled or foreign key, a bad rating: exit 2, one line), Label Studio's export format,
and the judge's per-row verdicts read back from a run's row flags.

One small run (four candidates, the original training rows as reference, cheap metrics and a scripted
judge endpoint) is made once for the module; simulated annotators read only the blinded items.csv.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import xml.etree.ElementTree as ET

import krippendorff  # the optional extra 'annotate' (in 'all', which the Makefile installs)
import numpy as np
import pytest

from harness.analysis import annotation as A
from harness.cli import main
from harness.errors import UserError
from tests.conftest import FakeEmbedder, read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"
NAMES = ("chatgpt-para", "crowd-para", "chatgpt-relabelled", "crowd-relabelled")
REF = "clinc-train"
Q = "label-correctness"


def _truthy_judge(truth):
    """A judge that knows the truth except on a tenth of the texts (a fixed hash), where it says the opposite."""
    def answer(messages):
        p = messages[-1]["content"]
        text = p.split("Text: ")[1].split("\n")[0]
        label = p.split("Proposed label: ")[1].split("\n")[0]
        ok = truth.get((text.strip(), label), False)
        if int(hashlib.md5(text.encode()).hexdigest(), 16) % 10 == 0:
            ok = not ok
        return "yes" if ok else "no"
    return answer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache_dir):
    """(run folder, truth {(text, label): label is right}) of a small real run with a scripted judge."""
    import harness
    from tests.unit.metrics.test_judge import FakeEndpoint

    d = shared(CLINC)
    tmp = tmp_path_factory.mktemp("annot")
    gpt, crowd, train = (read_jsonl(d / f) for f in ("gpt.jsonl", "human.jsonl", "orig_train.jsonl"))
    labels = sorted({r["label"] for r in gpt})[:6]
    truth: dict[tuple[str, str], bool] = {}

    def write(name, rows, n, seed, noise=0.0):
        rng = random.Random(seed)
        rows = [r for r in rows if r["label"] in labels]
        rng.shuffle(rows)
        out = []
        for r in rows[:n]:
            lab = r["label"]
            if rng.random() < noise:
                lab = rng.choice([x for x in labels if x != lab])
            truth[(r["text"].strip(), lab)] = lab == r["label"]  # the judge sees texts stripped
            out.append({"text": r["text"], "label": lab})
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in out))

    write(NAMES[0], gpt[:4000], 40, 1)
    write(NAMES[1], crowd[:1500], 40, 2)
    write(NAMES[2], gpt[4000:], 40, 3, noise=0.3)
    write(NAMES[3], crowd[1500:], 40, 4, noise=0.6)
    write(REF, train, 60, 5)
    with FakeEndpoint(answer=_truthy_judge(truth)) as ep:
        harness.evaluate([f"{n}={tmp / n}.jsonl" for n in NAMES], reference=str(tmp / f"{REF}.jsonl"),
                         metrics=["lexical/distinct-1", "length/mean-words", "dup/exact-rate",
                                  "judge/label-correctness"],
                         out=tmp / "run", embedder=FakeEmbedder(), judge={"url": ep.url, "model": "fake-judge"},
                         log=lambda m: None)
    return tmp / "run", truth


@pytest.fixture(scope="module")
def study(run_dir, tmp_path_factory):
    run, _ = run_dir
    out = tmp_path_factory.mktemp("study") / "s"
    assert main(["annotate", "export", str(run), "--out", str(out), "--per-dataset", "24", "--seed", "3"]) == 0
    return out


def _items(study):
    with (study / A.SEND_DIR / A.CSV_NAME).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _annotate(study, truth, noise, tmp, seed=0, n=3, random_answers=False):
    """Simulated annotators: each reads the blinded items.csv and answers from the truth, flipping a share
    ``noise`` of its answers (or answering at random); one CSV per annotator. Returns (paths, answers)."""
    rows = _items(study)
    paths, answers = [], {}
    for k in range(n):
        rng = random.Random(f"{seed}-{k}")
        name = f"annotator-{k + 1}"
        out = []
        for r in rows:
            ok = truth[(r["text"].strip(), r["label"])]
            if random_answers:
                ok = rng.random() < 0.5
            elif rng.random() < noise:
                ok = not ok
            answers[(name, r["item_id"])] = "yes" if ok else "no"
            out.append({**r, "annotator": name, Q: "yes" if ok else "no"})
        p = tmp / f"{name}.csv"
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(out)
        paths.append(p)
    return paths, answers


def _key(study):
    return json.loads((study / A.KEY_NAME).read_text())


def _records(run):
    return {(d["dataset"], d["metric"]): d for d in map(json.loads, (run / "results.jsonl").read_text().splitlines())}


# ----------------------------------------------------------------------------- export


def test_export_is_blinded_shuffled_and_stratified(run_dir, study):
    run, _ = run_dir
    meta = json.loads((run / "run.json").read_text())
    key = _key(study)
    assert key["private"].startswith("PRIVATE") and not (study / A.SEND_DIR / A.KEY_NAME).exists()
    send = sorted(p for p in (study / A.SEND_DIR).rglob("*") if p.is_file())
    assert {p.relative_to(study / A.SEND_DIR).as_posix() for p in send} == {
        A.CSV_NAME, A.GUIDE_NAME, A.LS_TASKS, A.LS_CONFIG, A.ARGILLA_SETTINGS, A.ARGILLA_RECORDS}
    secrets_ = [*NAMES, REF, str(run), str(run.parent), meta["reference"]["fingerprint"][:12],
                *(c["fingerprint"][:12] for c in meta["candidates"]), "source_row", "row_sha256"]
    for p in send:
        text = p.read_text(encoding="utf-8")
        for s in secrets_:
            assert s not in text, (p.name, s)
    # every dataset, the reference included, with --per-dataset items, ids random and unique
    per = {d["name"]: d["items"] for d in key["datasets"]}
    assert per == {REF: 24, **{n: 24 for n in NAMES}}
    ids = [it["id"] for it in key["items"]]
    assert len(set(ids)) == len(ids) == 120 and all(len(i) == 11 and i[0] == "i" for i in ids)
    rows = _items(study)
    assert [r["item_id"] for r in rows] == ids and list(rows[0]) == ["item_id", "annotator", "text", "label", Q]
    assert all(r[Q] == "" and r["annotator"] == "" for r in rows)
    # shuffled: datasets interleave (not five blocks)
    order = [it["dataset"] for it in key["items"]]
    assert sum(a != b for a, b in zip(order, order[1:])) > 60
    # stratified: each label's share in a dataset's items is its share in the data, within one item
    for d in key["datasets"]:
        data = [json.loads(x)["label"] for x in (run.parent / f"{d['name']}.jsonl").read_text().splitlines()]
        got = [r["label"] for r, it in zip(rows, key["items"]) if it["dataset"] == d["name"]]
        for lab in set(data):
            assert abs(got.count(lab) - 24 * data.count(lab) / len(data)) < 1 + 1e-9, (d["name"], lab)
    # Label Studio: tasks with the item's data, a config whose Choices are the rubric's verdicts
    tasks = json.loads((study / A.SEND_DIR / A.LS_TASKS).read_text())
    assert [t["data"]["item_id"] for t in tasks] == ids and set(tasks[0]) == {"data"}
    cfg = ET.fromstring((study / A.SEND_DIR / A.LS_CONFIG).read_text())
    ch = cfg.find("Choices")
    assert ch.get("name") == Q and ch.get("toName") == "text" and [c.get("value") for c in ch] == ["yes", "no"]
    assert {t.get("name"): t.get("value") for t in cfg.iter("Text")} == {"text": "$text", "label": "$label"}
    # Argilla v2: rg.Settings.from_json's layout, records keyed by the item ids
    st = json.loads((study / A.SEND_DIR / A.ARGILLA_SETTINGS).read_text())
    assert [f["name"] for f in st["fields"]] == ["text", "label"] and st["fields"][0]["settings"]["type"] == "text"
    assert st["questions"][0]["name"] == Q and st["questions"][0]["settings"]["type"] == "label_selection"
    assert [o["value"] for o in st["questions"][0]["settings"]["options"]] == ["yes", "no"]
    recs = [json.loads(x) for x in (study / A.SEND_DIR / A.ARGILLA_RECORDS).read_text().splitlines()]
    assert [r["id"] for r in recs] == ids and set(recs[0]) == {"id", "text", "label"}


def test_same_seed_draws_the_same_rows_with_fresh_ids(run_dir, study, tmp_path):
    run, _ = run_dir
    assert main(["annotate", "export", str(run), "--out", str(tmp_path / "again"), "--per-dataset", "24",
                 "--seed", "3"]) == 0
    a, b = _key(study), _key(tmp_path / "again")
    assert [(it["dataset"], it["row"]) for it in a["items"]] == [(it["dataset"], it["row"]) for it in b["items"]]
    assert not {it["id"] for it in a["items"]} & {it["id"] for it in b["items"]}


# ----------------------------------------------------------------------------- statistics by hand


def test_alpha_by_hand_and_published_values():
    # two coders, four binary units: coincidences o00=4, o01=o10=1, o11=2 (n0=5, n1=3, n=8);
    # alpha = 1 - (n-1)(o01+o10) / (2 n0 n1) = 1 - 7*2/30 = 8/15
    assert A.krippendorff_alpha([[1, 1, 0, 0], [1, 0, 0, 0]], "nominal", [0, 1]) == pytest.approx(8 / 15, abs=1e-12)
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 coders x 12 units with gaps
    nan = np.nan
    d = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    assert round(A.krippendorff_alpha(d, "nominal", [1, 2, 3, 4, 5]), 3) == 0.743
    assert round(A.krippendorff_alpha(d, "ordinal", [1, 2, 3, 4, 5]), 3) == 0.815
    # undefined: nothing rated twice, or one answer only
    assert A.krippendorff_alpha([[1, nan], [nan, 0]], "nominal", [0, 1]) is None
    assert A.alpha_with_interval([[1, 1, 1], [1, 1, 1]], "nominal", [0, 1], n_boot=50)["value"] is None


def test_questions_come_from_the_rubrics(tmp_path):
    q = A.load_question("instruction_following")
    assert (q.name, q.choices, q.level, q.kind) == ("instruction-following", ("yes", "partly", "no"), "ordinal", "choices")
    assert q.parse(" Partly ") == "partly" and q.parse("maybe") is None
    assert A.load_question("label_correctness").level == "nominal"
    rub = tmp_path / "quality.yaml"
    rub.write_text("name: fluency-1to5\ntask: instruction\nprompt: |-\n  Response: {output}\n  How fluent is it (1-5)?\n"
                   "verdicts: {'1': 0.0, '2': 0.25, '3': 0.5, '4': 0.75, '5': 1.0}\n")
    r = A.load_question(str(rub))
    assert (r.kind, r.choices, r.level, r.title) == ("rating", ("1", "2", "3", "4", "5"), "ordinal", "How fluent is it (1-5)?")
    assert r.parse(4) == "4" and r.parse("4.0") == "4" and r.parse(6) is None
    cfg = ET.fromstring(A.label_studio_config([r], ["instruction", "input", "output"]))
    assert cfg.find("Rating").get("maxRating") == "5" and cfg.find("Rating").get("toName") == "output"
    st = A.argilla_settings([r], ["instruction", "input", "output"], "g")
    assert st["questions"][0]["settings"] == {"type": "rating", "options": [{"value": i} for i in range(1, 6)]}
    with pytest.raises(UserError, match="compares two answers"):
        A.load_question("pairwise_preference")


# ----------------------------------------------------------------------------- the round trip


def test_round_trip_known_agreement_scores_and_judge(run_dir, study, tmp_path, capsys):
    run, truth = run_dir
    paths, answers = _annotate(study, truth, noise=0.05, tmp=tmp_path)
    key = _key(study)
    rc = main(["annotate", "import", *map(str, paths), "--key", str(study / A.KEY_NAME), "--boot", "200"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((run / A.REPORT_JSON).read_text())
    q = report["questions"][0]
    # alpha: what krippendorff.alpha says on the matrix built here from the simulated answers
    ids = [it["id"] for it in key["items"]]
    M = [[0.0 if answers[(f"annotator-{k}", i)] == "yes" else 1.0 for i in ids] for k in (1, 2, 3)]
    want = krippendorff.alpha(reliability_data=M, level_of_measurement="nominal")
    assert q["alpha"]["value"] == pytest.approx(want, abs=1e-12) and want > 0.7
    lo, hi = q["alpha"]["ci"]
    assert lo < want < hi and q["alpha"]["items"] == 120 and q["alpha"]["ratings"] == 360
    # human scores: the mean of the simulated ratings mapped back through the key, as ordinary records
    recs = _records(run)
    meta = json.loads((run / "run.json").read_text())
    fps = {e["name"]: e["fingerprint"] for e in [meta["reference"], *meta["candidates"]]}
    for d in [REF, *NAMES]:
        mine = [i for i in ids if next(it for it in key["items"] if it["id"] == i)["dataset"] == d]
        expect = np.mean([np.mean([answers[(f"annotator-{k}", i)] == "yes" for k in (1, 2, 3)]) for i in mine])
        rec = recs[(d, "human/" + Q)]
        assert rec["value"] == pytest.approx(expect, abs=1e-12)
        assert rec["ci"][0] <= rec["value"] <= rec["ci"][1] and rec["higher_is_better"] is True
        assert rec["role"] == ("reference" if d == REF else "candidate")
        sig = rec["signature"]
        assert sig["args"]["rubric"] == "label_correctness" and sig["args"]["key"] == key["fingerprint"][:16]
        assert sig["data"]["candidate"] == fps[d] and sig["metric"] == "human/" + Q
    assert recs[(NAMES[3], "human/" + Q)]["value"] < recs[(NAMES[0], "human/" + Q)]["value"]  # 60% relabelled
    # the records are current for 'synthbench report' (not stale), beside the run's own
    from harness.run.store import current_records

    current, _, stale = current_records(run, meta)
    assert not stale and {r.metric for r in current} >= {"human/" + Q, "judge/label-correctness"}
    # across candidates: Spearman of each stored metric with the human scores (scipy's value)
    from scipy.stats import spearmanr

    human = {d: recs[(d, "human/" + Q)]["value"] for d in NAMES}
    rows = {r["metric"]: r for r in q["across"]["rows"]}
    assert q["across"]["rows"][0]["metric"] == "judge/label-correctness" and rows["judge/label-correctness"]["kind"] == "judge"
    for m in ("judge/label-correctness", "lexical/distinct-1", "length/mean-words"):
        x = [recs[(d, m)]["value"] for d in NAMES]
        assert rows[m]["rho"] == pytest.approx(spearmanr(x, [human[d] for d in NAMES]).statistic, abs=1e-12)
    assert rows["length/mean-words"]["oriented"] is None and rows["dup/exact-rate"]["rho"] is None
    # per item: the judge's verdict (its row flags) against the humans' majority, on every item
    per = q["per_item"][0]
    assert per["metric"] == "judge/label-correctness" and per["items"] == 120 and not per["not_computed"]
    judge = _truthy_judge(truth)
    agree = []
    for it, r in zip(key["items"], _items(study)):
        j = judge([{"content": f"Text: {r['text'].strip()}\nProposed label: {r['label']}\n"}])
        votes = [answers[(f"annotator-{k}", it["id"])] for k in (1, 2, 3)]
        agree.append(j == max(set(votes), key=votes.count))
    assert per["agreement"] == pytest.approx(np.mean(agree), abs=1e-12) and 0.7 < per["agreement"] < 1
    md = (run / A.REPORT_MD).read_text()
    assert "Krippendorff" in md and f"`human/{Q}`" in md and "judge/label-correctness" in md


def test_pure_noise_annotators_agree_at_chance(run_dir, study, tmp_path):
    run, truth = run_dir
    paths, _ = _annotate(study, truth, noise=0, tmp=tmp_path, random_answers=True, seed=7)
    key = A.read_key(study / A.KEY_NAME)
    source = A.open_source(run)
    ratings = A.read_ratings(paths, key, A.check_key(key, source, "k"))
    a = A.analyse(key, source, ratings, n_boot=200)["questions"][0]["alpha"]
    # alpha of random answers has mean 0 and, here, a standard error near 0.05 (40 simulated studies:
    # mean +0.003, sd 0.053, 95% of the intervals cover 0); this seed's study lies 2 SE below 0
    assert abs(a["value"]) < 0.2 and a["ci"][0] < 0 and a["ci"][1] < 0.2


def test_label_studio_json_export_is_read(run_dir, study, tmp_path):
    run, truth = run_dir
    key = A.read_key(study / A.KEY_NAME)
    shown = A.check_key(key, A.open_source(run), "k")
    tasks = json.loads((study / A.SEND_DIR / A.LS_TASKS).read_text())
    export = []
    for n, t in enumerate(tasks[:30], 1):  # Label Studio's JSON export: ids, annotations, result entries
        ok = truth[(t["data"]["text"].strip(), t["data"]["label"])]
        ann = [{"id": 10 * n + u, "completed_by": u, "was_cancelled": False, "ground_truth": False,
                "created_at": "2024-05-01T10:00:00.000000Z", "updated_at": "2024-05-01T10:00:00.000000Z",
                "lead_time": 4.2, "task": n, "project": 3, "prediction": {}, "result_count": 2,
                "result": [{"id": f"r{n}{u}", "type": "choices", "from_name": Q, "to_name": "text",
                            "origin": "manual", "value": {"choices": ["yes" if ok == (u != 3) else "no"]}},
                           {"id": f"c{n}{u}", "type": "textarea", "from_name": "comment", "to_name": "text",
                            "origin": "manual", "value": {"text": ["unsure"]}}]} for u in (1, 2, 3)]
        ann.append({"id": 999 + n, "completed_by": {"id": 4, "email": "late@example.org"}, "was_cancelled": True,
                    "result": [{"type": "choices", "from_name": Q, "value": {"choices": ["no"]}}]})
        export.append({"id": n, "data": t["data"], "annotations": ann, "drafts": [], "predictions": [],
                       "meta": {}, "created_at": "2024-05-01T09:00:00.000000Z", "inner_id": n,
                       "total_annotations": 3, "cancelled_annotations": 1, "project": 3, "updated_by": 1,
                       "comment_authors": [], "file_upload": "tasks.json"})
    p = tmp_path / "project-3-at-2024-05-01.json"
    p.write_text(json.dumps(export))
    got = A.read_label_studio(p, [A.Question.from_dict(q) for q in key["questions"]], shown)
    assert len(got) == 90 and {r.annotator for r in got} == {f"label-studio-user-{u}" for u in (1, 2, 3)}
    for r in got:
        t = next(t for t in tasks if t["data"]["item_id"] == r.item)
        ok = truth[(t["data"]["text"].strip(), t["data"]["label"])]
        assert r.answer == ("yes" if ok == (r.annotator != "label-studio-user-3") else "no")
    # the JSON-MIN export (one flat object per annotation) too
    flat = [{"id": 1, "annotator": 1, "item_id": tasks[0]["data"]["item_id"], "text": tasks[0]["data"]["text"],
             "label": tasks[0]["data"]["label"], Q: "no", "annotation_id": 7, "lead_time": 2.0}]
    (tmp_path / "min.json").write_text(json.dumps(flat))
    questions = [A.Question.from_dict(q) for q in key["questions"]]
    assert [(r.annotator, r.answer) for r in A.read_label_studio(tmp_path / "min.json", questions, shown)] == [("1", "no")]
    # a choices result for a question the study does not have is refused, naming the task
    export[0]["annotations"][0]["result"][0]["from_name"] = "sentiment"
    p.write_text(json.dumps(export))
    with pytest.raises(UserError, match=r"task 1 .*'sentiment'"):
        A.read_label_studio(p, [A.Question.from_dict(q) for q in key["questions"]], shown)


# ----------------------------------------------------------------------------- refusals


def _one_line_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_rating_and_unknown_item_exit_2_with_one_line(run_dir, study, tmp_path, capsys):
    _, truth = run_dir
    paths, _ = _annotate(study, truth, noise=0.1, tmp=tmp_path, n=1)
    lines = paths[0].read_text().splitlines()
    cols = lines[2].rsplit(",", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], cols[0] + ",maybe", *lines[3:]]) + "\n")
    err = _one_line_error(capsys, ["annotate", "import", str(bad), "--key", str(study / A.KEY_NAME)])
    assert f"{bad}: line 3, column '{Q}': 'maybe' is not on the scale of {Q} (yes, no)" in err and "fix:" in err
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("\n".join([lines[0], "ixxxxxxxxxx" + lines[1][11:], *lines[2:]]) + "\n")
    err = _one_line_error(capsys, ["annotate", "import", str(unknown), "--key", str(study / A.KEY_NAME)])
    assert f"{unknown}: line 2: unknown item id 'ixxxxxxxxxx'" in err
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([lines[0], lines[1], lines[1]]) + "\n")
    err = _one_line_error(capsys, ["annotate", "import", str(twice), "--key", str(study / A.KEY_NAME)])
    assert "a second time" in err and "line 3" in err


def test_shuffled_or_foreign_key_is_refused(run_dir, study, tmp_path, capsys):
    run, truth = run_dir
    paths, _ = _annotate(study, truth, noise=0.1, tmp=tmp_path, n=1)
    key = _key(study)
    ids = [it["id"] for it in key["items"]]
    shuffled = dict(key, items=[dict(it, id=i) for it, i in zip(key["items"], ids[1:] + ids[:1])])
    p = tmp_path / "edited.json"
    p.write_text(json.dumps(shuffled))
    err = _one_line_error(capsys, ["annotate", "import", str(paths[0]), "--key", str(p)])
    assert "edited after export" in err
    shuffled["fingerprint"] = A.key_fingerprint(shuffled)  # a consistent-looking key whose ids point elsewhere
    p.write_text(json.dumps(shuffled))
    err = _one_line_error(capsys, ["annotate", "import", str(paths[0]), "--key", str(p)])
    assert f"{p}: item {ids[1]} (entry 1): its row fingerprint does not match the data" in err
    # the seal recomputed too: the ratings file's text is not the text the key maps the item to
    for it in shuffled["items"]:
        it["check"] = A.item_check(it["id"], it["dataset_fingerprint"], it["row"], it["row_sha256"])
    shuffled["fingerprint"] = A.key_fingerprint(shuffled)
    p.write_text(json.dumps(shuffled))
    err = _one_line_error(capsys, ["annotate", "import", str(paths[0]), "--key", str(p)])
    assert f"{paths[0]}: line 2: the text of item {ids[0]} is not the row the key maps it to" in err
    # rows moved inside a dataset while the row fingerprint stays: the data no longer matches
    moved = json.loads(json.dumps(key))
    moved["items"][0]["row"] = (moved["items"][0]["row"] + 1) % 24
    moved["fingerprint"] = A.key_fingerprint(moved)
    p.write_text(json.dumps(moved))
    err = _one_line_error(capsys, ["annotate", "import", str(paths[0]), "--key", str(p)])
    assert "row fingerprint does not match the data" in err
    # the key of another export: its ids are not the ratings' ids
    assert main(["annotate", "export", str(run), "--out", str(tmp_path / "other"), "--per-dataset", "5"]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["annotate", "import", str(paths[0]), "--key", str(tmp_path / "other" / A.KEY_NAME)])
    assert "unknown item id" in err


# ----------------------------------------------------------------------------- the judge's rows, sampled


def test_judge_rows_are_reproduced_from_a_sampled_run():
    """With max_rows below the row count the judge sees a seeded sample: the rows and verdicts read back
    from the record and its flags are exactly what the metric judged."""
    from harness.metrics.base import Context
    from harness.metrics.direct import judge as jm
    from harness.types import Corpus, Result, Signature
    from tests.unit.metrics.test_judge import ScriptedJudge

    rows = read_jsonl(shared(f"{CLINC}/gpt.jsonl"), limit=60)
    corpus = Corpus(name="c", source="c", kind="classification", texts=tuple(r["text"] for r in rows),
                    labels=tuple(r["label"] if i % 4 else "weather" for i, r in enumerate(rows)))
    asked = []

    def fn(prompt):
        text = prompt.split("Text: ")[1].split("\n")[0]
        asked.append(text)
        return "no" if "Proposed label: weather" in prompt else "yes"

    score = jm.label_correctness(Context(corpus, seed=5, judge=ScriptedJudge(fn)), max_rows=25)
    args = {"rubric": "label_correctness", "max_rows": 25, "max_chars": 1500}
    rec = Result("c", "judge/label-correctness", score.value, score.ci, True,
                 Signature("x", "judge/label-correctness", args, {}, None, 5), details=score.details)
    got, why = A.judge_row_scores(rec, {"n": 60, "rows": score.rows}, corpus, 5)
    assert why is None and sorted(corpus.texts[p] for p in got) == sorted(asked)
    assert all(got[p] == (0.0 if corpus.labels[p] == "weather" else 1.0) for p in got)
    wrong_seed, why = A.judge_row_scores(rec, {"n": 60, "rows": score.rows}, corpus, 6)
    assert wrong_seed is None or sorted(corpus.texts[p] for p in wrong_seed) != sorted(asked)
    bad = Result("c", rec.metric, 0.5, None, True, rec.signature,
                 details={**score.details, "judge": {**score.details["judge"], "unparsable": 2}})
    assert A.judge_row_scores(bad, {"n": 60, "rows": score.rows}, corpus, 5)[1].startswith("2 judge answer(s)")


# ----------------------------------------------------------------------------- other sources


def test_suite_source_and_instruction_data(tmp_path, capsys):
    """A suite YAML as the source (no run yet), instruction data: instruction/input/output columns, the
    ordinal yes/partly/no scale, human records into reports/<suite name>-like --out."""
    d = shared("self_instruct_user_oriented_252")
    for name in ("davinci", "text-davinci-003"):
        rows = read_jsonl(d / f"predictions_{name}.jsonl", limit=30)
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in rows))
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: instr-study\nreference: {{name: gpt3-003, path: {tmp_path / 'text-davinci-003.jsonl'}}}\n"
                     f"candidates: [{{name: gpt3-base, path: {tmp_path / 'davinci.jsonl'}}}]\n")
    assert main(["annotate", "export", str(suite), "--out", str(tmp_path / "st"), "--per-dataset", "10"]) == 0
    rows = _items(tmp_path / "st")
    assert list(rows[0]) == ["item_id", "annotator", "instruction", "input", "output", "instruction-following"]
    key = _key(tmp_path / "st")
    assert key["source"]["kind"] == "suite" and key["questions"][0]["level"] == "ordinal"
    rng = random.Random(0)
    answers = {}
    for k in (1, 2):
        for r in rows:
            base = len(r["output"]) % 3
            answers[(k, r["item_id"])] = ["yes", "partly", "no"][base if rng.random() < 0.8 else rng.randrange(3)]
        with (tmp_path / f"a{k}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({**r, "annotator": f"a{k}", "instruction-following": answers[(k, r["item_id"])].upper()}
                        for r in rows)
    assert main(["annotate", "import", str(tmp_path / "a1.csv"), str(tmp_path / "a2.csv"), "--key",
                 str(tmp_path / "st" / A.KEY_NAME), "--out", str(tmp_path / "res"), "--boot", "100"]) == 0
    out = json.loads((tmp_path / "res" / A.REPORT_JSON).read_text())
    score = {"yes": 1.0, "partly": 0.5, "no": 0.0}
    ids = [it["id"] for it in key["items"]]
    M = [[score[answers[(k, i)]] for i in ids] for k in (1, 2)]
    assert out["questions"][0]["alpha"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=M, level_of_measurement="ordinal", value_domain=[0.0, 0.5, 1.0]), abs=1e-12)
    recs = _records(tmp_path / "res")
    assert {k for k in recs} == {("gpt3-003", "human/instruction-following"), ("gpt3-base", "human/instruction-following")}
    assert out["questions"][0]["across"]["not_computed"].startswith("fewer than 2 candidates")
    capsys.readouterr()
