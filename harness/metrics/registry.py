"""The metric registry, derived from the ``@metric`` declarations: nothing here names a metric.

The metric modules under ``harness/metrics/direct/`` and ``harness/metrics/indirect/`` are found by listing
those packages and imported on first use (they import numpy and friends only inside functions), so
``import harness`` and ``synthbench --help`` stay fast. Adding a metric touches its module only.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache

from harness.metrics.base import _DECLARED, GROUPS, MetricInfo

#: the family modules in display order within a group (modules not listed follow, by name)
MODULE_ORDER = ("lexical", "homogenization", "duplicates", "semantic", "surface", "distance", "faithfulness",
                "utility", "fluency", "format", "instruction", "judge")
PACKAGES = ("harness.metrics.direct", "harness.metrics.indirect")


_EXTRA: dict[str, MetricInfo] = {}  # metrics added at run time (register(), registered())
_STATE: dict = {"key": None, "catalogue": None, "generation": 0}


def _catalogue() -> dict[str, MetricInfo]:
    key = (len(_DECLARED), _STATE["generation"])
    if _STATE["key"] != key or _STATE["catalogue"] is None:
        _STATE["catalogue"] = _build()
        _STATE["key"] = (len(_DECLARED), _STATE["generation"])
    return _STATE["catalogue"]


@cache
def _modules() -> tuple[str, ...]:
    mods = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        mods += [f"{pkg_name}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    rank = {m: i for i, m in enumerate(MODULE_ORDER)}
    mods.sort(key=lambda m: (rank.get(m.rsplit(".", 1)[1], len(rank)), m))
    for m in mods:
        importlib.import_module(m)
    return tuple(mods)


def _build() -> dict[str, MetricInfo]:
    mods = _modules()
    mod_rank = {m: i for i, m in enumerate(mods)}
    group_rank = {g: i for i, g in enumerate(GROUPS)}
    seq = {name: i for i, name in enumerate(_DECLARED)}
    infos = list({**_DECLARED, **_EXTRA}.values())  # the harness's modules, then any a user declared
    first: dict[str, int] = {}  # a sub-family (utility/tfidf-lr/...) stays together, in order of first declaration
    seq = {**seq, **{n: len(seq) + k for k, n in enumerate(_EXTRA)}}
    for i in infos:
        first.setdefault(i.name.rsplit("/", 1)[0], seq[i.name])
    infos.sort(key=lambda i: (i.module not in mod_rank, group_rank.get(i.group, len(group_rank)),
                              mod_rank.get(i.module, len(mod_rank)),
                              first[i.name.rsplit("/", 1)[0]], seq[i.name]))
    return {i.name: i for i in infos}


def register(*fns) -> None:
    """Add metrics declared with ``@metric(..., register=False)`` (a notebook's or a plug-in's own metrics).

    A metric declared with ``register=True`` (the default) is registered when its module is imported.
    """
    for fn in fns:
        for d in fn.declarations:
            _EXTRA[d.name] = d
    _STATE["generation"] += 1


def unregister(*names: str) -> None:
    for n in names:
        _EXTRA.pop(n, None)
    _STATE["generation"] += 1


@contextmanager
def registered(*fns):
    """Metrics added for the length of a ``with`` block (tests)."""
    before = dict(_EXTRA)
    register(*fns)
    try:
        yield
    finally:
        _EXTRA.clear()
        _EXTRA.update(before)
        _STATE["generation"] += 1


def declarations() -> dict[str, MetricInfo]:
    """Every registered metric's declaration, by name, in display order."""
    return dict(_catalogue())


