"""A self-contained static leaderboard page (index.html): the scorecard first, what is behind it, the
metrics by family (collapsible; metrics as rows, datasets as columns, split into blocks of at most
``BLOCK`` datasets so that no table scrolls sideways at a 1366-pixel window), notes one line per cause,
then the embedded figures, definitions, provenance and signatures.

Every piece of text that comes from data or names is escaped with ``html.escape``; the page's
only script is inline and allowed by a Content-Security-Policy hash, so even text that escaped
escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from harness.report.markdown import _table, families, fmt, record_warnings, size_warning, withheld
from harness.report.notes import group_skipped, group_warnings
from harness.report.scorecard import (
    against_text,
    cell_text,
    evidence,
    missing_line,
    scorecard,
    verdict_counts,
)

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('data-order') !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
      th.setAttribute('data-order', asc ? 'asc' : 'desc');
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y);
        if (isNaN(nx) && isNaN(ny)) { return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); }
        if (isNaN(nx)) { return 1; }
        if (isNaN(ny)) { return -1; }
        return asc ? nx - ny : ny - nx;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem auto;max-width:1320px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;font-size:.85rem;max-width:100%}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right;vertical-align:top}
td{white-space:nowrap} th{background:#f4f4f4;overflow-wrap:anywhere;font-weight:600}
table.sortable th{cursor:pointer} th[data-order=asc]::after{content:" ▲"} th[data-order=desc]::after{content:" ▼"}
td.name,th.name{text-align:left} td.name{white-space:normal;overflow-wrap:anywhere} tr.reference td{background:#fafafa;font-style:italic}
td.best{font-weight:700;background:#eaf6ea} .ci{color:#888;font-size:.75rem}
#scorecard{width:100%;table-layout:fixed} #scorecard td{white-space:normal;text-align:left}
#scorecard td.rows{text-align:right} #scorecard th{text-align:left}
td.better{background:#e3f4e3} td.worse{background:#fbe4e4} td.mixed{background:#fff6da}
table.family{margin:.3rem 0 .8rem} details{margin:.3rem 0} summary{cursor:pointer;font-weight:600;font-size:1.05rem}
figure{display:inline-block;margin:.5rem;vertical-align:top;max-width:100%} img{max-width:100%;border:1px solid #eee}
dt{font-family:monospace;margin-top:.4rem} dd{margin-left:1.2rem} .note{background:#fff8e1;padding:.5rem;border-left:3px solid #f0c000}
code{font-size:.85em} pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f8f8f8;padding:.4rem}
li{overflow-wrap:anywhere}
"""

#: the most dataset columns one family table holds; more datasets continue in a second block below
BLOCK = 7


def e(x) -> str:
    from harness.report.markdown import term_safe

    return html.escape(term_safe(x), quote=True)  # control and bidi characters dropped, then escaped


def _arrow(hib) -> str:
    return "↑" if hib is True else ("↓" if hib is False else "·")


def _id(metric: str) -> str:
    return "def-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in metric)


def blocks(datasets: list[str], reference: str | None = None, size: int = BLOCK) -> list[list[str]]:
    """The datasets in as few blocks of at most ``size`` columns as needed, of near-equal length; the
    reference, when given, heads every block (so each block compares with it)."""
    import math

    if len(datasets) <= size:
        return [list(datasets)]
    rest = [d for d in datasets if d != reference]
    head = [reference] if reference in datasets else []
    per = size - len(head)
    k = math.ceil(len(rest) / per)
    n = math.ceil(len(rest) / k)
    return [head + rest[i:i + n] for i in range(0, len(rest), n)]


_RANK = {"better": 3, "mixed": 2, "not distinguishable": 1, "worse": 0}


