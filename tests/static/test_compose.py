"""compose.yaml (and its GPU override), checked without a Docker engine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.deployment_files import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    ENV_EXAMPLE_FILE,
    GPU_OVERRIDE_FILE,
    REPO_ROOT,
    SERVICES,
    compose_command,
    environment,
    interpolation_names,
    load_yaml,
    port_mappings,
    run,
    services,
    split_image,
    venv_tool,
    with_defaults,
)

# Third-party services the stack needs, besides the four built from this repository.
INFRASTRUCTURE = ["weaviate", "redis", "tika"]
# One-shot jobs (run with `docker compose run`), not part of `up`.
SETUP_PROFILE = "setup"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def gpu_override() -> dict[str, Any]:
    return load_yaml(GPU_OVERRIDE_FILE)


def long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services(compose).items()
        if SETUP_PROFILE not in (service.get("profiles") or [])
    }


def check_schema(*files: Path) -> tuple[int, str]:
    completed = run(
        [venv_tool("check-jsonschema"), "--schemafile", str(COMPOSE_SCHEMA), *map(str, files)]
    )
    return completed.returncode, completed.stdout + completed.stderr


# -- the Compose Specification ---------------------------------------------------------------
def test_compose_files_are_valid_against_the_compose_specification() -> None:
    code, output = check_schema(COMPOSE_FILE, GPU_OVERRIDE_FILE)
    assert code == 0, output


def test_schema_check_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    # Proves the check above can fail: "port" is not a Compose key, healthcheck.retries a number.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        "services:\n  web:\n    image: nginx:1.27.3\n    port: ['80:80']\n"
        "    healthcheck:\n      retries: many\n"
    )
    code, output = check_schema(broken)
    assert code != 0
    assert "port" in output


def test_compose_spec_copy_matches_the_shared_spec() -> None:
    shared = REPO_ROOT.parent / "shared" / "spec" / "compose-spec.json"
    if not shared.exists():
        pytest.skip("no shared/spec beside the repository")
    assert json.loads(COMPOSE_SCHEMA.read_text()) == json.loads(shared.read_text())


def test_docker_compose_accepts_the_files_where_it_is_installed(tmp_path: Path) -> None:
    # The Compose implementation itself (interpolation, merge, references) where it exists.
    # LLMSERVER_DOCKER_COMPOSE may name a standalone docker-compose v2 binary.
    command = compose_command()
    if command is None:
        pytest.skip("docker compose is not installed here (set LLMSERVER_DOCKER_COMPOSE)")
    env_file = tmp_path / "test.env"
    env_file.write_text("WEAVIATE_API_KEY=static-test-key\nREDIS_PASSWORD=static-test-password\n")
    for files in (["compose.yaml"], ["compose.yaml", "compose.gpu.yaml"]):
        arguments = [part for name in files for part in ("-f", str(REPO_ROOT / name))]
        completed = run(
            [*command, "--env-file", str(env_file), *arguments, "--profile", "setup", "config"]
        )
        assert completed.returncode == 0, completed.stderr
        merged = yaml.safe_load(completed.stdout)
        assert set(merged["services"]) == {*SERVICES, *INFRASTRUCTURE, "models"}
    # Without the Weaviate key the stack must refuse to start rather than run unprotected.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    without_key = {key: value for key, value in os.environ.items() if key != "WEAVIATE_API_KEY"}
    completed = run(
        [*command, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=without_key,
    )
    assert completed.returncode != 0
    assert "WEAVIATE_API_KEY" in completed.stderr
    # Nor without the Redis password.
    key_only = tmp_path / "key-only.env"
    key_only.write_text("WEAVIATE_API_KEY=static-test-key\n")
    without = {k: v for k, v in without_key.items() if k != "REDIS_PASSWORD"}
    completed = run(
        [*command, "--env-file", str(key_only), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=without,
    )
    assert completed.returncode != 0
    assert "REDIS_PASSWORD" in completed.stderr


# -- what runs ------------------------------------------------------------------------------
def test_every_service_of_the_stack_is_defined(compose: dict[str, Any]) -> None:
    assert set(long_running(compose)) == {*SERVICES, *INFRASTRUCTURE}


def test_repository_services_build_from_their_dockerfile_with_the_root_as_context(
    compose: dict[str, Any],
) -> None:
    for name in SERVICES:
        build = services(compose)[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"services/{name}/Dockerfile"
        assert (REPO_ROOT / build["dockerfile"]).is_file()


def test_every_image_is_pinned(compose: dict[str, Any], gpu_override: dict[str, Any]) -> None:
    for document in (compose, gpu_override):
        for name, service in services(document).items():
            if "image" not in service:
                assert document is gpu_override, f"{name} has no image"
                continue
            image, tag, digest = split_image(with_defaults(service["image"]))
            assert tag or digest, f"{name}: {service['image']} has no tag"
            assert tag not in {"latest", "stable", ""}, f"{name}: {service['image']}"
            if "build" not in services(compose).get(name, {}):
                # Third-party images: an exact release (1.39.0, 7.4.6-bookworm, 3.3.2.0-full).
                assert tag.split("-", 1)[0].count(".") >= 2, f"{name}: {tag} is not exact"


def test_pinned_infrastructure_versions(compose: dict[str, Any]) -> None:
    images = {name: with_defaults(services(compose)[name]["image"]) for name in INFRASTRUCTURE}
    assert images["weaviate"] == "semitechnologies/weaviate:1.39.0"
    assert split_image(images["redis"])[0] == "redis"
    assert split_image(images["redis"])[1].startswith("7.")
    assert split_image(images["tika"])[0] == "apache/tika"
    assert split_image(images["tika"])[1].endswith("-full")


# -- exposure -------------------------------------------------------------------------------
def test_only_the_gateway_publishes_a_port_and_only_on_loopback(
    compose: dict[str, Any], gpu_override: dict[str, Any]
) -> None:
    for document in (compose, gpu_override):
        for name, service in services(document).items():
            mappings = port_mappings(service)
            if name != "gateway":
                assert not mappings, f"{name} publishes {service['ports']}"
                assert "expose" not in service or not service["expose"] or name == "gateway"
                continue
            for mapping in mappings:
                assert mapping.host_ip == "127.0.0.1", f"gateway port {mapping} is not loopback"
                assert mapping.target == "4891"
    gateway_ports = port_mappings(services(compose)["gateway"])
    assert [(m.host_ip, m.published, m.target) for m in gateway_ports] == [
        ("127.0.0.1", "4891", "4891")
    ]


def test_port_parser_sees_an_exposed_port(tmp_path: Path) -> None:
    # The helper must tell a loopback binding from an open one, or the test above proves nothing.
    open_port = port_mappings({"ports": ["4891:4891"]})[0]
    assert open_port.host_ip is None
    long_form = port_mappings({"ports": [{"target": 80, "published": 8080}]})[0]
    assert long_form.host_ip is None
    assert port_mappings({"ports": ["127.0.0.1:${P:-9}:80"]})[0].published == "9"


def test_only_the_gateway_is_on_a_network_with_a_route_out(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    internal = {name for name, spec in networks.items() if (spec or {}).get("internal")}
    assert internal, "the backend network must be internal"
    for name, service in services(compose).items():
        if service.get("network_mode") == "none":
            continue
        assert "network_mode" not in service, f"{name}: network_mode {service['network_mode']}"
        joined = service.get("networks")
        assert joined, f"{name} would join the default (routable) network"
        outside = set(joined) - internal
        if name == "gateway":
            assert outside and set(joined) & internal
        else:
            assert not outside, f"{name} is on {outside}"


def test_inference_can_be_scaled(compose: dict[str, Any], gpu_override: dict[str, Any]) -> None:
    for document in (compose, gpu_override):
        inference = services(document)["inference"]
        assert "container_name" not in inference
        assert not inference.get("ports")
        assert "hostname" not in inference
    gateway_env = environment(services(compose)["gateway"])
    # The service name resolves to one A record per replica.
    assert gateway_env["GATEWAY_INFERENCE_URLS"] == "http://inference:4892"
    for name, service in services(compose).items():
        assert "container_name" not in service, f"{name}: container_name blocks scaling"


# -- health and start order -----------------------------------------------------------------
def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in long_running(compose).items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test}"
        assert "interval" in check and "timeout" in check and "retries" in check, name


def test_one_shot_jobs_say_so(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if name in long_running(compose):
            continue
        assert service.get("restart") == "no", f"{name} would restart after finishing"
        assert service.get("healthcheck") == {"disable": True}, name


def test_repository_healthchecks_need_no_curl(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        test = services(compose)[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], f"{name}: {test}"
    for name in ["gateway", "inference", "localdocs"]:
        port = environment(services(compose)[name])[f"{name.upper()}_PORT"]
        probe = services(compose)[name]["healthcheck"]["test"][3]
        assert f"http://127.0.0.1:{port}/health" in probe


def test_every_dependency_waits_for_health(compose: dict[str, Any]) -> None:
    defined = services(compose)
    for name, service in defined.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, spec in depends.items():
            assert dependency in defined, f"{name} depends on unknown {dependency}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dependency}"
            assert defined[dependency].get("healthcheck"), f"{dependency} has no healthcheck"


def test_start_order_matches_what_each_service_calls(compose: dict[str, Any]) -> None:
    depends = {name: set(s.get("depends_on") or {}) for name, s in services(compose).items()}
    assert depends["gateway"] == {"inference", "localdocs"}
    assert depends["localdocs"] >= {"redis", "weaviate", "inference"}
    assert depends["indexer"] >= {"redis", "weaviate", "tika", "inference"}


# -- settings, data ---------------------------------------------------------------------------
def test_services_listen_on_every_interface_inside_their_container(
    compose: dict[str, Any],
) -> None:
    for name in ["gateway", "inference", "localdocs"]:
        assert environment(services(compose)[name])[f"{name.upper()}_HOST"] == "0.0.0.0"


def test_upstream_addresses_use_service_names(compose: dict[str, Any]) -> None:
    for name, prefix in [("localdocs", "LOCALDOCS_"), ("indexer", "INDEXER_")]:
        env = environment(services(compose)[name])
        assert with_defaults(env[f"{prefix}REDIS_URL"]) == "redis://:@redis:6379/0"
        assert env[f"{prefix}INFERENCE_URL"] == "http://inference:4892"
        assert env[f"{prefix}WEAVIATE_URL"] == "http://weaviate:8080"
        assert env[f"{prefix}WEAVIATE_GRPC_PORT"] == "50051"
        assert env[f"{prefix}WEAVIATE_API_KEY"].startswith("${WEAVIATE_API_KEY:?")
    assert environment(services(compose)["indexer"])["INDEXER_TIKA_URL"] == "http://tika:9998"
    assert environment(services(compose)["gateway"])["GATEWAY_LOCALDOCS_URL"] == (
        "http://localdocs:4893"
    )


def test_weaviate_has_no_vectorizer_and_requires_the_api_key(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["weaviate"])
    assert env["DEFAULT_VECTORIZER_MODULE"] == "none"
    assert env["ENABLE_MODULES"] == ""
    assert env["AUTHENTICATION_APIKEY_ENABLED"] == "true"
    assert env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    # Required (":?"): no default key that every installation would share.
    assert env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"].startswith("${WEAVIATE_API_KEY:?")
    assert env["PERSISTENCE_DATA_PATH"] == "/var/lib/weaviate"


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    script = services(compose)["redis"]["command"][-1].split()
    assert script[script.index("--appendonly") + 1] == "yes"


def test_redis_requires_the_password_from_env(compose: dict[str, Any]) -> None:
    redis = services(compose)["redis"]
    # Required (":?"): no default password that every installation would share.
    assert environment(redis)["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    script = redis["command"][-1].split()
    assert script[script.index("--requirepass") + 1] == '"$$REDISCLI_AUTH"'
    for name, prefix in [("localdocs", "LOCALDOCS_"), ("indexer", "INDEXER_")]:
        url = environment(services(compose)[name])[f"{prefix}REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("@redis:6379/0")


def test_third_party_images_are_chosen_by_variables_defaulting_to_the_official_ones(
    compose: dict[str, Any],
) -> None:
    official = {
        "redis": ("REDIS_IMAGE", "redis:7.4.6-bookworm"),
        "weaviate": ("WEAVIATE_IMAGE", "semitechnologies/weaviate:1.39.0"),
        "tika": ("TIKA_IMAGE", "apache/tika:3.3.2.0-full"),
    }
    for name, (variable, image) in official.items():
        assert services(compose)[name]["image"] == f"${{{variable}:-{image}}}"
    python = "${PYTHON_IMAGE:-python:3.11.14-slim-bookworm}"
    for name in [*SERVICES, "models"]:
        assert services(compose)[name]["build"]["args"]["PYTHON_IMAGE"] == python, name
    for name in SERVICES:
        dockerfile = (REPO_ROOT / f"services/{name}/Dockerfile").read_text()
        assert "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm" in dockerfile, name


def _volume_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append((entry["source"], entry["target"], bool(entry.get("read_only"))))
            continue
        parts = entry.split(":")
        # The source may itself contain an interpolation with ':-': join it back.
        if entry.startswith("${"):
            closing = entry.index("}")
            parts = [entry[: closing + 1], *entry[closing + 2 :].split(":")]
        mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return mounts


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert declared >= {"models", "weaviate-data", "redis-data"}
    expected = {
        "inference": ("models", "/models"),
        "weaviate": ("weaviate-data", "/var/lib/weaviate"),
        "redis": ("redis-data", "/data"),
        "models": ("models", "/models"),
    }
    for name, (volume, target) in expected.items():
        mounts = _volume_mounts(services(compose)[name])
        assert any(source == volume and path == target for source, path, _ in mounts), name
    inference_mounts = _volume_mounts(services(compose)["inference"])
    assert ("models", "/models", True) in inference_mounts, "inference only reads the models"
    assert environment(services(compose)["inference"])["INFERENCE_MODELS_DIR"] == "/models"


def test_documents_are_mounted_read_only_and_are_the_allowed_root(
    compose: dict[str, Any],
) -> None:
    for name, prefix in [("localdocs", "LOCALDOCS_"), ("indexer", "INDEXER_")]:
        service = services(compose)[name]
        mounts = _volume_mounts(service)
        assert ("${DOCUMENTS_DIR:-./documents}", "/documents", True) in mounts, mounts
        # Beside the documents: the OpenAI Files API's uploads, one volume for both services.
        assert environment(service)[f"{prefix}ALLOWED_ROOTS"] == "/documents,/openai"
    assert ("openai-files", "/openai", False) in _volume_mounts(services(compose)["localdocs"])
    assert ("openai-files", "/openai", True) in _volume_mounts(services(compose)["indexer"])
    assert environment(services(compose)["localdocs"])["LOCALDOCS_OPENAI_DIR"] == "/openai"
    for name in ["gateway", "inference", "weaviate", "redis", "tika"]:
        sources = [source for source, _, _ in _volume_mounts(services(compose)[name])]
        assert "${DOCUMENTS_DIR:-./documents}" not in sources, f"{name} sees the documents"
        assert "openai-files" not in sources, f"{name} sees the uploads"


def test_models_setup_job_works_offline(compose: dict[str, Any]) -> None:
    job = services(compose)["models"]
    assert job["profiles"] == [SETUP_PROFILE]
    assert job["network_mode"] == "none"  # no hub, no registry: the files are in the image
    assert job["build"]["target"] == "models"
    script = job["command"][-1]
    assert "assemble(" in script and "llmserver_inference.convert_minilm" in script
    catalog = yaml.safe_load((REPO_ROOT / "models" / "catalog.yaml").read_text())
    text = json.dumps(catalog)
    for model_file in ["gemma-3-270m-q4_k_m.gguf", "all-MiniLM-L6-v2.F32.gguf"]:
        assert model_file in script
        assert model_file in text, f"models/catalog.yaml does not name {model_file}"


def test_every_setting_the_files_read_is_documented_in_env_example() -> None:
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in ENV_EXAMPLE_FILE.read_text().splitlines()
        if "=" in line and not line.startswith("#   ")
    }
    for path in (COMPOSE_FILE, GPU_OVERRIDE_FILE):
        missing = interpolation_names(path.read_text()) - documented
        assert not missing, f"{path.name} reads {missing}, not in .env.example"
    assert "COMPOSE_FILE" in documented  # the GPU switch


def test_interpolation_reader_finds_variables() -> None:
    text = "a: ${ONE}\nb: ${TWO:-x}\nc: $${NOT_A_VARIABLE}\nd: ${THREE:?why}"
    assert interpolation_names(text) == {"ONE", "TWO", "THREE"}


# -- GPU ------------------------------------------------------------------------------------
def test_gpu_override_builds_cuda_and_reserves_nvidia_devices(
    gpu_override: dict[str, Any], compose: dict[str, Any]
) -> None:
    # Only the images that hold llama.cpp change; the setup job reuses the CUDA layers.
    assert set(services(gpu_override)) == {"inference", "models"}
    assert services(gpu_override)["models"]["build"]["args"]["LLAMA_BACKEND"] == "cuda"
    assert "deploy" not in services(gpu_override)["models"]
    inference = services(gpu_override)["inference"]
    assert inference["build"]["args"]["LLAMA_BACKEND"] == "cuda"
    assert services(compose)["inference"]["build"]["args"]["LLAMA_BACKEND"] == "cpu"
    # A tag of its own, so a CUDA build never replaces the CPU image.
    assert with_defaults(inference["image"]) != with_defaults(
        services(compose)["inference"]["image"]
    )
    devices = inference["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert with_defaults(environment(inference)["INFERENCE_N_GPU_LAYERS"]) == "-1"
