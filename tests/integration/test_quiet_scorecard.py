"""Issue 21 on the CLINC150 suite (suites/intent_clinc150.yaml, real data, a small sample for speed): the
scorecard is printed within the first 25 lines of what a run shows (stdout and stderr in the order a
terminal gets them) and report.md opens with it; off a terminal, stderr holds no carriage return (no
progress bars), one line per stage with its elapsed time, and at most one warning per cause."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from tests.conftest import ROOT, shared

METRICS = ["lexical/distinct-2", "lexical/entropy-2", "dup/exact-rate", "surface/label-jsd", "surface/vocab-jsd",
           "contam/test-ngram-overlap", "memo/exact-copy-rate", "format/empty-rate", "instr/empty-rate",
           "utility/tfidf-lr/accuracy", "utility/tfidf-lr/macro-f1"]


def _small_clinc_suite(tmp_path):
    raw = yaml.safe_load((ROOT / "suites" / "intent_clinc150.yaml").read_text(encoding="utf-8"))
    root = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_train.jsonl").parents[2]
    for part in [raw["reference"], raw["test"], *raw["candidates"]]:
        part["path"] = str(root / part["path"])
    # chatgpt keeps the 5 intents the test split lacks: every utility metric warns about the same rows
    raw["candidates"][0].pop("where_not")
    raw.update(sample_size=150, repeats=1, metrics=METRICS)
    path = tmp_path / "clinc_small.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path, [c["name"] for c in raw["candidates"]]


def test_clinc150_prints_the_scorecard_first_and_is_quiet_off_a_terminal(tmp_path):
    suite, candidates = _small_clinc_suite(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "CI")}
    env.update(PYTHONUNBUFFERED="1", SYNTHBENCH_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out)], cwd=ROOT,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:]
    shown = r.stdout
    assert "\r" not in shown  # no progress bar off a terminal (stderr is a pipe here)
    lines = shown.splitlines()
    head = lines.index(next(x for x in lines if x.startswith("SCORECARD")))
    rows = [i for i, x in enumerate(lines) if i > head and any(x.startswith(c + " ") for c in candidates)]
    assert rows[:len(candidates)] and rows[len(candidates) - 1] < 25, "\n".join(lines[:30])
    # one line per stage with its elapsed time, one line per warning cause, one per not-computed cause
    stages = [x for x in lines if re.fullmatch(r".+: \d+ metric\(s\) in \d+\.\d s", x)]
    assert len(stages) == 4, lines[:head]
    warnings = [x for x in lines if x.startswith("warning:")]
    causes = [re.sub(r"\d+", "#", x.split(": ", 2)[-1].split(" (")[0]) for x in warnings]
    assert len(causes) == len(set(causes)), warnings
    absent = [x for x in warnings if "labels absent from the test split" in x]
    assert len(absent) == 1 and "2 utility metrics" in absent[0], warnings
    assert len([x for x in lines if x.startswith("not computed:") and "instr/empty-rate" in x]) == 1
    # report.md and leaderboard.md open with the scorecard
    for name in ("report.md", "leaderboard.md"):
        md = (out / name).read_text(encoding="utf-8").splitlines()
        assert md[0] == "# synthbench report: intent-clinc150" and md[2] == "## Scorecard"
        table = [i for i, x in enumerate(md) if x.startswith("| candidate |")]
        assert table and table[0] < 8 and all(any(x.startswith(f"| {c} |") for x in md[:table[0] + 6])
                                              for c in candidates)
