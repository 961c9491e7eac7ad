"""Security of the running stack: loopback-only listeners, Weaviate's key, the gateway's API key,
collection paths held inside the allowed roots (symlinks included), and error messages that leak
no stack traces or internal addresses.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Ports, Stack, StackConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.local_only(
        "checks which sockets the local processes listen on and Weaviate's cluster ports,"
        " which compose keeps inside its network"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP = httpx.Timeout(30.0, connect=2.0)
TCP_LISTEN = "0A"
API_KEY = "reliability-" + uuid.uuid4().hex


def leaks(stack: Stack) -> list[str]:
    ports = stack.ports
    internal = [ports.inference, ports.localdocs, ports.weaviate, ports.weaviate_grpc]
    internal += [ports.tika, ports.redis]
    return ["Traceback", 'File "', "http://", "https://"] + [f":{p}" for p in internal]


def assert_envelope(response: httpx.Response, stack: Stack) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body.get("error"), dict), body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    for leak in leaks(stack):
        assert leak not in error["message"], (leak, error["message"])
    return error


# -- listeners -----------------------------------------------------------------------------------


def _listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (local address as hex, port) for every listening TCP socket (v4 and v6)."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            parts = line.split()
            address, port_hex = parts[1].split(":")
            if parts[3] == TCP_LISTEN:
                found[int(parts[9])] = (address, int(port_hex, 16))
    return found


def _is_loopback(address_hex: str) -> bool:
    if len(address_hex) == 8:  # IPv4, little-endian words
        return address_hex.endswith("7F")  # 127.x.x.x
    # IPv6 ::1, or IPv4-mapped ::ffff:127.x.x.x
    return address_hex == "00000000000000000000000001000000" or (
        address_hex.startswith("0000000000000000FFFF0000") and address_hex.endswith("7F")
    )


def _group_socket_inodes(pgid: int) -> set[int]:
    """Socket inodes held by every process of a service's process group (its children too)."""
    inodes: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except (ProcessLookupError, FileNotFoundError, PermissionError, NotADirectoryError):
            continue
    return inodes


def test_only_loopback_listens_except_weaviate_grpc(stack: Stack) -> None:
    listening = _listening_sockets()
    port_names = {getattr(stack.ports, f.name): f.name for f in fields(Ports)}
    seen_ports: set[int] = set()
    exposed: list[str] = []
    for name, running in stack._running.items():  # read-only use of the harness's processes
        for inode in _group_socket_inodes(running.process.pid):
            if inode not in listening:
                continue
            address, port = listening[inode]
            seen_ports.add(port)
            if not _is_loopback(address):
                role = port_names.get(port, "a port the harness did not allocate")
                exposed.append(f"{name} port {port} ({role}) on {address}")
    # Every client-facing port of the stack was found listening, so the scan saw them.
    for port in (stack.ports.gateway, stack.ports.inference, stack.ports.localdocs):
        assert port in seen_ports, (port, seen_ports)
    # Weaviate binds its gRPC and internal cluster servers on every interface (no upstream
    # setting): the API key and the cluster's basic auth guard them (tests below).
    guarded = (
        f"weaviate port {stack.ports.weaviate_grpc} (",
        f"weaviate port {stack.ports.weaviate_data} (",
    )
    others = [entry for entry in exposed if not entry.startswith(guarded)]
    assert not others, f"listening beyond loopback: {others}"


def test_weaviate_cluster_port_refuses_anonymous_access(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.ports.weaviate_data}/nodes/status"
    with httpx.Client(timeout=HTTP) as client:
        assert client.get(url).status_code == 401
        assert client.get(url, auth=("llmserver-cluster", "wrong")).status_code == 401
        good = ("llmserver-cluster", stack.weaviate_cluster_password)
        assert client.get(url, auth=good).status_code == 200


def _weaviate_rest(stack: Stack, headers: dict[str, str]) -> list[int]:
    base = stack.url("weaviate")
    statuses = []
    with httpx.Client(timeout=HTTP) as client:
        for path in ("/v1/schema", "/v1/objects", "/v1/nodes", "/v1/meta"):
            statuses.append(client.get(base + path, headers=headers).status_code)
    return statuses


def test_weaviate_rest_refuses_requests_without_the_key(stack: Stack) -> None:
    assert _weaviate_rest(stack, {}) == [401, 401, 401, 401]
    assert _weaviate_rest(stack, {"Authorization": "Bearer wrong-key"}) == [401, 401, 401, 401]
    good = {"Authorization": f"Bearer {stack.weaviate_api_key}"}
    assert _weaviate_rest(stack, good) == [200, 200, 200, 200]


