"""Format validity: the share of rows that break the declared schema (``harness/data/schema.py``).

The checks run when the data is loaded with a schema (``--schema FILE.yaml`` or the suite key
``schema:``), which keeps invalid rows and records each row's failed checks; this metric counts them.
"""

from __future__ import annotations

from harness.data.schema import REASONS, row_reasons
from harness.metrics.base import MetricSkipped, metric
from harness.stats import wilson_ci
from harness.types import Score

EXAMPLES_PER_REASON = 3
WIDTH = 160


@metric("format/empty-rate",
        higher_is_better=False,
        bounds=(0, 1),
        resample="none",
        no_identity="counts rows the loader left out; a corruption of kept rows cannot add one")
def empty_rate(ctx) -> Score:
    """Empty-row rate: share of the dataset's rows whose text is empty, whitespace-only or null; lower is better.

    For instruction data a row is empty when its instruction is (an empty *output* under a real instruction
    is a response defect, counted by ``faith/empty-output``). Empty generations are among the commonest
    defects of LLM-made data: the loader leaves such rows out of every other metric (``--strict`` refuses
    the file instead), and this metric counts them over all rows as loaded, so a sample or holdout does not
    change it. Range [0, 1]; 0 when no row is empty. Interval: Wilson score. Format validity as a
    faithfulness criterion: Long et al., "On LLMs-Driven Synthetic Data Generation, Curation, and
    Evaluation: A Survey", Findings of ACL 2024, §4.1. details: ``count``, ``rows`` (``count`` as loaded),
    ``where`` (the first lines or files). Row flags: ``empty`` in flags.jsonl (positions among the rows as
    loaded, so ``synthbench curate --drop empty`` works).
    """
    c = ctx.corpus
    k = len(c.empty_rows)
    n = c.source_identity[1]
    return Score(k / n, wilson_ci(k, n), {"count": k, "rows": n, "where": list(c.empty_where[:10])})


@metric("format/invalid-rate",
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags")
def invalid_rate(ctx) -> Score:
    """Invalid-row rate: share of rows that fail the declared schema (fields, types, labels, lengths, JSON); lower is better.

    A row is invalid when it fails at least one check of the schema given with ``--schema`` or the
    suite key ``schema:`` (required fields present and not blank, JSON types, an allowed label set
    that defaults to the reference's labels, length bounds in words or characters, fields that must
    parse as JSON), or a rule an ordinary load enforces (text present and a string, a label present).
    Range [0, 1]; 0 when every row is valid. Interval: Wilson score. Skipped when no schema was
    declared (an ordinary load refuses invalid files instead). Format and schema validity as a
    faithfulness criterion: Long et al., "On LLMs-Driven Synthetic Data Generation, Curation, and
    Evaluation: A Survey", Findings of ACL 2024, §4.1. details: ``count``, ``by_reason`` (rows per
    reason), ``by_field`` (per ``reason:field``), ``examples`` (a few rows per reason). Row flags: one
    list of rows per reason (a row failing two checks is in both lists).
    """
    reasons = row_reasons(ctx.corpus)
    if reasons is None:
        raise MetricSkipped("no schema declared (give eval --schema FILE.yaml, or the suite key 'schema:')")
    n = len(reasons)
    if n == 0:
        raise MetricSkipped("no rows")
    rows: dict[str, list[int]] = {}
    by_field: dict[str, int] = {}
    examples: dict[str, list[dict]] = {}
    bad = 0
    for i, pairs in enumerate(reasons):
        if not pairs:
            continue
        bad += 1
        for reason in dict.fromkeys(r for r, _ in pairs):
            rows.setdefault(reason, []).append(i)
            if len(examples.setdefault(reason, [])) < EXAMPLES_PER_REASON:
                examples[reason].append({"row": i, "fields": [f for r, f in pairs if r == reason],
                                         "text": ctx.texts[i][:WIDTH]})
        for reason, fld in pairs:
            key = f"{reason}:{fld}"
            by_field[key] = by_field.get(key, 0) + 1
    order = {r: k for k, r in enumerate(REASONS)}
    rows = dict(sorted(rows.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Score(bad / n, wilson_ci(bad, n),
                 {"count": bad, "rows": n, "by_reason": {r: len(v) for r, v in rows.items()},
                  "by_field": dict(sorted(by_field.items())),
                  "examples": {r: examples[r] for r in rows}},
                 rows=rows)
