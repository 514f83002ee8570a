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
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_field_flags(e)

    sub.add_parser("metrics", help="list every metric with its meaning and direction")

    r = sub.add_parser("report", help="render DIR/report.md again from DIR/results.jsonl (no recomputation)")
    r.add_argument("dir", metavar="DIR")
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
        if args.command == "metrics":
            return cmd_metrics()
        if args.command == "report":
            return cmd_report(Path(args.dir))
    except UserError as e:
        print(f"synthbench: error: {e.line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("synthbench: interrupted; finished results are kept and a rerun resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 0


def cmd_metrics() -> int:
    from . import metrics
    from .report.markdown import arrow

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


def cmd_eval(args) -> int:
    from . import metrics as registry
    from .backends.embed import resolve_embedder
    from .data import FieldMap, load_corpus
    from .errors import UserError
    from .report.markdown import render_terminal
    from .runner import RunConfig, run

    if args.no_progress or os.environ.get("CI"):
        os.environ.setdefault("TQDM_DISABLE", "1")
    fields = FieldMap(text=args.text_field, label=args.label_field, instruction=args.instruction_field,
                      input=args.input_field, output=args.output_field)
    specs = registry.select(args.metrics.split(",") if args.metrics else None)
    parsed = [_parse_candidate(c) for c in args.candidates]
    names = _unique_names(parsed)
    if len(set(names)) != len(names):
        raise UserError("two candidates have the same name", "name them apart with NAME=PATH")
    reference = load_corpus(args.reference, fields, split=args.split) if args.reference else None
    if reference is not None and reference.name in names:
        reference = _renamed(reference, reference.name + " (reference)")
    candidates = [load_corpus(path, fields, name=name, split=args.split) for name, (_, path) in zip(names, parsed)]

    sample_size = None
    if args.sample_size:
        if args.sample_size == "min":
            sample_size = min(len(c) for c in candidates)
        else:
            try:
                sample_size = int(args.sample_size)
            except ValueError:
                raise UserError(f"--sample-size {args.sample_size}: not a number", "give N (an integer) or 'min'") from None
            if sample_size < 2:
                raise UserError(f"--sample-size {sample_size}: too small", "give at least 2")
            small = [c for c in candidates if len(c) < sample_size]
            if small:
                raise UserError(f"--sample-size {sample_size}: {small[0].name} has only {len(small[0])} rows",
                                f"use --sample-size {min(len(c) for c in candidates)} or less (or 'min')")
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: must be at least 1", "give 1 (no repeats) or more")

    needs_emb = any("embeddings" in s.info.needs or "reference_embeddings" in s.info.needs for s in specs)
    emb = resolve_embedder(args.embedder, batch_size=args.batch_size) if needs_emb else None
    out = Path(args.out)
    progress = not (args.no_progress or os.environ.get("CI") or not sys.stderr.isatty())
    cfg = RunConfig(seed=args.seed, embedder=emb, sample_size=sample_size, repeats=args.repeats, progress=progress)
    corpora = ([(reference, "reference")] if reference is not None else []) + [(c, "candidate") for c in candidates]
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    outcome = run(corpora, reference, specs, out, cfg, log=log)

    from .runner import primary

    reference = primary(reference, cfg) if reference is not None else None
    candidates = [primary(c, cfg) for c in candidates]
    meta = {
        "harness": __version__, "seed": args.seed, "sample_size": sample_size, "repeats": args.repeats,
        "embedder": emb.identity if emb else None,
        "reference": _describe(reference, "reference") if reference is not None else None,
        "candidates": [_describe(c, "candidate") for c in candidates],
        "metrics": [s.name for s in specs],
        "size_dependent": [s.name for s in specs if s.info.size_dependent],
        "skipped": [list(x) for x in outcome.skipped],
    }
    write_report(out, outcome.results, meta)
    print(render_terminal(outcome.results, meta))
    log(f"{outcome.computed} computed, {outcome.reused} reused; wrote {out / 'results.jsonl'} and {out / 'report.md'}")
    for d, m, why in outcome.skipped:
        log(f"not computed: {d} {m} ({why})")
    return 0


def _renamed(corpus, name):
    from dataclasses import replace

    return replace(corpus, name=name)


def _describe(c, role) -> dict:
    return {"name": c.name, "role": role, "source": c.source, "kind": c.kind, "rows": len(c),
            "fingerprint": c.fingerprint, "sample": c.sample,
            "labels": sorted(set(c.labels)) if c.labels is not None else None}


def write_report(out: Path, results, meta: dict) -> None:
    from . import metrics as registry
    from .cache import atomic_write_text
    from .report.markdown import render_markdown

    summaries = {}
    for r in results:
        if r.metric in registry.REGISTRY and r.metric not in summaries:
            summaries[r.metric] = registry.get(r.metric).info.summary
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", render_markdown(results, meta, summaries))


def cmd_report(out: Path) -> int:
    from .errors import UserError
    from .report.markdown import render_terminal
    from .results import load_results

    results = load_results(out)
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if not meta:
        raise UserError(f"{meta_path}: missing", "rerun 'synthbench eval' into this folder to recreate it")
    write_report(out, results, meta)
    print(render_terminal(results, meta))
    print(f"wrote {out / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
