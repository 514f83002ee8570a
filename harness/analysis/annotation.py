"""A human-evaluation loop: blinded annotation files out, ratings back in, agreement and human scores.

``synthbench annotate export`` draws a seeded sample of rows from every dataset of a finished run (or of
a suite), stratified by label where the data has labels, reference rows included as a control, and
writes them **blinded**: random item ids, one shuffled order across datasets, no dataset names, rows or
sources, as a CSV to fill in, a Label Studio project (tasks JSON and labeling config) and an Argilla v2
dataset (settings JSON and records JSONL). The questions are the LLM judge's rubrics
(``harness/rubrics/*.yaml``: the prompt's question and its verdicts), so that humans and the judge
answer the same question on the same scale. What maps an item back to its dataset and row is one
private key file, written beside the annotator files and never inside them.

``synthbench annotate import`` reads the ratings (CSV files, Label Studio JSON exports), validates every
rating against the rubric's scale, maps items back through the key -- after checking that each key entry
still points at the same row text in the same data (a shuffled, edited or foreign key is refused) -- and
computes:

- **inter-annotator agreement** per question: Krippendorff's alpha (Krippendorff, "Content Analysis: An
  Introduction to Its Methodology", 2004; "Computing Krippendorff's Alpha-Reliability", 2011) through the
  ``krippendorff`` package, ordinal for ordered scales (ratings, and choices whose rubric scores give three
  or more distinct levels, e.g. yes 1 / partly 0.5 / no 0), nominal otherwise (for two categories the two
  coincide), with a percentile bootstrap interval over items;
- **human scores**: per dataset and question, the mean over items of each item's mean rating score (the
  rubric's score of each verdict, in [0, 1]), with a percentile bootstrap interval over items, written as
  ordinary result records ``human/<question>`` into the run's ``results.jsonl``;
- **the judge and the metrics against the humans**: Spearman's rho across candidates between each
  stored metric (the LLM judge's ``judge/<question>`` first) and the human score, with a Fisher-z interval
  (Bonett & Wright 2000); and, per item, the judge's verdict against the humans' majority (agreement,
  Cohen's kappa for two-level scales, Spearman's rho) wherever the run's row flags say what the judge
  answered on each row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.types import canonical_json, sha256_hex

KEY_FORMAT = 1
#: the private key's file name: it maps items to datasets, so it must never reach an annotator
KEY_NAME = "PRIVATE-key.do-not-send-to-annotators.json"
#: the folder of files meant for annotators (nothing in it names a dataset)
SEND_DIR = "for-annotators"
CSV_NAME = "items.csv"
GUIDE_NAME = "GUIDELINES.md"
LS_TASKS = "label-studio/tasks.json"
LS_CONFIG = "label-studio/config.xml"
ARGILLA_SETTINGS = "argilla/settings.json"
ARGILLA_RECORDS = "argilla/records.jsonl"
REPORT_MD = "annotation.md"
REPORT_JSON = "annotation.json"
METRIC_PREFIX = "human/"
METRIC_VERSION = 1
N_BOOT = 1000
SHOWN = {"classification": ("text", "label"), "instruction": ("instruction", "input", "output")}
#: rows the judge metrics judge (harness/metrics/direct/judge.py): instruction rubrics need an output, the
#: factual-consistency rubric an input too; the same rows are offered to humans
NEEDS_INPUT = frozenset({"factual-consistency"})
#: the judge metrics that score rows with a rubric, and the salt their seeded row sample uses
#: (``_pick(ctx, n, max_rows, salt)`` in harness/metrics/direct/judge.py)
ROW_JUDGES = {"judge/label-correctness": "judge-label", "judge/instruction-following": None,
              "judge/factual-consistency": None}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
#: Krippendorff (2004, p. 241): rely on alpha >= 0.800; tentative conclusions from 0.667 up
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.800, 0.667


# ----------------------------------------------------------------------------- questions (rubrics)

@dataclass(frozen=True)
class Question:
    """One question of a study: a rubric's question with its verdicts, as humans answer it."""

    name: str              # the rubric's name, e.g. label-correctness (the metric is human/<name>)
    rubric: str            # the shipped rubric's file name (label_correctness) or the YAML path given
    rubric_version: int
    rubric_sha256: str
    task: str              # classification | instruction
    title: str             # the question as shown to annotators
    choices: tuple[str, ...]  # the allowed answers, best first
    scores: dict           # answer -> score in [0, 1]
    kind: str              # "rating" (answers 1..K) or "choices"
    level: str             # Krippendorff level: "ordinal" or "nominal"

    def describe(self) -> dict:
        return {"name": self.name, "rubric": self.rubric, "rubric_version": self.rubric_version,
                "rubric_sha256": self.rubric_sha256, "task": self.task, "title": self.title,
                "choices": list(self.choices), "scores": dict(self.scores), "kind": self.kind, "level": self.level}

    @classmethod
    def from_dict(cls, d: dict) -> Question:
        return cls(name=d["name"], rubric=d["rubric"], rubric_version=int(d["rubric_version"]),
                   rubric_sha256=d["rubric_sha256"], task=d["task"], title=d["title"], choices=tuple(d["choices"]),
                   scores={k: float(v) for k, v in d["scores"].items()}, kind=d["kind"], level=d["level"])

    def parse(self, value) -> str | None:
        """The canonical answer of a rating as written (case and surrounding space ignored; a rating scale
        also takes whole numbers), or None when it is not on the scale."""
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        s = str(value).strip().lower()
        if self.kind == "rating" and re.fullmatch(r"\d+(\.0+)?", s):
            s = str(int(float(s)))
        return s if s in self.scores else None


def _title(prompt: str) -> str:
    """The question a rubric's prompt asks: its lines without a {field} and other than 'Answer:'."""
    lines = [ln.strip() for ln in prompt.splitlines()]
    keep = [ln for ln in lines if ln and "{" not in ln and ln.rstrip(":").lower() != "answer"]
    return " ".join(keep) or "Rate this item."


