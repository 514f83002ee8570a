"""A self-contained static leaderboard page (index.html): sortable table, embedded figures,
definitions, provenance and signatures.

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

from harness.report.markdown import _table, fmt, size_warning, withheld
from harness.report.ranking import rank_candidates

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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0} th[data-order=asc]::after{content:" ▲"}
th[data-order=desc]::after{content:" ▼"} td.name,th.name{text-align:left} #leaderboard td.name{position:sticky;left:0;background:#fff;z-index:1} tr.reference td{background:#fafafa;font-style:italic}
td.best{font-weight:700;background:#eaf6ea} .ci{color:#888;font-size:.75rem} .scroll{overflow-x:auto;max-height:80vh}
figure{display:inline-block;margin:.5rem;vertical-align:top} img{max-width:100%;border:1px solid #eee}
dt{font-family:monospace;margin-top:.4rem} dd{margin-left:1.2rem} .note{background:#fff8e1;padding:.5rem;border-left:3px solid #f0c000}
code{font-size:.85em} pre{white-space:pre-wrap;background:#f8f8f8;padding:.4rem}
"""


def e(x) -> str:
    from harness.report.markdown import term_safe

    return html.escape(term_safe(x), quote=True)  # control and bidi characters dropped, then escaped


def rank_label(rk) -> str:
    """'2 (1.733)' for a ranked candidate, '–' for the reference."""
    if not rk:
        return "–"
    return f"{rk[0]} ({fmt(rk[1]['score'])})"


def _arrow(hib) -> str:
    return "↑" if hib is True else ("↓" if hib is False else "·")


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
    ranking = {row["dataset"]: (i, row) for i, row in enumerate(rank_candidates(results), 1)}

    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>"]
    if suite.get("description"):
        out.append(f"<p>{e(suite['description'])}</p>")
    ref = meta.get("reference") or {}
    out.append(f'<p class="muted">Reference: <b>{e(ref.get("name", "—"))}</b> ({e(ref.get("source", "none"))}, '
               f'{e(ref.get("rows", "?"))} rows) · seed {e(meta.get("seed", 0))} · sample size '
               f'{e(meta.get("sample_size") or "all rows")} · embedder {e(meta.get("embedder") or "—")} · '
               f'synthbench {e(meta.get("harness", "?"))}</p>')
    warn = size_warning(results, meta)
    if warn:
        out.append(f'<p class="note">{e(warn)}</p>')

    out.append("<h2>Leaderboard</h2>")
    out.append("<p>Click a column to sort. Rank: mean rank within each metric group that has a direction, "
               "averaged over groups (1 = best); the reference is the target and is not ranked. "
               "Best candidate per metric in bold; 95% intervals below the values.</p>")
    out.append('<div class="scroll"><table class="sortable" id="leaderboard"><thead><tr>'
               '<th class="name">dataset</th><th title="aggregate rank (lower is better)">rank</th>')
    for m in metrics:
        info = infos.get(m, {})
        tip = f"{m}: {info.get('summary', '')} Range {info.get('range', '?')}."
        out.append(f'<th title="{e(tip)}">{e(m)} {_arrow(info.get("higher_is_better"))}</th>')
    out.append("</tr></thead><tbody>")
    for d in datasets:
        role = next((r.role for r in results if r.dataset == d), "candidate")
        rk = ranking.get(d)
        out.append(f'<tr class="{e(role)}"><td class="name" data-v="{e(d)}">{e(d)}'
                   + (" (reference)" if role == "reference" else "") + "</td>")
        out.append(f'<td data-v="{rk[1]["score"] if rk else ""}">{e(rank_label(rk))}</td>')
        for m in metrics:
            r = cell.get((d, m))
            if r is None:
                why = failed.get((d, m))
                out.append(f'<td data-v="" class="failed" title="{e(why)}">failed</td>' if why is not None
                           else '<td data-v="">n/a</td>')
                continue
            cls = ' class="best"' if d in best.get(m, ()) else ""
            ci = f'<br><span class="ci">[{fmt(r.ci[0])}, {fmt(r.ci[1])}]</span>' if r.ci is not None else ""
            bound = {"above": "≥ ", "below": "≤ "}.get(r.details.get("censored") or "", "")
            out.append(f'<td{cls} data-v="{r.value!r}">{e(bound + fmt(r.value))}{ci}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if failed:
        out.append("<h2>Failed</h2><p>These metrics raised an error on these datasets; no value exists. "
                   "A rerun into the same folder tries them again.</p><ul>")
        out += [f"<li>{e(d)} — <code>{e(m)}</code>: {e(why)}</li>" for (d, m), why in failed.items()]
        out.append("</ul>")

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
        out.append(f"<dt>{e(m)} {_arrow(info.get('higher_is_better'))}</dt><dd>{e(info.get('summary', ''))} "
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
