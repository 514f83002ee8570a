"""Golden values: every metric on a small fixed corpus, stored with the metric's declared version.

The corpus is real rows from ../shared/data (CLINC150, six intents: ChatGPT paraphrases and crowd
paraphrases as candidates, the original training rows as reference, original test rows as the test split; Alpaca-GPT4
instruction rows against the Self-Instruct seed tasks) plus a synthetic candidate made from the first
(planted exact copies, test-row copies and label noise), with fixed vectors (``tests.conftest.FakeEmbedder``)
wherever the embedding model is not the point. Metrics that need a causal LM, an LLM judge or lm-eval, and
the recipe that fine-tunes MiniLM (``utility/minilm-ft/*``), are not here: for them the model is the point
(and minutes of CPU), and their stored records carry the model's identity.

``python -m tests.golden.golden`` rewrites ``values.json``; ``tests/unit/metrics/test_golden.py``
recomputes the values and fails when one moves while its metric's version stays the same.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALUES = HERE / "values.json"
MACHINE = HERE / "machine.txt"  # the CPU the values were computed on (see check.machine)
EXCLUDED_NEEDS = {"lm", "judge", "lm_eval"}
#: recipes that fine-tune a model (the model is the point; minutes on these cores): their records carry it
EXCLUDED_PREFIXES = ("utility/minilm-ft/",)


def _jsonl(path: Path, n: int, step: int = 1) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]
    return rows[::step][:n]


def corpora():
    """(candidates, reference, test) for the classification runs, and (candidates, reference) for instruction."""
    from harness.api import load
    from tests.conftest import shared

    src = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    files = {k: _jsonl(src / f"{k}.jsonl", 10**9) for k in ("gpt", "human", "orig_train", "orig_test")}
    shared_labels = sorted(set.intersection(*({r["label"] for r in rows} for rows in files.values())))
    labels = shared_labels[::max(1, len(shared_labels) // 6)][:6]  # six intents, 40 rows each (30 in test)

    def take(rows, per):
        out = []
        for lab in labels:
            out += [{"text": r["text"], "label": r["label"]} for r in rows if r["label"] == lab][:per]
        return out

    gpt, human, ref, test = (take(files["gpt"], 40), take(files["human"], 40), take(files["orig_train"], 60),
                             take(files["orig_test"], 30))
    rng = random.Random(0)
    planted = [dict(r, label=rng.choice(labels)) if i % 10 == 0 else dict(r) for i, r in enumerate(gpt[:200])]
    planted += [dict(r) for r in gpt[:20]] + [dict(r) for r in test[:20]]  # exact copies, test-row copies
    schema = {"length": {"text": {"min_words": 3, "max_words": 14}}}  # some rows fail: format/invalid-rate
    cands = [load(gpt, name="gpt"), load(human, name="crowd"), load(planted, name="planted", schema=schema)]
    ins = shared("alpaca_gpt4_sample_999/alpaca_gpt4_sample.jsonl")
    seed = shared("self_instruct_seed_tasks/seed_tasks_flat.jsonl")
    inst = [{k: r[k] for k in ("instruction", "input", "output")} for r in _jsonl(ins, 150, step=5)]
    seed_rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in _jsonl(seed, 150)]
    return (cands, load(ref, name="reference"), load(test, name="test"),
            [load(inst, name="alpaca-gpt4")], load(seed_rows, name="seed-tasks"))


def specs():
    """Every registered metric the golden corpus can compute (no model needed)."""
    from harness import metrics as registry

    return [registry.get(n) for n in registry.names()
            if not set(registry.info(n).needs) & EXCLUDED_NEEDS and not n.startswith(EXCLUDED_PREFIXES)]


def compute(timings: dict | None = None) -> dict[str, dict]:
    """{metric: {"version": v, "values": {dataset: value}}} on the golden corpus (``timings``: seconds per
    metric, summed over datasets, filled in when given)."""
    from harness.run.runner import RunConfig, run
    from tests.conftest import FakeEmbedder

    cands, ref, test, inst, seed = corpora()
    chosen = specs()
    out: dict[str, dict] = {s.name: {"version": s.info.version, "values": {}} for s in chosen}
    for corpora_, reference, tst in (([(ref, "reference")] + [(c, "candidate") for c in cands], ref, test),
                                     ([(seed, "reference")] + [(c, "candidate") for c in inst], seed, None)):
        res = run(corpora_, reference, chosen, None, RunConfig(seed=0, progress=False), log=lambda m: None,
                  embedder=FakeEmbedder(), test=tst)
        for r in res.results:
            out[r.metric]["values"][r.dataset] = r.value
            if timings is not None:
                timings[r.metric] = timings.get(r.metric, 0.0) + r.seconds
    return {m: d for m, d in out.items() if d["values"]}


def write(values: dict) -> None:
    from tests.golden import check

    VALUES.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    MACHINE.write_text(check.machine() + "\n", encoding="utf-8")


if __name__ == "__main__":
    import os
    import tempfile
    import time

    os.environ["SYNTHBENCH_CACHE"] = tempfile.mkdtemp(prefix="golden-cache-")  # computed, never read from a cache

    t0 = time.perf_counter()
    times: dict = {}
    vals = compute(times)
    write(vals)
    for m, t in sorted(times.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{t:7.1f} s  {m}")
    print(f"{len(vals)} metrics, {sum(len(d['values']) for d in vals.values())} values in "
          f"{time.perf_counter() - t0:.1f} s -> {VALUES}")
