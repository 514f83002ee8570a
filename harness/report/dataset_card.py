"""A Hugging Face dataset card for one candidate of a finished run (``synthbench card``).

A pure function of the run's records (the lines of ``results.jsonl``), its ``run.json`` and the row files
(``rows/<signature key>.json``): nothing is recomputed. The card is a YAML header the hub reads (licence,
task category, size category, source dataset, tags, and a ``synthbench:`` mapping with the provenance and
the verdicts) and a short Markdown body: the scorecard first, then memorisation and contamination, the
flagged rows counted by reason, the caveats, every metric with its 95% interval beside the reference's, the
signature and the command that reproduces the run. The scorecard is the reports' own
(:func:`harness.report.scorecard.scorecard`); a record is shown only while current
(:func:`harness.run.store.stale_reason`).

No row of the data is ever quoted: findings are counts and shares, so a card of data that may not be
redistributed (``quote_text: false``) holds no text of it either.

>>> hub_license("Apache-2.0"), hub_license("MIT"), hub_license("CC BY 4.0"), hub_license("MIT / CC0 (README)")
('apache-2.0', 'mit', 'cc-by-4.0', 'other')
>>> size_category(999), size_category(1000), size_category(2_500_000)
('n<1K', '1K<n<10K', '1M<n<10M')
"""

from __future__ import annotations

import os
import re
import shlex

from harness.errors import UserError

#: the comment every card carries right after its YAML header: ``synthbench card`` overwrites a file only
#: when it holds this (or with --force)
MARKER = "<!-- synthbench dataset card:"

