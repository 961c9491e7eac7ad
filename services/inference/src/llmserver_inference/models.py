"""Loaded models: loaded on first use (or through the lifecycle API) and kept, within a memory
budget, LRU unloaded first; a model with an idle TTL unloads itself once idle that long."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import llama_cpp

from llmserver_common.errors import APIError, model_not_found
from llmserver_inference.catalog import ModelCatalog, ModelEntry
from llmserver_inference.embedding import EmbeddingEngine
from llmserver_inference.engine import ChatEngine
from llmserver_inference.llama_backend import load_model, token_piece, tokenize
from llmserver_inference.prompting import ChatTemplater
from llmserver_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)


@dataclass
class LoadedChatModel:
    entry: ModelEntry
    engine: ChatEngine
    templater: ChatTemplater
    size_bytes: int
    last_used: float = field(default_factory=time.monotonic)
    # Idle seconds before it unloads itself; None: kept until the budget needs the room.
    ttl_s: int | None = None

    @property
    def context_length(self) -> int:
        return self.engine.n_ctx_seq


@dataclass
class LoadedEmbeddingModel:
    entry: ModelEntry
    engine: EmbeddingEngine
    size_bytes: int
    last_used: float = field(default_factory=time.monotonic)
    # Idle seconds before it unloads itself; None: kept until the budget needs the room.
    ttl_s: int | None = None

    @property
    def context_length(self) -> int:
        return self.engine.max_input_tokens


LoadedModel = LoadedChatModel | LoadedEmbeddingModel


def _meta_str(model: object, key: str) -> str | None:
    buf_size = 1 << 16
    import ctypes

    buf = ctypes.create_string_buffer(buf_size)
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, buf_size)
    if n < 0:
        return None
    if n >= buf_size:
        buf = ctypes.create_string_buffer(n + 1)
        llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, n + 1)
    return buf.value.decode("utf-8", errors="replace")


def _stop_token_ids(vocab: object, markers: list[str]) -> frozenset[int]:
    """Turn markers -> token ids; only markers that are one special token of this vocabulary."""
    ids: set[int] = set()
    for marker in markers:
        tokens = tokenize(vocab, marker, add_special=False, parse_special=True)
        if len(tokens) == 1 and llama_cpp.llama_vocab_is_control(vocab, tokens[0]):
            ids.add(tokens[0])
        else:
            logger.warning("stop token %r is not one special token of this model; ignored", marker)
    return frozenset(ids)


class ModelManager:
    def __init__(self, settings: InferenceSettings, catalog: ModelCatalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Future[LoadedModel]] = {}
        self._lock = asyncio.Lock()

    @property
    def loading(self) -> list[str]:
        return sorted(self._loading)

    def loaded_models(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def is_loaded(self, entry: ModelEntry) -> bool:
        return entry.filename in self._loaded

    def resolve(self, name: str | None, default: str, kind: str) -> ModelEntry:
        wanted = name or default
        entry = self.catalog.resolve(wanted)
        if entry is None:
            raise model_not_found(wanted, self.catalog.installed_names())
        if entry.kind != kind:
            # 404 as OpenAI answers it ("This is not a chat model ..."): the name is valid, this
            # endpoint has no such model.
            raise APIError(
                404,
                f"The model '{entry.name}' is not a {kind} model (its kind: {entry.kind}); "
                f"this endpoint needs a {kind} model.",
                param="model",
                code="model_not_supported",
            )
        return entry

    def context_length_of(self, entry: ModelEntry) -> int:
        loaded = self._loaded.get(entry.filename)
        if loaded is not None:
            return loaded.context_length
        return entry.context_length or self.settings.context_length

    async def get(self, entry: ModelEntry) -> LoadedModel:
        loaded = self._loaded.get(entry.filename)
        if loaded is not None:
            loaded.last_used = time.monotonic()
            return loaded
        async with self._lock:
            loaded = self._loaded.get(entry.filename)
            if loaded is not None:
                return loaded
            future = self._loading.get(entry.filename)
            if future is None:
                future = asyncio.get_running_loop().create_future()
                self._loading[entry.filename] = future
                asyncio.get_running_loop().create_task(self._load(entry, future))
        # Requests for a model that is loading wait for it.
        return await asyncio.shield(future)

    async def _load(self, entry: ModelEntry, future: asyncio.Future[LoadedModel]) -> None:
        path = self.catalog.path_of(entry)
        try:
            size = path.stat().st_size
            await self._make_room(size, keep=entry.filename)
            started = time.monotonic()
            loaded = await asyncio.to_thread(self._load_blocking, entry, size)
            logger.info(
                "loaded %s (%s) in %.1fs", entry.name, entry.kind, time.monotonic() - started
            )
            loaded.ttl_s = self.settings.model_ttl_s
            self._loaded[entry.filename] = loaded
            future.set_result(loaded)
        except Exception as exc:
            logger.exception("failed to load %s", entry.name)
            future.set_exception(
                APIError(
                    500,
                    f"The model '{entry.name}' could not be loaded.",
                    type="internal_error",
                    code="model_load_failed",
                )
            )
            del exc
        finally:
            self._loading.pop(entry.filename, None)

    def _load_blocking(self, entry: ModelEntry, size: int) -> LoadedModel:
        s = self.settings
        model = load_model(
            str(self.catalog.path_of(entry)),
            entry.n_gpu_layers if entry.n_gpu_layers is not None else s.n_gpu_layers,
        )
        threads = entry.threads or s.threads
        batch_size = entry.batch_size or s.batch_size
        if entry.kind == "embedding":
            engine = EmbeddingEngine(
                model,
                threads=threads,
                batch_size=max(batch_size, s.embedding_batch_size),
                max_sequences=s.embedding_max_sequences,
            )
            return LoadedEmbeddingModel(entry=entry, engine=engine, size_bytes=size)
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(model.model)
        context_length = entry.context_length or s.context_length
        if n_ctx_train > 0:
            context_length = min(context_length, n_ctx_train)
        vocab = model.vocab
        bos = llama_cpp.llama_vocab_bos(vocab)
        eos = llama_cpp.llama_vocab_eos(vocab)
        templater = ChatTemplater(
            chat_format=entry.chat_format,
            chat_template=entry.chat_template,
            gguf_template=_meta_str(model.model, "tokenizer.chat_template"),
            bos_token=token_piece(vocab, bos, special=True).decode("utf-8", "replace")
            if bos >= 0
            else "",
            eos_token=token_piece(vocab, eos, special=True).decode("utf-8", "replace")
            if eos >= 0
            else "",
        )
        stop_token_ids = _stop_token_ids(vocab, [*templater.turn_markers(), *entry.stop_tokens])
        engine = ChatEngine(
            model,
            stop_token_ids=stop_token_ids,
            context_length=context_length,
            slots=s.slots,
            threads=threads,
            batch_size=batch_size,
            max_queue=s.max_queue,
            kv_unified=s.kv_unified,
            prompt_cache=s.prompt_cache,
        )
        return LoadedChatModel(entry=entry, engine=engine, templater=templater, size_bytes=size)

    async def _make_room(self, size: int, keep: str) -> None:
        budget = self.settings.memory_budget_bytes
        while True:
            used = sum(m.size_bytes for m in self._loaded.values())
            if used + size <= budget:
                return
            idle = [m for name, m in self._loaded.items() if name != keep and not m.engine.busy]
            if not idle:
                logger.warning("memory budget exceeded: every loaded model is busy")
                return
            victim = min(idle, key=lambda m: m.last_used)
            await self.unload(victim.entry.filename)

    def resolve_installed(self, name: str) -> ModelEntry:
        entry = self.catalog.resolve(name)
        if entry is None:
            raise model_not_found(name, self.catalog.installed_names())
        return entry

    async def load(self, entry: ModelEntry, ttl_s: int | None) -> LoadedModel:
        """Loads (or keeps) the model with this idle TTL; None: the service's default."""
        loaded = await self.get(entry)
        loaded.ttl_s = ttl_s if ttl_s is not None else self.settings.model_ttl_s
        loaded.last_used = time.monotonic()
        return loaded

    async def unload_idle(self, entry: ModelEntry) -> bool:
        """Unloads the model unless it is in use (409); False when it was not loaded."""
        if entry.filename in self._loading:
            raise APIError(
                409,
                f"The model '{entry.name}' is loading; unload it once it is loaded.",
                param="model",
                code="model_loading",
            )
        loaded = self._loaded.get(entry.filename)
        if loaded is None:
            return False
        if loaded.engine.busy:
            raise APIError(
                409,
                f"The model '{entry.name}' is in use; unload it once its requests are done.",
                param="model",
                code="model_busy",
            )
        await self.unload(entry.filename)
        return True

    def idle_seconds_left(self, loaded: LoadedModel) -> float | None:
        if loaded.ttl_s is None or loaded.engine.busy:
            return None
        return max(0.0, loaded.last_used + loaded.ttl_s - time.monotonic())

    async def expire_idle(self) -> None:
        """Unloads the models idle past their TTL; a busy model's idle time starts again."""
        now = time.monotonic()
        for filename, loaded in list(self._loaded.items()):
            if loaded.ttl_s is None:
                continue
            if loaded.engine.busy:
                loaded.last_used = now
            elif now - loaded.last_used >= loaded.ttl_s:
                logger.info("%s idle for %ds (its TTL)", loaded.entry.name, loaded.ttl_s)
                await self.unload(filename)

    async def run_idle_expiry(self, interval_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.expire_idle()
            except Exception:
                logger.exception("idle model expiry failed")

    async def unload(self, filename: str) -> None:
        loaded = self._loaded.pop(filename, None)
        if loaded is not None:
            logger.info("unloading %s", loaded.entry.name)
            await asyncio.to_thread(loaded.engine.close)

    async def close(self) -> None:
        for filename in list(self._loaded):
            await self.unload(filename)
