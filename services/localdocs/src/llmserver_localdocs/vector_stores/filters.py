"""OpenAI's attribute filters (comparison and compound) evaluated against a file's attributes.

A comparison on a key the file does not have, or between a number and a string, is false
(`ne` and `nin` included: they hold only for a value that is there and differs).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _same(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right


def _compare(kind: str, actual: Any, expected: Any) -> bool:
    if kind in ("in", "nin"):
        options = expected if isinstance(expected, list) else [expected]
        found = any(_same(actual, option) for option in options)
        return found if kind == "in" else not found
    if kind == "eq":
        return _same(actual, expected)
    if kind == "ne":
        return _kind(actual) == _kind(expected) and actual != expected
    if _kind(actual) != _kind(expected) or _kind(actual) == "bool":
        return False
    return _ORDERED[kind](actual, expected)


def matches(condition: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """Whether a file with `attributes` passes `condition` (a filter as the API receives it)."""
    kind = condition["type"]
    if kind in ("and", "or"):
        results = (matches(part, attributes) for part in condition["filters"])
        return all(results) if kind == "and" else any(results)
    key = condition["key"]
    if key not in attributes:
        return False
    return _compare(kind, attributes[key], condition["value"])
