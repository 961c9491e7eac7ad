"""The model catalog: catalog.yaml entries plus GGUF files dropped into the models folder.

Names resolve by display name, file name or alias, case-insensitively. Only models whose file is
present are listed. A GGUF without an entry is served under its file name, its kind and chat
template read from its own metadata.

A file written in the last LANDING_S seconds is not listed yet: it is most likely still being
copied in, and reading its metadata on every request while its mtime keeps changing would stall
the event loop (and /health with it), while loading a half-written GGUF would fail or worse.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from llmserver_inference import gguf_header

logger = logging.getLogger(__name__)

CATALOG_FILENAME = "catalog.yaml"
EMBEDDING_ARCHITECTURES = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "modern-bert"}

ModelKind = Literal["chat", "embedding"]

DEFAULT_REASONING_MARKERS = ("<think>", "</think>")

# Seconds a model file must have gone unmodified before it is listed (see the module's doc).
LANDING_S = 2.0


class CatalogError(ValueError):
    """catalog.yaml is malformed."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    filename: str
    kind: ModelKind = "chat"
    chat_format: str | None = None
    chat_template: str | None = None
    context_length: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    aliases: tuple[str, ...] = ()
    query_prefix: str = ""
    document_prefix: str = ""
    n_gpu_layers: int | None = None
    threads: int | None = None
    batch_size: int | None = None
    # Embedding models: inputs are cut to this many tokens (sentence-transformers'
    # max_seq_length) instead of being rejected.
    max_input_tokens: int | None = None
    # Chat models: the most max_tokens a request may ask for (INFERENCE_MAX_TOKENS_CAP if unset);
    # the default when a request gives none is `defaults.max_tokens`.
    max_tokens_ceiling: int | None = None
    # Chat models: special tokens that end a reply as end-of-generation does (turn markers),
    # added to those read from the chat format / template.
    stop_tokens: tuple[str, ...] = ()
    # Chat models: the markers around the reasoning part of a reply (reasoning_content);
    # None (catalog `reasoning: false`) leaves replies whole.
    reasoning_markers: tuple[str, str] | None = DEFAULT_REASONING_MARKERS
    # False for GGUF files found in the folder without a catalog entry.
    in_catalog: bool = True

    def names(self) -> list[str]:
        return [self.name, self.filename, *self.aliases]


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str | None
    pooling_type: int | None
    context_length: int | None

    @property
    def is_embedding(self) -> bool:
        # llama.cpp pooling types: 0 none, 1 mean, 2 cls, 3 last, 4 rank.
        return (self.architecture or "") in EMBEDDING_ARCHITECTURES or (
            self.pooling_type is not None and self.pooling_type > 0
        )


_ARCH_KEYS = ("pooling_type", "context_length")


def read_gguf_info(path: Path) -> GGUFInfo:
    """Reads the few metadata keys the catalog needs, stopping as soon as it has them."""
    arch: str | None = None
    # "<arch>.pooling_type" and "<arch>.context_length", whichever order the keys come in.
    per_arch: dict[str, gguf_header.Value] = {}
    for key, value in gguf_header.iter_metadata(path):
        if key == "general.architecture" and isinstance(value, str):
            arch = value
        elif key.endswith(tuple(f".{name}" for name in _ARCH_KEYS)):
            per_arch[key] = value
        if arch is not None and all(f"{arch}.{name}" in per_arch for name in _ARCH_KEYS):
            break
    pooling = per_arch.get(f"{arch}.pooling_type")
    ctx = per_arch.get(f"{arch}.context_length")
    return GGUFInfo(
        architecture=arch,
        pooling_type=int(pooling) if isinstance(pooling, int | float) else None,
        context_length=int(ctx) if isinstance(ctx, int | float) else None,
    )


