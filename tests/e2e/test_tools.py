"""Tool calling and reasoning_content through the gateway, on the real default model (Gemma 3
270M), driven by the official openai client and LangChain's OpenAI chat model. Nothing mocked.

The module runs its own inference and gateway on a models folder of links to the repository's
files, with two more catalog entries for the same GGUF: one whose Jinja template takes `tools`
(the native template path; the default entry has Gemma's format, which takes none, so tools reach
it as a generic description), and one whose template opens the reply with <think>, as Qwen3's and
DeepSeek-R1's do, so that the model's own text runs through the reasoning parser.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import yaml

from devstack.stack import Ports, ServiceFailed, Stack, StackConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_only("runs inference on its own models folder (extra catalog entries)"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
CHAT_FILE = "gemma-3-270m-q4_k_m.gguf"
CHAT = "Gemma 3 270M"
NATIVE = "Gemma 3 270M tools template"
THINKING = "Gemma 3 270M thinking"

if not (MODELS_DIR / CHAT_FILE).exists():
    pytest.skip(f"the default chat model {CHAT_FILE} is not in models/", allow_module_level=True)

# Gemma's turns, with the tools in a first user turn and calls written as <tool_call> blocks.
NATIVE_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<start_of_turn>user\nYou can call: "
    "{% for t in tools %}{{ t.function | tojson }}\n{% endfor %}<end_of_turn>\n{% endif %}"
    "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
    "{% if m.role == 'tool' %}Result of {{ m.tool_call_id }}: {% endif %}{{ m.content or '' }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ {'name': c.function.name, "
    "'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
# Gemma's turns; the generation prompt opens the reasoning.
THINKING_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m.role == 'assistant' else 'user' }}\n{{ m.content }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n<think>{% endif %}"
)

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time of a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 24}},
            "required": ["zone"],
        },
    },
}


def function(name: str, parameters: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if parameters is not None:
        body["parameters"] = parameters
    return {"type": "function", "function": body}


FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models = tmp_path_factory.mktemp("models")
    for path in MODELS_DIR.iterdir():
        if path.suffix == ".gguf":
            (models / path.name).symlink_to(path)
    catalog = yaml.safe_load((MODELS_DIR / "catalog.yaml").read_text(encoding="utf-8"))
    for name, filename, template in (
        (NATIVE, "gemma-3-270m-tools.gguf", NATIVE_TEMPLATE),
        (THINKING, "gemma-3-270m-thinking.gguf", THINKING_TEMPLATE),
    ):
        (models / filename).symlink_to(MODELS_DIR / CHAT_FILE)
        catalog.append(
            {"name": name, "filename": filename, "chat_template": template, "context_length": 2048}
        )
    (models / "catalog.yaml").write_text(yaml.safe_dump(catalog), encoding="utf-8")
    stack = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("tools-stack"), models_dir=models, ports=Ports.free()
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
        shutil.rmtree(models, ignore_errors=True)


@pytest.fixture(scope="module")
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="not-needed", timeout=180)


def forced(client: openai.OpenAI, **extra: Any) -> Any:
    body: dict[str, Any] = {
        "model": CHAT,
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": FORCE_WEATHER,
        "max_tokens": 60,
        "temperature": 0,
        "seed": 7,
    }
    return client.chat.completions.create(**{**body, **extra})


def check_weather_call(name: str, arguments: str) -> dict[str, Any]:
    assert name == "get_weather"
    args = json.loads(arguments)
    jsonschema.validate(args, WEATHER_PARAMETERS)
    return args


# -- tool calls ---------------------------------------------------------------------------------


def test_forced_call_parses_and_matches_the_schema(client: openai.OpenAI) -> None:
    reply = forced(client)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    check_weather_call(call.function.name, call.function.arguments)


def test_streamed_call_as_openai_streams_it(client: openai.OpenAI) -> None:
    whole = forced(client).choices[0].message.tool_calls[0]
    calls: dict[int, dict[str, str]] = {}
    finish = []
    for chunk in forced(client, stream=True):
        for choice in chunk.choices:
            finish.append(choice.finish_reason)
            for part in choice.delta.tool_calls or []:
                if part.id is not None:
                    # First chunk of a call: index, id, type, name and empty arguments.
                    assert part.type == "function" and part.function.name
                    assert part.function.arguments == ""
                    calls[part.index] = {"id": part.id, "name": part.function.name, "args": ""}
                else:
                    assert part.function.name is None
                    calls[part.index]["args"] += part.function.arguments
    assert [f for f in finish if f] == ["tool_calls"]
    assert list(calls) == [0]
    args = check_weather_call(calls[0]["name"], calls[0]["args"])
    assert args == json.loads(whole.function.arguments)  # same call as the non-streamed reply


def test_required_choice_without_parallel_calls_makes_one_call(client: openai.OpenAI) -> None:
    reply = forced(client, tool_choice="required", parallel_tool_calls=False)
    assert reply.choices[0].finish_reason == "tool_calls"
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name in ("get_weather", "get_time")
    json.loads(call.function.arguments)


def test_tool_result_in_a_later_turn(client: openai.OpenAI) -> None:
    call = forced(client).choices[0].message.tool_calls[0]
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18}'},
    ]
    reply = client.chat.completions.create(
        model=CHAT, messages=messages, tools=[WEATHER], max_tokens=16, temperature=0, seed=7
    )
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # The result reached the prompt: it is longer than the same turns without it.
    without = client.chat.completions.create(
        model=CHAT, messages=messages[:2], tools=[WEATHER], max_tokens=1
    )
    assert reply.usage.prompt_tokens > without.usage.prompt_tokens


def test_tool_choice_none_gives_text(client: openai.OpenAI) -> None:
    reply = forced(client, tool_choice="none", max_tokens=12)
    message = reply.choices[0].message
    assert message.tool_calls is None
    assert isinstance(message.content, str) and message.content
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_tools_reach_the_prompt_on_both_template_paths(client: openai.OpenAI) -> None:
    for model in (CHAT, NATIVE):
        plain = client.chat.completions.create(model=model, messages=ASK, max_tokens=1)
        with_tools = client.chat.completions.create(
            model=model, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=1
        )
        # tool_choice none leaves them out, auto puts them in.
        assert with_tools.usage.prompt_tokens == plain.usage.prompt_tokens
        auto = client.chat.completions.create(
            model=model, messages=ASK, tools=[WEATHER], max_tokens=1
        )
        assert auto.usage.prompt_tokens > plain.usage.prompt_tokens + 20
        reply = forced(client, model=model)
        [call] = reply.choices[0].message.tool_calls
        check_weather_call(call.function.name, call.function.arguments)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "launch"}}}, "tool_choice"),
        ({"tools": [], "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]},
            "tools.0.function.parameters",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            },
            "tools.0.function.parameters",
        ),
        (
            {"tools": [function("bad name!")]},
            "tools.0.function.name",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        (
            {"messages": [*ASK, {"role": "tool", "content": "18 degrees"}]},
            "messages.1.tool_call_id",
        ),
        (
            {"messages": [*ASK, {"role": "assistant", "tool_calls": [{"id": "c1"}]}]},
            "messages.1.tool_calls.0.type",
        ),
    ],
)
def test_bad_tool_fields_are_400_naming_the_field(
    gateway: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": CHAT, "messages": ASK, "tools": [WEATHER], "max_tokens": 4, **extra}
    response = httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_openai_client_sees_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        forced(client, tool_choice={"type": "function", "function": {"name": "launch"}})
    assert "launch" in str(raised.value)


def test_langchain_tool_calling_agent_loop(gateway: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str, unit: str) -> str:
        """The current weather of a city, in celsius or fahrenheit."""
        return json.dumps({"city": city, "temperature": 18, "unit": unit})

    llm = ChatOpenAI(
        base_url=f"{gateway}/v1", api_key="not-needed", model=CHAT, temperature=0, max_tokens=60
    )
    question = HumanMessage("What is the weather in Paris?")
    asked = llm.bind_tools([get_weather], tool_choice="get_weather").invoke([question])
    [call] = asked.tool_calls
    assert call["name"] == "get_weather"
    assert set(call["args"]) == {"city", "unit"}  # parsed into a dict by LangChain
    result = get_weather.invoke(call["args"])
    answer = llm.bind_tools([get_weather]).invoke(
        [question, asked, ToolMessage(result, tool_call_id=call["id"])]
    )
    assert answer.response_metadata["finish_reason"] in ("stop", "length", "tool_calls")
    assert answer.content or answer.tool_calls


# -- reasoning ----------------------------------------------------------------------------------

# The model copies the pattern: it reasons, closes the reasoning and answers on one line.
FEW_SHOT = [
    {
        "role": "user",
        "content": "Answer in this format.\nQ: 2+2?\nA: <think>2 plus 2 is 4</think>4\n"
        "Q: 3+3?\nA: <think>3 plus 3 is 6</think>6\nQ: 5+1?\nA: <think>5 plus 1 is 6</think>6\n"
        "Q: 4+4?\nA:",
    }
]


def think(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=THINKING, messages=FEW_SHOT, max_tokens=30, temperature=0, stop=["\n"], **extra
    )


def test_reasoning_content_is_split_from_the_reply(client: openai.OpenAI) -> None:
    message = think(client).choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning and message.content
    for text in (reasoning, message.content):
        assert "<think>" not in text and "</think>" not in text
    assert "plus" in reasoning  # the model's own reasoning, copied from the pattern


def test_streamed_reasoning_content_equals_the_whole_reply(client: openai.OpenAI) -> None:
    whole = think(client).choices[0].message
    reasoning = content = ""
    for chunk in think(client, stream=True):
        for choice in chunk.choices:
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            content += choice.delta.content or ""
    assert reasoning == whole.model_extra["reasoning_content"]
    assert content == whole.content


def test_a_reply_without_markers_has_no_reasoning_content(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=8, seed=1)
    assert "reasoning_content" not in (reply.choices[0].message.model_extra or {})
