"""Issue #23's crash scenarios against the compose stack: kill -9 of each service under load.

The same list as tests/e2e/test_crash_restart.py (which drives `make run`'s supervisor), here
with Docker's `restart: unless-stopped` doing the restart: each service's main process is
SIGKILLed from the host under a small load of chats, streams and searches. No request may hang
past its timeout, every error must be an envelope (or an SSE error event on an open stream), and
chats, search and indexing must work again within RECOVERY_S of the service being ready again.
A collection being indexed when its worker dies is indexed exactly once.

Seven crashes and restarts take minutes on 2 cores, so they run with `make test-compose`;
`make test` runs the rest of tests/compose (one replica crashing under load among them).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.compose.test_compose_stack import started_at
from tests.e2e.compose_backend import ComposeStack
from tests.e2e.test_crash_restart import (
    CRASH_ORDER,
    REQUEST_TIMEOUT_S,
    Load,
    _cut_by_gateway,
    wait_for,
    works_again,
)
from tests.e2e.test_faults import (
    assert_indexed_exactly_once,
    create_collection,
    files_of,
    wait_all_indexed,
    write_text_files,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.environ.get("LLMSERVER_E2E_BACKEND") != "compose",
        reason="seven crash-and-restart rounds: run with `make test-compose`",
    ),
]

logger = logging.getLogger(__name__)

RESTART_TIMEOUT_S = 180.0


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _logged_since(container: str, since: float, text: str) -> bool:
    completed = subprocess.run(
        ["docker", "logs", "--since", f"{since:.3f}", container],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return text in completed.stdout + completed.stderr


def ready_probe(stack: ComposeStack, service: str, container: str, since: float) -> bool:
    """The service's own readiness, as the local supervisor's health gate checks it."""
    if service == "redis":
        try:
            return bool(redis.Redis.from_url(stack.redis_url, socket_timeout=2).ping())
        except redis.RedisError:
            return False
    if service == "indexer":
        return _logged_since(container, since, "ready.")  # Celery's start-up line
    path = {"weaviate": "/v1/.well-known/ready", "tika": "/version"}.get(service, "/health")
    try:
        return _http_ready(stack.url(service) + path)
    except RuntimeError:  # inference's host port is not published again yet
        return False


def crash(stack: ComposeStack, service: str) -> tuple[str, float]:
    """SIGKILL the service's main process; the container's name and the wall-clock time."""
    container = stack.containers(service)[0]["Name"]
    stack.crash_container(container)
    return container, time.time()


@pytest.fixture(scope="module")
def crash_collection(compose_stack: ComposeStack) -> Iterator[str]:
    """A small indexed collection for the search part of the load."""
    name = f"crash_{uuid.uuid4().hex[:8]}"
    folder = compose_stack.docs_root / name
    write_text_files(folder, 2, name)
    with httpx.Client(base_url=compose_stack.url("gateway"), timeout=60) as client:
        create_collection(client, name, folder)
        wait_all_indexed(client, name, 2)
    yield name


@pytest.mark.parametrize("service", CRASH_ORDER)
def test_kill_9_under_load_docker_restarts_it_and_everything_works_again(
    compose_stack: ComposeStack, crash_collection: str, service: str
) -> None:
    stack = compose_stack
    wait_for(
        lambda: all(stack.containers(name) for name in CRASH_ORDER),
        RESTART_TIMEOUT_S,
        "every service running",
    )
    gateway = stack.url("gateway")
    wait_for(lambda: _http_ready(gateway + "/health"), RESTART_TIMEOUT_S, "the gateway healthy")
    client = httpx.Client(base_url=gateway, timeout=REQUEST_TIMEOUT_S)
    indexing = f"ix_{service}_{uuid.uuid4().hex[:6]}"
    try:
        with Load(gateway, crash_collection) as load:
            # Requests in flight when it dies: the load has been answered and is asking again.
            wait_for(lambda: len(load.outcomes) >= 2 and load.in_flight > 0, 60, "load running")
            if service == "indexer":
                folder = stack.docs_root / indexing
                write_text_files(folder, 8, indexing)
                create_collection(client, indexing, folder)
                wait_for(lambda: bool(files_of(client, indexing)), 30, "the scan queued files")
            container, killed_wall = crash(stack, service)
            killed_at = time.monotonic()
            wait_for(
                lambda: started_at(container) > killed_wall and bool(stack.containers(service)),
                RESTART_TIMEOUT_S,
                f"Docker restarted {service}",
            )
            ready_at = wait_for(
                lambda: ready_probe(stack, service, container, killed_wall),
                RESTART_TIMEOUT_S,
                f"{service} ready again",
            )
            recovery = works_again(client, stack.docs_root, crash_collection, service, ready_at)
            # Some load after the restart too: a request begun after it has been answered.
            wait_for(
                lambda: any(o.started > ready_at for o in load.outcomes),
                60,
                "a load request begun after the restart answered",
            )
        if service == "indexer":
            wait_all_indexed(client, indexing, 8)
            assert_indexed_exactly_once(client, stack, indexing)  # type: ignore[arg-type]
        wait_all_indexed(client, recovery.fresh, 1)
        logger.warning(
            "compose %s: ready %.1fs after kill -9; chat %.1fs, search %.1fs, new collection "
            "accepted %.1fs and indexed %.1fs after it was ready",
            service,
            ready_at - killed_at,
            max(0.0, recovery.chat_at - ready_at),
            max(0.0, recovery.search_at - ready_at),
            max(0.0, recovery.accepted_at - ready_at),
            time.monotonic() - ready_at,
        )
    finally:
        client.close()

    bad = [o for o in load.outcomes if o.problem and not _cut_by_gateway(service, o)]
    assert not bad, f"after kill -9 of {service}: {bad[:5]}"
    assert all(o.seconds < REQUEST_TIMEOUT_S for o in load.outcomes)
    assert any(o.status == 200 and o.started > ready_at for o in load.outcomes), (
        "no request of the load succeeded after the restart"
    )
