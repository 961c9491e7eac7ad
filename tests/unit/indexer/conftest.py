"""The `world` fixture of the indexer's unit tests; the fakes live in indexer_world.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The world module sits next to this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

from indexer_world import make_world  # noqa: E402


@pytest.fixture
def world(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    yield from make_world(redis_url, tmp_path, monkeypatch)
