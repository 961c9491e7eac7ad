"""The local supervisor's wiring, checked without starting anything heavy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack import install
from devstack.stack import SERVICE_ORDER, Ports, ServiceFailed, ServiceSpec, Stack, StackConfig


def test_free_ports_are_distinct_and_not_the_defaults() -> None:
    ports = Ports.free()
    numbers = list(ports.__dict__.values())
    assert len(set(numbers)) == len(numbers)
    assert ports.gateway != 4891


def test_services_are_wired_to_each_other(tmp_path: Path) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path, ports=Ports.free()))
    specs = stack.specs()
    assert list(specs) == SERVICE_ORDER
    gateway = specs["gateway"].env
    assert gateway["GATEWAY_HOST"] == "127.0.0.1"
    assert gateway["GATEWAY_INFERENCE_URLS"] == stack.url("inference")
    assert gateway["GATEWAY_LOCALDOCS_URL"] == stack.url("localdocs")
    for service in ("localdocs", "indexer"):
        env = specs[service].env
        prefix = service.upper()
        assert env[f"{prefix}_REDIS_URL"] == stack.redis_url
        assert env[f"{prefix}_WEAVIATE_API_KEY"] == stack.weaviate_api_key
        # The documents folder, and the OpenAI Files API's uploads (localdocs writes them,
        # the indexer reads them).
        openai_dir = stack.data_dir / "openai"
        assert env[f"{prefix}_ALLOWED_ROOTS"] == f"{stack.docs_root},{openai_dir}"
    assert specs["localdocs"].env["LOCALDOCS_OPENAI_DIR"] == str(stack.data_dir / "openai")
    assert specs["indexer"].env["INDEXER_TIKA_URL"] == stack.url("tika")
    weaviate = specs["weaviate"]
    assert weaviate.env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert weaviate.env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == stack.weaviate_api_key
    assert weaviate.env["CLUSTER_BIND_ADDR"] == "127.0.0.1"
    assert weaviate.command[weaviate.command.index("--host") + 1] == "127.0.0.1"


def test_weaviate_key_is_generated_once_per_data_folder(tmp_path: Path) -> None:
    first = Stack(StackConfig(data_dir=tmp_path)).weaviate_api_key
    second = Stack(StackConfig(data_dir=tmp_path)).weaviate_api_key
    assert first == second and len(first) >= 32
    assert (tmp_path / "weaviate-api-key").stat().st_mode & 0o077 == 0
    assert Stack(StackConfig(data_dir=tmp_path / "other")).weaviate_api_key != first


def test_a_service_that_exits_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path))
    spec = ServiceSpec(
        "broken",
        [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
        {},
        lambda: False,
        ready_timeout=20,
    )
    stack.specs = lambda: {"broken": spec}  # type: ignore[method-assign]
    with pytest.raises(ServiceFailed, match="exited with code 3") as failure:
        stack.start_service("broken")
    assert "bad config" in str(failure.value)


def test_venv_fingerprint_follows_the_dependency_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install.paths, "REPO_ROOT", tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pytest==9.2.0\n")
    before = install._venv_fingerprint()
    assert install._venv_fingerprint() == before
    (tmp_path / "requirements-dev.txt").write_text("pytest==9.2.1\n")
    assert install._venv_fingerprint() != before
