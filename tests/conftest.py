"""Shared fixtures. `stack` runs every real service for the end-to-end tests.

By default the services run as local processes (devstack). With LLMSERVER_E2E_BACKEND=compose
the same tests run against compose.yaml through testcontainers, where a Docker engine exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Ports, ServiceFailed, Stack, StackConfig
from tests.skip_policy import (  # noqa: F401  (hooks: pytest finds them on this module)
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"

logger = logging.getLogger(__name__)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the compose backend, tests marked local_only skip with their one-line reason."""
    if os.environ.get("LLMSERVER_E2E_BACKEND", "local") != "compose":
        return
    for item in items:
        marker = item.get_closest_marker("local_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"local stack only: {marker.args[0]}"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    backend = os.environ.get("LLMSERVER_E2E_BACKEND", "local")
    if backend == "compose":
        from tests.e2e.compose_backend import started_compose_stack

        with started_compose_stack(REPO_ROOT, tmp_path_factory.mktemp("compose")) as compose:
            yield compose  # type: ignore[misc]
        return

    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("stack"),
        models_dir=REPO_ROOT / "models",
        ports=Ports.free(),
    )
    local_stack = Stack(config)
    try:
        local_stack.start()
    except ServiceFailed as failure:
        pytest.fail(f"the stack did not start: {failure}", pytrace=False)
    try:
        yield local_stack
    finally:
        local_stack.stop()