def render_html(results, meta: dict, infos: dict[str, dict], figures: list[Path]) -> str:
    """The page. ``infos`` maps metric name to {summary, range, higher_is_better}."""
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    suite = meta.get("suite") or {}
    title = f"synthbench — {suite.get('name') or 'report'}"
    datasets = ([meta["reference"]["name"]] if meta.get("reference") else []) + [c["name"] for c in meta.get("candidates", [])]
    present = list(dict.fromkeys(r.dataset for r in results))
    datasets = [d for d in datasets if d in present] + [d for d in present if d not in datasets]
    metrics = list(dict.fromkeys(r.metric for r in results))
    cell, best = _table(results, datasets, metrics)
    failed = {(d, m): why for d, m, why in (meta.get("failed") or [])}
    card = scorecard(results, meta)

    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>"]
    if suite.get("description"):
        out.append(f"<p>{e(str(suite['description']).strip())}</p>")

    out.append("<h2>Scorecard</h2>")
    if card.empty:
        out.append("<p>Nothing to compare: no candidate has a metric with a direction.</p>")
    else:
        out.append(f"<p>Each cell compares the candidate {e(against_text(card))} on one dimension: <b>better</b> "
                   "or <b>worse</b> only where 95% intervals do not overlap, <i>not distinguishable</i> where "
                   "they overlap or no interval exists. Click a column to sort; each header links to the metrics "
                   'and intervals behind it (<a href="#rule">the rule</a>).</p>')
        rows_of = {d["name"]: d.get("rows") for d in meta.get("candidates", [])}
        out.append('<table class="sortable" id="scorecard"><thead><tr><th class="name" style="width:18%">'
                   'candidate</th><th style="width:6%">rows</th>')
        for d in card.dimensions:
            out.append(f'<th title="{e(card.covers[d])}">{e(card.titles[d])} '
                       f'<a href="#behind-{e(d)}" title="the metrics and intervals behind">(why)</a></th>')
        out.append("</tr></thead><tbody>")
        for c in card.candidates:
            out.append(f'<tr><td class="name" data-v="{e(c)}">{e(c)}</td>'
                       f'<td class="rows" data-v="{e(rows_of.get(c, ""))}">{e(rows_of.get(c, "?"))}</td>')
            for d in card.dimensions:
                x = card.cells[c][d]
                cls = {"better": "better", "worse": "worse", "mixed": "mixed"}.get(x.verdict, "same")
                out.append(f'<td class="{cls}" data-v="{_RANK[x.verdict]}">{e(cell_text(x))}</td>')
            out.append("</tr>")
        out.append("</tbody></table>")
        line = missing_line(card)
        if line:
            out.append(f"<p>{e(line)}</p>")
    warn = size_warning(results, meta)
    if warn:
        out.append(f'<p class="note">{e(warn)}</p>')
    ref = meta.get("reference") or {}
    out.append(f'<p class="muted">Reference: <b>{e(ref.get("name", "—"))}</b> ({e(ref.get("source", "none"))}, '
               f'{e(ref.get("rows", "?"))} rows) · seed {e(meta.get("seed", 0))} · sample size '
               f'{e(meta.get("sample_size") or "all rows")} · embedder {e(meta.get("embedder") or "—")} · '
               f'synthbench {e(meta.get("harness", "?"))}</p>')

    if not card.empty:
        out.append("<h2>Behind the scorecard</h2>")
        for d in card.dimensions:
            ev = evidence(card, d, fmt)
            out.append(f'<details id="behind-{e(d)}"><summary>{e(card.titles[d])}: '
                       f"{e(verdict_counts(card, d))}</summary><p>{e(card.covers[d])}. Counted: "
                       + ", ".join(f'<a href="#{_id(m)}"><code>{e(m)}</code></a>' for m in card.counted[d]) + "</p>")
            out.append("<ul>" + ("".join(f"<li>{e(x)}</li>" for x in ev)
                                 or "<li>No pair of datasets is separated by a 95% interval.</li>") + "</ul></details>")
        out.append(f'<p id="rule" class="muted"><b>How the verdicts are made.</b> {e(card.rule)}</p>')

    out.append("<h2>Metrics by family</h2>")
    out.append("<p>Metrics as rows, datasets as columns; ↑ higher is better, ↓ lower is better, · no direction. "
               "Best candidate per metric in bold; 95% intervals below the values. Click a family to fold it; "
               "a metric's name links to its definition.</p>")
    roles = {r.dataset: r.role for r in results}
    for g, ftitle, ms in families(metrics):
        out.append(f'<details class="family" id="family-{e(g)}" open><summary>{e(ftitle)} '
                   f'<span class="muted">({len(ms)})</span></summary>')
        for part in blocks(datasets, card.reference):
            out.append('<table class="family"><thead><tr><th class="name">metric</th><th></th>')
            for d in part:
                out.append(f'<th>{e(d)}{" (reference)" if roles.get(d) == "reference" else ""}</th>')
            out.append("</tr></thead><tbody>")
            for m in ms:
                info = infos.get(m, {})
                tip = f"{info.get('summary', '')} Range {info.get('range', '?')}."
                out.append(f'<tr><td class="name"><a href="#{_id(m)}" title="{e(tip)}">{e(m)}</a></td>'
                           f"<td>{_arrow(info.get('higher_is_better'))}</td>")
                for d in part:
                    r = cell.get((d, m))
                    if r is None:
                        why = failed.get((d, m))
                        out.append(f'<td class="failed" title="{e(why)}">failed</td>' if why is not None
                                   else '<td class="muted">n/a</td>')
                        continue
                    cls = ' class="best"' if d in best.get(m, ()) else ""
                    ci = f'<br><span class="ci">[{fmt(r.ci[0])}, {fmt(r.ci[1])}]</span>' if r.ci is not None else ""
                    bound = {"above": "≥ ", "below": "≤ "}.get(r.details.get("censored") or "", "")
                    out.append(f'<td{cls} data-v="{r.value!r}">{e(bound + fmt(r.value))}{ci}</td>')
                out.append("</tr>")
            out.append("</tbody></table>")
        out.append("</details>")
    if failed:
        out.append("<h2>Failed</h2><p>These metrics raised an error on these datasets; no value exists. "
                   "A rerun into the same folder tries them again.</p><ul>")
        out += [f"<li>{e(d)} — <code>{e(m)}</code>: {e(why)}</li>" for (d, m), why in failed.items()]
        out.append("</ul>")
    everyone = ([ref["name"]] if ref.get("name") else []) + [c["name"] for c in meta.get("candidates", [])]
    warned = record_warnings(results)
    if warned:
        out.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in group_warnings(warned, everyone))
                   + "</ul>")
    skipped = meta.get("skipped") or []
    if skipped:
        out.append("<h2>Not computed</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in group_skipped(skipped, everyone))
                   + "</ul>")

    if figures:
        out.append("<h2>Figures</h2>")
        for p in figures:
            data = base64.b64encode(Path(p).read_bytes()).decode()
            out.append(f'<figure><img alt="{e(Path(p).stem)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(Path(p).stem)} (SVG beside the PNG in figures/)</figcaption></figure>")

    expl = []
    for r in results:
        rows = r.details.get("most_synthetic_looking")
        grams = r.details.get("synthetic_ngrams") or r.details.get("top_synthetic_ngrams")
        if rows or grams:
            expl.append(f"<h3>{e(r.dataset)} — {e(r.metric)}</h3>")
            if withheld(rows) or withheld(grams):
                expl.append("<p>" + e(", ".join(f"row {x.get('row')} (p={x.get('p_synthetic')})" for x in (rows or [])[:5]))
                            + " (text and n-grams withheld: quote_text is off)</p>")
                continue
            if grams:
                expl.append(f"<p>Most synthetic-indicative n-grams: {e(', '.join(str(g[0] if isinstance(g, list) else g) for g in grams[:15]))}</p>")
            if rows:
                expl.append("<ul>" + "".join(f"<li>row {e(x.get('row'))} (p={e(x.get('p_synthetic'))}): {e(x.get('text'))}</li>"
                                             for x in rows[:5]) + "</ul>")
    if expl:
        out.append("<h2>What gives the synthetic data away</h2>")
        out += expl

    out.append("<h2>Definitions</h2><dl>")
    for m in metrics:
        info = infos.get(m, {})
        out.append(f'<dt id="{_id(m)}">{e(m)} {_arrow(info.get("higher_is_better"))}</dt>'
                   f"<dd>{e(info.get('summary', ''))} "
                   f"<span class=\"muted\">Range {e(info.get('range', '?'))}.</span></dd>")
    out.append("</dl>")

    out.append('<h2>Datasets and provenance</h2><table><thead><tr><th class="name">dataset</th><th class="name">role</th>'
               '<th class="name">source</th><th>rows</th><th class="name">provenance</th><th class="name">fingerprint</th></tr></thead><tbody>')
    prov = meta.get("provenance") or {}
    for d in ([ref] if ref else []) + meta.get("candidates", []) + ([meta["test"]] if meta.get("test") else []):
        p = prov.get(d.get("name"), {})
        ptxt = "; ".join(f"{k}: {v}" for k, v in p.items())
        out.append(f'<tr><td class="name">{e(d.get("name"))}</td><td class="name">{e(d.get("role", ""))}</td>'
                   f'<td class="name">{e(d.get("source"))}</td><td>{e(d.get("rows"))}</td>'
                   f'<td class="name">{e(ptxt)}</td><td class="name"><code>{e(str(d.get("fingerprint", ""))[:16])}</code></td></tr>')
    out.append("</tbody></table>")

    out.append("<h2>Signatures</h2><p>Full signatures are in results.jsonl; numbers compare only when their "
               "signatures agree apart from the data.</p><pre>")
    seen = set()
    for r in results:
        s = r.signature
        line = json.dumps({"metric": s.metric, "args": s.args, "embedder": s.embedder, "seed": s.seed,
                           "harness": s.harness}, sort_keys=True, ensure_ascii=False)
        if line not in seen:
            seen.add(line)
            out.append(e(line))
    out.append("</pre>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out)
