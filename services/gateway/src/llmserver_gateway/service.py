"""The gateway's logic: model names, forwarding to inference replicas and localdocs, retrieval.

One pooled httpx.AsyncClient carries every upstream call. Upstream failures become the OpenAI
envelope here; upstream error answers pass through with their status, message and Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from fastapi.responses import Response
from pydantic import BaseModel

from llmserver_common.errors import APIError, invalid_request, model_not_found
from llmserver_gateway.metrics import GatewayMetrics
from llmserver_gateway.replicas import HTTPX_ERRORS, Replica, ReplicaPool
from llmserver_gateway.schemas import LocalDocsOptions, ModelEntry
from llmserver_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

# Headers of an upstream answer worth passing on to the client (Allow: every 405 needs it).
PASSED_HEADERS = ("retry-after", "location", "allow")

# Characters a forwarded path may keep unescaped; anything else is percent-encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

# `localdocs` absent or true: the server-wide active collections, the default number of snippets.
_SERVER_WIDE = LocalDocsOptions()


# ---------------------------------------------------------------------------------------------
# Upstream answers


def upstream_error_response(upstream: httpx.Response, body: bytes, service: str) -> Response:
    """Pass an upstream error through: its status and envelope; anything else gets wrapped."""
    headers = passed_headers(upstream)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return Response(body, upstream.status_code, headers, media_type="application/json")
    status = upstream.status_code if upstream.status_code >= 400 else 502
    error = APIError(status, f"The {service} service failed (HTTP {upstream.status_code}).")
    return Response(
        json.dumps(error.body()), status, {**headers, **error.headers}, "application/json"
    )


def passed_headers(upstream: httpx.Response) -> dict[str, str]:
    return {k: upstream.headers[k] for k in PASSED_HEADERS if k in upstream.headers}


class UpstreamErrorAnswer(Exception):
    """An upstream answered with an error; the prepared response goes to the client as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"upstream error {response.status_code}")
        self.response = response


@dataclass
class Retrieval:
    """What LocalDocs contributed to a chat request."""

    references: list[dict[str, Any]] | None = None
    # Value of the X-LocalDocs-Status header: "ok", "unavailable", or None when not attempted.
    status: str | None = None


# ---------------------------------------------------------------------------------------------


