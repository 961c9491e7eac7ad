"""Tool calling: the grammar that forces a call, the prompt that describes the tools to models
whose template does not, and the parsing of the calls out of what a model wrote.

Models write calls in their own formats: Hermes/Qwen `<tool_call>{...}</tool_call>`, Llama 3
`{"name": ..., "parameters": {...}}` (after `<|python_tag|>` or alone), Mistral
`[TOOL_CALLS][{...}]`, and anything else that is a JSON call object (a generic fallback, also
inside a ```json fence). Under a grammar (tool_choice required or naming a function) the reply is
exactly a JSON call object, or an array of them when parallel calls are allowed.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from llmserver_inference.sampling import json_grammar

ToolMode = Literal["none", "auto", "required", "named"]

# The most calls one grammar-forced reply may make (parallel_tool_calls: true).
MAX_FORCED_CALLS = 4

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolSetup:
    """What a chat request asks of tools."""

    tools: list[dict[str, Any]]  # OpenAI tool objects ({"type": "function", "function": {...}})
    mode: ToolMode
    named: str | None = None
    parallel: bool = True

    @classmethod
    def from_request(
        cls, tools: list[Any] | None, tool_choice: Any, parallel: bool | None
    ) -> ToolSetup:
        dumped = [t.model_dump(exclude_none=True) for t in tools or []]
        choice = tool_choice if tool_choice is not None else "auto"
        if not dumped or choice == "none":
            return cls(tools=dumped, mode="none")
        if isinstance(choice, str):
            return cls(tools=dumped, mode=choice, parallel=parallel is not False)
        return cls(tools=dumped, mode="named", named=choice.function.name, parallel=False)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "named")

    @property
    def names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]

    def parameters_of(self, name: str) -> dict[str, Any]:
        for tool in self.tools:
            if tool["function"]["name"] == name:
                return tool["function"].get("parameters") or _EMPTY_PARAMETERS
        raise KeyError(name)


@dataclass
class ParsedCall:
    name: str
    arguments: str  # JSON text
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


# -- grammar -----------------------------------------------------------------------------------


def _call_schema(setup: ToolSetup, name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": setup.parameters_of(name)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def forced_call_schema(setup: ToolSetup) -> dict[str, Any]:
    """The JSON Schema of a forced reply: one call of the named function, or of any tool (an
    array of 1..MAX_FORCED_CALLS such calls when parallel calls are allowed)."""
    if setup.mode == "named":
        assert setup.named is not None
        return _call_schema(setup, setup.named)
    calls = [_call_schema(setup, name) for name in setup.names]
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if not setup.parallel:
        return one
    return {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_FORCED_CALLS}


def forced_call_grammar(setup: ToolSetup) -> str:
    """GBNF for a forced reply (GrammarError when a schema has what the converter lacks)."""
    return json_grammar(forced_call_schema(setup))


# -- prompt ------------------------------------------------------------------------------------


def tools_system_prompt(setup: ToolSetup) -> str:
    """A system message describing the tools, for chat templates that take no `tools`."""
    lines = [
        "You may call these functions (JSON Schema of their arguments given):",
    ]
    for tool in setup.tools:
        function = tool["function"]
        described = {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": function.get("parameters") or _EMPTY_PARAMETERS,
        }
        lines.append(json.dumps(described, ensure_ascii=False))
    lines.append(
        "To call a function, reply with one line per call: "
        '<tool_call>{"name": <function name>, "arguments": <arguments object>}</tool_call>'
    )
    if setup.mode == "named":
        lines.append(f"Call the function {setup.named} now.")
    elif setup.mode == "required":
        lines.append("Call at least one function now.")
    return "\n".join(lines)


def call_as_text(name: str, arguments: str) -> str:
    """An earlier call written back as the generic prompt asks the model to write one."""
    try:
        args: Any = json.loads(arguments)
    except json.JSONDecodeError:
        args = arguments
    call = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"<tool_call>{call}</tool_call>"


# -- parsing -----------------------------------------------------------------------------------

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_MISTRAL = "[TOOL_CALLS]"
_MISTRAL_ARGS = re.compile(r"\[TOOL_CALLS\]\s*([A-Za-z0-9_-]+)\s*\[ARGS\]\s*", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _as_call(value: Any, names: list[str]) -> ParsedCall | None:
    """{"name", "arguments"|"parameters"} (a function: {...} wrapper too) -> a call of a tool."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or name not in names:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON text already
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(name=name, arguments=json.dumps(args, ensure_ascii=False))


def _calls_in(value: Any, names: list[str]) -> list[ParsedCall] | None:
    """A call or a list of calls; None unless every item is one."""
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item, names) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def _json_prefix(text: str) -> tuple[Any, int] | None:
    try:
        return _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return None


