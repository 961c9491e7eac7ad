"""Every service of the server as local processes: what `make run` and the end-to-end tests use.

Where Docker Compose exists, compose.yaml runs the same services in containers. Here there is no
Docker engine, so this module starts Redis, Tika, Weaviate and the four Python services in
dependency order, waits for each to be healthy before starting what needs it, keeps each
service's log in the data folder (and optionally echoes it, prefixed by service), and stops
everything in reverse order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack import paths

logger = logging.getLogger(__name__)

SERVICE_ORDER = ["redis", "tika", "weaviate", "inference", "localdocs", "indexer", "gateway"]
LOOPBACK = "127.0.0.1"


@dataclass
class Ports:
    gateway: int = 4891
    inference: int = 4892
    localdocs: int = 4893
    weaviate: int = 4894
    weaviate_grpc: int = 4895
    weaviate_gossip: int = 4896
    weaviate_data: int = 4897
    weaviate_raft: int = 4898
    weaviate_raft_rpc: int = 4899
    tika: int = 4900
    redis: int = 4901

    @classmethod
    def free(cls) -> Ports:
        """Distinct free loopback ports for every service (for tests running beside `make run`)."""
        sockets = []
        try:
            numbers = []
            for _ in cls.__dataclass_fields__:
                sock = socket.socket()
                sock.bind((LOOPBACK, 0))
                sockets.append(sock)
                numbers.append(sock.getsockname()[1])
            return cls(*numbers)
        finally:
            for sock in sockets:
                sock.close()


@dataclass
class StackConfig:
    data_dir: Path
    models_dir: Path = field(default_factory=paths.default_models_dir)
    ports: Ports = field(default_factory=Ports)
    # Folders collections may index; the default is the data folder's documents/.
    allowed_roots: list[Path] = field(default_factory=list)
    log_level: str = "INFO"
    echo_logs: bool = False
    # Extra environment per service name, e.g. {"gateway": {"GATEWAY_API_KEY": "..."}}.
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class ServiceSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    is_ready: Callable[[], bool]
    ready_timeout: float = 120.0
    ready_log_line: str | None = None


class ServiceFailed(RuntimeError):
    pass


def describe_exit(returncode: int | None) -> str:
    """'code 3' or 'signal SIGKILL': Popen reports death by signal N as -N."""
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


class _Running:
    """One started process, its log file and the thread that copies its output."""

    def __init__(self, spec: ServiceSpec, log_path: Path, echo: bool) -> None:
        self.spec = spec
        self.ready_seen = threading.Event()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = log_path.open("a", encoding="utf-8", errors="replace")
        self.process = subprocess.Popen(
            spec.command,
            env=spec.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so children stop with it
        )
        self.reader = threading.Thread(
            target=self._copy_output, args=(self.process.stdout, echo), daemon=True
        )
        self.reader.start()

    def _copy_output(self, stream: IO[bytes] | None, echo: bool) -> None:
        if stream is None:
            return
        prefix = f"{self.spec.name:<9} | "
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            self.log_file.write(line)
            self.log_file.flush()
            if echo:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()
            if self.spec.ready_log_line and self.spec.ready_log_line in line:
                self.ready_seen.set()
        stream.close()

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float) -> None:
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.1fs: killing it", self.spec.name, timeout)
        # Whatever is left in the group (forked children) goes too.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.reader.join(timeout=5)
        self.log_file.close()


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _redis_ok(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.models_dir = config.models_dir.resolve()
        self.docs_root = self.data_dir / "documents"
        self.docs_root.mkdir(exist_ok=True)
        self.allowed_roots = [p.resolve() for p in config.allowed_roots] or [self.docs_root]
        self.weaviate_api_key = self._secret("weaviate-api-key")
        # Weaviate's internal cluster API binds every interface too: basic auth closes it.
        self.weaviate_cluster_password = self._secret("weaviate-cluster-password")
        self._running: dict[str, _Running] = {}

    # -- addresses -------------------------------------------------------------------------
    @property
    def ports(self) -> Ports:
        return self.config.ports

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{getattr(self.ports, name)}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.ports.redis}/0"

    @property
    def weaviate_grpc_port(self) -> int:
        return self.ports.weaviate_grpc

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def _secret(self, name: str) -> str:
        # Weaviate's gRPC and cluster servers bind every interface whatever we set, so they
        # must never be open to anonymous clients: secrets generated once per data folder.
        secret_file = self.data_dir / name
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        return secret_file.read_text().strip()

    # -- what each service is --------------------------------------------------------------
    def _python_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
        return env

    def specs(self) -> dict[str, ServiceSpec]:
        p = self.ports
        level = self.config.log_level
        # Uploads of OpenAI's Files API: localdocs writes them, the indexer reads them.
        openai_dir = self._folder("openai")
        roots = ",".join(str(r) for r in [*self.allowed_roots, openai_dir])
        python = sys.executable
        weaviate_auth = {"Authorization": f"Bearer {self.weaviate_api_key}"}
        docstore_env = {
            "REDIS_URL": self.redis_url,
            "INFERENCE_URL": self.url("inference"),
            "WEAVIATE_URL": self.url("weaviate"),
            "WEAVIATE_GRPC_PORT": str(p.weaviate_grpc),
            "WEAVIATE_API_KEY": self.weaviate_api_key,
            "ALLOWED_ROOTS": roots,
            "LOG_LEVEL": level,
        }
        specs = {
            "redis": ServiceSpec(
                "redis",
                [
                    "redis-server",
                    "--bind",
                    LOOPBACK,
                    "--port",
                    str(p.redis),
                    "--dir",
                    str(self._folder("redis")),
                    "--appendonly",
                    "yes",
                    "--protected-mode",
                    "yes",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                ],
                dict(os.environ),
                lambda: _redis_ok(p.redis),
                ready_timeout=30,
            ),
            "tika": ServiceSpec(
                "tika",
                [
                    "java",
                    "-Djava.awt.headless=true",
                    "-jar",
                    str(paths.tika_jar()),
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(p.tika),
                ],
                dict(os.environ),
                lambda: _http_ok(f"{self.url('tika')}/version"),
                ready_timeout=120,
            ),
            "weaviate": ServiceSpec(
                "weaviate",
                [
                    str(paths.weaviate_binary()),
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(p.weaviate),
                    "--scheme",
                    "http",
                ],
                {
                    **os.environ,
                    "PERSISTENCE_DATA_PATH": str(self._folder("weaviate")),
                    "DEFAULT_VECTORIZER_MODULE": "none",
                    "ENABLE_MODULES": "",
                    "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
                    "AUTHENTICATION_APIKEY_ENABLED": "true",
                    "AUTHENTICATION_APIKEY_ALLOWED_KEYS": self.weaviate_api_key,
                    "AUTHENTICATION_APIKEY_USERS": "llmserver",
                    "CLUSTER_HOSTNAME": "node1",
                    "CLUSTER_BASIC_AUTH_USERNAME": "llmserver-cluster",
                    "CLUSTER_BASIC_AUTH_PASSWORD": self.weaviate_cluster_password,
                    "CLUSTER_BIND_ADDR": LOOPBACK,
                    "CLUSTER_ADVERTISE_ADDR": LOOPBACK,
                    "CLUSTER_GOSSIP_BIND_PORT": str(p.weaviate_gossip),
                    "CLUSTER_DATA_BIND_PORT": str(p.weaviate_data),
                    "RAFT_PORT": str(p.weaviate_raft),
                    "RAFT_INTERNAL_RPC_PORT": str(p.weaviate_raft_rpc),
                    "RAFT_BOOTSTRAP_EXPECT": "1",
                    "GRPC_PORT": str(p.weaviate_grpc),
                    "GO_PROFILING_DISABLE": "true",
                    "DISABLE_TELEMETRY": "true",
                    "LOG_LEVEL": "warning" if level.upper() != "DEBUG" else "debug",
                },
                lambda: _http_ok(f"{self.url('weaviate')}/v1/.well-known/ready", weaviate_auth),
                ready_timeout=120,
            ),
            "inference": ServiceSpec(
                "inference",
                [python, "-m", "llmserver_inference"],
                self._python_env(
                    {
                        "INFERENCE_HOST": LOOPBACK,
                        "INFERENCE_PORT": str(p.inference),
                        "INFERENCE_MODELS_DIR": str(self.models_dir),
                        "INFERENCE_LOG_LEVEL": level,
                    }
                ),
                lambda: _http_ok(f"{self.url('inference')}/health"),
                ready_timeout=180,
            ),
            "localdocs": ServiceSpec(
                "localdocs",
                [python, "-m", "llmserver_localdocs"],
                self._python_env(
                    {
                        "LOCALDOCS_HOST": LOOPBACK,
                        "LOCALDOCS_PORT": str(p.localdocs),
                        "LOCALDOCS_OPENAI_DIR": str(openai_dir),
                        **{f"LOCALDOCS_{k}": v for k, v in docstore_env.items()},
                    }
                ),
                lambda: _http_ok(f"{self.url('localdocs')}/health"),
                ready_timeout=90,
            ),
            "indexer": ServiceSpec(
                "indexer",
                [python, "-m", "llmserver_indexer", "worker"],
                self._python_env(
                    {
                        "INDEXER_TIKA_URL": self.url("tika"),
                        **{f"INDEXER_{k}": v for k, v in docstore_env.items()},
                    }
                ),
                lambda: False,  # ready when Celery logs its "ready." line
                ready_timeout=90,
                ready_log_line="ready.",
            ),
            "gateway": ServiceSpec(
                "gateway",
                [python, "-m", "llmserver_gateway"],
                self._python_env(
                    {
                        "GATEWAY_HOST": LOOPBACK,
                        "GATEWAY_PORT": str(p.gateway),
                        "GATEWAY_INFERENCE_URLS": self.url("inference"),
                        "GATEWAY_LOCALDOCS_URL": self.url("localdocs"),
                        "GATEWAY_LOG_LEVEL": level,
                    }
                ),
                lambda: _http_ok(f"{self.url('gateway')}/health"),
                ready_timeout=60,
            ),
        }
        for name, extra in self.config.service_env.items():
            specs[name].env.update(extra)
        return specs

    def _folder(self, name: str) -> Path:
        folder = self.data_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, services: list[str] | None = None) -> None:
        wanted = services or SERVICE_ORDER
        try:
            for name in SERVICE_ORDER:
                if name in wanted:
                    self.start_service(name)
        except BaseException:
            self.stop()
            raise

    def start_service(self, name: str) -> None:
        """Start one service and return once it is ready (raises ServiceFailed otherwise)."""
        if self.is_running(name):
            return
        spec = self.specs()[name]
        started = time.monotonic()
        running = self.launch(name, spec)
        deadline = started + spec.ready_timeout
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                running.reader.join(timeout=2)
                raise ServiceFailed(
                    f"{name} exited with {describe_exit(running.process.returncode)} while "
                    f"starting; last log lines:\n{self.log_tail(name)}"
                )
            if self.is_ready(name):
                logger.info("%s is ready (%.1fs)", name, time.monotonic() - started)
                return
            time.sleep(0.2)
        raise ServiceFailed(
            f"{name} was not ready after {spec.ready_timeout:.0f}s; "
            f"last log lines:\n{self.log_tail(name)}"
        )

    def launch(self, name: str, spec: ServiceSpec | None = None) -> _Running:
        """Start one service's process without waiting for it (the supervisor polls is_ready)."""
        spec = spec or self.specs()[name]
        logger.info("starting %s", name)
        running = _Running(spec, self.log_path(name), self.config.echo_logs)
        self._running[name] = running
        return running

    def is_ready(self, name: str) -> bool:
        running = self._running.get(name)
        if running is None or running.process.poll() is not None:
            return False
        return running.ready_seen.is_set() or running.spec.is_ready()

    def process_of(self, name: str) -> subprocess.Popen[bytes] | None:
        running = self._running.get(name)
        return running.process if running is not None else None

    def stop_service(self, name: str, timeout: float = 15) -> None:
        running = self._running.pop(name, None)
        if running is not None:
            if running.process.poll() is None:
                logger.info("stopping %s", name)
            # An exited service still has its log to close and maybe forked children to end.
            running.stop(timeout)

    def kill_service(self, name: str) -> None:
        """SIGKILL a service's whole process group, as a crash would."""
        running = self._running.pop(name, None)
        if running is not None:
            running.signal_group(signal.SIGKILL)
            running.stop(timeout=5)

    def stop(self, budget_s: float | None = None) -> None:
        """Stop every service, dependents first. With a budget (Ctrl-C: the user is waiting),
        each service may use what is left of it less a second kept for each one after it, and
        is killed when that runs out (a gateway holding open streams would wait on them)."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        order = list(reversed(SERVICE_ORDER))
        for index, name in enumerate(order):
            timeout = 15.0
            if deadline is not None:
                reserved = 1.0 * (len(order) - index - 1)
                timeout = min(timeout, max(0.5, deadline - time.monotonic() - reserved))
            self.stop_service(name, timeout)

    def is_running(self, name: str) -> bool:
        running = self._running.get(name)
        return running is not None and running.process.poll() is None

    def exited_services(self) -> list[str]:
        return [name for name, run in self._running.items() if run.process.poll() is not None]

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