class GatewayService:
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
        # The client's default headers (what client.build_request would add), computed once.
        self._inference_timeouts = self.inference_timeout.as_dict()
        self._plain_headers: list[tuple[bytes, bytes]] = list(client.headers.raw)
        self._json_headers = [*self._plain_headers, (b"content-type", b"application/json")]
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

    # -- errors ---------------------------------------------------------------------------

    def unavailable(self, service: str) -> APIError:
        return APIError(
            503,
            f"The {service} service is unavailable. Retry shortly.",
            code="service_unavailable",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    def timed_out(self, service: str) -> APIError:
        return APIError(504, f"The {service} service did not answer in time.", code="timeout")

    # -- inference ------------------------------------------------------------------------

    async def open_inference(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[httpx.Response, Replica]:
        """Send to the best replica, failing over on connection errors; the caller must close.

        The replica's in-flight count stays raised until `release` is called.
        """
        tried: set[str] = set()
        while True:
            candidates = [r for r in self.pool.candidates() if r.name not in tried]
            if not candidates:
                raise self.unavailable("inference")
            replica = candidates[0]
            self.pool.note_pick(replica)
            tried.add(replica.name)
            try:
                # Built directly rather than with client.build_request: the URL is parsed once
                # per replica, the headers are the client's defaults computed once, and with
                # `stream=` httpx adds no headers of its own (Host and Content-Length are here).
                url = replica.url_for(path)
                host = replica.host_header.encode() if replica.host_header else url.netloc
                if body is None:
                    headers = [(b"host", host), *self._plain_headers]
                else:
                    length = (b"content-length", b"%d" % len(body))
                    headers = [(b"host", host), *self._json_headers, length]
                request = httpx.Request(
                    method,
                    url,
                    headers=headers,
                    stream=httpx.ByteStream(body or b""),
                    extensions={"timeout": self._inference_timeouts},
                )
            except HTTPX_ERRORS as exc:
                logger.warning("cannot build an inference request: %s", type(exc).__name__)
                raise self.unavailable("inference") from None
            self._acquire(replica)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                # Nothing was generated (or the replica died): safe to try the next replica.
                self.release(replica)
                self.pool.mark_down(replica, type(exc).__name__)
                self.forget_models()  # the listing must not outlive the replica serving it
                self.metrics.upstream_errors.labels("inference", "connect").inc()
                continue
            except httpx.TimeoutException:
                self.release(replica)
                self.metrics.upstream_errors.labels("inference", "timeout").inc()
                raise self.timed_out("inference") from None
            except HTTPX_ERRORS as exc:
                self.release(replica)
                self.metrics.upstream_errors.labels("inference", "transport").inc()
                logger.warning("inference request failed: %s", type(exc).__name__)
                raise self.unavailable("inference") from None
            except BaseException:  # cancelled (the client left): the slot must not leak
                self.release(replica)
                raise
            if response.status_code >= 500:
                self.metrics.upstream_errors.labels("inference", "status").inc()
            return response, replica

    def _acquire(self, replica: Replica) -> None:
        replica.in_flight += 1
        self.metrics.set_replica_in_flight(replica.name, replica.in_flight)
        self.metrics.replica_request_sent(replica.name)

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self.metrics.set_replica_in_flight(replica.name, replica.in_flight)

    async def call_inference(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[httpx.Response, bytes]:
        """A non-streamed call: the whole answer. Error answers raise UpstreamErrorAnswer."""
        response, replica = await self.open_inference(method, path, body)
        try:
            content = await response.aread()
        except httpx.TimeoutException:
            self.metrics.upstream_errors.labels("inference", "timeout").inc()
            raise self.timed_out("inference") from None
        except HTTPX_ERRORS as exc:
            self.metrics.upstream_errors.labels("inference", "transport").inc()
            logger.warning("inference answer broke off: %s", type(exc).__name__)
            raise self.unavailable("inference") from None
        finally:
            await response.aclose()
            self.release(replica)
        if response.status_code >= 400:
            if response.status_code == 404 or response.status_code >= 500:
                # The catalog may have changed (model removed, replica restarting).
                self.forget_models()
            raise UpstreamErrorAnswer(upstream_error_response(response, content, "inference"))
        return response, content

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

    # -- localdocs ------------------------------------------------------------------------

    async def call_localdocs(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: str = "",
        content_type: str | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One call to localdocs; connection failures are 503, timeouts 504, bad URLs 400."""
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path + query):
            raise invalid_request("The request path or query contains control characters.")
        # `path` arrives percent-decoded: encode it again so '?', '#' or '%' in a name stay
        # part of the path instead of starting a query or an escape.
        url = self.settings.localdocs_url + quote(path, safe=_PATH_SAFE)
        url += f"?{query}" if query else ""
        headers = {"content-type": content_type or "application/json"} if body else None
        try:
            response = await self.client.request(
                method,
                url,
                content=body or None,
                headers=headers,
                timeout=timeout or self.localdocs_timeout,
            )
        except httpx.TimeoutException:
            self.metrics.upstream_errors.labels("localdocs", "timeout").inc()
            raise self.timed_out("localdocs") from None
        except httpx.InvalidURL:
            raise invalid_request("The request path or query is not a valid URL.") from None
        except HTTPX_ERRORS as exc:
            self.metrics.upstream_errors.labels("localdocs", "connect").inc()
            logger.debug("localdocs request failed: %s", type(exc).__name__)
            raise self.unavailable("localdocs") from None
        if response.status_code >= 500:
            self.metrics.upstream_errors.labels("localdocs", "status").inc()
        if method.upper() == "PUT" and path == "/v1/localdocs/active" and response.is_success:
            # The server-wide default changed: forget the cached one, stale copy included.
            self._active_expire = self._active_stale_until = 0.0
            self._active_version += 1
        return response

    def _cached_active(self) -> list[str] | None:
        """The cached server-wide active collections if they may be used now, else None.

        Cached briefly, failures too (no retry storm); None means _fetch_active must run first.

        For one more TTL after it expires, the cached answer is still used while a background
        lookup refreshes it: under steady traffic no chat waits for localdocs, and with no
        collections active a chat costs no localdocs call at all. A cached failure is raised.
        """
        now = self.clock()
        if now >= self._active_expire:
            if now >= self._active_stale_until:
                return None
            if self._active_refresh is None or self._active_refresh.done():
                self._active_refresh = asyncio.create_task(self._refresh_active())
        if self._active_error is not None:
            raise self._active_error
        return self._active

    async def _refresh_active(self) -> None:
        try:
            await self._fetch_active()
        except APIError:
            pass  # remembered by _fetch_active: chats answer without LocalDocs meanwhile
        except Exception:
            logger.exception("background refresh of the active collections failed")

    async def _fetch_active(self) -> list[str]:
        version = self._active_version
        collections: list[str] = []
        error: APIError | None = None
        try:
            response = await self.call_localdocs(
                "GET", "/v1/localdocs/active", timeout=self.localdocs_chat_timeout
            )
            if response.status_code != 200:
                raise self.unavailable("localdocs")
            try:
                collections = [str(c) for c in response.json().get("collections") or []]
            except (ValueError, AttributeError, TypeError):
                raise self.unavailable("localdocs") from None
        except APIError as exc:
            error = exc
            raise
        except (asyncio.CancelledError, Exception):
            # The chat's retrieval deadline passed (or something unforeseen): remember localdocs
            # as unavailable, not as "no active collections", for the cache's lifetime.
            error = self.unavailable("localdocs")
            raise
        finally:
            if version == self._active_version:
                ttl = self.settings.localdocs_active_cache_ttl_s
                self._active, self._active_error = collections, error
                self._active_expire = self.clock() + ttl
                self._active_stale_until = self._active_expire + ttl
        return collections

    async def retrieve(
        self, options: LocalDocsOptions | bool | None, query: str | None
    ) -> Retrieval:
        """Search LocalDocs for a chat request. Localdocs being down degrades, never fails."""
        if options is False or not query:
            return Retrieval()
        # true means the same as absent: the server-wide active collections.
        if not isinstance(options, LocalDocsOptions):
            options = _SERVER_WIDE
        collections = options.collections
        if collections is None:
            try:
                collections = self._cached_active()
            except APIError as exc:
                return self._without_localdocs(exc)
            if collections == []:
                return Retrieval()  # nothing active: no localdocs call, no deadline to arm
        k = options.k or self.settings.localdocs_k
        try:
            # One deadline for the whole retrieval (active collections + search), not per call.
            async with asyncio.timeout(self.settings.localdocs_chat_timeout_s):
                if collections is None:
                    collections = await self._fetch_active()
                if not collections:
                    return Retrieval()
                payload = {"query": query, "collections": collections, "k": k}
                response = await self.call_localdocs(
                    "POST",
                    "/v1/localdocs/search",
                    body=json.dumps(payload).encode(),
                    timeout=self.localdocs_chat_timeout,
                )
        except (APIError, TimeoutError) as exc:
            return self._without_localdocs(exc)
        if 400 <= response.status_code < 500:
            # The client's mistake (unknown collection, bad name): tell them, do not hide it.
            raise UpstreamErrorAnswer(
                upstream_error_response(response, response.content, "localdocs")
            )
        if response.status_code != 200:
            return Retrieval(status="unavailable")
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            return Retrieval(status="unavailable")
        if self._localdocs_degraded:
            logger.info("LocalDocs is answering again")
            self._localdocs_degraded = False
        references = [item for item in data if isinstance(item, dict)] if data else []
        return Retrieval(references=references or None, status="ok")

    def _without_localdocs(self, exc: APIError | TimeoutError) -> Retrieval:
        """The chat goes on without LocalDocs (its header says so); the change is logged once."""
        if isinstance(exc, TimeoutError):
            self.metrics.upstream_errors.labels("localdocs", "timeout").inc()
        if not self._localdocs_degraded:
            reason = exc if isinstance(exc, APIError) else "no answer within the chat deadline"
            logger.warning("LocalDocs unavailable for chat (%s); answering without it", reason)
        self._localdocs_degraded = True
        return Retrieval(status="unavailable")

    def context_prompt(self, references: list[dict[str, Any]], message: str) -> str:
        """GPT4All's LocalDocs prompt: "### Context:", one block per snippet, the message."""
        snippets = "\n\n".join(
            self.settings.localdocs_snippet_template.format(
                collection=ref.get("collection") or "",
                path=ref.get("path") or "",
                file=ref.get("file") or "",
                text=ref.get("text") or "",
                title=ref.get("title") or "",
                author=ref.get("author") or "",
                date=ref.get("date") or "",
                page=ref.get("page") if ref.get("page") is not None else "",
                score=ref.get("score") if ref.get("score") is not None else "",
                index=index,
            )
            for index, ref in enumerate(references, start=1)
        )
        return self.settings.localdocs_context_template.format(snippets=snippets, message=message)


def last_user_message(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """Index and text of the last user message (text parts joined), or None."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return index, content
            if isinstance(content, list):
                texts = [
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                ]
                return index, "\n".join(t for t in texts if isinstance(t, str))
            return None
    return None


def inject_context(
    service: GatewayService,
    messages: list[dict[str, Any]],
    index: int,
    references: list[dict[str, Any]],
) -> None:
    """Put the snippets into the last user message, in place (GPT4All does the same)."""
    message = dict(messages[index])
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = service.context_prompt(references, content)
    elif isinstance(content, list):
        # Content parts: the context goes in front as its own text part; images etc. stay.
        context = service.context_prompt(references, "").rstrip()
        message["content"] = [{"type": "text", "text": context}, *content]
    messages[index] = message
