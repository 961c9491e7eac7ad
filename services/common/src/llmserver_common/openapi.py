"""The OpenAPI document of a service: its error responses and status rules, written once.

Routes list the error statuses they can answer with `error_responses(...)`; every one is the
envelope (errors.ErrorResponse). `finish_document` then gives the document the status rules as
its description and drops what FastAPI adds on its own but no route ever answers (422).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from llmserver_common.errors import ErrorResponse

# What each error status means, written once: the OpenAPI documents of every service take their
# error responses from here (error_responses), and their description from STATUS_RULES.
ERROR_STATUSES: dict[int, str] = {
    400: "Invalid request: bad JSON, a field of the wrong type or out of range (`param` names "
    "it), a value this server cannot honour, or a prompt longer than the model's context "
    "(`code`: context_length_exceeded).",
    401: "The API key is on and the request carries no `Authorization: Bearer` key, or a wrong "
    "one.",
    404: "Unknown model (`code`: model_not_found), collection, file, vector store, batch or "
    "route, or a path that is not one of the collection's (`code`: path_not_in_collection).",
    409: "The resource exists already, or the request does not fit its present state (taking "
    "out a collection's last path: `code` last_path).",
    413: "The request body is larger than the limit.",
    429: "Too many requests wait for this model (`code`: queue_full); retry after `Retry-After` "
    "seconds.",
    500: "An internal error (a bug): the message says no more.",
    502: "An upstream service answered something unreadable.",
    503: "A service this request needs is down or starting; retry after `Retry-After` seconds.",
    504: "A service this request needs did not answer in time.",
}

# Statuses that come with a Retry-After header.
_RETRY_AFTER = (429, 503)

STATUS_RULES = (
    'Every error, from any route, has the body `{"error": {"message", "type", '
    '"param", "code"}}` (ErrorResponse) and one of these statuses:\n\n'
    + "\n".join(f"- **{status}**: {text}" for status, text in ERROR_STATUSES.items())
    + "\n- **405**: the path exists, the method does not; `Allow` lists the methods."
    "\n\nNever a bare 500, an HTML page or a stack trace. Unknown request fields are ignored."
)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, for a route's `responses=`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        # JSON whatever the route's own media type (/metrics answers text, its errors do not).
        response = _response_document(status)
        if status in _RETRY_AFTER:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = response
    return responses


def install_openapi(
    app: FastAPI,
    *,
    intro: str = "",
    body_models: Sequence[type[BaseModel]] = (),
    amend: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Serve the app's /openapi.json through finish_document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            finish_document(document, intro=intro, body_models=body_models)
            if amend is not None:
                amend(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself (any Content-Type): the
    model's schema, added to the components by finish_document."""
    body: dict[str, Any] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
        },
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def multipart_body(
    model: type[BaseModel], filenames: dict[str, str] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads a multipart/form-data body itself (an upload):
    the model's schema (added to the components by finish_document), and for each file part
    in `filenames` an example of the file name its Content-Disposition carries."""
    body = json_body(model)
    content = body["requestBody"]["content"]
    media: dict[str, Any] = content.pop("application/json")
    content["multipart/form-data"] = media
    if filenames:
        media["encoding"] = {
            part: {
                "headers": {
                    "Content-Disposition": {
                        "schema": {
                            "type": "string",
                            "example": f'form-data; name="{part}"; filename="{filename}"',
                        }
                    }
                }
            }
            for part, filename in filenames.items()
        }
    return body


def finish_document(
    document: dict[str, Any], *, intro: str = "", body_models: Sequence[type[BaseModel]] = ()
) -> dict[str, Any]:
    """Status rules in the description; the schemas of bodies read raw (json_body) added to
    the components; no 422 anywhere (every service answers 400 with the envelope instead)."""
    info = document.setdefault("info", {})
    info["description"] = (intro + "\n\n" if intro else "") + STATUS_RULES
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = _response_document(400)
    for model in (*body_models, ErrorResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def _response_document(status: int) -> dict[str, Any]:
    return {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
