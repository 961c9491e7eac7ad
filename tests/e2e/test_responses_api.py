"""OpenAI's Responses API through the gateway with the official client, beyond `file_search`
(tests/e2e/test_openai_vector_stores.py): stored responses, `previous_response_id`, retrieve
and delete. Real stack, the default tiny model: answers are kept short."""

from __future__ import annotations

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
