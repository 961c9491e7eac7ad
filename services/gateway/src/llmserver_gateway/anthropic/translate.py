"""Anthropic Messages <-> OpenAI chat: a Messages request becomes the chat request inference
runs, and inference's chat completion becomes a Message."""

from __future__ import annotations

import json
import uuid
from typing import Any

from llmserver_common.anthropic_api import (
    AssistantMessageParam,
    MessagesBase,
    MessagesRequest,
    TextBlockParam,
    ThinkingBlockParam,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)

# OpenAI finish_reason -> Anthropic stop_reason. A stop string and the end of the turn both
# finish as "stop": the engine does not say which, so both are end_turn.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn")


def _text(blocks: str | list[TextBlockParam] | None) -> str:
    if blocks is None:
        return ""
    if isinstance(blocks, str):
        return blocks
    return "\n".join(block.text for block in blocks)


def _user_turn(message: UserMessageParam) -> list[dict[str, Any]]:
    """Tool results first (they answer the previous turn's calls), then the user's text."""
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    turns: list[dict[str, Any]] = []
    texts: list[str] = []
    for block in message.content:
        if isinstance(block, ToolResultBlockParam):
            result = _text(block.content)
            if block.is_error:
                result = f"Error: {result}"
            turns.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": result})
        else:
            texts.append(block.text)
    if texts:
        turns.append({"role": "user", "content": "\n".join(texts)})
    return turns


def _assistant_turn(message: AssistantMessageParam) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolUseBlockParam):
            arguments = json.dumps(block.input)
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        elif not isinstance(block, ThinkingBlockParam):  # thinking is not sent to the model
            texts.append(block.text)
    turn: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def chat_messages(request: MessagesBase) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        messages.append({"role": "system", "content": _text(request.system)})
    for message in request.messages:
        if isinstance(message, UserMessageParam):
            messages.extend(_user_turn(message))
        else:
            messages.append(_assistant_turn(message))
    return messages


def tools(request: MessagesBase) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if request.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools
        ]
    choice = request.tool_choice
    if choice is None:
        return fields
    if isinstance(choice, ToolChoiceNone):
        fields["tool_choice"] = "none"
    elif isinstance(choice, ToolChoiceTool):
        fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        fields["tool_choice"] = "required" if isinstance(choice, ToolChoiceAny) else "auto"
    if not isinstance(choice, ToolChoiceNone) and choice.disable_parallel_tool_use:
        fields["parallel_tool_calls"] = False
    return fields


def chat_request(request: MessagesRequest, model: str) -> dict[str, Any]:
    """The chat completion request for inference (`model`: the resolved name)."""
    chat: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(request),
        "max_tokens": request.max_tokens,
        **tools(request),
    }
    optional = {
        "stop": request.stop_sequences,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
    }
    chat.update({name: value for name, value in optional.items() if value is not None})
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def tool_input(arguments: Any) -> dict[str, Any]:
    """A call's arguments as a tool_use input (an object; anything else wrapped, not lost)."""
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def message(chat: dict[str, Any]) -> dict[str, Any]:
    """The Message of a (non-streamed) chat completion."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if reply.get("reasoning_content"):
        content.append(
            {"type": "thinking", "thinking": reply["reasoning_content"], "signature": ""}
        )
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments", "{}")),
            }
        )
    usage = chat.get("usage") or {}
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model", ""),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
    }
