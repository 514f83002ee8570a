"""The layout shows the architecture: layers as folders, few modules at the top, no two modules named alike."""

from __future__ import annotations

from collections import Counter

from tests.conftest import ROOT

LAYERS = ("data", "metrics", "resources", "run", "stats", "analysis", "report", "cli", "integrations")


def test_layers_are_folders_and_the_top_is_small():
    pkg = ROOT / "harness"
    assert all((pkg / layer / "__init__.py").exists() for layer in LAYERS)
    top = sorted(p.name for p in pkg.glob("*.py"))
    assert len(top) <= 6, top
    assert (pkg / "metrics" / "direct").is_dir() and (pkg / "metrics" / "indirect").is_dir()


def test_no_two_modules_share_a_name():
    names = Counter(p.stem for p in (ROOT / "harness").rglob("*.py") if p.stem not in ("__init__", "__main__"))
    assert [n for n, c in names.items() if c > 1] == []


def test_every_command_is_one_module():
    from harness.cli.commands import discover

    mods = discover()
    assert {m.NAME for m in mods} >= {"compare", "correlate", "curate", "evaluate-modules", "judge", "lm-utility",
                                      "validate"}
    assert all(m.__name__.endswith("_cmd") for m in mods)
