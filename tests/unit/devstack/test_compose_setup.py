"""`make up`'s preparation without an engine: versions, .env, plugins, disk, one-line refusals."""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from pathlib import Path

import pytest

from devstack import compose, docker, images, paths


def test_versions_are_read_from_every_format_the_plugins_print() -> None:
    assert docker._version("v5.6.0") == (5, 6, 0)
    assert docker._version("2.29.1-desktop.1") == (2, 29, 1)
    assert docker._version("github.com/docker/buildx v0.38.2 6f1b5b3") == (0, 38, 2)
    assert docker._version("not a version") == ()
    assert docker._version("v0.16.9") < docker.MIN_BUILDX <= docker._version("v0.38.2")


def test_env_file_gets_generated_secrets_once(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nWEAVIATE_API_KEY=\nREDIS_PASSWORD=\nLOG_LEVEL=INFO\n")
    first = compose.ensure_env_file(env)
    assert len(first["WEAVIATE_API_KEY"]) >= 32 and len(first["REDIS_PASSWORD"]) >= 32
    assert first["WEAVIATE_API_KEY"] != first["REDIS_PASSWORD"]
    assert first["LOG_LEVEL"] == "INFO"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600  # secrets: owner only
    again = compose.ensure_env_file(env)
    assert again == first  # a second `make up` keeps them (the data volumes depend on them)
    assert env.read_text().startswith("# comment\n")


def test_env_file_is_made_from_the_example(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    values = compose.ensure_env_file(env)
    assert values["GATEWAY_PUBLISHED_PORT"] == "4891"
    assert values["WEAVIATE_API_KEY"] and values["REDIS_PASSWORD"]


def test_set_env_replaces_in_place_and_appends_new_keys(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n# B=commented\nC=3\n")
    compose.set_env({"A": "one", "B": "two"}, env)
    assert env.read_text() == "A=one\n# B=commented\nC=3\nB=two\n"
    assert compose.read_env(env) == {"A": "one", "C": "3", "B": "two"}


def test_too_little_disk_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(docker.shutil, "disk_usage", lambda _path: usage(100e9, 95e9, 5e9))
    with pytest.raises(docker.DockerUnavailable) as refused:
        docker.check_disk()
    message = str(refused.value)
    assert "5.0 GB free" in message and "15 GB" in message and "\n" not in message


def test_no_engine_and_not_root_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "engine_running", lambda: False)
    monkeypatch.setattr(docker, "is_root", lambda: False)
    with pytest.raises(docker.DockerUnavailable) as refused:
        docker.ensure_engine()
    assert "only root" in str(refused.value) and "\n" not in str(refused.value)


def test_no_engine_and_not_debian_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "engine_running", lambda: False)
    monkeypatch.setattr(docker, "is_root", lambda: True)
    monkeypatch.setattr(docker, "is_debian", lambda: False)
    monkeypatch.setattr(docker.shutil, "which", lambda _name: None)
    with pytest.raises(docker.DockerUnavailable, match="not Debian"):
        docker.ensure_engine()


def test_our_plugin_is_linked_and_a_hand_installed_one_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    plugins = tmp_path / "config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").write_text("someone else's")
    ours = tmp_path / "cache" / "docker-compose"
    ours.parent.mkdir()
    ours.write_text("ours")
    docker._install_plugin(ours)
    assert (plugins / "docker-compose").resolve() == ours.resolve()
    assert (plugins / "docker-compose.previous").read_text() == "someone else's"
    docker._install_plugin(ours)  # again: still ours, nothing else moved
    assert (plugins / "docker-compose").resolve() == ours.resolve()


def test_plugins_are_built_only_when_missing_or_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    versions = {"buildx": (0, 38, 2), "compose": (2, 5, 0)}
    monkeypatch.setattr(docker, "_buildx_version", lambda: versions["buildx"])
    monkeypatch.setattr(docker, "_compose_version", lambda: versions["compose"])

    def build(name: str, *_args: str) -> Path:
        built.append(name)
        versions["compose"] = (5, 6, 0)
        return Path("/nonexistent") / name

    monkeypatch.setattr(docker, "_build_plugin", build)
    monkeypatch.setattr(docker, "_install_plugin", lambda _binary: None)
    docker.ensure_plugins()
    assert built == ["docker-compose"]  # buildx 0.38.2 is new enough; Compose 2.5 is not


