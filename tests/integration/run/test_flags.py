"""Row flags and curation: defects planted in real data are flagged at their source rows, survive a
resumed run, are dropped by ``synthbench curate``, and the before/after table shows the change."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness import metrics
from harness.cli import main
from harness.data.load import FieldMap, load_corpus
from harness.metrics.base import Context
from harness.metrics.direct.duplicates import normalise
from harness.run.flags import FLAGS_JSONL, FLAGS_PARQUET, ROWS_DIR, read_flags
from harness.run.runner import RunConfig, combine_repeats, run
from harness.types import Corpus, Score
from tests.conftest import ROOT, read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"
AGP = "ag_news_chatgpt_paraphrases"
QUIET = {"log": lambda m: None}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def later_repeats(texts) -> list[int]:
    """Brute force: positions whose normalised text occurred at an earlier position."""
    seen, out = set(), []
    for i, t in enumerate(texts):
        k = normalise(t)
        if k in seen:
            out.append(i)
        seen.add(k)
    return out


def flags_of(out_dir, dataset, metric=None, reason=None) -> list[int]:
    """Source rows flagged in OUT/flags.parquet (optionally by one metric and/or reason)."""
    t = pq.read_table(out_dir / FLAGS_PARQUET).to_pylist()
    return sorted(r["row"] for r in t if r["dataset"] == dataset and (metric is None or metric in r["metrics"])
                  and (reason is None or reason in r["reasons"]))


def preview(text):
    return " ".join(text.split())[:120]


@pytest.fixture(scope="module")
def dup_file(tmp_path_factory):
    """300 real ChatGPT intent paraphrases (clinc150) with 25 exact duplicates planted (case and spacing
    changed), each after its source row; every row carries an extra column."""
    rows = read_jsonl(shared(f"{CLINC}/gpt.jsonl"), limit=300)
    for i, r in enumerate(rows):
        r["row_note"] = f"orig-{i}"
    rng = random.Random(4)
    for src in rng.sample(range(300), 25):
        p = next(i for i, r in enumerate(rows) if r["row_note"] == f"orig-{src}")
        copy = dict(rows[p], text="  " + rows[p]["text"].upper() + " ", row_note=f"copy-of-{src}")
        rows.insert(rng.randint(p + 1, len(rows)), copy)
    planted = [i for i, r in enumerate(rows) if r["row_note"].startswith("copy")]
    path = write_jsonl(tmp_path_factory.mktemp("dup") / "planted.jsonl", rows)
    return path, rows, planted


def run_dup(path, out, sample_size=None, names=("dup/exact-rate", "dup/near-rate")):
    c = load_corpus(str(path), name="planted")
    return run([(c, "candidate")], None, metrics.select(list(names)), out,
               RunConfig(progress=False, sample_size=sample_size), **QUIET)


# ----------------------------------------------------------------------------- row identity

def test_row_ids_survive_subsample_and_holdout_and_fingerprints_do_not_move():
    """Row ids map every sampled / held-out row to its source row; fingerprints equal the committed
    reports' (reports/ag-news/run.json), so no result cache or committed report is invalidated."""
    full = load_corpus(str(shared("ag_news_real/test.jsonl")), name="ag-news-real")
    train, test = full.holdout(0.5, 0)
    ref = train.subsample(500, 0)
    meta = json.loads((ROOT / "reports/ag-news/run.json").read_text())
    assert ref.fingerprint == meta["reference"]["fingerprint"]
    assert test.fingerprint == meta["test"]["fingerprint"]
    para = load_corpus(str(shared(f"{AGP}/news_gpt_para.jsonl")), FieldMap(label="label_name"),
                       name="chatgpt-paraphrase").subsample(500, 0)
    assert para.fingerprint == meta["candidates"][0]["fingerprint"]
    for part in (train, test, ref, ref.subsample(50, 3)):
        assert part.source_identity == (full.fingerprint, 7600)
        assert all(part.texts[i] == full.texts[r] and part.labels[i] == full.labels[r]
                   for i, r in enumerate(part.source_row_ids))
    assert sorted(set(train.source_row_ids) | set(test.source_row_ids)) == list(range(7600))
    assert full.source_row_ids == tuple(range(7600)) and full.row_ids is None


# ----------------------------------------------------------------------------- duplicates