def _grpc_fetch(stack: Stack, api_key: str | None, host: str = "127.0.0.1") -> Any:
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout

    from llmserver_common import docstore

    client = weaviate.connect_to_custom(
        http_host=host,
        http_port=stack.ports.weaviate,
        http_secure=False,
        grpc_host=host,
        grpc_port=stack.weaviate_grpc_port,
        grpc_secure=False,
        auth_credentials=Auth.api_key(api_key) if api_key else None,
        additional_config=AdditionalConfig(timeout=Timeout(init=5, query=10, insert=10)),
        skip_init_checks=True,  # no REST probes: the call below goes over gRPC only
    )
    try:
        chunks = client.collections.get(docstore.CHUNKS_CLASS)
        return chunks.query.fetch_objects(limit=1)
    finally:
        client.close()


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_weaviate_grpc_refuses_anonymous_access(stack: Stack) -> None:
    # With the key the same gRPC query works (the class exists once localdocs has started),
    # so a failure without it is the key's doing.
    with httpx.Client(timeout=HTTP) as client:
        client.get(stack.url("localdocs") + "/health")
    _grpc_fetch(stack, stack.weaviate_api_key)
    from weaviate.exceptions import WeaviateBaseError

    with pytest.raises(WeaviateBaseError) as anonymous:
        _grpc_fetch(stack, None)
    assert "unauth" in str(anonymous.value).lower() or "401" in str(anonymous.value), str(
        anonymous.value
    )[:300]
    with pytest.raises(WeaviateBaseError):
        _grpc_fetch(stack, "wrong-key")
    # gRPC binds every interface upstream: anonymous callers from outside are refused too.
    outside = _non_loopback_address()
    if outside is not None:
        with pytest.raises(WeaviateBaseError):
            _grpc_fetch(stack, None, host=outside)


# -- the gateway's API key -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second gateway with GATEWAY_API_KEY set, in front of the shared stack's upstreams."""
    ports = replace(stack.ports, gateway=Ports.free().gateway)
    keyed = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("keyed-gateway"),
            models_dir=REPO_ROOT / "models",
            ports=ports,
            service_env={"gateway": {"GATEWAY_API_KEY": API_KEY}},
        )
    )
    try:
        keyed.start(["gateway"])
        yield keyed
    finally:
        keyed.stop()


def _routes(stack: Stack) -> list[tuple[str, str]]:
    """Every (method, path) the open gateway documents, plus routes it does not."""
    with httpx.Client(timeout=HTTP) as client:
        schema = client.get(stack.url("gateway") + "/openapi.json").json()
    routes = []
    for path, operations in schema["paths"].items():
        concrete = path.replace("{name}", "x").replace("{path}", "collections")
        for method in operations:
            routes.append((method.upper(), concrete))
    routes += [
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/no/such/route"),
        ("POST", "/v1/localdocs/search"),
        ("DELETE", "/v1/localdocs/collections/x"),
    ]
    return sorted(set(routes))


BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "missing": {},
    "wrong-key": {"Authorization": "Bearer not-the-key"},
    "empty-bearer": {"Authorization": "Bearer"},
    "no-scheme": {"Authorization": API_KEY},
    "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    "key-prefix": {"Authorization": f"Bearer {API_KEY[:-1]}"},
    "key-suffix": {"Authorization": f"Bearer {API_KEY}x"},
    "x-api-key-header": {"X-API-Key": API_KEY},
}


def test_api_key_on_every_route_but_health_refuses_missing_or_wrong_key(
    stack: Stack, keyed_gateway: Stack
) -> None:
    routes = _routes(stack)
    assert len(routes) >= 8, routes
    refused = 0
    with httpx.Client(base_url=keyed_gateway.url("gateway"), timeout=HTTP) as client:
        for method, path in routes:
            if path == "/health":
                continue
            for label, headers in BAD_CREDENTIALS.items():
                if label == "x-api-key-header" and path.startswith("/v1/messages"):
                    continue  # Anthropic's header: the key is taken there (as Anthropic's API)
                response = client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, label, response.text[:200])
                error = assert_envelope(response, stack)
                assert API_KEY not in error["message"]
                refused += 1
        assert client.get("/health").status_code == 200
        good = {"Authorization": f"Bearer {API_KEY}"}
        assert client.get("/v1/models", headers=good).status_code == 200
        chat = client.post(
            "/v1/chat/completions",
            headers=good,
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        )
        assert chat.status_code == 200, chat.text[:300]
    print(f"api key: {refused} requests refused over {len(routes)} routes")


# -- paths outside the allowed roots -------------------------------------------------------------


def _create(client: httpx.Client, name: str, paths: list[str]) -> httpx.Response:
    return client.post("/v1/localdocs/collections", json={"name": name, "paths": paths})


