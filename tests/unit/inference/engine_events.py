"""Drives a real ChatEngine from a test: submit one request, gather its events to the last."""

from __future__ import annotations

import asyncio

from llmserver_inference.engine import ChatEngine
from llmserver_inference.generation import GenerationEvent, GenerationRequest
from llmserver_inference.sampling import Samplers, SamplingParams


async def run_request(
    engine: ChatEngine,
    prompt: list[int],
    params: SamplingParams,
    sampler: Samplers,
    *,
    stream: bool = True,
) -> list[GenerationEvent]:
    queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    engine.submit([GenerationRequest(0, prompt, params, sampler, loop, queue, stream=stream)])
    events = []
    while True:
        event = await asyncio.wait_for(queue.get(), timeout=60)
        events.append(event)
        if event.finish_reason or event.error:
            return events
