"""synthbench's published diversity scores beside the published code (issue 10): speed and agreement.

``CASES`` lists one dict per score for the side-by-side driver::

    {"metric": "self-BLEU (BLEU-4)", "ours": f(texts) -> float, "theirs": f(texts) -> float,
     "theirs_name": "...", "goal": {"n": 5000, "speedup": 20, "rel_tol": 0.01}}

``"interval": True`` marks an "ours" that returns ``(value, low, high)`` (low/high None when it computed the
exact value). Where a published score is not usable as shipped the "theirs" callable says what it changes,
always the smallest change that runs the published code itself:

- ``diversity`` 0.3.1 (Shaib et al. 2024) imports spaCy in its ``__init__``; its modules are loaded from
  their files (``diversity_module``) so that spaCy is not needed. Its ``round(..., 3)`` is disabled (a
  module-level ``round`` that returns its argument) so that values compare beyond 3 decimals.
- its BLEU homogenization calls ``evaluate.load("bleu")``, which needs the Hugging Face hub: ``EvaluateBleu``
  stands in for it with evaluate's own code (tensorflow/nmt ``compute_bleu`` and the 13a tokenizer, from
  sacrebleu), minus evaluate's Arrow bookkeeping, so the published timing is if anything too fast. The
  package divides each row's BLEU by n − 1 twice (see ``harness/metrics/direct/homogenization.py``); "theirs"
  multiplies its unrounded value by n − 1 to compare with ours.
- self-BLEU as Texygen computes it (``SelfBleu.get_bleu_parallel``, Zhu et al. 2018): nltk ``sentence_bleu``
  of each row against all others, uniform weights, smoothing method 1, over a ``multiprocessing.Pool`` of
  all cores as Texygen does. Texygen tokenises with ``nltk.word_tokenize`` (Punkt data, not installed
  here); both sides use 13a tokens (sacrebleu's tokenizer on their side, ours on ours), so values must agree.
- sacrebleu's ``sentence_bleu`` against the other rows is not a self-BLEU used in the literature we could
  find (its default exponential smoothing and tokenisation differ from Texygen's): no case.

``main()`` runs every case at n = 1,000 and 5,000 real rows (``--sizes``), the published code in its own
process group, stopped at ``--limit`` seconds (default 300) and shown as "> limit"::

    .venv/bin/python bench/versus_lexical.py --sizes 1000 --limit 120
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {
    "clinc150-gpt": DATA / "intent_paraphrases_chatgpt_vs_crowd" / "clinc150" / "gpt.jsonl",
    "banking77": DATA / "banking77_real" / "train.jsonl",
}

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- the published code


def diversity_module(name: str):
    """A module of the ``diversity`` package loaded from its file (its ``__init__`` imports spaCy), with
    ``round`` disabled so that values are not cut to 3 decimals."""
    spec = importlib.util.find_spec("diversity")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pip install --no-deps diversity==0.3.1 (the bench's reference)")
    path = Path(list(spec.submodule_search_locations)[0]) / f"{name}.py"
    mspec = importlib.util.spec_from_file_location(f"_diversity_{name}", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    mod.round = lambda x, ndigits=None: x  # shadows the builtin inside that module only
    return mod


def _nmt_get_ngrams(segment, max_order):
    # tensorflow/nmt scripts/bleu.py, as copied into Hugging Face evaluate metrics/bleu/nmt_bleu.py (Apache-2.0)
    import collections

    ngram_counts = collections.Counter()
    for order in range(1, max_order + 1):
        for i in range(0, len(segment) - order + 1):
            ngram_counts[tuple(segment[i:i + order])] += 1
    return ngram_counts


def nmt_compute_bleu(reference_corpus, translation_corpus, max_order=4, smooth=False):
    """tensorflow/nmt ``compute_bleu`` as in Hugging Face evaluate's ``bleu`` (Apache-2.0), unchanged."""
    import collections

    matches_by_order = [0] * max_order
    possible_matches_by_order = [0] * max_order
    reference_length = 0
    translation_length = 0
    for (references, translation) in zip(reference_corpus, translation_corpus):
        reference_length += min(len(r) for r in references)
        translation_length += len(translation)
        merged_ref_ngram_counts = collections.Counter()
        for reference in references:
            merged_ref_ngram_counts |= _nmt_get_ngrams(reference, max_order)
        translation_ngram_counts = _nmt_get_ngrams(translation, max_order)
        overlap = translation_ngram_counts & merged_ref_ngram_counts
        for ngram in overlap:
            matches_by_order[len(ngram) - 1] += overlap[ngram]
        for order in range(1, max_order + 1):
            possible_matches = len(translation) - order + 1
            if possible_matches > 0:
                possible_matches_by_order[order - 1] += possible_matches
    precisions = [0] * max_order
    for i in range(0, max_order):
        if smooth:
            precisions[i] = (matches_by_order[i] + 1.0) / (possible_matches_by_order[i] + 1.0)
        elif possible_matches_by_order[i] > 0:
            precisions[i] = float(matches_by_order[i]) / possible_matches_by_order[i]
        else:
            precisions[i] = 0.0
    if min(precisions) > 0:
        geo_mean = math.exp(sum((1.0 / max_order) * math.log(p) for p in precisions))
    else:
        geo_mean = 0
    if reference_length == 0 or translation_length == 0:
        bp = 0.0
    else:
        ratio = float(translation_length) / reference_length
        bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp


