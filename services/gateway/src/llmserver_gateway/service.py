"""The gateway's logic: GatewayService holds the upstream client, the replica pool and the
caches; model names are resolved here, forwarding is in forwarding.py, LocalDocs retrieval in
retrieval.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from llmserver_common.errors import APIError, model_not_found
from llmserver_gateway.forwarding import UpstreamErrorAnswer
from llmserver_gateway.forwarding import passed_headers as passed_headers  # for route modules
from llmserver_gateway.metrics import GatewayMetrics
from llmserver_gateway.replicas import ReplicaPool
from llmserver_gateway.retrieval import LocalDocsRetrieval
from llmserver_gateway.schemas import ModelEntry
from llmserver_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


class GatewayService(LocalDocsRetrieval):
    def __init__(
        self,
        settings: GatewaySettings,
        client: httpx.AsyncClient,
        pool: ReplicaPool,
        metrics: GatewayMetrics,
    ) -> None:
        self.settings = settings
        self.client = client
        self.pool = pool
        self.metrics = metrics
        self.inference_timeout = httpx.Timeout(
            settings.inference_timeout_s, connect=settings.connect_timeout_s
        )
        self.localdocs_timeout = httpx.Timeout(
            settings.localdocs_timeout_s, connect=settings.connect_timeout_s
        )
        self.localdocs_chat_timeout = httpx.Timeout(
            settings.localdocs_chat_timeout_s,
            connect=min(settings.connect_timeout_s, settings.localdocs_chat_timeout_s),
        )
        # Monotonic seconds; replaced in unit tests to move time on.
        self.clock: Callable[[], float] = time.monotonic
        self._models: list[dict[str, Any]] = []
        self._models_expire = 0.0
        self._models_fetched = float("-inf")
        self._models_refresh: asyncio.Task[None] | None = None
        self._active: list[str] = []
        self._active_error: APIError | None = None
        self._active_expire = 0.0
        self._active_stale_until = 0.0
        # Bumped when the active set changes through us: a lookup begun before must not win.
        self._active_version = 0
        self._active_refresh: asyncio.Task[None] | None = None
        self._localdocs_degraded = False  # to log the change of state, not every request

    async def aclose(self) -> None:
        """Stop background refreshes (at shutdown, before the client closes)."""
        for task in (self._models_refresh, self._active_refresh):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- models ---------------------------------------------------------------------------

    async def list_models(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The inference catalog, cached briefly: name resolution runs on every request.

        For one more TTL after it expires, the cached catalog still answers while a background
        call refreshes it: under steady traffic no request waits for the listing. A name not in
        it is looked up fresh anyway (find_model).
        """
        if not fresh and self._models:
            now = self.clock()
            if now < self._models_expire:
                return self._models
            if now < self._models_expire + self.settings.models_cache_ttl_s:
                if self._models_refresh is None or self._models_refresh.done():
                    self._models_refresh = asyncio.create_task(self._refresh_models())
                return self._models
        try:
            _, content = await self.call_inference("GET", "/v1/models")
        except (APIError, UpstreamErrorAnswer):
            self.forget_models()
            raise
        try:
            data = json.loads(content)["data"]
            assert isinstance(data, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            logger.error("inference /v1/models answered an unexpected shape")
            raise self.unavailable("inference") from None
        self._models = [entry for entry in data if isinstance(entry, dict) and "id" in entry]
        self._models_fetched = self.clock()
        self._models_expire = self._models_fetched + self.settings.models_cache_ttl_s
        return self._models

    async def _refresh_models(self) -> None:
        try:
            await self.list_models(fresh=True)
        except (APIError, UpstreamErrorAnswer):
            # The cache is dropped (forget_models): the next request asks inference itself and
            # gets the error, if there still is one.
            pass
        except Exception:
            logger.exception("background refresh of the model list failed")

    async def listed_models(self) -> list[dict[str, Any]]:
        """For GET /v1/models: the catalog, at most models_list_cache_ttl_s old."""
        young = self.clock() - self._models_fetched < self.settings.models_list_cache_ttl_s
        if self._models and young:
            return self._models
        return await self.list_models(fresh=True)

    def forget_models(self) -> None:
        self._models_expire = 0.0
        self._models_fetched = float("-inf")

    @staticmethod
    def public_entry(entry: dict[str, Any]) -> dict[str, Any]:
        """Our model entry plus GPT4All's root/parent/permissions, so its clients parse it."""
        model = ModelEntry.model_validate({**entry, "root": entry.get("root") or entry["id"]})
        return model.model_dump()

    @staticmethod
    def _find(models: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
        wanted = name.casefold()
        for entry in models:
            names = [entry["id"], entry.get("filename"), *(entry.get("aliases") or [])]
            if any(isinstance(n, str) and n.casefold() == wanted for n in names):
                return entry
        return None

    async def find_model(self, name: str) -> dict[str, Any] | None:
        models = await self.list_models()
        entry = self._find(models, name)
        if entry is None:
            # A model installed since the cache was filled must not be refused.
            entry = self._find(await self.list_models(fresh=True), name)
        return entry

    async def default_chat_model(self) -> str:
        models = await self.list_models()
        if self.settings.default_chat_model:
            entry = self._find(models, self.settings.default_chat_model)
            if entry is not None:
                return str(entry["id"])
            logger.warning(
                "GATEWAY_DEFAULT_CHAT_MODEL %r is not installed; using the first chat model",
                self.settings.default_chat_model,
            )
        for entry in models:
            if entry.get("kind", "chat") == "chat":
                return str(entry["id"])
        raise APIError(404, "No chat model is installed.", param="model", code="model_not_found")

    async def resolve_generation_model(self, name: str | None) -> str:
        """The display name to send to inference for a chat or completion request."""
        if name is None or name == "":
            return await self.default_chat_model()
        entry = await self.find_model(name)
        if entry is not None:
            return str(entry["id"])
        if self.settings.unknown_model_fallback:
            # GPT4All's behaviour, opt-in: the response's `model` names the one actually used.
            return await self.default_chat_model()
        raise model_not_found(name, [str(m["id"]) for m in await self.list_models()])

    async def resolve_any_model(self, name: str) -> str:
        entry = await self.find_model(name)
        if entry is None:
            raise model_not_found(name, [str(m["id"]) for m in await self.list_models()])
        return str(entry["id"])
