"""LM fine-tuning utility (issue 6): response-only masking, the token budget, the checkpoint cache, the
lm-eval task writer and a tiny end-to-end run of ``synthbench lm-utility``.

Quick tests use the real SmolLM2 tokenizer and a tiny randomly initialised Llama with that tokenizer
(two layers of width 32), so training and lm-eval take seconds on a CPU; the real SmolLM2-135M with
LoRA runs in the slow test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.errors import UserError
from harness.resources import causal_ft as ft
from harness.resources.causal_lm import resolve_lm
from tests.conftest import read_jsonl, shared

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}


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
def tok(spec):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.location)


@pytest.fixture(scope="module")
def tiny(spec, tok, tmp_path_factory):
    """A 2-layer, width-32 Llama with SmolLM2's tokenizer and chat template, randomly initialised (seed 0)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tinylm")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return resolve_lm(str(folder))


@pytest.fixture(scope="module")
def alpaca_rows():
    gpt4 = read_jsonl(shared("alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl"), limit=40)
    davinci = read_jsonl(shared("alpaca_davinci003_sample/alpaca_davinci003_sample_10k.jsonl"), limit=40)
    return gpt4, davinci


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two busy cores are many times slower than one
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- masking

def test_response_only_masking_on_real_alpaca_rows(tok, alpaca_rows):
    gpt4, davinci = alpaca_rows
    rows = gpt4[:4] + [r for r in davinci if r["input"].strip()][:4]  # with and without an input
    assert any(r["input"].strip() for r in rows) and any(not r["input"].strip() for r in rows)
    for r in rows:
        ids, labels = ft.encode_chat(tok, r["instruction"], r["input"], r["output"], max_length=4096)
        prompt = ft.render_prompt(tok, r["instruction"], r["input"])
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        # every prompt token is masked, no response token is
        assert labels[:n_prompt] == [ft.IGNORE] * n_prompt
        assert all(lab != ft.IGNORE for lab in labels[n_prompt:])
        assert labels[n_prompt:] == ids[n_prompt:]
        # the prompt is the chat template's generation prompt with the instruction and input in the user turn
        assert prompt.endswith("<|im_start|>assistant\n")
        assert r["instruction"].strip() in prompt and (r["input"].strip() in prompt)
        assert r["output"].strip() not in tok.decode(ids[:n_prompt])
        # the supervised tokens are exactly the response and the end-of-turn token
        assert tok.decode(ids[n_prompt:]) == r["output"] + "<|im_end|>\n"
        # prompt + response is the whole conversation as the chat template renders it
        full = tok.apply_chat_template([{"role": "user", "content": ft._user_content(r["instruction"], r["input"])},
                                        {"role": "assistant", "content": r["output"]}], tokenize=False)
        assert tok.decode(ids) == full


