"""Validation of what users name: collection names and paths under the allowed roots."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

COLLECTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PathNotAllowed(ValueError):
    """A path outside the allowed roots, or one that does not exist."""


def is_valid_collection_name(name: str) -> bool:
    return bool(COLLECTION_NAME_RE.fullmatch(name))


def resolve_allowed_path(raw: str | os.PathLike[str], roots: Sequence[Path]) -> Path:
    """The real path of `raw` if it exists and lies under one of `roots`, else PathNotAllowed.

    Symlinks are resolved first, so a link inside a root that leads outside it is refused, and
    `..` can only lead somewhere that is itself under a root.
    """
    text = os.fspath(raw)
    if not text or "\x00" in text:
        raise PathNotAllowed("the path is empty or contains a NUL byte")
    candidate = Path(text)
    if not candidate.is_absolute():
        raise PathNotAllowed(f"'{text}' is not an absolute path")
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotAllowed(f"'{text}' does not exist") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise PathNotAllowed(f"'{text}' cannot be resolved: {exc.__class__.__name__}") from None
    for root in roots:
        real_root = Path(root).resolve()
        if real == real_root or real.is_relative_to(real_root):
            return real
    raise PathNotAllowed(f"'{text}' is outside the allowed folders")
