"""The OpenAI request and response models that the gateway and inference both validate with.

One set of models, so the two services accept exactly the same requests and their OpenAPI
documents say so. The rules follow OpenAI's API reference (per-role messages, non-empty `model`
and embedding input, penalties in [-2, 2], ...) where we can honour them, and say plainly where
we cannot: a field we cannot honour is documented with the only values we accept (`functions`
empty, `dimensions` null), so any other value is a 400 naming it.

Types are strict: "4", 4.0 and true are not token counts, and a number is not a string. Unknown
fields are ignored, never refused: OpenAI clients send new fields all the time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

# A request: unknown fields are ignored; types strict (JSON has no "4" that means 4).
_REQUEST = ConfigDict(extra="ignore", strict=True)

# What /v1/models says about max_tokens, referred to from the field descriptions.
MAX_TOKENS_HELP = (
    "At most the model's `max_tokens_ceiling` (GET /v1/models/{model}); above it the request "
    "is refused with 400 naming the ceiling. Absent: the model's `default_max_tokens`."
)


def _integral(value: Any) -> Any:
    """4.0 is the integer 4 (JSON Schema says so); 4.5, "4" and true are not integers."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def integer(**bounds: int) -> Any:
    """An integer as JSON Schema has it, a number with no fractional part, within `bounds`
    (ge, le: inside the Annotated, so that the schema says minimum and maximum)."""
    return Annotated[int, Field(**bounds), BeforeValidator(_integral)]


# A non-empty model name; absent or null picks the service's default model.
ModelName = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        description="A model's display name, file name or alias (GET /v1/models). "
        "Absent or null: the default model of the route's kind.",
    ),
]


class _Request(BaseModel):
    model_config = _REQUEST


# -- chat messages, one model per role --------------------------------------------------------


class TextPart(_Request):
    """A text content part (the only content part the local models read)."""

    type: Literal["text"]
    text: str


