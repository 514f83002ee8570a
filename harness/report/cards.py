"""Metric cards: one Markdown page per metric in docs/cards/, generated from its ``@metric`` declaration.

``synthbench metrics --cards docs/cards`` writes them (and their index, README.md);
``tests/unit/report/test_cards.py`` fails when a card is missing, extra or stale. A card is a pure function
of the declaration: definition (the docstring), range, direction, size dependence, cost, the paper the
docstring cites, and the validity row (what ``synthbench validate`` expects under each corruption).
"""

from __future__ import annotations

import re
from pathlib import Path

_SIGN = {"+": "rises", "-": "falls", "0": "stays"}
_CITE = re.compile(r"et al\.|\b(?:19|20)\d\d\b")


def card_file(name: str) -> str:
    from harness.report.markdown import card_file as f

    return f(name)


def papers(doc: str) -> list[str]:
    """The sentences of a docstring that cite a paper (an author 'et al.' or a year)."""
    text = " ".join(line.strip() for line in doc.splitlines() if line.strip())
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    sentences = re.split(r"(?<=[.!?])(?<!et al\.)(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Z\"'])", text)
    out = []
    for s in sentences:
        if _CITE.search(s) and not s.startswith(">>>") and s not in out:
            out.append(s.strip())
    return out


def render_card(info) -> str:
    """The card of one metric (a :class:`~harness.metrics.base.MetricInfo`)."""
    from harness.metrics.base import CORRUPTIONS, GROUPS, SCORECARD

    group_title, dimension = GROUPS.get(info.group, (info.group, "descriptive"))
    direction = {True: "↑ higher is better", False: "↓ lower is better"}.get(
        info.higher_is_better, "· no direction (compare with the reference)")
    column = (f"{SCORECARD[dimension][0]} (a column of the scorecard)" if dimension in SCORECARD
              else f"{dimension} (not in the scorecard: no direction)")
    args = ", ".join(f"{k}={v}" for k, v in sorted(info.args.items())) or "none"
    lines = [f"# `{info.name}`", "", info.summary, "",
             "<!-- generated from the @metric declaration by `synthbench metrics --cards docs/cards`; "
             "a test fails when this file is stale -->", "",
             "| | |", "|---|---|",
             f"| family | {group_title} (`{info.group}/`) |",
             f"| dimension | {column} |",
             f"| range | {info.range} |",
             f"| direction | {direction} |",
             "| size dependence | " + ("yes: the value moves with the number of rows; compare at one "
                                      "`--sample-size` (`--repeats` averages several samples)" if info.size_dependent
                                      else "no (measured at 100 and 800 rows)") + " |",
             f"| cost | {info.cost}{' (opt-in: runs only when named)' if info.opt_in else ''} |",
             f"| needs | {', '.join(info.needs)} |",
             f"| arguments | {args} |",
             f"| version | {info.version} |",
             f"| determinism | {'exact' if not info.tolerance else f'relative tolerance {info.tolerance:g}'} |",
             f"| compare resamples | {info.resample} |",
             f"| function | `{info.target}` |",
             "", "## Definition", "", info.doc.strip(), "", "## Paper", ""]
    cited = papers(info.doc)
    lines += [f"- {s}" for s in cited] or ["No paper is cited in the declaration's docstring."]
    lines += ["", "## Validity row", "",
              "What `synthbench validate` expects of this metric under each corruption as its severity grows "
              "(+ rises, - falls, 0 stays put; blank: no expectation declared).", "",
              "| " + " | ".join(CORRUPTIONS) + " |", "|" + ":-:|" * len(CORRUPTIONS),
              "| " + " | ".join((info.expect or {}).get(c, "") for c in CORRUPTIONS) + " |", ""]
    if info.limits:
        lines += ["Known limits (a FAIL that is explained, not a bug):", ""]
        lines += [f"- **{k}**: {v}" for k, v in sorted(info.limits.items())]
        lines.append("")
    if info.identity is not None:
        i = info.identity
        lines += [f"Identity (\"no difference\"): {i.self_value:g} against itself (± {i.self_tol:g}), "
                  f"{i.halves_value:g} between two random halves (± {i.halves_tol}). {i.why}", ""]
    elif info.no_identity:
        lines += [f"No identity value: {info.no_identity}", ""]
    return "\n".join(lines)


def render_index(infos) -> str:
    """docs/cards/README.md: every card by family."""
    from harness.metrics.base import GROUPS
    from harness.report.markdown import arrow

    lines = ["# Metric cards", "",
             "One card per metric, generated from its `@metric` declaration (`synthbench metrics --cards "
             "docs/cards`); `tests/unit/report/test_cards.py` fails when a card is missing or stale. The "
             "scorecard's columns and their rule are in [../scorecard.md](../scorecard.md).", ""]
    by: dict[str, list] = {}
    for i in infos:
        by.setdefault(i.group, []).append(i)
    for g in [g for g in GROUPS if g in by] + [g for g in by if g not in GROUPS]:
        title, dim = GROUPS.get(g, (g, "descriptive"))
        lines += [f"## {title} ({dim})", ""]
        lines += [f"- [`{i.name}`]({card_file(i.name)}) {arrow(i.higher_is_better)} {i.summary}" for i in by[g]]
        lines.append("")
    return "\n".join(lines)


def expected_cards() -> dict[str, str]:
    """{file name: text} of every card and the index, from the registered declarations."""
    from harness import metrics as registry

    infos = [registry.info(n) for n in registry.names()]
    out = {card_file(i.name): render_card(i) for i in infos}
    out["README.md"] = render_index(infos)
    return out


def write_cards(folder: Path) -> list[Path]:
    """Write every card (and the index) into ``folder``; remove cards of metrics no longer declared."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    want = expected_cards()
    for old in folder.glob("*.md"):
        if old.name not in want:
            old.unlink()
    paths = []
    for name, text in want.items():
        p = folder / name
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths
