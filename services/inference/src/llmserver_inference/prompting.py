"""Chat messages -> prompt text, with the catalog's template, a llama-cpp-python chat format, or
the template in the GGUF's own metadata, in that order."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from llama_cpp import llama_chat_format

from llmserver_common.errors import invalid_request

logger = logging.getLogger(__name__)

# GPT4All's templates use variables beyond the Hugging Face set; give them harmless values.
_GPT4ALL_TEMPLATE_VARS: dict[str, Any] = {"toolList": [], "tools": None}

# Special tokens templates use to close a turn or open the next one. A model that emits one of
# them has finished its reply, even where the GGUF does not mark the token end-of-generation
# (Gemma's <start_of_turn>, GPT4All files with older metadata).
TURN_MARKERS = (
    "<end_of_turn>",
    "<start_of_turn>",
    "<|im_end|>",
    "<|im_start|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end|>",
    "<|user|>",
    "<|endoftext|>",
)
_PROBE_MESSAGES = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "a"},
    {"role": "user", "content": "u"},
]


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    # True when the template already put BOS in the text (tokenise without adding one).
    has_bos: bool


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _registered_formats() -> dict[str, Callable[..., Any]]:
    """llama-cpp-python's format_* functions by normalised name ("gemma", "chatml", ...)."""
    formats: dict[str, Callable[..., Any]] = {}
    for attr in dir(llama_chat_format):
        if attr.startswith("format_"):
            func = getattr(llama_chat_format, attr)
            if callable(func):
                formats[_norm(attr.removeprefix("format_"))] = func
    return formats


_FORMATS = _registered_formats()


def chat_format_exists(name: str) -> bool:
    return _norm(name) in _FORMATS


class ChatTemplater:
    """Builds chat prompts for one model."""

    def __init__(
        self,
        *,
        chat_format: str | None,
        chat_template: str | None,
        gguf_template: str | None,
        bos_token: str,
        eos_token: str,
    ) -> None:
        self._format = _FORMATS.get(_norm(chat_format)) if chat_format else None
        if chat_format and self._format is None:
            logger.warning("unknown chat_format %r; using the model's own template", chat_format)
        self._templates: list[llama_chat_format.Jinja2ChatFormatter] = []
        for template in (chat_template, gguf_template):
            if not template:
                continue
            try:
                self._templates.append(
                    llama_chat_format.Jinja2ChatFormatter(
                        template=template, eos_token=eos_token, bos_token=bos_token
                    )
                )
            except jinja2.TemplateError as exc:
                logger.warning("chat template does not compile: %s", exc)
        # The catalog's template comes first, then a named format, then the GGUF's template.
        self._catalog_first = bool(chat_template) and bool(self._templates)
        self.bos_token = bos_token
        self._keeps_system: bool | None = None

    @property
    def supports_tools(self) -> bool:
        """Whether the template that renders first takes the `tools` variable (and so, as
        llama-server assumes, tool_calls and tool messages); else tools are described in a
        system message and calls written as text."""
        first = self._first_jinja()
        return first is not None and "tools" in first.template

    @property
    def keeps_system(self) -> bool:
        """Whether a system message reaches the prompt (Gemma's format drops it)."""
        if self._keeps_system is None:
            probe = [{"role": "system", "content": "\x01probe"}, {"role": "user", "content": "u"}]
            try:
                self._keeps_system = "\x01probe" in self._render(probe, None).text
            except Exception:  # a template that refuses system messages
                self._keeps_system = False
        return self._keeps_system

    def _first_jinja(self) -> llama_chat_format.Jinja2ChatFormatter | None:
        if self._catalog_first or (self._format is None and self._templates):
            return self._templates[0]
        return None

    @property
    def available(self) -> bool:
        return self._format is not None or bool(self._templates)

    def turn_markers(self) -> list[str]:
        """The TURN_MARKERS that this model's prompts use (found by rendering a probe chat)."""
        rendered = ""
        for messages in (_PROBE_MESSAGES, _PROBE_MESSAGES[1:]):
            try:
                rendered = self.render(messages).text
                break
            except Exception:  # a template may reject the probe: try without system
                continue
        return [marker for marker in TURN_MARKERS if marker in rendered]

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> ChatPrompt:
        """The prompt for these messages. Where the template drops system messages (Gemma's
        format in llama-cpp-python) they open the first user turn instead, as Gemma 3's own
        template does, so a system prompt is never silently lost."""
        if any(m.get("role") == "system" for m in messages) and not self.keeps_system:
            messages = fold_system_into_first_user(messages)
        return self._render(messages, tools)

    def _render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> ChatPrompt:
        candidates: list[Callable[[], ChatPrompt]] = []
        templates = list(self._templates)
        if self._catalog_first:
            first = templates.pop(0)
            candidates.append(lambda: self._render_jinja(first, messages, tools))
        if self._format is not None:
            candidates.append(lambda: self._render_format(messages))
        for template in templates:
            candidates.append(lambda t=template: self._render_jinja(t, messages, tools))
        if not candidates:
            raise invalid_request(
                "This model has no chat template; use /v1/completions with a raw prompt.",
                param="model",
            )
        last_error: Exception | None = None
        for candidate in candidates:
            try:
                return candidate()
            except (jinja2.TemplateError, ValueError, TypeError, KeyError) as exc:
                # raise_exception() in templates (e.g. "roles must alternate") lands here too.
                last_error = exc
                logger.info("chat template failed (%s); trying the next one", exc)
        raise invalid_request(
            f"The chat template could not format these messages: {last_error}",
            param="messages",
        )

    def _render_jinja(
        self,
        formatter: llama_chat_format.Jinja2ChatFormatter,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatPrompt:
        variables = {**_GPT4ALL_TEMPLATE_VARS, "tools": tools or None}
        result = formatter(messages=messages, **variables)
        text = result.prompt
        return ChatPrompt(
            text=text, has_bos=bool(self.bos_token) and text.startswith(self.bos_token)
        )

    def _render_format(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        assert self._format is not None
        result = self._format(messages=messages)
        text = result.prompt
        return ChatPrompt(
            text=text, has_bos=bool(self.bos_token) and text.startswith(self.bos_token)
        )


def fold_system_into_first_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The system messages' text put before the first user message's (a user turn of its own
    when there is none), the system messages themselves removed."""
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{system}\n\n{message.get('content') or ''}"
            return rest
    return [{"role": "user", "content": system}, *rest]
