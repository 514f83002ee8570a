"""Argument groups and terminal helpers shared by the commands (argparse-level only: nothing heavy)."""

from __future__ import annotations

import argparse
import os
import sys


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``synthbench: error: … -- fix: …`` and exit 2, no usage dump."""

    def error(self, message: str):
        from harness.report.markdown import term_safe

        print(f"synthbench: error: {term_safe(message)} -- fix: see '{self.prog} --help'", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be at least 1")
    return n


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"{x:g} must be above 0")
    return x


def add_field_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("columns (defaults: text, label; or instruction, input, output)")
    g.add_argument("--text-field", help="column holding the text (default: 'text', or the rendered "
                   "instruction/input/output for instruction data)")
    g.add_argument("--label-field", help="column holding the class label (default: 'label' if present)")
    g.add_argument("--instruction-field", default="instruction")
    g.add_argument("--input-field", default="input")
    g.add_argument("--output-field", default="output")
    g.add_argument("--split", help="split to read from a Hugging Face dataset folder or hub id (default: train)")


def field_options(args) -> dict:
    """The column mapping of ``add_field_flags`` as keyword arguments of ``harness.load`` / ``evaluate``."""
    return {"text_field": args.text_field, "label_field": args.label_field,
            "instruction_field": args.instruction_field, "input_field": args.input_field,
            "output_field": args.output_field}


def add_judge_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM judge (the opt-in judge/ metrics)")
    g.add_argument("--judge-url", "--judge", dest="judge_url", default="local", metavar="URL|local",
                   help="'local' (default: transformers serve with SmolLM2-135M-Instruct on 127.0.0.1, offline) or "
                        "the base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1")
    g.add_argument("--judge-model", metavar="NAME", help="the judge model at --judge-url (required there); with "
                   "'local': a local model folder to serve instead of the default")
    g.add_argument("--judge-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (never read from a file; default OPENAI_API_KEY)")
    g.add_argument("--judge-concurrency", type=positive_int, default=2, metavar="N", help="requests in flight (default 2)")
    g.add_argument("--judge-timeout", type=positive_float, default=60.0, metavar="S", help="seconds per request (default 60)")
    g.add_argument("--judge-retries", type=int, default=3, metavar="N",
                   help="retries on connection errors, 429 and 5xx, with exponential backoff (default 3)")
    g.add_argument("--judge-price-in", type=float, default=0.0, metavar="P", help="price per 1,000 prompt tokens")
    g.add_argument("--judge-price-out", type=float, default=0.0, metavar="P",
                   help="price per 1,000 completion tokens")


def judge_options(args) -> dict:
    return {"url": args.judge_url, "model": args.judge_model, "key_env": args.judge_key_env,
            "concurrency": args.judge_concurrency, "timeout": args.judge_timeout, "retries": args.judge_retries,
            "price_in": args.judge_price_in, "price_out": args.judge_price_out}


def progress_enabled(no_progress: bool) -> bool:
    """Progress bars only when stderr is a terminal, never under --no-progress or CI. Without bars every
    tqdm bar of the process is off (``TQDM_DISABLE``: no carriage returns in a log file) and the runner
    writes one line per stage with its elapsed time instead (not under --no-progress: as quiet as before)."""
    tty = sys.stderr.isatty()
    log.stages = not no_progress and (bool(os.environ.get("CI")) or not tty)  # read by the runner
    if no_progress or os.environ.get("CI") or not tty:
        os.environ.setdefault("TQDM_DISABLE", "1")
        return False
    return True


def log(msg: str) -> None:
    """One line on stderr; anything from data in it is made inert (:func:`harness.api.log_line`)."""
    from harness.api import log_line

    log_line(msg)


log.stages = False  # one line per stage when bars are off (set by progress_enabled; read by the runner)


def summarize_skipped(skipped, datasets=None) -> list[str]:
    """One line per cause: 'not computed: 7 instruction faithfulness metrics (…): … (all 4 datasets)'."""
    from harness.report.notes import group_skipped

    return [f"not computed: {line}" for line in group_skipped(skipped, datasets)]


def finish(run) -> int:
    """Print a finished run's table and summary lines; the exit code (1 when a metric failed)."""
    from harness.report.markdown import render_terminal, term_safe

    print(render_terminal(run.results, run.meta))
    out = run.out
    written = getattr(run, "written", [])
    log(f"{run.computed} computed, {run.reused} reused; wrote {out / 'results.jsonl'} and "
        + ", ".join(str(p) for p in written))
    meta = run.meta or {}
    everyone = [d["name"] for d in [meta.get("reference") or {}] + list(meta.get("candidates") or []) if d.get("name")]
    for line in summarize_skipped(run.skipped, everyone):
        log(line)
    if run.failed:
        for d, m, why in run.failed:
            log(term_safe(f"FAILED: {d} {m}: {why}"))
        log(f"{len(run.failed)} metric(s) failed (recorded in results.jsonl and shown in the report); "
            "a rerun tries them again and reuses everything else")
        return 1
    return 0
