"""Stored responses: kept for a bounded time and count, continued by `previous_response_id`
(the earlier turns before the new input), retrieved and deleted by id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmserver_common.errors import APIError, install_error_handlers
from llmserver_localdocs.responses import store as store_module
from llmserver_localdocs.responses.router import get_responses, router
from llmserver_localdocs.responses.schemas import ResponsesRequest
from llmserver_localdocs.responses.service import ResponsesService
from llmserver_localdocs.responses.store import ResponseStore


def _service(kept: ResponseStore) -> ResponsesService:
    # No tools: preparing touches neither the vector stores nor the inference service.
    return ResponsesService(None, None, kept)  # type: ignore[arg-type]


def _prepare(kept: ResponseStore, **fields: Any) -> Any:
    body = ResponsesRequest.model_validate({"model": "m", **fields})
    return asyncio.run(_service(kept).prepare(body))


def test_a_follow_up_puts_the_earlier_turn_before_its_input() -> None:
    kept = ResponseStore(ttl_s=60, max_stored=10)
    first = _prepare(kept, input="What is the capital of France?", instructions="Be brief.")
    answer = first.final("Paris.", True, "m", {"prompt_tokens": 9})
    assert answer["store"] is True
    assert kept.get(answer["id"]).response == answer

    follow = _prepare(kept, input="And of Spain?", previous_response_id=answer["id"])
    # Instructions are not carried over; the earlier question and answer are.
    assert follow.prompt == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Spain?"},
    ]
    second = follow.final("Madrid.", True, "m", {})
    assert second["previous_response_id"] == answer["id"]
    assert kept.get(second["id"]).conversation[-1] == {"role": "assistant", "content": "Madrid."}


def test_store_false_keeps_nothing() -> None:
    kept = ResponseStore(ttl_s=60, max_stored=10)
    answer = _prepare(kept, input="hi", store=False).final("hello", True, "m", {})
    assert answer["store"] is False
    with pytest.raises(APIError):
        kept.get(answer["id"])


def test_unknown_previous_response_id_is_a_404_naming_the_field() -> None:
    with pytest.raises(APIError) as unknown:
        _prepare(ResponseStore(60, 10), input="hi", previous_response_id="resp_nope")
    assert unknown.value.status_code == 404
    assert unknown.value.param == "previous_response_id"


def test_responses_expire_and_the_oldest_go_past_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock[0])
    kept = ResponseStore(ttl_s=10, max_stored=2)
    for number in range(3):
        kept.put({"id": f"resp_{number}"}, [])
    with pytest.raises(APIError):
        kept.get("resp_0")  # dropped: past max_stored
    assert kept.get("resp_2").response == {"id": "resp_2"}
    clock[0] += 10
    with pytest.raises(APIError):
        kept.get("resp_2")  # expired


def test_retrieve_and_delete_by_id() -> None:
    kept = ResponseStore(ttl_s=60, max_stored=10)
    answer = _prepare(kept, input="hi").final("hello", True, "m", {"prompt_tokens": 3})
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_responses] = lambda: _service(kept)
    client = TestClient(app)
    path = f"/v1/responses/{answer['id']}"
    got = client.get(path)
    assert got.status_code == 200
    assert got.json()["output"][0]["content"][0]["text"] == "hello"
    deleted = client.delete(path)
    assert deleted.json() == {"id": answer["id"], "object": "response", "deleted": True}
    gone = client.get(path)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "response_not_found"
    assert client.delete(path).status_code == 404
