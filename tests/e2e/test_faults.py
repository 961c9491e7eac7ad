"""Faults injected into a real stack: services killed, stopped and restarted under the gateway.

These tests stop and restart services, so they run on their own stack (one per module), never
on the shared session `stack`. Each fault is one test; they run in file order and each leaves
every service running again for the next.

The indexer runs here with a short retry backoff (INDEXER_RETRY_BACKOFF_MAX_S=2) and many retries
(INDEXER_TASK_MAX_RETRIES=40, so about 80 s of retrying) so that "retried until the service is
back" fits in a test; the Tika test restarts the indexer with 2 retries to see files fail.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from devstack.stack import Ports, Stack, StackConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.local_only(
        "stops and restarts local processes of a stack of its own; tests/compose covers a"
        " crashed replica"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

INDEX_TIMEOUT_S = 180.0
HTTP = httpx.Timeout(30.0, connect=2.0)

# A chat must not wait on a dead Weaviate for long: answered without references well within
# the gateway's own LocalDocs timeout (GATEWAY_LOCALDOCS_TIMEOUT_S, 30 s by default).
DEGRADED_CHAT_TIMEOUT_S = 25.0

FAULT_INDEXER_ENV = {"INDEXER_TASK_MAX_RETRIES": "40", "INDEXER_RETRY_BACKOFF_MAX_S": "2"}


# -- helpers -------------------------------------------------------------------------------------


def wait_for(
    probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    pytest.fail(f"{what}: not reached within {timeout_s:.0f}s (last: {last!r})", pytrace=False)


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body.get("error"), dict), body
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    for leak in ("Traceback", 'File "', "http://"):
        assert leak not in error["message"], error["message"]
    return error


def chat_body(**fields: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 2,
        "temperature": 0,
        **fields,
    }


def write_text_files(folder: Path, count: int, tag: str) -> list[Path]:
    """Plain-text documents with distinct content, a few chunks each."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        path = folder / f"{tag}-{index:02d}.txt"
        lines = [
            f"Document {tag} number {index}. The {tag} archive keeps record {index} of the "
            f"lighthouse keeper's log, entry {n}, noting wind, tide and passing ships."
            for n in range(40)
        ]
        path.write_text("\n".join(lines), encoding="utf-8")
        files.append(path)
    return files


def _get_ok(client: httpx.Client, path: str) -> Any:
    """GET that waits out a 503 with Retry-After (the contract's "try again shortly")."""
    for _ in range(10):
        response = client.get(path)
        if response.status_code != 503 or not response.headers.get("retry-after"):
            break
        time.sleep(min(float(response.headers["retry-after"]), 2.0))
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response.json()


def collection(client: httpx.Client, name: str) -> dict[str, Any]:
    return _get_ok(client, f"/v1/localdocs/collections/{name}")