def _parse_entry(raw: Any, index: int) -> ModelEntry:
    if not isinstance(raw, dict):
        raise CatalogError(f"catalog entry {index} is not a mapping")
    try:
        name = str(raw["name"])
        filename = str(raw["filename"])
    except KeyError as exc:
        raise CatalogError(f"catalog entry {index} lacks {exc.args[0]!r}") from None
    kind = raw.get("kind", "chat")
    if kind not in ("chat", "embedding"):
        raise CatalogError(f"catalog entry {name!r}: kind must be chat or embedding")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise CatalogError(f"catalog entry {name!r}: defaults must be a mapping")
    aliases = raw.get("aliases") or []
    if isinstance(aliases, str):
        aliases = [aliases]

    stop_tokens = raw.get("stop_tokens") or []
    if isinstance(stop_tokens, str):
        stop_tokens = [stop_tokens]

    def optional_int(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else int(value)

    return ModelEntry(
        name=name,
        filename=filename,
        kind=kind,
        chat_format=raw.get("chat_format"),
        chat_template=raw.get("chat_template"),
        context_length=optional_int("context_length"),
        defaults=dict(defaults),
        system_prompt=raw.get("system_prompt") or None,
        aliases=tuple(str(a) for a in aliases),
        query_prefix=str(raw.get("query_prefix") or ""),
        document_prefix=str(raw.get("document_prefix") or ""),
        n_gpu_layers=optional_int("n_gpu_layers"),
        threads=optional_int("threads"),
        batch_size=optional_int("batch_size"),
        max_input_tokens=optional_int("max_input_tokens"),
        max_tokens_ceiling=optional_int("max_tokens_ceiling"),
        stop_tokens=tuple(str(t) for t in stop_tokens),
        reasoning_markers=_reasoning_markers(raw.get("reasoning", True), name),
    )


def _reasoning_markers(value: Any, name: str) -> tuple[str, str] | None:
    """`reasoning`: true (the default markers), false, or {start: ..., end: ...}."""
    if value is True:
        return DEFAULT_REASONING_MARKERS
    if value is False or value is None:
        return None
    if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("start", "end")):
        if value["start"] and value["end"]:
            return (value["start"], value["end"])
    raise CatalogError(f"catalog entry {name!r}: reasoning must be true, false or {{start, end}}")


def load_catalog_file(path: Path) -> list[ModelEntry]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    if data is None:
        return []
    if isinstance(data, dict) and "models" in data:
        data = data["models"]
    if not isinstance(data, list):
        raise CatalogError(f"{path}: expected a list of model entries")
    return [_parse_entry(raw, i) for i, raw in enumerate(data)]


class ModelCatalog:
    """The models present in the models folder, rescanned cheaply (listdir + stat) on each use."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._entries: list[ModelEntry] = load_catalog_file(models_dir / CATALOG_FILENAME)
        # Keyed by path, size and mtime: a file replaced in place is read again.
        self._gguf_cache: dict[tuple[str, int, int], GGUFInfo | None] = {}

    def path_of(self, entry: ModelEntry) -> Path:
        return self.models_dir / entry.filename

    def gguf_info(self, path: Path) -> GGUFInfo | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._gguf_cache:
                return self._gguf_cache[key]
        try:
            info: GGUFInfo | None = read_gguf_info(path)
        except Exception as exc:  # a broken or partial file must not break listing
            logger.warning("cannot read GGUF metadata of %s: %s", path.name, exc)
            info = None
        with self._lock:
            self._gguf_cache[key] = info
        return info

    def available(self) -> list[ModelEntry]:
        """Catalog entries whose file is present, then unlisted GGUF files, by file name."""
        try:
            candidates = [p for p in self.models_dir.iterdir() if p.is_file() or p.is_symlink()]
        except OSError:
            candidates = []
        settled_before = time.time() - LANDING_S
        present: set[str] = set()
        for path in candidates:
            try:
                modified = path.stat().st_mtime  # follows links; a dangling one raises
            except OSError:
                continue
            if modified <= settled_before:
                present.add(path.name)
        listed: list[ModelEntry] = []
        seen_files: set[str] = set()
        for entry in self._entries:
            if entry.filename in present and entry.filename not in seen_files:
                listed.append(entry)
                seen_files.add(entry.filename)
        known_files = {e.filename for e in self._entries}
        for filename in sorted(present):
            if not filename.lower().endswith(".gguf") or filename in known_files:
                continue
            listed.append(self._unlisted_entry(filename))
        return listed

    def _unlisted_entry(self, filename: str) -> ModelEntry:
        info = self.gguf_info(self.models_dir / filename)
        kind: ModelKind = "embedding" if info is not None and info.is_embedding else "chat"
        return ModelEntry(
            name=filename,
            filename=filename,
            kind=kind,
            context_length=None,
            in_catalog=False,
        )

    def resolve(self, name: str) -> ModelEntry | None:
        """Display name, file name or alias, case-insensitive; only present models."""
        wanted = name.strip().casefold()
        available = self.available()
        for entry in available:
            if any(candidate.casefold() == wanted for candidate in entry.names()):
                return entry
        # "model" and "model.gguf" name the same file.
        if not wanted.endswith(".gguf"):
            for entry in available:
                if entry.filename.casefold() == wanted + ".gguf":
                    return entry
        return None

    def installed_names(self) -> list[str]:
        return [entry.name for entry in self.available()]
