"""OpenAI's Responses API through the gateway with the official client, beyond `file_search`
(tests/e2e/test_openai_vector_stores.py): stored responses, `previous_response_id`, retrieve
and delete. Real stack, the default tiny model: answers are kept short."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

CHAT_MODEL = "Gemma 3 270M"


@pytest.fixture(scope="module")
def client(stack: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url('gateway')}/v1", api_key="not-needed", timeout=120) as c:
        yield c


def test_plain_answer_is_stored_and_continued_by_previous_response_id(client: OpenAI) -> None:
    first = client.responses.create(
        model=CHAT_MODEL,
        input="Name a colour of the sky.",
        instructions="Answer in one word.",
        max_output_tokens=8,
        temperature=0,
    )
    assert first.status in ("completed", "incomplete")
    assert [item.type for item in first.output] == ["message"]
    assert first.output_text
    assert first.store is True

    follow = client.responses.create(
        model=CHAT_MODEL,
        input="Name another.",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    assert follow.previous_response_id == first.id
    # The earlier question and answer are in the prompt: more input than the first turn had,
    # though this turn's own text and the dropped instructions are no longer.
    assert follow.usage is not None and first.usage is not None
    assert follow.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens - 2

    kept = client.responses.retrieve(follow.id)
    assert kept.id == follow.id
    assert kept.output_text == follow.output_text
    assert kept.previous_response_id == first.id


def test_delete_then_retrieve_is_not_found(client: OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input="Say hi.", max_output_tokens=4)
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as again:
        client.responses.create(
            model=CHAT_MODEL, input="And?", previous_response_id=response.id, max_output_tokens=4
        )
    assert again.value.body["param"] == "previous_response_id"


def test_store_false_is_not_kept_and_streamed_answers_are(client: OpenAI) -> None:
    unkept = client.responses.create(
        model=CHAT_MODEL, input="Say hi.", store=False, max_output_tokens=4
    )
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)

    events = list(
        client.responses.create(
            model=CHAT_MODEL, input="Say hi.", max_output_tokens=4, temperature=0, stream=True
        )
    )
    assert events[-1].type in ("response.completed", "response.incomplete")
    streamed = events[-1].response
    kept = client.responses.retrieve(streamed.id)
    assert kept.output_text == streamed.output_text


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
FORCED = {"type": "function", "name": "get_weather"}


def _weather_call(output: list[Any]) -> Any:
    calls = [item for item in output if item.type == "function_call"]
    assert len(calls) == 1, output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id and call.id.startswith("fc_")
    arguments = json.loads(call.arguments)
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)
    return call


def test_forced_function_call_then_its_output_continues(client: OpenAI) -> None:
    response = client.responses.create(
        model=CHAT_MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice=FORCED,  # type: ignore[arg-type]
        max_output_tokens=48,
        temperature=0,
    )
    assert response.status == "completed"
    call = _weather_call(response.output)

    follow = client.responses.create(
        model=CHAT_MODEL,
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
        max_output_tokens=8,
        temperature=0,
    )
    assert [item.type for item in follow.output] == ["message"]
    # The stored question, the call and its output are in the prompt: more than the question.
    question_only = client.responses.create(
        model=CHAT_MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
        store=False,
        max_output_tokens=1,
    )
    assert follow.usage is not None and question_only.usage is not None
    assert follow.usage.input_tokens > question_only.usage.input_tokens + 5

    # The same turns sent whole, without the store: the call item and its output as input.
    again = client.responses.create(
        model=CHAT_MODEL,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        store=False,
        max_output_tokens=8,
    )
    assert again.status in ("completed", "incomplete")


def test_forced_function_call_streamed(client: OpenAI) -> None:
    events = list(
        client.responses.create(
            model=CHAT_MODEL,
            input="What is the weather in Rome?",
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice=FORCED,  # type: ignore[arg-type]
            max_output_tokens=48,
            temperature=0,
            stream=True,
        )
    )
    kinds = [event.type for event in events]
    assert kinds[-1] == "response.completed"
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"]
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert deltas == done.arguments
    assert kinds.index("response.function_call_arguments.done") < kinds.index(
        "response.output_item.done"
    )
    call = _weather_call(events[-1].response.output)
    assert call.arguments == done.arguments
    assert call.id == added[0].item.id


def test_bad_function_tools_are_400_naming_the_field(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unnamed:
        client.responses.create(
            model=CHAT_MODEL,
            input="x",
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "name": "other"},
            max_output_tokens=1,
        )
    assert unnamed.value.body["param"] == "tool_choice.name"
    with pytest.raises(openai.BadRequestError) as nameless:
        client.responses.create(
            model=CHAT_MODEL,
            input="x",
            tools=[{"type": "function", "parameters": {}}],  # type: ignore[list-item]
            max_output_tokens=1,
        )
    assert nameless.value.body["param"] == "tools.0.name"
