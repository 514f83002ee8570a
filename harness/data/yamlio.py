"""YAML files the user writes (suites, schemas): safe_load, with a duplicated key an error.

PyYAML's ``safe_load`` keeps the last of two equal keys and drops the first without a word
(``candidates:`` twice silently loses a list). Here a duplicate key at any depth raises a
UserError naming the file, the key and both lines.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError


class _Duplicate(Exception):
    def __init__(self, key, first: int, second: int):
        self.key, self.first, self.second = key, first, second


def _loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _value in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue  # yaml reports unhashable keys itself
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise _Duplicate(key, seen[key], line)
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_yaml(text: str, path: Path | str, fix: str):
    """Parse ``text`` (from ``path``) as YAML; syntax errors and duplicate keys become one-line UserErrors."""
    import yaml

    loader = _loader()(text)  # a SafeLoader subclass: no Python tags
    try:
        return loader.get_single_data()
    except _Duplicate as d:
        raise UserError(f"{path}: line {d.second}: key '{d.key}' is given twice (first on line {d.first}); "
                        "YAML would keep only the second",
                        "merge the two into one key (a list takes several items)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark else "somewhere"
        raise UserError(f"{path}: {at}: not valid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})",
                        fix) from None
    finally:
        loader.dispose()
