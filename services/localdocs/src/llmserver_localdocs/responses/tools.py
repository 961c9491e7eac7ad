"""Function tools of the Responses API over the inference service's chat tools: the request's
flat `function` tools and `tool_choice` as chat's, `function_call` / `function_call_output`
input items as the assistant `tool_calls` and `tool` messages, and a reply's `tool_calls` as
`function_call` output items."""

from __future__ import annotations

from typing import Any

from llmserver_common.errors import invalid_request
from llmserver_localdocs.openai_shared import new_id
from llmserver_localdocs.responses.schemas import (
    FunctionCallInput,
    FunctionCallOutput,
    FunctionChoice,
    FunctionTool,
    ResponsesRequest,
)


def function_tools(body: ResponsesRequest) -> list[FunctionTool]:
    return [tool for tool in body.tools if isinstance(tool, FunctionTool)]


def forces_function(body: ResponsesRequest) -> bool:
    choice = body.tool_choice
    return isinstance(choice, FunctionChoice)


def chat_tools(body: ResponsesRequest) -> dict[str, Any]:
    """The chat request's `tools` and `tool_choice` (nothing without function tools)."""
    tools = function_tools(body)
    choice = body.tool_choice
    if isinstance(choice, FunctionChoice):
        if choice.name not in {tool.name for tool in tools}:
            raise invalid_request(
                f"tool_choice names '{choice.name}', which is not one of the function tools.",
                "tool_choice.name",
            )
    if not tools:
        return {}
    fields: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": tool.model_dump(exclude_none=True, exclude={"type", "strict"}),
            }
            for tool in tools
        ],
        # One call per reply: the Response object says parallel_tool_calls false.
        "parallel_tool_calls": False,
    }
    if isinstance(choice, FunctionChoice):
        fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif isinstance(choice, str):
        fields["tool_choice"] = choice
    return fields


def call_message(items: list[FunctionCallInput]) -> dict[str, Any]:
    """Consecutive `function_call` items: one assistant message with their tool_calls."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            for item in items
        ],
    }


def result_message(item: FunctionCallOutput) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": item.call_id, "content": item.output}


def call_items(tool_calls: list[dict[str, Any]] | None, status: str) -> list[dict[str, Any]]:
    """A chat reply's tool_calls as `function_call` output items."""
    return [
        {
            "id": new_id("fc_"),
            "type": "function_call",
            "call_id": call.get("id") or new_id("call_"),
            "name": call["function"]["name"],
            "arguments": call["function"].get("arguments") or "",
            "status": status,
        }
        for call in tool_calls or []
    ]