def load_question(spec: str) -> Question:
    """A rubric as a question: ``spec`` names a shipped rubric (``harness/rubrics/<spec>.yaml``) or is the
    path to a rubric YAML file (same format). Pairwise rubrics are refused (they rate two answers)."""
    from harness.metrics.direct.judge import load_rubric, rubric_from_text

    path = Path(spec)
    try:
        if spec.endswith((".yaml", ".yml")) or path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise UserError(f"--rubric {spec}: cannot be read ({e.strerror})", "give a rubric name or a YAML file") from None
            rub = rubric_from_text(text, str(path))
            rubric = str(path.resolve())
        else:
            rub = load_rubric(spec)
            rubric = spec
    except ValueError as e:
        from harness.metrics.direct.judge import rubric_names

        raise UserError(f"--rubric {spec}: {e}", f"give a shipped rubric ({', '.join(n for n in rubric_names() if n != 'pairwise_preference')}) "
                        "or a rubric YAML file") from None
    if rub.task not in SHOWN:
        raise UserError(f"--rubric {spec}: a {rub.task} rubric (it compares two answers)",
                        "give a rubric that rates one row: label_correctness, instruction_following or factual_consistency")
    if not _NAME.match(rub.name):
        raise UserError(f"--rubric {spec}: its name '{rub.name}' is not a short lower-case name",
                        "name it with letters, digits and '-' (it becomes the metric human/<name>)")
    choices = tuple(sorted(rub.verdicts, key=lambda v: (-rub.verdicts[v], v)))
    ints = sorted(int(v) for v in choices if v.isdigit())
    kind = "rating" if len(ints) == len(choices) and ints == list(range(1, len(ints) + 1)) else "choices"
    if kind == "rating":
        choices = tuple(str(i) for i in ints)
    distinct = len(set(rub.verdicts.values()))
    level = "ordinal" if distinct == len(choices) and distinct >= 3 else "nominal"
    return Question(name=rub.name, rubric=rubric, rubric_version=rub.version, rubric_sha256=rub.sha256[:16],
                    task=rub.task, title=_title(rub.prompt), choices=choices, scores=dict(rub.verdicts), kind=kind,
                    level=level)


def default_rubric(kind: str) -> str:
    if kind == "classification":
        return "label_correctness"
    if kind == "instruction":
        return "instruction_following"
    raise UserError(f"no shipped rubric rates {kind} data (it has neither labels nor instruction fields)",
                    "give --rubric FILE.yaml, a rubric of task classification or instruction")


# ----------------------------------------------------------------------------- the data of a study

@dataclass
class Dataset:
    name: str
    role: str              # candidate | reference
    corpus: object         # the Corpus as the run's metrics saw it (sample included)
    info: dict             # its run.json entry (or the same description for a suite)


@dataclass
class Source:
    """Where a study's rows come from: a finished run (its folder) or a suite file."""

    kind: str              # "run" | "suite"
    path: Path
    name: str
    meta: dict             # run.json (a suite: the settings the run would use)
    datasets: list[Dataset] = field(default_factory=list)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve()), "name": self.name,
                "seed": self.meta.get("seed"), "sample_size": self.meta.get("sample_size")}

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)


def open_source(spec, names=None) -> Source:
    """The datasets of a run folder (``results.jsonl`` + ``run.json``) or a suite YAML, as evaluated: a
    run's rows are reloaded the way ``synthbench compare`` reloads them and checked against the
    fingerprints in run.json; a suite's are loaded and sampled as ``synthbench run`` would."""
    p = Path(str(spec)).expanduser()
    if p.is_dir():
        src = _open_run(p, names)
    elif p.suffix.lower() in (".yaml", ".yml"):
        src = _open_suite(p, names)
    else:
        raise UserError(f"{spec}: neither a results folder nor a suite file",
                        "give a folder written by 'synthbench run' or 'synthbench eval --out', or a suite YAML")
    if names:
        missing = [n for n in names if src.dataset(n) is None]
        if missing:
            have = ", ".join(d.name for d in src.datasets)
            raise UserError(f"{spec}: no dataset named {', '.join(missing)}", f"available: {have}")
    return src


def _open_run(folder: Path, names) -> Source:
    from harness.analysis.comparison import Side, evaluated_rows
    from harness.run.store import read_run_meta

    meta = read_run_meta(folder)
    entries = ([meta["reference"]] if meta.get("reference") else []) + list(meta.get("candidates") or [])
    name = (meta.get("suite") or {}).get("name") or folder.name
    src = Source("run", folder, name, meta)
    for e in entries:
        if names and e["name"] not in names:
            continue
        side = Side("A", f"{folder}:{e['name']}", folder, e["name"], meta, e, {})
        corpus, _, _ = evaluated_rows(side, want_reference=False, want_test=False)
        src.datasets.append(Dataset(e["name"], e.get("role", "candidate"), corpus, e))
    return src


def _open_suite(path: Path, names) -> Source:
    from harness.api import describe, resolve_sample_size
    from harness.data.schema import resolve_for_candidates
    from harness.data.suite import load_dataset, load_suite
    from harness.run.runner import RunConfig, primary

    suite = load_suite(path)
    reference = load_dataset(suite.reference, suite.normalize, schema=suite.schema, strict=suite.strict)
    cand_schema = resolve_for_candidates(suite.schema, reference)
    candidates = [load_dataset(c, suite.normalize, schema=cand_schema, strict=suite.strict) for c in suite.candidates]
    if suite.holdout:
        reference, _ = reference.holdout(suite.holdout, suite.seed)
    size = resolve_sample_size(suite.sample_size, candidates, reference=reference)
    cfg = RunConfig(seed=suite.seed, sample_size=size)
    meta = {"seed": suite.seed, "sample_size": size, "suite": {"name": suite.name, "file": str(path)}}
    src = Source("suite", path, suite.name, meta)
    for corpus, role in [(reference, "reference")] + [(c, "candidate") for c in candidates]:
        if names and corpus.name not in names:
            continue
        corpus = primary(corpus, cfg)
        src.datasets.append(Dataset(corpus.name, role, corpus, describe(corpus, role)))
    meta["reference"] = next((d.info for d in src.datasets if d.role == "reference"), None)
    meta["candidates"] = [d.info for d in src.datasets if d.role == "candidate"]
    return src


# ----------------------------------------------------------------------------- items

def shown_fields(corpus, i: int, questions) -> dict[str, str]:
    """What annotators see of row ``i``: text and label (classification rubrics), instruction, input and
    output (instruction rubrics)."""
    out: dict[str, str] = {}
    for q in questions:
        for f in SHOWN[q.task]:
            if f in out:
                continue
            if f == "text":
                out[f] = corpus.texts[i]
            elif f == "label":
                out[f] = str(corpus.labels[i])
            else:
                vals = corpus.fields.get(f)
                out[f] = vals[i] if vals is not None else ""
    return out


def row_fingerprint(shown: dict[str, str]) -> str:
    """sha256 of the fields an annotator sees of a row (the key's row fingerprint)."""
    return sha256_hex(canonical_json(shown))


