"""n choices of one prompt: the prompt is evaluated once, the others copy its KV cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmserver_inference.engine import ChatEngine
from llmserver_inference.generation import GenerationEvent, GenerationRequest
from llmserver_inference.llama_backend import load_model, tokenize
from llmserver_inference.sampling import SamplingParams, build_sampler

GEMMA = Path(__file__).resolve().parents[3] / "models" / "gemma-3-270m-q4_k_m.gguf"
PROMPT = "Here is a list of the planets of the solar system, in order:"
MAX_TOKENS = 6
GREEDY = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)

pytestmark = pytest.mark.skipif(not GEMMA.exists(), reason="the default chat model is absent")


def new_engine(slots: int, kv_unified: bool = False) -> ChatEngine:
    return ChatEngine(
        load_model(str(GEMMA), 0),
        context_length=256,
        slots=slots,
        threads=2,
        batch_size=512,
        max_queue=8,
        kv_unified=kv_unified,
    )


def run_choices(
    engine: ChatEngine, prompt: list[int], n: int, params: SamplingParams
) -> list[GenerationEvent]:
    """One request with n choices of one prompt, submitted as the service does; last events."""

    async def run() -> list[GenerationEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        requests = [
            GenerationRequest(
                i, prompt, params, build_sampler(params, engine.vocab, engine.n_vocab), loop, queue
            )
            for i in range(n)
        ]
        engine.submit(requests)
        texts = [""] * n
        last: list[GenerationEvent | None] = [None] * n
        while None in last:
            event = await asyncio.wait_for(queue.get(), timeout=120)
            assert event.error is None, event.error
            texts[event.index] += event.text
            if event.finish_reason is not None:
                event.text = texts[event.index]
                last[event.index] = event
        return [event for event in last if event is not None]

    return asyncio.run(run())


@pytest.mark.parametrize("kv_unified", [False, True])
def test_the_prompt_is_evaluated_once_for_three_choices(kv_unified: bool) -> None:
    engine = new_engine(slots=4, kv_unified=kv_unified)
    try:
        prompt = tokenize(engine.vocab, PROMPT, True, True)
        events = run_choices(engine, prompt, 3, GREEDY)
        # The prompt once, then each choice's tokens but its last (sampled, never decoded).
        assert engine.decoded_tokens == len(prompt) + 3 * (MAX_TOKENS - 1)
    finally:
        engine.close()
    assert [e.completion_tokens for e in events] == [MAX_TOKENS] * 3
    assert [e.finish_reason for e in events] == ["length"] * 3
    # Greedy from the same copied cache: every choice continues the prompt alike.
    assert events[0].text.strip()
    assert events[1].text == events[0].text
    assert events[2].text == events[0].text


def test_a_choice_admitted_after_the_prompt_evaluates_it_again() -> None:
    engine = new_engine(slots=2)
    try:
        prompt = tokenize(engine.vocab, PROMPT, True, True)
        events = run_choices(engine, prompt, 3, GREEDY)
        # Two choices share one evaluation; the third waits for a free slot, by which time
        # the prompt is done, and evaluates it itself.
        assert engine.decoded_tokens == 2 * len(prompt) + 3 * (MAX_TOKENS - 1)
    finally:
        engine.close()
    assert [e.completion_tokens for e in events] == [MAX_TOKENS] * 3
    assert all(e.text.strip() for e in events)


def test_choices_waiting_on_a_leader_that_ends_early_still_finish() -> None:
    """The leader's prompt does not fit: it ends at once, and the waiting choices are not
    left behind (each then finds the same prompt too long)."""
    engine = new_engine(slots=4)
    try:
        too_long = tokenize(engine.vocab, PROMPT * 40, True, True)
        assert len(too_long) > engine.n_ctx_seq
        events = run_choices(engine, too_long, 3, GREEDY)
        assert engine.decoded_tokens == 0
    finally:
        engine.close()
    assert [e.finish_reason for e in events] == ["length"] * 3
    assert [e.completion_tokens for e in events] == [0] * 3
