"""compose.yaml end to end through testcontainers: what a `make up` user does, on real containers.

The seed's curl, a chat and a stream, a collection indexed from a mounted folder with page
references, a subfolder the services cannot read keeping its index, `--scale inference=3`
spreading chats over every replica, and one replica crashing mid-load. Where no Docker engine
can be had the module skips, saying why; `make test`'s setup starts one on this kind of
machine, so here it always runs.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.compose_backend import ComposeStack
from tests.e2e.test_foundation import check_seed_curl_example
from tests.e2e.test_localdocs import PAGE3_QUERY, PDF_TITLE, make_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]
logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT_MODEL = "Gemma 3 270M"
REQUEST_TIMEOUT_S = 180.0
REPLICAS = 3


def chat_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "Name three fruits."}],
        "max_tokens": 8,
        "temperature": 0,
    }
    return {**body, **overrides}


def gateway_metric(stack: ComposeStack, name: str) -> dict[str, float]:
    """One labelled metric of the gateway's /metrics, by its `replica` label."""
    text = httpx.get(f"{stack.url('gateway')}/metrics", timeout=30).text
    pattern = re.compile(rf'^{name}\{{replica="([^"]+)"\}} ([0-9.e+-]+)$', re.MULTILINE)
    return {replica: float(value) for replica, value in pattern.findall(text)}


def replica_label(labels: dict[str, float], addresses: set[str]) -> str | None:
    """The gateway's name for a container (its label ends with the container's address)."""
    for label in labels:
        if label.rsplit("-", 1)[-1] in addresses:
            return label
    return None


def stream_chat(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed chat: its status, the events it got, whether it ended with [DONE]."""
    outcome: dict[str, Any] = {"status": None, "events": [], "done": False, "error": None}
    try:
        with (
            httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client,
            client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply,
        ):
            outcome["status"] = reply.status_code
            for line in reply.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    outcome["done"] = True
                    break
                outcome["events"].append(json.loads(data))
    except httpx.HTTPError as failure:
        outcome["error"] = repr(failure)
    return outcome


def run_concurrently(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def one(index: int) -> None:
        results[index] = work(index)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 30)
    assert not any(thread.is_alive() for thread in threads), "a request hung past its timeout"
    return results


def started_at(container: str) -> float:
    """When Docker last started the container (epoch seconds)."""
    stamp = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", container],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    # 2026-12-07T21:35:04.994389941Z: fromisoformat takes at most microseconds.
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(f"{seconds}.{(fraction or '0')[:6]}+00:00")
    return moment.timestamp()


# -- tests ----------------------------------------------------------------------------------


def test_only_the_gateway_is_published_and_only_on_loopback(compose_stack: ComposeStack) -> None:
    completed = subprocess.run(
        ["docker", "port", compose_stack.containers("gateway")[0]["Name"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    bindings = [line.split(" -> ")[1] for line in completed.stdout.strip().splitlines()]
    assert bindings and all(binding.startswith("127.0.0.1:") for binding in bindings), bindings


def test_the_gateway_serves_the_web_page(compose_stack: ComposeStack) -> None:
    """The page `make setup` built is in the gateway's image: `/` and its assets answer."""
    page = httpx.get(f"{compose_stack.url('gateway')}/", timeout=30)
    assert page.status_code == 200, page.text[:300]
    assert "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text)
    assert assets, page.text[:300]
    for asset in assets:
        assert httpx.get(f"{compose_stack.url('gateway')}{asset}", timeout=30).status_code == 200


def test_seed_curl_example(compose_stack: ComposeStack) -> None:
    check_seed_curl_example(compose_stack.url("gateway"))


def test_chat_and_stream(compose_stack: ComposeStack) -> None:
    base = compose_stack.url("gateway")
    reply = httpx.post(f"{base}/v1/chat/completions", json=chat_body(), timeout=REQUEST_TIMEOUT_S)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]

    streamed = stream_chat(base, chat_body(max_tokens=12))
    assert streamed["status"] == 200 and streamed["error"] is None, streamed
    assert streamed["done"], "the stream did not end with [DONE]"
    text = "".join(
        event["choices"][0]["delta"].get("content") or ""
        for event in streamed["events"]
        if event.get("choices")
    )
    assert text.strip(), streamed["events"]
    assert not any("error" in event for event in streamed["events"])


