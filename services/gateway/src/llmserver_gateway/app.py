"""create_app(settings): the public API, its one pooled upstream client and its middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from llmserver_common.errors import install_error_handlers
from llmserver_common.openapi import install_openapi
from llmserver_gateway.anthropic.router import BODY_MODELS as ANTHROPIC_BODY_MODELS
from llmserver_gateway.anthropic.router import router as anthropic_router
from llmserver_gateway.localdocs_routes import BODY_MODELS as LOCALDOCS_BODY_MODELS
from llmserver_gateway.localdocs_routes import router as localdocs_router
from llmserver_gateway.metrics import GatewayMetrics, MetricsMiddleware
from llmserver_gateway.model_routes import router as model_router
from llmserver_gateway.openai_retrieval_routes import BODY_MODELS as RETRIEVAL_BODY_MODELS
from llmserver_gateway.openai_retrieval_routes import router as openai_retrieval_router
from llmserver_gateway.replicas import ReplicaPool
from llmserver_gateway.rerank_routes import BODY_MODELS as RERANK_BODY_MODELS
from llmserver_gateway.rerank_routes import router as rerank_router
from llmserver_gateway.router import BODY_MODELS, ClientGone, router
from llmserver_gateway.security import APIKeyMiddleware
from llmserver_gateway.service import GatewayService
from llmserver_gateway.settings import GatewaySettings
from llmserver_gateway.upstream_client import upstream_client
from llmserver_gateway.web import install_web

logger = logging.getLogger(__name__)

_INTRO = (
    "OpenAI's API (chat, completions, embeddings, models) on local models, plus LocalDocs. "
    "Our extensions to OpenAI's shapes: `localdocs` in a chat request, `references` in its "
    "choices, `top_k`, `min_p` and `repeat_penalty`, `input_type` for embeddings, and the "
    "max_tokens default and ceiling of each model in /v1/models."
)


def _bearer_auth(document: dict[str, Any]) -> None:
    """GATEWAY_API_KEY is set: every route but /health needs `Authorization: Bearer <key>`."""
    components = document.setdefault("components", {})
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in document.get("paths", {}).items():
        if path == "/health":
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]


def create_app(
    settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the gateway. `transport` replaces the network in unit tests (fake upstreams)."""
    settings.warn_if_exposed()
    client = upstream_client(settings, transport)
    pool = ReplicaPool(settings.inference_urls, dns_refresh_s=settings.inference_dns_refresh_s)
    metrics = GatewayMetrics()
    service = GatewayService(settings, client, pool, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(
            pool.watch(client, settings.health_check_interval_s, settings.health_timeout_s)
        )
        logger.info(
            "gateway on %s:%s; inference replicas %d; localdocs configured",
            settings.host,
            settings.port,
            len(pool.replicas),
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await service.aclose()
            await client.aclose()

    # /docs and /redoc from files in the package, not a CDN: the server runs offline.
    app = FastAPIOffline(
        title="llmserver",
        summary="GPT4All's API server, OpenAI-compatible: chat, completions, embeddings, LocalDocs",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.client = client
    app.state.pool = pool
    app.state.metrics = metrics
    app.state.service = service
    install_error_handlers(app)

    async def client_gone(_request: Request, _exc: Exception) -> Response:
        # Nobody reads this; 499 (nginx's "client closed request") keeps the metrics honest.
        return Response(status_code=499)

    app.add_exception_handler(ClientGone, client_gone)
    app.include_router(model_router)  # first: POST on /v1/models/{name}/load, /unload
    app.include_router(router)
    app.include_router(localdocs_router)
    app.include_router(openai_retrieval_router)
    app.include_router(rerank_router)
    app.include_router(anthropic_router)
    install_web(app, settings.web_dir)
    # The routes read their bodies raw (JSON whatever the Content-Type), so FastAPI does not
    # know their schemas: the documented models are added to /docs here.
    install_openapi(
        app,
        intro=_INTRO,
        body_models=[
            *BODY_MODELS,
            *LOCALDOCS_BODY_MODELS,
            *RETRIEVAL_BODY_MODELS,
            *RERANK_BODY_MODELS,
            *ANTHROPIC_BODY_MODELS,
        ],
        amend=_bearer_auth if settings.api_key is not None else None,
    )

    # Added innermost first: the last one added wraps all the others.
    if settings.api_key is not None:
        app.add_middleware(APIKeyMiddleware, api_key=settings.api_key.get_secret_value())
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Outermost, so preflights are answered before the API key check (browsers send no key).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-LocalDocs-Status", "Retry-After"],
    )
    return app
