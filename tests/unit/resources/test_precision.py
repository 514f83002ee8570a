"""Compute precision (issue 22): what ``auto`` picks, that fp32 is today's numbers bit for bit, and that a
bf16 vector is cached and signed apart from an fp32 one.

This machine may or may not have AVX512-BF16; each test forces the CPU's answer it needs. bf16 runs on a
CPU without it too (emulated, slower), which is how the bf16 paths are tested here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import UserError
from harness.resources import precision as P
from tests.conftest import read_jsonl, shared


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)


@pytest.fixture
def has_bf16(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)


@pytest.fixture(scope="module")
def texts():
    rows = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl"), limit=48)
    return [r["text"] for r in rows]


def test_auto_picks_by_device(monkeypatch, no_bf16):
    assert P.resolve("auto", "cpu").precision == "fp32"
    assert P.resolve(None, "mps").precision == "fp32"
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    c = P.resolve("auto", "cpu")
    assert (c.precision, c.suffix) == ("bf16", "@bf16") and "AVX512" in c.reason
    monkeypatch.setattr(P, "_cuda_bf16", lambda: True)
    assert P.resolve("auto", "cuda:0").precision == "bf16"
    monkeypatch.setattr(P, "_cuda_bf16", lambda: False)
    assert P.resolve("auto", "cuda").precision == "fp16"
    assert P.resolve("bfloat16", "cpu").precision == "bf16"  # named ones are taken as asked
    assert P.resolve("fp32", "cuda").suffix == ""
    with pytest.raises(UserError, match="fp16 on the CPU"):
        P.resolve("fp16", "cpu")
    with pytest.raises(UserError, match="'fp8' is not one of auto, fp32, bf16, fp16"):
        P.normalise("fp8")


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = P.cpu_flags()
    try:
        with open("/proc/cpuinfo") as f:
            assert ("avx512_bf16" in f.read()) == ("avx512_bf16" in flags)
    except OSError:
        assert flags == frozenset()


def test_auto_without_bf16_is_fp32_bit_for_bit(no_bf16, texts, tmp_path):
    """On a CPU without fast bf16, ``auto`` is fp32: the same identity (so every earlier record and cached
    vector stays current) and the same vectors, bit for bit, as ``fp32`` and as before precision existed."""
    from harness.resources.embedder import Embedder, resolve_embedder

    auto = resolve_embedder("default", precision="auto")
    fp32 = resolve_embedder("default", precision="fp32")
    assert auto.identity == fp32.identity == "sentence-transformers/all-MiniLM-L6-v2"
    assert auto.key == fp32.key and auto.precision == "fp32"
    a = Embedder(auto, cache_dir=tmp_path / "a", progress=False).embed(texts)
    b = Embedder(fp32, cache_dir=tmp_path / "b", progress=False).embed(texts)
    model = Embedder(fp32, cache_dir=tmp_path / "c", progress=False).model()
    plain = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False).astype(np.float32)
    assert np.array_equal(a, b)
    assert np.allclose(a, plain, atol=1e-6)  # the embedder batches longest first: rounding differs only


def test_bf16_vectors_agree_and_never_answer_an_fp32_request(has_bf16, texts, tmp_path):
    from harness.resources.embedder import Embedder, resolve_embedder

    bf = resolve_embedder("default", precision="auto")
    fp = resolve_embedder("default", precision="fp32")
    assert bf.precision == "bf16" and bf.identity == fp.identity + "@bf16" and bf.key != fp.key
    cache = tmp_path / "cache"
    e32 = Embedder(fp, cache_dir=cache, progress=False)
    v32 = e32.embed(texts)
    e16 = Embedder(bf, cache_dir=cache, progress=False)  # the same cache folder
    v16 = e16.embed(texts)
    assert e16.stats["encoded"] == len(set(texts)) and e16.stats["from_cache"] == 0
    cos = (v32 * v16).sum(axis=1)
    assert cos.mean() >= 0.9999 and cos.min() >= 0.999, (cos.mean(), cos.min())
    assert np.allclose(np.linalg.norm(v16, axis=1), 1, atol=1e-6)
    assert not np.array_equal(v32, v16)  # it really ran in bf16
    again = Embedder(fp, cache_dir=cache, progress=False)
    assert np.array_equal(again.embed(texts), v32) and again.stats["encoded"] == 0


def test_run_records_precision_in_signatures_and_run_json(has_bf16, texts, tmp_path, monkeypatch):
    from harness.api import evaluate
    from harness.types import Result

    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    ref = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/human.jsonl"), limit=48)
    kw = dict(reference=[r["text"] for r in ref], metrics=["semantic/vendi", "lexical/distinct-2"])
    out = tmp_path / "bf16"
    evaluate({"gpt": texts}, out=out, precision="auto", **kw)
    meta = json.loads((out / "run.json").read_text())
    assert meta["precision"]["requested"] == "auto"
    assert meta["precision"]["embedder"]["precision"] == "bf16"
    assert meta["embedder"].endswith("@bf16")
    recs = {r.metric: r for r in (Result.from_json(json.loads(x)) for x in (out / "results.jsonl").open())}
    assert recs["semantic/vendi"].signature.embedder.endswith("@bf16")
    assert recs["lexical/distinct-2"].signature.embedder is None  # no model: nothing to record
    fp = evaluate({"gpt": texts}, precision="fp32", **kw)
    v = {r.metric: r.value for r in fp.results}
    assert v["lexical/distinct-2"] == recs["lexical/distinct-2"].value
    assert v["semantic/vendi"] == pytest.approx(recs["semantic/vendi"].value, rel=1e-3)
    assert v["semantic/vendi"] != recs["semantic/vendi"].value


def test_suite_and_cli_refuse_an_unknown_precision(tmp_path, capsys):
    from harness.cli import main
    from harness.data.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nreference: {shared('ag_news_real/test.jsonl')}\n"
                     f"candidates:\n  - {shared('intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl')}\n"
                     "precision: fp8\n")
    with pytest.raises(UserError, match=r"precision.*'fp8' is not a precision.*auto, fp32, bf16, fp16"):
        load_suite(suite)
    suite.write_text(suite.read_text().replace("fp8", "BF16"))
    assert load_suite(suite).precision == "bf16"
    assert main(["eval", str(suite), "--precision", "fp8", "--out", str(tmp_path / "o")]) == 2
    assert "--precision" in capsys.readouterr().err


def test_lm_scorer_precision_is_in_its_identity_and_cache_key(has_bf16):
    from harness.resources.causal_lm import LMSpec, with_precision
    from harness.resources.perplexity import PerplexityScorer

    spec = LMSpec(name="x", location="/nowhere", identity="folder:x@abc")
    bf = with_precision(spec, "auto", "cpu")
    assert bf.identity == "folder:x@abc@bf16" and bf.precision == "bf16"
    assert with_precision(spec, "fp32", "cpu") == spec
    assert PerplexityScorer(bf).cache_key(512) != PerplexityScorer(spec).cache_key(512)


def test_minilm_fine_tuning_tier_takes_the_run_precision_into_its_signature(has_bf16):
    from harness import metrics as registry
    from harness.api import _with_training_precision
    from harness.resources.trainers import FineTune

    specs = registry.select(["utility/minilm-ft/accuracy", "utility/tfidf-lr/accuracy"])
    assert _with_training_precision(specs, "fp32") == specs
    got = {s.name: s.args for s in _with_training_precision(specs, "auto")}
    assert got["utility/minilm-ft/accuracy"]["precision"] == "bf16"
    assert "precision" not in got["utility/tfidf-lr/accuracy"]
    assert "precision" not in FineTune().params() and FineTune(precision="bf16").params()["precision"] == "bf16"
    rows = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl"), limit=400)
    two = sorted({r["label"] for r in rows})[:2]
    train = [r for r in rows if r["label"] in two][:24]
    pred = FineTune(epochs=1, batch_size=8, precision="bf16").fit_predict(
        [r["text"] for r in train], [r["label"] for r in train], [r["text"] for r in train[:6]], seed=0)
    assert len(pred) == 6 and set(pred) <= set(two)