def test_planted_duplicates_flagged_at_their_source_rows(tmp_path, dup_file):
    path, rows, planted = dup_file
    run_dup(path, tmp_path)
    flagged = flags_of(tmp_path, "planted", reason="duplicate")
    assert flagged == later_repeats([r["text"] for r in rows])  # brute force over the whole file
    assert set(planted) <= set(flagged) and len(planted) == 25
    assert set(flagged) <= set(flags_of(tmp_path, "planted", reason="near-duplicate"))
    for rec in pq.read_table(tmp_path / FLAGS_PARQUET).to_pylist():
        assert rec["preview"] == preview(rows[rec["row"]]["text"])
    meta = read_flags(tmp_path).datasets["planted"]
    assert meta["rows"] == meta["evaluated_rows"] == len(rows)
    assert meta["checks"]["dup/exact-rate"]["duplicate"] == len(flagged)
    rec = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert rec["details"]["row_flags"] == {"duplicate": len(flagged)}
    assert rec["value"] == pytest.approx(len(flagged) / len(rows))
    twin = [json.loads(x) for x in (tmp_path / FLAGS_JSONL).read_text().splitlines()]
    assert twin[0]["datasets"]["planted"]["fingerprint"] == meta["fingerprint"]
    assert twin[1:] == pq.read_table(tmp_path / FLAGS_PARQUET).to_pylist()


def test_duplicates_flagged_at_source_rows_when_the_run_subsamples(tmp_path, dup_file):
    path, rows, planted = dup_file
    run_dup(path, tmp_path, sample_size=200)
    # the runner's sample, drawn here independently: seed 0, 200 of the rows, source order kept
    idx = np.sort(np.random.default_rng(0).choice(len(rows), size=200, replace=False))
    expected = [int(idx[i]) for i in later_repeats([rows[j]["text"] for j in idx])]
    flagged = flags_of(tmp_path, "planted", reason="duplicate")
    assert flagged == expected and len(flagged) >= 5
    both = [i for i in planted if i in set(idx.tolist()) and
            int(rows[i]["row_note"].split("-")[-1]) in {int(rows[j]["row_note"].split("-")[-1]) for j in idx
                                                        if rows[j]["row_note"].startswith("orig")}]
    assert both and set(both) <= set(flagged)  # a planted copy whose source row was sampled is flagged
    meta = read_flags(tmp_path).datasets["planted"]
    assert (meta["rows"], meta["evaluated_rows"]) == (len(rows), 200)


def test_flags_survive_a_resumed_run_and_lost_row_files_are_recomputed(tmp_path, dup_file):
    path, _, _ = dup_file
    first = run_dup(path, tmp_path)
    before = (tmp_path / FLAGS_JSONL).read_bytes()
    again = run_dup(path, tmp_path)
    assert (first.computed, again.computed, again.reused) == (2, 0, 2)
    assert (tmp_path / FLAGS_JSONL).read_bytes() == before
    key = next(r.signature.key for r in again.results if r.metric == "dup/exact-rate")
    (tmp_path / ROWS_DIR / f"{key}.json").unlink()
    third = run_dup(path, tmp_path)
    assert (third.computed, third.reused) == (1, 1)
    assert (tmp_path / FLAGS_JSONL).read_bytes() == before
    # a recomputed result with another signature leaves no stale row file behind
    run_dup(path, tmp_path, sample_size=200)
    keys = {json.loads(x)["signature_key"] for x in (tmp_path / "results.jsonl").read_text().splitlines()}
    assert {f.stem for f in (tmp_path / ROWS_DIR).glob("*.json")} == keys


def test_repeats_flag_from_the_primary_sample_only():
    s = combine_repeats([Score(0.1, rows={"duplicate": [3]}), Score(0.3, rows={"duplicate": [7]})], (10, 20))
    assert s.rows == {"duplicate": [3]} and s.value == pytest.approx(0.2)


# ----------------------------------------------------------------------------- contamination, memorisation

@pytest.fixture(scope="module")
def contaminated(tmp_path_factory):
    """300 real ChatGPT AG News paraphrases; 20 real test rows copied in verbatim, 10 with words added
    around them, and 10 reference (seed) rows copied verbatim."""
    rows = read_jsonl(shared(f"{AGP}/news_gpt_para.jsonl"), limit=300)
    test = read_jsonl(shared(f"{AGP}/news_seeds_test.jsonl"))
    train = read_jsonl(shared(f"{AGP}/news_seeds_train.jsonl"))
    rng = random.Random(7)
    picks = rng.sample(test, 30)
    for k, r in enumerate(picks):
        text = r["text"] if k < 20 else "Breaking news today: " + r["text"] + " More soon."
        rows.insert(rng.randint(0, len(rows)), dict(r, text=text, seed="TEST"))
    for r in rng.sample(train, 10):
        rows.insert(rng.randint(0, len(rows)), dict(r, seed="REF"))
    path = write_jsonl(tmp_path_factory.mktemp("contam") / "para.jsonl", rows)
    return path, rows


