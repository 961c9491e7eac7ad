"""Anthropic's Messages API (POST /v1/messages) through the gateway on the real default model
(Gemma 3 270M, a tiny base model: short generations), driven by the official anthropic client.
Nothing mocked: the module runs its own inference and gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from devstack.stack import Ports, ServiceFailed, Stack, StackConfig

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
CHAT = "Gemma 3 270M"

if not (MODELS_DIR / "gemma-3-270m-q4_k_m.gguf").exists():
    pytest.skip("the default chat model is not in models/", allow_module_level=True)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "input_schema": WEATHER_SCHEMA,
    }
]
FORCE_WEATHER: Any = {"type": "tool", "name": "get_weather"}
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris right now?"}]
HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]
# The client (2.x) has no temperature parameter any more; the API still takes it.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("anthropic-stack"),
            models_dir=MODELS_DIR,
            ports=Ports.free(),
        )
    )
    try:
        stack.start(["inference", "gateway"])
    except ServiceFailed as failure:
        pytest.fail(f"inference and gateway did not start: {failure}", pytrace=False)
    try:
        yield stack.url("gateway")
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(gateway: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway, api_key="not-needed", timeout=180, max_retries=0)


def test_a_plain_message(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=CHAT, max_tokens=8, messages=HELLO, extra_body=GREEDY)
    assert reply.id.startswith("msg_") and reply.type == "message" and reply.role == "assistant"
    assert reply.model == CHAT
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 0 and 0 < reply.usage.output_tokens <= 8
    # Eight tokens of a chatty base model: usually cut off.
    if reply.usage.output_tokens == 8:
        assert reply.stop_reason == "max_tokens"


def test_the_system_prompt_reaches_the_model_as_a_chat_system_message(
    client: anthropic.Anthropic, gateway: str
) -> None:
    # The default entry's Gemma format has no system turn (llama-cpp-python drops it), so the
    # check is that the message gives exactly the prompt and reply of the same chat request.
    system = "You are a pirate. Answer like one."
    reply = client.messages.create(
        model=CHAT,
        max_tokens=6,
        messages=HELLO,
        system=[{"type": "text", "text": system}],
        extra_body=GREEDY,
    )
    chat = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={
            "model": CHAT,
            "max_tokens": 6,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, *HELLO],
        },
        timeout=120,
    ).json()
    assert reply.usage.input_tokens == chat["usage"]["prompt_tokens"]
    assert reply.content[0].text == chat["choices"][0]["message"]["content"]


def test_stop_sequences_end_the_reply(client: anthropic.Anthropic) -> None:
    counting: list[Any] = [{"role": "user", "content": "Count from 1 to 20: 1, 2, 3,"}]
    whole = client.messages.create(model=CHAT, max_tokens=40, messages=counting, extra_body=GREEDY)
    text = whole.content[0].text
    assert "," in text
    stopped = client.messages.create(
        model=CHAT, max_tokens=40, messages=counting, extra_body=GREEDY, stop_sequences=[","]
    )
    # Greedy: the same reply, cut before the first comma (the stop string is not returned).
    assert "".join(b.text for b in stopped.content if b.type == "text") == text[: text.index(",")]
    assert stopped.stop_reason == "end_turn"


def test_a_streamed_message(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=CHAT, max_tokens=12, messages=HELLO, extra_body=GREEDY)
    seen: list[str] = []
    with client.messages.stream(
        model=CHAT, max_tokens=12, messages=HELLO, extra_body=GREEDY
    ) as stream:
        for event in stream:
            seen.append(event.type)
        final = stream.get_final_message()
    assert seen[0] == "message_start" and seen[-1] == "message_stop"
    assert "content_block_start" in seen and "message_delta" in seen
    assert final.content[0].type == "text"
    assert final.content[0].text == whole.content[0].text  # greedy: the same reply
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


def test_a_forced_tool_gives_a_tool_use_block_matching_the_schema(
    client: anthropic.Anthropic,
) -> None:
    reply = client.messages.create(
        model=CHAT, max_tokens=60, messages=ASK, tools=TOOLS, tool_choice=FORCE_WEATHER
    )
    assert reply.stop_reason == "tool_use"
    [call] = [block for block in reply.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.id
    jsonschema.validate(call.input, WEATHER_SCHEMA)


def test_a_streamed_tool_use_comes_as_input_json_deltas(client: anthropic.Anthropic) -> None:
    partial = ""
    with client.messages.stream(
        model=CHAT, max_tokens=60, messages=ASK, tools=TOOLS, tool_choice=FORCE_WEATHER
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial += event.delta.partial_json
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [call] = [block for block in final.content if block.type == "tool_use"]
    assert call.input == json.loads(partial)
    jsonschema.validate(call.input, WEATHER_SCHEMA)


def test_a_tool_result_turn_is_answered(client: anthropic.Anthropic) -> None:
    asked = client.messages.create(
        model=CHAT, max_tokens=60, messages=ASK, tools=TOOLS, tool_choice=FORCE_WEATHER
    )
    [call] = [block for block in asked.content if block.type == "tool_use"]
    reply = client.messages.create(
        model=CHAT,
        max_tokens=12,
        tools=TOOLS,
        messages=[
            *ASK,
            {"role": "assistant", "content": asked.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}
                ],
            },
        ],
    )
    assert reply.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert reply.content and reply.usage.input_tokens > asked.usage.input_tokens


def test_count_tokens_counts_the_prompt(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=CHAT, max_tokens=2, messages=HELLO)
    counted = client.messages.count_tokens(model=CHAT, messages=HELLO)
    assert counted.input_tokens == reply.usage.input_tokens


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": CHAT, "messages": HELLO}, "max_tokens"),
        ({"model": CHAT, "max_tokens": 4, "messages": []}, "messages"),
        ({"model": CHAT, "max_tokens": 4, "messages": [{"role": "bot", "content": "x"}]}, "role"),
        ({"model": CHAT, "max_tokens": 0, "messages": HELLO}, "max_tokens"),
    ],
)
def test_bad_input_is_anthropics_400(
    client: anthropic.Anthropic, gateway: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body=body, cast_to=httpx.Response)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert field in error["error"]["message"]
    # The OpenAI routes keep their own envelope.
    openai_style = httpx.post(f"{gateway}/v1/chat/completions", json={"messages": []})
    assert openai_style.status_code == 400 and "type" in openai_style.json()["error"]


def test_an_unknown_model_is_anthropics_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=4, messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"