def item_check(item_id: str, dataset_fp: str, row: int, row_fp: str) -> str:
    """The seal of one key entry: an id moved to another entry (a shuffled key) no longer matches."""
    return sha256_hex("synthbench-annotation-item", item_id, dataset_fp, str(row), row_fp)[:16]


def _eligible(ds: Dataset, questions) -> list[int]:
    """Rows every question can be asked about (the rows the judge metrics judge)."""
    c = ds.corpus
    n = len(c.texts)
    ok = [True] * n
    for q in questions:
        if q.task == "classification":
            if c.labels is None:
                raise UserError(f"{ds.name}: has no labels, and the question {q.name} rates a row's label",
                                "give a rubric of task instruction, or name the label column of the data")
        else:
            if "instruction" not in c.fields or "output" not in c.fields:
                raise UserError(f"{ds.name}: is not instruction data, and the question {q.name} rates a response",
                                "give a classification rubric (label_correctness) for labelled data")
            out = c.fields["output"]
            inp = c.fields.get("input") or ("",) * n
            for i in range(n):
                if not out[i].strip() or (q.name in NEEDS_INPUT and not inp[i].strip()):
                    ok[i] = False
    return [i for i in range(n) if ok[i]]


def stratified_sample(labels, positions: list[int], k: int, rng) -> list[int]:
    """``k`` of ``positions`` drawn without replacement, stratified by label with proportional allocation
    (largest remainders, ties broken at random), so the sample's label shares follow the data's and its
    mean estimates the dataset's mean; a simple random sample without labels. Sorted.

    >>> import numpy as np
    >>> s = stratified_sample(["a"] * 6 + ["b"] * 3 + ["c"], list(range(10)), 4, np.random.default_rng(0))
    >>> [sum(i < 6 for i in s), sum(6 <= i < 9 for i in s), sum(i == 9 for i in s)]  # quotas 2.4, 1.2, 0.4
    [2, 1, 1]
    """
    import numpy as np

    n = len(positions)
    if k >= n:
        return sorted(positions)
    if labels is None:
        return sorted(int(positions[j]) for j in rng.choice(n, size=k, replace=False))
    groups: dict[str, list[int]] = {}
    for p in positions:
        groups.setdefault(str(labels[p]), []).append(p)
    keys = sorted(groups)
    quota = np.array([k * len(groups[g]) / n for g in keys])
    take = np.floor(quota).astype(int)
    rest = k - int(take.sum())
    if rest:
        frac = quota - take
        order = sorted(range(len(keys)), key=lambda j: (-frac[j], rng.random()))
        for j in order[:rest]:
            take[j] += 1
    out: list[int] = []
    for g, t in zip(keys, take):
        if t:
            rows = groups[g]
            out += [int(rows[j]) for j in rng.choice(len(rows), size=int(t), replace=False)]
    return sorted(out)


def draw_study(source: Source, questions, per_dataset: int, seed: int, include_reference: bool = True) -> dict:
    """The study: seeded, stratified items of every dataset, shuffled together, with fresh random ids.

    Returns the key (a JSON-ready dict, see :func:`write_study`) with each item's shown fields under
    ``_shown`` (dropped before the key is written)."""
    import secrets

    import numpy as np

    from harness import __version__

    rng = np.random.default_rng(seed)
    datasets = [d for d in source.datasets if include_reference or d.role != "reference"]
    if not datasets:
        raise UserError(f"{source.path}: no dataset to annotate", "leave out --no-reference, or name datasets that exist")
    items, described = [], []
    for ds in datasets:
        eligible = _eligible(ds, questions)
        rows = stratified_sample(ds.corpus.labels, eligible, per_dataset, rng)
        fp = ds.corpus.fingerprint
        src_fp, src_rows = ds.corpus.source_identity
        ids = ds.corpus.source_row_ids
        described.append({"name": ds.name, "role": ds.role, "fingerprint": fp, "rows": len(ds.corpus.texts),
                          "sample": ds.corpus.sample, "source_fingerprint": src_fp, "source_rows": src_rows,
                          "eligible": len(eligible), "items": len(rows),
                          "labels": sorted({str(x) for x in ds.corpus.labels}) if ds.corpus.labels is not None else None})
        for r in rows:
            shown = shown_fields(ds.corpus, r, questions)
            items.append({"dataset": ds.name, "dataset_fingerprint": fp, "row": int(r), "source_row": int(ids[r]),
                          "row_sha256": row_fingerprint(shown), "_shown": shown})
    order = rng.permutation(len(items))
    items = [items[int(j)] for j in order]
    used: set[str] = set()
    for it in items:
        while True:
            token = "i" + secrets.token_hex(5)
            if token not in used:
                used.add(token)
                break
        it["id"] = token
        it["check"] = item_check(token, it["dataset_fingerprint"], it["row"], it["row_sha256"])
    from datetime import datetime, timezone

    key = {"synthbench_annotation_key": KEY_FORMAT,
           "private": "PRIVATE: do not send this file to annotators. It maps every item to its dataset and row, "
                      "which unblinds the study.",
           "harness": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "source": source.describe(), "seed": seed, "per_dataset": per_dataset,
           "include_reference": include_reference,
           "questions": [q.describe() for q in questions], "datasets": described,
           "items": [{k: it[k] for k in ("id", "dataset", "dataset_fingerprint", "row", "source_row", "row_sha256",
                                         "check", "_shown")} for it in items]}
    key["fingerprint"] = key_fingerprint(key)
    return key


def key_fingerprint(key: dict) -> str:
    """sha256 over the key's questions, datasets and items (what every human/ record's signature names)."""
    items = [{k: v for k, v in it.items() if not k.startswith("_")} for it in key["items"]]
    return sha256_hex(canonical_json({"questions": key["questions"], "datasets": key["datasets"], "items": items}))


# ----------------------------------------------------------------------------- the files

def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow(r)
    return "\ufeff" + buf.getvalue()  # a BOM: spreadsheet programs then read the file as UTF-8


