"""A chat reply's text -> OpenAI's assistant message: reasoning taken out into
`reasoning_content`, tool calls into `tool_calls` (finish_reason "tool_calls"), whole or as
stream deltas. Tool-call deltas follow OpenAI's stream: per call a first delta with its index,
id, type, function name and empty arguments, then deltas with pieces of the arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmserver_inference.reasoning import ReasoningMarkers, ReasoningSplitter, split_reasoning
from llmserver_inference.tool_calls import (
    ParsedCall,
    ToolCallStream,
    ToolSetup,
    argument_fragments,
    forced_calls,
    parse_tool_calls,
)


@dataclass(frozen=True)
class ChatShaping:
    tools: ToolSetup | None = None
    reasoning: ReasoningMarkers | None = None
    # The prompt ended with the reasoning start marker: the reply begins inside the reasoning.
    reasoning_open: bool = False


def shape_message(
    text: str, finish: str | None, shaping: ChatShaping
) -> tuple[dict[str, Any], str | None]:
    """(message, finish_reason) of a whole reply."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    content = text
    if shaping.reasoning is not None:
        reasoning, content = split_reasoning(
            text, shaping.reasoning, open_at_start=shaping.reasoning_open
        )
        message["content"] = content
        if reasoning is not None:
            message["reasoning_content"] = reasoning
    tools = shaping.tools
    if tools is None or not tools.active:
        return message, finish
    if tools.forced:
        calls = forced_calls(content, tools)
        rest: str | None = None if calls else content
    else:
        rest, calls = parse_tool_calls(content, tools)
    if not calls:
        return message, finish
    message["content"] = rest
    message["tool_calls"] = [call.as_json() for call in calls]
    return message, "tool_calls"


class ChoiceStream:
    """One choice of a streamed chat reply: engine text in, `choices[]` items out."""

    def __init__(self, index: int, shaping: ChatShaping) -> None:
        self.index = index
        self._splitter = (
            ReasoningSplitter(shaping.reasoning, open_at_start=shaping.reasoning_open)
            if shaping.reasoning is not None
            else None
        )
        tools = shaping.tools
        self._tools = ToolCallStream(tools) if tools is not None and tools.active else None

    def on_text(self, text: str, finish: str | None, logprobs: Any) -> list[dict[str, Any]]:
        reasoning, content = self._splitter.feed(text) if self._splitter else ("", text)
        if finish is not None and self._splitter is not None:
            more_reasoning, more_content = self._splitter.finish()
            reasoning += more_reasoning
            content += more_content
        calls: list[ParsedCall] = []
        if self._tools is not None:
            content = self._tools.feed(content)
            if finish is not None:
                rest, calls = self._tools.finish()
                content += rest
        delta: dict[str, Any] = {}
        if reasoning:
            delta["reasoning_content"] = reasoning
        if content or not reasoning:
            delta["content"] = content
        if not calls:
            if (
                self._tools is not None
                and finish is None
                and logprobs is None
                and delta == {"content": ""}
            ):
                return []  # text held back as a possible call: nothing to say yet
            return [self._choice(delta, finish, logprobs)]
        items = []
        if reasoning or content or logprobs is not None:
            items.append(self._choice(delta, None, logprobs))
        for position, call in enumerate(calls):
            head = {
                "index": position,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            items.append(self._choice({"tool_calls": [head]}, None, None))
            for piece in argument_fragments(call.arguments):
                part = {"index": position, "function": {"arguments": piece}}
                items.append(self._choice({"tool_calls": [part]}, None, None))
        items.append(self._choice({}, "tool_calls", None))
        return items

    def _choice(self, delta: dict[str, Any], finish: str | None, logprobs: Any) -> dict[str, Any]:
        return {"index": self.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
