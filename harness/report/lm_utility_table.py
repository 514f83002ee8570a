"""The table of ``synthbench lm-utility`` (DIR/lm-utility.md): a pure function of the records and run.json."""

from __future__ import annotations


def _fmt(v, ci=None, signed=False, digits=4):
    if v is None:
        return "–"
    s = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    if ci is not None:
        s += f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if signed else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return s


def render_table(results, meta) -> str:
    """The Markdown table: one row per model (the base first), per task its score and the delta to the base."""
    from harness.report.markdown import md_escape

    cell = {(r.dataset, r.metric): r for r in results}
    rows = [meta["reference"]["name"]] + [c["name"] for c in meta["candidates"]]
    cols = []
    for t in meta["tasks"]:
        lab = t["label"]
        if t["kind"] == "perplexity":
            cols += [(f"lm-utility/{lab}/bits-per-byte", f"{lab}: bits/byte ↓", False),
                     (f"lm-utility/{lab}/bits-per-byte-delta", f"{lab}: Δ bits/byte ↓", True),
                     (f"lm-utility/{lab}/word-perplexity", f"{lab}: word ppl ↓", False)]
        elif t["kind"] == "multiple_choice":
            cols += [(f"lm-utility/{lab}/mc-accuracy", f"{lab}: accuracy ↑", False),
                     (f"lm-utility/{lab}/mc-accuracy-delta", f"{lab}: Δ accuracy ↑", True)]
        elif t["kind"] == "generation":
            cols += [(f"lm-utility/{lab}/exact-match", f"{lab}: exact match ↑", False),
                     (f"lm-utility/{lab}/exact-match-delta", f"{lab}: Δ exact match ↑", True)]
        else:
            for m in meta["metrics"]:
                if m.startswith(f"lm-utility/{lab}/"):
                    cols.append((m, m.split("/", 1)[1], m.endswith("-delta")))
    present = {m for _, m in cell}
    cols = [c for col in cols for c in [col] + (
        [(col[0][:-len("-delta")] + "-gap-recovered", col[1].replace("Δ", "gap recovered").rsplit(" ", 1)[0] + " ↑", False)]
        if col[0].endswith("-delta") and col[0][:-len("-delta")] + "-gap-recovered" in present else [])]
    r = meta["recipe"]
    lines = [f"Base model {md_escape(meta['lm']['identity'])}; {r['mode']} fine-tuning to {r['token_budget']:,} "
             f"supervised tokens (lr {r['lr']:g}, batch {r['batch_size']}, max length {r['max_length']}"
             + (f", LoRA r={r['lora_r']} alpha={r['lora_alpha']}" if r["mode"] == "lora" else "")
             + f"), seeds {', '.join(map(str, meta['seeds']))}; lm-eval {meta['lm_eval']} on {meta['device']}. "
             "Values are means over seeds with 95% bootstrap intervals; Δ = fine-tuned − base, paired over the "
             "same documents" + (f"; gap recovered = Δ / Δ of the real text {md_escape(meta['real']['name'])} "
                                 "fine-tuned at the same budget (1 = as good as real)"
                                 if meta.get("real") else "") + ".", ""]
    lines.append("| model | " + " | ".join(c[1] for c in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for name in rows:
        vals = []
        for metric, _, signed in cols:
            x = cell.get((name, metric))
            digits = 2 if "perplexity" in metric and not signed else (4 if "bits" in metric else 3)
            vals.append(_fmt(x.value, x.ci, signed, digits) if x else "–")
        lines.append(f"| {md_escape(name)} | " + " | ".join(vals) + " |")
    lines.append("")
    tr = meta.get("training") or {}
    if tr:
        lines += ["| candidate | rows | seed | tokens trained | input tokens | passes | train s | device | final loss |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        rows_of = {c["name"]: c["rows"] for c in meta["candidates"] + ([meta["real"]] if meta.get("real") else [])}
        for name, runs in tr.items():
            for t in runs:
                lines.append(f"| {md_escape(name)} | {rows_of.get(name, '?')} | {t['seed']} | {t['tokens_trained']:,} | "
                             f"{t['tokens_input']:,} | {t['passes']} | {t['train_seconds']} | {t['device']} | "
                             f"{t['final_loss']} |")
        lines.append("")
    lines.append("Tasks: " + "; ".join(f"{t['label']} = {t['kind']}, {t['docs'] or '?'} documents from "
                                         f"{md_escape(t['source'])}" for t in meta["tasks"]) + ".")
    return "\n".join(lines) + "\n"
