"""LLM-as-judge metrics: label correctness, instruction following, factual consistency, pairwise preference.

An LLM reads each row through a rubric and answers from a fixed vocabulary (``harness/rubrics/*.yaml``:
the prompt, the allowed verdicts, the score of each verdict and the row flag it raises). The judge is
any OpenAI-compatible endpoint (``--judge-url``) or, by default, SmolLM2-135M-Instruct served locally
by ``transformers serve`` (``harness.resources.judge_client``); every judgment is cached, so a rerun costs
nothing. Long et al., "On LLMs-Driven Synthetic Data Generation, Curation, and Evaluation: A Survey",
ACL Findings 2024 (faithfulness and open evaluation with LLM judges); Zheng et al., "Judging
LLM-as-a-Judge with MT-Bench and Chatbot Arena", NeurIPS 2023 (pairwise judging, position bias, and
swapping the order to cancel it).

**Strict parsing.** An answer counts only when, after trimming white space, surrounding quotes,
backticks or asterisks and one trailing '.', '!' or ',', it is exactly one of the rubric's verdicts
(case-insensitive), or a JSON object whose ``"verdict"`` is one. Anything else is *unparsable*: counted
and reported (``details.unparsable``, with examples), left out of the value, never guessed.

**The judge is judged.** A judge is only as good as its agreement with the truth, so its verdicts on
synthetic rows are reported beside its accuracy where the truth is known: ``judge/label-reliability``
on the reference's real rows (each real row is asked about with its true label and with a wrong label
drawn at random: a judge that always says yes scores 0.5), ``judge_on_reference`` in the details of
every candidate's judge metric (the same numbers, and for instruction data the rejection rate of
deliberately mismatched instruction/response pairs), and ``judge/classifier-kappa``: Cohen's kappa
between the judge and the reference classifier of ``faith/reference-agreement`` on the same rows.

Cost is bounded by ``max_rows`` (a seeded sample of at most that many rows per dataset is judged;
the rest is counted as ``not_sampled``) and fields are cut to ``max_chars`` characters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

from harness.metrics.base import MetricSkipped, metric
from harness.stats import bootstrap_ci, bootstrap_replicates, percentile_interval, wilson_ci
from harness.types import INSTRUCTION, Score

MAX_LISTED = 5
N_BOOT = 1000
_REASON = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_FIELD = re.compile(r"\{([a-z_]+)\}")
TASK_FIELDS = {"classification": {"text", "label"},
               "instruction": {"instruction", "input", "output"},
               "pairwise": {"instruction", "input", "output_a", "output_b"}}


# ----------------------------------------------------------------------------- rubrics

@dataclass(frozen=True)
class Rubric:
    """A rubric file: prompt template, allowed verdicts -> score, verdict -> row-flag reason."""

    name: str
    version: int
    task: str
    system: str
    prompt: str
    verdicts: dict
    flags: dict
    max_tokens: int
    stop: tuple
    sha256: str

    def messages(self, **fields) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": _FIELD.sub(lambda m: fields[m.group(1)], self.prompt)}]

    def parse(self, answer: str) -> str | None:
        return parse_verdict(answer, self.verdicts)


def _rubric_error(name: str, what: str) -> ValueError:
    return ValueError(f"rubric {name}: {what}")


def rubric_from_text(text: str, name: str = "<text>") -> Rubric:
    """Validate a rubric's YAML text."""
    import hashlib

    import yaml

    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise _rubric_error(name, "not a YAML mapping")
    allowed = {"name", "version", "task", "system", "prompt", "verdicts", "flags", "max_tokens", "stop"}
    unknown = set(raw) - allowed
    if unknown:
        raise _rubric_error(name, f"unknown keys {sorted(unknown)}")
    task = raw.get("task")
    if task not in TASK_FIELDS:
        raise _rubric_error(name, f"task {task!r} is not one of {sorted(TASK_FIELDS)}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _rubric_error(name, "no prompt")
    used = set(_FIELD.findall(prompt))
    if not used <= TASK_FIELDS[task]:
        raise _rubric_error(name, f"prompt uses {sorted(used - TASK_FIELDS[task])}, not fields of a {task} row")
    verdicts = raw.get("verdicts")
    if not isinstance(verdicts, dict) or len(verdicts) < 2:
        raise _rubric_error(name, "needs at least two verdicts")
    out_v = {}
    for k, v in verdicts.items():
        if not isinstance(k, str) or not k.strip() or k != k.strip().lower() or " " in k:
            raise _rubric_error(name, f"verdict {k!r} is not one lower-case word (quote yes/no in YAML)")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise _rubric_error(name, f"verdict {k!r} maps to {v!r}, not a score in [0, 1]")
        out_v[k] = float(v)
    flags = raw.get("flags") or {}
    for k, v in flags.items():
        if k not in out_v:
            raise _rubric_error(name, f"flag for unknown verdict {k!r}")
        if not isinstance(v, str) or not _REASON.match(v):
            raise _rubric_error(name, f"flag reason {v!r} is not a short kebab-case word")
    max_tokens = raw.get("max_tokens", 8)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 4096:
        raise _rubric_error(name, f"max_tokens {max_tokens!r} is not a whole number in [1, 4096]")
    stop = raw.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _rubric_error(name, "stop must be a list of strings")
    return Rubric(name=str(raw.get("name", name)), version=int(raw.get("version", 1)), task=task,
                  system=str(raw.get("system") or "").strip(), prompt=prompt, verdicts=out_v, flags=dict(flags),
                  max_tokens=max_tokens, stop=tuple(stop),
                  sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def rubric_names() -> list[str]:
    from importlib.resources import files

    return sorted(p.name[:-5] for p in (files("harness") / "rubrics").iterdir() if p.name.endswith(".yaml"))


@cache
def load_rubric(name: str) -> Rubric:
    """The shipped rubric ``harness/rubrics/<name>.yaml``."""
    from importlib.resources import files

    f = files("harness") / "rubrics" / f"{name}.yaml"
    if not f.is_file():
        raise ValueError(f"no rubric named {name!r} (shipped: {', '.join(rubric_names())})")
    return rubric_from_text(f.read_text(encoding="utf-8"), name)


def rubric_signature(name: str) -> dict:
    """Rubric identity for result signatures: a changed prompt or verdict map never reuses a result."""
    r = load_rubric(name)
    return {"rubric": r.name, "rubric_version": r.version, "rubric_sha256": r.sha256[:16]}


_EDGE = " \t\r\n\"'`*"


def parse_verdict(answer: str | None, verdicts) -> str | None:
    """The verdict of a judge's answer, or None when it is not exactly one allowed verdict.

    >>> v = {"yes": 1.0, "no": 0.0}
    >>> [parse_verdict(a, v) for a in ["Yes", " no. ", '"YES"', "**No**", '{"verdict": "no"}', "Yes, it is",
    ...                                "yes no", "Maybe", "", "nope", '{"answer": "yes"}']]
    ['yes', 'no', 'yes', 'no', 'no', None, None, None, None, None, None]
    """
    if not answer:
        return None
    s = answer.strip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except ValueError:
            return None
        v = obj.get("verdict") if isinstance(obj, dict) else None
        v = v.strip().lower() if isinstance(v, str) else None
        return v if v in verdicts else None
    s = s.strip(_EDGE)
    if s[-1:] in (".", "!", ","):
        s = s[:-1].strip(_EDGE)
    s = s.lower()
    return s if s in verdicts else None


# ----------------------------------------------------------------------------- running a rubric

def _judge_of(ctx):
    j = getattr(ctx, "judge", None)
    if j is None:
        raise MetricSkipped("needs an LLM judge (--judge-url URL or the local default; 'judge:' in a suite)")
    return j


def _cut(text: str, max_chars: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= max_chars else text[:max_chars] + " …"


def _field(v: str, max_chars: int) -> str:
    v = _cut(v, max_chars)
    return v if v else "(none)"


def judge_items(judge, rubric: Rubric, items: list[dict], max_chars: int, desc: str) -> dict:
    """Ask the judge about every item (a dict of the rubric's fields); verdicts and accounting."""
    msgs = [rubric.messages(**{k: _field(v, max_chars) for k, v in it.items()}) for it in items]
    answers = judge.complete(msgs, max_tokens=rubric.max_tokens, stop=list(rubric.stop), desc=desc) if msgs else []
    verdicts = [rubric.parse(a.content) for a in answers]
    pt = sum(a.prompt_tokens or 0 for a in answers)
    ct = sum(a.completion_tokens or 0 for a in answers)
    bad = [i for i, v in enumerate(verdicts) if v is None]
    return {
        "verdicts": verdicts, "answers": [a.content for a in answers],
        "accounting": {"judgments": len(answers), "sent_now": sum(not a.cached for a in answers),
                       "from_cache": sum(a.cached for a in answers), "prompt_tokens": pt, "completion_tokens": ct,
                       "cost": round(judge.cost_of(pt, ct), 6)},
        "unparsable": bad,
    }


def _pick(ctx, n: int, max_rows: int, salt: str) -> list[int]:
    """Positions judged: all n rows, or a seeded sample of max_rows of them (in order)."""
    if n <= max_rows:
        return list(range(n))
    return sorted(int(i) for i in ctx.rng(salt).choice(n, size=max_rows, replace=False))


def _judge_block(judge, rubric: Rubric, res: dict) -> dict:
    bad = res["unparsable"]
    return {"model": judge.identity, "rubric": rubric.name, "rubric_sha256": rubric.sha256[:16],
            **res["accounting"], "unparsable": len(bad),
            "unparsable_examples": [res["answers"][i][:80] for i in bad[:MAX_LISTED]]}


def _warn_unparsable(res: dict) -> list[str]:
    n, bad = len(res["verdicts"]), len(res["unparsable"])
    if bad and bad / max(1, n) >= 0.1:
        return [f"{bad} of {n} judge answers were unparsable (left out, never guessed)"]
    return []


def _all_unparsable(res: dict, what: str):
    if res["verdicts"] and not res["unparsable"]:
        return
    if not res["verdicts"]:
        raise MetricSkipped(f"no {what} to judge")
    if len(res["unparsable"]) == len(res["verdicts"]):
        ex = "; ".join(repr(a[:40]) for a in res["answers"][:3])
        raise RuntimeError(f"all {len(res['verdicts'])} judge answers were unparsable (e.g. {ex}): "
                           "the judge does not follow the rubric's answer format")


# ----------------------------------------------------------------------------- label correctness

def _label_rows(ctx, max_rows: int):
    if ctx.labels is None:
        raise MetricSkipped("needs labels")
    return _pick(ctx, len(ctx.texts), max_rows, "judge-label")


def _label_verdicts(ctx, rubric: Rubric, max_rows: int, max_chars: int):
    rows = _label_rows(ctx, max_rows)
    items = [{"text": ctx.texts[i], "label": str(ctx.labels[i])} for i in rows]
    res = judge_items(_judge_of(ctx), rubric, items, max_chars, f"{rubric.name} {ctx.corpus.name}")
    return rows, res


def _label_reliability(ctx, rubric: Rubric, max_rows: int, max_chars: int) -> dict:
    """The judge on real labelled rows: each with its true label and with a seeded wrong label."""
    import numpy as np

    rows, true_res = _label_verdicts(ctx, rubric, max_rows, max_chars)
    labels = sorted({str(x) for x in ctx.labels})
    if len(labels) < 2:
        raise MetricSkipped("needs at least 2 labels to ask about a wrong one")
    rng = ctx.rng("judge-label-negative")
    wrong = []
    for i in rows:
        others = [lab for lab in labels if lab != str(ctx.labels[i])]
        wrong.append(others[int(rng.integers(len(others)))])
    items = [{"text": ctx.texts[i], "label": w} for i, w in zip(rows, wrong)]
    neg_res = judge_items(_judge_of(ctx), rubric, items, max_chars, f"{rubric.name} negative control {ctx.corpus.name}")
    pos = true_res["verdicts"]
    neg = neg_res["verdicts"]
    ok_pos = [v == "yes" for v in pos if v is not None]
    ok_neg = [v == "no" for v in neg if v is not None]
    pairs = [(p == "yes", q == "no") for p, q in zip(pos, neg) if p is not None and q is not None]
    sens = sum(ok_pos) / len(ok_pos) if ok_pos else None
    spec = sum(ok_neg) / len(ok_neg) if ok_neg else None
    bal = (sens + spec) / 2 if sens is not None and spec is not None else None
    ci = None
    if len(pairs) >= 2:
        per_row = np.array([(a + b) / 2 for a, b in pairs], dtype=float)  # rows with both answers parsed
        ci = bootstrap_ci(per_row, seed=ctx.seed)
    return {"dataset": ctx.corpus.name, "rows": len(rows), "balanced_accuracy": bal, "ci": ci,
            "accepts_true_label": sens, "rejects_wrong_label": spec,
            "true_label_judged": len(ok_pos), "wrong_label_judged": len(ok_neg),
            "unparsable": len(true_res["unparsable"]) + len(neg_res["unparsable"]),
            "judgments": true_res["accounting"]["judgments"] + neg_res["accounting"]["judgments"],
            "prompt_tokens": true_res["accounting"]["prompt_tokens"] + neg_res["accounting"]["prompt_tokens"],
            "completion_tokens": (true_res["accounting"]["completion_tokens"]
                                  + neg_res["accounting"]["completion_tokens"]),
            "sent_now": true_res["accounting"]["sent_now"] + neg_res["accounting"]["sent_now"]}


def _round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v] if isinstance(v, tuple) else v)
            for k, v in d.items()}


