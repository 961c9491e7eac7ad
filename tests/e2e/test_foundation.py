"""The foundation's promise: the whole real stack runs, and the seed's curl example works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack.stack import SERVICE_ORDER, Ports, Stack

pytestmark = pytest.mark.e2e

DEFAULT_CHAT_MODEL = "Gemma 3 270M"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_models_lists_the_default_chat_model(stack: Stack) -> None:
    listing = _get_json(f"{stack.url('gateway')}/v1/models")
    assert listing["object"] == "list"
    ids = [entry["id"] for entry in listing["data"]]
    assert DEFAULT_CHAT_MODEL in ids


def test_seed_curl_example_returns_generated_text(stack: Stack) -> None:
    check_seed_curl_example(stack.url("gateway"))


def check_seed_curl_example(gateway_url: str) -> None:
    """The README's first example, run with curl against a gateway, and its answer checked."""
    # Exactly the seed's example: no Content-Type header, so curl labels the JSON as a form.
    body = (
        '{\n"model": "' + DEFAULT_CHAT_MODEL + '",\n'
        '"messages": [{"role":"user","content":"Who is Lionel Messi?"}],\n'
        '"max_tokens": 50,\n"temperature": 0.28\n}'
    )
    completed = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{gateway_url}/v1/chat/completions", "-d", body],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    reply = json.loads(completed.stdout)
    assert reply["object"] == "chat.completion"
    assert reply["model"] == DEFAULT_CHAT_MODEL
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip(), f"empty reply: {reply}"
    assert choice["finish_reason"] in {"stop", "length"}
    usage = reply["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_every_service_is_running(stack: Stack) -> None:
    assert [name for name in SERVICE_ORDER if not stack.is_running(name)] == []


def _listening_ports() -> dict[int, str]:
    """Listening TCP ports (IPv4 and IPv6) -> local address, read from /proc."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            address, port = local.rsplit(":", 1)
            found[int(port, 16)] = address
    return found


def test_only_loopback_apart_from_weaviate_grpc(stack: Stack) -> None:
    listening = _listening_ports()
    # 127.0.0.1, ::1, and 127.0.0.1 mapped into IPv6 (Java's sockets) as /proc spells them.
    loopback = {
        "0100007F",
        "00000000000000000000000001000000",
        "0000000000000000FFFF00000100007F",
    }
    ports = stack.ports
    for name in ("gateway", "inference", "localdocs", "weaviate", "tika", "redis"):
        port = getattr(ports, name)
        assert port in listening, f"{name} is not listening on {port}"
        assert listening[port] in loopback, f"{name} listens on {listening[port]}"
    # Weaviate's gRPC server binds every interface (no upstream setting): it must refuse
    # anonymous clients, which the API-key setting guarantees (checked in the localdocs tests).


def _post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.local_only("it is `make run` itself; `make up` has tests/compose")
def test_devstack_run_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """What `make run` does, on free ports so it can run beside a user's own `make run`, with
    `--allowed-root` choosing the one folder collections may index."""
    ports = Ports.free()
    env = {**os.environ, "LLMSERVER_PORTS": json.dumps(ports.__dict__)}
    root = tmp_path / "my-documents"
    root.mkdir()
    (root / "tern.txt").write_text("The arctic tern nests on Skerrow rock.\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "run",
            "--data-dir",
            str(data_dir),
            "--allowed-root",
            str(root),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "all services are up" in line:
                break
        assert any("all services are up" in line for line in lines), "".join(lines[-40:])
        # Log lines are prefixed by service.
        assert any(line.startswith("gateway ") for line in lines)
        # Keep reading its output: a full pipe would stall the services' logging, then them.
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
        reader.start()
        gateway = f"http://127.0.0.1:{ports.gateway}"
        listing = _get_json(f"{gateway}/v1/models")
        assert DEFAULT_CHAT_MODEL in [entry["id"] for entry in listing["data"]]

        # --allowed-root reaches localdocs and the indexer: its folder is indexed, and the
        # default documents folder it replaced is refused.
        status, body = _post_json(
            f"{gateway}/v1/localdocs/collections", {"name": "mine", "paths": [str(root)]}
        )
        assert status == 201, body
        status, body = _post_json(
            f"{gateway}/v1/localdocs/collections",
            {"name": "default", "paths": [str(data_dir / "documents")]},
        )
        assert status == 400, body
        view: dict = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            view = _get_json(f"{gateway}/v1/localdocs/collections/mine")
            if view["state"] != "indexing" and view["files_total"]:
                break
            time.sleep(0.5)
        assert view["state"] == "ready" and view["files_indexed"] == 1, view
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)
        reader.join(timeout=10)
        assert process.returncode == 0, "".join(lines[-40:])
    finally:
        if process.poll() is None:
            # A failed check: SIGTERM first, as Ctrl-C it stops the services (each runs in a
            # session of its own, which a SIGKILL of devstack's group would leave running).
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    # Nothing keeps listening on the stack's ports once it stopped.
    listening = _listening_ports()
    still_open = [
        name
        for name, port in ports.__dict__.items()
        if port in listening and name != "weaviate_grpc"
    ]
    assert still_open == []
    assert ports.weaviate_grpc not in listening