class SystemMessage(_Request):
    role: Literal["system"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: str | None = None


class DeveloperMessage(_Request):
    """OpenAI's newer name for the system message; treated as one."""

    role: Literal["developer"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: str | None = None


class UserMessage(_Request):
    role: Literal["user"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: str | None = None


class FunctionCall(_Request):
    name: str = Field(min_length=1)
    arguments: str = Field(description="The arguments as a JSON text (an object).")


class ToolCall(_Request):
    """A call the assistant made in an earlier turn (as a reply's `message.tool_calls` gave)."""

    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(_Request):
    """A previous reply; its content may be null when it made tool calls."""

    role: Literal["assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = Field(
        default=None, description="Extension: the reasoning of that reply (not sent to the model)."
    )


class ToolMessage(_Request):
    """A tool's result, answering the call with this id from the previous assistant message."""

    role: Literal["tool"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    tool_call_id: str = Field(min_length=1)


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# -- request options ---------------------------------------------------------------------------


class StreamOptions(_Request):
    include_usage: bool | None = Field(
        default=None, description="Send a last chunk with the usage and no choices."
    )


class JSONSchemaFormat(_Request):
    name: str | None = None
    # "schema" shadows a BaseModel attribute, hence the alias.
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="The JSON Schema the reply must match."
    )
    strict: bool | None = None


class TextFormat(_Request):
    type: Literal["text"]


class JSONObjectFormat(_Request):
    type: Literal["json_object"]


class JSONSchemaResponseFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaResponseFormat, Field(discriminator="type")
]

_UNSUPPORTED = "Not supported: only this value is accepted; any other is refused with 400."


def _empty_only(value: Any) -> Any:
    if value:  # None, [], {} and "" ask for nothing
        raise ValueError("not supported by this server")
    return value


def _none_only(value: Any) -> Any:
    if value is not None:
        raise ValueError("not supported by this server")
    return value


def _unsupported(python_type: Any, accepted: dict[str, Any]) -> Any:
    """A field we cannot honour: only `accepted` (or null) passes, and the schema says so."""
    return Annotated[
        python_type | None,
        AfterValidator(_empty_only),
        WithJsonSchema({"anyOf": [accepted, {"type": "null"}], "description": _UNSUPPORTED}),
    ]


def _forbid(shape: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema extra: requests of this shape are refused (a model validator enforces it)."""
    return {"not": shape}


# -- tools -------------------------------------------------------------------------------------

# OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
FunctionName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


def _json_schema_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A function's parameters: a valid JSON Schema (draft 2020-12) describing an object."""
    if value is None:
        return value
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    if value.get("type", "object") != "object":
        raise ValueError("the parameters' JSON Schema must describe an object (type: object)")
    return value


class FunctionDefinition(_Request):
    name: FunctionName
    description: str | None = None
    parameters: Annotated[dict[str, Any] | None, AfterValidator(_json_schema_object)] = Field(
        default=None,
        description="A JSON Schema (type: object) for the arguments; absent: no arguments. "
        "An invalid schema is refused with 400.",
    )
    strict: bool | None = Field(
        default=None,
        description="Accepted; the arguments always match the schema when tool_choice is "
        "required or names the function (grammar-constrained generation).",
    )


class ChatTool(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    name: FunctionName


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class SamplingRequest(_Request):
    """The fields chat and completion requests share."""

    model: ModelName
    max_tokens: integer(ge=1) | None = Field(default=None, description=MAX_TOKENS_HELP)
    max_completion_tokens: integer(ge=1) | None = Field(
        default=None, description="The same as max_tokens (OpenAI's newer name); wins."
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: integer(ge=0) | None = Field(default=None, description="Extension (llama.cpp).")
    min_p: float | None = Field(default=None, ge=0.0, le=1.0, description="Extension.")
    n: integer(ge=1, le=16) | None = Field(default=None, description="Choices to generate (1).")
    stop: str | Annotated[list[str], Field(max_length=16)] | None = Field(
        default=None, description="Up to 16 stop strings."
    )
    # Any integer: the sampler uses its low 32 bits (and an int64 bound would be fuzzy for
    # clients that hold JSON numbers as doubles).
    seed: integer() | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repeat_penalty: float | None = Field(
        default=None, gt=0.0, le=10.0, description="Extension (llama.cpp)."
    )
    response_format: ResponseFormat | None = None
    stream: bool | None = Field(default=None, description="Server-Sent Events.")
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Accepted empty so that clients sending them empty keep working (functions: use tools).
    logit_bias: _unsupported(dict[str, float], {"type": "object", "maxProperties": 0}) = None
    functions: _unsupported(list[Any], {"type": "array", "maxItems": 0}) = None


_TOP_LOGPROBS_WITHOUT_LOGPROBS = {
    "required": ["top_logprobs"],
    "properties": {"top_logprobs": {"type": "integer", "minimum": 1}},
    "not": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}},
}


# tool_choice "required" or naming a function needs tools to choose from.
_TOOL_CHOICE_WITHOUT_TOOLS = {
    "required": ["tool_choice"],
    "properties": {"tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}},
    "not": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
}


class ChatCompletionRequest(SamplingRequest):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                _forbid(_TOP_LOGPROBS_WITHOUT_LOGPROBS),
                _forbid(_TOOL_CHOICE_WITHOUT_TOOLS),
            ]
        }
    )

    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: integer(ge=0, le=20) | None = Field(
        default=None, description="Above 0 needs logprobs: true."
    )
    tools: Annotated[list[ChatTool], Field(max_length=128)] | None = Field(
        default=None,
        description="Functions the model may call (at most 128, names unique). They reach the "
        "model through its chat template (or a system message describing them).",
    )
    tool_choice: ToolChoice | None = Field(
        default=None,
        description="none: no call; auto (the default with tools): the model decides; required: "
        "at least one call; {type: function, function: {name}}: that function, which must be "
        "in tools. required and a named function constrain generation with a grammar built from "
        "the tools' schemas, so the arguments always parse and match.",
    )
    parallel_tool_calls: bool | None = Field(
        default=None,
        description="Whether one reply may make several calls (true, the default).",
    )

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("'top_logprobs' requires 'logprobs': true")
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, value: list[ChatTool] | None) -> list[ChatTool] | None:
        names = [tool.function.name for tool in value or []]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"function names must be unique; {duplicates[0]!r} repeats")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value in ("none", "auto"):
            return value
        if "tools" not in info.data:  # tools failed validation: that error is reported
            return value
        tools = info.data.get("tools") or []
        if not tools:
            raise ValueError("'tool_choice' other than none or auto requires 'tools'")
        if isinstance(value, NamedToolChoice):
            names = [tool.function.name for tool in tools]
            if value.function.name not in names:
                raise ValueError(
                    f"function {value.function.name!r} is not among the tools ({', '.join(names)})"
                )
        return value


