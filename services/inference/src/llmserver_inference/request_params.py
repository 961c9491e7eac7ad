"""Request fields -> what the engine needs: sampling parameters, chat messages for the template
(tool calls and results included)."""

from __future__ import annotations

import json
from typing import Any

from llmserver_common.errors import invalid_request
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.sampling import GrammarError, SamplingParams, json_grammar
from llmserver_inference.schemas import ChatCompletionRequest, SamplingRequest
from llmserver_inference.token_limits import TokenLimits, max_tokens_for
from llmserver_inference.tool_calls import ToolSetup, call_as_text, tools_system_prompt

_SAMPLING_DEFAULT_KEYS = {
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "max_tokens",
}


def sampling_params(
    body: SamplingRequest,
    entry: ModelEntry,
    limits: TokenLimits,
    logprobs: int | None,
    tool_grammar: str | None = None,
) -> SamplingParams:
    """`tool_grammar` (a forced tool call) takes the place of response_format's grammar."""
    defaults = {k: v for k, v in entry.defaults.items() if k in _SAMPLING_DEFAULT_KEYS}

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(body, name)
        if value is not None:
            return value
        return defaults.get(name, fallback)

    stop = body.stop
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    stops = [s for s in stops if s]
    if len(stops) > 16:
        raise invalid_request("At most 16 stop strings are supported.", param="stop")
    max_tokens = max_tokens_for(body, limits)
    grammar = None
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_object":
        grammar = json_grammar(None)
    elif fmt is not None and fmt.type == "json_schema":
        # Without a schema (OpenAI allows that) any JSON value will do, as with json_object.
        schema = fmt.json_schema.json_schema or None
        try:
            grammar = json_grammar(schema)
        except GrammarError as exc:
            raise invalid_request(str(exc), param="response_format") from None
    if tool_grammar is not None:
        grammar = tool_grammar
    return SamplingParams(
        temperature=float(pick("temperature", 1.0)),
        top_p=float(pick("top_p", 1.0)),
        top_k=int(pick("top_k", 0)),
        min_p=float(pick("min_p", 0.0)),
        seed=body.seed,
        presence_penalty=float(pick("presence_penalty", 0.0)),
        frequency_penalty=float(pick("frequency_penalty", 0.0)),
        repeat_penalty=float(pick("repeat_penalty", 1.0)),
        grammar=grammar,
        max_tokens=max_tokens,
        stop=stops,
        logprobs=logprobs,
    )


def require_encodable(text: str, param: str) -> None:
    """JSON may carry lone surrogates ("\\ud800"); they are not text and cannot reach the model."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid_request(
            f"'{param}' contains invalid Unicode (a lone surrogate at position {exc.start}).",
            param=param,
        ) from None


def content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Text parts only: the schema refuses the others (images, audio, files).
    return "".join(part.text for part in content)


def messages_for_template(
    body: ChatCompletionRequest,
    entry: ModelEntry,
    tools: ToolSetup,
    *,
    native_tools: bool,
) -> list[dict[str, Any]]:
    """The request's messages as chat templates take them. A template that takes `tools`
    (native_tools) gets tool calls and tool messages as Hugging Face templates expect them;
    for any other, the tools are described in a system message (which the templater folds
    into the first user turn where the template drops system messages), earlier calls are
    written as the text that description asks for and tool results become user turns."""
    messages: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for message in body.messages:
        role = "system" if message.role == "developer" else message.role
        content = content_text(message.content)
        require_encodable(content, "messages")
        if role == "assistant" and message.tool_calls:
            for call in message.tool_calls:
                call_names[call.id] = call.function.name
            if native_tools:
                calls = [
                    _native_call(c.id, c.function.name, c.function.arguments)
                    for c in message.tool_calls
                ]
                messages.append({"role": role, "content": content, "tool_calls": calls})
                continue
            written = "\n".join(
                call_as_text(c.function.name, c.function.arguments) for c in message.tool_calls
            )
            content = f"{content}\n{written}" if content else written
        elif role == "tool":
            if native_tools:
                messages.append(
                    {"role": "tool", "content": content, "tool_call_id": message.tool_call_id}
                )
                continue
            name = call_names.get(message.tool_call_id, "the function")
            result = f"Result of {name} (call {message.tool_call_id}): {content}"
            if messages and messages[-1]["role"] == "user" and messages[-1].get("tool_results"):
                messages[-1]["content"] += "\n" + result
                continue
            messages.append({"role": "user", "content": result, "tool_results": True})
            continue
        messages.append({"role": role, "content": content})
    for message in messages:
        message.pop("tool_results", None)
    if entry.system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": entry.system_prompt})
    if tools.active and not native_tools:
        _describe_tools(messages, tools_system_prompt(tools))
    return messages


def _native_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    # Templates write the arguments with tojson: give them the object, as llama-server does.
    try:
        args: Any = json.loads(arguments)
    except json.JSONDecodeError:
        args = arguments
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _describe_tools(messages: list[dict[str, Any]], description: str) -> None:
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{description}"
    else:
        messages.insert(0, {"role": "system", "content": description})
