"""Validators every service's settings class shares (one place, not four copies)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any


def split_list(value: Any) -> Any:
    """A list setting given as a JSON list or a comma-separated string (docs/DEVELOPING.md)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_log_level(level: str) -> str:
    name = level.upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}")
    return name


def absolute_paths(paths: list[Path]) -> list[Path]:
    """Folders such as ALLOWED_ROOTS: absolute, symlinks resolved."""
    for path in paths:
        if not path.is_absolute():
            raise ValueError(f"'{path}' is not an absolute path")
    return [path.resolve() for path in paths]
