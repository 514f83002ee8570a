"""Sub-commands beyond eval/run/metrics/report, one module each.

Every module here defines ``NAME`` (the sub-command), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. The CLI discovers them by listing this package, so adding a command
touches no other file. Modules import only argparse-level things at the top; heavy work is imported
inside ``run``.
"""

from __future__ import annotations

import importlib
import pkgutil


def discover() -> list:
    """The command modules, sorted by name."""
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods
