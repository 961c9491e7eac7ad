"""Request fields -> what the engine needs: sampling parameters, chat messages for the template."""

from __future__ import annotations

from typing import Any

from llmserver_common.errors import invalid_request
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.sampling import GrammarError, SamplingParams, json_grammar
from llmserver_inference.schemas import ChatCompletionRequest, SamplingRequest
from llmserver_inference.token_limits import TokenLimits, max_tokens_for

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
    body: SamplingRequest, entry: ModelEntry, limits: TokenLimits, logprobs: int | None
) -> SamplingParams:
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


def messages_for_template(body: ChatCompletionRequest, entry: ModelEntry) -> list[dict[str, str]]:
    messages = []
    for message in body.messages:
        role = "system" if message.role == "developer" else message.role
        content = content_text(message.content)
        require_encodable(content, "messages")
        messages.append({"role": role, "content": content})
    if entry.system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": entry.system_prompt})
    return messages
