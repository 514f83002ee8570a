"""The ``synthbench`` command. Heavy modules are imported inside the commands, so ``--help`` is fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__


def _add_field_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("columns (defaults: text, label; or instruction, input, output)")
    g.add_argument("--text-field", help="column holding the text (default: 'text', or the rendered "
                   "instruction/input/output for instruction data)")
    g.add_argument("--label-field", help="column holding the class label (default: 'label' if present)")
    g.add_argument("--instruction-field", default="instruction")
    g.add_argument("--input-field", default="input")
    g.add_argument("--output-field", default="output")
    g.add_argument("--split", help="split to read from a Hugging Face dataset folder or hub id (default: train)")


def _add_judge_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM judge (the opt-in judge/ metrics)")
    g.add_argument("--judge-url", "--judge", dest="judge_url", default="local", metavar="URL|local",
                   help="'local' (default: transformers serve with SmolLM2-135M-Instruct on 127.0.0.1, offline) or "
                        "the base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1")
    g.add_argument("--judge-model", metavar="NAME", help="the judge model at --judge-url (required there); with "
                   "'local': a local model folder to serve instead of the default")
    g.add_argument("--judge-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (never read from a file; default OPENAI_API_KEY)")
    g.add_argument("--judge-concurrency", type=int, default=2, metavar="N", help="requests in flight (default 2)")
    g.add_argument("--judge-timeout", type=float, default=60.0, metavar="S", help="seconds per request (default 60)")
    g.add_argument("--judge-retries", type=int, default=3, metavar="N",
                   help="retries on connection errors, 429 and 5xx, with exponential backoff (default 3)")
    g.add_argument("--judge-price-in", type=float, default=0.0, metavar="P", help="price per 1,000 prompt tokens")
    g.add_argument("--judge-price-out", type=float, default=0.0, metavar="P",
                   help="price per 1,000 completion tokens")


def _judge_options(args) -> dict:
    return {"url": args.judge_url, "model": args.judge_model, "key_env": args.judge_key_env,
            "concurrency": args.judge_concurrency, "timeout": args.judge_timeout, "retries": args.judge_retries,
            "price_in": args.judge_price_in, "price_out": args.judge_price_out}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthbench",
        description="Evaluate synthetic text datasets against a real reference: diversity, duplicates, "
                    "semantic spread (and more metric families as they are added).")
    p.add_argument("--version", action="version", version=f"synthbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("eval", help="evaluate candidate datasets (and the reference) and write results",
                       description="Evaluate each CANDIDATE (a path, NAME=PATH, builtin:NAME, hf:ID) and the "
                                   "reference; print a table; write DIR/results.jsonl and DIR/report.md. "
                                   "Formats: .jsonl .json .csv .tsv .parquet, Hugging Face save_to_disk "
                                   "folders, folders of <label>/*.txt.")
    e.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    e.add_argument("--reference", "-r", metavar="REF", help="the real dataset to compare with")
    e.add_argument("--test", "-t", metavar="TEST",
                   help="a held-out real test split, for metrics that train models (utility/...) or check "
                        "contamination; never sampled, never trained on")
    e.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="without --test: hold out this fraction of the reference (stratified, seeded) as the "
                        "real test split")
    e.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (reused on rerun)")
    e.add_argument("--metrics", "-m", metavar="LIST",
                   help="comma-separated metric names, groups (the part before /) or globs; 'synthbench metrics' lists them; default: all")
    e.add_argument("--sample-size", metavar="N|min",
                   help="evaluate every dataset on N rows drawn without replacement (seeded); 'min' = the "
                        "smallest candidate's size. Makes size-dependent metrics comparable.")
    e.add_argument("--repeats", type=int, default=1, metavar="R",
                   help="with --sample-size: compute size-dependent metrics on R seeded samples of each "
                        "larger dataset and report their mean with a 95%% t-interval (default 1)")
    e.add_argument("--seed", type=int, default=0, help="seed for sampling, bootstrap and seeded metrics")
    e.add_argument("--embedder", default="default",
                   help="sentence-transformers model: 'default' (all-MiniLM-L6-v2, offline), a local "
                        "folder, or a hub name (needs a network)")
    e.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where texts are embedded: 'local' (this process, default) or 'ray' (Ray Data on a Ray "
                        "cluster; the cache stays here; needs pip install 'synthbench[ray]')")
    e.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --engine ray: an existing cluster ('auto', or ray://HEAD:10001); default: start a "
                        "local cluster with this machine's CPUs")
    e.add_argument("--lm", default="default",
                   help="causal language model for the fluency metrics: 'default' (SmolLM2-135M-Instruct, "
                        "offline), a local Hugging Face folder, or a hub id (needs a network)")
    _add_judge_flags(e)
    e.add_argument("--schema", metavar="FILE.yaml",
                   help="declared row schema (required fields, types, allowed labels, lengths, JSON fields): "
                        "invalid rows are kept and counted by format/invalid-rate instead of refusing the file")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("--no-quote-text", action="store_true",
                   help="withhold dataset text (examples, flagged rows) from results.jsonl: for data you may not "
                        "redistribute")
    _add_field_flags(e)

    mp = sub.add_parser("metrics", help="list every metric with its meaning and direction")
    mp.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the README)")

    s = sub.add_parser("run", help="run a suite (YAML) with resume; write results and the leaderboard",
                       description="Run every candidate of SUITE against its reference; finished results in "
                                   "OUT are reused. Writes results.jsonl, report.md (the leaderboard) and run.json.")
    s.add_argument("suite", metavar="SUITE.yaml")
    s.add_argument("--out", "-o", metavar="DIR", help="output folder (default: reports/<suite name>)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("report", help="render DIR/report.md again from DIR/results.jsonl (no recomputation)")
    r.add_argument("dir", metavar="DIR")

    from .commands import discover

    for mod in discover():
        c = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(c)
        c.set_defaults(_command_module=mod)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "metrics":
            return cmd_metrics(markdown=args.markdown)
        if args.command == "report":
            return cmd_report(Path(args.dir))
        if getattr(args, "_command_module", None) is not None:
            return int(args._command_module.run(args) or 0)
    except UserError as e:
        from .report.markdown import term_safe

        print(f"synthbench: error: {term_safe(e.line())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("synthbench: interrupted; finished results are kept and a rerun resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 0


def cmd_metrics(markdown: bool = False) -> int:
    from . import metrics
    from .report.markdown import arrow

    if markdown:
        print("| metric | meaning | range | better | needs |")
        print("|---|---|---|:-:|---|")
        for name in metrics.names():
            info = metrics.get(name).info
            opt = " (opt-in)" if any(__import__("fnmatch").fnmatch(name, p) for p in metrics.OPT_IN) else ""
            print(f"| `{name}`{opt} | {info.summary.replace('|', '/')} | {info.range} | "
                  f"{arrow(info.higher_is_better)} | {', '.join(info.needs)} |")
        return 0
    for name in metrics.names():
        info = metrics.get(name).info
        print(f"{name:36s} {arrow(info.higher_is_better)}  {info.summary}")
    print("\n↑ higher is better   ↓ lower is better   · no direction (compare with the reference)")
    return 0


def _parse_candidate(spec: str) -> tuple[str | None, str]:
    """'name=path' names a dataset; a plain path is named by its file stem."""
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        if name and "/" not in name and path:
            return name, path
    return None, spec


def _unique_names(specs: list[tuple[str | None, str]]) -> list[str]:
    """File stems, made unique with parent folders when two candidates share one."""
    def stem_at(path: str, depth: int) -> str:
        p = Path(path)
        parts = [p.stem] + [q.name for q in p.parents][: depth]
        return "/".join(reversed(parts[: depth + 1]))

    for depth in range(0, 6):
        auto = [n or stem_at(path, depth) for (n, path) in specs]
        if len(set(auto)) == len(auto):
            return auto
    return [n or f"{stem_at(path, 0)}#{i + 1}" for i, (n, path) in enumerate(specs)]


def _resolve_sample_size(value, candidates, flag="--sample-size"):
    from .errors import UserError

    if value in (None, ""):
        return None
    if value == "min":
        return min(len(c) for c in candidates)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag} {value}: not a number", "give N (an integer) or 'min'") from None
    if n < 2:
        raise UserError(f"{flag} {n}: too small", "give at least 2")
    small = [c for c in candidates if len(c) < n]
    if small:
        raise UserError(f"{flag} {n}: {small[0].name} has only {len(small[0])} rows",
                        f"use {flag} {min(len(c) for c in candidates)} or less (or 'min')")
    return n


def execute(candidates, reference, test, specs, out: Path, *, seed: int, sample_size, repeats: int,
            embedder: str, batch_size: int = 64, progress: bool = True, extra_meta: dict | None = None,
            lm: str = "default", quote_text: bool = True, judge: dict | None = None,
            engine: dict | None = None) -> int:
    """Run the metrics, write results.jsonl, run.json and the reports, print the table and a summary."""
    from .backends.embed import resolve_embedder
    from .errors import UserError
    from .report.markdown import render_terminal
    from .runner import RunConfig, run

    if repeats < 1:
        raise UserError(f"--repeats {repeats}: must be at least 1", "give 1 (no repeats) or more")
    sample_size = _resolve_sample_size(sample_size, candidates)
    _check_label_overlap(candidates, reference)
    needs_emb = any("embeddings" in s.info.needs or "reference_embeddings" in s.info.needs for s in specs)
    emb = resolve_embedder(embedder, batch_size=batch_size) if needs_emb else None
    needs_lm = any("lm" in s.info.needs for s in specs)
    lm_spec = None
    if needs_lm or (lm or "default") != "default":  # a named model is checked even when no metric uses it
        from .backends.lm import resolve_lm

        lm_spec = resolve_lm(lm)
    judge_spec = None
    if any("judge" in s.info.needs for s in specs):  # the server itself starts only for an uncached request
        from .backends.judge import resolve_judge

        judge_spec = resolve_judge(**(judge or {}))
    from .engine import make_engine, resolve_engine

    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    engine_spec = resolve_engine(**(engine or {}))
    eng = make_engine(engine_spec, log=log) if (needs_emb or needs_lm) else None
    cfg = RunConfig(seed=seed, embedder=emb, sample_size=sample_size, repeats=repeats, progress=progress,
                    lm=lm_spec if needs_lm else None, quote_text=quote_text, judge=judge_spec, engine=eng)
    corpora = ([(reference, "reference")] if reference is not None else []) + [(c, "candidate") for c in candidates]
    try:
        outcome = run(corpora, reference, specs, out, cfg, log=log, test=test)
    finally:
        if eng is not None:
            eng.close()

    reference = outcome.evaluated.get(reference.name, reference) if reference is not None else None
    candidates = [outcome.evaluated.get(c.name, c) for c in candidates]
    meta = {
        "harness": __version__, "seed": seed, "sample_size": sample_size, "repeats": repeats,
        "embedder": emb.identity if emb else None,
        **({"engine": {**engine_spec.describe(), **(eng.stats if eng is not None else {})}}
           if engine_spec.name != "local" else {}),
        "lm": lm_spec.identity if (lm_spec and needs_lm) else None,
        **({"judge": judge_spec.identity} if judge_spec is not None else {}),
        "reference": _describe(reference, "reference") if reference is not None else None,
        "candidates": [_describe(c, "candidate") for c in candidates],
        "test": _describe(test, "test") if test is not None else None,
        "metrics": [s.name for s in specs],
        "size_dependent": [s.name for s in specs if s.info.size_dependent],
        "skipped": [list(x) for x in outcome.skipped],
        "failed": [list(x) for x in outcome.failed],
        **(extra_meta or {}),
    }
    written = write_report(out, outcome.results, meta)
    print(render_terminal(outcome.results, meta))
    log(f"{outcome.computed} computed, {outcome.reused} reused; wrote {out / 'results.jsonl'} and "
        + ", ".join(str(p) for p in written))
    for line in summarize_skipped(outcome.skipped):
        log(line)
    if outcome.failed:
        from .report.markdown import term_safe

        for d, m, why in outcome.failed:
            log(term_safe(f"FAILED: {d} {m}: {why}"))
        log(f"{len(outcome.failed)} metric(s) failed (recorded in results.jsonl and shown in the report); "
            "a rerun tries them again and reuses everything else")
        return 1
    return 0


def _check_label_overlap(candidates, reference) -> None:
    """A labelled candidate that shares no label with a labelled reference is almost always a label-name
    mismatch (0/1 against neg/pos): every label metric would compare nothing with something."""
    from .errors import UserError

    if reference is None or reference.labels is None:
        return
    ref = set(reference.labels)
    for c in candidates:
        if c.labels is not None and not set(c.labels) & ref:
            mine = ", ".join(sorted(set(c.labels))[:5])
            theirs = ", ".join(sorted(ref)[:5])
            raise UserError(f"{c.source}: no label in common with the reference {reference.name} "
                            f"(candidate: {mine}; reference: {theirs})",
                            "map the candidate's labels to the reference's names (or pick the right label column)")


def summarize_skipped(skipped) -> list[str]:
    """One line per reason: 'not computed (needs labels): 2 metric(s) for ds1, ds2: m1, m2'."""
    by_reason: dict[str, tuple[list, list]] = {}
    for d, m, why in skipped:
        ds, ms = by_reason.setdefault(why, ([], []))
        if d not in ds:
            ds.append(d)
        if m not in ms:
            ms.append(m)
    lines = []
    for why, (ds, ms) in by_reason.items():
        shown = ", ".join(ms[:6]) + (f", … ({len(ms)} in all)" if len(ms) > 6 else "")
        lines.append(f"not computed ({why}): {len(ms)} metric(s) for {', '.join(ds)}: {shown}")
    return lines


def _progress(no_progress: bool) -> bool:
    if no_progress or os.environ.get("CI"):
        os.environ.setdefault("TQDM_DISABLE", "1")
        return False
    return sys.stderr.isatty()


def cmd_eval(args) -> int:
    from . import metrics as registry
    from .data import FieldMap, load_corpus
    from .errors import UserError

    progress = _progress(args.no_progress)
    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    specs = registry.select(args.metrics.split(",") if args.metrics else None)
    parsed = [_parse_candidate(c) for c in args.candidates]
    names = _unique_names(parsed)
    if len(set(names)) != len(names):
        raise UserError("two candidates have the same name", "name them apart with NAME=PATH")
    from .schema import load_schema_file, resolve_for_candidates

    schema = load_schema_file(args.schema) if args.schema else None
    reference = load_corpus(args.reference, fields, split=args.split, schema=schema) if args.reference else None
    if reference is not None and reference.name in names:
        reference = _renamed(reference, reference.name + " (reference)")
    cand_schema = resolve_for_candidates(schema, reference)
    candidates = [load_corpus(path, fields, name=name, split=args.split, schema=cand_schema)
                  for name, (_, path) in zip(names, parsed)]
    test = load_corpus(args.test, fields, name="test", split=args.split) if args.test else None
    if args.holdout is not None:
        if test is not None or reference is None:
            raise UserError("--holdout needs --reference and no --test", "hold out part of the reference, or give --test")
        if not 0 < args.holdout < 1:
            raise UserError(f"--holdout {args.holdout}: not between 0 and 1", "give a fraction such as 0.25")
        reference, test = reference.holdout(args.holdout, args.seed)
    from .compare import eval_load_record

    return execute(candidates, reference, test, specs, Path(args.out), seed=args.seed,
                   sample_size=args.sample_size, repeats=args.repeats, embedder=args.embedder,
                   batch_size=args.batch_size, progress=progress, lm=args.lm, quote_text=not args.no_quote_text,
                   judge=_judge_options(args), engine={"name": args.engine, "address": args.ray_address},
                   extra_meta={**({"schema": cand_schema.as_dict()} if cand_schema is not None else {}),
                               "load": eval_load_record(args, names, parsed)})  # how 'compare' reloads the rows


def cmd_run(args) -> int:
    from .compare import run_load_record
    from .suite import load_dataset, load_suite, suite_specs

    progress = _progress(args.no_progress)
    suite = load_suite(args.suite)
    specs = suite_specs(suite)
    from .schema import resolve_for_candidates

    reference = load_dataset(suite.reference, suite.normalize, schema=suite.schema)
    test = load_dataset(suite.test, suite.normalize) if suite.test else None
    cand_schema = resolve_for_candidates(suite.schema, reference)
    candidates = [load_dataset(c, suite.normalize, schema=cand_schema) for c in suite.candidates]
    if suite.holdout:
        reference, test = reference.holdout(suite.holdout, suite.seed)
    out = Path(args.out) if args.out else Path("reports") / suite.name
    print(f"suite {suite.name}: {len(candidates)} candidate(s) against {reference.name}, "
          f"{len(specs)} metric(s) -> {out}", file=sys.stderr)
    extra = {"suite": {"name": suite.name, "description": suite.description, "file": str(suite.path),
                       "task": suite.task},
             "provenance": {c.name: c.provenance for c in suite.candidates}}
    extra["provenance"][suite.reference.name] = suite.reference.provenance
    if cand_schema is not None:
        extra["schema"] = cand_schema.as_dict()
    extra["load"] = run_load_record(args)  # how 'synthbench compare' reloads the rows
    return execute(candidates, reference, test, specs, out, seed=suite.seed, sample_size=suite.sample_size,
                   repeats=suite.repeats, embedder=suite.embedder, progress=progress, extra_meta=extra,
                   lm=suite.lm, quote_text=suite.quote_text, judge=suite.judge, engine=suite.engine)


def _renamed(corpus, name):
    from dataclasses import replace

    return replace(corpus, name=name)


def _describe(c, role) -> dict:
    return {"name": c.name, "role": role, "source": c.source, "kind": c.kind, "rows": len(c),
            "fingerprint": c.fingerprint, "sample": c.sample,
            "labels": sorted(set(c.labels)) if c.labels is not None else None}


def write_report(out: Path, results, meta: dict) -> list[Path]:
    from . import metrics as registry
    from .cache import atomic_write_text
    from .report.figures import all_figures
    from .report.html import render_html
    from .report.markdown import render_markdown

    # a pure function of the records: the same order whatever order the file holds them in
    names = ([meta["reference"]["name"]] if meta.get("reference") else []) + [c["name"] for c in meta.get("candidates", [])]
    d_order = {n: i for i, n in enumerate(names)}
    m_order = {m: i for i, m in enumerate(list(meta.get("metrics") or []) + list(registry.REGISTRY))}
    results = sorted(results, key=lambda r: (d_order.get(r.dataset, len(d_order)), r.dataset,
                                             m_order.get(r.metric, len(m_order)), r.metric))
    infos = {}
    for r in results:
        if r.metric in registry.REGISTRY and r.metric not in infos:
            i = registry.get(r.metric).info
            infos[r.metric] = {"summary": i.summary, "range": i.range, "higher_is_better": i.higher_is_better}
    summaries = {m: i["summary"] for m, i in infos.items()}
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    md = render_markdown(results, meta, summaries)
    written = [out / "report.md"]
    atomic_write_text(out / "report.md", md)
    if meta.get("suite"):
        atomic_write_text(out / "leaderboard.md", md)
        written.append(out / "leaderboard.md")
    figures = all_figures(results, meta, out / "figures") if results else []
    atomic_write_text(out / "index.html", render_html(results, meta, infos, figures))
    written.append(out / "index.html")
    return written


def cmd_report(out: Path) -> int:
    from .errors import UserError
    from .report.markdown import render_terminal
    from .results import load_failures, load_results

    results = load_results(out)
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if not meta:
        raise UserError(f"{meta_path}: missing", "rerun 'synthbench eval' into this folder to recreate it")
    meta["failed"] = [list(x) for x in load_failures(out)]
    written = write_report(out, results, meta)
    print(render_terminal(results, meta))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