def _xml(s: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(s)


def label_studio_config(questions, fields: list[str]) -> str:
    """A Label Studio labeling config: the item's fields as Text, one Choices (or Rating) per question."""
    target = "output" if "output" in fields else "text"
    lines = ["<View>", '  <Header value="Item $item_id" size="6"/>']
    titles = {"text": "Text", "label": "Proposed label", "instruction": "Instruction", "input": "Input",
              "output": "Response"}
    for f in fields:
        lines.append(f"  <Header value={_xml(titles.get(f, f))} size=\"5\"/>")
        lines.append(f"  <Text name={_xml(f)} value=\"${f}\"/>")
    for q in questions:
        lines.append(f"  <Header value={_xml(q.title)}/>")
        if q.kind == "rating":
            lines.append(f"  <Rating name={_xml(q.name)} toName={_xml(target)} maxRating=\"{len(q.choices)}\" "
                         "icon=\"star\" required=\"true\"/>")
        else:
            lines.append(f"  <Choices name={_xml(q.name)} toName={_xml(target)} choice=\"single-radio\" "
                         "showInline=\"true\" required=\"true\">")
            lines += [f"    <Choice value={_xml(c)}/>" for c in q.choices]
            lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def argilla_settings(questions, fields: list[str], guidelines: str) -> dict:
    """Argilla v2 dataset settings as ``rg.Settings.to_json`` writes them (read with ``rg.Settings.from_json``):
    one TextField per shown field, a LabelQuestion (or RatingQuestion) per question."""
    titles = {"text": "Text", "label": "Proposed label", "instruction": "Instruction", "input": "Input",
              "output": "Response"}
    qs = []
    for q in questions:
        if q.kind == "rating":
            settings = {"type": "rating", "options": [{"value": int(c)} for c in sorted(q.choices, key=int)]}
        else:
            settings = {"type": "label_selection", "options": [{"value": c, "text": c} for c in q.choices],
                        "visible_options": len(q.choices) if len(q.choices) >= 3 else None}
        qs.append({"name": q.name, "title": q.title, "description": None, "required": True, "settings": settings})
    fs = [{"name": f, "title": titles.get(f, f), "required": f != "input", "description": None,
           "settings": {"type": "text", "use_markdown": False}} for f in fields]
    return {"guidelines": guidelines, "questions": qs, "fields": fs, "vectors": [], "metadata": [],
            "allow_extra_metadata": False}


def guidelines(questions, fields: list[str], n_items: int) -> str:
    lines = ["# Annotation guidelines", "",
             f"There are {n_items} items. Each has an id (keep it as it is) and the fields "
             + ", ".join(f"`{f}`" for f in fields) + ". Rate every item on its own; the order is random.", ""]
    for q in questions:
        lines += [f"## {q.name}", "", q.title, "",
                  "Answer with exactly one of: " + ", ".join(f"`{c}`" for c in q.choices)
                  + (" (a rating: higher is better)" if q.kind == "rating" else "") + ".", ""]
    lines += ["## Filling in items.csv", "",
              "Write your name (or an agreed code) in the `annotator` column, or keep one file per annotator and "
              "name it after them. Leave a cell empty when you cannot answer. Do not reorder or edit other "
              "columns: the text columns are checked when the ratings come back.", ""]
    return "\n".join(lines)


def write_study(key: dict, out, force: bool = False) -> list[Path]:
    """Write the annotator files into ``out/for-annotators/`` and the key beside them (``out/`` +
    :data:`KEY_NAME`), each atomically; ``out`` must be new, empty or a folder synthbench wrote."""
    from harness.run import outdir

    root = outdir.claim(out, force=force)
    questions = [Question.from_dict(q) for q in key["questions"]]
    fields: list[str] = []
    for q in questions:
        fields += [f for f in SHOWN[q.task] if f not in fields]
    items = key["items"]
    header = ["item_id", "annotator", *fields, *[q.name for q in questions]]
    rows = [header] + [[it["id"], "", *[it["_shown"][f] for f in fields], *[""] * len(questions)] for it in items]
    tasks = [{"data": {"item_id": it["id"], **{f: it["_shown"][f] for f in fields}}} for it in items]
    guide = guidelines(questions, fields, len(items))
    # Argilla: "id" is the record id; an empty optional field (an instruction without input) is left out
    records = [json.dumps({"id": it["id"], **{f: it["_shown"][f] for f in fields if it["_shown"][f] or f != "input"}},
                          ensure_ascii=False) for it in items]
    written = []

    def put(rel: str, text: str):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        outdir.write_text(path, text)
        written.append(path)

    put(f"{SEND_DIR}/{CSV_NAME}", _csv_text(rows))
    put(f"{SEND_DIR}/{GUIDE_NAME}", guide)
    put(f"{SEND_DIR}/{LS_TASKS}", json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    put(f"{SEND_DIR}/{LS_CONFIG}", label_studio_config(questions, fields))
    put(f"{SEND_DIR}/{ARGILLA_SETTINGS}", json.dumps(argilla_settings(questions, fields, guide), ensure_ascii=False,
                                                     indent=1) + "\n")
    put(f"{SEND_DIR}/{ARGILLA_RECORDS}", "\n".join(records) + "\n")
    private = dict(key, items=[{k: v for k, v in it.items() if not k.startswith("_")} for it in items])
    put(KEY_NAME, json.dumps(private, ensure_ascii=False, indent=1) + "\n")
    return written


# ----------------------------------------------------------------------------- the key, back

def read_key(path) -> dict:
    """The key file of an export, validated (one line naming the file when it is not one)."""
    path = Path(path)
    bad = UserError(f"{path}: not a synthbench annotation key", f"give the {KEY_NAME} that 'synthbench annotate export' wrote")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found", f"give the {KEY_NAME} that 'synthbench annotate export' wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise bad from None
    if not isinstance(key, dict) or "synthbench_annotation_key" not in key:
        raise bad
    if key["synthbench_annotation_key"] > KEY_FORMAT:
        raise UserError(f"{path}: written by a newer synthbench (key format {key['synthbench_annotation_key']})",
                        "upgrade synthbench")
    try:
        for q in key["questions"]:
            Question.from_dict(q)
        for it in key["items"]:
            (it["id"], it["dataset"], it["dataset_fingerprint"], int(it["row"]), it["row_sha256"], it["check"])
        {d["name"]: d["fingerprint"] for d in key["datasets"]}
    except (KeyError, TypeError, ValueError):
        raise bad from None
    if key.get("fingerprint") != key_fingerprint(key):
        raise UserError(f"{path}: the key was edited after export (its fingerprint does not match its items)",
                        "use the key file exactly as 'synthbench annotate export' wrote it")
    return key


def check_key(key: dict, source: Source, path) -> dict[str, dict[str, str]]:
    """Check that every key entry points at the same row text in the same data: the datasets' fingerprints,
    each entry's row fingerprint and its seal. Returns item id -> the fields annotators saw."""
    questions = [Question.from_dict(q) for q in key["questions"]]
    for d in key["datasets"]:
        ds = source.dataset(d["name"])
        if ds is None:
            raise UserError(f"{path}: names dataset '{d['name']}', which {source.path} does not hold",
                            "import against the run (or suite) the study was exported from (--source)")
        if ds.corpus.fingerprint != d["fingerprint"]:
            raise UserError(f"{path}: dataset '{d['name']}' has changed since the export (fingerprint "
                            f"{ds.corpus.fingerprint[:12]}, the key says {d['fingerprint'][:12]})",
                            "restore the data the study was exported from, or export a new study")
    shown: dict[str, dict[str, str]] = {}
    for n, it in enumerate(key["items"], 1):
        ds = source.dataset(it["dataset"])
        row = int(it["row"])
        if ds is None or not 0 <= row < len(ds.corpus.texts) or it["dataset_fingerprint"] != ds.corpus.fingerprint:
            raise UserError(f"{path}: item {it['id']} (entry {n}) points at no row of the data",
                            "use the key file written by the same 'synthbench annotate export'")
        s = shown_fields(ds.corpus, row, questions)
        if row_fingerprint(s) != it["row_sha256"] or it["check"] != item_check(it["id"], it["dataset_fingerprint"], row,
                                                                             it["row_sha256"]):
            raise UserError(f"{path}: item {it['id']} (entry {n}): its row fingerprint does not match the data "
                            f"(row {row} of its dataset); the key was shuffled or edited, or belongs to another export",
                            "use the key file written by the same 'synthbench annotate export' as the ratings")
        if it["id"] in shown:
            raise UserError(f"{path}: item id {it['id']} appears twice", "use the key file exactly as exported")
        shown[it["id"]] = s
    return shown


# ----------------------------------------------------------------------------- ratings

@dataclass(frozen=True)
class Rating:
    item: str
    annotator: str
    question: str
    answer: str
    where: str             # file and line/task, for messages


def _norm(s) -> str:
    return " ".join(str(s if s is not None else "").split())


def _check_text(where: str, item: str, given: dict, shown: dict[str, str]) -> None:
    """A ratings file that carries the items' text must carry the text the key maps the item to."""
    for f, v in given.items():
        if f in shown and v is not None and _norm(v) and _norm(v) != _norm(shown[f]):
            raise UserError(f"{where}: the {f} of item {item} is not the row the key maps it to (a shuffled or "
                            "wrong key, or an edited file)",
                            "import with the key file of the export these ratings came from, and keep the "
                            "item columns as exported")


def _scale(q: Question) -> str:
    return ", ".join(q.choices)


def _answer(q: Question, value, where: str) -> str:
    a = q.parse(value)
    if a is None:
        raise UserError(f"{where}: '{str(value)[:40]}' is not on the scale of {q.name} ({_scale(q)})",
                        f"use one of: {_scale(q)} (or leave it empty)")
    return a


def _cells(row: list[str], cols: dict[str, int]):
    return lambda h: row[cols[h]] if cols[h] < len(row) else ""


def read_csv_ratings(path: Path, questions, shown) -> list[Rating]:
    """Ratings from a CSV: columns ``item_id``, ``annotator`` (else the file's name is the annotator) and one
    column per question; other columns (the item's text) are checked against the key when present."""
    qs = {q.name: q for q in questions}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text", "save the ratings as CSV in UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UserError(f"{path}: empty", "give the items.csv of the export with its question columns filled in") from None
    except csv.Error as e:
        raise UserError(f"{path}: line 1: not CSV ({e})", "save the ratings as CSV") from None
    if "item_id" not in header:
        raise UserError(f"{path}: no 'item_id' column", "keep the item_id column of the exported items.csv")
    cols = {h: i for i, h in enumerate(header)}
    qcols = [h for h in header if h in qs]
    if not qcols:
        raise UserError(f"{path}: no column for a question of the study ({', '.join(qs)})",
                        "keep the question columns of the exported items.csv")
    out = []
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            where = f"{path}: line {line}"
            cell = _cells(row, cols)
            item = cell("item_id").strip()
            if item not in shown:
                raise UserError(f"{where}: unknown item id '{item[:40]}'",
                                "keep the item ids as exported, and import with the key of the same export")
            _check_text(where, item, {f: cell(f) for f in SHOWN["instruction"] + SHOWN["classification"] if f in cols},
                        shown[item])
            annotator = (cell("annotator").strip() if "annotator" in cols else "") or path.stem
            for h in qcols:
                v = cell(h)
                if v.strip():
                    out.append(Rating(item, annotator, h, _answer(qs[h], v, f"{where}, column '{h}'"), where))
    except csv.Error as e:
        raise UserError(f"{path}: line {line}: not CSV ({e})", "save the ratings as CSV") from None
    return out


def _annotator_of(completed_by) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "unknown")
    return f"label-studio-user-{completed_by}" if completed_by is not None else "unknown"


def read_label_studio(path: Path, questions, shown) -> list[Rating]:
    """Ratings from a Label Studio JSON export (a list of tasks, each with ``data`` and ``annotations``;
    every annotation's ``result`` holds ``choices``/``rating`` entries named by ``from_name``; the annotator is
    ``completed_by``); cancelled annotations are skipped. The JSON-MIN export (one flat object per
    annotation) is read too."""
    qs = {q.name: q for q in questions}
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not JSON ({e})", "give the JSON export of the Label Studio project") from None
    if not isinstance(tasks, list):
        raise UserError(f"{path}: not a Label Studio export (a JSON list of tasks)", "export the project as JSON")
    out = []
    for t, task in enumerate(tasks, 1):
        if not isinstance(task, dict):
            raise UserError(f"{path}: task {t} is not an object", "export the project as JSON")
        data = task.get("data") if isinstance(task.get("data"), dict) else task  # JSON-MIN: flat
        item = str(data.get("item_id", "")).strip()
        where = f"{path}: task {t}"
        if item not in shown:
            raise UserError(f"{where}: unknown item id '{item[:40]}'",
                            "import the export of the project made from this study's tasks.json, with its key")
        _check_text(where, item, {f: data.get(f) for f in shown[item]}, shown[item])
        if "annotations" not in task:  # JSON-MIN: one object per annotation, questions as keys
            annotator = str(task.get("annotator", "unknown"))
            for name, q in qs.items():
                v = task.get(name)
                if isinstance(v, dict):
                    v = v.get("choices", v.get("rating"))
                if isinstance(v, list):
                    v = v[0] if len(v) == 1 else ",".join(map(str, v))
                if v not in (None, ""):
                    out.append(Rating(item, annotator, name, _answer(q, v, f"{where}, '{name}'"), where))
            continue
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise UserError(f"{where}: 'annotations' is not a list", "export the project as JSON")
        for a, ann in enumerate(annotations, 1):
            if not isinstance(ann, dict) or ann.get("was_cancelled"):
                continue
            annotator = _annotator_of(ann.get("completed_by"))
            w = f"{where} (item {item}), annotation {a}"
            for res in ann.get("result") or []:
                kind = res.get("type") if isinstance(res, dict) else None
                if kind not in ("choices", "rating"):
                    continue  # text areas, comments, relations: not a rating
                name = res.get("from_name")
                if name not in qs:
                    raise UserError(f"{w}: a {kind} named '{name}', which is not a question of the study ({', '.join(qs)})",
                                    "use the labeling config.xml of the export (or name its questions as there)")
                value = res.get("value") or {}
                if kind == "choices":
                    ch = value.get("choices") or []
                    if len(ch) != 1:
                        raise UserError(f"{w}: {len(ch)} choices for {name}", "choose exactly one answer per question")
                    v = ch[0]
                else:
                    v = value.get("rating")
                out.append(Rating(item, annotator, name, _answer(qs[name], v, f"{w}, '{name}'"), w))
    return out


def read_ratings(paths, key: dict, shown) -> list[Rating]:
    """Every rating of ``paths`` (``.csv``; ``.json``: a Label Studio export), validated; one rating per
    (item, annotator, question) -- a second one is refused, naming both places."""
    questions = [Question.from_dict(q) for q in key["questions"]]
    out: list[Rating] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise UserError(f"{p}: file not found", "give the filled-in CSV files or the Label Studio JSON export")
        ext = p.suffix.lower()
        if ext == ".csv":
            out += read_csv_ratings(p, questions, shown)
        elif ext == ".json":
            out += read_label_studio(p, questions, shown)
        else:
            raise UserError(f"{p}: not a .csv or .json file", "give CSV ratings or a Label Studio JSON export")
    seen: dict[tuple[str, str, str], Rating] = {}
    for r in out:
        k = (r.item, r.annotator, r.question)
        if k in seen:
            raise UserError(f"{r.where}: {r.annotator} rated item {r.item} on {r.question} a second time "
                            f"(first at {seen[k].where.split(': ', 1)[-1]})",
                            "keep one rating per annotator, item and question (or give the annotators distinct names)")
        seen[k] = r
    if not out:
        raise UserError(f"{', '.join(map(str, paths))}: no rating found", "fill in the question columns (or annotate "
                        "the tasks) before importing")
    return out


# ----------------------------------------------------------------------------- statistics

def reliability_matrix(ratings, question: Question, items: list[str]):
    """(annotators, annotators x items matrix) of one question: the rating's score (ordinal) or the
    answer's index in the scale (nominal), NaN where an annotator did not rate an item."""
    import numpy as np

    names = sorted({r.annotator for r in ratings if r.question == question.name})
    col = {it: j for j, it in enumerate(items)}
    row = {a: i for i, a in enumerate(names)}
    M = np.full((len(names), len(items)), np.nan)
    code = {c: i for i, c in enumerate(question.choices)}
    for r in ratings:
        if r.question == question.name:
            M[row[r.annotator], col[r.item]] = question.scores[r.answer] if question.level == "ordinal" else code[r.answer]
    return names, M


def value_domain(question: Question) -> list[float]:
    if question.level == "ordinal":
        return sorted(set(question.scores.values()))
    return list(range(len(question.choices)))


def _needs_krippendorff():
    try:
        import krippendorff
    except ImportError:
        raise UserError("Krippendorff's alpha needs the 'krippendorff' package (GPL-3.0, an optional extra)",
                        "pip install 'synthbench[annotate]' (or pip install krippendorff)") from None
    return krippendorff


def krippendorff_alpha(M, level: str, domain) -> float | None:
    """``krippendorff.alpha`` of an annotators x items matrix (NaN: not rated), or None where it is
    undefined (no item rated twice, or a single value observed: no disagreement to expect)."""
    import warnings

    import numpy as np

    kd = _needs_krippendorff()
    M = np.asarray(M, dtype=float)
    if M.size == 0 or not ((~np.isnan(M)).sum(axis=0) >= 2).any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            a = float(kd.alpha(reliability_data=M, level_of_measurement=level, value_domain=domain))
        except ValueError:
            return None
    return a if math.isfinite(a) else None


def alpha_with_interval(M, level: str, domain, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Krippendorff's alpha with a percentile bootstrap interval over items (columns resampled with
    replacement; a resample on which alpha is undefined is left out, and no interval is given when more
    than half are)."""
    import numpy as np

    from harness.stats import bootstrap_replicates, percentile_interval

    M = np.asarray(M, dtype=float)
    pairable = (~np.isnan(M)).sum(axis=0) >= 2
    value = krippendorff_alpha(M, level, domain)
    out = {"value": value, "ci": None, "items": int(pairable.sum()), "ratings": int((~np.isnan(M[:, pairable])).sum()),
           "annotators": int(M.shape[0]), "level": level,
           "interval": f"percentile bootstrap over items ({n_boot} resamples)"}
    if value is None:
        out["not_computed"] = ("no item was rated by two annotators" if not pairable.any()
                               else "every rating is the same answer (no variation to agree on)")
        return out
    P = M[:, pairable]

    def stat(idx):
        a = krippendorff_alpha(P[:, idx[0]], level, domain)
        return [] if a is None else [a]

    reps = bootstrap_replicates(P.shape[1], stat, n_boot, np.random.default_rng([seed, 0x4B41]), 1)
    out["ci"] = percentile_interval(reps, min_count=n_boot / 2) if len(reps) else None
    return out


def item_scores(ratings, question: Question) -> dict[str, list[float]]:
    """item id -> the scores of its ratings on one question."""
    out: dict[str, list[float]] = {}
    for r in ratings:
        if r.question == question.name:
            out.setdefault(r.item, []).append(question.scores[r.answer])
    return out


def majority(answers: list[str]) -> str | None:
    """The most frequent answer, None on a tie."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    top = max(counts.values())
    best = [a for a, c in counts.items() if c == top]
    return best[0] if len(best) == 1 else None


# ----------------------------------------------------------------------------- the judge's rows

def judge_row_scores(result, rows_doc: dict | None, corpus, seed: int) -> tuple[dict[int, float] | None, str | None]:
    """The judge's score on each row it judged, read back from a stored ``judge/...`` record and its row
    flags, or (None, why not).

    The run stores which rows got each *flagged* verdict (``no``: ``judge-mislabelled`` ...). The rows it
    judged are all eligible rows, or the seeded sample the metric draws (reproduced here with its salt and
    the run's seed), so every other judged row got the one unflagged verdict -- when exactly one unflagged
    verdict occurred and no answer was unparsable (their rows are not stored).
    """
    from harness.metrics.base import Context
    from harness.metrics.direct.judge import _pick, load_rubric

    d = result.details or {}
    args = result.signature.args or {}
    try:
        rub = load_rubric(args.get("rubric", ""))
    except ValueError:
        return None, f"its rubric '{args.get('rubric')}' is not a shipped rubric"
    unparsable = (d.get("judge") or {}).get("unparsable", 0)
    if unparsable:
        return None, f"{unparsable} judge answer(s) were unparsable, and the run does not store their rows"
    if rows_doc is None or rows_doc.get("n") != len(corpus.texts):
        return None, "its row flags are missing"
    n = len(corpus.texts)
    if rub.task == "classification":
        eligible = list(range(n))
        salt = ROW_JUDGES.get(result.metric) or "judge-label"
        counts = {"yes": d.get("accepted", 0), "no": d.get("rejected", 0)}
    else:
        out = corpus.fields.get("output") or ("",) * n
        inp = corpus.fields.get("input") or ("",) * n
        need_input = rub.name in NEEDS_INPUT
        eligible = [i for i in range(n) if out[i].strip() and (not need_input or inp[i].strip())]
        salt = f"judge-{rub.name}"
        counts = dict(d.get("verdicts") or {})
    max_rows = int(args.get("max_rows", 200))
    judged = (eligible if len(eligible) <= max_rows
              else [eligible[k] for k in _pick(Context(corpus, seed), len(eligible), max_rows, salt)])
    if len(judged) != d.get("judged"):
        return None, f"the rows it judged cannot be reproduced ({len(judged)} here, {d.get('judged')} recorded)"
    by_reason = {reason: verdict for verdict, reason in rub.flags.items()}
    unflagged = [v for v in rub.verdicts if v not in rub.flags and counts.get(v, 0) > 0]
    if len(unflagged) > 1:
        return None, (f"its verdicts {' and '.join(unflagged)} raise no row flag, so the run does not say which rows "
                      "got which")
    scores: dict[int, float] = {}
    judged_set = set(judged)
    for reason, positions in (rows_doc.get("rows") or {}).items():
        verdict = by_reason.get(reason)
        if verdict is None:
            continue
        if len(positions) != counts.get(verdict, len(positions)):
            return None, f"its row flags ({len(positions)} '{reason}') disagree with its counts"
        for p in positions:
            if p not in judged_set:
                return None, "its flagged rows are not among the rows it judged"
            scores[int(p)] = rub.verdicts[verdict]
    for p in judged:
        if p not in scores:
            if not unflagged:
                return None, "rows without a flag but no unflagged verdict recorded"
            scores[p] = rub.verdicts[unflagged[0]]
    return scores, None


# ----------------------------------------------------------------------------- the analysis

def _stored(source: Source):
    """The run's current records (a suite source: none) and its result store."""
    if source.kind != "run":
        return [], None
    from harness.run.store import ResultStore, current_records

    results, _, _ = current_records(source.path, source.meta)
    return results, ResultStore(source.path)


def analyse(key: dict, source: Source, ratings: list[Rating], n_boot: int = N_BOOT, seed: int = 0,
            key_path: str = "", files=()) -> dict:
    """Everything the report shows, as JSON-ready data: agreement per question, human scores per dataset,
    the judge's and the metrics' agreement with the humans, and the records to store (``_results``)."""
    import numpy as np

    from harness.stats import bootstrap_ci, spearman_interval

    questions = [Question.from_dict(q) for q in key["questions"]]
    items = [it["id"] for it in key["items"]]
    where = {it["id"]: (it["dataset"], int(it["row"])) for it in key["items"]}
    roles = {d["name"]: d["role"] for d in key["datasets"]}
    stored, store = _stored(source)
    values: dict[str, dict[str, float]] = {}
    directions: dict[str, bool | None] = {}
    for r in stored:
        if r.role == "candidate" and not r.metric.startswith(METRIC_PREFIX) and r.value is not None:
            values.setdefault(r.metric, {})[r.dataset] = float(r.value)
            directions.setdefault(r.metric, r.higher_is_better)
    from harness import metrics as registry

    for m in directions:
        if registry.is_metric(m):
            directions[m] = registry.get(m).info.higher_is_better
    ratings_fp = sha256_hex(canonical_json(sorted([r.item, r.annotator, r.question, r.answer] for r in ratings)))[:16]
    out = {"source": source.describe(), "key": {"path": str(key_path), "fingerprint": key["fingerprint"],
                                                 "items": len(items), "seed": key.get("seed"),
                                                 "per_dataset": key.get("per_dataset")},
           "ratings": {"files": [str(f) for f in files], "count": len(ratings), "fingerprint": ratings_fp,
                       "annotators": sorted({r.annotator for r in ratings})},
           "n_boot": n_boot, "seed": seed, "questions": [], "_results": []}
    from harness import __version__
    from harness.types import Result, Signature

    for q in questions:
        names, M = reliability_matrix(ratings, q, items)
        alpha = alpha_with_interval(M, q.level, value_domain(q), n_boot=n_boot, seed=seed)
        per_item = item_scores(ratings, q)
        answers: dict[str, list[str]] = {}
        for r in ratings:
            if r.question == q.name:
                answers.setdefault(r.item, []).append(r.answer)
        annot = []
        for a in names:
            mine = [q.scores[r.answer] for r in ratings if r.question == q.name and r.annotator == a]
            annot.append({"name": a, "items": len(mine), "mean": float(np.mean(mine)) if mine else None})
        datasets = []
        human: dict[str, float] = {}
        for d in key["datasets"]:
            mine = [it for it in items if where[it][0] == d["name"] and it in per_item]
            entry = {"dataset": d["name"], "role": d["role"], "items": len(mine), "exported": d.get("items"),
                     "ratings": sum(len(per_item[it]) for it in mine), "value": None, "ci": None}
            if mine:
                means = np.array([np.mean(per_item[it]) for it in mine], dtype=float)
                entry["value"] = float(means.mean())
                ci = bootstrap_ci(means, n_boot=n_boot, seed=seed)
                entry["ci"] = list(ci) if ci is not None else None
                entry["verdicts"] = {c: sum(a == c for it in mine for a in answers[it]) for c in q.choices}
                if d["role"] == "candidate":
                    human[d["name"]] = entry["value"]
                info = source.dataset(d["name"]).info if source.dataset(d["name"]) else {}
                sig = Signature(
                    harness=__version__, metric=METRIC_PREFIX + q.name,
                    args={"rubric": q.rubric, "rubric_version": q.rubric_version, "rubric_sha256": q.rubric_sha256,
                          "key": key["fingerprint"][:16], "ratings": ratings_fp, "study_seed": key.get("seed"),
                          "per_dataset": key.get("per_dataset"), "n_boot": n_boot, "boot_seed": seed},
                    data={"candidate": d["fingerprint"], "reference": None, "sample": info.get("sample", d.get("sample"))},
                    embedder=None, seed=int(source.meta.get("seed") or 0), version=METRIC_VERSION)
                details = {"items": len(mine), "ratings": entry["ratings"], "annotators": len(names),
                           "verdicts": entry["verdicts"], "question": q.title, "scale": dict(q.scores),
                           "alpha": alpha["value"], "alpha_ci": alpha["ci"], "alpha_level": q.level,
                           "interval": f"percentile bootstrap over items ({n_boot} resamples)",
                           "value": "mean over items of each item's mean rating score"}
                out["_results"].append(Result(dataset=d["name"], metric=METRIC_PREFIX + q.name, value=entry["value"],
                                              ci=tuple(ci) if ci is not None else None, higher_is_better=True,
                                              signature=sig, role=roles.get(d["name"], "candidate"), details=details))
            datasets.append(entry)
        judges = judge_metrics(q, stored)
        across = _across(human, values, directions, set(judges), spearman_interval)
        per_row = _per_item(q, judges, key, source, stored, store, answers, where)
        out["questions"].append({**q.describe(), "alpha": alpha, "annotators": annot, "datasets": datasets,
                                 "across": across, "per_item": per_row})
    return out


def judge_metrics(q: Question, stored) -> list[str]:
    """The stored judge metrics that score rows with this question's rubric (their records' ``rubric``)."""
    from harness.metrics.direct.judge import load_rubric

    out = set()
    for r in stored:
        if r.metric in ROW_JUDGES and r.metric not in out:
            try:
                if load_rubric(str((r.signature.args or {}).get("rubric", ""))).name == q.name:
                    out.add(r.metric)
            except ValueError:
                pass
    return sorted(out)


def _across(human: dict[str, float], values, directions, judges, spearman_interval) -> dict:
    """Spearman's rho across candidates between every stored metric and the human score of ``q``."""
    from harness.analysis.correlation import orientation

    out = {"candidates": len(human), "rows": []}
    if len(human) < 2:
        out["not_computed"] = "fewer than 2 candidates have human scores"
        return out
    for m in sorted(values):
        common = sorted(set(values[m]) & set(human))
        if len(common) < 2:
            continue
        x = [values[m][c] for c in common]
        y = [human[c] for c in common]
        r = spearman_interval(x, y)
        hib = directions.get(m)
        o = orientation(hib) if hib is not None else None
        kind = ("judge" if m in judges else "judge (other)" if m.startswith("judge/")
                else "utility" if m.startswith(("utility/", "lm-utility/")) else "metric")
        row = {"metric": m, "kind": kind,
               "higher_is_better": hib, "n": r["n"], "rho": r["rho"], "low": r["low"], "high": r["high"],
               "oriented": (r["rho"] * o if (r["rho"] is not None and o is not None) else None),
               "constant": r["constant"]}
        if r["constant"]:  # the helper's rho 0 [0, 0] for a constant y: here the human scores did not vary
            row.update(rho=None, low=None, high=None, oriented=None)
            row["not_computed"] = "the human scores do not vary"
        elif r["rho"] is None:
            row["not_computed"] = ("fewer than 4 candidates" if r["n"] < 4 else "the metric does not vary")
        out["rows"].append(row)
    out["rows"].sort(key=lambda d: (d["kind"] != "judge", -(abs(d["rho"]) if d["rho"] is not None else -1), d["metric"]))
    if len(human) < 4:
        out["not_computed"] = f"{len(human)} candidates have human scores; a rank correlation needs at least 4"
    return out


def _per_item(q: Question, judges, key, source: Source, stored, store, answers, where) -> list[dict]:
    """Per item: the judge's verdict against the humans' majority, for each judge metric asking ``q``
    whose per-row verdicts the run's row flags give."""
    import numpy as np

    from harness.metrics.direct.judge import cohen_kappa
    from harness.stats import spearman_interval

    out = []
    for m in judges:
        entry = {"metric": m, "items": 0, "datasets": [], "not_computed": []}
        pairs = []  # (judge score, human mean, judge answer, human majority answer)
        for d in key["datasets"]:
            rec = next((r for r in stored if r.dataset == d["name"] and r.metric == m), None)
            ds = source.dataset(d["name"])
            if rec is None or ds is None:
                continue
            rows_doc = store.load_rows(rec.signature.key) if store is not None else None
            scores, why = judge_row_scores(rec, rows_doc, ds.corpus, rec.signature.seed)
            if scores is None:
                entry["not_computed"].append({"dataset": d["name"], "why": why})
                continue
            n0 = len(pairs)
            inv = {}
            for a, s in q.scores.items():
                inv.setdefault(s, a)
            for it, ans in answers.items():
                ds_name, row = where[it]
                if ds_name == d["name"] and row in scores:
                    hs = [q.scores[a] for a in ans]
                    pairs.append((scores[row], float(np.mean(hs)), inv.get(scores[row]), majority(ans)))
            entry["datasets"].append({"dataset": d["name"], "items": len(pairs) - n0})
        entry["items"] = len(pairs)
        if pairs:
            js = np.array([p[0] for p in pairs])
            hm = np.array([p[1] for p in pairs])
            maj = [(p[2], p[3]) for p in pairs if p[3] is not None]
            entry["agreement"] = float(np.mean([a == b for a, b in maj])) if maj else None
            entry["majority_items"] = len(maj)
            entry["kappa"] = None
            if len(q.choices) == 2 and maj:
                top = q.choices[0]
                entry["kappa"] = cohen_kappa([a == top for a, _ in maj], [b == top for _, b in maj])
            r = spearman_interval(js, hm)
            entry.update(rho=r["rho"], low=r["low"], high=r["high"])
            entry["judge_mean"] = float(js.mean())
            entry["human_mean"] = float(hm.mean())
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- writing the results

def write_results(analysis: dict, folder) -> Path:
    """Put the human/ records into the folder's results.jsonl through its result store (merged under the
    folder's lock; other records are kept)."""
    from harness.run.store import ResultStore

    store = ResultStore(Path(folder))
    for r in analysis["_results"]:
        store.put(r)
    store.flush()
    return store.path


def public(analysis: dict) -> dict:
    """The analysis without its Result objects (what annotation.json holds)."""
    return {k: v for k, v in analysis.items() if not k.startswith("_")}
