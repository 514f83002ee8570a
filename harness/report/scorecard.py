"""The scorecard: one row per candidate, one column per evaluation dimension, each cell a verdict.

A pure function of the result records and the run's metadata: it reads each record's value, 95% interval
and direction, and never recomputes. The columns and their rule are declared once, beside the metric
groups, in :mod:`harness.metrics.base` (``SCORECARD``, ``SCORECARD_RULE``); docs/scorecard.md explains
them. In short: two datasets differ on a metric only when their 95% intervals do not overlap (a
conservative test: no interval, no test), a family's metrics vote by the sign of their sum, and a
dimension's families vote the same way.

>>> from harness.types import Result, Signature
>>> def rec(ds, m, v, ci):
...     return Result(ds, m, v, ci, True, Signature("0", m, {}, {}, None, 0))
>>> card = scorecard([rec("a", "lexical/distinct-2", 0.6, (0.55, 0.65)),
...                   rec("b", "lexical/distinct-2", 0.4, (0.35, 0.45))], {})
>>> card.cells["a"]["diversity"].verdict, card.cells["b"]["diversity"].verdict
('better', 'worse')
"""

from __future__ import annotations

from dataclasses import dataclass, field

BETTER, WORSE, MIXED, SAME = "better", "worse", "mixed", "not distinguishable"


@dataclass
class Cell:
    """One candidate's verdict on one dimension, with the datasets it beats, loses to and ties with."""

    verdict: str
    beats: list[str] = field(default_factory=list)
    beaten_by: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    tested: bool = False  # at least one metric had intervals on both sides of some pair


@dataclass
class Pair:
    """The outcome of candidate ``a`` against ``b`` on one dimension: +1 a wins, -1 b wins, 0 neither;
    ``separating`` lists (metric, +1/-1) for every metric whose intervals do not overlap."""

    a: str
    b: str
    outcome: int
    separating: list[tuple[str, int]] = field(default_factory=list)
    families: dict[str, int] = field(default_factory=dict)


@dataclass
class Scorecard:
    dimensions: list[str]                      # the columns shown (dimensions with a computed metric)
    titles: dict[str, str]
    covers: dict[str, str]
    candidates: list[str]
    against: str                               # "candidates" or "reference"
    reference: str | None
    cells: dict[str, dict[str, Cell]]          # candidate -> dimension -> cell
    pairs: dict[str, list[Pair]]               # dimension -> pairs (each unordered pair once)
    counted: dict[str, list[str]]              # dimension -> metrics that entered the verdict
    no_interval: dict[str, list[str]]          # dimension -> counted metrics without an interval (no test)
    not_fair: dict[str, list[str]]             # dimension -> size-dependent metrics left out (sizes differ)
    missing: list[str]                         # dimensions with no computed metric
    rule: str
    records: dict = field(default_factory=dict)  # (dataset, metric) -> Result, for the notes

    @property
    def empty(self) -> bool:
        return not self.candidates or not self.dimensions


def _dimension(metric: str) -> str:
    from harness.metrics.base import GROUPS

    return GROUPS.get(metric.split("/", 1)[0], ("", "descriptive"))[1]


def _outcome(ra, rb) -> int:
    """+1 when a's 95% interval lies wholly on the better side of b's, -1 the mirror, 0 otherwise."""
    if ra.ci is None or rb.ci is None or ra.value is None or rb.value is None:
        return 0
    (alo, ahi), (blo, bhi) = ra.ci, rb.ci
    if ra.higher_is_better:
        return 1 if alo > bhi else -1 if ahi < blo else 0
    return 1 if ahi < blo else -1 if alo > bhi else 0


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def scorecard(results, meta: dict) -> Scorecard:
    """The scorecard of a run's records (see the module docstring and ``SCORECARD_RULE``)."""
    from harness.metrics.base import SCORECARD, SCORECARD_RULE

    records = {(r.dataset, r.metric): r for r in results if r.value is not None}
    order = [c["name"] for c in meta.get("candidates", [])]
    present = list(dict.fromkeys(r.dataset for r in results if r.role == "candidate"))
    candidates = [c for c in order if c in present] + [c for c in present if c not in order]
    ref = next((r.dataset for r in results if r.role == "reference"), None)
    against = "candidates" if len(candidates) > 1 or ref is None else "reference"
    others = (lambda c: [o for o in candidates if o != c]) if against == "candidates" else (lambda c: [ref])
    sizes = {d.get("name"): d.get("rows") for d in [meta.get("reference") or {}] + meta.get("candidates", [])}
    compared = candidates + ([ref] if against == "reference" else [])
    one_size = bool(meta.get("sample_size")) or len({sizes.get(d) for d in compared}) <= 1
    size_dep = set(meta.get("size_dependent") or [])

    first: dict = {}
    for r in records.values():
        first.setdefault(r.metric, r)
    counted: dict[str, list[str]] = {d: [] for d in SCORECARD}
    not_fair: dict[str, list[str]] = {d: [] for d in SCORECARD}
    for m in dict.fromkeys(r.metric for r in results):
        dim = _dimension(m)
        if dim not in SCORECARD:
            continue
        r0 = first.get(m)
        if r0 is None or r0.higher_is_better is None:
            continue
        if m in size_dep and not one_size:
            not_fair[dim].append(m)
            continue
        if not any((c, m) in records for c in candidates):
            continue
        counted[dim].append(m)
    dims = [d for d in SCORECARD if counted[d] or not_fair[d]]
    missing = [d for d in SCORECARD if d not in dims]

    def pair(a: str, b: str, dim: str) -> Pair:
        fam: dict[str, int] = {}
        sep = []
        for m in counted[dim]:
            ra, rb = records.get((a, m)), records.get((b, m))
            if ra is None or rb is None:
                continue
            o = _outcome(ra, rb)
            g = m.split("/", 1)[0]
            fam[g] = fam.get(g, 0) + o
            if o:
                sep.append((m, o))
        fam = {g: _sign(v) for g, v in fam.items()}
        return Pair(a, b, _sign(sum(fam.values())), sep, fam)

    def tested(a: str, b: str, dim: str) -> bool:
        return any(records.get((a, m)) is not None and records.get((b, m)) is not None
                   and records[(a, m)].ci is not None and records[(b, m)].ci is not None for m in counted[dim])

    cells: dict[str, dict[str, Cell]] = {c: {} for c in candidates}
    pairs: dict[str, list[Pair]] = {d: [] for d in dims}
    for dim in dims:
        seen = set()
        for c in candidates:
            cell = Cell(SAME)
            for o in others(c):
                p = pair(c, o, dim)
                cell.tested = cell.tested or tested(c, o, dim)
                (cell.beats if p.outcome > 0 else cell.beaten_by if p.outcome < 0 else cell.ties).append(o)
                key = frozenset((c, o))
                if key not in seen:
                    seen.add(key)
                    pairs[dim].append(p)
            cell.verdict = (MIXED if cell.beats and cell.beaten_by else BETTER if cell.beats
                            else WORSE if cell.beaten_by else SAME)
            cells[c][dim] = cell
    no_interval = {d: [m for m in counted[d] if not any(
        records.get((c, m)) is not None and records[(c, m)].ci is not None for c in candidates)] for d in dims}
    return Scorecard(dimensions=dims, titles={d: SCORECARD[d][0] for d in SCORECARD},
                     covers={d: SCORECARD[d][1] for d in SCORECARD}, candidates=candidates, against=against,
                     reference=ref, cells=cells, pairs=pairs, counted={d: counted[d] for d in dims},
                     no_interval=no_interval, not_fair={d: not_fair[d] for d in dims}, missing=missing,
                     rule=SCORECARD_RULE, records=records)


