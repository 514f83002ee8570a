"""Issue #20: real data as it comes, every number current, every file safe.

One test (or a few) per defect the issue lists: stale records, the user's files, concurrent runs, lone
surrogates, sample sizes, damaged caches, unwritable output, terminal escapes, duplicate YAML keys, late
argument checks, compressed files and text folders, empty rows and label mismatches; and the real
paraphrase and augmentation sets of ../shared/data, loaded as published.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from harness.cli import main
from tests.conftest import ROOT, shared


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line(code, err, *words):
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("synthbench: error: ") and "-- fix: " in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _records(out):
    return {(d["dataset"], d["metric"]): d for d in
            (json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines() if x.strip())}


DISTINCT = [{"text": f"row number {i} about things {i * 7}"} for i in range(31)]


# ----------------------------------------------------------------------------- 1. stale records

def test_report_never_shows_a_number_computed_on_other_data(tmp_path, capsys):
    data, out = tmp_path / "a.jsonl", tmp_path / "o"
    _rows(data, DISTINCT)
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2,dup/exact-rate", "--no-progress"], capsys)[0] == 0
    _rows(data, DISTINCT + [DISTINCT[0]] * 19)  # the file changes: 19 duplicate rows
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2", "--no-progress"], capsys)[0] == 0
    code, table, err = _cli(["report", out], capsys)
    assert code == 0
    assert "dup/exact-rate" not in table  # the old file's 0.0000 is not shown beside the new file
    stale = [x for x in err.splitlines() if x.startswith("stale")]
    assert len(stale) == 1 and "a dup/exact-rate" in stale[0] and "other data" in stale[0]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Stale, not shown" in md and "| `dup/exact-rate`" not in md
    # a run asking for it recomputes it on the data it names
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2,dup/exact-rate", "--no-progress"], capsys)[0] == 0
    assert _records(out)[("a", "dup/exact-rate")]["value"] == pytest.approx(19 / 50)
    assert "dup/exact-rate" in _cli(["report", out], capsys)[1]


def test_a_bumped_metric_version_is_stale_in_report(tmp_path, capsys):
    from harness.run.store import stale_reason

    data, out = _rows(tmp_path / "a.jsonl", DISTINCT), tmp_path / "o"
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2", "--no-progress"], capsys)[0] == 0
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    rec = _records(out)[("a", "lexical/distinct-2")]
    assert stale_reason(rec, meta) is None
    rec["signature"]["version"] = 0
    assert "version 0" in stale_reason(rec, meta)


# ----------------------------------------------------------------------------- 3. the user's files

def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    data, out = _rows(tmp_path / "a.jsonl", DISTINCT), tmp_path / "mine"
    (out / "rows").mkdir(parents=True)
    mine = {"report.md": "my notes\n", "index.html": "<p>my page</p>\n", "rows/keep.json": "{}\n"}
    for rel, text in mine.items():
        (out / rel).write_text(text, encoding="utf-8")
    code, _, err = _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2", "--no-progress"], capsys)
    _one_line(code, err, "synthbench did not write", "--force")
    # --force writes beside other files, but never over one: report.md and index.html would be overwritten
    code, _, err = _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2", "--no-progress", "--force"], capsys)
    _one_line(code, err, "report.md", "index.html")
    assert {rel: (out / rel).read_text(encoding="utf-8") for rel in mine} == mine
    assert not (out / "results.jsonl").exists()
    # beside files of other names --force works, and they survive a rerun that prunes row files
    (out / "report.md").rename(out / "notes.md")
    (out / "index.html").unlink()
    for _ in range(2):
        assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2,dup/exact-rate", "--no-progress",
                     "--force"], capsys)[0] == 0
    assert (out / "notes.md").read_text(encoding="utf-8") == "my notes\n"
    assert (out / "rows" / "keep.json").read_text(encoding="utf-8") == "{}\n"
    assert (out / "results.jsonl").exists() and (out / ".synthbench").exists()


def test_empty_out_is_an_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
    data = _rows(tmp_path / "a.jsonl", DISTINCT)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = _cli(["eval", data, "--out", "", "-m", "lexical/distinct-2", "--no-progress"], capsys)
    _one_line(code, err, "--out is empty")
    code, _, err = _cli(["run", ROOT / "suites" / "demo.yaml", "--out", "", "--no-progress"], capsys)
    _one_line(code, err, "--out is empty")
    assert list(work.iterdir()) == []


def test_a_folder_synthbench_wrote_before_the_marker_is_adopted(tmp_path, capsys):
    data, out = _rows(tmp_path / "a.jsonl", DISTINCT), tmp_path / "o"
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2", "--no-progress"], capsys)[0] == 0
    (out / ".synthbench").unlink()  # as committed reports and older runs are
    (out / "compare.md").write_text("written by synthbench compare\n", encoding="utf-8")
    from harness.run import outdir

    outdir.release(out)
    assert _cli(["eval", data, "--out", out, "-m", "lexical/distinct-2,lexical/distinct-1", "--no-progress"],
                capsys)[0] == 0
    listed = json.loads((out / ".synthbench").read_text(encoding="utf-8"))["files"]
    assert "results.jsonl" in listed and "report.md" in listed and "compare.md" not in listed


def test_a_committed_report_folder_is_adopted_as_make_demo_finds_it(tmp_path):
    """A clean clone's reports/demo holds only rendered files (no manifest, results.jsonl or run.json):
    its report.md, which opens with the scorecard's "# synthbench report: demo", marks it as synthbench's."""
    import shutil

    from harness.run import outdir

    out = tmp_path / "demo"
    shutil.copytree(ROOT / "reports" / "demo", out, ignore=shutil.ignore_patterns(".synthbench*", "results.jsonl",
                                                                                   "run.json", "flags.*"))
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# synthbench report: demo\n")
    assert outdir.claim(out) == out
    outdir.release(out)


def test_row_files_restored_by_git_are_taken_back_others_are_kept(tmp_path, capsys):
    """`make demo` at another precision, `git checkout reports/demo`, `make demo` again: the restored row
    files are synthbench's own findings (rows/<key>.json with that key), though the ignored manifest of the
    middle run no longer lists them; they are rewritten, not refused. A file of any other shape there is
    still never overwritten."""
    from harness.run import outdir

    data, out = _rows(tmp_path / "d.jsonl", [{"text": t} for t in ["a b c", "a b c", "d e f", "g h i"]]), tmp_path / "o"
    argv = ["eval", data, "--out", out, "-m", "dup/exact-rate", "--no-progress"]
    assert _cli(argv, capsys)[0] == 0
    (row,) = (out / "rows").iterdir()
    manifest = json.loads((out / ".synthbench").read_text(encoding="utf-8"))
    manifest["files"] = [f for f in manifest["files"] if not f.startswith("rows/")]  # as after the other run
    (out / ".synthbench").write_text(json.dumps(manifest), encoding="utf-8")
    (out / "results.jsonl").unlink()  # its records were of the other precision: recomputed
    outdir.release(out)
    assert _cli(argv, capsys)[0] == 0
    assert f"rows/{row.name}" in json.loads((out / ".synthbench").read_text(encoding="utf-8"))["files"]
    # the same name holding something else (here, the user's JSON) is refused, and kept
    manifest["files"] = [f for f in manifest["files"] if not f.startswith("rows/")]
    (out / ".synthbench").write_text(json.dumps(manifest), encoding="utf-8")
    row.write_text('{"mine": true}\n', encoding="utf-8")
    (out / "results.jsonl").unlink()
    outdir.release(out)
    code, _, err = _cli(argv, capsys)
    _one_line(code, err, row.name, "not written by synthbench")
    assert row.read_text(encoding="utf-8") == '{"mine": true}\n'


# ----------------------------------------------------------------------------- 4. concurrent runs

def test_two_runs_into_one_folder_at_once_keep_both(tmp_path):
    data, out = _rows(tmp_path / "a.jsonl", DISTINCT * 20), tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "harness.cli", "eval", str(data), "--out", str(out), "--no-progress", "-m"]
    procs = [subprocess.Popen(cmd + [m], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in ("lexical/distinct-1,lexical/distinct-2,lexical/distinct-3", "dup/exact-rate,lexical/mattr")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {m for _, m in _records(out)} == {"lexical/distinct-1", "lexical/distinct-2", "lexical/distinct-3",
                                             "dup/exact-rate", "lexical/mattr"}


def test_store_flushes_merge_under_the_lock(tmp_path):
    """Deterministic form of the race: two stores opened on one folder, each flushing its own records."""
    from harness.run.store import ResultStore
    from harness.types import Result, Signature

    def res(metric):
        sig = Signature(harness="t", metric=metric, args={}, data={"candidate": "x"}, embedder=None, seed=0)
        return Result(dataset="a", metric=metric, value=1.0, ci=None, higher_is_better=True, signature=sig)

    a, b = ResultStore(tmp_path / "o"), ResultStore(tmp_path / "o")
    a.put(res("m1"))
    a.flush()
    b.put(res("m2"))
    b.flush()
    a.put(res("m3"))
    a.flush()
    assert {m for _, m in ResultStore(tmp_path / "o").records} == {"m1", "m2", "m3"}


# ----------------------------------------------------------------------------- 5. lone surrogates

def test_a_lone_surrogate_is_mended_and_noted(tmp_path, capsys):
    p = tmp_path / "cut.jsonl"
    p.write_text('{"text": "a cut emoji \\ud83d here"}\n{"text": "a whole one \\ud83d\\ude00 here"}\n',
                 encoding="utf-8")
    code, _, err = _cli(["eval", p, "--out", tmp_path / "o", "-m", "lexical/distinct-1", "--no-progress"], capsys)
    assert code == 0, err
    warn = [x for x in err.splitlines() if x.startswith("warning") and "surrogate" in x]
    assert len(warn) == 1 and "line 1" in warn[0] and "Traceback" not in err
    from harness.data.load import load_corpus

    c = load_corpus(str(p))
    assert c.texts[0] == "a cut emoji \ufffd here" and c.texts[1] == "a whole one \U0001F600 here"


# ----------------------------------------------------------------------------- 6. sample size

def test_sample_size_above_the_reference_is_refused(tmp_path, capsys):
    cand = _rows(tmp_path / "c.jsonl", [{"text": f"candidate text {i}"} for i in range(500)])
    ref = _rows(tmp_path / "r.jsonl", [{"text": f"reference text {i}"} for i in range(400)])
    code, _, err = _cli(["eval", cand, "-r", ref, "--sample-size", "500", "--out", tmp_path / "o",
                         "-m", "lexical/distinct-1", "--no-progress"], capsys)
    _one_line(code, err, "the reference r has only 400 rows", "--sample-size 400")
    from harness.api import evaluate

    run = evaluate(str(cand), reference=str(ref), metrics=["lexical/distinct-1"], sample_size="min")
    assert run.meta["sample_size"] == 400 and {c["rows"] for c in run.meta["candidates"]} == {400}


# ----------------------------------------------------------------------------- 7. damaged caches

@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_a_damaged_vector_cache_is_moved_aside_and_rebuilt(tmp_path, capsys, damage):
    import numpy as np

    from harness.resources.cache import VectorStore

    path = tmp_path / "model.sqlite"
    s = VectorStore(path)
    s.put_many([(i.to_bytes(16, "big"), np.full(384, i, dtype=np.float32)) for i in range(2000)])
    s.close()
    for side in ("-wal", "-shm"):
        (tmp_path / f"model.sqlite{side}").unlink(missing_ok=True)
    raw = path.read_bytes()
    path.write_bytes(os.urandom(len(raw)) if damage == "overwritten" else raw[: len(raw) // 3])
    s = VectorStore(path)
    got = s.get_many([(1).to_bytes(16, "big"), (5).to_bytes(16, "big")])
    assert got == {}  # nothing returned from a damaged file: the caller recomputes
    s.put_many([(bytes([1]) * 16, np.ones(384, dtype=np.float32))])
    assert set(s.get_many([bytes([1]) * 16])) == {bytes([1]) * 16}
    s.close()
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if "damaged" in x]
    assert len(lines) == 1 and str(path) in lines[0] and "moved it to model.sqlite.damaged-1" in lines[0]
    assert (tmp_path / "model.sqlite.damaged-1").exists()


def test_a_cache_path_that_is_a_file_exits_2(tmp_path, capsys, monkeypatch):
    f = tmp_path / "cachefile"
    f.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(f))
    data = _rows(tmp_path / "a.jsonl", DISTINCT)
    code, _, err = _cli(["eval", data, "-r", data, "--out", tmp_path / "o", "-m", "semantic/vendi",
                         "--no-progress"], capsys)
    _one_line(code, err, "SYNTHBENCH_CACHE", "is a file")


# ----------------------------------------------------------------------------- 8. unwritable output

def test_out_that_is_a_file_or_unwritable_exits_2(tmp_path, capsys):
    data = _rows(tmp_path / "a.jsonl", DISTINCT)
    f = tmp_path / "afile"
    f.write_text("x", encoding="utf-8")
    code, _, err = _cli(["eval", data, "--out", f, "-m", "lexical/distinct-1", "--no-progress"], capsys)
    _one_line(code, err, "is a file")
    code, _, err = _cli(["eval", data, "--out", "/proc/synthbench-out", "-m", "lexical/distinct-1",
                         "--no-progress"], capsys)
    _one_line(code, err, "/proc/synthbench-out", "cannot write")


def test_a_full_disk_gives_one_line_and_no_partial_file(tmp_path, capsys, monkeypatch):
    import harness.resources.cache as cache

    real = cache.os.replace

    def full(src, dst):
        if str(dst).endswith(".svg"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(cache.os, "replace", full)
    data, out = _rows(tmp_path / "a.jsonl", DISTINCT), tmp_path / "o"
    code, _, err = _cli(["eval", data, "--out", out, "-m", "lexical/distinct-1,dup/exact-rate", "--no-progress"],
                        capsys)
    _one_line(code, err, "No space left on device", "free some disk space")
    left = [p for p in out.rglob("*") if p.is_file() and p.name != ".synthbench.lock"]
    assert not [p for p in left if p.suffix == ".svg" or p.name.endswith(".tmp")]
    assert all(p.stat().st_size > 0 for p in left)
    assert len(_records(out)) == 2  # finished results are kept


# ----------------------------------------------------------------------------- 9. terminal escapes, 14. labels

def test_data_strings_reach_the_terminal_inert_and_label_mismatch_runs(tmp_path, capsys):
    evil = "\x1b[31mred\nsecond line"
    cand = _rows(tmp_path / "c.jsonl", [{"text": f"fake text {i}", "label": [evil, "0"][i % 2]} for i in range(20)])
    ref = _rows(tmp_path / "r.jsonl", [{"text": f"real text {i}", "label": ["pos", "neg"][i % 2]} for i in range(20)])
    code, out, err = _cli(["eval", "bad\x1b[2J\x07=" + str(cand), "-r", ref, "--out", tmp_path / "o",
                           "-m", "surface/label-jsd,lexical/distinct-1", "--no-progress"], capsys)
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err
    warn = [x for x in err.splitlines() if x.startswith("warning:")]
    assert len(warn) == 1 and "no label in common" in warn[0] and "\\x1b[31mred\\nsecond line" in warn[0]
    assert "bad\\x1b[2J\\x07" in warn[0]
    nc = [x for x in err.splitlines() if x.startswith("not computed")]
    assert len(nc) == 1 and "surface/label-jsd" in nc[0]


# ----------------------------------------------------------------------------- 10. duplicate YAML keys

def test_duplicate_suite_keys_name_the_key_and_both_lines(tmp_path, capsys):
    data = _rows(tmp_path / "a.jsonl", DISTINCT)
    top = tmp_path / "top.yaml"
    top.write_text(f"name: dup\nreference: {{path: {data}}}\ncandidates:\n  - {{name: a, path: {data}}}\n"
                   f"metrics: [lexical/distinct-1]\ncandidates:\n  - {{name: b, path: {data}}}\n", encoding="utf-8")
    code, _, err = _cli(["run", top, "--out", tmp_path / "o", "--no-progress"], capsys)
    _one_line(code, err, "top.yaml", "'candidates'", "line 6", "line 3")
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"name: dup\nreference:\n  path: {data}\n  path: {data}\ncandidates:\n  - {{path: {data}}}\n",
                      encoding="utf-8")
    code, _, err = _cli(["run", nested, "--out", tmp_path / "o2", "--no-progress"], capsys)
    _one_line(code, err, "'path'", "line 4", "line 3")


# ----------------------------------------------------------------------------- 11. arguments

@pytest.mark.parametrize("extra,words", [
    (["--batch-size", "0"], ["--batch-size", "at least 1"]),
    (["--seed", "abc"], ["--seed", "abc"]),
    (["-m", ""], ["--metrics is empty"]),
    (["--repeats", "0"], ["--repeats"]),
    (["--holdout", "1.5"], ["--holdout"]),
    (["--sample-size", "lots"], ["--sample-size lots", "not a number"]),
])
def test_arguments_are_checked_before_any_work(tmp_path, capsys, extra, words):
    data = _rows(tmp_path / "a.jsonl", DISTINCT)
    t0 = time.perf_counter()
    code, _, err = _cli(["eval", data, "-r", data, "--out", tmp_path / "o", "--no-progress", *extra], capsys)
    _one_line(code, err, *words)
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "o").exists()


def test_paths_and_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    _rows(tmp_path / "data" / "gpt.jsonl", DISTINCT)
    t0 = time.perf_counter()
    code, _, err = _cli(["eval", "data/train", "--out", "o", "--no-progress"], capsys)
    _one_line(code, err, "data/train: file not found", "hf:data/train")
    assert time.perf_counter() - t0 < 5  # not tried on the hub
    for bad in ("a/b=data/gpt.jsonl", "../x=data/gpt.jsonl"):
        code, _, err = _cli(["eval", bad, "--out", "o", "--no-progress"], capsys)
        _one_line(code, err, "holds a '/'", "NAME=PATH")


# ----------------------------------------------------------------------------- 12. smaller ones

def test_gzip_compressed_files_are_read(tmp_path):
    import gzip

    from harness.data.load import load_corpus, unique_names

    raw = "".join(json.dumps(r) + "\n" for r in DISTINCT).encode()
    (tmp_path / "gpt.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "gpt.csv.gz").write_bytes(gzip.compress(b"text\n" + "\n".join(r["text"] for r in DISTINCT).encode()))
    a, b = load_corpus(str(tmp_path / "gpt.jsonl.gz")), load_corpus(str(tmp_path / "gpt.csv.gz"))
    assert a.name == "gpt" and a.texts == b.texts and len(a) == 31
    assert unique_names([(None, "x/gpt.jsonl.gz")]) == ["gpt"]


def test_a_damaged_results_line_is_recomputed_alone(tmp_path, capsys):
    data, out = _rows(tmp_path / "a.jsonl", DISTINCT), tmp_path / "o"
    ms = "lexical/distinct-1,lexical/distinct-2,dup/exact-rate"
    assert _cli(["eval", data, "--out", out, "-m", ms, "--no-progress"], capsys)[0] == 0
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]) + "\n",
                                       encoding="utf-8")
    code, _, err = _cli(["eval", data, "--out", out, "-m", ms, "--no-progress"], capsys)
    assert code == 0
    assert "1 computed, 2 reused" in err and "line(s) 3 are not synthbench records" in err
    assert len(_records(out)) == 3


def test_text_folders_name_the_empty_file_and_skip_hidden_folders(tmp_path, capsys):
    from harness.data.load import load_corpus
    from harness.errors import UserError

    for label in ("pos", "neg", ".git", "__pycache__"):
        (tmp_path / "docs" / label).mkdir(parents=True)
    (tmp_path / "docs" / "pos" / "a.txt").write_text("good film", encoding="utf-8")
    (tmp_path / "docs" / "neg" / "b.txt").write_text("bad film", encoding="utf-8")
    (tmp_path / "docs" / "neg" / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "docs" / ".git" / "HEAD.txt").write_text("ref: refs/heads/main", encoding="utf-8")
    c = load_corpus(str(tmp_path / "docs"))
    assert sorted(set(c.labels)) == ["neg", "pos"] and len(c) == 2 and len(c.empty_rows) == 1
    assert "empty.txt" in c.notes[0]
    with pytest.raises(UserError, match="neg/empty.txt: field 'text' is empty"):
        load_corpus(str(tmp_path / "docs"), strict=True)


# ----------------------------------------------------------------------------- 13. empty rows

def test_empty_rows_are_counted_flagged_and_curated(tmp_path, capsys):
    rows = DISTINCT[:10] + [{"text": ""}, {"text": "   "}, {"text": None}] + DISTINCT[10:20]
    data, out = _rows(tmp_path / "gen.jsonl", rows), tmp_path / "o"
    code, _, err = _cli(["eval", data, "--out", out, "-m", "lexical/distinct-1", "--no-progress"], capsys)
    assert code == 0, err
    warn = [x for x in err.splitlines() if "empty" in x and x.startswith("warning")]
    assert len(warn) == 1 and "3 of 23 rows" in warn[0] and "line 11, line 12, line 13" in warn[0]
    rec = _records(out)
    assert rec[("gen", "format/empty-rate")]["value"] == pytest.approx(3 / 23)
    assert rec[("gen", "lexical/distinct-1")]["value"] > 0
    flags = [json.loads(x) for x in (out / "flags.jsonl").read_text(encoding="utf-8").splitlines()[1:]]
    assert sorted(f["row"] for f in flags if "empty" in f["reasons"]) == [10, 11, 12]
    code, _, err = _cli(["curate", data, "--flags", out, "--drop", "empty", "--out", tmp_path / "clean.jsonl"], capsys)
    assert code == 0, err
    clean = [json.loads(x) for x in (tmp_path / "clean.jsonl").read_text(encoding="utf-8").splitlines()]
    assert clean == DISTINCT[:20]
    code, _, err = _cli(["eval", data, "--out", tmp_path / "s", "--strict", "-m", "lexical/distinct-1",
                         "--no-progress"], capsys)
    _one_line(code, err, "line 11", "field 'text' is empty", "--strict")


def _is_empty(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


PARAPHRASES = ("atis", "snips", "fb", "liu", "clinc150")
AUGMENTATION = ("20news", "ag_news", "atis", "fb", "sst5", "yelp")


def test_real_generated_sets_load_as_published_with_their_empty_rows_counted():
    """The five intent-paraphrase datasets and the six augmentation tasks, no hand cleaning: every file
    loads, and its empty rows are exactly the rows whose text is empty, whitespace or null."""
    from harness.data.load import load_corpus

    files = [p for d in PARAPHRASES for p in sorted(shared(f"intent_paraphrases_chatgpt_vs_crowd/{d}").glob("*.jsonl"))]
    files += [p for d in AUGMENTATION
              for p in sorted(shared(f"llm_augmentation_diversity_incentives/{d}").glob("*.jsonl"))]
    assert len(files) >= 40
    empty_total = 0
    for f in files:
        rows = [json.loads(x) for x in f.read_text(encoding="utf-8").split("\n") if x.strip()]
        c = load_corpus(str(f))
        expect = tuple(i for i, r in enumerate(rows) if _is_empty(r.get("text")))
        assert c.empty_rows == expect, f
        assert len(c) + len(expect) == len(rows)
        empty_total += len(expect)
    assert empty_total >= 15  # snips/human.jsonl line 3248, the GPT-4 augmentation sets ...
    snips = load_corpus(str(shared("intent_paraphrases_chatgpt_vs_crowd/snips/human.jsonl")))
    assert snips.empty_where == ("line 3248",)


def test_snips_crowd_set_evaluates_with_its_empty_row_flagged(tmp_path):
    import harness

    path = shared("intent_paraphrases_chatgpt_vs_crowd/snips/human.jsonl")
    run = harness.evaluate({"human": str(path)}, metrics=["lexical/distinct-2"], out=tmp_path / "o")
    vals = {r.metric: r.value for r in run.results}
    assert vals["format/empty-rate"] == pytest.approx(1 / 4126)
    flags = run.flags
    assert flags[flags.reasons.apply(lambda r: "empty" in r)].row.tolist() == [3247]


# ----------------------------------------------------------------------------- 2. no row text anywhere

def test_no_quote_text_leaves_no_row_text_in_any_file(tmp_path, capsys):
    """A phrase planted in the data (duplicated, copied from the reference and the test split, distinctive
    enough for the two-sample tests' n-gram lists) appears in no file the run writes."""
    src = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    rows = [json.loads(x) for x in (src / "gpt.jsonl").read_text(encoding="utf-8").splitlines()[:300]]
    test_rows = [json.loads(x) for x in (src / "orig_test.jsonl").read_text(encoding="utf-8").splitlines()[:200]]
    planted = "quokkafrond zephyrmint marmaladequill"
    cand_rows = [dict(r, text=f"{r['text']} {planted}") if i % 3 == 0 else r for i, r in enumerate(rows)]
    cand_rows += cand_rows[:30] + test_rows[:10] + [{"text": "", "label": rows[0]["label"]}]
    cand = _rows(tmp_path / "gen.jsonl", cand_rows)
    test = _rows(tmp_path / "test.jsonl", test_rows)
    ref_rows = [json.loads(x) for x in (src / "orig_train.jsonl").read_text(encoding="utf-8").splitlines()[:1500]]
    ref = _rows(tmp_path / "ref.jsonl", ref_rows)
    words = planted.split() + [r["text"] for r in test_rows[:10] if len(r["text"]) > 25]

    def run(out, *extra):
        code, _, err = _cli(["eval", cand, "-r", ref, "--test", test, "--out", out, *extra, "-m",
                             "dup,memo,contam,format,lexical/distinct-2,distance/c2st-tfidf,surface/length-ks",
                             "--no-progress"], capsys)
        assert code in (0, 1), err
        files = [p for p in out.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"results.jsonl", "report.md", "index.html", "flags.jsonl", "flags.parquet"}
        return {p: [w for w in words if w.encode() in p.read_bytes()] for p in files}

    quoted = run(tmp_path / "quoted")
    assert any(quoted.values())  # by default the reports quote rows: the check below can fail
    leaked = {p: w for p, w in run(tmp_path / "out", "--no-quote-text").items() if w}
    assert not leaked
    assert b"withheld" in (tmp_path / "out" / "results.jsonl").read_bytes()


def test_a_damaged_judge_cache_is_moved_aside_and_rebuilt(tmp_path, capsys):
    from harness.resources.judge_client import JudgmentCache

    path = tmp_path / "judgments.sqlite"
    c = JudgmentCache(path)
    c.put("k1", "m", {"content": "score: 4", "prompt_tokens": 3, "completion_tokens": 2, "finish_reason": "stop"})
    c._db.close()
    path.write_bytes(b"garbage" * 1000)
    c = JudgmentCache(path)
    assert c.get_many(["k1"]) == {}
    c.put("k2", "m", {"content": "score: 5"})
    assert c.get_many(["k2"])["k2"]["content"] == "score: 5"
    lines = [x for x in capsys.readouterr().err.splitlines() if "damaged" in x]
    assert len(lines) == 1 and "judge cache" in lines[0] and (tmp_path / "judgments.sqlite.damaged-1").exists()


def test_a_record_computed_with_other_metric_arguments_is_stale(tmp_path):
    import harness
    from harness.run.store import stale_reason

    run = harness.evaluate({"a": [r["text"] for r in DISTINCT]}, metrics=["lexical/mattr"], out=tmp_path / "o")
    meta = json.loads((tmp_path / "o" / "run.json").read_text(encoding="utf-8"))
    rec = _records(tmp_path / "o")[("a", "lexical/mattr")]
    assert stale_reason(rec, meta) is None and meta["metric_args"]["lexical/mattr"] == run.meta["metric_args"]["lexical/mattr"]
    key = next(iter(meta["metric_args"]["lexical/mattr"]))
    rec["signature"]["args"][key] = 7
    assert f"other arguments ({key})" in stale_reason(rec, meta)


def test_report_of_only_stale_records_leaves_the_reports_alone(tmp_path, capsys):
    import shutil

    out = tmp_path / "atis"
    shutil.copytree(ROOT / "reports" / "intent-atis", out)
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in recs:  # as committed before metric versions were recorded
        r["signature"].pop("version", None)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    before = (out / "report.md").read_bytes()
    code, _, err = _cli(["report", out], capsys)
    _one_line(code, err, "stale", "before metric versions were recorded", "rerun")
    assert (out / "report.md").read_bytes() == before
