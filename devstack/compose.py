"""`make up` and `make down`: compose.yaml on this machine, with whatever it needs made first.

`up`: Docker (engine, plugins, disk: devstack.docker), `.env` with generated secrets, base
images (devstack.images), the llama-cpp-python wheel `make setup` compiled linked into the
inference build, the models volume filled once from the models folder, then
`docker compose up -d --wait`, then a prune of dangling images and excess build cache.
`down`: `docker compose down`, named volumes kept. Standard library only.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from devstack import docker, images, paths

logger = logging.getLogger(__name__)

PROJECT = "llmserver"  # compose.yaml's `name:`
TEST_PROJECT_PREFIX = "llmserver-e2e-"
ENV_FILE = paths.REPO_ROOT / ".env"
ENV_EXAMPLE = paths.REPO_ROOT / ".env.example"
PREBUILT_DIR = paths.REPO_ROOT / "services" / "inference" / "prebuilt"
GENERATED_SECRETS = ("WEAVIATE_API_KEY", "REDIS_PASSWORD")
UP_TIMEOUT_S = 1800
BUILD_CACHE_BOUND = "4GB"


class ComposeFailed(RuntimeError):
    """One line: what failed and what to do."""


# -- .env ----------------------------------------------------------------------------------
def read_env(path: Path = ENV_FILE) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    return values


def set_env(updates: dict[str, str], path: Path = ENV_FILE) -> None:
    """Set keys in a .env file: replaced in place where present, appended otherwise."""
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(updates)
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            lines[index] = f"{key}={pending.pop(key)}"
    lines += [f"{key}={value}" for key, value in pending.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def ensure_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """.env from .env.example, with the secrets compose.yaml requires generated where empty."""
    if not path.exists():
        shutil.copyfile(ENV_EXAMPLE, path)
        logger.info("wrote %s from %s", path.name, ENV_EXAMPLE.name)
    current = read_env(path)
    missing = {
        name: secrets.token_urlsafe(32) for name in GENERATED_SECRETS if not current.get(name)
    }
    if missing:
        set_env(missing, path)
        logger.info("generated %s in %s", ", ".join(missing), path.name)
    return read_env(path)


# -- build inputs --------------------------------------------------------------------------
def link_prebuilt_wheel() -> Path | None:
    """The wheel `make setup` compiled, into the inference build context (hard link)."""
    pattern = f"llama_cpp_python-{paths.LLAMA_CPP_PYTHON_VERSION}-*.whl"
    built = sorted(paths.wheel_dir().glob(pattern))
    PREBUILT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in PREBUILT_DIR.glob("*.whl"):
        stale.unlink()
    if not built:
        logger.info("no llama-cpp-python wheel in the cache: the inference image compiles one")
        return None
    target = PREBUILT_DIR / built[0].name
    try:
        os.link(built[0], target)
    except OSError:
        shutil.copy2(built[0], target)
    return target


def prepare_images(chosen: dict[str, str]) -> dict[str, str]:
    """Base images present (stand-ins where needed) and the wheel linked: the build's inputs."""
    try:
        settings = images.base_image_settings(chosen)
    except (images.ImageBuildFailed, subprocess.SubprocessError, OSError) as failure:
        raise ComposeFailed(f"a base image could not be made: {failure}") from failure
    link_prebuilt_wheel()
    return settings