# ----------------------------------------------------------------------------- text shared by renderers

def cell_text(cell: Cell, names: bool = True, limit: int = 3) -> str:
    """'better than crowd', 'worse than a, b', 'mixed: better than a; worse than b', 'not distinguishable';
    counts instead of names beyond ``limit`` names (or with ``names=False``)."""
    def who(xs):
        if names and len(xs) <= limit:
            return ", ".join(xs)
        return f"{len(xs)} of {len(cell.beats) + len(cell.beaten_by) + len(cell.ties)}"

    if cell.verdict == BETTER:
        return f"better than {who(cell.beats)}"
    if cell.verdict == WORSE:
        return f"worse than {who(cell.beaten_by)}"
    if cell.verdict == MIXED:
        return f"mixed: better than {who(cell.beats)}; worse than {who(cell.beaten_by)}"
    return SAME if cell.tested else f"{SAME} (no interval)"


def short_text(cell: Cell) -> str:
    """The terminal's cell: 'better 2/2', 'worse 1/2', 'mixed +1 -1', 'not distinguishable'."""
    k = len(cell.beats) + len(cell.beaten_by) + len(cell.ties)
    if cell.verdict == BETTER:
        return f"better {len(cell.beats)}/{k}" if k > 1 else "better"
    if cell.verdict == WORSE:
        return f"worse {len(cell.beaten_by)}/{k}" if k > 1 else "worse"
    if cell.verdict == MIXED:
        return f"mixed +{len(cell.beats)} -{len(cell.beaten_by)}"
    return SAME if cell.tested else "no interval"


def against_text(card: Scorecard) -> str:
    if card.against == "reference":
        return f"against the reference ({card.reference}), on the metrics the reference has"
    return "against the other candidates"


def missing_line(card: Scorecard) -> str | None:
    """The one line naming the dimensions no metric of this run measured."""
    if not card.missing:
        return None
    return ("Not measured (no metric of theirs computed in this run): "
            + "; ".join(f"{card.titles[d].lower()} ({card.covers[d]})" for d in card.missing) + ".")


def evidence(card: Scorecard, dim: str, fmt, limit: int = 4) -> list[str]:
    """Plain-text lines behind one dimension's column: the metrics counted and, per pair that differs,
    the metrics whose intervals do not overlap, with both values and intervals."""
    def show(d, m):
        r = card.records.get((d, m))
        if r is None:
            return "–"
        bound = {"above": "≥ ", "below": "≤ "}.get((r.details or {}).get("censored") or "", "")
        return bound + fmt(r.value) + (f" [{fmt(r.ci[0])}, {fmt(r.ci[1])}]" if r.ci is not None else "")

    out = []
    for p in card.pairs.get(dim, []):
        if not p.separating:
            continue
        for side, sgn in ((p.a, 1), (p.b, -1)):
            ms = [m for m, o in p.separating if o == sgn]
            if not ms:
                continue
            other = p.b if side == p.a else p.a
            shown = "; ".join(f"{m} {show(side, m)} vs {show(other, m)}" for m in ms[:limit])
            more = f"; and {len(ms) - limit} more" if len(ms) > limit else ""
            out.append(f"{side} over {other}: {shown}{more}")
    return out


def verdict_counts(card: Scorecard, dim: str) -> str:
    """'6 metrics counted (2 without an interval)'."""
    n, ni = len(card.counted[dim]), len(card.no_interval[dim])
    s = f"{n} metric{'s' if n != 1 else ''} counted"
    if ni:
        s += f" ({ni} without an interval: no test)"
    if card.not_fair[dim]:
        s += f"; {len(card.not_fair[dim])} size-dependent left out (the datasets differ in size)"
    return s
