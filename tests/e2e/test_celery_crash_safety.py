"""Celery's own crash safety, each mechanism on its own, with the indexer's start-up recovery off.

The indexer survives a worker killed mid-file in two ways: Celery redelivers the message it
never acknowledged (`task_acks_late`, and `task_reject_on_worker_lost` when only a pool child
dies), and start-up recovery re-queues files left pending. Recovery alone would make a kill test
pass with both Celery settings removed, so here it is switched off (`INDEXER_RECOVER_ON_START=
false`; the worker logs that it skipped it) and each test shows one Celery mechanism bringing
the task back:

- a pool child SIGKILLed while the main worker process lives: the task is requeued at once
  (`task_reject_on_worker_lost` with `task_acks_late`); no restart, so no `worker_ready`;
- the whole worker SIGKILLed and started again: the unacknowledged message comes back from
  Redis after the visibility timeout (`task_acks_late`), set to 10 s here.

"Provably mid-file": the worker's Tika URL points at a gate in this test process that forwards
to the real Tika but holds the first extraction of the marked file. The kill comes only after
the gate saw that request, i.e. while the task had read the file and waited on its text.
"Completes once": the file ends indexed, its chunks are in Weaviate exactly once, and the
worker logged "indexed" for it once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Ports, Stack, StackConfig
from llmserver_indexer.tasks import RECOVERY_OFF_LINE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.local_only(
        "kills the indexer's pool child by pid and starts a worker with recovery off"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT_S = 10
# The gate holds a request this long at most, so a test that fails cannot leave it hanging.
HOLD_LIMIT_S = 120.0
# Hop-by-hop or recomputed headers, not forwarded either way (httpx decodes the body).
_SKIPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class TikaGate:
    """Forwards every request to Tika, but holds the first one whose body carries the armed
    marker until released, and counts the requests per marker."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.arrived = threading.Event()
        self.released = threading.Event()
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.seen: dict[bytes, int] = {}
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                gate.handle(self)

            do_POST = do_GET = do_PUT

            def log_message(self, *_: Any) -> None:
                pass  # the test's own assertions say what happened

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def arm(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker
            self.arrived.clear()
            self.released.clear()

    def count(self, marker: bytes) -> int:
        with self._lock:
            return self.seen.get(marker, 0)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else b""
        hold = False
        with self._lock:
            for marker in [*self.seen, self._marker]:
                if marker is not None and marker in body:
                    self.seen[marker] = self.seen.get(marker, 0) + 1
                    break
            if self._marker is not None and self._marker in body:
                hold, self._marker = True, None
        if hold:
            self.arrived.set()
            self.released.wait(HOLD_LIMIT_S)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIPPED_HEADERS}
        try:
            with httpx.Client(timeout=HOLD_LIMIT_S) as client:
                answer = client.request(
                    request.command, f"{self.upstream}{request.path}", headers=headers, content=body
                )
            request.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in _SKIPPED_HEADERS:
                    request.send_header(key, value)
            request.send_header("Content-Length", str(len(answer.content)))
            request.end_headers()
            request.wfile.write(answer.content)
        except (OSError, httpx.HTTPError):
            pass  # the worker that sent a held request was killed meanwhile: nobody listens

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


# -- the stack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tika_gate() -> Iterator[TikaGate]:
    gate = TikaGate("")  # the upstream is known once the stack has its ports
    try:
        yield gate
    finally:
        gate.close()


@pytest.fixture(scope="module")
def crash_stack(tika_gate: TikaGate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = Ports.free()
    tika_gate.upstream = f"http://127.0.0.1:{ports.tika}"
    stack = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("celery-crash"),
            models_dir=REPO_ROOT / "models",
            ports=ports,
            service_env={
                "indexer": {
                    "INDEXER_RECOVER_ON_START": "false",
                    "INDEXER_TIKA_URL": tika_gate.url,
                    # One pool child: the one that holds the task is the only child there is.
                    "INDEXER_CONCURRENCY": "1",
                    "INDEXER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
                },
                # Nor may localdocs' periodic rescan or its folder watcher queue the file again.
                "localdocs": {"LOCALDOCS_RESCAN_INTERVAL_S": "0", "LOCALDOCS_WATCH": "false"},
            },
        )
    )
    try:
        stack.start(["redis", "tika", "weaviate", "inference", "localdocs", "indexer"])
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def localdocs(crash_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=crash_stack.url("localdocs"), timeout=30) as client:
        yield client


# -- helpers ------------------------------------------------------------------------------------


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:.0f}s (last: {last!r})", pytrace=False)


