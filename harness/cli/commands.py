"""Sub-commands beyond eval/run/metrics/report, one module each: ``harness/cli/<name>_cmd.py``.

Every such module defines ``NAME`` (the sub-command), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. The CLI discovers them by listing its package, so adding a command
touches no other file. Modules import only argparse-level things at the top; heavy work is imported
inside ``run``.
"""

from __future__ import annotations

import importlib
import pkgutil


def discover() -> list:
    """The command modules, sorted by name."""
    import harness.cli as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.endswith("_cmd"):
            mods.append(importlib.import_module(f"{pkg.__name__}.{info.name}"))
    return mods