def parse_tool_calls(text: str, setup: ToolSetup) -> tuple[str | None, list[ParsedCall]]:
    """(content left, calls) from a reply. Only calls of the request's tools count; text that
    is not a call stays content. With parallel calls off, only the first call is kept."""
    names = setup.names
    content, calls = _parse(text, names)
    if not setup.parallel:
        calls = calls[:1]
    content = content.strip() if content else ""
    return (content or None), calls


def _parse(text: str, names: list[str]) -> tuple[str, list[ParsedCall]]:
    stripped = text.strip()
    # Hermes / Qwen
    if "<tool_call>" in text:
        calls: list[ParsedCall] = []
        for match in _HERMES.finditer(text):
            found = _json_prefix(match.group(1))
            parsed = _calls_in(found[0], names) if found else None
            if parsed:
                calls.extend(parsed)
        if calls:
            return _HERMES.sub("", text), calls
    # Mistral: [TOOL_CALLS][{...}, ...] or [TOOL_CALLS]name[ARGS]{...}
    if _MISTRAL in text:
        before, _, after = text.partition(_MISTRAL)
        found = _json_prefix(after.lstrip())
        parsed = _calls_in(found[0], names) if found else None
        if parsed:
            return before, parsed
        calls = []
        for match in _MISTRAL_ARGS.finditer(text):
            args = _json_prefix(text[match.end() :])
            call = _as_call({"name": match.group(1), "arguments": args[0]}, names) if args else None
            if call:
                calls.append(call)
        if calls:
            return before, calls
    # Llama 3: the whole reply is a call (or a list of calls), maybe after <|python_tag|>
    body = stripped.removeprefix(_PYTHON_TAG).strip()
    found = _json_prefix(body)
    if found and not body[found[1] :].strip():
        parsed = _calls_in(found[0], names)
        if parsed:
            return "", parsed
    # Generic: a fenced JSON call, or a JSON call object somewhere in the text
    for match in _FENCE.finditer(text):
        found = _json_prefix(match.group(1))
        parsed = _calls_in(found[0], names) if found else None
        if parsed:
            return text[: match.start()] + text[match.end() :], parsed
    for start in (i for i, ch in enumerate(text) if ch in "{["):
        found = _json_prefix(text[start:])
        parsed = _calls_in(found[0], names) if found else None
        if parsed and found:
            return text[:start] + text[start + found[1] :], parsed
    return text, []


def forced_calls(text: str, setup: ToolSetup) -> list[ParsedCall]:
    """The calls of a grammar-forced reply (none if it was cut short by max_tokens)."""
    found = _json_prefix(text.strip())
    if not found:
        return []
    return _calls_in(found[0], setup.names) or []


# -- streaming ---------------------------------------------------------------------------------

# Text that may open a call: held back from the stream until the reply ends and it is parsed.
_CALL_OPENERS = ("<tool_call>", _MISTRAL, _PYTHON_TAG, "```", "{", "[")


class ToolCallStream:
    """Streams a reply's content while it cannot be a call; from the first text that may open
    one, holds the rest back and parses it when the reply ends. Forced replies are all held."""

    def __init__(self, setup: ToolSetup) -> None:
        self.setup = setup
        self._held = ""
        self._holding = setup.forced

    def feed(self, text: str) -> str:
        """Content to send now."""
        if self._holding:
            self._held += text
            return ""
        pending = self._held + text
        self._held = ""
        cut = _first_opener(pending)
        if cut is not None:
            self._holding = True
            self._held = pending[cut:]
            pending = pending[:cut]
        else:
            # A partial opener at the end ("<tool_" of "<tool_call>") waits for the next piece.
            keep = _partial_opener_suffix(pending)
            if keep:
                self._held = pending[-keep:]
                pending = pending[:-keep]
        return pending

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """(content still to send, calls) when the reply has ended."""
        held, self._held = self._held, ""
        if self.setup.forced:
            calls = forced_calls(held, self.setup)
            return ("" if calls else held), calls
        # A call opens with one of _CALL_OPENERS, so it lies in the held text.
        content, calls = _parse(held, self.setup.names)
        if not self.setup.parallel:
            calls = calls[:1]
        if not calls:
            return held, []
        return content.strip(), calls


def _first_opener(text: str) -> int | None:
    positions = [i for i in (text.find(o) for o in _CALL_OPENERS) if i >= 0]
    return min(positions) if positions else None


def _partial_opener_suffix(text: str) -> int:
    for opener in _CALL_OPENERS:
        for size in range(min(len(opener) - 1, len(text)), 0, -1):
            if text.endswith(opener[:size]):
                return size
    return 0


def argument_fragments(arguments: str, size: int = 16) -> list[str]:
    """The arguments text in pieces, as OpenAI streams them after the call's first chunk."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
