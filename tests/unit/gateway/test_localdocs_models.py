"""The gateway documents and validates LocalDocs with llmserver_common.localdocs_api: it must
keep up with the localdocs service's own models and routes (until localdocs imports them)."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute
from pydantic import BaseModel

from llmserver_common import localdocs_api
from llmserver_gateway.localdocs_routes import router as gateway_router
from llmserver_localdocs import schemas as localdocs_schemas
from llmserver_localdocs.router import router as localdocs_router


def models(module: object) -> dict[str, type[BaseModel]]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, BaseModel) and not name.startswith("_")
    }


def test_the_shared_models_have_localdocs_fields_and_required_ones() -> None:
    ours = models(localdocs_api)
    theirs = models(localdocs_schemas)
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for name, model in theirs.items():
        shared = ours[name].model_fields
        assert set(shared) == set(model.model_fields), name
        for field, info in model.model_fields.items():
            assert shared[field].is_required() == info.is_required(), (name, field)


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
