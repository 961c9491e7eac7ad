"""The prompt prefix cache: a follow-up reuses the KV cache of the prefix it shares with an
earlier request and evaluates only its new tokens, with the same greedy output as without.

Reuse splits a prompt's evaluation in two, as a smaller batch size would; the sums then round
differently, so a degenerate prompt whose top logits nearly tie (a turn repeated four times)
may flip a greedy token, with or without the cache alike. These prompts are ordinary turns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmserver_inference.engine import ChatEngine
from llmserver_inference.generation import GenerationEvent, GenerationRequest
from llmserver_inference.llama_backend import load_model, tokenize
from llmserver_inference.sampling import SamplingParams, build_sampler
from llmserver_inference.slots import Slot, choose_slot

from .engine_events import run_request

GEMMA = Path(__file__).resolve().parents[3] / "models" / "gemma-3-270m-q4_k_m.gguf"
GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
TURN_1 = (
    "<start_of_turn>user\nHere is a list of the planets of the solar system, in order, "
    "with one fact about each of them:<end_of_turn>\n<start_of_turn>model\n"
)
TURN_2 = "<end_of_turn>\n<start_of_turn>user\nAnd which of them is the largest?<end_of_turn>\n"
OTHER_2 = "<end_of_turn>\n<start_of_turn>user\nName a moon of Jupiter, please.<end_of_turn>\n"
MODEL_TURN = "<start_of_turn>model\n"


def new_engine(prompt_cache: bool, slots: int = 2) -> ChatEngine:
    return ChatEngine(
        load_model(str(GEMMA), 0),
        context_length=512,
        slots=slots,
        threads=2,
        batch_size=512,
        max_queue=8,
        prompt_cache=prompt_cache,
    )


def generate(engine: ChatEngine, prompt: list[int], params: SamplingParams = GREEDY) -> tuple:
    sampler = build_sampler(params, engine.vocab, engine.n_vocab)
    events = asyncio.run(run_request(engine, prompt, params, sampler))
    assert events[-1].error is None, events[-1].error
    return "".join(e.text for e in events), events[-1].cached_tokens


def conversation(engine: ChatEngine, second_turn: str) -> list[tuple[str, int, int]]:
    """Turn 1, then turn 2 carrying turn 1's reply: (text, cached tokens, tokens decoded)."""
    results = []
    prompt = TURN_1
    for turn in (None, second_turn):
        if turn is not None:
            prompt = prompt + results[-1][0] + turn + MODEL_TURN
        before = engine.decoded_tokens
        text, cached = generate(engine, tokenize(engine.vocab, prompt, True, True))
        results.append((text, cached, engine.decoded_tokens - before))
    return results


pytestmark = pytest.mark.skipif(not GEMMA.exists(), reason="the default chat model is absent")


@pytest.fixture(scope="module")
def without_cache() -> dict[str, list[tuple[str, int, int]]]:
    engine = new_engine(prompt_cache=False)
    try:
        return {turn: conversation(engine, turn) for turn in (TURN_2, OTHER_2)}
    finally:
        engine.close()


@pytest.mark.parametrize("second_turn", [TURN_2, OTHER_2])
def test_a_follow_up_reuses_its_prefix_with_the_same_output(
    second_turn: str, without_cache: dict[str, list[tuple[str, int, int]]]
) -> None:
    engine = new_engine(prompt_cache=True)
    try:
        cached_run = conversation(engine, second_turn)
        prompt_2 = tokenize(
            engine.vocab,
            TURN_1 + cached_run[0][0] + second_turn + MODEL_TURN,
            True,
            True,
        )
        turn_1 = tokenize(engine.vocab, TURN_1, True, True)
    finally:
        engine.close()
    plain = without_cache[second_turn]
    assert plain[1][1] == 0  # without the cache nothing is reused
    # Same greedy text on both turns, with and without the cache.
    assert [text for text, _, _ in cached_run] == [text for text, _, _ in plain]
    assert cached_run[0][1] == 0
    cached = cached_run[1][1]
    # Turn 1's prompt at least (and the reply's tokens where they tokenize alike) is reused...
    assert len(turn_1) <= cached < len(prompt_2)
    # ... and not evaluated again.
    assert cached_run[1][2] == plain[1][2] - cached


def test_a_diverging_prompt_keeps_only_the_common_prefix() -> None:
    engine = new_engine(prompt_cache=True, slots=1)
    reference = new_engine(prompt_cache=False, slots=1)
    try:
        first = tokenize(engine.vocab, TURN_1 + "Mercury" + TURN_2 + MODEL_TURN, True, True)
        second = tokenize(engine.vocab, TURN_1 + "Mercury" + OTHER_2 + MODEL_TURN, True, True)
        common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
        generate(engine, first)
        text, cached = generate(engine, second)
        # Back to the first prompt: its tail was removed, so again only the common prefix.
        text_again, cached_again = generate(engine, first)
        expected, _ = generate(reference, second)
        expected_first, _ = generate(reference, first)
    finally:
        engine.close()
        reference.close()
    assert cached == common
    assert cached_again == common
    assert text == expected
    assert text_again == expected_first


