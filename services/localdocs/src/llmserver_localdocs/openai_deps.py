"""The Files and Vector Stores services of a running app, built on first use from the LocalDocs
service (its Redis client, collections and search) and wired together: deleting a file first
takes it out of every vector store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmserver_localdocs.openai_files.service import FilesService
from llmserver_localdocs.vector_stores.service import VectorStoresService


def _build(request: Request) -> tuple[FilesService, VectorStoresService]:
    state = request.app.state
    built = getattr(state, "openai_services", None)
    if built is None or built[1].localdocs is not state.service:
        files = FilesService(state.settings, state.service.redis)
        stores = VectorStoresService(state.service, files)
        files.before_delete.append(stores.detach_everywhere)
        built = state.openai_services = (files, stores)
    return built


def get_files(request: Request) -> FilesService:
    return _build(request)[0]


def get_vector_stores(request: Request) -> VectorStoresService:
    return _build(request)[1]


FilesDep = Annotated[FilesService, Depends(get_files)]
VectorStoresDep = Annotated[VectorStoresService, Depends(get_vector_stores)]
