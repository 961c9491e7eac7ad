"""Tool calls: parsing the formats models write, the grammar that forces a call, the prompt for
templates without tools, and OpenAI's stream deltas."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmserver_common.openai_api import ChatCompletionRequest
from llmserver_inference.chat_shaping import ChatShaping, ChoiceStream, shape_message
from llmserver_inference.tool_calls import (
    ToolSetup,
    forced_call_grammar,
    forced_call_schema,
    parse_tool_calls,
    tools_system_prompt,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
PICK_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def setup_of(choice: object = "auto", parallel: bool | None = None) -> ToolSetup:
    body = ChatCompletionRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER, TIME],
            "tool_choice": choice,
            **({} if parallel is None else {"parallel_tool_calls": parallel}),
        }
    )
    return ToolSetup.from_request(body.tools, body.tool_choice, body.parallel_tool_calls)


def args_of(calls: list) -> list[tuple[str, dict]]:
    return [(c.name, json.loads(c.arguments)) for c in calls]


@pytest.mark.parametrize(
    "text",
    [
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        'Sure.[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        'Sure.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        'Sure. {"function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}',
    ],
)
def test_each_format_gives_the_call(text: str) -> None:
    content, calls = parse_tool_calls(text, setup_of())
    assert args_of(calls) == [("get_weather", {"city": "Paris"})]
    assert content in (None, "Sure.")


def test_parallel_calls_and_parallel_off() -> None:
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    _, calls = parse_tool_calls(text, setup_of())
    assert args_of(calls) == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    _, calls = parse_tool_calls(text, setup_of(parallel=False))
    assert args_of(calls) == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    "text",
    [
        "Paris is sunny today.",
        '{"name": "rm_rf", "arguments": {}}',  # not one of the tools
        "<tool_call>{not json}</tool_call>",
        "Use {braces} and [brackets] freely.",
    ],
)
def test_text_without_a_call_stays_content(text: str) -> None:
    content, calls = parse_tool_calls(text, setup_of())
    assert calls == []
    assert content == text.strip()


def test_tool_choice_modes() -> None:
    assert setup_of("none").active is False
    assert setup_of("auto").forced is False
    named = setup_of({"type": "function", "function": {"name": "get_time"}})
    assert (named.mode, named.named, named.forced) == ("named", "get_time", True)
    assert setup_of("required").forced is True


def test_forced_schema_accepts_only_calls_matching_the_tool_schema() -> None:
    named = forced_call_schema(setup_of({"type": "function", "function": {"name": "get_weather"}}))
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Oslo"}}, named)
    for bad in (
        {"name": "get_time", "arguments": {}},
        {"name": "get_weather", "arguments": {"unit": "c"}},  # city is required
        {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "k"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, named)
    required = forced_call_schema(setup_of("required"))
    jsonschema.validate([{"name": "get_time", "arguments": {}}], required)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([], required)
    single = forced_call_schema(setup_of("required", parallel=False))
    jsonschema.validate({"name": "get_time", "arguments": {}}, single)


def test_forced_grammar_is_gbnf_naming_the_function() -> None:
    grammar = forced_call_grammar(
        setup_of({"type": "function", "function": {"name": "get_weather"}})
    )
    assert "root ::=" in grammar
    assert "get_weather" in grammar


def test_generic_prompt_describes_every_tool_and_the_choice() -> None:
    prompt = tools_system_prompt(setup_of({"type": "function", "function": {"name": "get_time"}}))
    assert '"name": "get_weather"' in prompt and '"name": "get_time"' in prompt
    assert "<tool_call>" in prompt
    assert "Call the function get_time now." in prompt


def test_whole_reply_message_and_finish_reason() -> None:
    text = (
        'Let me check.<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    )
    message, finish = shape_message(text, "stop", ChatShaping(tools=setup_of()))
    assert finish == "tool_calls"
    assert message["content"] == "Let me check."
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"city": "Rome"}
    # tool_choice none: the same text is plain content
    message, finish = shape_message(text, "stop", ChatShaping(tools=setup_of("none")))
    assert (message["content"], finish) == (text, "stop")
    assert "tool_calls" not in message


def _stream(pieces: list[str], shaping: ChatShaping) -> list[dict]:
    stream = ChoiceStream(0, shaping)
    items = []
    for i, piece in enumerate(pieces):
        items += stream.on_text(piece, "stop" if i == len(pieces) - 1 else None, None)
    return items


def test_streamed_calls_as_openai_sends_them() -> None:
    text = (
        'On it. <tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    items = _stream(pieces, ChatShaping(tools=setup_of()))
    content = "".join(i["delta"].get("content") or "" for i in items)
    assert content.strip() == "On it."
    calls: dict[int, dict] = {}
    for item in items:
        for part in item["delta"].get("tool_calls", []):
            if "id" in part:  # the first delta of a call: id, type, name, empty arguments
                assert part["type"] == "function" and part["function"]["arguments"] == ""
                calls[part["index"]] = {"name": part["function"]["name"], "arguments": ""}
            else:
                assert set(part) == {"index", "function"}
                calls[part["index"]]["arguments"] += part["function"]["arguments"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Rome"}),
        ("get_time", {}),
    ]
    assert items[-1]["delta"] == {} and items[-1]["finish_reason"] == "tool_calls"
    assert all(i["finish_reason"] is None for i in items[:-1])


def test_streamed_text_with_braces_and_no_call_is_all_sent() -> None:
    text = "A set looks like {1, 2} and a <tool_ is not a call."
    items = _stream(
        [text[i : i + 3] for i in range(0, len(text), 3)], ChatShaping(tools=setup_of())
    )
    assert "".join(i["delta"].get("content", "") for i in items) == text
    assert items[-1]["finish_reason"] == "stop"


def test_forced_reply_cut_short_is_content_with_length() -> None:
    setup = setup_of({"type": "function", "function": {"name": "get_weather"}})
    message, finish = shape_message('{"name": "get_weather", "argum', "length", ChatShaping(setup))
    assert finish == "length"
    assert "tool_calls" not in message
    assert message["content"] == '{"name": "get_weather", "argum'
