"""Reading the deployment files the way Docker does, without a Docker engine.

Compose files are YAML with `${VAR}` interpolation; Dockerfiles are instructions with `\\`
line continuations. The static tests check what these files say, so they need both parsed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
GPU_OVERRIDE_FILE = REPO_ROOT / "compose.gpu.yaml"
ENV_EXAMPLE_FILE = REPO_ROOT / ".env.example"
COMPOSE_SCHEMA = REPO_ROOT / "tests" / "data" / "compose-spec.json"
SERVICES = ["gateway", "inference", "localdocs", "indexer"]
DOCKERFILES = {name: REPO_ROOT / "services" / name / "Dockerfile" for name in SERVICES}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)


def venv_tool(name: str) -> str:
    """A console script installed next to this interpreter (the project's .venv), else PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (see requirements-dev.txt)")
    return found


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def interpolation_names(text: str) -> set[str]:
    """Every variable a Compose file interpolates (`$$` is a literal dollar, not a variable)."""
    return {match["name"] for match in _INTERPOLATION.finditer(text.replace("$$", ""))}


def with_defaults(value: str) -> str:
    """A string as Compose would interpolate it with an empty environment: defaults applied."""

    def replace(match: re.Match[str]) -> str:
        op = match["op"] or ""
        return match["arg"] if op in {"-", ":-"} else ""

    return _INTERPOLATION.sub(replace, value)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of Compose's two syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


@dataclass
class PortMapping:
    host_ip: str | None
    published: str | None
    target: str


def port_mappings(service: dict[str, Any]) -> list[PortMapping]:
    """Compose's short ("[IP:][HOST:]CONTAINER[/proto]") and long port syntaxes, normalised."""
    mappings = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            mappings.append(
                PortMapping(
                    entry.get("host_ip"),
                    None if published is None else str(published),
                    str(entry["target"]),
                )
            )
            continue
        text = with_defaults(str(entry)).split("/", 1)[0]
        if text.startswith("["):  # an IPv6 address in brackets
            address, _, rest = text[1:].partition("]:")
            published, _, target = rest.rpartition(":")
            mappings.append(PortMapping(address, published or None, target))
            continue
        parts = text.split(":")
        if len(parts) == 1:
            mappings.append(PortMapping(None, None, parts[0]))
        elif len(parts) == 2:
            mappings.append(PortMapping(None, parts[0] or None, parts[1]))
        else:
            mappings.append(PortMapping(parts[0], parts[1] or None, parts[2]))
    return mappings


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference such as registry:5000/org/name:tag@sha256:..."""
    name, _, digest = reference.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


# -- Dockerfiles ---------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str | None]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, alias: str) -> Stage:
        for stage in self.stages:
            if stage.alias == alias:
                return stage
        raise KeyError(f"{self.path}: no stage named {alias}")


def parse_dockerfile(path: Path) -> Dockerfile:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start_line = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if not pending:
            start_line = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start_line))
    assert not pending, f"{path}: the last instruction ends with a line continuation"

    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for item in instructions:
        if item.keyword == "FROM":
            words = [word for word in item.arguments.split() if not word.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
        elif not stages:
            if item.keyword == "ARG":
                name, _, default = item.arguments.partition("=")
                global_args[name.strip()] = default.strip().strip('"') if default else None
        else:
            stages[-1].instructions.append(item)
    return Dockerfile(path, global_args, stages)


def expand_args(text: str, args: dict[str, str | None]) -> str:
    """`${NAME}` / `$NAME` replaced by the build argument's default value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = args.get(name)
        return match.group(0) if value is None else value

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)


def run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stage_chain(dockerfile: Dockerfile, stage: Stage, args: dict[str, str | None]) -> list[Stage]:
    """The stage and the earlier stages it is built FROM, nearest first (build args applied)."""
    chain = [stage]
    aliases = {item.alias: item for item in dockerfile.stages if item.alias}
    base = expand_args(stage.base, args)
    while base in aliases:
        stage = aliases[base]
        chain.append(stage)
        base = expand_args(stage.base, args)
    return chain


def effective(
    dockerfile: Dockerfile, keyword: str, args: dict[str, str | None] | None = None
) -> Instruction | None:
    """The last `keyword` instruction in force in the final stage (inherited ones included)."""
    values = {**dockerfile.global_args, **(args or {})}
    for stage in stage_chain(dockerfile, dockerfile.final, values):
        found = stage.all(keyword)
        if found:
            return found[-1]
    return None


def compose_command() -> list[str] | None:
    """How to run Compose here: LLMSERVER_DOCKER_COMPOSE (a standalone docker-compose v2), else
    the `docker compose` plugin where it answers, else None (the caller skips)."""
    binary = os.environ.get("LLMSERVER_DOCKER_COMPOSE")
    if binary:
        return [binary]
    if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None
