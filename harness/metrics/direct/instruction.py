"""Instruction-data faithfulness: does each output answer its instruction, from its input, completely?

These metrics read the mapped columns of instruction data (``instruction``, ``input``, ``output``;
``ctx.corpus.fields``) and are skipped, with the reason, on any other kind of data.

Definitions shared by the metrics:

- an *empty* output is blank once whitespace and quote characters are removed (``""``, three quotes), or
  is a no-output placeholder tag (``<nooutput>``, ``<no output>``, ``<noinput>``: Alpaca marks tasks it
  cannot do this way);
- an input is *given* when it is not blank and not such a placeholder (alpaca-libre writes
  ``<noinput>``);
- the *prompt* of a row is its instruction, followed by its input when one is given.

Row flags (``Score.rows``) name the rows each metric finds; details list a few examples (cut to
160 characters). Nothing here loads a model: the relevance metrics embed prompts and outputs through
the run's shared, cached embedder (``ctx.embedder``).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

from harness.metrics.base import MetricSkipped, metric
from harness.metrics.direct.lexical import tokenize
from harness.stats import bootstrap_ci, wilson_ci
from harness.types import INSTRUCTION, Score

MAX_EXAMPLES = 5
WIDTH = 160

PLACEHOLDER = re.compile(r"""^[\s"'“”‘’`]*<\s*no[\s_-]*(?:output|input)\s*>[\s"'“”‘’`]*$""", re.IGNORECASE)
_QUOTES_WS = re.compile(r"""[\s"'“”‘’`]+""")


def _cut(text: str, width: int = WIDTH) -> str:
    return text[:width]


def fields_of(ctx) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(instructions, inputs, outputs) of instruction data; MetricSkipped for any other data."""
    c = ctx.corpus
    if c.kind != INSTRUCTION or not all(k in c.fields for k in ("instruction", "input", "output")):
        raise MetricSkipped(f"applies to instruction data (instruction, input, output columns); "
                            f"{c.name} is {c.kind} data")
    if not c.texts:
        raise MetricSkipped("no rows")
    return c.fields["instruction"], c.fields["input"], c.fields["output"]


def is_placeholder(text: str) -> bool:
    """A no-output / no-input tag such as ``<nooutput>``.

    >>> is_placeholder("<nooutput>"), is_placeholder(' "<No input>" '), is_placeholder("no output")
    (True, True, False)
    """
    return bool(PLACEHOLDER.match(text))


def is_empty(text: str) -> bool:
    """Blank once whitespace and quote characters are removed, or a placeholder tag.

    >>> is_empty(' "" '), is_empty("<nooutput>\\n"), is_empty("0")
    (True, True, False)
    """
    return not _QUOTES_WS.sub("", text) or is_placeholder(text)


def has_input(text: str) -> bool:
    """The row gives an input: not blank and not a placeholder tag."""
    return bool(text.strip()) and not is_placeholder(text)


def prompt_of(instruction: str, inp: str) -> str:
    """The instruction, then the input when one is given (a blank line between)."""
    return f"{instruction}\n\n{inp}" if has_input(inp) else instruction


def _rate(ctx, flagged: dict[str, list[int]], n: int, details: dict, examples: list[dict]) -> Score:
    """A Wilson-interval rate over ``n`` rows; a row counts once whatever number of reasons it has."""
    rows = sorted({i for v in flagged.values() for i in v})
    k = len(rows)
    details = {"count": k, "rows": n, **details, "examples": examples[:MAX_EXAMPLES]}
    return Score(k / n, wilson_ci(k, n), details, rows={r: sorted(v) for r, v in flagged.items() if v})


def _example(i, instructions, inputs, outputs, **extra) -> dict:
    ex = {"row": int(i), "instruction": _cut(instructions[i]), "output": _cut(outputs[i])}
    if has_input(inputs[i]):
        ex["input"] = _cut(inputs[i])
    ex.update(extra)
    return ex


# ----------------------------------------------------------------------------- empty outputs

@metric("instr/empty-rate",
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags")
def empty_rate(ctx) -> Score:
    """Empty-output rate: share of rows whose output is blank or a no-output placeholder; lower is better.

    An output counts when nothing is left once whitespace and quote characters are removed
    (reason ``empty-output``), or when it is only a placeholder tag such as ``<nooutput>`` (reason
    ``no-output-marker``; Stanford Alpaca writes it for tasks a text model cannot do). Range [0, 1].
    Interval: Wilson. Empty and placeholder responses are among the defects removed by the Alpaca
    cleaning effort (AlpacaDataCleaned, 2023) and counted by Long et al., "On LLMs-Driven Synthetic
    Data Generation, Curation, and Evaluation: A Survey", Findings of ACL 2024.
    """
    instructions, inputs, outputs = fields_of(ctx)
    flagged: dict[str, list[int]] = {"empty-output": [], "no-output-marker": []}
    for i, o in enumerate(outputs):
        if is_placeholder(o):
            flagged["no-output-marker"].append(i)
        elif is_empty(o):
            flagged["empty-output"].append(i)
    ex = [_example(i, instructions, inputs, outputs, reason=r) for r in flagged for i in flagged[r][:3]]
    return _rate(ctx, flagged, len(outputs), {"by_reason": {r: len(v) for r, v in flagged.items()}}, ex)


# ----------------------------------------------------------------------------- truncated outputs

#: words that cannot end an English sentence: an output ending in one (lower case, after a space, not
#: in a comma-separated list of words) stops mid-phrase. Prepositions that English strands ("from",
#: "with", "for", "to") are left out.
DANGLING_WORDS = frozenset("a an the and or but nor of than my your our their its very because although "
                           "whereas whose".split())
#: characters that leave a sentence open when they end the output
DANGLING_PUNCT = ",:(–—-[{&"
#: a last line that closes a letter and ends on a comma legitimately ("Sincerely,", "Best regards,")
VALEDICTION = re.compile(r"^(?:(?:with )?(?:best|kind|warm|warmest|many) (?:regards|wishes)|sincerely(?: yours)?|"
                         r"yours(?: truly| sincerely| faithfully)?|(?:best )?regards|best|thanks(?: again)?|"
                         r"thank you|cheers|(?:with )?love|all the best|take care|respectfully|cordially|warmly|"
                         r"looking forward to [\w ]+|see you soon|talk soon)\s*,$")
#: characters after which a text is finished (or is a quotation, code or table that closes itself)
TERMINAL = set(".!?…)]}\"'”’»`*|>~%;")
_LIST_MARK = re.compile(r"^\s*(?:[-*•+>#|]|\d+[.)]|[A-Za-z][.)]\s|[ivxlcIVXLC]+[.)]\s)")
_WORD = re.compile(r"^[\"'“‘(]*[A-Za-z][A-Za-z'’-]*[,;:.!?\"'”’)]*$")
#: a year cut after its first two digits (Stanford Alpaca generated with the stop sequences "\n20" and "20.", so
#: "in 2021" was cut to "in 20"): a preposition or a day of the month, then 19/20 at the very end
CUT_YEAR = re.compile(r"(?:\b(?:in|since|from|until|till|by|before|after|circa|during|year|early|late|mid)"
                      r"|\b\d{1,2}(?:st|nd|rd|th),?)\s+(?:19|20)$", re.IGNORECASE)


def _strip_end(text: str) -> str:
    """Trailing whitespace and control/format characters removed (a stray ``\\x03`` is not content)."""
    end = len(text)
    while end and (text[end - 1].isspace() or unicodedata.category(text[end - 1]) in ("Cc", "Cf")):
        end -= 1
    return text[:end]


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Sm")  # emoji, arrows, math signs


def _prose_line(line: str) -> bool:
    """A line of running prose: not a short list item, table row, heading or code; mostly plain words;
    not Title Case; at least 15 words (verse lines are shorter), 20 for a list item."""
    if any(c in line for c in "={}<>\\|"):
        return False
    item = _LIST_MARK.match(line)
    toks = line[item.end():].split() if item else line.split()
    words = [t for t in toks if _WORD.match(t)]
    if len(toks) < (20 if item else 15) or len(words) < 0.7 * len(toks):
        return False
    alpha = [w.strip("\"'“‘(") for w in words]
    caps = sum(1 for w in alpha if w[:1].isupper())
    return caps < 0.6 * len(alpha)


def truncation_signal(output: str, long_words: int = 100) -> str | None:
    """Why an output looks cut off, or None. Signals, in order:

    - ``unclosed-code``: an odd number of ````` fences;
    - ``cut-year``: ends in a year cut to its first two digits ("... in 20");
    - ``dangling-punctuation``: ends on a comma, colon, dash, ampersand or opening bracket (not a
      URL, a letter closing such as "Sincerely,", a rule line "----", or the last of a form's
      "Field:" lines);
    - ``dangling-word``: ends on an article, conjunction or possessive ("the importance of");
    - ``cut-at-length``: at least ``long_words`` words (the size at which generation caps bite)
      ending inside a line of prose (≥ 15 words: not a verse line, list item or title) without
      closing punctuation, hashtag, link or emoji.

    >>> truncation_signal("Here are the steps:"), truncation_signal("It was founded in 20")
    ('dangling-punctuation', 'cut-year')
    >>> truncation_signal("Paris"), truncation_signal("1. Apples\\n2. Pears")
    (None, None)
    """
    s = _strip_end(output)
    if not s or is_placeholder(s):
        return None
    if s.count("```") % 2:
        return "unclosed-code"
    if CUT_YEAR.search(s):
        return "cut-year"
    last_line = s.splitlines()[-1].strip()
    last_tok = last_line.split()[-1] if last_line.split() else ""
    is_link = last_tok.startswith(("http://", "https://", "www.", "#", "@")) or "://" in last_tok
    if s[-1] in DANGLING_PUNCT and not is_link:
        lines = [x.strip() for x in s.splitlines() if x.strip()]
        if VALEDICTION.match(last_line.lower()) or re.search(r"[-–—=_*]{3,}$", s):
            return None  # a letter's closing, a rule line
        if s[-1] == ":" and sum(1 for x in lines[:-1] if x.endswith(":")) >= 2:
            return None  # a form or template: "Name:\nEmail:\nCountry:"
        return "dangling-punctuation"
    if s[-1] in TERMINAL or _is_symbol(s[-1]) or is_link:
        return None
    m = re.search(r"(?:^|(?<=\s))([a-z]+)$", s)
    if m and m.group(1) in DANGLING_WORDS and len(s.split()) >= 4 and not s[:m.start()].rstrip().endswith(","):
        return "dangling-word"
    if len(s.split()) >= long_words and _prose_line(last_line):
        return "cut-at-length"
    return None


@metric("instr/truncated-rate", args={"long_words": 100},
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags")
def truncated_rate(ctx, long_words: int = 100) -> Score:
    """Truncated-output rate: share of outputs that stop mid-sentence, mid-code-block or mid-year; lower is better.

    An output counts when it ends (a) inside an unclosed ````` code block, (b) on a year cut to two
    digits ("in 20": Stanford Alpaca's stop sequences cut "2021" there), (c) on a comma, colon, dash
    or opening bracket (not a URL, "Sincerely," or a form's last "Field:"), (d) on an article,
    conjunction or possessive ("a", "the", "and", "of", "their" ...), or (e) when it is long
    (≥ ``long_words`` = 100 words, where token caps bite) and its last line is running prose (≥ 15
    words) with no closing punctuation, hashtag, link or emoji. Short outputs without a full stop
    (titles, labels, list items, code, numbers, verse) do not count: they are legitimate answers. A
    one-line output ending on a comma counts (alpaca-libre kept only the first line of many outputs:
    "Dear Mary,", "There once was a boy named Lou,"), which also catches the rare task that asks for
    such a fragment ("Generate the first line of a poem"). The signals were tuned on the Alpaca rows in
    ../shared/data (e.g. GPT-4 outputs cut at ~400 words, alpaca-libre outputs cut after their first
    line "Ingredients:"). Range [0, 1]. Interval: Wilson. details: ``by_signal``, examples.
    Long et al., Findings of ACL 2024, list incomplete generations among format defects.
    """
    instructions, inputs, outputs = fields_of(ctx)
    rows: list[int] = []
    by_signal: dict[str, int] = {}
    ex = []
    for i, o in enumerate(outputs):
        why = truncation_signal(o, long_words)
        if why:
            rows.append(i)
            by_signal[why] = by_signal.get(why, 0) + 1
            if sum(1 for e in ex if e["signal"] == why) < 2:
                ex.append({"row": i, "signal": why, "instruction": _cut(instructions[i]),
                           "output_end": _strip_end(o)[-WIDTH:], "words": len(o.split())})
    return _rate(ctx, {"truncated": rows}, len(outputs), {"by_signal": by_signal, "long_words": long_words}, ex)


# ----------------------------------------------------------------------------- refusals and boilerplate

#: (reason, where, pattern): matched on the case-folded output with curly apostrophes made straight.
#: "start": the output begins with it (after leading quotes and spaces); "anywhere": anywhere in it.
#: Apologies that are content ("I'm sorry to hear", "I apologize for the delay") do not match: an
#: apology counts only when followed by a refusal ("..., but I", "..., as an AI").
REFUSAL_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("ai-boilerplate", "anywhere",
     r"\bas an? (?:ai|artificial intelligence)\b(?! (?:researcher|engineer|scientist|developer|expert|company|"
     r"startup|enthusiast|ethicist|practitioner|specialist|consultant|firm|product|system)s?\b)"),
    ("ai-boilerplate", "anywhere", r"\bas an? (?:large |ai |artificial intelligence )?language model\b"),
    ("ai-boilerplate", "anywhere",
     r"\bi(?: am|'m) (?:just |only |merely |simply )?an? (?:ai|artificial intelligence|(?:large |ai )?language "
     r"model|virtual assistant|chatbot|text-based ai)\b"),
    ("refusal", "start",
     r"(?:i'm |i am |we're |we are |so )?sorry(?:,| but| however,?) ?(?:but |however,? )?"
     r"(?:i|i'm|as an?|this|that|it|there|you|we|the)\b"),
    ("refusal", "start", r"i apologi[sz]e(?:,| but| however,?) ?(?:but |however,? )?(?:i|i'm|as an?|this|that|it|there|you)\b"),
    ("refusal", "start",
     r"(?:unfortunately|regrettably),? (?:as an?\b|i\b|i'm\b|it is not possible|it's not possible|"
     r"there is no way|this is not possible|that is not possible)"),
    ("refusal", "start",
     r"(?:as an? [a-z ,.-]{1,40}?,? )?i(?: am|'m) (?:not able|unable|not capable|incapable|not in a position)\b"),
    ("refusal", "start",
     r"i (?:cannot|can't|can not|could not|couldn't|won't|will not) (?:provide|generate|create|access|browse|"
     r"draw|display|show|perform|complete|answer|determine|retrieve|predict|estimate|see|view|watch|listen|"
     r"hear|make|write|compose|produce|play|sing|process|open|read|fulfil|fulfill|comply|assist|help|do|give|"
     r"offer|share|express|know|tell|verify|confirm|calculate|translate|search|find|look up|physically|"
     r"actually|really|currently|directly)\b"),
    ("refusal", "start",
     r"i (?:do not|don't) have (?:access|the ability|the capability|the capacity|the means|enough information|"
     r"sufficient information|the information|information|real-time|personal|any personal|feelings|emotions|"
     r"a physical|physical|eyes|a body|opinions|preferences|the data|data|internet)\b"),
    ("refusal", "start", r"(?:it is|it's) not possible for (?:me|an ai)\b"),
)
_COMPILED = tuple((reason, where, re.compile(p)) for reason, where, p in REFUSAL_PATTERNS)
_LEAD = re.compile(r"""^[\s"'“”‘’*_>]+""")


def refusal_reasons(output: str) -> list[str]:
    """The reasons (``refusal``, ``ai-boilerplate``) whose patterns match ``output``.

    >>> refusal_reasons("I'm sorry, but I cannot browse the internet.")
    ['refusal']
    >>> refusal_reasons("As an AI language model, I don't have opinions.")
    ['ai-boilerplate']
    >>> refusal_reasons("I'm sorry to hear that. Let me help."), refusal_reasons("I can't wait to go!")
    ([], [])
    """
    t = _LEAD.sub("", output.casefold().replace("’", "'").replace("‘", "'"))
    found: list[str] = []
    for reason, where, rx in _COMPILED:
        if reason in found:
            continue
        if (rx.match(t) if where == "start" else rx.search(t)):
            found.append(reason)
    return found


@metric("instr/refusal-rate",
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags")
def refusal_rate(ctx) -> Score:
    """Refusal/boilerplate rate: share of outputs that refuse the task or speak as an AI ("As an AI language model"); lower is better.

    ``refusal``: the output opens by declining ("I'm sorry, but I ...", "I cannot provide ...",
    "Unfortunately, I ...", "I don't have access ..."); ``ai-boilerplate``: it calls itself an AI or a
    language model anywhere ("As an AI language model", "I am an AI"). Patterns are data
    (``REFUSAL_PATTERNS``), matched case-insensitively; content apologies ("I'm sorry to hear that")
    do not count. A row matching both counts once. Range [0, 1]. Interval: Wilson. Such rows are
    removed by the filters of Vicuna/ShareGPT and WizardLM ("As an AI language model") and of
    AlpacaDataCleaned; Long et al., Findings of ACL 2024, on faithfulness of synthetic responses.
    """
    instructions, inputs, outputs = fields_of(ctx)
    flagged: dict[str, list[int]] = {"refusal": [], "ai-boilerplate": []}
    for i, o in enumerate(outputs):
        for r in refusal_reasons(o):
            flagged[r].append(i)
    ex = [_example(i, instructions, inputs, outputs, reason=r) for r in flagged for i in flagged[r][:3]]
    return _rate(ctx, flagged, len(outputs), {"by_reason": {r: len(v) for r, v in flagged.items()}}, ex)


# ----------------------------------------------------------------------------- instruction copies

def _sentences(text: str) -> list[list[str]]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [tokenize(p) for p in parts if p.strip()]


def copy_kind(instruction: str, output: str, min_words: int = 3) -> str | None:
    """How ``output`` copies ``instruction``, or None. Words are the harness tokens (lower-cased,
    punctuation dropped), so case, punctuation and spacing do not matter.

    - ``starts-with-instruction``: the output begins with the whole instruction (≥ ``min_words`` words);
    - ``instruction-sentence``: one sentence or line of the output is the whole instruction;
    - ``mostly-instruction``: every word of the output occurs in the instruction, and an in-order
      match covers ≥ 80% of the instruction: the output echoes it and adds no word of its own.

    "To evaluate X, consider ..." for "Evaluate X." and "The capital of France is Paris." for
    "What is the capital of France?" are answers, not copies (they add words).

    >>> copy_kind("Design a game.", "Design a game. Teams take turns ..."), copy_kind("Name a colour.", "Blue")
    ('starts-with-instruction', None)
    """
    ins, out = tokenize(instruction), tokenize(output)
    if not ins or not out:
        return None
    if len(ins) >= min_words and out[:len(ins)] == ins:
        return "starts-with-instruction"
    if len(ins) >= min_words and any(s == ins for s in _sentences(output)):
        return "instruction-sentence"
    if set(out) <= set(ins) and \
            sum(b.size for b in SequenceMatcher(None, ins, out, autojunk=False).get_matching_blocks()) >= 0.8 * len(ins):
        return "mostly-instruction"
    return None


@metric("instr/instruction-copy-rate",
        higher_is_better=False,
        bounds=(0, 1),
        resample="row-flags")
def instruction_copy_rate(ctx) -> Score:
    """Instruction-copy rate: share of outputs that repeat the instruction verbatim or are mostly the instruction; lower is better.

    After normalisation to lower-cased words (punctuation dropped) an output counts when it starts
    with the whole instruction, when one of its sentences or lines is the whole instruction (for
    instructions of ≥ 3 words), or when it adds no word of its own and matches ≥ 80% of the
    instruction in order (an echo). Restating the task inside an answer ("To evaluate X, ...", "The
    capital of France is Paris.") does not count. Range [0, 1]. Interval:
    Wilson. details: ``by_kind``. Prompt echoing is a known failure of instruction-data generation
    (Wang et al., "Self-Instruct", ACL 2023, filter generations that copy the instruction).
    """
    instructions, inputs, outputs = fields_of(ctx)
    rows: list[int] = []
    by_kind: dict[str, int] = {}
    ex = []
    for i, (ins, o) in enumerate(zip(instructions, outputs)):
        k = copy_kind(ins, o)
        if k:
            rows.append(i)
            by_kind[k] = by_kind.get(k, 0) + 1
            ex.append(_example(i, instructions, inputs, outputs, kind=k))
    return _rate(ctx, {"instruction-copy": rows}, len(outputs), {"by_kind": by_kind}, ex)


# ----------------------------------------------------------------------------- grounding in the input

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAMED = re.compile(r"[A-Z][^\W_]*(?:['’][^\W_]+)*")
_SENT_SPLIT = re.compile(r"(?<=[.!?:;])\s+")
_POSSESSIVE = re.compile(r"['’]s$")


def _norm_number(s: str) -> str:
    return s.replace(",", "")


_ENUMERATOR = re.compile(r"^\s*(?:(?:step|part|section|article|verse|chapter|question)\s+)?(?:\d+|[A-Za-z])[.):]\s",
                         re.IGNORECASE)


def _content_lines(text: str) -> list[str]:
    """Lines without their list enumerators ("1. ", "Step 2: ", "- ")."""
    return [_LIST_MARK.sub("", _ENUMERATOR.sub("", line, count=1), count=1) for line in text.splitlines()]


def numbers_in(text: str) -> list[str]:
    """Digit runs with their decimal/thousands separators, commas removed; list numbers ("1. ",
    "Step 2:") and digits glued to letters ("cm3", "9am", "F1") are not numbers of the content.

    >>> numbers_in("It cost $2,500.75 in 1997, 3 times 1/6 in 64 cm3.\\n2. Step two")
    ['2500.75', '1997', '3', '1', '6', '64']
    """
    out = []
    for line in _content_lines(text):
        for m in _NUMBER.finditer(line):
            before = line[m.start() - 1] if m.start() else " "
            after = line[m.end()] if m.end() < len(line) else " "
            if not (before.isalpha() or after.isalpha()):  # not glued to letters: "cm3", "9am", "F1"
                out.append(_norm_number(m.group()))
    return out


def named_in(text: str) -> list[str]:
    """Capitalised words that do not open a sentence, line or list item (names, places, titles,
    acronyms), case-folded, possessive 's dropped; single letters ("I", "C" for Celsius) are left
    out, and so are Title Case sentences (every word of 4+ letters capitalised: headlines), where
    capitals mark no name.

    >>> named_in("The Eiffel Tower stands in Paris. It opened in 1889 and NASA's Moon trip came later.")
    ['eiffel', 'tower', 'paris', 'nasa', 'moon']
    >>> named_in("Revolutionary Online Banking Platform Now Launched!")
    []
    """
    out = []
    for line in _content_lines(text):
        for sent in _SENT_SPLIT.split(line):
            words = [w.strip("\"'“”‘’()[]{}*_,.!?:;") for w in sent.split()]
            words = [w for w in words if w]
            long = [w for w in words if len(w) >= 4 and w[:1].isalpha()]
            if len(long) >= 3 and all(w[:1].isupper() for w in long):
                continue  # Title Case: every word of 4+ letters capitalised
            for w in words[1:]:
                if len(w) > 1 and _NAMED.fullmatch(w) and w not in ("I'm", "I’m", "I've", "I'd", "I'll"):
                    out.append(_POSSESSIVE.sub("", w).casefold())
    return out


def _vocab(text: str) -> set[str]:
    return {_POSSESSIVE.sub("", t) for t in tokenize(text)} | set(numbers_in(text))


def grounding_of(output: str, source: str) -> tuple[int, int, list[str]]:
    """(found, checkable, missing) for the output's numbers and named words against ``source``."""
    vocab = _vocab(source)
    toks = numbers_in(output) + named_in(output)
    missing = [t for t in toks if t not in vocab]
    return len(toks) - len(missing), len(toks), missing


@metric("instr/grounding", args={"min_tokens": 2, "flag_below": 0.5},
        higher_is_better=True,
        bounds=(0, 1))
def grounding(ctx, min_tokens: int = 2, flag_below: float = 0.5) -> Score:
    """Input grounding: over rows with an input, mean share of the output's numbers and names that occur in the input; higher is better.

    For every row that gives an input (not blank, not ``<noinput>``), the output's checkable tokens
    are its numbers (digit runs, thousands commas removed: "2,500" = "2500"; not list numbers such
    as "1. " and not digits glued to letters such as "cm3") and its named words (capitalised words
    of two or more characters that do not open a sentence, line or list item and are not in a Title
    Case headline, case-folded, possessive 's dropped); a token is grounded when it occurs among the
    input's words or numbers. Row score =
    grounded / checkable; value = mean over rows with at least one checkable token (rows with none are
    counted in details). Numbers and names absent from the input are the hallucination-prone part of
    a grounded answer; tasks that ask for new facts ("give an example of a European country") lower it
    legitimately, so compare with the human reference. Range [0, 1]. Interval: bootstrap over rows.
    details: pooled share, numbers and names separately, ``share_in_prompt`` (instruction or input).
    Row flags ``ungrounded``: rows with ≥ ``min_tokens`` checkable tokens and a share below
    ``flag_below``. Entity- and number-overlap faithfulness as in Nan et al., "Entity-level Factual
    Consistency of Abstractive Text Summarization", EACL 2021.
    """
    import numpy as np

    instructions, inputs, outputs = fields_of(ctx)
    given = [i for i, x in enumerate(inputs) if has_input(x)]
    if not given:
        raise MetricSkipped("no row gives an input")
    shares, used, flagged, ex = [], [], [], []
    tot = found = tot_num = found_num = found_prompt = 0
    for i in given:
        f, t, missing = grounding_of(outputs[i], inputs[i])
        if t == 0:
            continue
        nums = numbers_in(outputs[i])
        in_vocab = _vocab(inputs[i])
        tot_num += len(nums)
        found_num += sum(1 for x in nums if x in in_vocab)
        fp, _, _ = grounding_of(outputs[i], instructions[i] + "\n" + inputs[i])
        tot, found, found_prompt = tot + t, found + f, found_prompt + fp
        shares.append(f / t)
        used.append(i)
        if t >= min_tokens and f / t < flag_below:
            flagged.append(i)
            if len(ex) < MAX_EXAMPLES:
                ex.append(_example(i, instructions, inputs, outputs, share=round(f / t, 3),
                                   missing=sorted(set(missing))[:10]))
    if not shares:
        raise MetricSkipped("no output of a row with an input holds a number or a name to check")
    x = np.asarray(shares)
    names_tot = tot - tot_num
    return Score(float(x.mean()), bootstrap_ci(x, seed=ctx.seed) if len(x) > 1 else None,
                 {"rows_with_input": len(given), "rows_checked": len(used),
                  "rows_without_checkable_tokens": len(given) - len(used),
                  "tokens": tot, "pooled_share": round(found / tot, 4),
                  "number_share": round(found_num / tot_num, 4) if tot_num else None,
                  "name_share": round((found - found_num) / names_tot, 4) if names_tot else None,
                  "share_in_prompt": round(found_prompt / tot, 4),
                  "flagged": len(flagged), "min_tokens": min_tokens, "flag_below": flag_below, "examples": ex},
                 rows={"ungrounded": flagged})


# ----------------------------------------------------------------------------- relevance

def _pairs(ctx):
    """Embeddings of prompts and outputs of the rows with a non-empty output (computed once per context)."""
    def compute():
        instructions, inputs, outputs = fields_of(ctx)
        if ctx.embedder is None:
            raise MetricSkipped("needs an embedder")
        keep = [i for i, o in enumerate(outputs) if not is_empty(o)]
        if len(keep) < 3:
            raise MetricSkipped(f"needs at least 3 rows with a non-empty output, got {len(keep)}")
        Pv = ctx.embedder.embed([prompt_of(instructions[i], inputs[i]) for i in keep],
                               desc=f"embedding {ctx.corpus.name} prompts")
        Ov = ctx.embedder.embed([outputs[i] for i in keep], desc=f"embedding {ctx.corpus.name} outputs")
        return keep, _unit(Pv), _unit(Ov)

    return ctx.memo(("instruction.pairs",), compute)


def _unit(X):
    import numpy as np

    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def relevance_parts(Pv, Ov):
    """Own-pair cosines, and each row's mean cosine over the shuffled pairs it takes part in.

    The shuffled-pair baseline is exact, not sampled: the mean of cos(prompt_i, output_j) over all
    i ≠ j, which is what a random re-pairing gives in expectation. Row i's baseline averages its
    prompt against every other output and its output against every other prompt, in O(n·d).
    """
    import numpy as np

    own = np.einsum("ij,ij->i", Pv, Ov)
    m = len(own)
    base = ((Pv @ Ov.sum(0) - own) + (Ov @ Pv.sum(0) - own)) / (2 * (m - 1))
    return own, base


@metric("instr/relevance",
        needs=("texts", "embeddings"),
        higher_is_better=True,
        bounds=(-2, 2))
def relevance(ctx) -> Score:
    """Response relevance: mean cosine similarity of each output to its own prompt minus that of shuffled prompt–output pairs; higher is better.

    Prompt = instruction (+ input when given), embedded with the run's sentence embedder, as is each
    non-empty output (empty outputs are left out: ``instr/empty-rate`` counts them). Value =
    mean cos(prompt_i, output_i) − mean over i ≠ j of cos(prompt_i, output_j): 0 when outputs are no
    closer to their own prompt than to a random one, higher when each answers its own instruction.
    The baseline is the exact mean over all shuffled pairings (no sampling). Range [-2, 2], in
    practice [0, 1). Interval: bootstrap over rows of the per-row difference (own − that row's
    shuffled mean). details: ``own_mean`` (raw mean similarity), ``shuffled_mean``. Embedding
    similarity of question and answer as relevance: Es et al., "RAGAS: Automated Evaluation of
    Retrieval Augmented Generation", EACL 2024 (answer relevance); the shuffled baseline is the usual
    permutation control.
    """
    keep, Pv, Ov = _pairs(ctx)
    own, base = relevance_parts(Pv, Ov)
    d = own - base
    return Score(float(d.mean()), bootstrap_ci(d, seed=ctx.seed),
                 {"own_mean": round(float(own.mean()), 4), "shuffled_mean": round(float(base.mean()), 4),
                  "rows": len(keep), "left_out_empty": len(ctx.corpus.texts) - len(keep)})


@metric("instr/relevance-low-rate", args={"quantile": 0.95, "max_pairs": 2000000},
        needs=("texts", "embeddings"),
        higher_is_better=False,
        bounds=(0, 1),
        seeded=True)
def relevance_low_rate(ctx, quantile: float = 0.95, max_pairs: int = 2_000_000) -> Score:
    """Irrelevant-output rate: share of outputs no closer to their own prompt than the top 5% of shuffled prompt–output pairs; lower is better.

    With the embeddings of ``instr/relevance``, the threshold is the ``quantile`` (95th percentile)
    of cos(prompt_i, output_j) over shuffled pairs i ≠ j (all of them up to ``max_pairs``, else a
    seeded sample of that many); an output whose similarity to its own prompt is below it is
    flagged ``irrelevant``. Expect a few per cent even in good data (one-word labels and numbers sit
    far from their prompts): compare with the reference. ≈ 0.95 when outputs are unrelated to their
    prompts. Range [0, 1]. Interval: Wilson (the threshold's own noise is not included). details:
    threshold, examples (the least similar rows). Permutation baseline as in ``instr/relevance``.
    """
    import numpy as np

    instructions, inputs, outputs = fields_of(ctx)
    keep, Pv, Ov = _pairs(ctx)
    m = len(keep)
    own = np.einsum("ij,ij->i", Pv, Ov)
    if m * (m - 1) <= max_pairs:
        S = Pv @ Ov.T
        off = S[~np.eye(m, dtype=bool)]
    else:
        rng = ctx.rng("instr/relevance-low-rate")
        i = rng.integers(0, m, size=max_pairs)
        j = (i + rng.integers(1, m, size=max_pairs)) % m
        off = np.einsum("ij,ij->i", Pv[i], Ov[j])
    thr = float(np.quantile(off, quantile))
    low = np.flatnonzero(own < thr)
    order = low[np.argsort(own[low], kind="stable")]
    ex = [_example(keep[k], instructions, inputs, outputs, similarity=round(float(own[k]), 4))
          for k in order[:MAX_EXAMPLES]]
    flagged = sorted(int(keep[k]) for k in low)
    return Score(len(low) / m, wilson_ci(len(low), m),
                 {"count": int(len(low)), "rows": m, "threshold": round(thr, 4), "quantile": quantile,
                  "shuffled_pairs": int(len(off)), "left_out_empty": len(ctx.corpus.texts) - m, "examples": ex},
                 rows={"irrelevant": flagged})