def marked_document(stack: Stack, marker: str) -> tuple[str, Path]:
    """A collection name and its one text file, which carries `marker`."""
    name = f"crash-{uuid.uuid4().hex[:8]}"
    folder = stack.docs_root / name
    folder.mkdir(parents=True)
    path = folder / "ledger.txt"
    lines = [
        f"Entry {n} of ledger {marker}: the harbour master counted {n * 13} crates of tea."
        for n in range(60)
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return name, path


def file_record(localdocs: httpx.Client, name: str) -> dict[str, Any]:
    response = localdocs.get(f"/v1/localdocs/collections/{name}/files")
    assert response.status_code == 200, response.text[:300]
    records = response.json()["data"]
    assert len(records) == 1, records
    return records[0]


def pool_children(worker_pid: int) -> list[int]:
    """The pids whose parent is the worker's main process (its prefork pool)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        if int(stat.rsplit(")", 1)[1].split()[1]) == worker_pid:
            children.append(int(entry.name))
    return children


def weaviate_chunks(stack: Stack, name: str, path: Path) -> int:
    from llmserver_common import docstore

    client = docstore.connect_weaviate(
        stack.url("weaviate"), stack.weaviate_grpc_port, stack.weaviate_api_key, timeout_s=20
    )
    try:
        return docstore.count_chunks(client.collections.get(docstore.CHUNKS_CLASS), name, str(path))
    finally:
        client.close()


def recoveries_skipped(stack: Stack) -> int:
    """How many times a worker started and skipped its recovery."""
    return stack.log_path("indexer").read_text(errors="replace").count(RECOVERY_OFF_LINE)


def indexed_lines(stack: Stack, path: Path) -> list[str]:
    log = stack.log_path("indexer").read_text(errors="replace")
    return [line for line in log.splitlines() if f"{path}: indexed" in line]


def assert_completed_once(
    stack: Stack, localdocs: httpx.Client, gate: TikaGate, name: str, path: Path, marker: bytes
) -> None:
    def indexed() -> dict[str, Any] | None:
        record = file_record(localdocs, name)
        assert record["state"] != "failed", record
        return record if record["state"] == "indexed" else None

    record = wait_for(indexed, 90.0, f"{path.name} indexed after the kill")
    # Extracted again after the kill: the task ran a second time, not just its first run's end.
    assert gate.count(marker) >= 2, gate.count(marker)
    assert record["chunks"] > 0, record
    assert weaviate_chunks(stack, name, path) == record["chunks"], record
    assert len(indexed_lines(stack, path)) == 1, indexed_lines(stack, path)


def start_held_task(
    stack: Stack, localdocs: httpx.Client, gate: TikaGate
) -> tuple[str, Path, bytes]:
    """A collection whose one file's task is running and held inside Tika extraction."""
    marker = f"m{uuid.uuid4().hex}"
    name, path = marked_document(stack, marker)
    gate.arm(marker.encode())
    created = localdocs.post("/v1/localdocs/collections", json={"name": name, "paths": [str(path)]})
    assert created.status_code == 201, created.text[:300]
    assert gate.arrived.wait(60), "the worker never asked Tika for the marked file"
    assert file_record(localdocs, name)["state"] == "pending"
    return name, path, marker.encode()


# -- the tests ----------------------------------------------------------------------------------


def test_pool_child_killed_mid_file_is_requeued_and_completes_once(
    crash_stack: Stack, localdocs: httpx.Client, tika_gate: TikaGate
) -> None:
    """task_reject_on_worker_lost: the main process sees its child die and requeues the task."""
    worker = crash_stack.process_of("indexer")
    assert worker is not None and worker.poll() is None
    name, path, marker = start_held_task(crash_stack, localdocs, tika_gate)
    recoveries = recoveries_skipped(crash_stack)
    assert recoveries >= 1, "the worker started with its recovery on"

    children = pool_children(worker.pid)
    assert len(children) == 1, children  # concurrency 1: the child holding the task
    os.kill(children[0], signal.SIGKILL)
    tika_gate.released.set()

    assert_completed_once(crash_stack, localdocs, tika_gate, name, path, marker)
    # The worker itself never restarted: no worker_ready, no recovery, one and the same process.
    assert crash_stack.process_of("indexer") is worker and worker.poll() is None
    assert recoveries_skipped(crash_stack) == recoveries, "the worker restarted"


def unacked_index_file_tasks(stack: Stack, path: Path) -> list[float]:
    """When each unacknowledged index_file message for `path` was handed out, as kombu's Redis
    transport records it (hash `unacked`, sorted set `unacked_index`)."""
    import redis

    from llmserver_common import docstore

    with redis.Redis.from_url(stack.redis_url, socket_timeout=5) as client:
        handed_out = []
        for tag, raw in client.hgetall("unacked").items():
            message = json.loads(raw)[0]
            headers = message.get("headers") or {}
            if headers.get("task") == docstore.TASK_INDEX_FILE and str(path) in str(
                headers.get("argsrepr")
            ):
                score = client.zscore("unacked_index", tag)
                assert score is not None, tag
                handed_out.append(score)
        return handed_out


def test_whole_worker_killed_mid_file_is_redelivered_and_completes_once(
    crash_stack: Stack, localdocs: httpx.Client, tika_gate: TikaGate
) -> None:
    """task_acks_late: the message was never acknowledged, so Redis hands it out again once
    its visibility timeout passed, to a worker whose recovery re-queues nothing."""
    name, path, marker = start_held_task(crash_stack, localdocs, tika_gate)
    recoveries = recoveries_skipped(crash_stack)

    crash_stack.kill_service("indexer")  # SIGKILL to the main process and its pool at once
    tika_gate.released.set()
    handed_out = unacked_index_file_tasks(crash_stack, path)
    assert len(handed_out) == 1, "the killed task's message is not waiting unacknowledged"

    # kombu restores a message once it is older than the visibility timeout, on the worker's
    # first sweep at start-up and then only every 100 s: start the worker once it is that old.
    def past_visibility_timeout() -> bool:
        return time.time() - handed_out[0] > VISIBILITY_TIMEOUT_S + 1

    wait_for(past_visibility_timeout, VISIBILITY_TIMEOUT_S + 30, "the visibility timeout")
    crash_stack.start_service("indexer")

    assert_completed_once(crash_stack, localdocs, tika_gate, name, path, marker)
    assert recoveries_skipped(crash_stack) == recoveries + 1, "recovery was not disabled"
