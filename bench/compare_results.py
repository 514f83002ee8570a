"""Compare the values of two result folders (before and after a change) record by record.

    python bench/compare_results.py BEFORE_DIR AFTER_DIR [BEFORE_DIR AFTER_DIR ...] [--tol 0]

For every (dataset, metric) in either folder's results.jsonl: equal (the same value and interval, to
``--tol`` relative), changed, or present on one side only. A changed value is explained from the two
signatures where they say why: the metric is now repeated over seeded samples (it became size-dependent),
its declared version moved, its arguments changed. Anything else is listed as **unexplained**, and the exit
code is 1 when there is any. Prints Markdown (one section per pair), for a closing note or a PR.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _records(folder: Path) -> dict[tuple[str, str], dict]:
    path = folder / "results.jsonl"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out[(d["dataset"], d["metric"])] = d
    return out


def _close(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (a is not None and b is not None and len(a) == len(b)
                and all(_close(x, y, tol) for x, y in zip(a, b)))
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= tol * max(abs(a), abs(b))


def _why(before: dict, after: dict) -> str | None:
    sb, sa = before.get("signature", {}), after.get("signature", {})
    ab, aa = dict(sb.get("args", {})), dict(sa.get("args", {}))
    if "repeats" in aa and "repeats" not in ab:
        return f"now the mean over {aa['repeats']} seeded samples (declared size-dependent)"
    if "repeats" in ab and "repeats" not in aa:
        return "no longer repeated (declared size-independent)"
    if sb.get("version") is not None and sb.get("version") != sa.get("version"):
        return f"metric version {sb.get('version')} -> {sa.get('version')}"
    ab.pop("repeats", None)
    aa.pop("repeats", None)
    if ab != aa:
        keys = sorted(k for k in set(ab) | set(aa) if ab.get(k) != aa.get(k))
        return "arguments changed: " + ", ".join(keys)
    if sb.get("data") != sa.get("data"):
        return "different data (fingerprints or sample)"
    return None


def compare(before: Path, after: Path, tol: float) -> tuple[list[str], int]:
    b, a = _records(before), _records(after)
    lines = [f"### `{before}` → `{after}`", ""]
    equal, changed, unexplained, only = 0, [], 0, []
    for key in sorted(set(b) | set(a)):
        rb, ra = b.get(key), a.get(key)
        if rb is None or ra is None:
            only.append((key, "after only" if rb is None else "before only"))
            continue
        if rb.get("status") == "failed" or ra.get("status") == "failed":
            changed.append((key, rb.get("value"), ra.get("value"), "failed on one side"))
            unexplained += 1
            continue
        if _close(rb["value"], ra["value"], tol) and _close(rb.get("ci"), ra.get("ci"), tol):
            equal += 1
            continue
        why = _why(rb, ra)
        unexplained += why is None
        what = "" if not _close(rb["value"], ra["value"], tol) else " (the interval only)"
        changed.append((key, rb["value"], ra["value"], (why or "**unexplained**") + what))
    lines.append(f"{equal} equal, {len(changed)} changed ({unexplained} unexplained), {len(only)} on one side only.")
    if changed:
        lines += ["", "| dataset | metric | before | after | why |", "|---|---|--:|--:|---|"]
        lines += [f"| {d} | `{m}` | {vb:.6g} | {va:.6g} | {why} |" if isinstance(vb, float) and isinstance(va, float)
                  else f"| {d} | `{m}` | {vb} | {va} | {why} |" for (d, m), vb, va, why in changed]
    if only:
        lines += ["", "On one side only: " + ", ".join(f"{d} `{m}` ({w})" for (d, m), w in only)]
    return lines + [""], unexplained


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="DIR", help="pairs: BEFORE AFTER [BEFORE AFTER ...]")
    p.add_argument("--tol", type=float, default=0.0, help="relative tolerance (default 0: bit-identical)")
    args = p.parse_args(argv)
    if len(args.folders) % 2:
        p.error("give folders in pairs: BEFORE AFTER")
    bad = 0
    for i in range(0, len(args.folders), 2):
        lines, unexplained = compare(Path(args.folders[i]), Path(args.folders[i + 1]), args.tol)
        bad += unexplained
        print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