# -- docker compose ------------------------------------------------------------------------
def compose(*arguments: str, project: str | None = None, timeout: float = 600) -> int:
    """`docker compose` in the repository, output shown; its exit code."""
    command = ["docker", "compose", *(["--project-name", project] if project else []), *arguments]
    logger.info("$ %s", " ".join(command))
    try:
        return subprocess.run(command, cwd=paths.REPO_ROOT, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        logger.error("`%s` took more than %.0fs", " ".join(command), timeout)
        return 124


def running_projects() -> set[str]:
    """Compose projects of this repository with a running container (empty without an engine)."""
    project_label = '{{.Label "com.docker.compose.project"}}'
    completed = docker.capture(
        ["docker", "ps", "--filter", "label=com.docker.compose.project", "--format", project_label],
        timeout=15,
    )
    names = set(completed.stdout.split()) if completed.returncode == 0 else set()
    return {name for name in names if name == PROJECT or name.startswith(TEST_PROJECT_PREFIX)}


def stop_leftover_stacks(keep_main: bool = False) -> list[str]:
    """Take down this project's stacks still running from an earlier run.

    With `restart: unless-stopped`, a stack left up comes back whenever dockerd starts and holds
    its ports; the local stack (`make run`) and the tests must not bind beside it or, worse,
    talk to it. Test stacks go with their volumes; the user's stack keeps its volumes.
    """
    stopped = []
    for project in sorted(running_projects()):
        if project == PROJECT and keep_main:
            continue
        if _test_run_alive(project):
            continue  # another `make test` is using it right now
        logger.warning("stopping the compose stack %r left running from an earlier run", project)
        extra = ["--volumes"] if project.startswith(TEST_PROJECT_PREFIX) else []
        compose("down", "--remove-orphans", *extra, project=project, timeout=180)
        stopped.append(project)
    return stopped


def _test_run_alive(project: str) -> bool:
    """Whether a test stack's project (llmserver-e2e-<pid>-<hex>) belongs to a live process."""
    pid = project.removeprefix(TEST_PROJECT_PREFIX).split("-", 1)[0]
    if not project.startswith(TEST_PROJECT_PREFIX) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _models_volume_filled() -> bool:
    """Whether the stack's models volume holds the default chat model already."""
    completed = docker.capture(
        ["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", f"{PROJECT}_models"]
    )
    mountpoint = Path(completed.stdout.strip()) if completed.returncode == 0 else None
    return bool(mountpoint and (mountpoint / paths.CHAT_MODEL_FILE).exists())


def fill_models_volume(models_dir: Path, inference_image: str) -> None:
    """Copy the models folder (catalog and GGUF files, links followed) into the models volume.

    Once: files already in the volume are left alone. Each file is mounted by its resolved
    path, since the links in models/ point into a cache the container cannot see (or, under
    /root, traverse); it runs the inference image as its service user, so the files belong to
    the user the service reads them as.
    """
    if _models_volume_filled():
        return
    mounts: list[str] = []
    for item in sorted(models_dir.iterdir()):
        if item.name == "catalog.yaml" or item.suffix == ".gguf":
            if item.resolve().is_file():
                mounts += ["--volume", f"{item.resolve()}:/src/{item.name}:ro"]
    script = (
        'for f in /src/*; do name=${f##*/}; [ -e "/models/$name" ] || cp "$f" "/models/$name" '
        "|| exit 1; done; ls -l /models"
    )
    command = [
        *("docker", "run", "--rm", "--network", "none"),
        *("--volume", f"{PROJECT}_models:/models", *mounts),
        *("--entrypoint", "sh", inference_image, "-c", script),
    ]
    logger.info("filling the models volume from %s", models_dir)
    if subprocess.run(command, timeout=600, check=False).returncode != 0:
        raise ComposeFailed("copying the models into the models volume failed: see above")
    if not _models_volume_filled():
        raise ComposeFailed(
            f"the models volume still lacks {paths.CHAT_MODEL_FILE}: run `make setup`, which "
            f"puts the default models in {models_dir}"
        )


def prune() -> None:
    """Dangling images and build cache beyond a bound: rebuilds must not fill the disk."""
    attempts = [
        [["docker", "image", "prune", "--force"]],
        # --max-used-space needs BuildKit 0.17 (Docker 27+); older engines know --keep-storage.
        [
            ["docker", "builder", "prune", "--force", "--max-used-space", BUILD_CACHE_BOUND],
            ["docker", "builder", "prune", "--force", "--keep-storage", BUILD_CACHE_BOUND],
        ],
    ]
    for alternatives in attempts:
        for command in alternatives:
            completed = docker.capture(command, timeout=600)
            if completed.returncode == 0:
                break
        else:
            logger.warning("`%s` failed: %s", " ".join(command), completed.stderr.strip()[-200:])


def up(models_dir: Path | None = None) -> None:
    started = time.monotonic()
    docker.ensure_docker()
    env = ensure_env_file()
    settings = prepare_images(env)
    if settings:
        set_env(settings)
        env.update(settings)
        logger.info("base images: %s (set in .env)", ", ".join(settings.values()))
    stop_leftover_stacks(keep_main=True)
    port = int(env.get("GATEWAY_PUBLISHED_PORT") or 4891)
    if PROJECT not in running_projects() and not port_is_free(port):
        raise ComposeFailed(
            f"127.0.0.1:{port} is taken by another program (is `make run` running?): stop it, "
            "or set GATEWAY_PUBLISHED_PORT in .env"
        )
    documents = Path(env.get("DOCUMENTS_DIR") or "./documents")
    (documents if documents.is_absolute() else paths.REPO_ROOT / documents).mkdir(
        parents=True, exist_ok=True
    )
    if compose("build", timeout=UP_TIMEOUT_S) != 0:
        raise ComposeFailed("`docker compose build` failed: the error is above")
    prune()
    if compose("create", timeout=300) != 0:
        raise ComposeFailed("`docker compose create` failed: the error is above")
    version = env.get("LLMSERVER_VERSION") or "0.1.0"
    fill_models_volume(models_dir or paths.default_models_dir(), f"llmserver-inference:{version}")
    if compose("up", "--detach", "--wait", timeout=UP_TIMEOUT_S) != 0:
        raise ComposeFailed(
            "the stack did not become healthy: `docker compose ps` and "
            "`docker compose logs SERVICE` tell which service and why"
        )
    logger.info(
        "the compose stack is up in %.0fs: the API is at http://127.0.0.1:%d/v1; "
        "`make down` stops it (volumes kept)",
        time.monotonic() - started,
        port,
    )


def down() -> None:
    if not docker.engine_running():
        raise ComposeFailed("no Docker engine answers `docker info`: nothing to take down")
    if compose("down", "--remove-orphans", timeout=300) != 0:
        raise ComposeFailed("`docker compose down` failed: the error is above")
