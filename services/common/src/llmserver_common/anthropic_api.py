"""The models of Anthropic's Messages API (POST /v1/messages) as the gateway accepts and answers
it. The rules follow Anthropic's reference: max_tokens required, roles user and assistant, content
a string or blocks (text; tool_use in assistant turns; tool_result in user turns), tools with an
input_schema, tool_choice auto | any | tool | none. Unknown fields are ignored; images and
documents are not read by the local models and are refused with 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from llmserver_common.openai_api import FunctionName, integer

# The same check as a chat function's parameters (one rule for both APIs).
from llmserver_common.openai_api import _json_schema_object as json_schema_object

_REQUEST = ConfigDict(extra="ignore", strict=True)


class _Request(BaseModel):
    model_config = _REQUEST


# -- content blocks of a request ----------------------------------------------------------------


class TextBlockParam(_Request):
    type: Literal["text"]
    text: str


class ToolUseBlockParam(_Request):
    """A tool call the assistant made in an earlier turn."""

    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: FunctionName
    input: dict[str, Any]


class ToolResultBlockParam(_Request):
    """The result of the tool call with this id (in the user turn after it)."""

    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlockParam] | None = None
    is_error: bool | None = None


class ThinkingBlockParam(_Request):
    """An earlier reply's thinking: accepted, not sent to the model."""

    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


UserBlock = Annotated[TextBlockParam | ToolResultBlockParam, Field(discriminator="type")]
AssistantBlock = Annotated[
    TextBlockParam | ToolUseBlockParam | ThinkingBlockParam, Field(discriminator="type")
]


class UserMessageParam(_Request):
    role: Literal["user"]
    content: str | Annotated[list[UserBlock], Field(min_length=1)]


class AssistantMessageParam(_Request):
    role: Literal["assistant"]
    content: str | Annotated[list[AssistantBlock], Field(min_length=1)]


MessageParam = Annotated[UserMessageParam | AssistantMessageParam, Field(discriminator="role")]


# -- tools --------------------------------------------------------------------------------------


class ToolParam(_Request):
    name: FunctionName
    description: str | None = None
    input_schema: Annotated[dict[str, Any], AfterValidator(json_schema_object)] = Field(
        description="A JSON Schema (type: object) for the tool's input."
    )


class _ToolChoiceBase(_Request):
    disable_parallel_tool_use: bool | None = Field(
        default=None, description="true: at most one tool_use block."
    )


class ToolChoiceAuto(_ToolChoiceBase):
    type: Literal["auto"]


class ToolChoiceAny(_ToolChoiceBase):
    type: Literal["any"]


class ToolChoiceTool(_ToolChoiceBase):
    type: Literal["tool"]
    name: FunctionName


class ToolChoiceNone(_Request):
    type: Literal["none"]


ToolChoiceParam = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


# -- requests -----------------------------------------------------------------------------------


# tool_choice any or tool needs tools to choose from (a model validator enforces it).
_TOOL_CHOICE_WITHOUT_TOOLS = {
    "not": {
        "required": ["tool_choice"],
        "properties": {
            "tool_choice": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["any", "tool"]}},
            }
        },
        "not": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
    }
}


class MessagesBase(_Request):
    model_config = ConfigDict(json_schema_extra=_TOOL_CHOICE_WITHOUT_TOOLS)

    model: str = Field(
        min_length=1, description="A model's display name, file name or alias (GET /v1/models)."
    )
    system: str | Annotated[list[TextBlockParam], Field(min_length=1)] | None = None
    messages: list[MessageParam] = Field(min_length=1)
    tools: Annotated[list[ToolParam], Field(max_length=128)] | None = None
    tool_choice: ToolChoiceParam | None = Field(
        default=None,
        description="auto (the default with tools), any (some tool), tool (that one; its input "
        "always matches its input_schema: grammar-constrained), none.",
    )

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, value: list[ToolParam] | None) -> list[ToolParam] | None:
        names = [tool.name for tool in value or []]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique; {duplicates[0]!r} repeats")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, ToolChoiceAuto | ToolChoiceNone):
            return value
        if "tools" not in info.data:  # tools failed validation: that error is reported
            return value
        names = [tool.name for tool in info.data.get("tools") or []]
        if not names:
            raise ValueError(f"tool_choice {value.type!r} requires 'tools'")
        if isinstance(value, ToolChoiceTool) and value.name not in names:
            raise ValueError(f"tool {value.name!r} is not among the tools ({', '.join(names)})")
        return value


class MessagesRequest(MessagesBase):
    max_tokens: integer(ge=1) = Field(description="The most tokens to generate (required).")
    stop_sequences: Annotated[list[str], Field(max_length=16)] | None = Field(
        default=None, description="Up to 16 strings that end the reply."
    )
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: integer(ge=0) | None = None
    stream: bool | None = Field(default=None, description="Server-Sent Events (Anthropic's).")
    metadata: dict[str, Any] | None = Field(default=None, description="Accepted, ignored.")


class CountTokensRequest(MessagesBase):
    """POST /v1/messages/count_tokens: the prompt a Messages request would make."""


# -- responses ----------------------------------------------------------------------------------


class _Response(BaseModel):
    pass


class TextBlock(_Response):
    type: Literal["text"]
    text: str


class ThinkingBlock(_Response):
    type: Literal["thinking"]
    thinking: str
    signature: str = Field(description="Always empty: local reasoning is not signed.")


class ToolUseBlock(_Response):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = Annotated[TextBlock | ThinkingBlock | ToolUseBlock, Field(discriminator="type")]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class MessageUsage(_Response):
    input_tokens: int
    output_tokens: int


class Message(_Response):
    """The reply; with stream: true, Anthropic's event stream (message_start ... message_stop)."""

    id: str = Field(description="msg_...")
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: MessageUsage


class CountTokensResponse(_Response):
    input_tokens: int


class AnthropicErrorDetail(_Response):
    type: Literal[
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    ]
    message: str


class AnthropicErrorResponse(_Response):
    """Anthropic's error envelope: the body of every error of /v1/messages."""

    type: Literal["error"]
    error: AnthropicErrorDetail
