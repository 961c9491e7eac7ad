"""Anthropic Messages <-> OpenAI chat (translate.py) and chat chunks -> Anthropic events
(streaming.py), on hand-written shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from llmserver_common.anthropic_api import MessagesRequest
from llmserver_gateway.anthropic.streaming import MessageEvents
from llmserver_gateway.anthropic.translate import chat_request, message

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def _request(**extra: Any) -> MessagesRequest:
    body = {"model": "gemma3", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    return MessagesRequest.model_validate({**body, **extra})


def test_a_conversation_with_a_tool_round_becomes_chat_messages() -> None:
    request = _request(
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": "x"},
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        tools=[{"name": "w", "description": "weather", "input_schema": WEATHER_SCHEMA}],
        tool_choice={"type": "tool", "name": "w", "disable_parallel_tool_use": True},
        stop_sequences=["\n\n"],
        temperature=0.5,
        top_k=4,
        metadata={"user_id": "u"},
    )
    chat = chat_request(request, "Gemma 3 270M")
    assert chat["model"] == "Gemma 3 270M"
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "w", "arguments": json.dumps({"city": "P"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "Thanks"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "w", "description": "weather", "parameters": WEATHER_SCHEMA},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["parallel_tool_calls"] is False
    assert (chat["stop"], chat["temperature"], chat["top_k"], chat["max_tokens"]) == (
        ["\n\n"],
        0.5,
        4,
        8,
    )
    assert "stream" not in chat and "metadata" not in chat


@pytest.mark.parametrize(
    ("choice", "expected"), [("any", "required"), ("auto", "auto"), ("none", "none")]
)
def test_tool_choice_types(choice: str, expected: str) -> None:
    tools = [{"name": "w", "input_schema": WEATHER_SCHEMA}]
    chat = chat_request(_request(tools=tools, tool_choice={"type": choice}), "m")
    assert chat["tool_choice"] == expected


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": None},
        {"messages": []},
        {"messages": [{"role": "system", "content": "x"}]},
        {"tool_choice": {"type": "tool", "name": "absent"}},
        {"tools": [{"name": "w", "input_schema": {"type": "string"}}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
        {"temperature": 1.5},
    ],
)
def test_invalid_requests_are_refused(extra: dict[str, Any]) -> None:
    body = _request().model_dump(exclude_none=True)
    body.update(extra)
    body = {key: value for key, value in body.items() if value is not None}
    with pytest.raises(ValidationError):
        MessagesRequest.model_validate(body)


def test_a_chat_completion_becomes_a_message() -> None:
    chat = {
        "model": "Gemma 3 270M",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Calling.",
                    "reasoning_content": "think",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "w", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }
    reply = message(chat)
    assert reply["id"].startswith("msg_") and reply["type"] == "message"
    assert reply["content"] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
    ]
    assert reply["stop_reason"] == "tool_use"
    assert reply["usage"] == {"input_tokens": 11, "output_tokens": 7}


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_stop_reasons(finish: str, reason: str) -> None:
    chat = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert message(chat)["stop_reason"] == reason


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_chat_chunks_become_anthropic_events_in_order() -> None:
    events = MessageEvents("Gemma 3 270M")
    out = events.start()
    for chunk in (
        _chunk({"role": "assistant", "reasoning_content": "hm"}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "w", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "P"}'}}]}),
        _chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}},
    ):
        out += events.feed(chunk)
    out += events.finish()
    names = [name for name, _ in out]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in out)
    assert out[0][1]["message"]["model"] == "Gemma 3 270M"
    assert out[3][1]["delta"] == {"type": "thinking_delta", "thinking": "hm"}
    assert out[5][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    }
    assert out[9][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "w",
        "input": {},
    }
    partial = "".join(data["delta"]["partial_json"] for _, data in out[10:12])
    assert json.loads(partial) == {"city": "P"}
    assert out[10][1]["index"] == 2
    assert out[13][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert out[13][1]["usage"] == {"input_tokens": 9, "output_tokens": 6}
