"""Markdown report and terminal table, rendered from result records only."""

from __future__ import annotations

import math
import re

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # C0/C1 and bidi overrides
_CTRL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")  # ... and line breaks


def md_escape(text: str) -> str:
    """Make user-supplied text (dataset names, examples) inert in Markdown tables."""
    text = _CTRL.sub("", str(text)).replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def term_safe(text: str) -> str:
    """Make text from data (labels, names, texts, paths) inert for one terminal line: C0/C1 controls (ESC,
    CR, backspace …), bidi overrides and newlines are shown as escapes (``\\x1b``, ``\\n``), so nothing
    colours, moves the cursor, reorders or splits the line. Markdown (:func:`md_escape`) and HTML
    (``report.html``) build on it."""
    return _CTRL_LINE.sub(_shown, str(text))


def _shown(m) -> str:
    c = m.group()
    return {"\n": "\\n", "\r": "\\r", "\t": " "}.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.4f}" if a < 1 else f"{v:.3f}"


def arrow(hib) -> str:
    return "↑" if hib is True else ("↓" if hib is False else "·")


def _table(results, datasets, metric_names):
    """Cells by (dataset, metric), and per metric the set of best candidates (ties share it)."""
    cell = {(r.dataset, r.metric): r for r in results}
    best: dict[str, set[str]] = {}
    for m in metric_names:
        cand = [cell[(d, m)] for d in datasets if (d, m) in cell and cell[(d, m)].role == "candidate"]
        if len(cand) > 1 and cand[0].higher_is_better is not None:
            pick = max if cand[0].higher_is_better else min
            top = pick(r.value for r in cand)
            if any(r.value != top for r in cand):
                best[m] = {r.dataset for r in cand if r.value == top}
    return cell, best


def card_file(metric: str) -> str:
    """The file name of a metric's card in docs/cards/ (``lexical/distinct-2`` -> ``lexical-distinct-2.md``)."""
    return metric.replace("/", "-") + ".md"


