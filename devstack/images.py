"""Base images for compose.yaml where the official ones cannot be pulled (no registry reachable).

compose.yaml names every third-party image through a variable whose default is the official
image (PYTHON_IMAGE, REDIS_IMAGE, WEAVIATE_IMAGE, TIKA_IMAGE). A machine that can pull changes
nothing. Elsewhere each is made here from package registries and what `make setup` already has:
a Debian root from debootstrap, Debian's python3 and redis-server, the Weaviate server built from
its Go module, Tika's jar from Maven Central. `base_image_settings()` says which variables to set.
Standard library only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import docker, paths

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parent / "images"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_IMAGE = f"llmserver-local/debian:{DEBIAN_SUITE}"
PULL_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 1200
HOST_CA_CERTIFICATES = Path("/usr/local/share/ca-certificates")


@dataclass(frozen=True)
class BaseImage:
    variable: str  # the compose.yaml variable that names it
    official: str  # its default there
    local: str  # the stand-in's name
    recipe: str  # devstack/images/<recipe>.Dockerfile
    # Files the recipe copies in: name in the build context -> where it is on this machine.
    inputs: Callable[[], dict[str, Path]]


def _no_inputs() -> dict[str, Path]:
    return {}


def _host_ca_certificates() -> dict[str, Path]:
    if not HOST_CA_CERTIFICATES.is_dir():
        return {}
    return {f"ca-certificates/{p.name}": p for p in sorted(HOST_CA_CERTIFICATES.glob("*.crt"))}


BASE_IMAGES = [
    BaseImage(
        "PYTHON_IMAGE",
        "python:3.11.14-slim-bookworm",
        f"llmserver-local/python:3.11-{DEBIAN_SUITE}",
        "python",
        _host_ca_certificates,
    ),
    BaseImage(
        "REDIS_IMAGE",
        "redis:7.4.6-bookworm",
        f"llmserver-local/redis:7-{DEBIAN_SUITE}",
        "redis",
        _no_inputs,
    ),
    BaseImage(
        "WEAVIATE_IMAGE",
        f"semitechnologies/weaviate:{paths.WEAVIATE_VERSION.lstrip('v')}",
        f"llmserver-local/weaviate:{paths.WEAVIATE_VERSION.lstrip('v')}",
        "weaviate",
        lambda: {"weaviate-server": paths.weaviate_binary()},
    ),
    BaseImage(
        "TIKA_IMAGE",
        "apache/tika:3.3.2.0-full",
        f"llmserver-local/tika:{paths.TIKA_VERSION}",
        "tika",
        lambda: {"tika-server.jar": paths.tika_jar()},
    ),
]


class ImageBuildFailed(RuntimeError):
    pass


def image_exists(name: str) -> bool:
    return (
        docker.capture(["docker", "image", "inspect", "--format", "{{.Id}}", name], 60).returncode
        == 0
    )


def _label(name: str) -> str:
    label = '{{index .Config.Labels "llmserver.recipe"}}'
    completed = docker.capture(["docker", "image", "inspect", "--format", label, name], 60)
    return completed.stdout.strip() if completed.returncode == 0 else ""


def _recipe_digest(image: BaseImage) -> str:
    """The recipe and its inputs' sizes and times: a change to either rebuilds the image."""
    digest = hashlib.sha256((RECIPES / f"{image.recipe}.Dockerfile").read_bytes())
    for name, source in sorted(image.inputs().items()):
        stat = source.stat()
        digest.update(f"{name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def ensure_debian_image() -> None:
    """A minimal Debian root from debootstrap, imported as the stand-ins' common base."""
    if image_exists(DEBIAN_IMAGE):
        return
    if shutil.which("debootstrap") is None:
        if not (docker.is_root() and docker.is_debian()):
            raise ImageBuildFailed("debootstrap is missing: install Debian's debootstrap package")
        docker.apt_install("debootstrap")
    logger.info("making %s with debootstrap (about a minute)", DEBIAN_IMAGE)
    with tempfile.TemporaryDirectory(dir=paths.cache_dir(), prefix="rootfs-") as rootfs:
        completed = subprocess.run(
            ["debootstrap", "--variant=minbase", DEBIAN_SUITE, rootfs, DEBIAN_MIRROR],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise ImageBuildFailed(f"debootstrap failed: {completed.stdout.strip()[-300:]}")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", DEBIAN_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0:
            raise ImageBuildFailed(f"docker import failed: {imported.stderr.strip()[-300:]}")


def build_stand_in(image: BaseImage) -> None:
    digest = _recipe_digest(image)
    if _label(image.local) == digest:
        return
    ensure_debian_image()
    logger.info("building %s (stand-in for %s)", image.local, image.official)
    with tempfile.TemporaryDirectory(dir=paths.cache_dir(), prefix="context-") as context:
        root = Path(context)
        (root / "ca-certificates").mkdir()
        for name, source in image.inputs().items():
            target = root / name
            try:
                os.link(source, target)  # the same disk: no copy of a large binary
            except OSError:
                shutil.copy2(source, target)
        completed = subprocess.run(
            [
                "docker",
                "build",
                "--file",
                str(RECIPES / f"{image.recipe}.Dockerfile"),
                "--build-arg",
                f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
                "--label",
                f"llmserver.recipe={digest}",
                "--tag",
                image.local,
                str(root),
            ],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if completed.returncode != 0:
        raise ImageBuildFailed(
            f"building {image.local} failed: {(completed.stderr or completed.stdout)[-600:]}"
        )


def _official_available(image: BaseImage) -> bool:
    if image_exists(image.official):
        return True
    logger.info("pulling %s", image.official)
    pulled = docker.capture(["docker", "pull", "--quiet", image.official], PULL_TIMEOUT_S)
    if pulled.returncode == 0:
        return True
    logger.info("cannot pull %s (%s): using a stand-in", image.official, pulled.stderr.strip())
    return False


def base_image_settings(chosen: dict[str, str] | None = None) -> dict[str, str]:
    """The compose variables to set (name -> image) so that every base image exists here.

    A variable already in `chosen` (the user's .env) is left as it is; an official image that
    is present or can be pulled needs no variable; anything else gets a stand-in built here.
    """
    chosen = chosen or {}
    settings: dict[str, str] = {}
    for image in BASE_IMAGES:
        if chosen.get(image.variable):
            continue
        if image_exists(image.local) and not image_exists(image.official):
            build_stand_in(image)  # rebuilt only when its recipe or inputs changed
            settings[image.variable] = image.local
        elif not _official_available(image):
            build_stand_in(image)
            settings[image.variable] = image.local
    return settings