class EvaluateBleu:
    """What ``evaluate.load("bleu")`` returns, minus the hub: ``compute(predictions, references)`` with the
    13a tokenizer (sacrebleu's, split into tokens as evaluate's copy does) and nmt ``compute_bleu``."""

    def __init__(self):
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        self._tok = Tokenizer13a()

    def tokenize(self, line):
        return self._tok(line).split()

    def compute(self, predictions, references, max_order=4, smooth=False):
        if isinstance(references[0], str):
            references = [[r] for r in references]
        references = [[self.tokenize(r) for r in ref] for ref in references]
        predictions = [self.tokenize(p) for p in predictions]
        return {"bleu": nmt_compute_bleu(references, predictions, max_order, smooth)}


def _texygen_row(args):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    other, hypothesis, weight = args
    return sentence_bleu(other, hypothesis, weight, smoothing_function=SmoothingFunction().method1)


def texygen_self_bleu(texts, gram: int = 4, processes: int | None = None) -> float:
    """Texygen's ``SelfBleu.get_bleu_parallel`` (every other row as reference), on 13a tokens, over a Pool."""
    from multiprocessing import Pool

    tok = EvaluateBleu().tokenize
    reference = [tok(t) for t in texts]
    weight = tuple(1.0 / gram for _ in range(gram))
    jobs = ((reference[:i] + reference[i + 1:], reference[i], weight) for i in range(len(reference)))
    with Pool(processes or os.cpu_count()) as pool:
        result = pool.map(_texygen_row, jobs, chunksize=8)
    return sum(result) / len(result)


def theirs_homogenization(texts, measure: str) -> float:
    mod = diversity_module("homogenization")
    if measure == "bleu":
        mod.load = lambda name: EvaluateBleu()
        return mod.homogenization_score(list(texts), measure="bleu", verbose=False) * (len(texts) - 1)
    return mod.homogenization_score(list(texts), measure="rougel", verbose=False)


def theirs_compression(texts) -> float:
    return diversity_module("compression").compression_ratio(list(texts), algorithm="gzip")


def theirs_ngram_diversity(texts) -> float:
    return diversity_module("ngram_diversity").ngram_diversity_score(list(texts), num_n=4)


# ----------------------------------------------------------------------------- ours


def _score(name: str, texts):
    from harness import metrics
    from harness.metrics.base import Context
    from harness.types import Corpus

    return metrics.get(name)(Context(Corpus("bench", "bench", "text", tuple(texts))))


def ours(name: str, interval: bool = False):
    def run(texts):
        s = _score(name, texts)
        return (s.value, *(s.ci or (None, None))) if interval else s.value

    run.__name__ = f"ours[{name}]"
    return run


