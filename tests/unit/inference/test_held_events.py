"""Non-streamed requests get their reply in one event; streamed ones token by token, same text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmserver_inference.engine import ChatEngine
from llmserver_inference.generation import GenerationEvent, GenerationRequest, TokenLogprob
from llmserver_inference.llama_backend import load_model, tokenize
from llmserver_inference.sampling import SamplingParams, build_sampler

from .engine_events import run_request

GEMMA = Path(__file__).resolve().parents[3] / "models" / "gemma-3-270m-q4_k_m.gguf"


def request(stream: bool) -> GenerationRequest:
    loop = asyncio.new_event_loop()
    try:
        return GenerationRequest(
            0,
            [1],
            SamplingParams(),
            None,
            loop,
            asyncio.Queue(),
            stream=stream,  # type: ignore[arg-type]
        )
    finally:
        loop.close()


def logprob(token: str) -> TokenLogprob:
    return TokenLogprob(token, -0.5, list(token.encode()), [])


def test_streamed_events_pass_at_once() -> None:
    req = request(stream=True)
    event = GenerationEvent(0, text="Hel")
    assert req.hold_or_release(event) is event


def test_non_streamed_events_are_held_until_the_last() -> None:
    req = request(stream=False)
    assert req.hold_or_release(GenerationEvent(0, text="Hel", logprobs=[logprob("Hel")])) is None
    assert req.hold_or_release(GenerationEvent(0, text="lo", logprobs=[logprob("lo")])) is None
    last = req.hold_or_release(
        GenerationEvent(0, text="!", logprobs=[logprob("!")], finish_reason="length")
    )
    assert last is not None
    assert last.text == "Hello!"
    assert [lp.token for lp in last.logprobs] == ["Hel", "lo", "!"]
    assert last.finish_reason == "length"


def test_errors_are_never_held() -> None:
    req = request(stream=False)
    assert req.hold_or_release(GenerationEvent(0, text="Hel")) is None
    error = GenerationEvent(0, error="The model failed to decode.")
    assert req.hold_or_release(error) is error


@pytest.mark.skipif(not GEMMA.exists(), reason="the default chat model is not in models/")
def test_engine_sends_one_event_for_a_non_streamed_request_with_the_streamed_text() -> None:
    model = load_model(str(GEMMA), 0)
    engine = ChatEngine(model, context_length=256, slots=2, threads=2, batch_size=64, max_queue=2)
    params = SamplingParams(temperature=0.0, max_tokens=12)

    async def generate(stream: bool) -> list[GenerationEvent]:
        prompt = tokenize(engine.vocab, "The capital of France is", True, True)
        sampler = build_sampler(params, engine.vocab, engine.n_vocab)
        return await run_request(engine, prompt, params, sampler, stream=stream)

    try:
        streamed = asyncio.run(generate(stream=True))
        held = asyncio.run(generate(stream=False))
    finally:
        engine.close()
    assert len(streamed) > 2  # token by token
    assert len(held) == 1
    assert held[0].error is None
    assert held[0].finish_reason == streamed[-1].finish_reason == "length"
    assert held[0].completion_tokens == streamed[-1].completion_tokens == 12
    assert held[0].text == "".join(e.text for e in streamed)
    assert held[0].text.strip()
