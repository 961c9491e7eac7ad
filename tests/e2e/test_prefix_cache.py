"""The prompt prefix cache through the gateway: a conversation's follow-up turn reports the
prompt tokens it reused in usage.prompt_tokens_details.cached_tokens, as OpenAI does."""

from __future__ import annotations

import uuid

import openai
import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

CHAT = "Gemma 3 270M"


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url('gateway')}/v1", api_key="x", timeout=120)


def ask(api: openai.OpenAI, messages: list[dict[str, str]]) -> tuple[str, int, int]:
    reply = api.chat.completions.create(model=CHAT, messages=messages, max_tokens=12, temperature=0)
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached is not None
    return reply.choices[0].message.content or "", cached, usage.prompt_tokens


def test_a_follow_up_turn_reuses_the_conversation_so_far(stack: Stack) -> None:
    api = client(stack)
    # A conversation no other test has: its own words from the first turn on.
    topic = uuid.uuid4().hex[:8]
    history = [{"role": "user", "content": f"Remember the code word {topic}. List three planets."}]
    first, _, first_prompt = ask(api, history)
    history += [
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Which of them is the largest?"},
    ]
    second, cached, prompt = ask(api, history)
    assert second
    # Turn 1's prompt at least is reused, and the new turn is evaluated.
    assert first_prompt - 2 <= cached < prompt

    # The same request again: all but the last prompt token come from the cache. (The reply
    # is not compared: the prompt is evaluated in other batches then, and the tiny model's
    # near-tied logits may round the other way, as llama-server documents for cache_prompt.
    # tests/unit/inference/test_prompt_cache.py compares replies on prompts that do not tie.)
    again, cached_again, _ = ask(api, history)
    assert cached_again == prompt - 1
    assert again


def test_a_diverging_follow_up_reuses_only_the_common_prefix(stack: Stack) -> None:
    api = client(stack)
    topic = uuid.uuid4().hex[:8]
    base = [{"role": "user", "content": f"Code word {topic}. Name a colour."}]
    first, _, _ = ask(api, base)
    branch_a = [*base, {"role": "assistant", "content": first}]
    _, _, prompt_a = ask(api, [*branch_a, {"role": "user", "content": "And a fruit?"}])
    # The assistant's turn rewritten: the cache is reused up to where the prompts differ.
    branch_b = [*base, {"role": "assistant", "content": "Blue, a deep ocean blue."}]
    reply, cached_b, prompt_b = ask(api, [*branch_b, {"role": "user", "content": "And a fruit?"}])
    assert reply
    assert 0 < cached_b < min(prompt_a, prompt_b) - 4