def test_paths_outside_allowed_roots_are_refused(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside-roots")
    (outside / "secret.txt").write_text("outside the roots", encoding="utf-8")
    inside = stack.docs_root / f"sec_{uuid.uuid4().hex[:8]}"
    inside.mkdir()
    (inside / "fine.txt").write_text("inside the roots", encoding="utf-8")
    (inside / "link-to-outside-dir").symlink_to(outside, target_is_directory=True)
    (inside / "link-to-outside-file.txt").symlink_to(outside / "secret.txt")
    (inside / "link-to-etc").symlink_to("/etc", target_is_directory=True)
    refused = [
        str(outside),
        str(outside / "secret.txt"),
        str(inside / "link-to-outside-dir"),
        str(inside / "link-to-outside-file.txt"),
        str(inside / "link-to-etc"),
        str(inside / "link-to-etc" / "passwd"),
        str(inside / ".." / ".." / ".." / "etc"),
        f"{stack.docs_root}/../{stack.docs_root.name}-evil",
        "/etc/shadow",
    ]
    with httpx.Client(base_url=stack.url("gateway"), timeout=HTTP) as client:
        for index, path in enumerate(refused):
            response = _create(client, f"sec_refused_{index}", [path])
            assert response.status_code == 400, (path, response.status_code, response.text[:200])
            assert_envelope(response, stack)
        accepted = _create(client, inside.name, [str(inside)])
        assert accepted.status_code == 201, accepted.text[:300]
        for path in refused[:3]:
            added = client.post(
                f"/v1/localdocs/collections/{inside.name}/paths", json={"paths": [path]}
            )
            assert added.status_code == 400, (path, added.text[:200])
            assert_envelope(added, stack)


def test_symlinks_inside_a_collection_folder_do_not_lead_out(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A folder inside the roots holding links out of them: only what is inside gets indexed."""
    token = f"xylophone{uuid.uuid4().hex[:10]}"
    outside = tmp_path_factory.mktemp("outside-secret")
    (outside / "secret.txt").write_text(f"The secret word is {token}.", encoding="utf-8")
    folder = stack.docs_root / f"links_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "inside.txt").write_text("Harbour seals rest on the warm rocks.", encoding="utf-8")
    (folder / "leak.txt").symlink_to(outside / "secret.txt")
    (folder / "leakdir").symlink_to(outside, target_is_directory=True)
    with httpx.Client(base_url=stack.url("gateway"), timeout=HTTP) as client:
        created = _create(client, folder.name, [str(folder)])
        assert created.status_code == 201, created.text[:300]
        deadline = time.monotonic() + 240
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = client.get(f"/v1/localdocs/collections/{folder.name}").json()
            if view.get("state") in ("ready", "error") and not view.get("files_pending"):
                break
            time.sleep(1)
        assert view.get("state") in ("ready", "error"), view
        files = client.get(f"/v1/localdocs/collections/{folder.name}/files").json()["data"]
        indexed = [f["path"] for f in files if f["state"] == "indexed"]
        assert str(outside / "secret.txt") not in indexed, files
        assert all(Path(p).resolve().is_relative_to(stack.docs_root) for p in indexed), files
        found = client.post(
            "/v1/localdocs/search",
            json={"query": f"secret word {token}", "collections": [folder.name], "k": 10},
        )
        assert found.status_code == 200, found.text[:300]
        assert all(token not in ref["text"] for ref in found.json()["data"]), found.json()


# -- error messages ------------------------------------------------------------------------------


def test_error_messages_leak_no_traces_or_internal_addresses(stack: Stack) -> None:
    """Errors that cross a service boundary (inference's and localdocs' own refusals, relayed
    by the gateway) are where internal details would slip through."""
    requests: list[tuple[str, str, Any]] = [
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x " * 9000}]}),
        ("POST", "/v1/completions", {"prompt": "x " * 9000, "max_tokens": 1}),
        (
            "POST",
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "model": "nope", "max_tokens": 1},
        ),
        ("POST", "/v1/embeddings", {"input": "hi", "model": "nope"}),
        ("GET", "/v1/localdocs/collections/nope", None),
        ("POST", "/v1/localdocs/search", {"query": "x", "collections": ["nope"]}),
        ("POST", "/v1/localdocs/collections", {"name": "x", "paths": ["/etc"]}),
        ("POST", "/v1/localdocs/collections", {"name": "../x", "paths": ["/etc"]}),
        (
            "POST",
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "localdocs": {"collections": ["nope"]},
            },
        ),
        ("GET", "/v1/models/nope", None),
    ]
    collected = 0
    with httpx.Client(base_url=stack.url("gateway"), timeout=HTTP) as client:
        for method, path, body in requests:
            response = client.request(method, path, json=body)
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
            assert_envelope(response, stack)
            collected += 1
    assert collected == len(requests)
