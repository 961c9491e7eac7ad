"""The gateway documents and validates LocalDocs with llmserver_common.localdocs_api, the very
models the localdocs service uses, and documents every route the service serves."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute
from pydantic import BaseModel

from llmserver_common import localdocs_api
from llmserver_gateway.localdocs_routes import router as gateway_router
from llmserver_localdocs import schemas as localdocs_schemas
from llmserver_localdocs.router import router as localdocs_router


def test_localdocs_uses_the_shared_models_themselves() -> None:
    served = {
        name: value
        for name, value in vars(localdocs_schemas).items()
        if inspect.isclass(value) and issubclass(value, BaseModel)
    }
    assert served, "llmserver_localdocs.schemas names no model"
    for name, model in served.items():
        assert model is getattr(localdocs_api, name), f"{name} is a copy, not the shared model"


def test_every_localdocs_route_has_a_documented_gateway_route() -> None:
    def routes(router: object) -> set[tuple[str, str]]:
        return {
            (method, route.path)
            for route in router.routes  # type: ignore[attr-defined]
            if isinstance(route, APIRoute) and route.include_in_schema
            for method in route.methods
        }

    served = {r for r in routes(localdocs_router) if r[1].startswith("/v1/localdocs")}
    assert served and served <= routes(gateway_router), sorted(served - routes(gateway_router))