def test_copied_test_rows_are_all_flagged_contaminated(tmp_path, contaminated):
    path, rows = contaminated
    cand = load_corpus(str(path), name="para")
    ref = load_corpus(str(shared(f"{AGP}/news_seeds_train.jsonl")), name="seeds-train")
    test = load_corpus(str(shared(f"{AGP}/news_seeds_test.jsonl")), name="test")
    specs = metrics.select(["contam/test-ngram-overlap", "memo/exact-copy-rate", "memo/ngram-overlap-rate"])
    run([(ref, "reference"), (cand, "candidate")], ref, specs, tmp_path, RunConfig(progress=False), test=test, **QUIET)
    copied = [i for i, r in enumerate(rows) if r.get("seed") == "TEST"]
    assert len(copied) == 30
    assert flags_of(tmp_path, "para", reason="contaminated") == copied
    ref_copies = [i for i, r in enumerate(rows) if r.get("seed") == "REF"]
    assert flags_of(tmp_path, "para", metric="memo/exact-copy-rate") == ref_copies
    assert set(ref_copies) <= set(flags_of(tmp_path, "para", reason="memorised"))
    assert flags_of(tmp_path, "seeds-train") == []  # the real seeds share nothing with the real test seeds


# ----------------------------------------------------------------------------- embedding and classifier metrics

@pytest.fixture(scope="module")
def clinc_parts():
    train = load_corpus(str(shared(f"{CLINC}/orig_train.jsonl")))
    test = load_corpus(str(shared(f"{CLINC}/orig_test.jsonl")), name="test").subsample(300, 0)
    ref = train.subsample(600, 0)
    rest = sorted(set(range(len(train))) - set(ref.source_row_ids))
    seen = {normalise(t) for t in ref.texts + test.texts}
    fresh = [i for i in rest if normalise(train.texts[i]) not in seen][:200]
    return train, ref, test, fresh


def mk(name, texts, labels=None):
    return Corpus(name, name, "classification" if labels else "text", tuple(texts),
                  tuple(labels) if labels is not None else None)


def test_dcr_and_near_match_flag_planted_copies(clinc_parts, fake_embedder):
    train, ref, test, fresh = clinc_parts
    texts = [train.texts[i] for i in fresh]
    rng = random.Random(2)
    ref_pos, test_pos = [], []
    for t in rng.sample(ref.texts, 10):
        texts.insert(rng.randint(0, len(texts)), t)
    for t in rng.sample(test.texts, 10):
        texts.insert(rng.randint(0, len(texts)), t.upper())
    ref_norm, test_norm = {normalise(t) for t in ref.texts}, {normalise(t) for t in test.texts}
    ref_pos = [i for i, t in enumerate(texts) if normalise(t) in ref_norm]
    test_pos = [i for i, t in enumerate(texts) if normalise(t) in test_norm]
    tctx = Context(test, embedder=fake_embedder, role="test")
    ctx = Context(mk("c", texts), embedder=fake_embedder, reference=Context(ref, embedder=fake_embedder), test=tctx)
    dcr = metrics.get("memo/dcr-closer-than-holdout")(ctx)
    assert set(ref_pos) <= set(dcr.rows["memorised"])
    assert len(dcr.rows["memorised"]) == dcr.details["closer_than_every_holdout_row"] <= dcr.details["count"]
    near = metrics.get("contam/test-near-match")(ctx)
    assert set(test_pos) <= set(near.rows["contaminated"])
    assert near.rows["contaminated"] == near.details["flagged_rows"]