def slug(title: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def families(metric_names) -> list[tuple[str, str, list[str]]]:
    """[(group, title, metrics)] in the catalogue's group order; undeclared groups last, as 'Other'."""
    from harness.metrics.base import GROUPS

    by: dict[str, list[str]] = {}
    for m in metric_names:
        by.setdefault(m.split("/", 1)[0], []).append(m)
    order = [g for g in GROUPS if g in by] + [g for g in by if g not in GROUPS]
    return [(g, GROUPS[g][0] if g in GROUPS else f"Other ({g})", by[g]) for g in order]


def run_line(meta: dict) -> str:
    ref = meta.get("reference") or {}
    return (f"Reference: **{md_escape(ref.get('name', '—'))}** ({md_escape(ref.get('source', 'none'))}, "
            f"{ref.get('rows', '?')} rows). Seed {meta.get('seed', 0)}. "
            f"Sample size: {meta.get('sample_size') or 'all rows'}. "
            f"Embedder: {md_escape(meta.get('embedder') or '—')}. synthbench {meta.get('harness', '?')}.")


def scorecard_markdown(card, meta: dict) -> list[str]:
    """The scorecard table and its one-line notes (report.md opens with these lines)."""
    from harness.report.scorecard import against_text, cell_text, missing_line

    if card.empty:
        return ["## Scorecard", "", "No candidate has a metric with a direction: nothing to compare."
                if card.candidates else "No candidate in this run: nothing to compare.", ""]
    out = ["## Scorecard", "",
           f"Each cell compares the candidate {against_text(card)} on one dimension of the evaluation: "
           "*better* or *worse* only where 95% intervals do not overlap, *not distinguishable* where they "
           "overlap or no interval exists. The rule is under [How the verdicts are made](#how-the-verdicts-are-made); "
           "each column header links to the metrics and intervals behind it.", ""]
    rows_of = {d["name"]: d.get("rows") for d in meta.get("candidates", [])}
    head = ["candidate", "rows"] + [f"[{card.titles[d]}](#{slug('Behind: ' + card.titles[d])})" for d in card.dimensions]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---|---:|" + "---|" * len(card.dimensions))
    for c in card.candidates:
        cells = []
        for d in card.dimensions:
            cell = card.cells[c][d]
            t = md_escape(cell_text(cell))
            cells.append(f"**{t}**" if cell.verdict in ("better", "worse") else t)
        out.append("| " + " | ".join([md_escape(c), str(rows_of.get(c, "?")), *cells]) + " |")
    out.append("")
    line = missing_line(card)
    if line:
        out += [md_escape(line), ""]
    return out


def behind_markdown(card) -> list[str]:
    """Per dimension: the metrics counted and, per pair that differs, the metrics whose intervals part."""
    from harness.report.scorecard import evidence, verdict_counts

    if card.empty:
        return []
    out = ["## Behind the scorecard", ""]
    for d in card.dimensions:
        out += [f"### Behind: {card.titles[d]}", "",
                f"{md_escape(card.covers[d])}. {verdict_counts(card, d)}: "
                + ", ".join(_mlink(m) for m in card.counted[d]) + "."]
        if card.not_fair[d]:
            out.append("Left out (size-dependent, the datasets differ in size): "
                       + ", ".join(_mlink(m) for m in card.not_fair[d]) + ".")
        ev = evidence(card, d, fmt)
        out.append("")
        out += [f"- {md_escape(x)}" for x in ev] or ["- No pair of datasets is separated by a 95% interval."]
        out.append("")
    out += ["### How the verdicts are made", "", md_escape(card.rule), ""]
    return out


def anchor(metric: str) -> str:
    """The id of a metric's entry under Definitions (report.md and index.html)."""
    return "m-" + re.sub(r"[^a-z0-9-]", "-", metric.lower())  # inert: only letters, digits and '-'


def _mlink(m: str) -> str:
    """A metric's name linking to its entry under Definitions (which names its card in docs/cards)."""
    return f"[`{m}`](#{anchor(m)})"


def _card_tail(m: str, info: dict | None) -> str:
    """' Range [0, 1], ↑, size-dependent, heavy; card: docs/cards/x.md.' for a declared metric."""
    if not info:
        return ""
    bits = [f"range {md_escape(info.get('range', '?'))}", arrow(info.get("higher_is_better"))]
    if info.get("size_dependent"):
        bits.append("size-dependent")
    if info.get("cost") == "heavy":
        bits.append("heavy")
    return f" ({', '.join(bits)}; card `docs/cards/{card_file(m)}`)"


def render_markdown(results, meta: dict, summaries: dict[str, str], infos: dict | None = None) -> str:
    """The report: the scorecard first, what is behind it, then the metrics by family (metrics × datasets
    with intervals), notes one line per cause, flags, definitions, datasets and signatures. ``infos``
    ({metric: {range, higher_is_better, size_dependent, cost}}) completes each definition; every metric
    name links to its definition, which names its card (``docs/cards/``)."""
    from harness.report.notes import group_skipped, group_warnings
    from harness.report.scorecard import scorecard

    datasets = _dataset_order(results, meta)
    metric_names = list(dict.fromkeys(r.metric for r in results))
    cell, best = _table(results, datasets, metric_names)
    ref = meta.get("reference") or {}
    card = scorecard(results, meta)
    suite = (meta.get("suite") or {}).get("name")
    out = [f"# synthbench report{': ' + md_escape(suite) if suite else ''}", ""]
    out += scorecard_markdown(card, meta)
    warn = size_warning(results, meta)
    if warn:
        out += [f"> **Note:** {md_escape(warn)}", ""]
    out += [run_line(meta), ""]
    out += behind_markdown(card)
    out += ["## Metrics by family", "", "↑ higher is better, ↓ lower is better, · no direction (compare with the "
            "reference). Best candidate in bold; 95% intervals in brackets."
            + " Each metric name links to its definition and card.", ""]
    failed = {(d, m): why for d, m, why in (meta.get("failed") or [])}
    head = ["metric", ""] + [md_escape(d) + (" (reference)" if _role(results, d) == "reference" else "")
                             for d in datasets]
    for _g, title, ms in families(metric_names):
        out += [f"### {md_escape(title)}", ""]
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|:-:|" + "---:|" * len(datasets))
        for m in ms:
            any_r = next(r for r in results if r.metric == m)
            row = [_mlink(m), arrow(any_r.higher_is_better)]
            for d in datasets:
                r = cell.get((d, m))
                if r is None:
                    row.append("**failed**" if (d, m) in failed else "n/a")
                    continue
                s = _bound(r) + fmt(r.value)
                if d in best.get(m, ()):
                    s = f"**{s}**"
                if r.ci is not None:
                    s += f" [{fmt(r.ci[0])}, {fmt(r.ci[1])}]"
                row.append(s)
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    if failed:
        out += ["## Failed", "", "These metrics raised an error on these datasets: no value exists (never read "
                "a missing cell as zero). A rerun into the same folder tries them again.", "",
                "| dataset | metric | error |", "|---|---|---|"]
        out += [f"| {md_escape(d)} | `{m}` | {md_escape(why)} |" for (d, m), why in failed.items()]
        out.append("")
    stale = meta.get("stale") or []
    if stale:
        out += [f"Stale, not shown: {len(stale)} stored record(s) no longer describe this run's data or code ("
                + "; ".join(f"{md_escape(d)} `{m}`: {md_escape(why)}" for d, m, why in stale[:8])
                + ("; …" if len(stale) > 8 else "") + "). A rerun into this folder recomputes them.", ""]
    everyone = ([ref["name"]] if ref.get("name") else []) + [c["name"] for c in meta.get("candidates", [])]
    warned = record_warnings(results)
    if warned:
        out += ["## Warnings", "", "From the metrics' records, one line per cause:", ""]
        out += [f"- {md_escape(x)}" for x in group_warnings(warned, everyone)]
        out.append("")
    skipped = meta.get("skipped") or []
    if skipped:
        out += ["## Not computed", "", "One line per cause:", ""]
        out += [f"- {md_escape(x)}" for x in group_skipped(skipped, everyone)]
        out.append("")
    from harness.report.curation_report import flag_lines

    out += flag_lines(results)
    expl = explanations(results)
    if expl:
        out += ["## What gives the synthetic data away", "",
                "From the classifier two-sample tests: the rows the classifier finds most synthetic, and the "
                "n-grams that weigh most towards 'synthetic' and towards 'real'.", ""] + expl
    out += ["Corpus-level statistics (distinct-n, entropy, compression ratio, MATTR, vocabulary size) carry no "
            "interval: resampling rows with replacement would manufacture duplicates and bias them. "
            "Compare them at one `--sample-size`.", "", "## Definitions", ""]
    for m in metric_names:
        r0 = next(r for r in results if r.metric == m)
        args = {k: v for k, v in r0.signature.args.items() if k != "tokenizer"}
        shown = f" ({', '.join(f'{k}={v}' for k, v in sorted(args.items()))})" if args else ""
        out.append(f'- <a id="{anchor(m)}"></a>`{m}`{shown}: {md_escape(summaries.get(m, ""))}'
                   + _card_tail(m, (infos or {}).get(m)))
    out += ["", "## Datasets", "", "| dataset | role | source | rows | fingerprint |", "|---|---|---|---:|---|"]
    for d in ([ref] if ref else []) + meta.get("candidates", []) + ([meta["test"]] if meta.get("test") else []):
        sample = d.get("sample")
        rows = f"{d.get('rows')}" + (f" of {sample['of']} (seed {sample['seed']})" if sample else "")
        out.append(f"| {md_escape(d.get('name'))} | {d.get('role', 'candidate')} | {md_escape(d.get('source'))} | "
                   f"{rows} | `{str(d.get('fingerprint', ''))[:16]}` |")
    out += ["", "## Signatures", "",
            "Each number's full signature is in `results.jsonl`; two numbers compare only when their "
            "signatures agree apart from the data fingerprint.", ""]
    seen = set()
    for r in results:
        s = r.signature
        args = ", ".join(f"{k}={v}" for k, v in sorted(s.args.items())) or "none"
        short = f"{s.metric} | args {args} | embedder {s.embedder or '—'} | seed {s.seed} | synthbench {s.harness}"
        if short not in seen:
            seen.add(short)
            out.append(f"- {md_escape(short)}")
    out.append("")
    return "\n".join(out)


def record_warnings(results) -> list[tuple[str, str, str]]:
    """(dataset, metric, warning) for every warning a record carries in its details."""
    return [(r.dataset, r.metric, str(w)) for r in results for w in (r.details.get("warnings") or [])]


def withheld(items) -> bool:
    """Whether a details list holds text withheld by quote_text: false (its strings are the placeholder)."""
    from harness.run.store import WITHHELD

    def strings(x):
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from strings(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from strings(v)

    return any(s == WITHHELD for s in strings(items or []))


def explanations(results) -> list[str]:
    """Markdown lines explaining two-sample test scores with the rows and n-grams behind them."""
    out = []
    for r in results:
        rows = r.details.get("most_synthetic_looking")
        syn, real = r.details.get("synthetic_ngrams"), r.details.get("real_ngrams")
        if not (rows or syn):
            continue
        out.append(f"**{md_escape(r.dataset)}**, `{r.metric}` (AUC {fmt(r.value)}):")
        if withheld(syn) or withheld(rows):
            out.append("- " + ", ".join(f"row {x.get('row')} (p = {fmt(x.get('p_synthetic'))})" for x in (rows or [])[:5])
                       + " (text and n-grams withheld: quote_text is off)")
            out.append("")
            continue
        if syn:
            out.append("- synthetic-indicative: " + ", ".join(f"`{md_escape(g[0])}`" for g in syn[:10]))
        if real:
            out.append("- real-indicative: " + ", ".join(f"`{md_escape(g[0])}`" for g in real[:10]))
        for x in (rows or [])[:3]:
            out.append(f"- row {x.get('row')} (p = {fmt(x.get('p_synthetic'))}): {md_escape(x.get('text', ''))}")
        out.append("")
    return out


def _bound(r) -> str:
    """'≥ ' or '≤ ' when a value is censored at the end of a curve (e.g. real-equivalent)."""
    return {"above": "≥ ", "below": "≤ "}.get(r.details.get("censored") or "", "")


def size_warning(results, meta) -> str | None:
    sizes = {d["name"]: d.get("rows") for d in meta.get("candidates", [])}
    if meta.get("sample_size") or len(set(sizes.values())) <= 1:
        return None
    present = {r.metric for r in results}
    dep = sorted(set(meta.get("size_dependent", [])) & present)
    if not dep:
        return None
    return (f"the candidates differ in size ({', '.join(f'{k}: {v}' for k, v in sizes.items())}); "
            f"{', '.join(dep)} depend on size. Rerun with --sample-size N (or min) to compare them fairly.")


def _role(results, d):
    return next((r.role for r in results if r.dataset == d), "candidate")


def _dataset_order(results, meta):
    names = [meta["reference"]["name"]] if meta.get("reference") else []
    names += [c["name"] for c in meta.get("candidates", [])]
    present = list(dict.fromkeys(r.dataset for r in results))
    return [n for n in names if n in present] + [n for n in present if n not in names]


def scorecard_terminal(results, meta: dict) -> list[str]:
    """The scorecard as aligned plain lines (the first lines a run prints)."""
    from harness.report.scorecard import against_text, missing_line, scorecard, short_text

    card = scorecard(results, meta)
    if card.empty:
        return ["scorecard: nothing to compare (no candidate metric with a direction)"]
    rows_of = {d["name"]: d.get("rows") for d in meta.get("candidates", [])}
    rows = [["candidate", "rows"] + [card.titles[d].lower() for d in card.dimensions]]
    for c in card.candidates:
        rows.append([term_safe(c)[:28], str(rows_of.get(c, "?"))]
                    + [short_text(card.cells[c][d]) for d in card.dimensions])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"SCORECARD ({against_text(card)}; 95% intervals apart, else not distinguishable)"]
    lines += ["  ".join(x.rjust(w) if i == 1 else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths))).rstrip()
              for r in rows]
    lines.insert(2, "-" * len(lines[1]))
    k = len(card.candidates) - 1 if card.against == "candidates" else 1
    if k > 1:
        lines.append(f"better n/{k}: better than n of the {k} others, worse than none; mixed +n -m: better than n, "
                     "worse than m")
    line = missing_line(card)
    if line:
        lines.append(line)
    lines.append("the metrics and intervals behind each verdict: report.md, 'Behind the scorecard'")
    return lines


