"""Reading workload and driver files: YAML as PyYAML's safe loader reads it,
except that a key given twice in one mapping is an error.

YAML requires the keys of a mapping to be unique, but PyYAML quietly keeps
the last value of a repeated key, so a file holding `producerRate` twice
would run at whichever rate comes last without a word.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

__all__ = ["load_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


# PyYAML comes without type information, so its classes are Any to mypy.
class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        first_lines: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            # A merge (`<<: *defaults`) may be overridden by design.
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = first_lines.get(key)
            except TypeError:  # unhashable: the base class says so
                continue
            if first is not None:
                lines = f"line {line}" if first == line else f"lines {first} and {line}"
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on {lines}"
                )
            first_lines[key] = line
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep)
        return mapping


def load_yaml(data: str | bytes) -> Any:
    """The one document in `data`; a yaml.YAMLError if it is not valid YAML
    or repeats a key."""
    loader = _UniqueKeyLoader(data)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
