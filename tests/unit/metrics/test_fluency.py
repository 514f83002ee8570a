"""Fluency: per-row NLL under the real default causal LM (SmolLM2-135M-Instruct), its cache, the
fluency metrics and their plumbing (--lm, suites, signatures).

The model is loaded once per module (``scorer``); metric logic is also checked with a fake scorer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.errors import UserError
from harness.metrics.base import Context, MetricSkipped
from harness.resources.causal_lm import resolve_lm
from harness.resources.perplexity import PerplexityScorer, RowNLL, ThreadGovernor
from harness.types import Corpus
from tests.conftest import read_jsonl, shared


@pytest.fixture(scope="module")
def spec():
    """The default LM, converted (once) into the user's cache, whatever SYNTHBENCH_CACHE a test set."""
    mp = pytest.MonkeyPatch()
    mp.delenv("SYNTHBENCH_CACHE", raising=False)
    try:
        return resolve_lm("default")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def scorer(spec, tmp_path_factory):
    return PerplexityScorer(spec, cache_dir=tmp_path_factory.mktemp("pplcache"), batch_size=4, progress=False)


@pytest.fixture
def governed():
    """The reference computations below run outside the scorer: give them its thread rule too (two
    threads on two busy cores are many times slower than one)."""
    g = ThreadGovernor()
    yield
    g.restore()


@pytest.fixture(scope="module")
def news():
    return [r["text"] for r in read_jsonl(shared("ag_news_real/test.jsonl"), limit=10)]


def _reference_nll(model, ids):
    """transformers' own loss on [start] + ids, as a sum over the scored tokens."""
    import torch

    x = torch.tensor([ids])
    with torch.inference_mode():
        loss = model(input_ids=x, labels=x).loss.item()
    return loss * (len(ids) - 1)


def test_batched_padded_equals_unbatched_transformers_loss(scorer, news, governed):
    sst = [r["text"] for r in read_jsonl(shared("sst2_supergen_synthetic/train_synthetic.jsonl"), limit=3)]
    texts = news[:3] + sst  # lengths differ: batches of 4 are right-padded
    res = scorer.score(texts)
    model, tok = scorer.load()
    assert scorer._fast is True  # SmolLM2's head is a plain projection: logits only where scored
    assert tok.convert_ids_to_tokens(scorer._prefix) == "<|endoftext|>"  # stated BOS rule (no auto BOS)
    assert scorer.stats["model_calls"] == 2 and scorer.stats["scored"] == len(texts)
    for i, t in enumerate(texts):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert res.tokens[i] == len(ids) == res.total_tokens[i]
        assert res.bytes[i] == len(t.encode("utf-8"))
        want = _reference_nll(model, [scorer._prefix] + ids)
        assert abs(res.nll[i] - want) / want < 1e-4, (i, res.nll[i], want)
    assert np.allclose(res.perplexity, np.exp(res.nll / res.tokens))
    assert np.allclose(res.bits_per_byte, res.nll / math.log(2) / res.bytes)

    # the fallback (full logits from the model's forward pass) gives the same numbers
    import torch

    batch = [[scorer._prefix] + tok(t, add_special_tokens=False)["input_ids"] for t in texts[:3]]
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, b in enumerate(batch):
        ids[i, :len(b)] = torch.tensor(b)
        mask[i, :len(b)] = 1
    with torch.inference_mode():
        rows_a, a = scorer._forward_nll(ids, mask, True)
        rows_b, b = scorer._forward_nll(ids, mask, False)
    assert torch.equal(rows_a, rows_b) and torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_truncation_scores_the_first_max_length_tokens(scorer, governed):
    review = next(r["text"] for r in read_jsonl(shared("imdb_real/test_sample_5000.jsonl"), limit=50)
                  if len(r["text"]) > 1500)
    res = scorer.score([review, ""], max_length=40)
    model, tok = scorer.load()
    ids = tok(review, add_special_tokens=False)["input_ids"]
    assert res.tokens[0] == 40 and res.total_tokens[0] == len(ids) > 40 and res.truncated.tolist() == [True, False]
    want = _reference_nll(model, [scorer._prefix] + ids[:40])
    assert abs(res.nll[0] - want) / want < 1e-4
    assert 0 < res.bytes[0] < len(review.encode())  # bytes of the scored part only
    assert res.tokens[1] == 0 and math.isnan(res.perplexity[1])  # an empty text has no perplexity


def test_second_call_comes_from_the_cache(scorer, spec, news):
    first = scorer.score(news[:6])
    calls = scorer.stats["model_calls"]
    again = scorer.score(news[:6])  # same scorer: memo
    assert scorer.stats["model_calls"] == calls and again is first
    fresh = PerplexityScorer(spec, cache_dir=scorer.cache_dir.parent, progress=False)
    res = fresh.score(list(reversed(news[:6])) + [news[0]])
    assert fresh.stats["from_cache"] == 6 and fresh.stats["scored"] == 0 and fresh.stats["model_calls"] == 0
    assert fresh._model is None  # a fully cached call never loads the model
    assert np.array_equal(res.nll[:6], first.nll[::-1]) and res.nll[6] == first.nll[0]
    # another max_length is another cache
    other = PerplexityScorer(spec, cache_dir=scorer.cache_dir.parent, progress=False)
    assert other.cache_key(512) != other.cache_key(128) == scorer.cache_key(128)