#: licence identifiers the hub knows (https://huggingface.co/docs/hub/repositories-licenses), by their
#: spelling with spaces, dots and hyphens taken out and lower case ("CC BY 4.0", "cc-by-4.0", "CC-BY-4.0")
_LICENSES = ["apache-2.0", "mit", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
             "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
             "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
             "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
             "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0",
             "epl-2.0", "eupl-1.1", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
             "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl", "mpl-2.0", "odc-by", "odbl", "openrail", "osl-3.0",
             "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "unknown"]
_LICENSE_KEY = {re.sub(r"[\s.\-_]", "", x): x for x in _LICENSES}
_LICENSE_KEY.update({"apache2": "apache-2.0", "apachelicense20": "apache-2.0", "mitlicense": "mit",
                     "cc0": "cc0-1.0", "gplv3": "gpl-3.0", "gplv2": "gpl-2.0", "publicdomain": "pddl"})

#: the hub's size categories, by their upper bound
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
          (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]

#: the hub task category of each kind of data synthbench loads
TASK_CATEGORIES = {"classification": "text-classification", "instruction": "text-generation",
                   "text": "text-generation"}

#: the families whose findings the card lists under "Memorisation, contamination and duplicates"
FINDING_FAMILIES = ("memo", "contam", "dup")


def hub_license(text) -> str:
    """The hub's licence id for a provenance licence ('Apache-2.0' -> 'apache-2.0'), or 'other' unless the
    whole text is one licence the hub knows."""
    if not isinstance(text, str) or not text.strip():
        return "other"
    key = re.sub(r"[\s.\-_]", "", text.strip().lower())
    hit = _LICENSE_KEY.get(key)
    return hit if hit and hit != "unknown" else "other"


def size_category(n: int) -> str:
    """The hub's size category of a dataset of ``n`` rows."""
    for bound, name in _SIZES:
        if n < bound:
            return name
    return "n>1T"


# ----------------------------------------------------------------------------- the run's pieces

def _dataset(meta: dict, name: str) -> dict:
    """The candidate's run.json entry, or one line naming what is there instead."""
    names = [c.get("name") for c in meta.get("candidates") or []]
    available = ", ".join(n for n in names if n) or "none"
    if name in names:
        return next(c for c in meta["candidates"] if c.get("name") == name)
    for role in ("reference", "test"):
        d = meta.get(role) or {}
        if name == d.get("name"):
            raise UserError(f"--dataset {name}: is the {role} of this run, not a candidate",
                            f"a card describes a candidate dataset: give one of {available}")
    raise UserError(f"--dataset {name}: no such dataset in this run", f"give one of {available}")


def _partition(records, meta: dict, names: set[str]):
    """(current results, failed records, stale (dataset, metric, why)) of the named datasets."""
    from harness.run.store import stale_reason
    from harness.types import Result

    current, failed, stale = [], [], []
    for d in records:
        if d.get("dataset") not in names:
            continue
        why = stale_reason(d, meta)
        if why:
            stale.append((d["dataset"], d["metric"], why))
        elif d.get("status") == "failed":
            failed.append(d)
        else:
            current.append(Result.from_json(d))
    return current, failed, stale


def _withheld(records, meta: dict) -> bool:
    """Whether the run withheld dataset text (run.json says so, or a record holds the placeholder)."""
    from harness.report.markdown import withheld

    if meta.get("quote_text") is False:
        return True
    return any(withheld(d.get("details") or {}) for d in records)


def _provenance(meta: dict, name: str) -> dict:
    p = (meta.get("provenance") or {}).get(name) or {}
    return {k: str(v) for k, v in p.items() if v not in (None, "")} if isinstance(p, dict) else {}


def _full_size(d: dict) -> int:
    sample = d.get("sample") or {}
    return int(sample.get("of") or d.get("rows") or 0)


def _dimension(metric: str) -> str:
    from harness.metrics.base import GROUPS

    return GROUPS.get(metric.split("/", 1)[0], ("", "descriptive"))[1]


def _label(metric: str) -> str:
    """The first words of a metric's summary ('Exact-copy rate'), or its name."""
    from harness import metrics as registry

    if registry.is_metric(metric):
        summary = registry.info(metric).summary or ""
        head = summary.split(":", 1)[0].strip()
        if head and len(head) <= 40:
            return head
    return metric


# ----------------------------------------------------------------------------- the YAML header

def header(meta: dict, name: str, verdicts: dict[str, str]) -> dict:
    """The card's metadata: what ``huggingface_hub.DatasetCardData`` reads, plus a ``synthbench`` mapping."""
    d = _dataset(meta, name)
    prov = _provenance(meta, name)
    ref = meta.get("reference") or {}
    ref_prov = _provenance(meta, ref.get("name", ""))
    kind = d.get("kind") or (meta.get("suite") or {}).get("task") or "text"
    src = str(ref.get("source") or "")
    source_datasets = [src[3:].split(" ", 1)[0]] if src.startswith("hf:") else ([ref["name"]] if ref.get("name") else [])
    sb: dict = {"dataset": name}
    for k in ("generator", "method", "licence"):
        if prov.get(k):
            sb[k] = prov[k]
    extra = {k: v for k, v in prov.items() if k not in ("generator", "method", "licence")}
    if extra:
        sb["provenance"] = extra
    if ref:
        sb["reference"] = {"name": ref.get("name"), "rows": ref.get("rows"),
                           **({"source": ref_prov["source"]} if ref_prov.get("source") else {}),
                           **({"licence": ref_prov["licence"]} if ref_prov.get("licence") else {})}
    if (meta.get("suite") or {}).get("name"):
        sb["suite"] = meta["suite"]["name"]
    sb["harness"] = meta.get("harness")
    sb["rows_evaluated"] = d.get("rows")
    sb["fingerprint"] = d.get("fingerprint")
    sb["seed"] = meta.get("seed")
    if meta.get("embedder"):
        sb["embedder"] = meta["embedder"]
    if verdicts:
        sb["scorecard"] = verdicts
    card = {"pretty_name": name, "license": hub_license(prov.get("licence")),
            "task_categories": [TASK_CATEGORIES.get(kind, "text-generation")],
            "size_categories": [size_category(_full_size(d))]}
    if source_datasets:
        card["source_datasets"] = source_datasets
    card["tags"] = ["synthetic", "synthbench"]
    card["synthbench"] = {k: v for k, v in sb.items() if v is not None}
    return card


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


# ----------------------------------------------------------------------------- the body

def _value(r) -> str:
    from harness.report.markdown import _bound, fmt

    return _bound(r) + fmt(r.value)


def _interval(r) -> str:
    from harness.report.markdown import fmt

    return f"[{fmt(r.ci[0])}, {fmt(r.ci[1])}]" if r is not None and r.ci is not None else "–"


def _ref_cell(r) -> str:
    if r is None:
        return "–"
    return _value(r) + (f" {_interval(r)}" if r.ci is not None else "")


def _scorecard_lines(results, meta: dict, name: str, ref_name: str | None):
    """The scorecard table (against the reference; and against the run's other candidates when there are
    any) and the verdicts against the reference for the YAML header."""
    from harness.report.markdown import md_escape
    from harness.report.scorecard import cell_text, missing_line, scorecard

    mine = [r for r in results if r.dataset in (name, ref_name)]
    one = {**meta, "candidates": [c for c in meta.get("candidates") or [] if c.get("name") == name]}
    card_ref = scorecard(mine, one)
    others = [c.get("name") for c in meta.get("candidates") or [] if c.get("name") != name]
    others = [o for o in others if any(r.dataset == o for r in results)]
    card_all = scorecard(results, meta) if others else None
    out = ["## Scorecard", ""]
    if card_ref.empty and (card_all is None or card_all.empty):
        return out + ["No metric with a direction was computed for this dataset: nothing to compare.", ""], {}
    dims = list(dict.fromkeys((card_ref.dimensions if not card_ref.empty else [])
                              + (card_all.dimensions if card_all is not None and not card_all.empty else [])))
    cols = []
    if not card_ref.empty and card_ref.against == "reference":
        cols.append((f"against the reference ({md_escape(ref_name)})", card_ref))
    if card_all is not None and not card_all.empty:
        cols.append((f"against the run's other {len(others)} candidate{'s' if len(others) != 1 else ''}", card_all))
    if not cols:
        return out + ["No reference and no other candidate in this run: nothing to compare.", ""], {}
    out += ["*Better* or *worse* only where 95% intervals do not overlap; *not distinguishable* where they "
            "overlap or no interval exists (the rule: synthbench's docs/scorecard.md).", ""]
    out.append("| dimension | " + " | ".join(c for c, _ in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    verdicts: dict[str, str] = {}
    titles = card_ref.titles
    for dim in dims:
        cells = []
        for _, card in cols:
            cell = card.cells.get(name, {}).get(dim)
            if card is card_ref and cell is not None and not any(
                    (ref_name, m) in card.records for m in card.counted.get(dim, [])):
                cells.append("– (the reference has no value of these metrics)")
                continue
            t = cell_text(cell) if cell is not None else "not measured"
            cells.append(f"**{md_escape(t)}**" if cell is not None and cell.verdict in ("better", "worse")
                         else md_escape(t))
            if card is card_ref and cell is not None:
                verdicts[dim] = cell_text(cell)
        out.append(f"| {titles[dim]} | " + " | ".join(cells) + " |")
    out.append("")
    line = missing_line(card_ref if card_all is None else card_all)
    if line:
        out += [md_escape(line), ""]
    return out, verdicts


def _rows_flagged(r) -> int | None:
    counts = (r.details or {}).get("row_flags")
    if isinstance(counts, dict) and counts:
        return int(sum(int(v) for v in counts.values()))
    for k in ("count", "removable", "duplicates"):
        v = (r.details or {}).get(k)
        if isinstance(v, int):
            return v
    return None


def _findings_lines(results, meta: dict, name: str, ref_name: str | None, skipped) -> list[str]:
    from harness.report.markdown import md_escape
    from harness.report.notes import group_skipped

    by = {(r.dataset, r.metric): r for r in results}
    ms = [r.metric for r in results if r.dataset == name and r.metric.split("/", 1)[0] in FINDING_FAMILIES]
    ms.sort(key=lambda m: FINDING_FAMILIES.index(m.split("/", 1)[0]))
    out = ["## Memorisation, contamination and duplicates", ""]
    rows = _dataset(meta, name).get("rows")
    if ms:
        out += [f"Shares of the {rows} rows evaluated; ↓ lower is better. *Rows* counts the rows each check "
                "flags (in the evaluated sample)"
                + ("; the reference's own rate is beside it where it has one." if ref_name else "."), "",
                "| check | metric | value | 95% interval | rows | reference |", "|---|---|---:|---|---:|---:|"]
        for m in ms:
            r = by[(name, m)]
            k = _rows_flagged(r)
            out.append(f"| {md_escape(_label(m))} | `{m}` | {_value(r)} | {_interval(r)} | "
                       f"{'–' if k is None else k} | {_ref_cell(by.get((ref_name, m)))} |")
        out.append("")
    missing = [(d, m, why) for d, m, why in skipped if d == name and m.split("/", 1)[0] in FINDING_FAMILIES]
    if missing:
        out += [f"- Not checked: {md_escape(_drop_name(x, name, tail=True))}" for x in group_skipped(missing, [name])]
        out.append("")
    if not ms and not missing:
        out += ["No memorisation, contamination or duplicate metric was computed in this run.", ""]
    return out


def _flag_lines(results, name: str, rows_docs: dict, n_rows) -> list[str]:
    """Flagged rows by reason: the rows any metric flags (the union of the row files, when they are all on
    the evaluated rows) and each metric's count. Counts only, never a row's text."""
    from harness.report.markdown import md_escape

    per: dict[str, list[tuple[str, int]]] = {}
    union: dict[str, set[int]] = {}
    exact = True
    for r in results:
        if r.dataset != name:
            continue
        counts = (r.details or {}).get("row_flags")
        if not isinstance(counts, dict):
            continue
        doc = rows_docs.get(r.signature.key) if rows_docs else None
        for reason, k in counts.items():
            per.setdefault(reason, []).append((r.metric, int(k)))
            if doc is not None and doc.get("n") == n_rows and isinstance(doc["rows"].get(reason), list):
                union.setdefault(reason, set()).update(int(i) for i in doc["rows"][reason])
            elif int(k):
                exact = False
    per = {reason: hits for reason, hits in per.items() if any(k for _, k in hits)}
    out = ["## Flagged rows", ""]
    if not per:
        return out + ["No metric flagged a row of this dataset.", ""]
    everything = set().union(*union.values()) if union else set()
    out += ["Rows flagged by reason, counted in the evaluated rows (a row can carry several reasons). The "
            "run folder's `flags.parquet` lists them by position; `synthbench curate` drops them.", ""]
    if exact and n_rows:
        out += [f"{len(everything)} of {n_rows} rows carry at least one flag.", ""]
    out += ["| reason | rows | flagged by |", "|---|---:|---|"]
    for reason, hits in sorted(per.items(), key=lambda kv: -max(k for _, k in kv[1])):
        total = len(union[reason]) if exact and reason in union else max(k for _, k in hits)
        shown = ", ".join(f"`{m}` ({k})" for m, k in hits if k)
        out.append(f"| {md_escape(reason)} | {total} | {shown} |")
    return out + [""]


def _drop_name(line: str, name: str, tail: bool = False) -> str:
    """A grouped note without the one dataset's name (``notes`` names the datasets a cause applies to)."""
    if tail and line.endswith(f" ({name})"):
        return line[: -len(name) - 3]
    if not tail and line.startswith(f"{name}: "):
        return line[len(name) + 2:]
    return line


def _caveat_lines(results, failed, stale, meta: dict, name: str, ref_name: str | None, withheld: bool) -> list[str]:
    from harness.report.markdown import md_escape, record_warnings
    from harness.report.notes import group_skipped, group_warnings

    d = _dataset(meta, name)
    ref = meta.get("reference") or {}
    lines = []
    sample = d.get("sample")
    against = f"; the reference on {ref.get('rows', '?')} rows." if ref else " (the run had no reference)."
    if sample:
        lines.append(f"Evaluated on a seeded sample of {sample.get('size')} of its {sample.get('of')} rows "
                     f"(seed {sample.get('seed')}){against}")
    else:
        lines.append(f"Evaluated on all {d.get('rows')} rows{against}")
    present = {r.metric for r in results if r.dataset == name}
    dep = [m for m in meta.get("size_dependent") or [] if m in present]
    if dep:
        lines.append(f"{len(dep)} metrics depend on the number of rows ({', '.join(dep[:4])}"
                     f"{', …' if len(dep) > 4 else ''}): their values hold at {d.get('rows')} rows; compare them "
                     "only with datasets evaluated at that size"
                     + (" (this run set no --sample-size; its other datasets differ in size)"
                        if not meta.get("sample_size") and len({d.get("rows"), ref.get("rows")} - {None}) > 1 else "")
                     + ".")
    if meta.get("repeats", 1) and meta.get("repeats", 1) > 1:
        lines.append(f"Size-dependent metrics are the mean of {meta['repeats']} seeded samples (t-interval).")
    if failed:
        lines.append(f"{len(failed)} metric(s) failed (no value; never read as zero): "
                     + "; ".join(f"{x['metric']}: {str(x.get('error', '')).splitlines()[0][:120] if x.get('error') else '?'}"
                                 for x in failed[:5]) + ("; …" if len(failed) > 5 else "") + ".")
    if stale:
        by: dict[str, list[str]] = {}
        for _d, m, why in stale:
            by.setdefault(why, []).append(m)
        lines.append(f"{len(stale)} stored record(s) are stale and not shown: "
                     + "; ".join(f"{', '.join(ms[:3])}{', …' if len(ms) > 3 else ''} ({why})" for why, ms in by.items())
                     + ". A rerun into the run folder recomputes them.")
    skipped = [(x[0], x[1], x[2]) for x in meta.get("skipped") or [] if x[0] == name
               and x[1].split("/", 1)[0] not in FINDING_FAMILIES]
    lines += [f"Not computed: {_drop_name(x, name, tail=True)}" for x in group_skipped(skipped, [name])]
    warned = [w for w in record_warnings(results) if w[0] == name]
    lines += [f"Warning: {_drop_name(x, name)}" for x in group_warnings(warned, [name])]
    if withheld:
        lines.append("The run withheld dataset text (quote_text off): this card and the run's records hold "
                     "numbers, row positions and labels only.")
    else:
        lines.append("The card quotes no row of the data: findings are counts and shares.")
    return ["## Caveats", ""] + [f"- {md_escape(x)}" for x in lines] + [""]


def _metric_lines(results, name: str, ref_name: str | None) -> list[str]:
    from harness.metrics.base import SCORECARD
    from harness.report.markdown import arrow, md_escape

    by = {(r.dataset, r.metric): r for r in results}
    mine = [r for r in results if r.dataset == name]
    if not mine:
        return []
    out = ["## Metrics", "",
           "Every metric computed on this dataset, with its 95% interval"
           + (f", and the reference ({md_escape(ref_name)}) beside it where the metric applies to the reference "
              "itself" if ref_name else "") + ". ↑ higher is better, ↓ lower is "
           "better, · no direction. Metrics without an interval are corpus-level statistics (resampling rows "
           "would bias them).", ""]
    titles = {**{d: t for d, (t, _) in SCORECARD.items()}, "descriptive": "Descriptive"}
    for dim in [*SCORECARD, "descriptive"]:
        rs = [r for r in mine if _dimension(r.metric) == dim]
        if not rs:
            continue
        out += [f"<details><summary>{titles[dim]} ({len(rs)} metric{'s' if len(rs) != 1 else ''})</summary>", "",
                "| metric | | value | 95% interval | reference |", "|---|:-:|---:|---|---:|"]
        for r in rs:
            out.append(f"| `{r.metric}` | {arrow(r.higher_is_better)} | {_value(r)} | {_interval(r)} | "
                       f"{_ref_cell(by.get((ref_name, r.metric)))} |")
        out += ["", "</details>", ""]
    return out


def _signature_lines(results, meta: dict, name: str) -> list[str]:
    from harness.report.markdown import md_escape

    d = _dataset(meta, name)
    ref = meta.get("reference") or {}
    test = meta.get("test") or {}
    versions = sorted({r.signature.harness for r in results if r.dataset == name} - {None, ""})
    sample = d.get("sample")
    lines = [md_escape(f"synthbench {meta.get('harness', '?')}"
                       + (f" (records by {', '.join(versions)})" if versions and versions != [meta.get("harness")] else "")),
             f"embedder: {md_escape(meta.get('embedder') or 'none (no metric of this run embeds)')}",
             f"seed: {meta.get('seed', 0)}",
             f"data fingerprint (sha256 of the rows): `{d.get('fingerprint')}`",
             "sample: " + (f"{sample.get('size')} of {sample.get('of')} rows, seed {sample.get('seed')}"
                           if sample else f"all {d.get('rows')} rows"),
             f"reference {md_escape(ref.get('name'))}: `{ref.get('fingerprint')}`" if ref else None,
             f"test split {md_escape(test.get('name'))}: `{test.get('fingerprint')}`" if test else None]
    if meta.get("lm"):
        lines.append(f"causal LM: {md_escape(meta['lm'])}")
    prec = meta.get("precision") or {}
    if prec:
        ran = [f"{m} {c.get('precision')} on {c.get('device')}" for m, c in prec.items()
               if m != "requested" and isinstance(c, dict)]
        lines.append(md_escape(f"precision: {prec.get('requested')} requested"
                               + (f" ({', '.join(ran)})" if ran else "")))
    out = ["## Signature", ""]
    out += [f"- {x}" for x in lines if x]
    out += ["", "Each number's full signature (metric version and arguments) is in the run's `results.jsonl`; "
            "two numbers compare only when their signatures agree apart from the data.", ""]
    return out


def _rel(path: str | None, cwd: str | None) -> str | None:
    """``path`` relative to the folder the run was started in, when it lies inside it."""
    if not path or not cwd:
        return path
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def reproduce_command(meta: dict, run_dir: str | None = None, records=()) -> str | None:
    """The command that made this run (from run.json's ``load``), or None for a run made from Python
    objects. A suite run writes into reports/<suite name> unless ``--out`` is given."""
    load = meta.get("load") or {}
    cwd = load.get("cwd")
    q = shlex.quote
    if load.get("command") == "run":
        cmd = ["synthbench", "run", q(_rel(load.get("suite"), cwd) or "SUITE.yaml")]
        root = load.get("data_root")
        sources = [str(x.get("source") or "") for x in [meta.get("reference"), meta.get("test"),
                                                        *(meta.get("candidates") or [])] if x]
        if root and any(s.startswith(root.rstrip("/") + "/") for s in sources):
            cmd.insert(0, f"SYNTHBENCH_DATA={q(_rel(root, cwd) if _rel(root, cwd) != root else root)}")
        prec = (meta.get("precision") or {}).get("requested")
        if prec and prec != "auto":
            cmd += ["--precision", q(prec)]
        if run_dir:
            cmd += ["--out", q(run_dir)]
        return " ".join(cmd)
    if load.get("command") != "eval":
        return None
    from harness import metrics as registry

    cmd = ["synthbench", "eval"]
    cmd += [q(f"{n}={_rel(p, cwd)}") for n, p in load.get("candidates") or []]
    if load.get("reference"):
        cmd += ["--reference", q(_rel(load["reference"], cwd))]
    if load.get("test"):
        cmd += ["--test", q(_rel(load["test"], cwd))]
    if load.get("holdout") is not None:
        cmd += ["--holdout", str(load["holdout"])]
    chosen = [m for m in meta.get("metrics") or [] if m != "format/empty-rate"]
    default = [s.name for s in registry.select(None) if s.name != "format/empty-rate"]
    if set(chosen) != set(default):
        cmd += ["--metrics", q(",".join(chosen))]
    if meta.get("sample_size"):
        cmd += ["--sample-size", str(meta["sample_size"])]
    if (meta.get("repeats") or 1) > 1:
        cmd += ["--repeats", str(meta["repeats"])]
    if meta.get("seed"):
        cmd += ["--seed", str(meta["seed"])]
    if load.get("embedder") not in (None, "default"):
        cmd += ["--embedder", q(str(load["embedder"]))]
    if load.get("schema"):
        cmd += ["--schema", q(_rel(load["schema"], cwd))]
    if load.get("split"):
        cmd += ["--split", q(load["split"])]
    defaults = {"text": None, "label": None, "instruction": "instruction", "input": "input", "output": "output"}
    for k, v in (load.get("fields") or {}).items():
        if k in defaults and v != defaults[k]:
            cmd += [f"--{k}-field", q(str(v))]
    prec = (meta.get("precision") or {}).get("requested")
    if prec and prec != "auto":
        cmd += ["--precision", prec]
    if _withheld(records, meta):
        cmd.append("--no-quote-text")
    cmd += ["--out", q(run_dir or "DIR")]
    return " ".join(cmd)


def _reproduce_lines(meta: dict, name: str, run_dir: str | None, records) -> list[str]:
    from harness.report.markdown import md_escape

    load = meta.get("load") or {}
    cmd = reproduce_command(meta, run_dir if load.get("command") == "eval" else None, records)
    out = ["## Reproduce", ""]
    if cmd is None:
        return out + ["This run was made from Python objects (`harness.evaluate`), so no command line repeats "
                      "it; its settings are under Signature.", ""]
    if load.get("command") == "run" and (meta.get("suite") or {}).get("name"):
        folder = f"reports/{meta['suite']['name']}"  # where the command above writes
    else:
        folder = run_dir or "DIR"
    out += ["From the folder the run was started in (a rerun into the same folder reuses every current record):",
            "", "```sh", cmd, f"synthbench card {shlex.quote(folder)} --dataset {shlex.quote(name)} --out README.md",
            "```", ""]
    emb = str(meta.get("embedder") or "")
    if load.get("command") == "eval" and load.get("embedder") in (None, "default") and emb \
            and not emb.split("@", 1)[0].lower().endswith("/all-minilm-l6-v2"):
        out += [f"The run's embedder ({md_escape(emb)}) was handed in from Python; the command above uses the "
                "default embedder, so its embedding-based numbers will differ.", ""]
    return out


def render_card(records, meta: dict, dataset: str, rows: dict | None = None, run_dir: str | None = None) -> str:
    """The dataset card of candidate ``dataset``: ``records`` are the dicts of results.jsonl, ``meta`` its
    run.json, ``rows`` the row files by signature key ({key: rows/<key>.json as read}); ``run_dir`` names the
    folder in the reproduce command of an ``eval`` run. Raises :class:`UserError` for a name that is no
    candidate of the run (naming the candidates)."""
    from harness.report.markdown import md_escape
    from harness.report.write import ordered

    records = list(records)
    d = _dataset(meta, dataset)
    ref = meta.get("reference") or {}
    ref_name = ref.get("name")
    names = {c.get("name") for c in meta.get("candidates") or []} | ({ref_name} if ref_name else set())
    results, failed, stale = _partition(records, meta, names)
    results = ordered(results, meta)
    failed = [x for x in failed if x.get("dataset") == dataset]
    stale = [x for x in stale if x[0] == dataset]
    withheld = _withheld(records, meta)
    score_lines, verdicts = _scorecard_lines(results, meta, dataset, ref_name)
    prov = _provenance(meta, dataset)
    kind = d.get("kind") or "text"
    suite = (meta.get("suite") or {}).get("name")

    head = header(meta, dataset, verdicts)
    body = [f"{MARKER} written by synthbench {meta.get('harness', '?')} from a finished run; "
            "'synthbench card' overwrites it -->", "", f"# {md_escape(dataset)}", ""]
    intro = f"Synthetic {md_escape(kind)} data: {_full_size(d)} rows"
    if d.get("sample"):
        intro += f" ({d.get('rows')} evaluated)"
    if prov.get("generator"):
        intro += f", generated by {md_escape(prov['generator'])}"
    if prov.get("method"):
        intro += f" ({md_escape(prov['method'])})"
    intro += "."
    if prov.get("licence"):
        intro += f" Licence: {md_escape(prov['licence'])}."
    ref_source = _provenance(meta, ref_name).get("source") if ref_name else None
    intro += (f" Evaluated by synthbench {meta.get('harness', '?')}"
              + (f" in the suite *{md_escape(suite)}*" if suite else "")
              + (f" against the real reference **{md_escape(ref_name)}**" if ref_name else "")
              + (f" ({md_escape(ref_source)})" if ref_source else "") + ".")
    body += [intro, ""]
    body += score_lines
    body += _findings_lines(results, meta, dataset, ref_name, [tuple(x) for x in meta.get("skipped") or []])
    body += _flag_lines(results, dataset, rows or {}, d.get("rows"))
    body += _caveat_lines(results, failed, stale, meta, dataset, ref_name, withheld)
    body += _metric_lines(results, dataset, ref_name)
    body += _signature_lines(results, meta, dataset)
    body += _reproduce_lines(meta, dataset, run_dir, records)
    return "---\n" + _yaml(head) + "---\n\n" + "\n".join(body).rstrip() + "\n"


def written_by_synthbench(text: str) -> bool:
    """Whether a file's text is a card this command wrote (it may then be overwritten)."""
    return MARKER in text[:20_000]