def test_collection_from_the_mounted_folder_answers_with_page_references(
    compose_stack: ComposeStack,
) -> None:
    folder = Path(compose_stack.docs_root) / f"manuals-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o755)
    make_pdf(folder / "handbook.pdf")
    (folder / "handbook.pdf").chmod(0o644)  # the services run as uid 10001
    name = f"manuals-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=compose_stack.url("gateway"), timeout=REQUEST_TIMEOUT_S) as client:
        created = client.post(
            "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 420
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = client.get(f"/v1/localdocs/collections/{name}").json()
            if state.get("state") != "indexing":
                break
            time.sleep(1)
        assert state.get("state") == "ready" and state["files_indexed"] == 1, state

        body = chat_body(
            messages=[{"role": "user", "content": PAGE3_QUERY}],
            localdocs={"collections": [name], "k": 3},
        )
        reply = client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        references = reply.json()["choices"][0]["references"]
        page3 = [ref for ref in references if "zorbleflux" in ref["text"]]
        assert page3, references
        assert page3[0]["page"] == 3
        assert page3[0]["title"] == PDF_TITLE
        client.delete(f"/v1/localdocs/collections/{name}")


def test_a_subfolder_the_services_cannot_read_keeps_its_files(
    compose_stack: ComposeStack,
) -> None:
    """The services run as uid 10001: a folder made private (mode 700, root's) cannot be read
    by them. Live folders see the change; the files indexed there stay and the path is named."""
    folder = Path(compose_stack.docs_root) / f"team-{uuid.uuid4().hex[:8]}"
    private = folder / "private"
    private.mkdir(mode=0o755, parents=True)
    folder.chmod(0o755)
    secret = "zq" + uuid.uuid4().hex[:10]
    (folder / "open.txt").write_text("Everyone may read this note about the picnic.\n")
    (private / "salaries.txt").write_text(f"The salary code word is {secret}.\n")
    for path in (folder / "open.txt", private / "salaries.txt"):
        path.chmod(0o644)
    name = f"team-{uuid.uuid4().hex[:8]}"

    def until(client: httpx.Client, check: Any, what: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            state = client.get(f"/v1/localdocs/collections/{name}").json()
            if check(state):
                return state
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {state}"
            time.sleep(0.5)

    def found(client: httpx.Client) -> bool:
        hits = client.post(
            "/v1/localdocs/search", json={"query": secret, "collections": [name]}
        ).json()["data"]
        return any(secret in hit["text"] for hit in hits)

    with httpx.Client(base_url=compose_stack.url("gateway"), timeout=REQUEST_TIMEOUT_S) as client:
        created = client.post(
            "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
        )
        assert created.status_code == 201, created.text
        until(client, lambda s: s["state"] == "ready" and s["files_indexed"] == 2, "indexing")
        assert found(client)

        private.chmod(0o700)  # no reindex: the folder watcher sees the change
        state = until(client, lambda s: s["unavailable_paths"], "the unreadable folder")
        assert state["unavailable_paths"][0]["path"] == str(private)
        assert "permission denied" in state["unavailable_paths"][0]["reason"]
        assert state["files_total"] == 2 and found(client)

        private.chmod(0o755)
        state = until(client, lambda s: s["unavailable_paths"] == [], "the folder readable again")
        assert state["files_indexed"] == 2 and found(client)
        client.delete(f"/v1/localdocs/collections/{name}")


@pytest.fixture(scope="module")
def scaled(compose_stack: ComposeStack) -> Iterator[ComposeStack]:
    """Inference scaled to three replicas, each known to the gateway; back to one afterwards."""
    compose_stack.scale("inference", REPLICAS)
    containers = compose_stack.containers("inference")
    assert len(containers) == REPLICAS, containers
    addresses = [compose_stack.container_addresses(item["Name"]) for item in containers]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The gateway re-resolves the service name every few seconds and health-checks each.
        up = gateway_metric(compose_stack, "gateway_inference_replica_up")
        labels = [replica_label(up, found) for found in addresses]
        if all(label and up[label] == 1.0 for label in labels):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the gateway does not see {REPLICAS} serving replicas: {up}")
    yield compose_stack
    compose_stack.scale("inference", 1)


def test_scaled_inference_serves_chats_on_every_replica(scaled: ComposeStack) -> None:
    before = gateway_metric(scaled, "gateway_inference_requests_total")
    base = scaled.url("gateway")

    def chat(_index: int) -> int:
        return httpx.post(
            f"{base}/v1/chat/completions", json=chat_body(), timeout=REQUEST_TIMEOUT_S
        ).status_code

    statuses = run_concurrently(24, chat)
    assert statuses == [200] * 24, statuses
    after = gateway_metric(scaled, "gateway_inference_requests_total")
    per_replica = {}
    for item in scaled.containers("inference"):
        label = replica_label(after, scaled.container_addresses(item["Name"]))
        assert label, f"{item['Name']} never got a request: {after}"
        per_replica[item["Name"]] = after[label] - before.get(label, 0.0)
    logger.info("24 chats over %d replicas: %s", REPLICAS, per_replica)
    assert len(per_replica) == REPLICAS
    assert all(count >= 1 for count in per_replica.values()), per_replica
    assert sum(per_replica.values()) >= 24, per_replica


def test_a_replica_crashing_mid_load_fails_only_its_own_requests(scaled: ComposeStack) -> None:
    base = scaled.url("gateway")
    streams = 9
    # Long enough to be in flight when the replica dies; short enough for 2 cores.
    body = chat_body(max_tokens=160, messages=[{"role": "user", "content": "Tell a long story."}])
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(stream_chat(base, body)))
        for _ in range(streams)
    ]
    for thread in threads:
        thread.start()
    # Wait until every stream is on a replica, then crash one that holds some of them.
    deadline = time.monotonic() + 60
    in_flight: dict[str, float] = {}
    while time.monotonic() < deadline:
        in_flight = gateway_metric(scaled, "gateway_inference_in_flight")
        if sum(in_flight.values()) >= streams:
            break
        time.sleep(0.05)
    victim = next(
        item
        for item in scaled.containers("inference")
        if in_flight.get(
            replica_label(in_flight, scaled.container_addresses(item["Name"])) or "", 0
        )
        >= 1
    )
    victim_label = replica_label(in_flight, scaled.container_addresses(victim["Name"]))
    on_victim = int(in_flight[victim_label or ""])
    scaled.crash_container(victim["Name"])
    crashed_at, crashed_wall = time.monotonic(), time.time()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 30)
    assert not any(thread.is_alive() for thread in threads), "a stream hung after the crash"

    failed = [
        result
        for result in results
        if result["status"] != 200
        or result["error"]
        or any("error" in event for event in result["events"])
    ]
    # Those on the crashed replica end with an error event (and [DONE]); no other one fails.
    assert len(failed) <= on_victim, (on_victim, failed)
    assert all(result["done"] or result["status"] != 200 for result in results), results

    # New chats go to the survivors at once; the crashed container comes back by itself.
    statuses = [
        httpx.post(f"{base}/v1/chat/completions", json=chat_body(), timeout=60).status_code
        for _ in range(6)
    ]
    assert statuses == [200] * 6, statuses
    deadline = crashed_at + 180
    while time.monotonic() < deadline and len(scaled.containers("inference")) < REPLICAS:
        time.sleep(1)
    assert len(scaled.containers("inference")) == REPLICAS, "Docker did not restart the replica"
    restarted = started_at(victim["Name"]) - crashed_wall
    assert restarted > 0, "the crashed container was not started again"
    logger.info(
        "crash: %d of %d streams were on the replica, %d failed; Docker restarted it after %.1fs",
        on_victim,
        streams,
        len(failed),
        restarted,
    )