def test_shuffled_words_are_much_less_likely(scorer, news):
    rng = np.random.default_rng(0)
    shuffled = []
    for t in news[:6]:
        words = t.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    a = scorer.score(news[:6]).perplexity
    b = scorer.score(shuffled).perplexity
    assert (b > a).all()
    assert np.median(b) > 4 * np.median(a), (np.median(a), np.median(b))


# ---------------------------------------------------------------- metric logic with a fake scorer

class FakeScorer:
    """NLL = 0.5 nats per character (so perplexity grows with the length of the text); counts calls."""

    identity = "fake-lm"

    def __init__(self):
        self.seen: list[list[str]] = []
        self.stats = {"scored": 0}

    def score(self, texts, max_length=None, desc=""):
        self.seen.append(list(texts))
        tokens = np.array([len(t.split()) for t in texts])
        nll = np.array([0.5 * len(t) for t in texts], dtype=float)
        return RowNLL(nll=nll, tokens=tokens, total_tokens=tokens, bytes=np.array([len(t) for t in texts]))


def test_instruction_data_scores_the_output_and_skips_empty_and_short_outputs():
    from harness.metrics.direct.fluency import perplexity_median

    outs = ("Paris is the capital of France.", "", "Two plus two is four.", "Blue.")
    c = Corpus("ins", "ins", "instruction", texts=tuple(f"Q{i}\n\n{o}" for i, o in enumerate(outs)),
               fields={"instruction": tuple(f"Q{i}" for i in range(4)), "input": ("",) * 4, "output": outs})
    fake = FakeScorer()
    s = perplexity_median(Context(c, lm_scorer=fake))
    assert fake.seen[-1] == list(outs)
    assert s.details["scored"] == "output" and s.details["rows_empty"] == 1 and s.details["rows_scored"] == 2
    assert s.details["rows_too_short"] == 1  # "Blue.": under min_tokens (5)
    ppl = [math.exp(0.5 * len(o) / len(o.split())) for o in outs if len(o.split()) >= 5]
    assert s.value == pytest.approx(np.median(ppl))
    one = perplexity_median(Context(c, lm_scorer=fake), min_tokens=1)
    assert one.details["rows_scored"] == 3 and one.details["rows_too_short"] == 0
    perplexity_median(Context(c, lm_scorer=fake), field="text")
    assert fake.seen[-1] == list(c.texts)
    with pytest.raises(MetricSkipped, match="no field"):
        perplexity_median(Context(c, lm_scorer=fake), field="response")
    with pytest.raises(MetricSkipped, match="causal language model"):
        perplexity_median(Context(c))


def test_ratio_interval_and_high_perplexity_rows():
    from harness.metrics.direct.fluency import perplexity_p90, perplexity_ratio

    rows = read_jsonl(shared("sst2_real/glue_validation.jsonl"), limit=300)
    ref = Context(Corpus("ref", "ref", "text", tuple(r["text"] for r in rows[:200])), lm_scorer=FakeScorer())
    cand_texts = tuple(r["text"] for r in rows[200:300])
    cand = Context(Corpus("cand", "cand", "text", cand_texts), reference=ref, lm_scorer=ref.lm_scorer)
    s = perplexity_ratio(cand)
    keep = [i for i, t in enumerate(cand_texts) if len(t.split()) >= 5]  # min_tokens
    assert s.details["rows_too_short"] == len(cand_texts) - len(keep) > 0
    p_c = np.exp([0.5 * len(cand_texts[i]) / len(cand_texts[i].split()) for i in keep])
    p_r = np.exp([0.5 * len(t) / len(t.split()) for t in ref.texts if len(t.split()) >= 5])
    assert s.value == pytest.approx(np.median(p_c) / np.median(p_r))
    assert s.ci[0] <= s.value <= s.ci[1]
    flagged = sorted(s.rows.get("high-perplexity", []))
    # conformal p-value against the reference at most 1%: above all but 1% of the 200 reference rows
    pv = np.array([(1 + (p_r >= x).sum()) / (len(p_r) + 1) for x in p_c])
    assert flagged == [keep[j] for j in range(len(keep)) if pv[j] <= 0.01]
    assert flagged == [keep[j] for j in range(len(keep)) if (p_r >= p_c[j]).sum() <= 1]
    assert s.details["high_perplexity_rows"] == len(flagged)
    # a garbled row among them is flagged
    garbled = cand_texts[:99] + (" ".join(["xq" * 40] * 5),)
    g = perplexity_ratio(Context(Corpus("g", "g", "text", garbled), reference=ref, lm_scorer=ref.lm_scorer))
    assert 99 in g.rows["high-perplexity"]
    p90 = perplexity_p90(cand)
    assert p90.value == pytest.approx(np.quantile(p_c, 0.9)) and p90.ci[0] <= p90.value <= p90.ci[1]


