"""LLM judge: the real local server (transformers serve + SmolLM2) end to end, failing endpoints, strict
parsing, cache keys, retries and backoff, cost accounting, pairwise aggregation, kappa against sklearn.

The fake endpoints are stdlib ``http.server`` servers on 127.0.0.1 in a thread; they speak just enough
of the chat-completions protocol for the ``openai`` client.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import UserError
from harness.metrics.base import Context
from harness.metrics.direct import judge as jm
from harness.resources.judge_client import (
    Judge,
    JudgeSpec,
    JudgeUnavailable,
    LocalServer,
    free_port,
    request_key,
    resolve_judge,
)
from harness.types import Corpus
from tests.conftest import read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"


# ----------------------------------------------------------------------------- a scripted endpoint

class FakeEndpoint:
    """An OpenAI-compatible chat-completions endpoint on 127.0.0.1 whose answers are scripted.

    ``script``: a list of (status, body or None, headers) consumed one per request, then ``default``.
    ``answer(messages)`` gives the content of a 200 reply.
    """

    def __init__(self, script=None, default=(200, None, {}), answer=None, usage=(100, 10)):
        self.script = list(script or [])
        self.default = default
        self.answer = answer or (lambda messages: "yes")
        self.usage = usage
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    status, payload, headers = outer.script.pop(0) if outer.script else outer.default
                if payload is None and status == 200:
                    pt, ct = outer.usage
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": outer.answer(body["messages"])}}],
                               "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}
                if payload is None:
                    payload = {"error": {"message": f"scripted {status}", "type": "server_error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _judge(url, tmp_path, sleeps=None, **kw):
    spec = resolve_judge(url, model="fake-judge", **{"backoff": 0.5, "retries": 3, "concurrency": 1, **kw})
    return Judge(spec, cache_dir=tmp_path / "cache", sleep=(sleeps.append if sleeps is not None else None))


MSG = [{"role": "user", "content": "Is 'book a flight' about flights? Answer yes or no."}]


# ----------------------------------------------------------------------------- strict parsing and rubrics

def test_parse_is_strict_and_counts_instead_of_guessing():
    yn = {"yes": 1.0, "no": 0.0}
    assert jm.parse_verdict("Yes.", yn) == "yes"
    assert jm.parse_verdict("  NO  ", yn) == "no"
    assert jm.parse_verdict("`no`", yn) == "no"
    assert jm.parse_verdict('{"verdict": "Yes"}', yn) == "yes"
    for bad in ["Yes, because", "The correct label", "y", "yes!!", '{"verdict": "maybe"}', "{not json", None, "no no"]:
        assert jm.parse_verdict(bad, yn) is None, bad
    ab = jm.load_rubric("pairwise_preference").verdicts
    assert [jm.parse_verdict(x, ab) for x in ["A", "b.", "Tie", "A or B", "Response A"]] == ["a", "b", "tie", None, None]


def test_shipped_rubrics_load_and_bad_ones_are_refused():
    names = jm.rubric_names()
    assert names == ["factual_consistency", "instruction_following", "label_correctness", "pairwise_preference"]
    for n in names:
        r = jm.load_rubric(n)
        assert r.max_tokens <= 8 and len(r.sha256) == 64 and r.verdicts
        for reason in r.flags.values():
            assert reason.startswith("judge-")
    r = jm.load_rubric("label_correctness")
    msgs = r.messages(text="play jazz {label}", label="play_music")
    assert msgs[0]["role"] == "system" and "play jazz {label}" in msgs[1]["content"]  # text is never a template
    good = (Path(jm.__file__).parents[2] / "rubrics" / "label_correctness.yaml").read_text()
    with pytest.raises(ValueError, match="lower-case word"):
        jm.rubric_from_text(good.replace('"yes": 1.0', "yes: 1.0"))  # YAML reads unquoted yes as true
    with pytest.raises(ValueError, match="not fields"):
        jm.rubric_from_text(good.replace("{label}", "{output}", 1))
    with pytest.raises(ValueError, match="kebab-case"):
        jm.rubric_from_text(good.replace("judge-mislabelled", "Judge Mislabelled"))
    with pytest.raises(ValueError, match="score in"):
        jm.rubric_from_text(good.replace('"yes": 1.0', '"yes": 2'))


def test_cache_key_and_signature():
    p = {"temperature": 0, "max_tokens": 3}
    k = request_key("m1", MSG, p)
    assert k == request_key("m1", [dict(reversed(list(MSG[0].items())))], dict(reversed(list(p.items()))))
    assert len({k, request_key("m2", MSG, p), request_key("m1", MSG, {**p, "max_tokens": 4}),
                request_key("m1", [{"role": "user", "content": "other"}], p)}) == 4
    spec = resolve_judge("https://api.example.com/v1/", model="gpt-x")
    assert spec.identity == "gpt-x@https://api.example.com/v1"
    sig = jm.judge_signature(spec, {"rubric": "label_correctness"})
    assert sig["model"] == spec.identity and sig["rubric_sha256"] == jm.load_rubric("label_correctness").sha256[:16]
    assert jm.judge_signature(resolve_judge("https://api.example.com/v1", model="gpt-y"),
                              {"rubric": "label_correctness"}) != sig
    with pytest.raises(UserError, match="judge-model"):
        resolve_judge("https://api.example.com/v1")
    with pytest.raises(UserError, match="not 'local'"):
        resolve_judge("ftp://x")


# ----------------------------------------------------------------------------- retries, backoff, accounting

def test_retries_with_exponential_backoff_then_success_and_cost(tmp_path):
    with FakeEndpoint(script=[(500, None, {}), (503, None, {}), (429, None, {})]) as ep:
        sleeps = []
        j = _judge(ep.url, tmp_path, sleeps, price_in=2.0, price_out=10.0)
        [a] = j.complete([MSG], max_tokens=3, stop=["."])
        assert a.content == "yes" and not a.cached
        assert sleeps == [0.5, 1.0, 2.0]  # backoff × 2^attempt
        assert j.stats["requests"] == 4 and j.stats["retries"] == 3 and len(ep.requests) == 4
        assert ep.requests[-1]["temperature"] == 0 and ep.requests[-1]["max_tokens"] == 3
        assert ep.requests[-1]["stop"] == ["."] and ep.requests[-1]["model"] == "fake-judge"
        assert (j.stats["prompt_tokens"], j.stats["completion_tokens"]) == (100, 10)
        assert j.stats["cost"] == pytest.approx(100 * 2.0 / 1000 + 10 * 10.0 / 1000)
        j.close()


def test_retry_after_is_honoured_and_4xx_is_not_retried(tmp_path):
    with FakeEndpoint(script=[(429, None, {"Retry-After": "3"}), (400, None, {})]) as ep:
        sleeps = []
        j = _judge(ep.url, tmp_path, sleeps)
        with pytest.raises(JudgeUnavailable, match="HTTP 400"):
            j.complete([MSG])
        assert sleeps == [3.0] and len(ep.requests) == 2  # 429 waited its Retry-After; 400 is final


def test_bounded_retries_then_failure_and_fail_fast(tmp_path):
    with FakeEndpoint(default=(500, None, {})) as ep:
        sleeps = []
        j = _judge(ep.url, tmp_path, sleeps, retries=2)
        with pytest.raises(JudgeUnavailable, match=r"HTTP 500.*after 3 attempt"):
            j.complete([MSG])
        assert len(ep.requests) == 3 and sleeps == [0.5, 1.0]
        with pytest.raises(JudgeUnavailable, match="earlier in this run"):
            j.complete([[{"role": "user", "content": "another"}]])
        assert len(ep.requests) == 3  # the second batch sent nothing


def test_cache_answers_a_rerun_without_any_request(tmp_path):
    seen = []
    with FakeEndpoint(answer=lambda m: seen.append(1) or ("no" if "flight" in m[-1]["content"] else "yes")) as ep:
        reqs = [MSG, [{"role": "user", "content": "x"}], MSG]  # a duplicate is sent once
        with _judge(ep.url, tmp_path, concurrency=2) as j:
            first = j.complete(reqs)
        assert len(ep.requests) == 2 and [a.content for a in first] == ["no", "yes", "no"]
        with _judge(ep.url, tmp_path) as j2:  # a new process would see the same SQLite file
            again = j2.complete(reqs)
            assert j2.stats["requests"] == 0 and j2.stats["from_cache"] == 3
        assert len(ep.requests) == 2 and all(a.cached for a in again)
        assert [a.content for a in again] == ["no", "yes", "no"] and again[0].prompt_tokens == 100


def test_unreachable_endpoint_fails_with_reason(tmp_path):
    port = free_port()  # nothing listens there
    j = _judge(f"http://127.0.0.1:{port}/v1", tmp_path, sleeps=[], retries=1)
    with pytest.raises(JudgeUnavailable, match="unreachable.*after 2 attempt"):
        j.complete([MSG])


# ----------------------------------------------------------------------------- aggregation

class ScriptedJudge:
    """Answers from a function of the prompt; the cost and identity of a real Judge."""

    identity = "scripted"

    def __init__(self, fn):
        self.fn = fn

    def cost_of(self, pt, ct):
        return 0.0

    def signature(self):
        return {"model": self.identity}

    def complete(self, requests, max_tokens=8, stop=None, desc=""):
        from harness.resources.judge_client import Answer

        return [Answer(self.fn(m[-1]["content"]), 10, 1, "stop", False) for m in requests]


def _instr(name, outputs, instructions=None):
    instructions = instructions or [f"task {i}" for i in range(len(outputs))]
    n = len(outputs)
    return Corpus(name=name, source=name, kind="instruction", texts=tuple(outputs),
                  fields={"instruction": tuple(instructions), "input": ("",) * n, "output": tuple(outputs)})


def test_pairwise_both_orders_cancel_position_bias():
    cand = _instr("cand", ["good0", "bad1", "good2", "same3"])
    ref = _instr("ref", ["bad0", "good1", "bad2", "same3"])

    def fn(prompt):  # prefers the answer containing "good"; otherwise always the first shown (position bias)
        a = prompt.split("[A]\n")[1].split("\n")[0]
        b = prompt.split("[B]\n")[1].split("\n")[0]
        return "A" if "good" in a else "B" if "good" in b else "A"

    rub = jm.load_rubric("pairwise_preference")
    pairs = jm.match_pairs(cand, ref)
    assert pairs == [(0, 0), (1, 1), (2, 2), (3, 3)]
    out = jm.pairwise(ScriptedJudge(fn), rub, cand, ref, pairs, 1000, "t")
    assert out["scores"] == [1.0, 0.0, 1.0, 0.5]  # the biased tie on row 3 cancels to 0.5
    assert (out["wins"], out["losses"], out["ties_or_split"]) == (2, 1, 1)
    assert out["position_consistent"] == 0.75 and out["first_position_score"] == 0.625

    ctx = Context(cand, reference=Context(ref, role="reference"), judge=ScriptedJudge(fn))
    s = jm.pairwise_win_rate(ctx)
    assert s.value == pytest.approx(2.5 / 4) and s.rows == {"judge-dispreferred": [1]}
    assert s.ci[0] <= s.value <= s.ci[1]


def test_label_metrics_with_a_scripted_judge_and_unparsable_answers():
    texts = ("book a flight to rome", "play some jazz", "what is my balance", "flight to oslo please")
    labels = ("book_flight", "play_music", "book_flight", "book_flight")
    corpus = Corpus(name="c", source="c", kind="classification", texts=texts, labels=labels)

    def fn(prompt):  # right about flights, unparsable about music, says no otherwise
        if "play some jazz" in prompt:
            return "The correct label is"
        text = prompt.split("Text: ")[1].split("\n")[0]
        return "yes" if ("flight" in text and "label: book_flight" in prompt) else "no"

    ctx = Context(corpus, judge=ScriptedJudge(fn), role="reference")
    s = jm.label_correctness(ctx)
    assert s.value == pytest.approx(2 / 3) and s.rows == {"judge-mislabelled": [2]}
    assert s.details["judge"]["unparsable"] == 1 and s.details["accepted"] == 2
    rel = s.details["judge_on_reference"]
    assert rel["accepts_true_label"] == pytest.approx(2 / 3, abs=1e-4) and rel["rejects_wrong_label"] == 1.0
    r = jm.label_reliability(ctx)
    assert r.value == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(jm.MetricSkipped):
        jm.label_reliability(Context(corpus, judge=ScriptedJudge(fn)))  # candidates: see the reference row
    with pytest.raises(RuntimeError, match="unparsable"):
        jm.label_correctness(Context(corpus, judge=ScriptedJudge(lambda p: "Sure!")))


def test_kappa_equals_sklearn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random(40) < rng.random()
        b = np.where(rng.random(40) < 0.6, a, rng.random(40) < 0.5)
        want = cohen_kappa_score(a, b)
        got = jm.cohen_kappa(a, b)
        assert (got is None and np.isnan(want)) or got == pytest.approx(want, abs=1e-12)


# ----------------------------------------------------------------------------- failing endpoints, whole runs

def _sample(tmp_path, n=8):
    rows = read_jsonl(shared(f"{CLINC}/gpt.jsonl"), limit=n)
    labels = {x["label"] for x in rows}
    ref = [x for x in read_jsonl(shared(f"{CLINC}/orig_train.jsonl")) if x["label"] in labels][:12]
    c, r = tmp_path / "gpt.jsonl", tmp_path / "ref.jsonl"
    c.write_text("".join(json.dumps({"text": x["text"], "label": x["label"]}) + "\n" for x in rows))
    r.write_text("".join(json.dumps({"text": x["text"], "label": x["label"]}) + "\n" for x in ref))
    return c, r


def _records(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["unreachable", "500", "429"])
def test_failing_endpoint_is_recorded_and_nothing_else_is_lost(tmp_path, mode, capsys):
    c, r = _sample(tmp_path)
    out = tmp_path / "out"
    args = ["eval", f"gpt={c}", "--reference", str(r), "--metrics", "judge/label-correctness,dup,length/mean-words",
            "--out", str(out), "--no-progress", "--judge-model", "m", "--judge-retries", "1"]
    if mode == "unreachable":
        rc = main(args + ["--judge-url", f"http://127.0.0.1:{free_port()}/v1"])
        served = None
    else:
        with FakeEndpoint(default=(int(mode), None, {"Retry-After": "0"})) as ep:
            rc = main(args + ["--judge-url", ep.url])
        served = len(ep.requests)
    err = capsys.readouterr().err
    assert rc == 1 and "FAILED" in err
    recs = {(d["dataset"], d["metric"]): d for d in _records(out)}
    for ds in ("gpt", "ref"):
        failed = recs[(ds, "judge/label-correctness")]
        assert failed["status"] == "failed" and failed["value"] is None
        want = {"unreachable": "unreachable", "500": "HTTP 500", "429": "HTTP 429"}[mode]
        assert want in failed["error"] and "JudgeUnavailable" in failed["error"]
        for m in ("dup/exact-rate", "dup/near-rate", "length/mean-words"):
            assert recs[(ds, m)]["value"] is not None  # every other metric is there
    if served is not None:
        assert served <= 2 * 2  # bounded: 2 attempts for the first batch (concurrency 2), none after
    assert (out / "report.md").exists()


def test_suite_judge_key(tmp_path):
    from harness.data.suite import load_suite

    c, r = _sample(tmp_path)
    base = f"name: t\nreference: {r}\ncandidates: [{c}]\nmetrics: [judge/label-correctness]\n"
    (tmp_path / "s.yaml").write_text(base + "judge: {url: 'https://x.example/v1', model: m, concurrency: 4}\n")
    assert load_suite(tmp_path / "s.yaml").judge == {"url": "https://x.example/v1", "model": "m", "concurrency": 4}
    (tmp_path / "s.yaml").write_text(base + "judge: {url: local, api_key: sk-123}\n")
    with pytest.raises(UserError, match="judge.api_key"):
        load_suite(tmp_path / "s.yaml")


# ----------------------------------------------------------------------------- the real local judge

@pytest.fixture
def served(monkeypatch):
    """Counts the chat-completion requests the real server logged, read just before it is stopped."""
    logged, starts = [], []
    real_start, real_stop = LocalServer.start, LocalServer.stop

    def start(self):
        url = real_start(self)
        starts.append(self.proc.pid)
        return url

    def stop(self):
        if self.proc is not None:
            logged.append(self.requests_logged())
        return real_stop(self)

    monkeypatch.setattr(LocalServer, "start", start)
    monkeypatch.setattr(LocalServer, "stop", stop)
    return logged, starts


def test_local_server_judges_real_rows_then_a_rerun_is_served_from_the_cache(tmp_path, monkeypatch, served, capsys):
    """transformers serve + SmolLM2-135M on CPU judges 12 ChatGPT paraphrases of CLINC150 and 12 real rows
    (true and wrong labels: 36 requests); a second run into a new folder sends none and starts no server."""
    from harness.resources.causal_lm import resolve_lm

    monkeypatch.delenv("SYNTHBENCH_CACHE", raising=False)
    lm_dir = Path(resolve_lm("default").location).parent  # converted once into the user's cache, as test_fluency
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "lm").symlink_to(lm_dir)  # a fresh judgment cache, the same converted model
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    d = shared(CLINC)
    common = [f"gpt={d / 'gpt.jsonl'}", "--reference", str(d / "orig_train.jsonl"), "--sample-size", "12",
              "--metrics", "judge/label-correctness,judge/label-reliability", "--no-progress", "--judge", "local"]
    logged, starts = served
    assert main(["eval", *common, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert len(starts) == 1 and logged == [36], (logged, err)  # the server saw every request, once
    with pytest.raises(ProcessLookupError):
        os.killpg(starts[0], 0)  # its whole process group is gone
    assert "judge: 36 request(s) sent" in err
    a = {(x["dataset"], x["metric"]): x for x in _records(tmp_path / "a")}
    lc = a[("gpt", "judge/label-correctness")]
    det = lc["details"]
    assert det["judged"] == 12 and det["judge"]["judgments"] == 12 and det["judge"]["sent_now"] == 12
    assert det["accepted"] + det["rejected"] + det["judge"]["unparsable"] == 12
    assert lc["signature"]["args"]["judge"]["model"].startswith("transformers-serve:HuggingFaceTB/SmolLM2-135M")
    rel = a[("orig_train", "judge/label-reliability")]
    assert 0 <= rel["value"] <= 1 and rel["details"]["rows"] == 12
    assert det["judge_on_reference"]["balanced_accuracy"] == pytest.approx(rel["value"], abs=1e-4)
    flags = [json.loads(x) for x in (tmp_path / "a" / "flags.jsonl").read_text().splitlines()[1:]]
    assert sum("judge-mislabelled" in f["reasons"] for f in flags if f["dataset"] == "gpt") == det["rejected"]

    def refuse(self):
        raise AssertionError("a cached rerun must not start the judge server")

    monkeypatch.setattr(LocalServer, "start", refuse)
    assert main(["eval", *common, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "judge: 0 request(s) sent" in err and "from the cache" in err
    b = {(x["dataset"], x["metric"]): x for x in _records(tmp_path / "b")}
    assert set(a) == set(b)
    for k in a:
        assert a[k]["value"] == b[k]["value"] and a[k]["signature_key"] == b[k]["signature_key"]
    assert b[("gpt", "judge/label-correctness")]["details"]["judge"]["sent_now"] == 0
    assert (tmp_path / "b" / "flags.jsonl").read_text().splitlines()[1:] == \
        (tmp_path / "a" / "flags.jsonl").read_text().splitlines()[1:]


@pytest.mark.slow
def test_local_server_process_group_is_stopped_on_an_exception():
    """The context manager starts the real server and leaves no process behind, even on an exception."""
    spec = resolve_judge("local")
    with pytest.raises(RuntimeError, match="boom"):
        with LocalServer(spec.location) as srv:
            pid = srv.proc.pid
            raise RuntimeError("boom")
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_local_spec_is_offline_and_identity_is_stable():
    spec = resolve_judge("local")
    assert isinstance(spec, JudgeSpec) and spec.local and Path(spec.location, "config.json").exists()
    assert resolve_judge("local").identity == spec.identity and "8000" not in spec.identity


def _alpaca(n=6):
    rows = read_jsonl(shared("alpaca_gpt4_sample_999/paired_davinci003_vs_gpt4.jsonl"), limit=n)
    return rows, _instr("gpt4", [r["output_gpt4"] for r in rows], [r["instruction"] for r in rows]), \
        _instr("davinci", [r["output_text_davinci_003"] for r in rows], [r["instruction"] for r in rows])


def test_instruction_following_negative_control_on_real_rows():
    rows, gpt4, _ = _alpaca()
    real = {(r["instruction"][:60], r["output_gpt4"][:60]) for r in rows}

    def fn(prompt):  # a perfect judge: yes for the real pairs, no for the mismatched ones
        ins = prompt.split("Instruction: ")[1].split("\n")[0][:60]
        out = prompt.split("Response: ")[1].split("\n")[0][:60]
        return "yes" if (ins, out) in real else "no"

    s = jm.instruction_following(Context(gpt4, role="reference", judge=ScriptedJudge(fn)))
    assert s.value == 1.0 and s.rows == {"judge-unfollowed": []} and s.details["verdicts"]["yes"] == len(rows)
    neg = s.details["judge_on_reference"]
    assert neg["rejects_mismatched"] == 1.0 and neg["discrimination"] == 1.0
    blind = jm.instruction_following(Context(gpt4, role="reference", judge=ScriptedJudge(lambda p: "no")))
    assert blind.value == 0.0 and blind.details["judge_on_reference"]["discrimination"] == 0.0
    assert blind.rows["judge-unfollowed"] == list(range(len(rows)))
    with pytest.raises(jm.MetricSkipped):  # Alpaca rows without input are not judged for consistency
        jm.factual_consistency(Context(gpt4, judge=ScriptedJudge(fn)))


def test_judge_command_pairwise_two_real_datasets(tmp_path, capsys):
    rows, _, _ = _alpaca(8)
    a, b = tmp_path / "gpt4.jsonl", tmp_path / "davinci.jsonl"
    a.write_text("".join(json.dumps({"instruction": r["instruction"], "input": r["input"],
                                     "output": r["output_gpt4"]}) + "\n" for r in rows))
    b.write_text("".join(json.dumps({"instruction": r["instruction"], "input": r["input"],
                                     "output": r["output_text_davinci_003"]}) + "\n" for r in reversed(rows)))

    def longer(messages):  # prefers the longer answer, whichever position it is in
        p = messages[-1]["content"]
        x, y = p.split("[A]\n")[1].split("\n\n[B]")[0], p.split("[B]\n")[1].split("\n\nWhich")[0]
        return "A" if len(x) > len(y) else "B" if len(y) > len(x) else "tie"

    want = np.mean([1.0 if len(r["output_gpt4"][:300]) > len(r["output_text_davinci_003"][:300]) else
                    0.0 if len(r["output_gpt4"][:300]) < len(r["output_text_davinci_003"][:300]) else 0.5
                    for r in rows])
    with FakeEndpoint(answer=longer) as ep:
        rc = main(["judge", str(a), str(b), "--judge-url", ep.url, "--judge-model", "m", "--max-chars", "300",
                   "--out", str(tmp_path / "pw.json")])
        assert rc == 0 and len(ep.requests) == 2 * len(rows)
    out = capsys.readouterr().out
    assert "8 matched instruction(s)" in out
    doc = json.loads((tmp_path / "pw.json").read_text())
    s = doc["summary"]
    assert s["a_win_rate"] == pytest.approx(want) and s["position_consistent"] == 1.0
    assert s["first_position_score"] == pytest.approx(0.5) and s["unparsable"] == 0 and s["sent_now"] == 16
    assert [p["b_row"] for p in doc["pairs"]] == list(range(len(rows)))[::-1]  # matched by instruction, not order