@dataclass(frozen=True)
class MetricSpec:
    """A metric to compute: its declaration and the arguments it runs with (defaults plus overrides)."""

    name: str
    target: str
    args: dict = field(default_factory=dict)
    decl: MetricInfo | None = field(default=None, compare=False, repr=False)  # a declaration made at run time

    @property
    def fn(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def declaration(self) -> MetricInfo:
        if self.decl is not None:
            return self.decl
        cat = _catalogue()
        if self.name in cat:
            return cat[self.name]
        decls = getattr(self.fn, "declarations", ())  # a metric made for one run and never registered
        for d in decls:
            if d.name == self.name:
                return d
        if decls:
            return replace(decls[0], name=self.name)
        raise KeyError(f"{self.name}: {self.target} is not declared with @metric")

    @property
    def info(self) -> MetricInfo:
        """The declaration, with the needs that follow from these arguments."""
        return self.declaration.for_args(self.args)

    def __call__(self, ctx):
        return self.fn(ctx, **self.args)


def get(name: str) -> MetricSpec:
    info = _catalogue()[name]
    return MetricSpec(name, info.target, dict(info.args))


def info(name: str) -> MetricInfo:
    return _catalogue()[name]


def names() -> list[str]:
    return list(_catalogue())


def is_metric(name: str) -> bool:
    return name in _catalogue()


def is_opt_in(name: str) -> bool:
    i = _catalogue().get(name)
    return bool(i and i.opt_in)


def groups() -> list[str]:
    seen: list[str] = []
    for n in _catalogue():
        g = n.split("/", 1)[0]
        if g not in seen:
            seen.append(g)
    return seen


def select(patterns: list[str] | None) -> list[MetricSpec]:
    """Expand names, groups ('lexical'), prefixes ('utility/tfidf-lr') and globs ('lexical/distinct-*') into specs.

    With no patterns: every metric that is not opt-in. A group ('utility') leaves the opt-in ones out too;
    a prefix ('utility/minilm-ft') or glob with a slash names them (a group whose members are all opt-in,
    such as 'fluency', names them all).
    """
    from harness.errors import UserError

    cat = _catalogue()
    if not patterns:
        return [get(n) for n, i in cat.items() if not i.opt_in]
    chosen: list[str] = []
    for pat in patterns:
        pat = pat.strip()
        if not pat:
            continue
        hits = [n for n in cat if n == pat or n.split("/")[0] == pat or n.startswith(pat.rstrip("/") + "/")
                or fnmatch.fnmatch(n, pat)]
        if "/" not in pat:
            hits = [n for n in hits if n == pat or not cat[n].opt_in] or hits
        if not hits:
            raise UserError(f"--metrics: no metric or group named '{pat}'",
                            f"run 'synthbench metrics' for the list (groups: {', '.join(sorted(groups()))})")
        chosen += [h for h in hits if h not in chosen]
    return [get(n) for n in cat if n in chosen]


def markdown_table() -> str:
    """docs/metrics.md: the metric table, derived from the declarations (``synthbench metrics --markdown``)."""
    from harness.report.markdown import arrow

    lines = ["# Metrics", "",
             "Generated from the `@metric` declarations by `synthbench metrics --markdown > docs/metrics.md`; "
             "a test fails when this file and the declarations disagree. Each metric's docstring gives its "
             "meaning, range, direction and the paper it comes from (`synthbench metrics` lists them; "
             "`harness.metrics()` returns the catalogue as a DataFrame).", "",
             "↑ higher is better, ↓ lower is better, · no direction (compare with the reference). *size-dependent*: "
             "the value moves with the number of rows (compare at one `--sample-size`; `--repeats` averages "
             "several samples). *needs*: `reference` is the real data a candidate is compared with (for "
             "`utility/`, the real training data); `test` is a real held-out split (`--test`, or `--holdout`). "
             "*version* enters every result's signature; *tolerance* is the metric's stated determinism "
             "(exact: bit-identical on one machine; a number: the relative tolerance it may move by with BLAS "
             "threads or hardware). Opt-in metrics run only when named.", "",
             "| metric | meaning | range | better | size-dependent | needs | version | tolerance |",
             "|---|---|---|:-:|:-:|---|:-:|:-:|"]
    for name, i in _catalogue().items():
        opt = " (opt-in)" if i.opt_in else ""
        lines.append(f"| `{name}`{opt} | {i.summary.replace('|', '/')} | {i.range} | {arrow(i.higher_is_better)} | "
                     f"{'yes' if i.size_dependent else ''} | {', '.join(i.needs)} | {i.version} | "
                     f"{f'{i.tolerance:g}' if i.tolerance else 'exact'} |")
    return "\n".join(lines) + "\n"