@metric("judge/label-correctness", args={"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500},
        needs=("labels", "judge"),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        opt_in=True,
        cost="heavy")
def label_correctness(ctx, rubric: str = "label_correctness", max_rows: int = 200, max_chars: int = 1500) -> Score:
    """LLM-judged label correctness: share of judged rows whose label the judge accepts; higher is better.

    The judge sees each row's text and label (rubric ``label_correctness``) and answers yes or no;
    the value is yes / (yes + no) over the rows it answered parsably, with a Wilson interval. Read it
    beside ``judge_on_reference`` in the details: the same judge's acceptance of the real rows' true
    labels and rejection of wrong ones (and the value of this metric on the reference row). A judge
    that accepts everything makes every dataset look faithful. Range [0, 1]. Row flags:
    ``judge-mislabelled`` (the judge answered no). Long et al. 2024 (faithfulness by LLM judges).
    """
    rub = load_rubric(rubric)
    rows, res = _label_verdicts(ctx, rub, max_rows, max_chars)
    _all_unparsable(res, "rows")
    v = res["verdicts"]
    yes = sum(x == "yes" for x in v)
    n = sum(x is not None for x in v)
    flagged = {reason: [rows[i] for i, x in enumerate(v) if x == verdict] for verdict, reason in rub.flags.items()}
    details = {"accepted": yes, "rejected": n - yes, "judged": len(rows), "not_sampled": len(ctx.texts) - len(rows),
               "judge": _judge_block(ctx.judge, rub, res),
               "rejected_examples": [{"row": rows[i], "label": str(ctx.labels[rows[i]]),
                                      "text": _cut(ctx.texts[rows[i]], 160)}
                                     for i, x in enumerate(v) if x == "no"][:MAX_LISTED],
               "interval": "Wilson (rows judged parsably)"}
    ref = ctx if ctx.role == "reference" else ctx.reference
    if ref is not None and ref.labels is not None:
        details["judge_on_reference"] = _round(_label_reliability(ref, rub, max_rows, max_chars))
    warnings = _warn_unparsable(res)
    if warnings:
        details["warnings"] = warnings
    return Score(yes / n, wilson_ci(yes, n), details, rows=flagged)


@metric("judge/label-reliability", args={"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500},
        needs=("labels", "judge"),
        bounds=(0, 1),
        seeded=True,
        opt_in=True,
        cost="heavy",
        range="[0, 1] (0.5 = chance)")
def label_reliability(ctx, rubric: str = "label_correctness", max_rows: int = 200, max_chars: int = 1500) -> Score:
    """How far the judge can be trusted on labels: its balanced accuracy on the reference's real rows (0.5 = chance).

    Computed on the reference only (its labels are taken as the truth). Each judged real row is asked
    about twice with the ``label_correctness`` rubric: with its true label (the judge should say
    yes) and with a wrong label drawn at random from the other labels (seeded; it should say no).
    The value is the mean of the two rates (balanced accuracy), so a judge that always says yes, or
    always no, scores 0.5 and one that is always right scores 1. Interval: percentile bootstrap over
    rows. details: both rates, counts, unparsable answers. No better direction for the dataset: this
    rates the judge, and every ``judge/label-correctness`` value should be read beside it.
    """
    if ctx.role != "reference":
        raise MetricSkipped("rates the judge on the reference's real labels: see the reference row")
    rub = load_rubric(rubric)
    rel = _label_reliability(ctx, rub, max_rows, max_chars)
    if rel["balanced_accuracy"] is None:
        raise RuntimeError("the judge gave no parsable answer on the reference's rows")
    ci = rel.pop("ci")
    return Score(rel["balanced_accuracy"], ci, {**_round(rel), "rubric": rub.name, "model": ctx.judge.identity,
                                                "interval": "percentile bootstrap over rows"})


def cohen_kappa(a, b) -> float | None:
    """Cohen's kappa of two boolean vectors (None when undefined: both raters constant and equal).

    >>> cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]), cohen_kappa([1, 0, 1, 0], [1, 1, 0, 0])
    (1.0, 0.0)
    """
    import numpy as np

    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    po = float((a == b).mean())
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    return None if pe >= 1 else round((po - pe) / (1 - pe), 12)  # no -6e-17 for an exact 0


@metric("judge/classifier-kappa", args={"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500, "C": 10},
        needs=("labels", "embeddings", "reference", "reference_embeddings", "judge"),
        bounds=(-1, 1),
        seeded=True,
        opt_in=True,
        cost="heavy")
def classifier_kappa(ctx, rubric: str = "label_correctness", max_rows: int = 200, max_chars: int = 1500,
                     C: float = 10.0) -> Score:
    """Agreement of the LLM judge with the reference classifier on which labels are right: Cohen's kappa (0 = chance).

    On the rows ``judge/label-correctness`` judged (the same seeded sample, answered from the cache),
    the judge's yes/no is compared with whether the reference classifier of
    ``faith/reference-agreement`` (multinomial logistic regression on the reference's embeddings,
    ``C``) predicts the row's label. Kappa near 0 means the two label checks are unrelated (at least
    one of them is noise); near 1 they agree beyond chance. Only rows with a parsable answer and a
    label known to the reference count. Interval: percentile bootstrap over rows. details: the 2 × 2
    table, the value from sklearn's ``cohen_kappa_score``. Cohen, "A coefficient of agreement for
    nominal scales", 1960. No better direction for the dataset: this rates the two checks.
    """
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from harness.metrics.direct.faithfulness import _fit_proba

    ref = ctx.reference
    if ref is None or ref.labels is None:
        raise MetricSkipped("needs a labelled --reference")
    rub = load_rubric(rubric)
    rows, res = _label_verdicts(ctx, rub, max_rows, max_chars)
    _all_unparsable(res, "rows")
    known = {str(x) for x in ref.labels}
    keep = [(p, v) for p, v in zip(rows, res["verdicts"]) if v is not None and str(ctx.labels[p]) in known]
    if len(keep) < 2:
        raise MetricSkipped("fewer than 2 judged rows with a label the reference knows")
    pos = [p for p, _ in keep]
    judge_yes = np.array([v == "yes" for _, v in keep])
    classes, P = _fit_proba(ref.embeddings, np.asarray([str(x) for x in ref.labels]), ctx.embeddings[pos], C)
    pred = [str(classes[i]) for i in P.argmax(axis=1)]
    clf_yes = np.array([pred[k] == str(ctx.labels[p]) for k, p in enumerate(pos)])
    kappa = cohen_kappa(judge_yes, clf_yes)
    if kappa is None:
        raise MetricSkipped(f"kappa undefined: judge and classifier both gave every row the same verdict "
                            f"({'yes' if judge_yes[0] else 'no'})")
    sk = float(cohen_kappa_score(judge_yes, clf_yes))
    n = len(pos)

    def kappa_of(idx):  # one resample a block; kappa is undefined (left out) where a side is constant
        k = cohen_kappa(judge_yes[idx[0]], clf_yes[idx[0]])
        return [] if k is None else [k]

    reps = bootstrap_replicates(n, kappa_of, N_BOOT, ctx.rng("judge-kappa-boot"), 1)
    ci = percentile_interval(reps, tails=(0.025, 0.975), min_count=N_BOOT // 2)
    table = {"both_yes": int((judge_yes & clf_yes).sum()), "judge_yes_classifier_no": int((judge_yes & ~clf_yes).sum()),
             "judge_no_classifier_yes": int((~judge_yes & clf_yes).sum()), "both_no": int((~judge_yes & ~clf_yes).sum())}
    return Score(kappa, ci, {"rows": n, "table": table, "judge_accepts": round(float(judge_yes.mean()), 4),
                             "classifier_agrees": round(float(clf_yes.mean()), 4),
                             "observed_agreement": round(float((judge_yes == clf_yes).mean()), 4),
                             "sklearn_cohen_kappa": round(sk, 6), "judge": _judge_block(ctx.judge, rub, res),
                             "interval": f"percentile bootstrap over rows ({N_BOOT} replicates)"})


# ----------------------------------------------------------------------------- instruction rows

def _instruction_fields(ctx):
    c = ctx.corpus
    if c.kind != INSTRUCTION or "instruction" not in c.fields or "output" not in c.fields:
        raise MetricSkipped("needs instruction data (instruction and output fields)")
    inp = c.fields.get("input") or ("",) * len(c.texts)
    return c.fields["instruction"], inp, c.fields["output"]


def _derangement(rng, n: int):
    """A seeded permutation with no fixed point (n >= 2): row i is paired with another row's text."""
    perm = rng.permutation(n)
    return [(int(p) + 1) % n if int(p) == i else int(p) for i, p in enumerate(perm)] if n > 1 else [0]


def _instr_score(ctx, rubric: str, max_rows: int, max_chars: int, need_input: bool, negative: str):
    """(Score) for instruction following / factual consistency; ``negative``: which field a mismatched
    control takes from another row ('output' or 'input')."""
    import numpy as np

    rub = load_rubric(rubric)
    instr, inp, out = _instruction_fields(ctx)
    eligible = [i for i in range(len(out)) if out[i].strip() and (not need_input or inp[i].strip())]
    if not eligible:
        raise MetricSkipped("no row with " + ("an input and " if need_input else "") + "a non-empty output")
    pick = _pick(ctx, len(eligible), max_rows, f"judge-{rub.name}")
    rows = [eligible[k] for k in pick]
    items = [{"instruction": instr[i], "input": inp[i], "output": out[i]} for i in rows]
    res = judge_items(_judge_of(ctx), rub, items, max_chars, f"{rub.name} {ctx.corpus.name}")
    _all_unparsable(res, "rows")
    v = res["verdicts"]
    scores = np.array([rub.verdicts[x] for x in v if x is not None], dtype=float)
    value = float(scores.mean())
    binary = set(rub.verdicts.values()) <= {0.0, 1.0}
    if binary:
        k = int(scores.sum())
        ci, how = wilson_ci(k, len(scores)), "Wilson (rows judged parsably)"
    else:
        ci, how = bootstrap_ci(scores, seed=ctx.seed), "percentile bootstrap over rows judged parsably"
    counts = {verdict: sum(x == verdict for x in v) for verdict in rub.verdicts}
    flagged = {reason: [rows[i] for i, x in enumerate(v) if x == verdict] for verdict, reason in rub.flags.items()}
    details = {"verdicts": counts, "judged": len(rows), "not_sampled": len(eligible) - len(rows),
               "not_eligible": len(out) - len(eligible), "judge": _judge_block(ctx.judge, rub, res),
               "interval": how,
               "low_examples": [{"row": rows[i], "instruction": _cut(instr[rows[i]], 120),
                                 "output": _cut(out[rows[i]], 160)}
                                for i, x in enumerate(v) if x is not None and rub.verdicts[x] == 0.0][:MAX_LISTED]}
    ref = ctx if ctx.role == "reference" else ctx.reference
    if ref is not None:
        try:
            details["judge_on_reference"] = _round(_negative_control(ref, rub, max_rows, max_chars, need_input,
                                                                     negative))
        except MetricSkipped as e:
            details["judge_on_reference"] = {"not_computed": str(e)}
    warnings = _warn_unparsable(res)
    if warnings:
        details["warnings"] = warnings
    return Score(value, ci, details, rows=flagged)


def _negative_control(ctx, rub: Rubric, max_rows: int, max_chars: int, need_input: bool, negative: str) -> dict:
    """The judge on real rows: its mean score on them as they are, and how often it rejects (lowest
    verdict) deliberately mismatched rows (``negative`` taken from another row)."""
    import numpy as np

    instr, inp, out = _instruction_fields(ctx)
    eligible = [i for i in range(len(out)) if out[i].strip() and (not need_input or inp[i].strip())]
    if len(eligible) < 2:
        raise MetricSkipped("fewer than 2 eligible reference rows")
    pick = _pick(ctx, len(eligible), max_rows, f"judge-{rub.name}")
    rows = [eligible[k] for k in pick]
    real = [{"instruction": instr[i], "input": inp[i], "output": out[i]} for i in rows]
    other = _derangement(ctx.rng(f"judge-{rub.name}-negative"), len(rows))
    fake = [dict(real[k], **{negative: real[other[k]][negative]}) for k in range(len(rows))]
    r1 = judge_items(ctx.judge, rub, real, max_chars, f"{rub.name} {ctx.corpus.name}")
    r2 = judge_items(ctx.judge, rub, fake, max_chars, f"{rub.name} negative control {ctx.corpus.name}")
    low = min(rub.verdicts.values())
    s_real = [rub.verdicts[x] for x in r1["verdicts"] if x is not None]
    rej = [rub.verdicts[x] == low for x in r2["verdicts"] if x is not None]
    s_fake = [rub.verdicts[x] for x in r2["verdicts"] if x is not None]
    m_real = float(np.mean(s_real)) if s_real else None
    m_fake = float(np.mean(s_fake)) if s_fake else None
    return {"dataset": ctx.corpus.name, "rows": len(rows), "mean_score_real": m_real, "mean_score_mismatched": m_fake,
            # 0: the judge scores real pairs no higher than mismatched ones (it cannot tell); 1: perfectly apart
            "discrimination": m_real - m_fake if m_real is not None and m_fake is not None else None,
            "rejects_mismatched": float(np.mean(rej)) if rej else None,
            "mismatched": f"each row's {negative} replaced by another row's",
            "unparsable": len(r1["unparsable"]) + len(r2["unparsable"])}


@metric("judge/instruction-following", args={"rubric": "instruction_following", "max_rows": 200, "max_chars": 1500},
        needs=("judge",),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        opt_in=True,
        cost="heavy")
def instruction_following(ctx, rubric: str = "instruction_following", max_rows: int = 200,
                          max_chars: int = 1500) -> Score:
    """LLM-judged instruction following: mean judge score (yes 1, partly 0.5, no 0) of the responses; higher is better.

    Instruction data only. The judge sees the instruction, the input and the response (rubric
    ``instruction_following``). Interval: percentile bootstrap over the rows judged parsably. Read
    it beside ``judge_on_reference`` in the details: the judge's mean score on the real rows and how
    often it rejects deliberately mismatched pairs (each real instruction with another row's
    response); a judge that does not reject those cannot tell following from not following. Row flags:
    ``judge-unfollowed`` (verdict no). Range [0, 1]. Long et al. 2024; Zheng et al. 2023.
    """
    return _instr_score(ctx, rubric, max_rows, max_chars, need_input=False, negative="output")


@metric("judge/factual-consistency", args={"rubric": "factual_consistency", "max_rows": 200, "max_chars": 1500},
        needs=("judge",),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        opt_in=True,
        cost="heavy")
def factual_consistency(ctx, rubric: str = "factual_consistency", max_rows: int = 200, max_chars: int = 1500) -> Score:
    """LLM-judged factual consistency with the input: share of responses the judge finds supported by their input; higher is better.

    Instruction rows with a non-empty input only (others are counted as ``not_eligible``). The judge
    answers yes or no (rubric ``factual_consistency``); Wilson interval. details.judge_on_reference:
    the judge on real rows as they are and with each response paired with another row's input (it
    should say no). Row flags: ``judge-inconsistent``. Range [0, 1]. Long et al. 2024 (faithfulness:
    grounding in the given input).
    """
    return _instr_score(ctx, rubric, max_rows, max_chars, need_input=True, negative="input")


# ----------------------------------------------------------------------------- pairwise preference

def _key(instruction: str, inp: str) -> tuple[str, str]:
    return " ".join(instruction.split()).lower(), " ".join(inp.split()).lower()


def match_pairs(a, b) -> list[tuple[int, int]]:
    """(row in a, row in b) for instructions (with their inputs) that occur in both corpora, the first
    occurrence of each on both sides, in a's order."""
    def fields(c):
        if c.kind != INSTRUCTION or "instruction" not in c.fields or "output" not in c.fields:
            raise MetricSkipped(f"{c.name}: needs instruction data (instruction and output fields)")
        return c.fields["instruction"], c.fields.get("input") or ("",) * len(c.texts)

    ia, xa = fields(a)
    ib, xb = fields(b)
    first_b: dict = {}
    for j in range(len(ib)):
        first_b.setdefault(_key(ib[j], xb[j]), j)
    out, seen = [], set()
    for i in range(len(ia)):
        k = _key(ia[i], xa[i])
        if k in first_b and k not in seen:
            seen.add(k)
            out.append((i, first_b[k]))
    return out


def pairwise(judge, rub: Rubric, a, b, pairs: list[tuple[int, int]], max_chars: int, desc: str) -> dict:
    """Judge each pair in both orders; per pair the score of a (1 win, 0.5 tie, 0 loss), the mean of
    the two orders, when both answers parse.

    Returns per-pair scores (None when an order was unparsable) and the order statistics.
    """
    fa, fb = a.fields, b.fields
    inp_a = fa.get("input") or ("",) * len(a.texts)
    items = []
    for i, j in pairs:
        base = {"instruction": fa["instruction"][i], "input": inp_a[i]}
        items.append({**base, "output_a": fa["output"][i], "output_b": fb["output"][j]})   # a shown first
        items.append({**base, "output_a": fb["output"][j], "output_b": fa["output"][i]})   # b shown first
    res = judge_items(judge, rub, items, max_chars, desc)
    v = res["verdicts"]
    scores, consistent, first_pos = [], 0, []
    for k in range(len(pairs)):
        x, y = v[2 * k], v[2 * k + 1]
        for z in (x, y):
            if z is not None:
                first_pos.append(rub.verdicts[z])
        if x is None or y is None:
            scores.append(None)
            continue
        s1, s2 = rub.verdicts[x], 1.0 - rub.verdicts[y]  # both from a's point of view
        consistent += s1 == s2
        scores.append((s1 + s2) / 2)
    ok = [s for s in scores if s is not None]
    return {"scores": scores, "res": res, "pairs": len(pairs), "both_parsed": len(ok),
            "wins": sum(s == 1.0 for s in ok), "losses": sum(s == 0.0 for s in ok),
            "ties_or_split": sum(0.0 < s < 1.0 for s in ok),
            "position_consistent": round(consistent / len(ok), 4) if ok else None,
            "first_position_score": round(sum(first_pos) / len(first_pos), 4) if first_pos else None}


@metric("judge/pairwise-win-rate", args={"rubric": "pairwise_preference", "max_pairs": 100, "max_chars": 1500},
        needs=("reference", "judge"),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        opt_in=True,
        cost="heavy",
        range="[0, 1] (0.5 = no preference)")
def pairwise_win_rate(ctx, rubric: str = "pairwise_preference", max_pairs: int = 100, max_chars: int = 1500) -> Score:
    """LLM-judged pairwise preference: how often the judge prefers this set's answer to the reference's for the same instruction; 0.5 = no preference.

    Rows of the candidate and the reference with the same instruction and input (white space and
    case ignored) are paired (at most ``max_pairs``, seeded); the judge compares the two answers
    twice, once in each order (Zheng et al., NeurIPS 2023: judges favour a position, swapping cancels
    it). Per pair the candidate scores 1 (preferred in both orders), 0 (in neither) or in between
    (ties, or a split that reveals position bias); the value is the mean over pairs whose two answers
    both parsed, with a percentile bootstrap interval. details: wins, losses, ties or splits, the
    share of position-consistent pairs and the mean score of the answer shown first (0.5 = no
    position bias). Row flags: ``judge-dispreferred`` (the reference's answer won in both orders).
    """
    import numpy as np

    rub = load_rubric(rubric)
    pairs = match_pairs(ctx.corpus, ctx.reference.corpus)
    if not pairs:
        raise MetricSkipped("no instruction (with its input) occurs in both this set and the reference")
    keep = _pick(ctx, len(pairs), max_pairs, "judge-pairwise")
    pairs = [pairs[k] for k in keep]
    out = pairwise(_judge_of(ctx), rub, ctx.corpus, ctx.reference.corpus, pairs, max_chars,
                   f"pairwise {ctx.corpus.name} vs {ctx.reference.corpus.name}")
    res = out.pop("res")
    scores = out.pop("scores")
    _all_unparsable(res, "pairs")
    ok = np.array([s for s in scores if s is not None], dtype=float)
    if len(ok) == 0:
        raise RuntimeError("no pair got two parsable answers")
    lost = [pairs[k][0] for k, s in enumerate(scores) if s == 0.0]
    details = {**out, "judge": _judge_block(ctx.judge, rub, res), "interval": "percentile bootstrap over pairs"}
    warnings = _warn_unparsable(res)
    if warnings:
        details["warnings"] = warnings
    return Score(float(ok.mean()), bootstrap_ci(ok, seed=ctx.seed), details, rows={"judge-dispreferred": lost})


def judge_signature(judge, args: dict, reference=None) -> dict:
    """What a judge metric's result depends on beyond its arguments: the judge model and generation
    settings, the rubric's content, and (details compare with it) the reference's fingerprint."""
    sig = dict(judge.signature()) if hasattr(judge, "signature") else {"model": str(judge)}
    if "rubric" in args:
        sig.update(rubric_signature(args["rubric"]))
    if reference is not None:
        sig["reference"] = reference.fingerprint[:16]
    return sig
