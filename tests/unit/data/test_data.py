"""The data layer: every format gives the same corpus; bad input gives one clear line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.data.load import FieldMap, load_corpus
from harness.errors import UserError
from tests.conftest import ROOT, read_jsonl, shared

ROWS = [{"text": "The bank raised rates.", "label": "business"},
        {"text": "A late goal won the cup.", "label": "sport"},
        {"text": "Ünïcode, commas, and \"quotes\"", "label": "tech"}]


def write_all_formats(tmp_path, rows):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    paths["jsonl"] = p
    p = tmp_path / "d.json"
    p.write_text(json.dumps(rows), encoding="utf-8")
    paths["json"] = p
    import csv

    p = tmp_path / "d.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(rows)
    paths["csv"] = p
    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    paths["parquet"] = p
    p = tmp_path / "hf"
    datasets.Dataset.from_list(rows).save_to_disk(str(p))
    paths["hf"] = p
    p = tmp_path / "hfdict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(p))
    paths["hfdict"] = p
    p = tmp_path / "folder"
    for i, r in enumerate(rows):
        (p / r["label"]).mkdir(parents=True, exist_ok=True)
        (p / r["label"] / f"{i}.txt").write_text(r["text"], encoding="utf-8")
    paths["folder"] = p
    return paths


def test_every_format_same_fingerprint(tmp_path):
    paths = write_all_formats(tmp_path, ROWS)
    fps = {}
    for fmt, p in paths.items():
        c = load_corpus(str(p))
        assert c.kind == "classification", fmt
        assert len(c) == 3, fmt
        fps[fmt] = c.fingerprint
    # the text folder orders rows by label, so compare it separately
    folder = fps.pop("folder")
    assert len(set(fps.values())) == 1, fps
    assert folder == load_corpus(str(paths["folder"])).fingerprint


def test_fingerprint_changes_with_content(tmp_path):
    paths = write_all_formats(tmp_path, ROWS)
    a = load_corpus(str(paths["jsonl"]))
    rows = [dict(r) for r in ROWS]
    rows[1]["label"] = "tech"
    p = tmp_path / "e.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert load_corpus(str(p)).fingerprint != a.fingerprint


def test_instruction_data_real():
    c = load_corpus(str(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl")))
    assert c.kind == "instruction"
    assert set(c.fields) == {"instruction", "input", "output"}
    raw = read_jsonl(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl"), limit=1)[0]
    assert c.fields["instruction"][0] == raw["instruction"]
    assert c.texts[0].startswith(raw["instruction"])
    ins = load_corpus(str(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl")), FieldMap(text="instruction"))
    assert ins.texts[0] == raw["instruction"] and ins.kind == "text"
    # as the text of a row, an empty output is an empty row: left out and counted (the real file has one at
    # line 67); --strict refuses it
    rows = read_jsonl(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl"))
    empty = [i for i, r in enumerate(rows) if not r["output"].strip()]
    out = load_corpus(str(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl")), FieldMap(text="output"))
    assert out.empty_rows == tuple(empty) and len(out) == len(rows) - len(empty)
    assert out.source_identity[1] == len(rows) and out.empty_where[0] == f"line {empty[0] + 1}"
    assert all(out.texts[k] == rows[i]["output"] for k, i in enumerate(out.source_row_ids[:50]))
    with pytest.raises(UserError, match=f"line {empty[0] + 1}: field 'output' is empty"):
        load_corpus(str(shared("alpaca_libre_gpt35/alpaca_libre_ok_v1-v3.jsonl")), FieldMap(text="output"),
                    strict=True)


def test_real_classification_and_builtin():
    c = load_corpus(str(shared("banking77_real/test.jsonl")))
    assert c.kind == "classification" and len(c) == len(read_jsonl(shared("banking77_real/test.jsonl")))
    bbc = load_corpus("builtin:bbc-news")
    assert len(bbc) == 2225
    assert sorted(set(bbc.labels)) == ["business", "entertainment", "politics", "sports", "tech"]
    assert any("£" in t for t in bbc.texts)  # the one Windows-1252 file decoded, not mangled


def test_sample_is_seeded_and_stable():
    c = load_corpus(str(shared("banking77_real/test.jsonl")))
    a, b, d = c.subsample(100, 1), c.subsample(100, 1), c.subsample(100, 2)
    assert a.fingerprint == b.fingerprint != d.fingerprint
    assert len(a) == 100 and a.sample == {"size": 100, "seed": 1, "of": len(c)}
    assert set(a.texts) <= set(c.texts)


BAD = {
    "missing.jsonl": (None, "file not found"),
    "empty.jsonl": (b"", "empty"),
    "blank.jsonl": (b"\n  \n\n", "empty"),
    "malformed.jsonl": (b'{"text": "ok", "label": "a"}\n{"text": "bad\n', "line 2: malformed JSON"),
    "array.jsonl": (b'["not", "an", "object"]\n', "line 1: expected a JSON object"),
    "notext.jsonl": (b'{"body": "x", "label": "a"}\n', "no 'text' field"),
    "emptytext.jsonl": (b'{"text": "a", "label": "a"}\n{"text": "   ", "label": "b"}\n', "line 2: field 'text' is empty"),
    "nulltext.jsonl": (b'{"text": "a"}\n{"text": null}\n', "line 2: field 'text' is null"),
    "numtext.jsonl": (b'{"text": 5}\n', "line 1: field 'text' is int"),
    "latin1.jsonl": ('{"text": "caf\u00e9"}\n'.encode("latin-1"), "line 1: byte 0xe9"),
    "nulllabel.jsonl": (b'{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n', "line 2: label field 'label' is null"),
    "data.xlsx": (b"PK\x03\x04", "unknown format '.xlsx'"),
    "ragged.csv": (b"text,label\na,b\nc,d,e\n", "line 3: 3 fields where the header has 2"),
    "emptycell.csv": (b"text,label\na,b\n,d\n", "line 3: field 'text' is empty"),
    "nested.parquet": (None, "row 1: field 'text' is dict"),
    "badarray.json": (b'[{"text": "a"}, 3]', "item 2: expected a JSON object"),
    "dupcols.csv": (b"text,text\na,b\n", "duplicate column"),
    "broken.parquet": (b"PAR1garbage", "not a readable Parquet file"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_names_file_row_and_fix(tmp_path, name):
    content, expected = BAD[name]
    p = tmp_path / name
    if name == "nested.parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{"text": {"title": "a", "body": "b"}, "label": "x"}]), p)
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(UserError) as ei:
        load_corpus(str(p), strict=name in EMPTY_ROW)
    line = ei.value.line()
    assert expected in line
    assert name in line
    assert "fix:" in line and "\n" not in line


#: an empty or null text is a finding by default, refused only under strict
EMPTY_ROW = {"emptytext.jsonl", "nulltext.jsonl", "emptycell.csv"}


@pytest.mark.parametrize("name", sorted(EMPTY_ROW))
def test_empty_rows_are_left_out_and_counted(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(BAD[name][0])
    c = load_corpus(str(p))
    assert len(c) == 1 and c.empty_rows == (1,) and c.source_identity[1] == 2 and c.source_row_ids == (0,)
    where = "line 3" if name.endswith(".csv") else "line 2"
    assert c.empty_where == (where,) and where in c.notes[0] and "format/empty-rate" in c.notes[0]
    plain = load_corpus(str(p), strict=False)
    assert plain.fingerprint == c.fingerprint


def test_missing_named_columns(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="no field 'body'.*--text-field"):
        load_corpus(str(p), FieldMap(text="body"))
    with pytest.raises(UserError, match="no field 'intent'.*--label-field"):
        load_corpus(str(p), FieldMap(label="intent"))


def test_cli_bad_input_exit_code_2_one_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "a"}\n{oops}\n')
    r = subprocess.run([sys.executable, "-m", "harness.cli", "eval", str(p), "--out", str(tmp_path / "o"),
                        "--metrics", "lexical"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert "bad.jsonl: line 2: malformed JSON" in err[0] and "fix:" in err[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_hub_id_goes_through_datasets(monkeypatch):
    """A hub id is handed to datasets.load_dataset (here stubbed: no network in tests)."""
    import datasets

    calls = []

    def fake_load(name, split=None):
        calls.append((name, split))
        return datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                                     "test": datasets.Dataset.from_list(ROWS[:1])})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    c = load_corpus("someone/news")
    assert calls == [("someone/news", None)] and len(c) == 3 and c.source == "hf:someone/news"
    assert len(load_corpus("hf:someone/news", split="test")) == 1
    with pytest.raises(UserError, match="no split 'dev'"):
        load_corpus("hf:someone/news", split="dev")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    import datasets

    def offline(name, split=None):
        raise ConnectionError("Couldn't reach the Hub\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="could not load from the Hugging Face hub.*Couldn't reach"):
        load_corpus("someone/news")


def test_holdout_is_stratified_disjoint_and_seeded():
    c = load_corpus(str(shared("banking77_real/test.jsonl")))
    train, test = c.holdout(0.25, 0)
    assert len(train) + len(test) == len(c)
    assert not set(zip(train.texts, train.labels)) & set(zip(test.texts, test.labels)) or \
        len(set(c.texts)) < len(c)  # disjoint rows (texts may repeat in the source)
    from collections import Counter

    full, held = Counter(c.labels), Counter(test.labels)
    assert set(held) == set(full)
    assert all(abs(held[k] - 0.25 * full[k]) <= 1 for k in full)
    assert c.holdout(0.25, 0)[1].fingerprint == test.fingerprint != c.holdout(0.25, 1)[1].fingerprint


def test_jsonl_lines_split_on_newline_only(tmp_path):
    """U+2028/U+0085 inside a JSON string are not line ends (JSON leaves them unescaped); a real file
    of the LLM-augmentation data holds them."""
    p = tmp_path / "u2028.jsonl"
    p.write_text('{"text": "a\u2028b\u0085c", "label": 1}\r\n{"text": "d", "label": 2}\n', encoding="utf-8")
    c = load_corpus(str(p))
    assert c.texts == ("a\u2028b\u0085c", "d") and c.labels == ("1", "2")
    real = load_corpus(str(shared("llm_augmentation_diversity_incentives/20news/real_test.jsonl")))
    assert len(real) == 11751 and any("\u2028" in t for t in real.texts)