CASES = [
    {"metric": "compression ratio (gzip)", "ours": ours("lexical/compression-ratio"), "theirs": theirs_compression,
     "theirs_name": "diversity 0.3.1 compression_ratio (gzip of gzip, via temp files)",
     "goal": {"n": 5000, "speedup": None, "rel_tol": 0.01}},
    {"metric": "n-gram diversity (n ≤ 4)", "ours": ours("lexical/ngram-diversity"), "theirs": theirs_ngram_diversity,
     "theirs_name": "diversity 0.3.1 ngram_diversity_score (nltk.ngrams)",
     "goal": {"n": 5000, "speedup": None, "rel_tol": 0.01}},
    {"metric": "homogenization ROUGE-L", "ours": ours("lexical/homogenization-rougel", interval=True),
     "interval": True,
     "theirs": lambda texts: theirs_homogenization(texts, "rougel"),
     "theirs_name": "diversity 0.3.1 homogenization_score(measure='rougel') (rouge_score)",
     "goal": {"n": 5000, "speedup": 20, "rel_tol": 0.01}},
    {"metric": "homogenization BLEU", "ours": ours("lexical/homogenization-bleu"),
     "theirs": lambda texts: theirs_homogenization(texts, "bleu"),
     "theirs_name": "diversity 0.3.1 homogenization_score(measure='bleu') × (n−1), evaluate bleu code without the hub",
     "goal": {"n": 5000, "speedup": 20, "rel_tol": 0.01}},
    {"metric": "self-BLEU (BLEU-4)", "ours": ours("lexical/self-bleu"), "theirs": texygen_self_bleu,
     "theirs_name": f"nltk {importlib.util.find_spec('nltk') and __import__('nltk').__version__} sentence_bleu, "
                    "Texygen get_bleu_parallel (Pool of all cores)",
     "goal": {"n": 5000, "speedup": 20, "rel_tol": 0.01}},
]


# ----------------------------------------------------------------------------- the table


def load_texts(dataset: str, n: int) -> list[str]:
    """The first n non-empty texts of a real dataset, read in place."""
    out = []
    with DATASETS[dataset].open(encoding="utf-8") as f:
        for line in f:
            t = json.loads(line).get("text", "")
            if t.strip():
                out.append(t)
                if len(out) == n:
                    break
    if len(out) < n:
        raise SystemExit(f"{dataset} has only {len(out)} rows, asked for {n}")
    return out


def _child(case: int, dataset: str, n: int) -> None:
    texts = load_texts(dataset, n)
    fn = CASES[case]["theirs"]
    fn(texts[:20])  # imports and first-call costs outside the timing
    t = time.perf_counter()
    value = fn(texts)
    print(json.dumps({"seconds": time.perf_counter() - t, "value": float(value)}))


def run_theirs(case: int, dataset: str, n: int, limit: float):
    """(seconds, value) of the published code in its own process group, or (None, None) past the limit."""
    p = subprocess.Popen([sys.executable, __file__, "--_theirs", str(case), dataset, str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=limit + 30)  # + start-up and imports
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the group we started: the child and its Pool workers
        p.communicate()
        return None, None
    if p.returncode != 0:
        raise RuntimeError(f"reference for case {case} failed:\n{err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    if r["seconds"] > limit:
        return None, None
    return r["seconds"], r["value"]


def _fmt(x, d=4):
    return "–" if x is None else f"{x:.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--data", default="clinc150-gpt", help=f"comma-separated: {', '.join(DATASETS)}")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds for the published code (default 300)")
    ap.add_argument("--cases", default="", help="substring filter on the metric name")
    ap.add_argument("--_theirs", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._theirs:
        _child(int(a._theirs[0]), a._theirs[1], int(a._theirs[2]))
        return 0
    print("| metric | data | n | ours s | theirs s | speedup | ours value | theirs value | rel. diff | goal |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for dataset in a.data.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            texts = load_texts(dataset, n)
            for ci, case in enumerate(CASES):
                if a.cases and a.cases.lower() not in case["metric"].lower():
                    continue
                case["ours"](texts[:20])  # warm imports
                t = time.perf_counter()
                got = case["ours"](texts)
                ours_s = time.perf_counter() - t
                value, lo, hi = got if case.get("interval") else (got, None, None)
                theirs_s, theirs_v = run_theirs(ci, dataset, n, a.limit)
                rel = None if theirs_v is None else abs(value - theirs_v) / max(abs(theirs_v), 1e-300)
                speed = "–" if theirs_s is None else f"{theirs_s / ours_s:,.0f}×"
                if theirs_s is None:
                    speed = f"> {a.limit / ours_s:,.0f}×"
                goal = case["goal"]
                verdict = ""
                if goal["n"] == n:
                    ok_speed = goal["speedup"] is None or theirs_s is None or theirs_s / ours_s >= goal["speedup"]
                    ok_val = rel is None or rel <= goal["rel_tol"]
                    verdict = ("PASS" if ok_speed and ok_val else "MISS") + (" (value unchecked)" if rel is None else "")
                vtxt = _fmt(value) + (f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else "")
                print(f"| {case['metric']} | {dataset} | {n:,} | {ours_s:.3f} | "
                      f"{'> ' + format(a.limit, 'g') if theirs_s is None else format(theirs_s, '.2f')} | {speed} | "
                      f"{vtxt} | {_fmt(theirs_v)} | {'–' if rel is None else f'{rel:.1e}'} | {verdict} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
