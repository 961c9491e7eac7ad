"""Function tools and reasoning of the Responses API mapped to and from the inference
service's chat completions: tools and tool_choice, call items in the input, a reply's
tool_calls and reasoning_content as output items, whole and streamed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from llmserver_common.errors import APIError
from llmserver_localdocs.responses.schemas import ResponsesRequest
from llmserver_localdocs.responses.service import ResponsesService
from llmserver_localdocs.responses.store import ResponseStore
from llmserver_localdocs.responses.streaming import events
from llmserver_localdocs.responses.tools import call_items

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


def _prepare(kept: ResponseStore | None = None, **fields: Any) -> Any:
    body = ResponsesRequest.model_validate({"model": "m", **fields})
    service = ResponsesService(None, None, kept or ResponseStore(60, 10))  # type: ignore[arg-type]
    return asyncio.run(service.prepare(body))


def test_function_tools_and_a_forced_choice_become_chat_tools() -> None:
    prepared = _prepare(
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    payload = prepared.chat_payload(stream=False)
    assert payload["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER["parameters"],
            },
        }
    ]
    assert payload["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert (
        _prepare(input="x", tools=[WEATHER], tool_choice="required").chat_payload(stream=False)[
            "tool_choice"
        ]
        == "required"
    )
    assert "tools" not in _prepare(input="x").chat_payload(stream=False)


def test_a_tool_choice_naming_no_function_tool_is_a_400_naming_it() -> None:
    with pytest.raises(APIError) as unknown:
        _prepare(input="x", tools=[WEATHER], tool_choice={"type": "function", "name": "other"})
    assert (unknown.value.status_code, unknown.value.param) == (400, "tool_choice.name")


def test_call_items_in_the_input_become_tool_calls_and_tool_messages() -> None:
    prepared = _prepare(
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
        ],
        tools=[WEATHER],
    )
    assert prepared.prompt[1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]


def test_a_reply_with_a_call_is_a_function_call_item_and_is_continued() -> None:
    kept = ResponseStore(60, 10)
    prepared = _prepare(kept, input="Weather in Paris?", tools=[WEATHER], tool_choice="required")
    call = {"id": "call_9", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    answer = prepared.final(
        "", True, "m", {}, calls=call_items([call], "completed"), reasoning="Think: Paris."
    )
    kinds = [item["type"] for item in answer["output"]]
    assert kinds == ["reasoning", "function_call"]
    assert answer["output"][0]["summary"] == [{"type": "summary_text", "text": "Think: Paris."}]
    item = answer["output"][1]
    assert (item["call_id"], item["name"], item["status"]) == ("call_9", "get_weather", "completed")
    assert item["id"].startswith("fc_")
    assert answer["tool_choice"] == "required"
    assert answer["tools"][0]["name"] == "get_weather"

    follow = _prepare(
        kept,
        input=[{"type": "function_call_output", "call_id": "call_9", "output": "sunny"}],
        previous_response_id=answer["id"],
        tools=[WEATHER],
    )
    assert [m["role"] for m in follow.prompt] == ["user", "assistant", "tool"]
    assert follow.prompt[1]["tool_calls"][0]["id"] == "call_9"


def _sse(chunks: list[dict[str, Any]]) -> httpx.Response:
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return httpx.Response(200, content="".join(lines).encode())


def _collect(prepared: Any, upstream: httpx.Response) -> list[dict[str, Any]]:
    async def run() -> list[bytes]:
        return [piece async for piece in events(prepared, upstream)]

    out = []
    for piece in asyncio.run(run()):
        data = piece.decode().split("data: ", 1)[1]
        out.append(json.loads(data))
    return out


def test_a_streamed_call_comes_as_openai_sends_it() -> None:
    prepared = _prepare(input="Weather?", tools=[WEATHER], tool_choice="required", stream=True)
    call_start = {"index": 0, "id": "call_5", "type": "function"}
    call_start["function"] = {"name": "get_weather", "arguments": ""}
    chunks = [
        {"model": "m", "choices": [{"index": 0, "delta": {"reasoning_content": "Hmm."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call_start]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"P"}'}}]}}
            ]
        },
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
    ]
    sent = _collect(prepared, _sse(chunks))
    kinds = [event["type"] for event in sent]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in sent] == list(range(len(sent)))
    added = sent[8]["item"]
    assert (added["type"], added["call_id"], added["arguments"]) == ("function_call", "call_5", "")
    assert sent[11]["arguments"] == '{"city":"P"}'
    final = sent[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "function_call"]
    assert final["output"][1]["id"] == added["id"] == sent[9]["item_id"]
    assert json.loads(final["output"][1]["arguments"]) == {"city": "P"}
    assert final["usage"]["input_tokens"] == 5