def files_of(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    return _get_ok(client, f"/v1/localdocs/collections/{name}/files")["data"]


def wait_all_indexed(client: httpx.Client, name: str, expected: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view = collection(client, name)
        # While a (re)scan runs the counts may still show the previous round's failures: only a
        # settled collection with failed files is a failure.
        if view["files_failed"] and view["state"] != "indexing":
            failed = [f for f in files_of(client, name) if f["state"] == "failed"]
            pytest.fail(f"files failed in {name}: {failed}", pytrace=False)
        ok = view["files_total"] == expected and view["files_indexed"] == expected
        return view if ok and view["state"] == "ready" else None

    return wait_for(done, INDEX_TIMEOUT_S, f"all {expected} files of {name} indexed")


def create_collection(client: httpx.Client, name: str, folder: Path) -> dict[str, Any]:
    response = client.post("/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]})
    assert response.status_code == 201, response.text[:300]
    return response.json()


def weaviate_chunk_counts(stack: Stack, name: str, paths: list[str]) -> dict[str, int]:
    """Chunks actually stored in Weaviate per file path (and "*" for the whole collection)."""
    from llmserver_common import docstore

    client = docstore.connect_weaviate(
        stack.url("weaviate"), stack.weaviate_grpc_port, stack.weaviate_api_key, timeout_s=20
    )
    try:
        chunks = client.collections.get(docstore.CHUNKS_CLASS)
        counts = {path: docstore.count_chunks(chunks, name, path) for path in paths}
        counts["*"] = docstore.count_chunks(chunks, name)
        return counts
    finally:
        client.close()


def assert_indexed_exactly_once(client: httpx.Client, stack: Stack, name: str) -> None:
    """Every file indexed, and Weaviate holds exactly the chunks the file records claim."""
    records = files_of(client, name)
    assert records and all(r["state"] == "indexed" for r in records), records
    counts = weaviate_chunk_counts(stack, name, [r["path"] for r in records])
    for record in records:
        assert record["chunks"] > 0, record
        assert counts[record["path"]] == record["chunks"], (record, counts[record["path"]])
    assert counts["*"] == sum(r["chunks"] for r in records), counts
    assert collection(client, name)["chunks"] == counts["*"]


# -- the stack -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("faults"),
        models_dir=REPO_ROOT / "models",
        ports=Ports.free(),
        service_env={"indexer": dict(FAULT_INDEXER_ENV)},
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def gateway(fault_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_stack.url("gateway"), timeout=HTTP) as client:
        yield client


@pytest.fixture
def running(fault_stack: Stack) -> Iterator[Stack]:
    """Every service up before and after the test, whatever the test did to them."""
    for name in ("redis", "tika", "weaviate", "inference", "localdocs", "indexer", "gateway"):
        fault_stack.start_service(name)
    yield fault_stack
    for name in ("redis", "tika", "weaviate", "inference", "localdocs", "indexer", "gateway"):
        fault_stack.start_service(name)


# -- inference -----------------------------------------------------------------------------------


def test_inference_killed_mid_stream_ends_with_error_event_and_done(
    running: Stack, gateway: httpx.Client
) -> None:
    body = {
        "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
        "max_tokens": 1500,
        "temperature": 0,
        "stream": True,
    }
    events: list[str] = []
    killed_after = 0
    # The read timeout bounds the wait for each line: a hang fails here instead of blocking.
    with gateway.stream(
        "POST", "/v1/completions", json=body, timeout=httpx.Timeout(20.0, connect=2.0)
    ) as response:
        assert response.status_code == 200, response.read()[:300]
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[len("data: ") :]
            events.append(payload)
            if killed_after == 0 and payload != "[DONE]" and "error" not in json.loads(payload):
                chunk = json.loads(payload)
                assert not any(c.get("finish_reason") for c in chunk.get("choices", [])), (
                    "the stream finished before the kill; the prompt must generate longer"
                )
                if len(events) >= 3:
                    running.kill_service("inference")
                    killed_after = len(events)
    assert killed_after, f"inference was never killed; events: {events[:5]}"
    after = events[killed_after:]
    assert after and after[-1] == "[DONE]", after[-3:]
    errors = [json.loads(e) for e in after[:-1] if e != "[DONE]" and "error" in json.loads(e)]
    assert errors, f"no error event after the kill: {after[-5:]}"
    error = errors[-1]["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert "Traceback" not in error["message"] and "http://" not in error["message"]


def test_inference_down_is_503_with_retry_after_fast_then_recovers(
    running: Stack, gateway: httpx.Client
) -> None:
    running.stop_service("inference")
    for path, body in (
        ("/v1/chat/completions", chat_body()),
        ("/v1/chat/completions", chat_body(stream=True)),
        ("/v1/completions", {"prompt": "Hi", "max_tokens": 2}),
        ("/v1/embeddings", {"input": "hello"}),
    ):
        started = time.monotonic()
        response = gateway.post(path, json=body, timeout=httpx.Timeout(2.0, connect=1.0))
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.status_code, response.text[:300])
        assert response.headers.get("retry-after", "").isdigit(), (path, response.headers)
        assert elapsed < 2.0, (path, elapsed)
        assert_envelope(response)
    health = gateway.get("/health", timeout=5)
    assert health.status_code == 503, health.text[:300]

    gateway_pid = running._running["gateway"].process.pid
    running.start_service("inference")  # returns once inference's /health says 200
    restarted = time.monotonic()

    def answers() -> bool:
        return gateway.post("/v1/chat/completions", json=chat_body(), timeout=5).status_code == 200

    wait_for(answers, 10.0, "chat answers again after inference restarted", interval_s=0.25)
    assert time.monotonic() - restarted <= 10.0
    # Recovery without restarting the gateway: the very same process answered.
    assert running._running["gateway"].process.pid == gateway_pid


# -- Weaviate ------------------------------------------------------------------------------------


def test_weaviate_down_chat_degrades_localdocs_503_and_indexing_waits(
    running: Stack, gateway: httpx.Client
) -> None:
    name = f"wv_{uuid.uuid4().hex[:8]}"
    folder = running.docs_root / name
    write_text_files(folder, 2, "before")
    create_collection(gateway, name, folder)
    wait_all_indexed(gateway, name, 2)

    running.stop_service("weaviate")
    try:
        started = time.monotonic()
        chat = gateway.post(
            "/v1/chat/completions",
            json=chat_body(
                messages=[{"role": "user", "content": "What does the lighthouse log note?"}],
                localdocs={"collections": [name]},
            ),
            timeout=httpx.Timeout(DEGRADED_CHAT_TIMEOUT_S, connect=2.0),
        )
        print(f"chat with Weaviate down answered in {time.monotonic() - started:.1f}s")
        assert chat.status_code == 200, chat.text[:300]
        assert chat.json()["choices"][0].get("references") is None, chat.json()
        assert chat.json()["choices"][0]["message"]["content"] is not None

        started = time.monotonic()
        search = gateway.post(
            "/v1/localdocs/search", json={"query": "lighthouse", "collections": [name]}
        )
        print(f"search with Weaviate down answered in {time.monotonic() - started:.1f}s")
        assert search.status_code == 503, search.text[:300]
        assert search.headers.get("retry-after"), search.headers
        assert_envelope(search)
        create = gateway.post(
            "/v1/localdocs/collections", json={"name": f"{name}_new", "paths": [str(folder)]}
        )
        assert create.status_code == 503, create.text[:300]
        assert_envelope(create)

        # New files while Weaviate is down: taken by the worker, retried, not failed. The
        # worker's retry lines prove it tried them (a worker that never ran would leave the
        # files pending and unfailed too).
        during = write_text_files(folder, 4, "during")
        reindex = gateway.post(f"/v1/localdocs/collections/{name}/reindex")
        assert reindex.status_code == 200, reindex.text[:300]
        log = running.log_path("indexer")

        def retried() -> set[str] | None:
            lines = log.read_text(errors="replace").splitlines()
            seen = {p.name for p in during if any(f"retrying {p}" in line for line in lines)}
            return seen if len(seen) == len(during) else None

        wait_for(retried, 60.0, "the worker retried every new file while Weaviate was down")
        view = collection(gateway, name)
        assert view["files_failed"] == 0, files_of(gateway, name)
        assert view["files_indexed"] == 2, "indexed while Weaviate was down?"
    finally:
        running.start_service("weaviate")

    wait_all_indexed(gateway, name, 6)
    assert_indexed_exactly_once(gateway, running, name)
    search = gateway.post(
        "/v1/localdocs/search", json={"query": "lighthouse", "collections": [name]}
    )
    assert search.status_code == 200, search.text[:300]


# -- Redis ---------------------------------------------------------------------------------------


def test_redis_restart_workers_reconnect_and_queued_work_survives(
    running: Stack, gateway: httpx.Client
) -> None:
    import redis

    # 1. Redis restarted under a running worker and API: both reconnect.
    running.stop_service("redis")
    running.start_service("redis")
    first = f"rd_{uuid.uuid4().hex[:8]}"
    folder = running.docs_root / first
    write_text_files(folder, 3, first)

    def created() -> bool:
        response = gateway.post(
            "/v1/localdocs/collections", json={"name": first, "paths": [str(folder)]}
        )
        return response.status_code == 201

    wait_for(created, 30.0, "localdocs accepts a collection after Redis restarted")
    wait_all_indexed(gateway, first, 3)
    assert running.is_running("indexer")

    # 2. Work queued while no worker runs survives a Redis restart (append-only file on).
    running.stop_service("indexer")
    second = f"rq_{uuid.uuid4().hex[:8]}"
    folder = running.docs_root / second
    write_text_files(folder, 3, second)
    create_collection(gateway, second, folder)
    with redis.Redis.from_url(running.redis_url, socket_timeout=5) as client:
        queued_before = client.llen("localdocs-indexing")
    assert queued_before >= 1, "the scan task should wait in the queue"
    running.stop_service("redis")  # SIGTERM: Redis writes its append-only file out
    running.start_service("redis")
    with redis.Redis.from_url(running.redis_url, socket_timeout=5) as client:
        queued_after = client.llen("localdocs-indexing")
    assert queued_after == queued_before, (queued_before, queued_after)
    running.start_service("indexer")
    wait_all_indexed(gateway, second, 3)
    assert_indexed_exactly_once(gateway, running, second)


# -- the indexer worker --------------------------------------------------------------------------


def test_worker_sigkilled_mid_file_every_file_indexed_exactly_once(
    running: Stack, gateway: httpx.Client
) -> None:
    name = f"kill_{uuid.uuid4().hex[:8]}"
    folder = running.docs_root / name
    count = 12
    write_text_files(folder, count, name)
    create_collection(gateway, name, folder)

    """The whole restart path (start-up recovery included) ends with every file once;
    test_celery_crash_safety.py shows each Celery mechanism on its own."""

    def some_indexed_not_all() -> bool:
        view = collection(gateway, name)
        return view["files_total"] == count and 1 <= view["files_indexed"] < count

    # Kill once the workers are busy with the collection: some files done, others held.
    wait_for(some_indexed_not_all, 60.0, "the first files indexed", interval_s=0.1)
    before_kill = collection(gateway, name)
    running.kill_service("indexer")
    assert before_kill["files_indexed"] < count, "every file was indexed before the kill"

    running.start_service("indexer")
    wait_all_indexed(gateway, name, count)
    assert_indexed_exactly_once(gateway, running, name)


# -- Tika ----------------------------------------------------------------------------------------


def test_tika_down_files_retried_then_failed_with_a_reason(
    running: Stack, gateway: httpx.Client
) -> None:
    # Few retries, so "then failed" comes within the test.
    running.config.service_env["indexer"] = {
        "INDEXER_TASK_MAX_RETRIES": "2",
        "INDEXER_RETRY_BACKOFF_MAX_S": "1",
    }
    try:
        running.stop_service("indexer")
        running.start_service("indexer")
        running.stop_service("tika")
        name = f"tika_{uuid.uuid4().hex[:8]}"
        folder = running.docs_root / name
        paths = write_text_files(folder, 2, name)
        create_collection(gateway, name, folder)

        def all_failed() -> list[dict[str, Any]] | None:
            records = files_of(gateway, name)
            done = len(records) == 2 and all(r["state"] == "failed" for r in records)
            return records if done else None

        records = wait_for(all_failed, 90.0, "files failed while Tika is down")
        for record in records:
            assert isinstance(record["error"], str) and record["error"].strip(), record
            assert "Traceback" not in record["error"], record
        log = running.log_path("indexer").read_text(errors="replace")
        for path in paths:
            assert any("retrying" in line and path.name in line for line in log.splitlines()), (
                f"no retry logged for {path.name}"
            )
        view = collection(gateway, name)
        assert view["files_failed"] == 2 and view["files_indexed"] == 0, view

        # Tika back: a reindex gives the failed files another go.
        running.start_service("tika")
        response = gateway.post(f"/v1/localdocs/collections/{name}/reindex")
        assert response.status_code == 200, response.text[:300]
        wait_all_indexed(gateway, name, 2)
    finally:
        running.config.service_env["indexer"] = dict(FAULT_INDEXER_ENV)
        running.start_service("tika")
        running.stop_service("indexer")
        running.start_service("indexer")


# -- indexer limits (settings reachable through the API) -----------------------------------------


def test_indexer_limits_file_size_and_files_per_collection(
    running: Stack, gateway: httpx.Client
) -> None:
    running.config.service_env["indexer"] = {
        **FAULT_INDEXER_ENV,
        "INDEXER_MAX_FILE_BYTES": "4096",
        "INDEXER_MAX_FILES_PER_COLLECTION": "3",
    }
    try:
        running.stop_service("indexer")
        running.start_service("indexer")

        sized = f"size_{uuid.uuid4().hex[:8]}"
        folder = running.docs_root / sized
        folder.mkdir()
        (folder / "small.txt").write_text("A short note about tide tables.", encoding="utf-8")
        (folder / "large.txt").write_text("Long text about tides. " * 400, encoding="utf-8")
        create_collection(gateway, sized, folder)

        def settled() -> list[dict[str, Any]] | None:
            records = files_of(gateway, sized)
            done = len(records) == 2 and all(r["state"] != "pending" for r in records)
            return records if done else None

        records = {Path(r["path"]).name: r for r in wait_for(settled, 120.0, "size limit")}
        assert records["small.txt"]["state"] == "indexed", records
        assert records["large.txt"]["state"] == "failed", records
        assert "4096" in (records["large.txt"]["error"] or ""), records

        many = f"many_{uuid.uuid4().hex[:8]}"
        folder = running.docs_root / many
        write_text_files(folder, 5, "many")
        # Short enough to stay under the size limit: only the count limit applies here.
        for path in folder.iterdir():
            path.write_text(f"Short document {path.stem}.", encoding="utf-8")
        create_collection(gateway, many, folder)
        view = wait_all_indexed(gateway, many, 3)
        assert view["files_total"] == 3, view
    finally:
        running.config.service_env["indexer"] = dict(FAULT_INDEXER_ENV)
        running.stop_service("indexer")
        running.start_service("indexer")
