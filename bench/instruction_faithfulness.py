"""The instruction-faithfulness table, rendered from a finished suite run (it recomputes nothing).

    .venv/bin/synthbench run suites/instruction.yaml                 # writes reports/instruction/
    .venv/bin/python bench/instruction_faithfulness.py               # writes reports/instruction-faithfulness.md

Reads ``results.jsonl`` and ``run.json`` of the run folder and writes one Markdown page: the
``instr/*`` and ``format/*`` metrics per dataset with their 95% intervals, what each count is made
of, and a few flagged rows per reason (dataset text escaped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("instr/relevance", "instr/relevance-low-rate", "instr/grounding", "instr/empty-rate",
           "instr/truncated-rate", "instr/refusal-rate", "instr/instruction-copy-rate", "format/invalid-rate")
RATES = {m for m in METRICS if m.endswith("-rate")}
EXAMPLES_PER_REASON = 2
WIDTH = 140


def load(run_dir: Path):
    from harness.run.store import load_results

    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    recs = {(r.dataset, r.metric): r for r in load_results(run_dir)}
    names = [c["name"] for c in meta.get("candidates", [])]
    if meta.get("reference"):
        names.append(meta["reference"]["name"])
    return meta, recs, names


def cell(r, pct: bool) -> str:
    if r is None:
        return "–"
    if pct:
        v = f"{100 * r.value:.1f}"
        return v + (f" [{100 * r.ci[0]:.1f}, {100 * r.ci[1]:.1f}]" if r.ci else "")
    v = f"{r.value:.3f}"
    return v + (f" [{r.ci[0]:.3f}, {r.ci[1]:.3f}]" if r.ci else "")


def _short(text, width=WIDTH) -> str:
    from harness.report.markdown import md_escape

    t = " ".join(str(text).split())
    return md_escape(t[:width] + ("…" if len(t) > width else ""))


def render(meta: dict, recs: dict, names: list[str]) -> str:
    from harness import metrics as registry
    from harness.report.markdown import arrow, md_escape

    ref = (meta.get("reference") or {}).get("name")
    rows_of = {d["name"]: d for d in meta.get("candidates", []) + ([meta["reference"]] if meta.get("reference") else [])}
    out = ["# Instruction faithfulness: Alpaca-style data against the human-written Self-Instruct tasks", ""]
    out += [f"Rendered by `bench/instruction_faithfulness.py` from `reports/{meta.get('suite', {}).get('name', '?')}/` "
            f"(`synthbench run {md_escape(meta.get('suite', {}).get('file', 'suites/instruction.yaml'))}`); "
            f"synthbench {meta.get('harness', '?')}, seed {meta.get('seed')}, "
            f"embedder {md_escape(meta.get('embedder') or '–')}.", ""]
    out += ["| dataset | role | rows evaluated | generator |", "|---|---|---:|---|"]
    for n in names:
        d = rows_of.get(n, {})
        prov = (meta.get("provenance") or {}).get(n, {})
        size = f"{d.get('rows', '?')}" + (f" of {d['sample']['of']}" if d.get("sample") else "")
        out.append(f"| {md_escape(n)} | {'reference' if n == ref else 'candidate'} | {size} | "
                   f"{md_escape(prov.get('generator', '–'))} |")
    out += ["", "## The table", "",
            "Rates in per cent with Wilson 95% intervals; relevance and grounding with bootstrap 95% intervals. "
            "↑ higher is better, ↓ lower is better.", ""]
    head = ["metric", ""] + [md_escape(n) + (" (human)" if n == ref else "") for n in names]
    out += ["| " + " | ".join(head) + " |", "|---|:-:|" + "---:|" * len(names)]
    for m in METRICS:
        if not any((n, m) in recs for n in names):
            continue
        info = registry.get(m).info
        unit = " (%)" if m in RATES else ""
        out.append(f"| `{m}`{unit} | {arrow(info.higher_is_better)} | "
                   + " | ".join(cell(recs.get((n, m)), m in RATES) for n in names) + " |")
    out += ["", "Definitions (`synthbench metrics`; the docstrings give the exact rules):", ""]
    for m in METRICS:
        out.append(f"- `{m}`: {md_escape(registry.get(m).info.summary)}")
    out += ["", "## What the numbers are made of", ""]
    out += ["| | " + " | ".join(md_escape(n) for n in names) + " |", "|---|" + "---|" * len(names)]

    def detail_row(label, m, f):
        vals = []
        for n in names:
            r = recs.get((n, m))
            try:
                vals.append(f(r.details) if r is not None else "–")
            except (KeyError, TypeError):
                vals.append("–")
        out.append(f"| {label} | " + " | ".join(vals) + " |")

    def counts(d, key):
        items = [(k, v) for k, v in (d.get(key) or {}).items() if v]
        return ", ".join(f"{k} {v}" for k, v in items) or "none"

    detail_row("relevance: own-pair / shuffled mean cosine", "instr/relevance",
               lambda d: f"{d['own_mean']:.3f} / {d['shuffled_mean']:.3f}")
    detail_row("relevance-low: threshold (95th pct of shuffled)", "instr/relevance-low-rate",
               lambda d: f"{d['threshold']:.3f} ({d['count']} of {d['rows']})")
    detail_row("grounding: rows with input / checked", "instr/grounding",
               lambda d: f"{d['rows_with_input']} / {d['rows_checked']}")
    detail_row("grounding: numbers / names found in input", "instr/grounding",
               lambda d: f"{_pct(d.get('number_share'))} / {_pct(d.get('name_share'))}")
    detail_row("grounding: found in instruction or input", "instr/grounding", lambda d: _pct(d["share_in_prompt"]))
    detail_row("empty: by reason", "instr/empty-rate", lambda d: counts(d, "by_reason"))
    detail_row("truncated: by signal", "instr/truncated-rate", lambda d: counts(d, "by_signal"))
    detail_row("refusal: by reason (a row may have both)", "instr/refusal-rate", lambda d: counts(d, "by_reason"))
    detail_row("instruction copy: by kind", "instr/instruction-copy-rate", lambda d: counts(d, "by_kind"))
    detail_row("invalid rows: by reason", "format/invalid-rate", lambda d: counts(d, "by_reason"))
    if meta.get("schema"):
        out += ["", f"Declared schema (suite key `schema:`): `{md_escape(json.dumps(meta['schema'], sort_keys=True))}`."]

    out += ["", "## Flagged rows", "",
            "A few rows per reason, cut to 140 characters (row = position in the evaluated sample).", ""]
    for m in METRICS:
        blocks = []
        for n in names:
            r = recs.get((n, m))
            if r is None:
                continue
            exs = r.details.get("examples") or []
            if isinstance(exs, dict):  # format/invalid-rate: {reason: [examples]}
                exs = [dict(e, reason=k) for k, v in exs.items() for e in v]
            shown: dict[str, int] = {}
            for e in exs:
                why = e.get("reason") or e.get("signal") or e.get("kind") or ("irrelevant" if "similarity" in e else
                                                                             "ungrounded" if "share" in e else "")
                if shown.get(why, 0) >= EXAMPLES_PER_REASON:
                    continue
                shown[why] = shown.get(why, 0) + 1
                blocks.append(_example_line(n, why, e))
        if blocks:
            out += [f"### `{m}`", ""] + blocks + [""]
    return "\n".join(out).rstrip() + "\n"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _example_line(dataset: str, why: str, e: dict) -> str:
    from harness.report.markdown import md_escape

    parts = [f"- **{md_escape(dataset)}** row {e.get('row')}" + (f" ({md_escape(why)})" if why else "") + ":"]
    if "instruction" in e:
        parts.append(f"instruction “{_short(e['instruction'])}”")
    if e.get("input"):
        parts.append(f"input “{_short(e['input'], 80)}”")
    if "output_end" in e:
        parts.append(f"output ends “…{_short(e['output_end'][-WIDTH:])}” ({e.get('words')} words)")
    elif "output" in e:
        parts.append(f"output “{_short(e['output'])}”")
    elif "text" in e:
        parts.append(f"row “{_short(e['text'])}”" + (f" (fields: {md_escape(', '.join(e.get('fields', [])))})"
                                                      if e.get("fields") else ""))
    if "similarity" in e:
        parts.append(f"cosine {e['similarity']:.3f}")
    if "share" in e:
        parts.append(f"grounded {e['share']:.0%}; not in input: {md_escape(', '.join(e.get('missing', [])))}")
    return " ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(ROOT / "reports" / "instruction"), help="the suite's run folder")
    ap.add_argument("--out", default=str(ROOT / "reports" / "instruction-faithfulness.md"))
    args = ap.parse_args(argv)
    from harness.resources.cache import atomic_write_text

    meta, recs, names = load(Path(args.run))
    text = render(meta, recs, names)
    atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
