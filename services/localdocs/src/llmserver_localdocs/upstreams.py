"""The LocalDocs service's upstreams: Redis, the Celery queue (tasks sent by name), Weaviate
(probed while known down) and the inference service; their failures as 503 with Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import httpx
import weaviate
from anyio import to_thread
from celery import Celery
from redis import asyncio as aioredis
from redis.exceptions import RedisError
from weaviate.collections import Collection as WeaviateCollection

from llmserver_common import docstore
from llmserver_common.errors import APIError
from llmserver_localdocs.settings import LocalDocsSettings

logger = logging.getLogger(__name__)

RETRY_AFTER = {"Retry-After": "5"}


def unavailable(what: str) -> APIError:
    return APIError(503, f"{what} is not available; try again shortly.", headers=RETRY_AFTER)


async def post_to_inference(
    http: httpx.AsyncClient, path: str, payload: dict[str, Any], doing: str, failed: str
) -> Any:
    """The inference service's JSON answer to a POST; its failures in our envelope: a timeout
    504 ("timed out {doing}"), down or overloaded 503, any other refusal 502 ("{failed}: ...",
    a setting naming a model that cannot do it is the server's fault, not the client's)."""
    try:
        response = await http.post(path, json=payload)
    except httpx.TimeoutException as exc:
        raise APIError(504, f"The inference service timed out {doing}.") from exc
    except httpx.HTTPError as exc:
        raise unavailable("The inference service") from exc
    if response.status_code != 200:
        if response.status_code >= 500 or response.status_code == 429:
            raise unavailable("The inference service")
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        raise APIError(502, f"{failed}: {message}")
    return response.json()


class Upstreams:
    """The clients every part of the service uses, and the calls through them."""

    def __init__(self, settings: LocalDocsSettings) -> None:
        self.settings = settings
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.upstream_timeout_s,
            socket_connect_timeout=5,
        )
        self.http = httpx.AsyncClient(
            base_url=settings.inference_url.rstrip("/"), timeout=settings.upstream_timeout_s
        )
        self.celery = Celery("llmserver_localdocs", broker=settings.redis_url)
        self.celery.conf.update(
            task_serializer="json",
            broker_connection_timeout=5,
            broker_connection_retry=False,
        )
        # Weaviate's readiness endpoint, asked before any use while Weaviate is known down, so
        # a stopped Weaviate costs a refused connection instead of the client's retries.
        self._weaviate_probe = httpx.AsyncClient(
            base_url=settings.weaviate_url.rstrip("/"), timeout=settings.weaviate_timeout_s
        )
        self._weaviate_down = False
        self._weaviate: weaviate.WeaviateClient | None = None
        self._chunks: WeaviateCollection | None = None
        self._weaviate_lock = threading.Lock()

    async def close(self) -> None:
        await self.http.aclose()
        await self._weaviate_probe.aclose()
        await self.redis.aclose()
        with self._weaviate_lock:
            if self._weaviate is not None:
                self._weaviate.close()
                self._weaviate = None
                self._chunks = None

    # -- upstreams ------------------------------------------------------------------------

    def _chunks_collection_sync(self) -> WeaviateCollection:
        with self._weaviate_lock:
            if self._weaviate is not None and not self._weaviate.is_connected():
                self._weaviate.close()
                self._weaviate = None
                self._chunks = None
            if self._chunks is None:
                client = docstore.connect_weaviate(
                    self.settings.weaviate_url,
                    self.settings.weaviate_grpc_port,
                    self.settings.weaviate_api_key,
                    init_timeout_s=self.settings.weaviate_timeout_s,
                    query_timeout_s=self.settings.weaviate_timeout_s,
                    insert_timeout_s=self.settings.upstream_timeout_s,
                )
                self._weaviate = client
                self._chunks = docstore.ensure_schema(client)
            return self._chunks

    async def _drop_weaviate(self) -> None:
        """Forget the client (the next call reconnects) and close it. Closing its gRPC channel
        also ends a retry loop still sleeping in an abandoned thread at its next attempt. No
        lock: an abandoned thread may hold it while connecting, and a fail-fast answer must
        not wait for that."""
        client, self._weaviate, self._chunks = self._weaviate, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await to_thread.run_sync(client.close)

    async def _weaviate_ready(self) -> bool:
        try:
            response = await self._weaviate_probe.get("/v1/.well-known/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _in_weaviate(self, work: Any, *args: Any, timeout_s: float | None = None) -> Any:
        """Run a docstore call against the chunks collection in a thread (the client is sync).

        Bounded by `timeout_s` (default settings.weaviate_timeout_s): past it, or on any client
        error, the caller gets 503 at once and the thread is abandoned. While Weaviate is known
        down, a readiness probe decides first, so every call fails fast until it is back.
        """
        if self._weaviate_down and not await self._weaviate_ready():
            raise unavailable("Weaviate")

        def run() -> Any:
            return work(self._chunks_collection_sync(), *args)

        deadline = timeout_s if timeout_s is not None else self.settings.weaviate_timeout_s
        try:
            result = await asyncio.wait_for(
                to_thread.run_sync(run, abandon_on_cancel=True), timeout=deadline
            )
        except APIError:
            raise
        except Exception as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.__class__.__name__
            logger.warning("weaviate call failed (%s); answering 503", reason)
            self._weaviate_down = True
            await self._drop_weaviate()
            raise unavailable("Weaviate") from exc
        if self._weaviate_down:
            logger.info("weaviate is back")
            self._weaviate_down = False
        return result

    async def _send(self, task_name: str, args: list[Any]) -> None:
        def send() -> None:
            self.celery.send_task(
                task_name,
                args=args,
                queue=docstore.INDEX_QUEUE,
                retry=True,
                retry_policy={
                    "max_retries": 2,
                    "interval_start": 0,
                    "interval_step": 0.5,
                    "interval_max": 1,
                },
            )

        try:
            await to_thread.run_sync(send)
        except Exception as exc:
            logger.warning("could not queue %s: %s", task_name, exc.__class__.__name__)
            raise unavailable("The indexing queue (Redis)") from exc

    async def _queue_scan(self, name: str, uid: str, options: dict[str, Any]) -> None:
        """Queue a scan; if the queue is down, say so on the collection instead of leaving it
        'indexing' for ever (a reindex, or the periodic rescan, queues it again)."""
        try:
            await self._send(docstore.TASK_SCAN_COLLECTION, [name, uid, options])
        except APIError:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.hset(
                    docstore.collection_key(name),
                    mapping={
                        "scan_state": docstore.SCAN_ERROR,
                        "scan_error": "the scan could not be queued; reindex to try again",
                    },
                )
            raise

    async def health(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=3)
            checks["redis"] = "ok"
        except (RedisError, OSError, TimeoutError):
            checks["redis"] = "unavailable"

        # The readiness probe first: a cached client says nothing about a Weaviate that has
        # stopped since. Then a (re)connect with the schema, bounded like any other call.
        checks["weaviate"] = "unavailable"
        if await self._weaviate_ready():
            try:
                await self._in_weaviate(lambda chunks: None)
                checks["weaviate"] = "ok"
            except APIError:
                pass
        elif not self._weaviate_down:
            logger.warning("weaviate is not ready")
            self._weaviate_down = True
            await self._drop_weaviate()
        return checks

    async def _redis_call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            logger.warning("redis call failed: %s", exc.__class__.__name__)
            raise unavailable("Redis") from exc
