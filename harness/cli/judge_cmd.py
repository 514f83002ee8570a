"""synthbench judge: pairwise preference between two instruction datasets' answers, by an LLM judge.

Rows of A and B with the same instruction and input (white space and case ignored) are paired; the judge
compares the two answers of each pair twice, in both orders, with the rubric ``pairwise_preference``
(harness/rubrics/), and the answers are cached like every judgment (a rerun sends nothing). The result:
A's win rate (1 = A preferred in both orders, 0.5 = tie or a split, 0 = B preferred) with a bootstrap
interval, wins / losses / splits, position consistency and the mean score of the answer shown first
(0.5 = no position bias), unparsable answers and the tokens and cost spent.
"""

from __future__ import annotations

import argparse

NAME = "judge"
HELP = "pairwise preference between two instruction datasets' answers to the same instructions (LLM judge)"
DESCRIPTION = __doc__.split("\n\n", 1)[1].split("\n\n")[0] if __doc__ else HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.cli.common import add_field_flags, add_judge_flags, positive_int

    p.add_argument("a", metavar="A", help="first dataset (path, NAME=PATH, builtin:NAME, hf:ID)")
    p.add_argument("b", metavar="B", help="second dataset, answering some of the same instructions")
    p.add_argument("--max-pairs", type=positive_int, default=100, metavar="N",
                   help="judge at most N matched pairs, a seeded sample (default 100; each costs 2 requests)")
    p.add_argument("--max-chars", type=positive_int, default=1500, metavar="N", help="cut every field to N characters")
    p.add_argument("--rubric", default="pairwise_preference", help="rubric file name under harness/rubrics/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", metavar="FILE.json", help="also write the summary and per-pair verdicts as JSON")
    add_judge_flags(p)
    add_field_flags(p)


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    import numpy as np

    from harness.cli.common import judge_options
    from harness.data.load import FieldMap, load_corpus, parse_named, unique_names
    from harness.errors import UserError
    from harness.metrics.base import MetricSkipped
    from harness.metrics.direct.judge import load_rubric, match_pairs, pairwise
    from harness.report.markdown import term_safe
    from harness.resources.cache import atomic_write_text
    from harness.resources.judge_client import Judge, resolve_judge
    from harness.stats import bootstrap_ci

    if args.max_pairs < 1:
        raise UserError(f"--max-pairs {args.max_pairs}: must be at least 1", "give e.g. --max-pairs 50")
    try:
        rub = load_rubric(args.rubric)
    except ValueError as e:
        raise UserError(f"--rubric {args.rubric}: {e}", "use a rubric of task 'pairwise' (pairwise_preference)") from None
    if rub.task != "pairwise":
        raise UserError(f"--rubric {args.rubric}: a {rub.task} rubric", "use a rubric of task 'pairwise' (pairwise_preference)")
    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    parsed = [parse_named(args.a), parse_named(args.b)]
    names = unique_names(parsed)
    if names[0] == names[1]:
        names = [names[0] + " (A)", names[1] + " (B)"]
    a, b = (load_corpus(path, fields, name=name, split=args.split) for name, (_, path) in zip(names, parsed))
    try:
        pairs = match_pairs(a, b)
    except MetricSkipped as e:
        raise UserError(str(e), "give two instruction datasets (instruction/input/output columns; see --instruction-field)") from None
    if not pairs:
        raise UserError(f"{a.name} and {b.name} share no instruction (with its input)",
                        "pairwise judging needs answers to the same instructions")
    matched = len(pairs)
    if matched > args.max_pairs:
        keep = np.sort(np.random.default_rng(args.seed).choice(matched, size=args.max_pairs, replace=False))
        pairs = [pairs[int(k)] for k in keep]
    log = lambda msg: print(term_safe(msg), file=sys.stderr)  # noqa: E731
    spec = resolve_judge(**judge_options(args))
    with Judge(spec, log=log) as judge:
        out = pairwise(judge, rub, a, b, pairs, args.max_chars, f"pairwise {a.name} vs {b.name}")
        st = dict(judge.stats)
    res = out.pop("res")
    scores = out.pop("scores")
    ok = np.array([s for s in scores if s is not None], dtype=float)
    summary = {"a": a.name, "b": b.name, "judge": spec.identity, "rubric": rub.name, "rubric_sha256": rub.sha256[:16],
               "matched": matched, "judged": len(pairs), **out,
               "a_win_rate": float(ok.mean()) if len(ok) else None,
               "ci": list(bootstrap_ci(ok, seed=args.seed) or []) or None,
               "unparsable": len(res["unparsable"]), **res["accounting"],
               "requests": st["requests"], "retries": st["retries"]}
    print(f"pairwise preference, judge {spec.identity}, rubric {rub.name}")
    print(f"{a.name} (A) vs {b.name} (B): {matched} matched instruction(s), {len(pairs)} judged in both orders")
    if len(ok):
        ci = summary["ci"]
        print(f"  A win rate        {summary['a_win_rate']:.3f}" + (f"  [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
              + "   (1 = A always preferred, 0.5 = no preference)")
    else:
        print("  A win rate        n/a: no pair got two parsable answers")
    print(f"  A wins / B wins / tie or split   {out['wins']} / {out['losses']} / {out['ties_or_split']}")
    print(f"  position-consistent pairs        {out['position_consistent']}   (1 = the order never changed the verdict)")
    print(f"  first-shown answer's mean score  {out['first_position_score']}   (0.5 = no position bias)")
    print(f"  unparsable answers               {summary['unparsable']} of {2 * len(pairs)}")
    print(f"  requests sent {summary['sent_now']}, from the cache {summary['from_cache']}; tokens "
          f"{summary['prompt_tokens']} + {summary['completion_tokens']}; cost {summary['cost']:.4f}")
    if args.out:
        per_pair = [{"a_row": i, "b_row": j, "a_first": res["answers"][2 * k], "b_first": res["answers"][2 * k + 1],
                     "score_a": scores[k]} for k, (i, j) in enumerate(pairs)]
        atomic_write_text(Path(args.out), json.dumps({"summary": summary, "pairs": per_pair}, indent=2,
                                                     ensure_ascii=False) + "\n")
        log(f"wrote {args.out}")
    return 0
