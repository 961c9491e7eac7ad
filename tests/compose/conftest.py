"""One compose stack for all of tests/compose (the session's own under make test-compose)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.compose_backend import ComposeStack, started_compose_stack

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def compose_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    if os.environ.get("LLMSERVER_E2E_BACKEND") == "compose":
        yield request.getfixturevalue("stack")  # `make test-compose`: one stack for every module
        return
    with started_compose_stack(REPO_ROOT, tmp_path_factory.mktemp("compose")) as stack:
        yield stack