def test_label_rows_follow_their_stated_rules(clinc_parts, fake_embedder):
    from harness.metrics.direct.faithfulness import LOW_AGREEMENT_P, _fit_proba

    train, ref, _, fresh = clinc_parts
    rng = random.Random(3)
    labels = [train.labels[i] for i in fresh]
    names = sorted(set(ref.labels))
    for i in rng.sample(range(len(labels)), 20):  # planted label noise
        labels[i] = rng.choice([x for x in names if x != labels[i]])
    cand = mk("c", [train.texts[i] for i in fresh], labels)
    ctx = Context(cand, embedder=fake_embedder, reference=Context(ref, embedder=fake_embedder))
    agree = metrics.get("faith/reference-agreement")(ctx)
    classes, P = _fit_proba(ctx.reference.embeddings, np.asarray(ref.labels, dtype=str), ctx.embeddings, 10.0)
    col = {str(c): i for i, c in enumerate(classes)}
    expected = [i for i, lab in enumerate(labels) if P[i, col[lab]] < LOW_AGREEMENT_P]
    assert agree.rows["low-agreement"] == expected and expected
    issues = metrics.get("faith/label-issue-rate")(ctx)
    assert issues.rows["label-issue"] == issues.details["flagged_rows"]
    assert len(issues.rows["label-issue"]) == issues.details["flagged"]


def test_c2st_flags_rows_from_another_distribution(clinc_parts):
    """Real intents as the candidate with 60 real news articles mixed in: the two-sample classifier's
    out-of-fold scores single out the articles; a candidate of real intents alone gets no flag."""
    train, ref, _, fresh = clinc_parts
    news = [r["text"] for r in read_jsonl(shared(f"{AGP}/news_seeds_test.jsonl"), limit=60)]
    s = metrics.get("distance/c2st-tfidf")(Context(mk("c", [train.texts[i] for i in fresh[:120]] + news),
                                                    reference=Context(ref)))
    ood = set(s.rows["out-of-distribution"])
    assert len(ood & set(range(120, 180))) >= 50
    assert len(ood - set(range(120, 180))) <= 0.15 * len(ood)
    same = metrics.get("distance/c2st-tfidf")(Context(mk("c", [train.texts[i] for i in fresh[:180]]),
                                                      reference=Context(ref)))
    assert 0.4 < same.value < 0.6 and len(same.rows["out-of-distribution"]) <= 2


def test_conformal_outliers_match_scipy_benjamini_hochberg():
    from scipy.stats import false_discovery_control

    from harness.run.flags import conformal_outliers

    rng = np.random.default_rng(0)
    ref = rng.normal(size=300)
    cand = np.r_[rng.normal(size=200), rng.normal(3.0, 1.0, size=50)]
    pv = np.array([(1 + (ref >= x).sum()) / (len(ref) + 1) for x in cand])
    for q in (0.05, 0.1, 0.2):
        expected = np.flatnonzero(false_discovery_control(pv, method="bh") <= q + 1e-12).tolist()
        assert conformal_outliers(cand, ref, fdr=q) == expected
    assert len(set(conformal_outliers(cand, ref, fdr=0.1)) & set(range(200, 250))) >= 25


# ----------------------------------------------------------------------------- curate

