"""`make run`'s restart policy on the real local stack: every service SIGKILLed in turn under load.

The stack here runs with devstack's Supervisor (what `make run` drives), and each service is
killed from outside, with `kill -9` of its process group, as a crash would be: nothing tells the
stack. While it is down, a small load (a chat, a streamed chat, a search, in a loop) must get
answers within its timeout that are 200s or OpenAI envelopes (an SSE error event then [DONE] on
an open stream); only the gateway's own death may cut connections. Once the supervisor has the
service back, chats, search and indexing must work again within RECOVERY_S.

The module also checks that inference's /health stays fast and 200 while a model file is being
written into its models folder and a long generation runs (it has its own models folder for
that, linking the real models).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.stack import Ports, Stack, StackConfig
from devstack.supervisor import State, Supervisor
from tests.e2e.test_faults import (
    FAULT_INDEXER_ENV,
    assert_indexed_exactly_once,
    create_collection,
    files_of,
    wait_all_indexed,
    write_text_files,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.local_only(
        "drives make run's own supervisor; tests/compose crashes a replica under Docker's"
        " restart policy"
    ),
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the issue asks: working again within 10 s of the restart.
RECOVERY_S = 10.0
# Longest a request of the load may take; more is a hang.
REQUEST_TIMEOUT_S = 30.0
RESTART_TIMEOUT_S = 150.0
CRASH_ORDER = ["inference", "localdocs", "indexer", "gateway", "weaviate", "redis", "tika"]


# -- the stack, supervised as `make run` does ----------------------------------------------------


@dataclass
class Supervised:
    stack: Stack
    supervisor: Supervisor
    collection: str

    def url(self, name: str) -> str:
        return self.stack.url(name)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    models = tmp_path_factory.mktemp("models")
    for source in (REPO_ROOT / "models").iterdir():
        # Links to the real files keep their (old) mtimes: they are not "landing".
        (models / source.name).symlink_to(source.resolve())
    stack = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("crash"),
            models_dir=models,
            ports=Ports.free(),
            service_env={"indexer": dict(FAULT_INDEXER_ENV)},
        )
    )
    supervisor = Supervisor(stack)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    try:
        stack.start()
        thread.start()
        with httpx.Client(base_url=stack.url("gateway"), timeout=REQUEST_TIMEOUT_S) as client:
            name = f"crash_{uuid.uuid4().hex[:8]}"
            folder = stack.docs_root / name
            write_text_files(folder, 2, name)
            create_collection(client, name, folder)
            wait_all_indexed(client, name, 2)
        yield Supervised(stack, supervisor, name)
    finally:
        stop.set()
        thread.join(timeout=30)
        stack.stop()


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    what: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP answer (connection refused or cut)
    problem: str = ""  # empty when the answer is acceptable


def _envelope_problem(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without an error envelope: {response.text[:200]!r}"
    if not isinstance(error, dict) or not {"message", "type", "param", "code"} <= set(error):
        return f"{response.status_code} with a malformed envelope: {error!r}"
    if "Traceback" in error["message"]:
        return f"a traceback in the envelope: {error['message'][:200]!r}"
    return ""


def _stream_problem(lines: list[str]) -> str:
    events = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return f"stream did not end with [DONE]: {events[-3:]!r}"
    for event in events[:-1]:
        payload = json.loads(event)
        if "error" in payload and not {"message", "type"} <= set(payload["error"]):
            return f"malformed error event: {payload!r}"
    return ""


class Load:
    """A few clients in a loop: chat, streamed chat, search; every answer recorded."""

    def __init__(self, base_url: str, collection: str) -> None:
        self.outcomes: list[Outcome] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=2.0)
        )
        self._collection = collection
        self._threads = [
            threading.Thread(target=self._loop, args=(kinds,), daemon=True)
            for kinds in (("chat", "stream"), ("search", "chat"))
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        self._client.close()
        assert not any(t.is_alive() for t in self._threads), "a load request never returned"

    def _loop(self, kinds: tuple[str, ...]) -> None:
        index = 0
        while not self._stop.is_set():
            what = kinds[index % len(kinds)]
            index += 1
            started = time.monotonic()
            status: int | None = None
            with self._lock:
                self.in_flight += 1
            try:
                status, problem = self._one(what)
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"transport:{type(exc).__name__}"
            finally:
                with self._lock:
                    self.in_flight -= 1
            self.outcomes.append(
                Outcome(what, started, time.monotonic() - started, status, problem)
            )
            time.sleep(0.1)

    def _one(self, what: str) -> tuple[int, str]:
        if what == "search":
            response = self._client.post(
                "/v1/localdocs/search",
                json={"query": "lighthouse keeper", "collections": [self._collection]},
            )
            return response.status_code, (
                "" if response.status_code == 200 else _envelope_problem(response)
            )
        body = {
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 12,
            "temperature": 0,
            "localdocs": False,
            "stream": what == "stream",
        }
        if what == "chat":
            response = self._client.post("/v1/chat/completions", json=body)
            return response.status_code, (
                "" if response.status_code == 200 else _envelope_problem(response)
            )
        with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, _envelope_problem(response)
            return 200, _stream_problem(list(response.iter_lines()))


# -- helpers -------------------------------------------------------------------------------------


def kill_minus_nine(stack: Stack, name: str) -> float:
    """SIGKILL the service's process group behind the stack's back; returns when it happened."""
    process = stack.process_of(name)
    assert process is not None and process.poll() is None, f"{name} is not running"
    os.killpg(process.pid, signal.SIGKILL)
    return time.monotonic()


def wait_for(probe: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until `probe` is true; returns the time it became true."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return time.monotonic()
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:.0f}s (last error: {last!r})", pytrace=False)


def chat_ok(client: httpx.Client) -> bool:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "localdocs": False}
    return client.post("/v1/chat/completions", json=body, timeout=5).status_code == 200


def search_ok(client: httpx.Client, collection: str) -> bool:
    # A generous answer time: right after the indexer's restart the query's embedding waits
    # behind the interrupted collection's re-indexing on 2 cores (seen: 9.8 s). What must hold
    # is that a search asked within the recovery window is answered, not that it is fast.
    body = {"query": "wind and tide", "collections": [collection]}
    return client.post("/v1/localdocs/search", json=body, timeout=20).status_code == 200


def creates_collection(client: httpx.Client, name: str, folder: Path) -> Callable[[], bool]:
    def attempt() -> bool:
        response = client.post(
            "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
        )
        return response.status_code == 201

    return attempt


def left_of(window_s: float, since: float) -> float:
    """What is left of a window that opened at `since` (at least a moment, to try once)."""
    return max(0.5, since + window_s - time.monotonic())


@dataclass
class Recovery:
    """When each part worked again after a restart, and the collection made to prove it."""

    chat_at: float
    accepted_at: float
    search_at: float
    fresh: str


def works_again(
    client: httpx.Client, docs_root: Path, collection: str, service: str, ready_at: float
) -> Recovery:
    """Chat, a new collection and search, each asked within RECOVERY_S of `ready_at`."""
    chat_at = wait_for(
        lambda: chat_ok(client), left_of(RECOVERY_S, ready_at), f"chat after {service}"
    )
    fresh = f"nw_{service}_{uuid.uuid4().hex[:6]}"
    folder = docs_root / fresh
    write_text_files(folder, 1, fresh)
    accepted_at = wait_for(
        creates_collection(client, fresh, folder),
        left_of(RECOVERY_S, ready_at),
        f"a collection accepted after {service} restarted",
    )
    search_at = wait_for(
        lambda: search_ok(client, collection),
        left_of(RECOVERY_S, ready_at),
        f"search after {service}",
    )
    assert accepted_at - ready_at <= RECOVERY_S
    return Recovery(chat_at, accepted_at, search_at, fresh)


def everything_up(supervised: Supervised) -> None:
    """Every service running and watched (a previous test's restart may still be finishing)."""
    stack, supervisor = supervised.stack, supervised.supervisor
    wait_for(
        lambda: all(
            supervisor.state(name) is State.RUNNING and stack.is_running(name)
            for name in CRASH_ORDER
        ),
        60,
        "every service running under the supervisor",
    )


# -- /health while a model file lands and a long generation runs ---------------------------------


def test_health_stays_fast_and_200_while_a_model_file_lands_during_a_long_generation(
    supervised: Supervised,
) -> None:
    stack = supervised.stack
    everything_up(supervised)
    landing = stack.models_dir / "landing-copy.gguf"
    source = next(p for p in (REPO_ROOT / "models").glob("*.gguf") if "gemma" in p.name)
    generated: list[str] = []
    probes: list[tuple[float, int | None]] = []
    listings: list[int] = []
    done = threading.Event()

    def long_generation() -> None:
        body = {"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 400, "temperature": 0, "stream": True}
        with httpx.stream(
            "POST", f"{stack.url('gateway')}/v1/completions", json=body, timeout=60
        ) as response:
            generated.extend(response.iter_lines())

    def list_models() -> None:
        # Clients list models while the file lands (each listing scans the folder).
        with httpx.Client(base_url=stack.url("inference"), timeout=10) as client:
            while not done.is_set():
                listings.append(client.get("/v1/models").status_code)
                time.sleep(0.05)

    workers = [threading.Thread(target=f, daemon=True) for f in (long_generation, list_models)]
    for worker in workers:
        worker.start()
    try:
        with httpx.Client(timeout=httpx.Timeout(1.0)) as prober:  # the gateway's health timeout

            def probe() -> None:
                started = time.monotonic()
                try:
                    status: int | None = prober.get(f"{stack.url('inference')}/health").status_code
                except httpx.HTTPError:
                    status = None
                probes.append((time.monotonic() - started, status))

            # 50 MB of a real GGUF (its header and vocabulary first), written over ~5 s.
            with source.open("rb") as reader, landing.open("wb") as writer:
                for _ in range(50):
                    writer.write(reader.read(1 << 20))
                    writer.flush()
                    probe()
                    time.sleep(0.1)
            # ...and while it settles and is read for the first time.
            for _ in range(40):
                probe()
                time.sleep(0.1)
    finally:
        done.set()
        for worker in workers:
            worker.join(timeout=60)
        landing.unlink(missing_ok=True)

    slow = [(round(s, 2), status) for s, status in probes if status != 200 or s > 0.5]
    assert not slow, f"/health was slow or not 200 in {len(slow)} of {len(probes)} probes: {slow}"
    events = [line for line in generated if line.startswith("data: ")]
    assert len(events) > 50 and events[-1] == "data: [DONE]", events[-3:]
    assert listings and set(listings) == {200}, sorted(set(listings))
    gateway = httpx.get(f"{stack.url('gateway')}/health", timeout=5).json()
    assert all(r["state"] == "up" for r in gateway["inference"]), gateway


# -- kill -9 of each service in turn -------------------------------------------------------------


@pytest.mark.parametrize("service", CRASH_ORDER)
def test_kill_9_under_load_is_restarted_and_everything_works_again(
    supervised: Supervised, service: str
) -> None:
    stack, supervisor = supervised.stack, supervised.supervisor
    everything_up(supervised)
    before = len(supervisor.restarts_of(service))
    others = {n: stack.process_of(n).pid for n in CRASH_ORDER if n != service}  # type: ignore[union-attr]
    client = httpx.Client(base_url=stack.url("gateway"), timeout=REQUEST_TIMEOUT_S)
    indexing = f"ix_{service}_{uuid.uuid4().hex[:6]}"
    try:
        with Load(stack.url("gateway"), supervised.collection) as load:
            # Requests in flight when it dies: the load has been answered and is asking again.
            wait_for(lambda: len(load.outcomes) >= 2 and load.in_flight > 0, 60, "load running")
            if service == "indexer":
                # A collection mid-indexing when its worker dies must complete exactly once.
                folder = stack.docs_root / indexing
                write_text_files(folder, 8, indexing)
                create_collection(client, indexing, folder)
                wait_for(lambda: bool(files_of(client, indexing)), 30, "the scan queued files")
            killed_at = kill_minus_nine(stack, service)
            wait_for(
                lambda: len(supervisor.restarts_of(service)) > before,
                RESTART_TIMEOUT_S,
                f"the supervisor restarted {service}",
            )
            restart = supervisor.restarts_of(service)[-1]
            assert restart.exit == "signal SIGKILL", restart
            recovery = works_again(
                client, stack.docs_root, supervised.collection, service, restart.ready_at
            )
            # Some load after the restart too: a request begun after it has been answered.
            wait_for(
                lambda: any(o.started > restart.ready_at for o in load.outcomes),
                60,
                "a load request begun after the restart answered",
            )
        logger.warning(
            "%s: back %.1fs after kill -9; chat answered %.1fs and search %.1fs after the restart",
            service,
            restart.ready_at - killed_at,
            max(0.0, recovery.chat_at - restart.ready_at),
            max(0.0, recovery.search_at - restart.ready_at),
        )
        if service == "indexer":
            # The collection whose worker died mid-way: every file indexed, none twice.
            wait_all_indexed(client, indexing, 8)
            assert_indexed_exactly_once(client, stack, indexing)
        wait_all_indexed(client, recovery.fresh, 1)
        logger.warning(
            "%s: a new collection was accepted %.1fs and indexed %.1fs after the restart",
            service,
            recovery.accepted_at - restart.ready_at,
            time.monotonic() - restart.ready_at,
        )
    finally:
        client.close()

    bad = [o for o in load.outcomes if o.problem and not _cut_by_gateway(service, o)]
    assert not bad, f"after kill -9 of {service}: {bad[:5]}"
    assert all(o.seconds < REQUEST_TIMEOUT_S for o in load.outcomes)
    assert any(o.status == 200 and o.started > restart.ready_at for o in load.outcomes), (
        "no request of the load succeeded after the restart"
    )
    # The others were left alone: same processes as before the kill.
    for name, pid in others.items():
        assert stack.process_of(name).pid == pid, f"{name} was restarted too"  # type: ignore[union-attr]


def _cut_by_gateway(service: str, outcome: Outcome) -> bool:
    # The gateway is the server the client talks to: its death refuses or cuts connections,
    # which no envelope can describe (as with compose, until Docker restarts it).
    return service == "gateway" and outcome.problem.startswith("transport:")


# -- a service that keeps failing at start -------------------------------------------------------


def test_a_service_failing_at_every_start_is_left_stopped_and_the_gateway_answers_503(
    supervised: Supervised, caplog: pytest.LogCaptureFixture
) -> None:
    stack, supervisor = supervised.stack, supervised.supervisor
    everything_up(supervised)
    others = {n: stack.process_of(n).pid for n in CRASH_ORDER if n != "localdocs"}  # type: ignore[union-attr]
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    # A setting it cannot start with (as a bad edit of .env would be): it exits at once.
    stack.config.service_env["localdocs"] = {"LOCALDOCS_PORT": "not-a-port"}
    try:
        kill_minus_nine(stack, "localdocs")
        wait_for(
            lambda: supervisor.state("localdocs") is State.GIVEN_UP,
            90,
            "the supervisor gave up on localdocs",
        )
        given_up = [r.getMessage() for r in caplog.records if "leaving it stopped" in r.message]
        assert len(given_up) == 1, given_up
        assert given_up[0].startswith("localdocs failed 5 times"), given_up[0]
        assert "not-a-port" in given_up[0], given_up[0]  # its last log lines
        assert not stack.is_running("localdocs")

        with httpx.Client(base_url=stack.url("gateway"), timeout=10) as client:
            for method, path, body in (
                ("GET", "/v1/localdocs/collections", None),
                ("POST", "/v1/localdocs/search", {"query": "tide", "collections": ["x"]}),
            ):
                started = time.monotonic()
                response = client.request(method, path, json=body)
                assert time.monotonic() - started < 5, path
                assert response.status_code == 503, (path, response.text[:300])
                assert response.headers.get("retry-after", "").isdigit(), response.headers
                assert not _envelope_problem(response), response.text[:300]
            assert chat_ok(client), "chat must keep working without localdocs"
        for name, pid in others.items():
            assert stack.process_of(name).pid == pid, f"{name} was restarted"  # type: ignore[union-attr]
    finally:
        stack.config.service_env.pop("localdocs", None)
        stack.start_service("localdocs")
    # Started again through the stack: watched again.
    everything_up(supervised)