def render_terminal(results, meta: dict) -> str:
    """The scorecard first, then one aligned table per metric family (metrics × datasets)."""
    datasets = _dataset_order(results, meta)
    metric_names = list(dict.fromkeys(r.metric for r in results))
    failed = {(d, m) for d, m, _ in (meta.get("failed") or [])}
    cell, best = _table(results, datasets, metric_names)
    lines = scorecard_terminal(results, meta)
    warn = size_warning(results, meta)
    if warn:
        lines.append("note: " + term_safe(warn))
    header = ["metric", ""] + [term_safe(d)[:24] for d in datasets]
    rows = [header]
    starts = {}
    for _g, title, ms in families(metric_names):
        starts[len(rows)] = title
        for m in ms:
            any_r = next(r for r in results if r.metric == m)
            row = [m, arrow(any_r.higher_is_better)]
            for d in datasets:
                r = cell.get((d, m))
                row.append(("FAILED" if (d, m) in failed else "n/a") if r is None
                           else _bound(r) + fmt(r.value) + ("*" if d in best.get(m, ()) else ""))
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    table = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines += ["", "METRICS BY FAMILY (* best candidate)", table[0], "-" * len(table[0])]
    for i, t in enumerate(table[1:], 1):
        if i in starts:
            lines.append(f"[{starts[i]}]")
        lines.append(t)
    return "\n".join(lines)