def test_the_same_prompt_again_evaluates_one_token() -> None:
    engine = new_engine(prompt_cache=True, slots=1)
    try:
        prompt = tokenize(engine.vocab, TURN_1, True, True)
        text, _ = generate(engine, prompt)
        before = engine.decoded_tokens
        again, cached = generate(engine, prompt)
        decoded = engine.decoded_tokens - before
    finally:
        engine.close()
    assert again == text
    # The last prompt token is evaluated again for its logits, then 7 of the 8 tokens.
    assert cached == len(prompt) - 1
    assert decoded == 1 + GREEDY.max_tokens - 1


def test_a_request_with_a_seed_evaluates_its_whole_prompt() -> None:
    engine = new_engine(prompt_cache=True, slots=1)
    seeded = SamplingParams(temperature=1.2, seed=1234, max_tokens=8)
    try:
        prompt = tokenize(engine.vocab, TURN_1, True, True)
        generate(engine, prompt)  # the prompt is in the cache now
        first, cached_first = generate(engine, prompt, seeded)
        again, cached_again = generate(engine, prompt, seeded)
    finally:
        engine.close()
    assert cached_first == cached_again == 0
    assert again == first


def test_choices_of_a_cached_prompt_copy_the_leader() -> None:
    engine = new_engine(prompt_cache=True, slots=4)
    try:
        prompt = tokenize(engine.vocab, TURN_1, True, True)
        first, _ = generate(engine, prompt)

        async def three_choices() -> list[GenerationEvent]:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
            requests = [
                GenerationRequest(
                    i,
                    prompt,
                    GREEDY,
                    build_sampler(GREEDY, engine.vocab, engine.n_vocab),
                    loop,
                    queue,
                    stream=False,
                )
                for i in range(3)
            ]
            engine.submit(requests)
            done = []
            while len(done) < 3:
                event = await asyncio.wait_for(queue.get(), timeout=60)
                assert event.error is None, event.error
                done.append(event)
            return sorted(done, key=lambda e: e.index)

        before = engine.decoded_tokens
        events = asyncio.run(three_choices())
        decoded = engine.decoded_tokens - before
    finally:
        engine.close()
    assert [e.text for e in events] == [first] * 3
    assert [e.cached_tokens for e in events] == [len(prompt) - 1] * 3
    # One prompt token for the leader, then each choice's own tokens but its last.
    assert decoded == 1 + 3 * (GREEDY.max_tokens - 1)


def test_a_cancelled_prompt_leaves_a_usable_cache() -> None:
    engine = new_engine(prompt_cache=True, slots=1)
    reference = new_engine(prompt_cache=False, slots=1)
    try:
        prompt = tokenize(engine.vocab, TURN_1 + "Mercury" + TURN_2 + MODEL_TURN, True, True)
        long_params = SamplingParams(temperature=0.0, max_tokens=200)

        async def cancel_while_generating() -> None:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
            request = GenerationRequest(
                0,
                prompt,
                long_params,
                build_sampler(long_params, engine.vocab, engine.n_vocab),
                loop,
                queue,
            )
            engine.submit([request])
            await asyncio.wait_for(queue.get(), timeout=60)  # generating: prompt evaluated
            engine.cancel([request])
            while engine.busy:
                await asyncio.sleep(0.01)

        asyncio.run(cancel_while_generating())
        text, cached = generate(engine, prompt)
        expected, _ = generate(reference, prompt)
    finally:
        engine.close()
        reference.close()
    assert cached == len(prompt) - 1
    assert text == expected


def _slot(seq_id: int, tokens: list[int], tick: int) -> Slot:
    slot = Slot(seq_id)
    slot.tokens = tokens
    slot.released_tick = tick
    return slot


def test_the_slot_with_the_longest_prefix_is_chosen() -> None:
    a = _slot(0, [1, 2, 3, 4, 5], tick=1)
    b = _slot(1, [1, 2, 3, 9], tick=2)
    empty = _slot(2, [], tick=0)
    assert choose_slot([a, b, empty], [1, 2, 3, 4, 5, 6]) == (a, 5)
    assert choose_slot([a, b, empty], [1, 2, 3, 9, 7]) == (b, 4)
    # The whole prompt cached: its last token is still evaluated, for its logits.
    assert choose_slot([a, b], [1, 2, 3, 4, 5]) == (a, 4)
    # Nothing shared, or too little of the prompt: the least recently used slot.
    assert choose_slot([a, b, empty], [7, 8]) == (empty, 0)
    assert choose_slot([a, b], [1] + [8] * 20) == (a, 1)
    assert choose_slot([b, a], None) == (a, 0)