def test_signature_carries_the_lm_identity(spec, tmp_path):
    from harness import metrics
    from harness.run.runner import RunConfig, signature_for

    other = tmp_path / "other-lm"
    other.mkdir()
    for f in __import__("pathlib").Path(spec.location).iterdir():
        (other / f.name).symlink_to(f)
    spec2 = resolve_lm(str(other))
    assert spec2.identity != spec.identity
    c = Corpus("c", "c", "text", ("A sentence.", "Another one."))
    flu, lex = metrics.get("fluency/perplexity-median"), metrics.get("lexical/distinct-1")
    s1 = signature_for(flu, c, None, RunConfig(lm=spec))
    s2 = signature_for(flu, c, None, RunConfig(lm=spec2))
    assert s1.args["lm"] == spec.identity and s1.key != s2.key
    assert "lm" not in signature_for(lex, c, None, RunConfig(lm=spec)).args  # other metrics are unaffected


# ---------------------------------------------------------------- end to end through the CLI

def test_eval_fluency_end_to_end_and_rerun(tmp_path, spec, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    cand = shared("sst2_supergen_synthetic/train_synthetic.jsonl")
    ref = shared("sst2_real/glue_validation.jsonl")
    out = tmp_path / "out"
    # the converted default folder, named as a folder: no second conversion in this test's cache
    args = ["eval", f"supergen={cand}", "-r", str(ref), "--sample-size", "12", "--metrics", "fluency",
            "--lm", spec.location, "--out", str(out), "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "perplexity: 24 text(s) scored by the LM" in err
    recs = {(r["dataset"], r["metric"]): r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(recs) == {("glue_validation", "fluency/perplexity-median"), ("glue_validation", "fluency/perplexity-p90"),
                         ("supergen", "fluency/perplexity-median"), ("supergen", "fluency/perplexity-p90"),
                         ("supergen", "fluency/perplexity-ratio")}
    folder_id = resolve_lm(spec.location).identity
    assert all(r["signature"]["args"]["lm"] == folder_id for r in recs.values())
    assert json.loads((out / "run.json").read_text())["lm"] == folder_id
    med_c = recs[("supergen", "fluency/perplexity-median")]
    med_r = recs[("glue_validation", "fluency/perplexity-median")]
    ratio = recs[("supergen", "fluency/perplexity-ratio")]
    assert ratio["value"] == pytest.approx(med_c["value"] / med_r["value"])
    assert ratio["higher_is_better"] is None and med_c["higher_is_better"] is False
    for r in recs.values():
        assert r["ci"][0] <= r["value"] <= r["ci"][1]
        d = r["details"]
        assert d["rows_scored"] + d["rows_too_short"] == 12 and d["rows_scored"] >= 10 and d["scored"] == "text"
    assert min(med_c["value"], med_r["value"]) >= 1
    # SST-2's lower-cased, space-tokenised sentences are far less predictable than CTRL's fluent ones
    assert ratio["value"] < 0.5
    # a rerun reuses every result (and never loads the model)
    assert main(args) == 0
    assert "5 reused" in capsys.readouterr().err


def test_bad_lm_is_one_line_user_error(tmp_path, capsys):
    from harness.cli import main

    data = shared("sst2_real/glue_validation.jsonl")
    for bad, what in ((str(tmp_path / "no-such-model"), "no such folder"), (str(tmp_path), "config.json")):
        code = main(["eval", str(data), "--metrics", "fluency", "--lm", bad, "--out", str(tmp_path / "o"),
                     "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "--lm" in err and what in err, err
        assert "Traceback" not in err


def test_suite_lm_key(tmp_path):
    from harness.data.suite import load_suite

    data = shared("sst2_real/glue_validation.jsonl")
    base = f"name: t\nreference: {data}\ncandidates: [{{name: c, path: {data}}}]\nmetrics: [fluency]\n"
    (tmp_path / "a.yaml").write_text(base)
    assert load_suite(tmp_path / "a.yaml").lm == "default"
    (tmp_path / "b.yaml").write_text(base + "lm: ./models/my-lm\n")
    assert load_suite(tmp_path / "b.yaml").lm == str((tmp_path / "models/my-lm").resolve())
    (tmp_path / "c.yaml").write_text(base + "lm: 3\n")
    with pytest.raises(UserError, match="key 'lm'"):
        load_suite(tmp_path / "c.yaml")


def test_fluency_group_is_opt_in_but_nameable():
    from harness import metrics

    assert not [s for s in metrics.select(None) if s.name.startswith("fluency/")]
    assert [s.name for s in metrics.select(["fluency"])] == ["fluency/perplexity-median", "fluency/perplexity-p90",
                                                            "fluency/perplexity-ratio"]
