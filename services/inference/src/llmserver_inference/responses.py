"""Engine events -> OpenAI answers: one JSON body, or a Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from llmserver_common.errors import APIError, error_body
from llmserver_inference.chat_shaping import ChatShaping, ChoiceStream, shape_message
from llmserver_inference.generation import GenerationEvent, GenerationRequest, TokenLogprob

logger = logging.getLogger(__name__)


@dataclass
class Run:
    engine: Any
    requests: list[GenerationRequest]
    queue: asyncio.Queue[GenerationEvent]
    prompt_tokens: int
    logprobs: bool


@dataclass
class ResponseMeta:
    id: str
    model: str
    chat: bool
    include_usage: bool
    echo: list[str]
    # Chat: reasoning and tool calls taken out of the reply's text.
    shaping: ChatShaping = field(default_factory=ChatShaping)


async def collect(run: Run, meta: ResponseMeta, http: Request) -> dict[str, Any]:
    texts = [""] * len(run.requests)
    logprobs: list[list[TokenLogprob]] = [[] for _ in run.requests]
    finish: list[str | None] = [None] * len(run.requests)
    completion_tokens = 0
    cached = [0] * len(run.requests)
    remaining = len(run.requests)
    try:
        while remaining:
            try:
                event = await asyncio.wait_for(run.queue.get(), timeout=1.0)
            except TimeoutError:
                if await http.is_disconnected():
                    logger.info("client went away; stopping %s", meta.id)
                    return {}
                continue
            if event.error is not None:
                raise APIError(500, event.error, type="internal_error")
            texts[event.index] += event.text
            logprobs[event.index].extend(event.logprobs)
            if event.finish_reason is not None:
                finish[event.index] = event.finish_reason
                completion_tokens += event.completion_tokens
                cached[event.index] = event.cached_tokens
                remaining -= 1
    finally:
        run.engine.cancel(run.requests)
    choices = []
    for i, text in enumerate(texts):
        if meta.echo:
            text = meta.echo[i] + text
        lp = logprobs_json(logprobs[i], meta.chat) if run.logprobs else None
        if meta.chat:
            message, finish_reason = shape_message(text, finish[i], meta.shaping)
            choices.append(
                {"index": i, "message": message, "logprobs": lp, "finish_reason": finish_reason}
            )
        else:
            choices.append({"index": i, "text": text, "logprobs": lp, "finish_reason": finish[i]})
    return {
        "id": meta.id,
        "object": "chat.completion" if meta.chat else "text_completion",
        "created": int(time.time()),
        "model": meta.model,
        "choices": choices,
        "usage": usage_json(
            run.prompt_tokens, completion_tokens, cached_prompt_tokens(run, cached)
        ),
    }


async def stream_events(run: Run, meta: ResponseMeta, http: Request) -> AsyncIterator[str]:
    created = int(time.time())
    kind = "chat.completion.chunk" if meta.chat else "text_completion"
    completion_tokens = 0
    cached = [0] * len(run.requests)
    remaining = len(run.requests)

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {
            "id": meta.id,
            "object": kind,
            "created": created,
            "model": meta.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def choice(index: int, text: str, finish: str | None, lp: Any, first: bool) -> dict:
        if meta.chat:
            delta: dict[str, Any] = {"content": text}
            if first:
                delta = {"role": "assistant", "content": text}
            return {"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}
        return {"index": index, "text": text, "logprobs": lp, "finish_reason": finish}

    shapers = [ChoiceStream(i, meta.shaping) for i in range(len(run.requests))]
    try:
        # The opening chunk: the assistant role (chat), the echoed prompt (completions).
        opening = [
            choice(i, meta.echo[i] if meta.echo else "", None, None, True)
            for i in range(len(run.requests))
        ]
        yield chunk(opening)
        while remaining:
            event = await run.queue.get()
            if event.error is not None:
                err = error_body(event.error, "internal_error")
                yield f"data: {json.dumps(err)}\n\n"
                yield "data: [DONE]\n\n"
                return
            lp = logprobs_json(event.logprobs, meta.chat) if run.logprobs else None
            if event.finish_reason is not None:
                completion_tokens += event.completion_tokens
                cached[event.index] = event.cached_tokens
                remaining -= 1
            if meta.chat:
                for item in shapers[event.index].on_text(event.text, event.finish_reason, lp):
                    yield chunk([item])
            else:
                yield chunk([choice(event.index, event.text, event.finish_reason, lp, False)])
        if meta.include_usage:
            usage = usage_json(
                run.prompt_tokens, completion_tokens, cached_prompt_tokens(run, cached)
            )
            yield chunk([], usage=usage)
        yield "data: [DONE]\n\n"
    finally:
        # Client gone (the generator is cancelled/closed) or done: free the slots at once.
        run.engine.cancel(run.requests)
        del http


def sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def usage_json(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        # As OpenAI reports it: prompt tokens taken from the prompt cache, not evaluated.
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def cached_prompt_tokens(run: Run, per_choice: list[int]) -> int:
    """Cached tokens of each prompt once (its n choices share one prompt_tokens count)."""
    per_prompt: dict[int, int] = {}
    for request, cached in zip(run.requests, per_choice, strict=True):
        key = id(request.prompt_tokens)
        per_prompt[key] = max(per_prompt.get(key, 0), cached)
    return sum(per_prompt.values())


def logprobs_json(items: list[TokenLogprob], chat: bool) -> Any:
    if chat:
        return {
            "content": [
                {
                    "token": it.token,
                    "logprob": it.logprob,
                    "bytes": it.bytes,
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": b} for t, lp, b in it.top
                    ],
                }
                for it in items
            ]
        }
    return {
        "tokens": [it.token for it in items],
        "token_logprobs": [it.logprob for it in items],
        "top_logprobs": [{t: lp for t, lp, _ in it.top} for it in items],
        "text_offset": None,
    }