def test_plugin_still_too_old_after_install_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "_buildx_version", lambda: ())
    monkeypatch.setattr(docker, "_compose_version", lambda: (5, 6, 0))
    monkeypatch.setattr(docker, "_build_plugin", lambda name, *_: Path("/nonexistent") / name)
    monkeypatch.setattr(docker, "_install_plugin", lambda _binary: None)
    with pytest.raises(docker.DockerUnavailable, match="DOCKER_CONFIG"):
        docker.ensure_plugins()


def test_prebuilt_wheel_is_linked_into_the_inference_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    wheels = cache / "wheels"
    wheels.mkdir(parents=True)
    wheel = wheels / f"llama_cpp_python-{paths.LLAMA_CPP_PYTHON_VERSION}-py3-none-linux_x86_64.whl"
    wheel.write_bytes(b"wheel")
    context = tmp_path / "prebuilt"
    context.mkdir()
    (context / "llama_cpp_python-0.0.1-py3-none-any.whl").write_bytes(b"stale")
    monkeypatch.setenv("LLMSERVER_CACHE", str(cache))
    monkeypatch.setattr(compose, "PREBUILT_DIR", context)
    linked = compose.link_prebuilt_wheel()
    assert linked is not None and linked.name == wheel.name
    assert os.path.samefile(linked, wheel)
    assert [p.name for p in context.glob("*.whl")] == [wheel.name]  # the stale one is gone
    wheel.unlink()
    assert compose.link_prebuilt_wheel() is None  # no wheel: the image compiles one
    assert not list(context.glob("*.whl"))


def test_stand_ins_are_used_only_where_the_official_image_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"python:3.11.14-slim-bookworm"}
    monkeypatch.setattr(images, "image_exists", lambda name: name in present)
    monkeypatch.setattr(images, "_official_available", lambda image: image.official in present)
    made: list[str] = []
    monkeypatch.setattr(images, "build_stand_in", lambda image: made.append(image.local))
    settings = images.base_image_settings({"TIKA_IMAGE": "my/tika:1.2.3"})
    assert "PYTHON_IMAGE" not in settings  # the official image is here: nothing to set
    assert "TIKA_IMAGE" not in settings  # the user's choice stands
    assert settings == {
        "REDIS_IMAGE": "llmserver-local/redis:7-bookworm",
        "WEAVIATE_IMAGE": "llmserver-local/weaviate:1.39.0",
    }
    assert made == list(settings.values())


def test_only_this_projects_stacks_count_as_leftovers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A test stack of this very process is in use: never a leftover.
    alive = f"llmserver-e2e-{os.getpid()}-5e6f7a8b"

    class Listing:
        returncode = 0
        stdout = f"llmserver\nllmserver-e2e-1a2b3c4d\n{alive}\nsomeone-else\n"

    monkeypatch.setattr(docker, "capture", lambda *_a, **_k: Listing())
    assert compose.running_projects() == {"llmserver", "llmserver-e2e-1a2b3c4d", alive}
    downs: list[tuple[tuple[str, ...], str | None]] = []
    monkeypatch.setattr(
        compose, "compose", lambda *args, project=None, timeout=0: downs.append((args, project))
    )
    assert compose.stop_leftover_stacks(keep_main=True) == ["llmserver-e2e-1a2b3c4d"]
    assert downs == [(("down", "--remove-orphans", "--volumes"), "llmserver-e2e-1a2b3c4d")]
    downs.clear()
    assert compose.stop_leftover_stacks() == ["llmserver", "llmserver-e2e-1a2b3c4d"]
    # The user's stack keeps its volumes (their index and models); test stacks do not.
    assert downs[0] == (("down", "--remove-orphans"), "llmserver")


def test_a_taken_port_is_detected() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert not compose.port_is_free(holder.getsockname()[1])
