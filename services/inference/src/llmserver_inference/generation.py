"""One generation request and the events the scheduler thread sends back for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from llmserver_inference.sampling import Samplers, SamplingParams


class QueueFullError(Exception):
    """Every slot is busy and the wait queue is full."""


class EngineClosedError(Exception):
    """The model was unloaded while the request waited."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]


@dataclass
class GenerationEvent:
    """What the scheduler thread sends back; `finish_reason` set on the last one."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    # Prompt tokens taken from the prompt cache instead of evaluated (set on the last event).
    cached_tokens: int = 0
    error: str | None = None


class GenerationRequest:
    """One sequence to generate (n > 1 submits several), reporting to an asyncio queue."""

    def __init__(
        self,
        index: int,
        prompt_tokens: list[int],
        params: SamplingParams,
        sampler: Samplers,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[GenerationEvent],
        *,
        stream: bool = True,
    ) -> None:
        self.index = index
        self.prompt_tokens = prompt_tokens
        self.params = params
        self.sampler = sampler
        self._loop = loop
        self._queue = queue
        # Set from the event loop (client gone); read by the scheduler thread.
        self.cancelled = False
        # A non-streamed reply is read only once it is finished: its text is held in the
        # scheduler and sent with the last event, which spares the event loop (and the CPU
        # that decoding needs) one wake-up per token per request.
        self.stream = stream
        # The first of the n choices of one prompt (set by ChatEngine.submit): this choice
        # copies its KV cache instead of evaluating the same prompt again.
        self.prompt_leader: GenerationRequest | None = None
        self._held_text: list[str] = []
        self._held_logprobs: list[TokenLogprob] = []

    def hold_or_release(self, event: GenerationEvent) -> GenerationEvent | None:
        """The event to send now, or None when it is held for the last event (not streamed)."""
        if self.stream or event.error is not None:
            return event
        if event.finish_reason is None:
            self._held_text.append(event.text)
            self._held_logprobs.extend(event.logprobs)
            return None
        if self._held_text or self._held_logprobs:
            event.text = "".join(self._held_text) + event.text
            event.logprobs = self._held_logprobs + event.logprobs
            self._held_text, self._held_logprobs = [], []
        return event

    def emit(self, event: GenerationEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # loop closed: nobody is listening any more
            self.cancelled = True


def deliver_events(items: list[tuple[asyncio.Queue[GenerationEvent], GenerationEvent]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)


EventSink = Callable[[GenerationEvent], None]
