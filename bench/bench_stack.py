"""The stacks the benchmarks start: `devstack()`, every service (or some) on free ports; and
`localdocs_services()`, what a LocalDocs benchmark talks to: such a devstack, or, when
LOCALDOCS_BENCH_URL is set, running services named by LOCALDOCS_BENCH_* variables:
LOCALDOCS_BENCH_URL, LOCALDOCS_BENCH_INFERENCE_URL, LOCALDOCS_BENCH_WEAVIATE_URL,
LOCALDOCS_BENCH_WEAVIATE_GRPC_PORT, LOCALDOCS_BENCH_WEAVIATE_API_KEY, LOCALDOCS_BENCH_DOCS_ROOT.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ["redis", "tika", "weaviate", "inference", "localdocs", "indexer"]


@contextlib.contextmanager
def localdocs_services() -> Iterator[dict[str, Any]]:
    """URLs of localdocs, inference and Weaviate, Weaviate's gRPC port and key, docs root."""
    env = os.environ
    if env.get("LOCALDOCS_BENCH_URL"):
        yield {
            "localdocs": env["LOCALDOCS_BENCH_URL"],
            "inference": env["LOCALDOCS_BENCH_INFERENCE_URL"],
            "weaviate": env["LOCALDOCS_BENCH_WEAVIATE_URL"],
            "weaviate_grpc_port": env["LOCALDOCS_BENCH_WEAVIATE_GRPC_PORT"],
            "weaviate_api_key": env.get("LOCALDOCS_BENCH_WEAVIATE_API_KEY"),
            "docs_root": env["LOCALDOCS_BENCH_DOCS_ROOT"],
        }
        return
    with devstack(SERVICES) as stack:
        yield {
            "localdocs": stack.url("localdocs"),
            "inference": stack.url("inference"),
            "weaviate": stack.url("weaviate"),
            "weaviate_grpc_port": stack.weaviate_grpc_port,
            "weaviate_api_key": stack.weaviate_api_key,
            "docs_root": str(stack.docs_root),
        }


@contextlib.contextmanager
def devstack(services: list[str] | None = None) -> Iterator[Any]:
    """A devstack of its own on free ports (every service when `services` is None)."""
    sys.path.insert(0, str(REPO_ROOT))  # devstack is a folder of the repository
    from devstack.stack import Ports, Stack, StackConfig

    data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(
        StackConfig(data_dir=data_dir, models_dir=REPO_ROOT / "models", ports=Ports.free())
    )
    stack.start(services)
    try:
        yield stack
    finally:
        stack.stop()
