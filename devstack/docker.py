"""What `docker compose` needs on this machine: a running engine, Compose and buildx, free disk.

Where an engine and recent plugins exist, nothing is installed. Otherwise, as root on Debian:
Debian's `docker.io` engine (started as a plain `dockerd`, which picks overlay2 by itself) and
the Compose and buildx plugins built from the Go module proxy with their versions stamped
(Compose refuses an unstamped buildx, and without buildx it falls back to a builder that
rejects `RUN --mount`). Each failure is one actionable line (`DockerUnavailable`).
Standard library only: `make up` may run this before the virtual environment exists.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from devstack import paths

logger = logging.getLogger(__name__)

MIN_FREE_GB = 15
ENGINE_START_TIMEOUT_S = 90
# Oldest plugins that build compose.yaml: Compose with `--wait`, buildx that Compose accepts.
MIN_COMPOSE = (2, 20)
MIN_BUILDX = (0, 17)


class DockerUnavailable(RuntimeError):
    """Docker cannot be had here; the message says why and what to do, in one line."""


def capture(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A command's output, never raising: a missing program is 127, a time-out 124."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(command, 127, "", f"{command[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", f"no answer in {timeout:.0f}s")


def _version(text: str) -> tuple[int, ...]:
    """(5, 6, 0) from 'v5.6.0', '5.6.0' or 'github.com/docker/buildx v0.38.2 abc'."""
    for word in text.split():
        parts = word.lstrip("v").split("-")[0].split(".")
        if len(parts) >= 2 and all(part.isdigit() for part in parts):
            return tuple(int(part) for part in parts)
    return ()


def is_root() -> bool:
    return os.geteuid() == 0


def is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def engine_running() -> bool:
    return capture(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20).returncode == 0


def data_root() -> Path:
    found = capture(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout=20).stdout.strip()
    return Path(found or "/var/lib/docker")


def storage_driver() -> str:
    return capture(["docker", "info", "--format", "{{.Driver}}"], timeout=20).stdout.strip()


def apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        logger.info("$ %s", " ".join(command))
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise DockerUnavailable(f"`{' '.join(command)}` failed: see its output above")


def ensure_engine() -> None:
    """A Docker engine that answers `docker info`, installed and started here if need be."""
    if engine_running():
        return
    if not is_root():
        raise DockerUnavailable(
            "no Docker engine answers `docker info` and only root can install or start one: "
            "start Docker (e.g. `sudo systemctl start docker`) or run this as root on Debian"
        )
    if shutil.which("dockerd") is None:
        if not is_debian():
            raise DockerUnavailable(
                "no Docker engine here and this is not Debian: install Docker Engine "
                "(docs.docker.com/engine/install), then run this again"
            )
        apt_install("docker.io")
    if shutil.which("docker") is None:
        raise DockerUnavailable("dockerd is installed but the docker client is not on PATH")
    log = paths.cache_dir() / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting dockerd (log: %s)", log)
    with log.open("ab") as sink:
        # No storage-driver flag: dockerd picks overlay2 on ext4/xfs. Never vfs: it copies every
        # layer whole and fills the disk. Its own session, so Ctrl-C of `make` leaves it running.
        subprocess.Popen(
            ["dockerd"], stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if engine_running():
            driver = storage_driver()
            logger.info("Docker engine started (storage driver %s)", driver)
            if driver == "vfs":
                logger.warning("dockerd runs on vfs: every layer is copied whole; use overlay2")
            return
        time.sleep(1)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    raise DockerUnavailable(
        f"dockerd did not answer within {ENGINE_START_TIMEOUT_S}s; last line of {log}: "
        f"{tail[0] if tail else '(empty)'}"
    )


def plugin_dir() -> Path:
    """Where the docker client looks for CLI plugins of this user."""
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"


def _compose_version() -> tuple[int, ...]:
    completed = capture(["docker", "compose", "version", "--short"])
    return _version(completed.stdout) if completed.returncode == 0 else ()


def _buildx_version() -> tuple[int, ...]:
    completed = capture(["docker", "buildx", "version"])
    return _version(completed.stdout) if completed.returncode == 0 else ()


def _go_module_dir(module: str, version: str) -> Path:
    completed = capture(["go", "mod", "download", "-json", f"{module}@{version}"], timeout=600)
    if completed.returncode != 0:
        raise DockerUnavailable(
            f"`go mod download {module}@{version}` failed: "
            f"{(completed.stderr or completed.stdout).strip()[-300:]}"
        )
    return Path(json.loads(completed.stdout)["Dir"])


def _build_plugin(name: str, module: str, version: str, package: str, version_var: str) -> Path:
    """`go build` in the module's own folder (`go install` of Compose is refused), stamped."""
    binary = paths.docker_plugin(name, version)
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise DockerUnavailable(
            f"{name} {version} must be built and Go is not installed: install Go 1.24 or newer"
        )
    source = _go_module_dir(module, version)
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    command = ["go", "build", "-ldflags", f"-X {version_var}={version}", "-o", str(partial)]
    logger.info("building %s %s (a few minutes, once)", name, version)
    completed = subprocess.run(
        [*command, package],
        cwd=source,
        env={**os.environ, "GOFLAGS": "-modcacherw", "CGO_ENABLED": "0"},
        check=False,
    )
    if completed.returncode != 0:
        raise DockerUnavailable(f"building {name} {version} failed: see the Go output above")
    partial.rename(binary)
    return binary


def _install_plugin(binary: Path) -> None:
    target = plugin_dir() / binary.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_symlink():
        # Never overwrite a plugin someone installed by hand: keep it beside ours.
        target.rename(target.with_name(target.name + ".previous"))
    target.unlink(missing_ok=True)
    target.symlink_to(binary)
    logger.info("installed %s -> %s", target, binary)


def ensure_plugins() -> None:
    """Compose and buildx recent enough for compose.yaml, built and linked in if they are not."""
    if _buildx_version() < MIN_BUILDX:
        _install_plugin(
            _build_plugin(
                "docker-buildx",
                "github.com/docker/buildx",
                paths.BUILDX_VERSION,
                "./cmd/buildx",
                "github.com/docker/buildx/version.Version",
            )
        )
    if _compose_version() < MIN_COMPOSE:
        _install_plugin(
            _build_plugin(
                "docker-compose",
                "github.com/docker/compose/v5",
                paths.COMPOSE_VERSION,
                "./cmd",
                "github.com/docker/compose/v5/internal.Version",
            )
        )
    for what, found, least in (
        ("buildx", _buildx_version(), MIN_BUILDX),
        ("compose", _compose_version(), MIN_COMPOSE),
    ):
        if found < least:
            raise DockerUnavailable(
                f"docker {what} is still older than {'.'.join(map(str, least))} after installing "
                f"ours in {plugin_dir()}: check DOCKER_CONFIG and `docker {what} version`"
            )


def free_gb(path: Path = Path("/")) -> float:
    return shutil.disk_usage(path).free / 1e9


def check_disk(path: Path = Path("/")) -> None:
    """Image builds need room: refuse before starting one rather than fill the disk midway."""
    left = free_gb(path)
    if left < MIN_FREE_GB:
        raise DockerUnavailable(
            f"only {left:.1f} GB free on {path}; image builds need {MIN_FREE_GB} GB: free space "
            "(e.g. `docker image prune`, `docker builder prune`) and run this again"
        )


def ensure_docker() -> None:
    """Engine, plugins and disk, in that order; raises DockerUnavailable with the reason."""
    ensure_engine()
    ensure_plugins()
    check_disk()