# A completion prompt: a string or a non-empty list of strings (token-id prompts: not supported).
Prompt = str | Annotated[list[str], Field(min_length=1)]


_ECHO_WITH_LOGPROBS = {
    "required": ["echo", "logprobs"],
    "properties": {"echo": {"const": True}, "logprobs": {"type": "integer"}},
}


class CompletionRequest(SamplingRequest):
    model_config = ConfigDict(json_schema_extra=_forbid(_ECHO_WITH_LOGPROBS))

    prompt: Prompt
    tools: _unsupported(list[Any], {"type": "array", "maxItems": 0}) = Field(
        default=None, description="Chat completions only."
    )
    echo: bool | None = None
    logprobs: integer(ge=0, le=5) | None = Field(
        default=None, description="Not together with echo: true (prompt logprobs)."
    )
    suffix: _unsupported(str, {"type": "string", "maxLength": 0}) = None
    best_of: Annotated[
        integer(ge=1, le=1) | None, WithJsonSchema({"anyOf": [{"const": 1}, {"type": "null"}]})
    ] = Field(default=None, description=_UNSUPPORTED)

    @field_validator("logprobs")
    @classmethod
    def _no_prompt_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("echo"):
            raise ValueError("together with 'echo' (prompt logprobs) it is not supported")
        return value


# OpenAI: at most 2048 inputs, none empty.
EmbeddingInput = (
    Annotated[str, Field(min_length=1)]
    | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=2048)]
)


class EmbeddingRequest(_Request):
    input: EmbeddingInput
    model: ModelName
    input_type: Literal["query", "document"] | None = Field(
        default=None,
        description="Extension: the model's query or document prefix is put in front.",
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[
        int | None, AfterValidator(_none_only), WithJsonSchema({"type": "null"})
    ] = Field(default=None, description=_UNSUPPORTED)
    user: str | None = None


# -- responses ---------------------------------------------------------------------------------


class _Response(BaseModel):
    # Answers may carry more than documented; clients ignore what they do not know.
    model_config = ConfigDict(extra="allow")


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int


class FunctionCallReply(_Response):
    name: str
    arguments: str = Field(description="The arguments as a JSON text.")


class ToolCallReply(_Response):
    id: str
    type: Literal["function"]
    function: FunctionCallReply


class AssistantReply(_Response):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCallReply] | None = Field(
        default=None, description="The calls the model made (finish_reason: tool_calls)."
    )
    reasoning_content: str | None = Field(
        default=None,
        description="Extension: the model's reasoning (its <think>...</think> part), taken out "
        "of content.",
    )


FinishReason = Literal["stop", "length", "tool_calls"] | None


class ChatChoice(_Response):
    index: int
    message: AssistantReply
    finish_reason: FinishReason
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Response):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(_Response):
    index: int
    text: str
    finish_reason: FinishReason
    logprobs: dict[str, Any] | None = None


class Completion(_Response):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class Embedding(_Response):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian f32.")


class EmbeddingList(_Response):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


# The media type of a streamed answer (stream: true), described per event: `data: {chunk}`
# events (a chunk, or an error envelope if generation fails midway), then `data: [DONE]`.
EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "description": "A JSON chunk (`object`: chat.completion.chunk or "
                    "text_completion; the last one of each choice has its finish_reason; with "
                    "stream_options.include_usage a usage chunk with no choices follows), or "
                    '{"error": {...}} if generation failed midway; the last event is [DONE].',
                }
            },
        }
    }
}
