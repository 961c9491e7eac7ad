"""The `stack` fixture's Docker Compose backend: the same tests, against compose.yaml.

`ComposeStack` offers what devstack's local `Stack` offers (url, redis_url, weaviate_grpc_port,
weaviate_api_key, docs_root, models_dir, ports, start_service, stop_service, kill_service,
log_path, log_tail), backed by testcontainers' DockerCompose on compose.yaml plus an override
written for the run:

- every service gets a fixed free port on 127.0.0.1 (compose.yaml publishes only the gateway;
  the tests also talk to inference, localdocs, Weaviate, Tika and Redis directly), and joins the
  routable "frontend" network, because Docker does not forward ports into an internal network;
  inference gets an ephemeral port per replica, so `scale("inference", 3)` works;
- the base images are the ones `make up` would use (stand-ins where nothing can be pulled), the
  llama-cpp-python wheel `make setup` compiled goes into the inference build, and Redis and
  Weaviate get fresh secrets;
- the documents folder is mounted at the same absolute path inside localdocs and the indexer as
  on the host, and is their allowed root, so a path a test writes is the path the API accepts;
- /models is a bind mount of a folder holding real copies (hard links where possible) of the
  models, because the symbolic links in the repository's models/ point outside any mount.

Limits: the Docker engine must share this machine's filesystem (bind mounts), so a remote
DOCKER_HOST does not work; the first run builds the images, llama-cpp-python included (minutes).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from testcontainers.compose import DockerCompose

from devstack import compose as devstack_compose
from devstack.stack import Ports

logger = logging.getLogger(__name__)

# Ryuk, testcontainers' reaper, is an image that cannot be pulled everywhere (nor here): its
# documented switch off. DockerCompose does not start it anyway; ComposeStack.stop (and the next
# run's leftover check) remove the containers and volumes instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

LOOPBACK = "127.0.0.1"
# Container-side ports, as compose.yaml and the images define them.
CONTAINER_PORTS = {
    "gateway": 4891,
    "inference": 4892,
    "localdocs": 4893,
    "weaviate": 8080,
    "weaviate_grpc": 50051,
    "tika": 9998,
    "redis": 6379,
}
# Which compose service answers on each fixed published port (inference: one ephemeral port per
# replica, looked up when asked for).
PORT_OWNERS = {
    "localdocs": "localdocs",
    "weaviate": "weaviate",
    "weaviate_grpc": "weaviate",
    "tika": "tika",
    "redis": "redis",
}
SERVICE_ORDER = ["redis", "tika", "weaviate", "inference", "localdocs", "indexer", "gateway"]
COMMAND_TIMEOUT_S = 60
# Building every image from nothing (llama.cpp compiles) and loading the models.
START_TIMEOUT_S = 3600


def _run(
    command: list[str], timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine and the Compose v2 plugin can run compose.yaml, and why not."""
    if shutil.which("docker") is None:
        return False, "no docker client on PATH"
    try:
        compose = _run(["docker", "compose", "version", "--short"], timeout=20)
    except subprocess.TimeoutExpired:
        return False, "`docker compose version` did not answer within 20 s"
    if compose.returncode != 0:
        return False, (
            "the Docker Compose v2 plugin is not installed "
            f"(`docker compose version`: {_last_line(compose.stderr + compose.stdout)})"
        )
    try:
        engine = _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return False, "the Docker engine did not answer `docker info` within 20 s"
    if engine.returncode != 0 or not engine.stdout.strip():
        return False, f"no Docker engine reachable: {_last_line(engine.stderr + engine.stdout)}"
    return True, f"Docker engine {engine.stdout.strip()}, Compose {compose.stdout.strip()}"


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no copy of a large model) unless the file is unreadable to the services."""
    real = source.resolve()
    target.unlink(missing_ok=True)
    if real.stat().st_mode & 0o004:
        try:
            os.link(real, target)
            return
        except OSError:  # another filesystem, or links not allowed: a copy will do
            pass
    shutil.copy2(real, target)
    # The services run as uid 10001; a copy can be made readable without touching the original.
    target.chmod(0o644)


class ComposeStack:
    """compose.yaml as the `stack` fixture: started once per session, stopped (with volumes)."""

    def __init__(self, repo_root: Path, work_dir: Path, models_source: Path | None = None) -> None:
        self.repo_root = repo_root.resolve()
        self.work_dir = work_dir.resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The test run's pid in the name: a leftover check elsewhere spares a run still going.
        self.project = f"{devstack_compose.TEST_PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.weaviate_api_key = secrets.token_urlsafe(32)
        # Base images as `make up` chooses them; looked up (or built) when the stack starts.
        self.image_settings: dict[str, str] = {}
        self.redis_password = secrets.token_urlsafe(32)
        numbers = _free_ports(len(CONTAINER_PORTS))
        self.host_ports = dict(zip(CONTAINER_PORTS, numbers, strict=True))
        # The same fields as devstack's Ports; the Weaviate cluster ports stay inside Docker.
        self.ports = Ports(
            gateway=self.host_ports["gateway"],
            inference=self.host_ports["inference"],
            localdocs=self.host_ports["localdocs"],
            weaviate=self.host_ports["weaviate"],
            weaviate_grpc=self.host_ports["weaviate_grpc"],
            tika=self.host_ports["tika"],
            redis=self.host_ports["redis"],
        )
        self.data_dir = self.work_dir
        self.docs_root = self.work_dir / "documents"
        self.docs_root.mkdir(exist_ok=True)
        # The services run as uid 10001: the folder must be readable by others.
        self.docs_root.chmod(0o755)
        self.allowed_roots = [self.docs_root]
        self.models_dir = self._prepare_models(models_source or self.repo_root / "models")
        self.logs_dir = self.work_dir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.env_file = self._write_env_file()
        self.override_file = self._write_override()
        self.compose = DockerCompose(
            context=str(self.repo_root),
            compose_file_name=[str(self.repo_root / "compose.yaml"), str(self.override_file)],
            env_file=str(self.env_file),
            build=True,
            wait=True,
            keep_volumes=False,
        )
        self._started = False

    # -- addresses ---------------------------------------------------------------------------
    def url(self, name: str) -> str:
        if name not in {"gateway", "inference", "localdocs", "weaviate", "tika"}:
            raise KeyError(f"no HTTP address for {name}")
        if name == "inference":
            return f"http://{LOOPBACK}:{self.published_port('inference', 4892)}"
        return f"http://{LOOPBACK}:{self.host_ports[name]}"

    def published_port(self, service: str, container_port: int, index: int = 1) -> int:
        """The host port Docker gave a replica's container port (ephemeral ones included)."""
        completed = self._compose(["port", "--index", str(index), service, str(container_port)])
        return int(completed.stdout.strip().rsplit(":", 1)[1])

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@{LOOPBACK}:{self.host_ports['redis']}/0"

    @property
    def weaviate_grpc_port(self) -> int:
        return self.host_ports["weaviate_grpc"]

    def log_path(self, name: str) -> Path:
        """The service's container logs so far, written to a file (refreshed on each call)."""
        path = self.logs_dir / f"{name}.log"
        completed = self._compose(["logs", "--no-color", "--no-log-prefix", name], check=False)
        path.write_text(completed.stdout + completed.stderr)
        return path

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log_path(name).read_text().splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # Official images where present or pullable, else the stand-ins; the host's wheel.
        self.image_settings = devstack_compose.prepare_images({})
        self._write_env_file()
        logger.info("compose: building and starting project %s", self.project)
        try:
            self.compose.start()
        except subprocess.CalledProcessError as failure:
            tails = "\n".join(f"--- {name}\n{self.log_tail(name)}" for name in SERVICE_ORDER)
            self.stop()
            stderr = failure.stderr.decode(errors="replace") if failure.stderr else ""
            raise RuntimeError(
                f"docker compose up failed ({failure.returncode}): {stderr[-2000:]}\n{tails}"
            ) from failure
        self._started = True
        # Docker chose inference's host port: the reserved one above was only a placeholder.
        self.ports.inference = self.published_port("inference", CONTAINER_PORTS["inference"])

    def stop(self) -> None:
        """`docker compose down --volumes`: containers, networks and named volumes go."""
        try:
            self.compose.stop(down=True)
        except subprocess.CalledProcessError as failure:
            logger.warning("compose down failed: %s", failure)
        self._started = False

    def start_service(self, name: str) -> None:
        """Start a stopped (or killed) service; returns once Docker reports it healthy."""
        self._compose(["up", "--detach", "--wait", "--no-deps", name], timeout=600)

    def stop_service(self, name: str, timeout: float = 15) -> None:
        self._compose(["stop", "--timeout", str(int(timeout)), name], timeout=timeout + 60)

    def kill_service(self, name: str) -> None:
        """SIGKILL the service's containers, as a crash would."""
        self._compose(["kill", "--signal", "SIGKILL", name])

    def scale(self, name: str, replicas: int) -> None:
        """`--scale name=N`, waiting until every replica is healthy."""
        self._compose(
            ["up", "--detach", "--wait", "--no-deps", "--scale", f"{name}={replicas}", name],
            timeout=900,
        )

    def containers(self, name: str) -> list[dict[str, Any]]:
        """The service's running containers (`docker compose ps` entries)."""
        return [item for item in self._ps(name) if item.get("State") == "running"]

    def container_addresses(self, container: str) -> set[str]:
        """The container's IP addresses on the project's networks."""
        completed = subprocess.run(
            [
                "docker",
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                container,
            ],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=True,
        )
        return set(completed.stdout.split())

    def crash_container(self, container: str) -> None:
        """SIGKILL the container's main process from the host, as a crash (or the OOM killer)
        would: unlike `docker kill`, Docker's restart policy then applies."""
        completed = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}}", container],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=True,
        )
        os.kill(int(completed.stdout.strip()), 9)

    def is_running(self, name: str) -> bool:
        return any(item.get("State") == "running" for item in self._ps(name))

    def exited_services(self) -> list[str]:
        return sorted({item["Service"] for item in self._ps() if item.get("State") == "exited"})

    def __enter__(self) -> ComposeStack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------
    def _compose(
        self, arguments: list[str], timeout: float = COMMAND_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [*self.compose.docker_compose_command(), *arguments]
        completed = subprocess.run(
            command,
            cwd=self.repo_root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(arguments)}` failed ({completed.returncode}): "
                f"{completed.stderr.strip()[-2000:]}"
            )
        return completed

    def _ps(self, name: str | None = None) -> list[dict[str, Any]]:
        completed = self._compose(
            ["ps", "--all", "--format", "json", *([name] if name else [])], check=False
        )
        text = completed.stdout.strip()
        if not text:
            return []
        if text.startswith("["):  # older Compose: one JSON array
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _prepare_models(self, source: Path) -> Path:
        models = self.work_dir / "models"
        models.mkdir(exist_ok=True)
        catalog = source / "catalog.yaml"
        if not catalog.is_file():
            raise FileNotFoundError(f"{catalog} is missing: run `make setup` first")
        for item in [catalog, *sorted(source.glob("*.gguf"))]:
            if item.resolve().is_file():
                _link_or_copy(item, models / item.name)
        models.chmod(0o755)
        return models

    def _write_env_file(self) -> Path:
        settings = {
            **self.image_settings,
            "COMPOSE_PROJECT_NAME": self.project,
            "WEAVIATE_API_KEY": self.weaviate_api_key,
            "REDIS_PASSWORD": self.redis_password,
            "GATEWAY_PUBLISHED_PORT": str(self.host_ports["gateway"]),
            "DOCUMENTS_DIR": str(self.docs_root),
            "LOG_LEVEL": os.environ.get("LLMSERVER_E2E_LOG_LEVEL", "INFO"),
            "INFERENCE_THREADS": "2",
            "INDEXER_CONCURRENCY": "2",
        }
        path = self.work_dir / "compose.env"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        path.chmod(0o600)
        return path

    def _write_override(self) -> Path:
        """Publish every service on a fixed loopback port; same-path documents; host models."""
        services: dict[str, dict[str, Any]] = {}
        for port_name, service in PORT_OWNERS.items():
            entry = services.setdefault(service, {"ports": [], "networks": ["frontend"]})
            entry["ports"].append(
                f"{LOOPBACK}:{self.host_ports[port_name]}:{CONTAINER_PORTS[port_name]}"
            )
        docs = str(self.docs_root)
        for service, prefix in [("localdocs", "LOCALDOCS_"), ("indexer", "INDEXER_")]:
            entry = services.setdefault(service, {})
            entry["volumes"] = [{"type": "bind", "source": docs, "target": docs, "read_only": True}]
            entry["environment"] = {f"{prefix}ALLOWED_ROOTS": docs}
        services["inference"] = {
            "ports": [f"{LOOPBACK}::{CONTAINER_PORTS['inference']}"],
            "networks": ["frontend"],
            "volumes": [
                {
                    "type": "bind",
                    "source": str(self.models_dir),
                    "target": "/models",
                    "read_only": True,
                }
            ],
        }
        override = {"name": self.project, "services": services}
        path = self.work_dir / "compose.e2e.yaml"
        path.write_text(yaml.safe_dump(override, sort_keys=False))
        return path

    def wait_healthy(self, name: str, timeout: float = 300) -> None:
        """Poll Docker's health status (for callers that started a service some other way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [item.get("Health") for item in self._ps(name)]
            if states and all(state == "healthy" for state in states):
                return
            time.sleep(1)
        raise TimeoutError(f"{name} was not healthy after {timeout:.0f}s")


@contextmanager
def started_compose_stack(repo_root: Path, work_dir: Path) -> Iterator[ComposeStack]:
    """A ComposeStack for a test session or module: skipped, saying why, where Docker is
    missing; a start failure fails the tests with the services' last log lines; always stopped."""
    available, reason = docker_available()
    if not available:
        pytest.skip(f"compose backend: {reason}")
    stack = ComposeStack(repo_root, work_dir)
    try:
        stack.start()  # stops what it started when it fails
    except RuntimeError as failure:
        pytest.fail(f"the compose stack did not start: {failure}", pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()
