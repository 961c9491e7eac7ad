"""The compose backend of the `stack` fixture, checked without a Docker engine.

What it writes (env file, override) and how it explains a missing engine; the containers
themselves run only where Docker does (LLMSERVER_E2E_BACKEND=compose).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from tests.e2e.compose_backend import CONTAINER_PORTS, ComposeStack, docker_available
from tests.static.deployment_files import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    REPO_ROOT,
    compose_command,
    port_mappings,
    run,
    venv_tool,
)


def fake_docker(folder: Path, compose_ok: bool, engine_ok: bool) -> None:
    """A `docker` client stand-in: answers `compose version` and `info` as told."""
    compose_answer = (
        "echo 2.40.3; exit 0"
        if compose_ok
        else "echo 'docker: unknown command: docker compose' >&2; exit 1"
    )
    engine_answer = (
        "echo 28.2.2; exit 0"
        if engine_ok
        else "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2; exit 1"
    )
    folder.mkdir(exist_ok=True)
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = compose ]; then {compose_answer}; fi\n'
        f'if [ "$1" = info ]; then {engine_answer}; fi\n'
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def models_source(tmp_path: Path) -> Path:
    source = tmp_path / "source-models"
    source.mkdir()
    (source / "catalog.yaml").write_text("models: []\n")
    (source / "tiny.gguf").write_bytes(b"GGUF" + bytes(60))
    # A symbolic link, like the ones `make setup` puts in models/.
    (tmp_path / "cache.gguf").write_bytes(b"GGUF" + bytes(28))
    (source / "linked.gguf").symlink_to(tmp_path / "cache.gguf")
    return source


def test_no_docker_client_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert docker_available() == (False, "no docker client on PATH")


def test_missing_compose_plugin_is_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_docker(tmp_path / "bin", compose_ok=False, engine_ok=True)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    available, reason = docker_available()
    assert not available
    assert "Compose v2 plugin is not installed" in reason


def test_missing_engine_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_docker(tmp_path / "bin", compose_ok=True, engine_ok=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    available, reason = docker_available()
    assert not available
    assert "no Docker engine reachable" in reason and "Cannot connect" in reason


def test_engine_and_plugin_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_docker(tmp_path / "bin", compose_ok=True, engine_ok=True)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert docker_available() == (True, "Docker engine 28.2.2, Compose 2.40.3")


def test_stack_addresses_are_distinct_loopback_ports(tmp_path: Path, models_source: Path) -> None:
    stack = ComposeStack(REPO_ROOT, tmp_path / "work", models_source)
    assert len(set(stack.host_ports.values())) == len(CONTAINER_PORTS)
    assert stack.url("gateway") == f"http://127.0.0.1:{stack.ports.gateway}"
    assert stack.url("weaviate") == f"http://127.0.0.1:{stack.ports.weaviate}"
    assert stack.redis_url == f"redis://:{stack.redis_password}@127.0.0.1:{stack.ports.redis}/0"
    assert stack.weaviate_grpc_port == stack.ports.weaviate_grpc
    with pytest.raises(KeyError):
        stack.url("indexer")  # a worker has no HTTP address


def test_env_file_holds_a_fresh_key_and_the_gateway_port(
    tmp_path: Path, models_source: Path
) -> None:
    first = ComposeStack(REPO_ROOT, tmp_path / "one", models_source)
    second = ComposeStack(REPO_ROOT, tmp_path / "two", models_source)
    assert first.weaviate_api_key != second.weaviate_api_key
    assert first.project != second.project
    settings = dict(line.split("=", 1) for line in first.env_file.read_text().splitlines() if line)
    assert settings["WEAVIATE_API_KEY"] == first.weaviate_api_key
    assert settings["REDIS_PASSWORD"] == first.redis_password != second.redis_password
    assert settings["GATEWAY_PUBLISHED_PORT"] == str(first.ports.gateway)
    assert settings["DOCUMENTS_DIR"] == str(first.docs_root)
    assert stat.S_IMODE(first.env_file.stat().st_mode) == 0o600  # it holds a key


def test_models_are_real_readable_files(tmp_path: Path, models_source: Path) -> None:
    stack = ComposeStack(REPO_ROOT, tmp_path / "work", models_source)
    names = sorted(path.name for path in stack.models_dir.iterdir())
    assert names == ["catalog.yaml", "linked.gguf", "tiny.gguf"]
    for path in stack.models_dir.iterdir():
        assert not path.is_symlink(), f"{path.name} would dangle inside the container"
        assert path.stat().st_mode & 0o004, f"{path.name} is unreadable for uid 10001"
    assert (stack.models_dir / "linked.gguf").read_bytes() == b"GGUF" + bytes(28)
    assert stat.S_IMODE(stack.docs_root.stat().st_mode) == 0o755


def test_missing_catalog_is_reported(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="catalog.yaml"):
        ComposeStack(REPO_ROOT, tmp_path / "work", empty)


def test_override_is_valid_and_publishes_only_on_loopback(
    tmp_path: Path, models_source: Path
) -> None:
    stack = ComposeStack(REPO_ROOT, tmp_path / "work", models_source)
    checked = run(
        [
            venv_tool("check-jsonschema"),
            "--schemafile",
            str(COMPOSE_SCHEMA),
            str(stack.override_file),
        ]
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    override = yaml.safe_load(stack.override_file.read_text())
    assert override["name"] == stack.project
    published = {}
    for name, service in override["services"].items():
        for mapping in port_mappings(service):
            assert mapping.host_ip == "127.0.0.1", f"{name}: {mapping}"
            # Inference: an ephemeral host port per replica, so that it can be scaled.
            published[int(mapping.published) if mapping.published else None] = name
    assert published == {
        None: "inference",
        stack.ports.localdocs: "localdocs",
        stack.ports.weaviate: "weaviate",
        stack.ports.weaviate_grpc: "weaviate",
        stack.ports.tika: "tika",
        stack.ports.redis: "redis",
    }
    docs = str(stack.docs_root)
    for name, prefix in [("localdocs", "LOCALDOCS_"), ("indexer", "INDEXER_")]:
        service = override["services"][name]
        assert service["environment"] == {f"{prefix}ALLOWED_ROOTS": docs}
        assert {"type": "bind", "source": docs, "target": docs, "read_only": True} in service[
            "volumes"
        ]


def test_merged_configuration_where_compose_is_installed(
    tmp_path: Path, models_source: Path
) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("docker compose is not installed here (set LLMSERVER_DOCKER_COMPOSE)")
    stack = ComposeStack(REPO_ROOT, tmp_path / "work", models_source)
    completed = run(
        [
            *command,
            "-f",
            str(COMPOSE_FILE),
            "-f",
            str(stack.override_file),
            "--env-file",
            str(stack.env_file),
            "config",
        ]
    )
    assert completed.returncode == 0, completed.stderr
    merged = yaml.safe_load(completed.stdout)
    assert merged["name"] == stack.project
    inference_mounts = merged["services"]["inference"]["volumes"]
    assert [(m["source"], m["target"]) for m in inference_mounts] == [
        (str(stack.models_dir), "/models")
    ]
    gateway_ports = merged["services"]["gateway"]["ports"]
    assert [(p["host_ip"], p["published"]) for p in gateway_ports] == [
        ("127.0.0.1", str(stack.ports.gateway))
    ]
    # Docker forwards published ports only on a routable network.
    for name in ["inference", "localdocs", "weaviate", "tika", "redis"]:
        assert "frontend" in merged["services"][name]["networks"], name