def curate_cli(capsys, *args):
    code = main(["curate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_curate_drops_exactly_the_flagged_rows_and_keeps_extra_columns(tmp_path, dup_file, capsys):
    path, rows, _ = dup_file
    run_dup(path, tmp_path / "run")
    dup = set(flags_of(tmp_path / "run", "planted", reason="duplicate"))
    code, out, _ = curate_cli(capsys, path, "--flags", tmp_path / "run" / FLAGS_PARQUET, "--drop", "duplicate",
                              "--out", tmp_path / "clean.jsonl")
    assert code == 0 and f"dropped {len(dup)} row(s)" in out
    assert read_jsonl(tmp_path / "clean.jsonl") == [r for i, r in enumerate(rows) if i not in dup]
    both = dup | set(flags_of(tmp_path / "run", "planted", reason="near-duplicate"))
    code, out, _ = curate_cli(capsys, path, "--flags", tmp_path / "run" / FLAGS_JSONL, "--drop", "all",
                              "--out", tmp_path / "all.jsonl")
    assert code == 0 and len(read_jsonl(tmp_path / "all.jsonl")) == len(rows) - len(both)


def test_curate_csv_and_parquet_keep_their_format(tmp_path, dup_file, capsys):
    import pyarrow as pa

    path, rows, _ = dup_file
    src = tmp_path / "planted.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "planted.parquet")
    for ext in ("csv", "parquet"):
        c = load_corpus(str(tmp_path / f"planted.{ext}"), name=ext)
        run([(c, "candidate")], None, metrics.select(["dup/exact-rate"]), tmp_path / ext, RunConfig(progress=False),
            **QUIET)
        dup = set(flags_of(tmp_path / ext, ext))
        code, _, _ = curate_cli(capsys, tmp_path / f"planted.{ext}", "--flags", tmp_path / ext, "--drop", "duplicate",
                                "--out", tmp_path / f"clean.{ext}")
        assert code == 0
        kept = [r for i, r in enumerate(rows) if i not in dup]
        if ext == "csv":
            with (tmp_path / "clean.csv").open(encoding="utf-8", newline="") as f:
                got = list(csv.DictReader(f))
            assert got == [{k: str(v) for k, v in r.items()} for r in kept]
        else:
            t = pq.read_table(tmp_path / "clean.parquet")
            assert t.schema == pq.read_table(tmp_path / "planted.parquet").schema and t.to_pylist() == kept


def test_curate_refuses_what_does_not_fit(tmp_path, dup_file, capsys):
    path, _, _ = dup_file
    run_dup(path, tmp_path / "run")
    flags = tmp_path / "run" / FLAGS_PARQUET
    other = shared(f"{CLINC}/human.jsonl")
    cases = [
        ((other, "--flags", flags, "--drop", "duplicate", "--out", tmp_path / "x.jsonl"), "no dataset in"),
        ((other, "--flags", flags, "--dataset-name", "planted", "--drop", "duplicate", "--out", tmp_path / "x.jsonl"),
         "not the dataset these flags are for"),
        ((path, "--flags", flags, "--dataset-name", "plantd", "--drop", "duplicate", "--out", tmp_path / "x.jsonl"),
         "did you mean 'planted'"),
        ((path, "--flags", flags, "--text-field", "label", "--drop", "duplicate", "--out", tmp_path / "x.jsonl"),
         "column flags differ"),
        ((path, "--flags", flags, "--drop", "duplicat", "--out", tmp_path / "x.jsonl"), "did you mean 'duplicate'"),
        ((path, "--flags", flags, "--drop", "memorised", "--out", tmp_path / "x.jsonl"), "available: duplicate, near-duplicate"),
        ((path, "--flags", flags, "--drop", "all", "--out", path), "is the input dataset"),
        ((path, "--flags", flags, "--drop", "all", "--out", tmp_path / "x.txt"), "unknown format"),
        ((path, "--flags", path, "--drop", "all", "--out", tmp_path / "x.jsonl"), "not a synthbench flags file"),
        ((path, "--flags", flags, "--out", tmp_path / "x.jsonl"), "missing --drop"),
    ]
    for args, expect in cases:
        code, _, err = curate_cli(capsys, *args)
        assert code == 2 and expect in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert not (tmp_path / "x.jsonl").exists()


def test_evaluate_curate_evaluate_before_and_after(tmp_path, dup_file, capsys):
    """The documented loop through the CLI: evaluate, curate, evaluate again, compare."""
    path, rows, planted = dup_file
    d = shared(CLINC)
    common = ["--reference", str(d / "orig_train.jsonl"), "--test", str(d / "orig_test.jsonl"), "--metrics",
              "dup,memo/exact-copy-rate,contam/test-ngram-overlap", "--no-progress"]
    assert main(["eval", f"gpt={path}", *common, "--out", str(tmp_path / "before")]) == 0
    report = (tmp_path / "before" / "report.md").read_text()
    dup = flags_of(tmp_path / "before", "gpt", reason="duplicate")
    ref_dup = flags_of(tmp_path / "before", "orig_train", reason="duplicate")
    assert "## Flagged rows" in report and f"| `dup/exact-rate` | duplicate | {len(ref_dup)} | {len(dup)} |" in report
    capsys.readouterr()
    code, out, _ = curate_cli(capsys, path, "--flags", tmp_path / "before" / FLAGS_PARQUET, "--drop", "duplicate",
                              "--out", tmp_path / "clean.jsonl")
    assert code == 0 and len(read_jsonl(tmp_path / "clean.jsonl")) == len(rows) - len(dup)
    assert main(["eval", f"gpt={tmp_path / 'clean.jsonl'}", *common, "--out", str(tmp_path / "after")]) == 0
    capsys.readouterr()
    code, out, _ = curate_cli(capsys, "--compare", tmp_path / "before", tmp_path / "after")
    assert code == 0 and (tmp_path / "after" / "curation.md").read_text().strip() == out.strip()
    before = len(dup) / len(rows)
    line = next(x for x in out.splitlines() if x.startswith("| `dup/exact-rate`"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[3].startswith(f"{before:.4f}") and cells[4].startswith("0.0000")
    assert cells[5] == f"{-before:.4f}" and cells[6] == "✓"
    assert f"| `dup/exact-rate` | duplicate | {len(dup)} | 0 |" in out
    assert "orig\\_train" not in out  # the unchanged reference is not repeated
