"""Fixtures for the gateway's unit tests; the fakes themselves live in gateway_fakes.py."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

# The fakes module sits next to this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

from gateway_fakes import (  # noqa: E402
    FakeInference,
    FakeLocalDocs,
    Upstreams,
    free_port,
    make_settings,
)

from llmserver_gateway.app import create_app  # noqa: E402


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams(FakeInference("a"), FakeInference("b"), FakeLocalDocs())


@pytest.fixture
def gateway(upstreams: Upstreams) -> Callable[..., TestClient]:
    """Factory: a TestClient on a gateway wired to the fakes, with settings overrides."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), transport=upstreams.transport())
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Run ASGI apps under uvicorn on free loopback ports; returns their base URLs."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