def test_truncation_keeps_the_mask_and_drops_rows_without_response(tok, alpaca_rows):
    r = alpaca_rows[0][0]
    ids, labels = ft.encode_chat(tok, r["instruction"], r["input"], r["output"], max_length=40)
    assert len(ids) == len(labels) == 40
    n_prompt = len(tok(ft.render_prompt(tok, r["instruction"], r["input"]), add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [ft.IGNORE] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    data = ft.TrainSet.instructions([r["instruction"], "x"], ["", ""], [r["output"], "   "])
    examples, dropped = ft.encode(tok, data, max_length=n_prompt)  # no room for a response token
    assert examples == [] and dropped == 2


def test_plain_text_windows_label_every_token_but_the_first(tok):
    text = " ".join(["word"] * 50)
    windows = ft.encode_text(tok, text, max_length=16)
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert sum(len(w) for w, _ in windows) == len(ids)
    for w, lab in windows:
        assert lab[0] == ft.IGNORE and lab[1:] == w[1:]


def test_lr_schedule_follows_the_budget():
    r = ft.FTRecipe(token_budget=1000, warmup=0.1, lr=1e-3)
    assert ft.lr_at(0.0, r) < 1e-6 and math.isclose(ft.lr_at(0.1, r), 1e-3)
    assert math.isclose(ft.lr_at(0.55, r), 0.5e-3) and ft.lr_at(1.0, r) == 0.0
    assert ft.FTRecipe(mode="full").learning_rate == 2e-5 and ft.FTRecipe().learning_rate == 2e-4
    assert "lora_r" not in ft.FTRecipe(mode="full").identity() and ft.FTRecipe().identity()["lora_r"] == 8
    with pytest.raises(ValueError):
        ft.FTRecipe(mode="qlora")


# ----------------------------------------------------------------------------- budget and cache

def test_budget_counts_exactly_the_supervised_tokens_trained_on(tiny, alpaca_rows, tmp_path, one_thread):
    gpt4, _ = alpaca_rows
    data = ft.TrainSet.instructions([r["instruction"] for r in gpt4[:12]], [r["input"] for r in gpt4[:12]],
                                    [r["output"] for r in gpt4[:12]], name="gpt4-12")
    recipe = ft.FTRecipe(mode="full", token_budget=777, batch_size=4, max_length=64, lr=1e-3)
    seen, rows = [], []

    def count(step, labels):
        seen.append(int((labels != ft.IGNORE).sum()))
        rows.append(labels.shape[0])
        # the first position is never a label: the model predicts labels[t] from tokens < t
        assert bool((labels[:, 0] == ft.IGNORE).all())

    ck = ft.finetune(tiny, data, recipe, seed=3, cache_dir=tmp_path, progress=False, callback=count)
    assert sum(seen) == 777 == ck.meta["tokens_trained"]
    assert len(seen) == ck.meta["steps"] and seen[-1] <= max(seen[:-1])
    # one pass over these 12 rows holds fewer supervised tokens than the budget: the data were cycled
    examples, _ = ft.encode(ft_tok(tiny), data, 64)
    per_pass = sum(sum(lab != ft.IGNORE for lab in y) for _, y in examples)
    assert per_pass < 777 and ck.meta["passes"] > 1
    assert ck.meta["passes"] == round(sum(rows) / len(examples), 3)
    assert (tmp_path / ck.key / "meta.json").exists() and (tmp_path / ck.key / "model.safetensors").exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left behind


def ft_tok(lm):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(lm.location)


def test_budget_batches_cut_the_last_batch_and_reshuffle_each_pass():
    examples = [([1] * 10, [ft.IGNORE] * 4 + [1] * 6) for _ in range(5)]  # 6 supervised tokens each
    out = list(ft.budget_batches(examples, batch_size=2, budget=50, seed=0))
    assert sum(a for _, a in out) == 50 and out[-1][1] < 12
    orders = [tuple(int(i) for i in b) for b, _ in out]
    assert len(orders) > 5  # more than one pass over 5 rows
    assert list(ft.budget_batches([([1, 2], [ft.IGNORE, ft.IGNORE])], 2, 10, 0)) == []


def test_checkpoint_cache_hit_trains_nothing(tiny, alpaca_rows, tmp_path, one_thread):
    gpt4, _ = alpaca_rows
    data = ft.TrainSet.instructions([r["instruction"] for r in gpt4[:6]], None, [r["output"] for r in gpt4[:6]])
    recipe = ft.FTRecipe(token_budget=300, batch_size=4, max_length=64)  # LoRA
    first = ft.finetune(tiny, data, recipe, seed=0, cache_dir=tmp_path, progress=False)
    assert not first.cached and (first.path / "adapter_model.safetensors").exists()
    trained = ft.STATS["trained"]
    calls = []
    again = ft.finetune(tiny, data, recipe, seed=0, cache_dir=tmp_path, progress=False,
                        callback=lambda *a: calls.append(a))
    assert again.cached and again.key == first.key and calls == [] and ft.STATS["trained"] == trained
    assert again.meta["tokens_trained"] == 300
    assert again.lm_eval_args() == {"pretrained": tiny.location, "peft": str(first.path)}
    # every input of the key changes it: seed, recipe field, data
    assert ft.checkpoint_key(tiny, recipe, data, 1) != first.key
    assert ft.checkpoint_key(tiny, ft.FTRecipe(token_budget=301, batch_size=4, max_length=64), data, 0) != first.key
    other = ft.TrainSet.instructions([r["instruction"] for r in gpt4[:6]], None, [r["output"] for r in gpt4[1:7]])
    assert ft.checkpoint_key(tiny, recipe, other, 0) != first.key


# ----------------------------------------------------------------------------- lm-eval tasks

def test_task_yamls_load_in_lm_eval_offline(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager, get_task_dict

    from harness.resources import lmeval as L

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    specs = [L.perplexity_task("si-user", shared("self_instruct_user_oriented_252/human_reference.jsonl")),
             L.mc_task("ag-news", shared("ag_news_real/test.jsonl"), limit_rows=40, seed=1),
             L.generation_task("seed-tasks", shared("self_instruct_seed_tasks/seed_tasks_flat.jsonl"), limit_rows=5)]
    folder = L.write_tasks(specs, tmp_path / "tasks")
    text = (folder / "synthbench_ag_news.yaml").read_text()
    assert "dataset_path: json" in text and str(folder / "synthbench_ag_news.jsonl") in text
    tm = TaskManager(include_path=str(folder), include_defaults=False)
    tasks = get_task_dict([s.name for s in specs], tm)
    ppl, mc, gen = (tasks[s.name] for s in specs)
    assert ppl.OUTPUT_TYPE == "loglikelihood_rolling" and len(ppl.test_docs()) == 252
    human = read_jsonl(shared("self_instruct_user_oriented_252/human_reference.jsonl"))
    assert ppl.doc_to_target(ppl.test_docs()[3]) == human[3]["output"]
    docs = mc.test_docs()
    assert mc.OUTPUT_TYPE == "multiple_choice" and len(docs) == 40
    assert mc.doc_to_choice(docs[0]) == ["Business", "Sci/Tech", "Sports", "World"]
    labels = [mc.doc_to_choice(d)[mc.doc_to_target(d)] for d in docs]
    assert sorted(set(labels)) == ["Business", "Sci/Tech", "Sports", "World"]
    assert all(labels.count(x) == 10 for x in set(labels))  # stratified
    ag = {r["text"].strip(): r["label"] for r in read_jsonl(shared("ag_news_real/test.jsonl"))}
    for d, lab in zip(docs, labels):  # the gold choice is the real label of the real text
        assert ag[mc.doc_to_text(d).split("\nQuestion:")[0]] == lab
    assert gen.OUTPUT_TYPE == "generate_until" and len(gen.test_docs()) == 5
    assert gen.doc_to_text(gen.test_docs()[0]).endswith("Answer:")


def test_mc_from_classification_and_user_errors(tmp_path):
    from harness.resources import lmeval as L

    rows = L.mc_rows_from_classification(["good film", "dull"], [1, 0], names={"0": "negative", "1": "positive"})
    assert rows[0]["choices"] == ["negative", "positive"] and [r["gold"] for r in rows] == [1, 0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "choices": ["a"], "gold": 3}\n')
    with pytest.raises(UserError, match="gold"):
        L.mc_task("bad", bad)
    with pytest.raises(UserError, match="no 'output' or 'text'"):
        L.perplexity_task("bad", bad)


def test_registered_task_unknown_is_a_user_error():
    from lm_eval.tasks import TaskManager

    from harness.resources import lmeval as L

    with pytest.raises(UserError, match="knows no task"):
        L.check_registered(["no_such_task_xyz"], TaskManager(include_defaults=False))


def test_paired_delta_and_scores_against_lm_eval_aggregations():
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity

    from harness.resources import lmeval as L

    rng = np.random.default_rng(0)
    n = 30
    ll_base = -rng.uniform(50, 200, n)
    nbytes = rng.integers(100, 400, n)
    words = rng.integers(20, 80, n)
    base = L.TaskResult("t", L.PERPLEXITY, docs={"loglikelihood": list(ll_base), "bytes": list(nbytes),
                                                 "words": list(words)}, n=n)
    tuned = [L.TaskResult("t", L.PERPLEXITY, docs={"loglikelihood": list(ll_base + d), "bytes": list(nbytes),
                                                   "words": list(words)}, n=n) for d in (5.0, 7.0)]
    assert math.isclose(L.score(base, "bits_per_byte"), bits_per_byte(list(zip(ll_base, nbytes))))
    assert math.isclose(L.score(base, "word_perplexity"), weighted_perplexity(list(zip(ll_base, words))))
    value, ci = L.paired_delta(base, tuned, "bits_per_byte")
    direct = np.mean([L.score(t, "bits_per_byte") for t in tuned]) - L.score(base, "bits_per_byte")
    assert math.isclose(value, direct) and value < 0 and ci[0] <= value <= ci[1] and ci[1] < 0
    acc_b = L.TaskResult("m", L.MULTIPLE_CHOICE, docs={"acc": [0.0] * 20}, n=20)
    acc_t = L.TaskResult("m", L.MULTIPLE_CHOICE, docs={"acc": [1.0] * 5 + [0.0] * 15}, n=20)
    value, ci = L.paired_delta(acc_b, [acc_t], "acc")
    assert value == 0.25 and 0 < ci[0] < 0.25 < ci[1]
    assert L.bootstrap_score(acc_t, "acc")[0] < 0.25 < L.bootstrap_score(acc_t, "acc")[1]


# ----------------------------------------------------------------------------- memory (issue 25)

def _batch(tiny, alpaca_rows, n=3, max_length=48):
    examples, _ = ft.encode(ft_tok(tiny), ft.TrainSet.instructions(
        [r["instruction"] for r in alpaca_rows[0][:n]], [r["input"] for r in alpaca_rows[0][:n]],
        [r["output"] for r in alpaca_rows[0][:n]]), max_length)
    examples = sorted(examples, key=lambda e: len(e[0]))
    return ft.collate(examples, list(range(len(examples))), 10**9, ft_tok(tiny).pad_token_id)


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_chunked_response_loss_and_micro_batches_equal_the_full_cross_entropy(tiny, alpaca_rows, one_thread):
    """The loss over the response tokens computed from hidden states a few positions at a time, and the
    gradient accumulated over micro-batches cut to their own width, equal the full-logit cross-entropy
    of the whole batch (what fine-tuning computed before issue 25) and its gradient."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny.location, dtype=torch.float32)
    model.train()
    ids, att, lab = _batch(tiny, alpaca_rows)
    n_sup = int((lab != ft.IGNORE).sum())
    logits = model(input_ids=ids, attention_mask=att).logits
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1),
                                             ignore_index=ft.IGNORE)
    full.backward()
    full = float(full.detach())
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    assert ft.head_is_plain(model, ids[:1, :8])
    got = ft.response_loss(model, ids, att, lab, float(n_sup), chunk=7)  # many chunks, the last one short
    assert math.isclose(got / n_sup, full, rel_tol=1e-5)
    for name, g in _grads(model).items():
        assert torch.allclose(g, want[name], rtol=1e-4, atol=1e-6), name
    model.zero_grad(set_to_none=True)
    widths = [int(w) for w in att.sum(dim=1)]
    parts = ft.micro_batches(widths, max(widths))  # one row per micro-batch at most the longest
    assert len(parts) > 1
    total = sum(ft.response_loss(model, ids[p, :max(widths[j] for j in p)], att[p, :max(widths[j] for j in p)],
                                 lab[p, :max(widths[j] for j in p)], float(n_sup)) for p in parts)
    assert math.isclose(total / n_sup, full, rel_tol=1e-5)
    for name, g in _grads(model).items():
        assert torch.allclose(g, want[name], rtol=1e-4, atol=1e-6), name
    # a model whose logits are not its head's projection (here: scaled, as logit soft-capping would) falls
    # back to the model's own logits
    forward = model.forward

    def scaled(*a, **k):
        out = forward(*a, **k)
        out.logits = 2 * out.logits
        return out

    model.forward = scaled
    assert not ft.head_is_plain(model, ids[:1, :8])


def test_memory_plan_fits_the_default_model_in_4_gib_and_not_below(spec):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(spec.location)
    n = 134_515_008  # SmolLM2-135M's parameters
    lora = ft.plan_memory(cfg, n, 4_884_480, "lora", 512)
    full = ft.plan_memory(cfg, n, n, "full", 512)
    assert lora.budget == ft.DEFAULT_MAX_MEMORY == 4 * ft.GiB
    # one row of 512 tokens fits; a whole 16 x 512 batch (8,192 tokens) would not: it is split
    assert 512 <= full.micro_tokens < lora.micro_tokens < 16 * 512
    assert lora.fixed + lora.per_token * lora.micro_tokens <= 4 * ft.GiB
    assert ft.plan_memory(cfg, n, n, "full", 512, 8 * ft.GiB).micro_tokens > 2 * full.micro_tokens
    with pytest.raises(ValueError, match=r"raise --max-memory to \d"):
        ft.plan_memory(cfg, n, n, "full", 512, 2 * ft.GiB)
    assert ft.parse_memory("4G") == ft.parse_memory("4 GiB") == 4 * ft.GiB and ft.parse_memory("1.5g") == 3 * 2**29
    with pytest.raises(ValueError):
        ft.parse_memory("lots")


def test_eval_plan_lowers_the_batch_and_caps_the_length_to_the_budget(tiny):
    from harness.resources import lmeval as L

    task = L.perplexity_task("h", shared("self_instruct_user_oriented_252/human_reference.jsonl"), limit_rows=40)
    roomy = L.plan_eval({"pretrained": tiny.location}, [task], 4 * ft.GiB, batch_size=8)
    assert roomy.max_length is None and 1 <= roomy.batch_size <= 8 and roomy.longest > 100
    assert roomy.batch_size * roomy.longest <= roomy.positions
    tight = L.plan_eval({"pretrained": tiny.location}, [task], ft.PROCESS_ALLOWANCE + 200 * 2**20, batch_size=8)
    assert tight.batch_size == 1 and tight.max_length is not None and tight.max_length < tight.longest


# ----------------------------------------------------------------------------- end to end

def _write_rows(path, rows):
    path.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in rows))
    return path


def test_end_to_end_tiny_model_perplexity_drops_on_its_training_responses(tiny, alpaca_rows, tmp_path, monkeypatch,
                                                                           one_thread, capfd):
    from harness.cli import main
    from harness.types import Result

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # not a git checkout: lm-eval's git probe would print 'fatal: not a git repository'
    gpt4, _ = alpaca_rows
    train = _write_rows(tmp_path / "gpt4_16.jsonl", gpt4[:16])
    out = tmp_path / "out"
    argv = ["lm-utility", f"gpt4={train}", "--lm", tiny.location, "--eval-responses", f"own={train}",
            "--mc-task", f"ag={shared('ag_news_real/test.jsonl')}", "--mc-rows", "4", "--limit", "12",
            "--token-budget", "800", "--full", "--lr", "3e-3", "--batch-size", "4", "--max-length", "64",
            "--device", "cpu", "--threads", "1", "--out", str(out), "--no-progress"]
    capfd.readouterr()
    assert main(argv) == 0
    err = capfd.readouterr().err
    # --no-progress: no progress bar of lm-eval, datasets or transformers, and no git probe message
    for noise in ("it/s]", "s/it]", "Running loglikelihood", "Loading weights", "fatal:", "not a git repository"):
        assert noise not in err, (noise, err[-2000:])
    records = [Result.from_json(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r.dataset, r.metric): r for r in records}
    base_name = next(r.dataset for r in records if r.role == "reference")
    delta = by[("gpt4", "lm-utility/own/bits-per-byte-delta")]
    assert delta.value < 0 and delta.ci[1] < 0 and delta.higher_is_better is False
    base_bpb = by[(base_name, "lm-utility/own/bits-per-byte")].value
    assert math.isclose(by[("gpt4", "lm-utility/own/bits-per-byte")].value - base_bpb, delta.value, abs_tol=1e-9)
    assert delta.signature.args["setup"]["recipe"]["token_budget"] == 800 and delta.signature.version == 1
    assert delta.signature.data["candidate"] and delta.signature.data["reference"]
    acc = by[("gpt4", "lm-utility/ag/mc-accuracy-delta")]
    assert -1 <= acc.value <= 1 and acc.higher_is_better is True
    meta = json.loads((out / "run.json").read_text())
    assert meta["training"]["gpt4"][0]["tokens_trained"] == 800
    # our bits per byte equals the value lm-eval itself aggregated
    cached = next((tmp_path / "cache" / "lmeval" / "results").glob("*.json"))
    rec = json.loads(cached.read_text())["tasks"]["own"]
    assert rec["n"] == 12 and math.isclose(rec["metrics"]["bits_per_byte"][0],
                                           -sum(rec["docs"]["loglikelihood"]) / sum(rec["docs"]["bytes"]) / math.log(2))
    table = (out / "lm-utility.md").read_text()
    assert "| gpt4 |" in table and "(base)" in table and "Δ bits/byte" in table
    # a rerun trains and evaluates nothing
    trained = ft.STATS["trained"]
    assert main(argv) == 0 and ft.STATS["trained"] == trained


def test_gap_recovered_against_real_text_fine_tuned_at_the_same_budget(tiny, alpaca_rows, tmp_path, monkeypatch,
                                                                        one_thread):
    """lm-utility --real: the real text is fine-tuned at the same budget and seeds, and gap recovered is the
    candidate's gain over the base model as a share of the real text's (issue #23), on real Alpaca rows."""
    from harness.cli import main
    from harness.types import Result

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    gpt4, davinci = alpaca_rows
    cand = _write_rows(tmp_path / "gpt4_16.jsonl", gpt4[:16])
    real = _write_rows(tmp_path / "davinci_16.jsonl", davinci[:16])
    held = _write_rows(tmp_path / "held.jsonl", gpt4[16:28])
    out = tmp_path / "out"
    argv = ["lm-utility", f"gpt4={cand}", "--real", f"davinci={real}", "--lm", tiny.location,
            "--eval-responses", f"held={held}", "--token-budget", "600", "--full", "--lr", "3e-3",
            "--batch-size", "4", "--max-length", "64", "--device", "cpu", "--threads", "1", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    records = [Result.from_json(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r.dataset, r.metric): r for r in records}
    gr = by[("gpt4", "lm-utility/held/bits-per-byte-gap-recovered")]
    delta = by[("gpt4", "lm-utility/held/bits-per-byte-delta")]
    d = gr.details
    assert math.isclose(sum(d["tuned"]) / len(d["tuned"]) - d["base"], delta.value, abs_tol=1e-9)
    real_gain = sum(d["real_tuned"]) / len(d["real_tuned"]) - d["base"]
    assert real_gain < 0 and math.isclose(gr.value, delta.value / real_gain, rel_tol=1e-9)
    assert gr.higher_is_better is True and gr.ci[0] <= gr.value <= gr.ci[1]
    meta = json.loads((out / "run.json").read_text())
    assert meta["real"]["name"] == "davinci" and gr.signature.args["setup"]["real"] == meta["real"]["fingerprint"]
    assert "gap recovered" in (out / "lm-utility.md").read_text()
    # no --real: no gap-recovered metric at all (nothing to recover against)
    plain = [a for a in argv if a not in ("--real", f"davinci={real}")]
    plain[plain.index("--out") + 1] = str(tmp_path / "o2")
    assert main(plain) == 0
    assert "gap-recovered" not in (tmp_path / "o2" / "results.jsonl").read_text()


def test_lm_utility_user_errors(tmp_path, capsys, alpaca_rows):
    from harness.cli import main

    cand = _write_rows(tmp_path / "c.jsonl", alpaca_rows[0][:3])
    assert main(["lm-utility", str(cand), "--token-budget", "10", "--out", str(tmp_path / "o")]) == 2
    assert "at least one evaluation task" in capsys.readouterr().err
    assert main(["lm-utility", str(tmp_path / "x.jsonl"), "--eval-responses", str(cand), "--token-budget", "10",
                 "--out", str(tmp_path / "o")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["lm-utility", str(cand), "--eval-responses", str(cand), "--mc-task", f"c={cand}",
                 "--token-budget", "10", "--out", str(tmp_path / "o")]) == 2
    assert "'query', 'choices', 'gold'" in capsys.readouterr().err
    assert main(["lm-utility", str(cand), "--eval-responses", str(cand), "--token-budget", "10", "--max-memory",
                 "lots", "--out", str(tmp_path / "o")]) == 2
    assert "--max-memory lots" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_lora_lowers_bits_per_byte_on_held_out_human_responses(spec, tmp_path, monkeypatch):
    """The real default model, LoRA, 20k tokens of Alpaca-GPT-4 on the CPU; evaluated on 40 of the
    Self-Instruct user-oriented human responses (never trained on)."""
    from harness.resources import lmeval as L

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    rows = read_jsonl(shared("alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl"))
    data = ft.TrainSet.instructions([r["instruction"] for r in rows], [r["input"] for r in rows],
                                    [r["output"] for r in rows], name="alpaca-gpt4")
    ck = ft.finetune(spec, data, ft.FTRecipe(token_budget=20_000, batch_size=8, max_length=256), seed=0,
                     cache_dir=tmp_path / "lmft", progress=False, threads=1)
    task = L.perplexity_task("human", shared("self_instruct_user_oriented_252/human_reference.jsonl"), limit_rows=40)
    folder = L.write_tasks([task], tmp_path / "tasks")
    kw = dict(device="cpu", threads=1, batch_size=4, cache_dir=tmp_path / "res")
    base = L.evaluate({"pretrained": spec.location}, [task], folder, model_key=spec.identity, **kw)["human"]
    tuned = L.evaluate(ck.lm_eval_args(), [task], folder, model_key=ck.key, **kw)["human"]
    value, ci = L.paired_delta(base, [tuned], "bits_per_byte")
    assert value < 0 and ci[1] < 0


@pytest.mark.slow
def test_registered_task_without_reachable_data_is_a_one_line_error(monkeypatch):
    """lm-eval's own task index takes ~30 s to read; offline, hellaswag's data cannot be fetched."""
    from lm_eval.tasks import TaskManager

    from harness.resources import lmeval as L

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match="hellaswag.*could not be loaded.*offline"):
        L.check_registered(["hellaswag"], TaskManager())


@pytest.mark.slow
def test_training_memory_does_not_grow_with_the_number_of_steps(spec, tmp_path, monkeypatch):
    """SmolLM2-135M with LoRA on windows of exactly 64 tokens (every step the same 16 x 64 shape, split into
    micro-batches by the 4 GiB plan): resident memory after the last of 24 steps is no higher than after
    step 6 (plus 10% and 64 MiB of allocator noise). Before issue 25 a step's memory grew with its rows."""
    import resource

    import psutil

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    rows = read_jsonl(shared("alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl"))
    data = ft.TrainSet.texts([" ".join(r["output"] for r in rows)], name="gpt4-windows")
    rss = []
    proc = psutil.Process()
    ck = ft.finetune(spec, data, ft.FTRecipe(token_budget=24 * 16 * 63, batch_size=16, max_length=64), seed=0,
                     cache_dir=tmp_path / "lmft", progress=False, threads=2,
                     callback=lambda step, lab: rss.append(proc.memory_info().rss))
    assert ck.meta["steps"] >= 24 and ck.meta["memory"]["forward_passes"] > ck.meta["steps"]  # steps were split
    assert rss[-1] <= rss[6] * 1.10 + 64 * 2**20, [round(r / 2**20) for r in rss]
    assert max(rss[12:]) <= max(rss[6:12]) * 1.10 + 64 * 2**20, [round(r / 2**20) for r in rss]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < 6 * ft.GiB
