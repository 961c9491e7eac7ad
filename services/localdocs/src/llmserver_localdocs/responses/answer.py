"""The Response object around one chat completion: the file_search_call item, the reasoning,
the message with its `file_citation` annotations, the function calls; kept in the store when
finished (unless `store` is false)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from llmserver_localdocs.openai_shared import new_id
from llmserver_localdocs.responses.schemas import FileSearchTool, ResponsesRequest
from llmserver_localdocs.responses.store import ResponseStore
from llmserver_localdocs.responses.tools import chat_tools

RESULTS_INCLUDE = "file_search_call.results"


def _citations(text: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One file_citation per file and page given to the model, at its first [n] in the text
    (where the model cited it), else at the end of the text, as OpenAI places them."""
    annotations: list[dict[str, Any]] = []
    seen: set[tuple[str, int | None]] = set()
    for number, result in enumerate(results, start=1):
        key = (result["file_id"], result.get("page"))
        if key in seen:
            continue
        seen.add(key)
        marker = re.search(rf"\[{number}\]", text)
        annotations.append(
            {
                "type": "file_citation",
                "file_id": result["file_id"],
                "filename": result["filename"],
                "index": marker.start() if marker else len(text),
                "page": result.get("page"),
            }
        )
    return annotations


@dataclass
class Prepared:
    """A request checked, its file_search done and its prompt built: what is left is the
    chat completion (whole or streamed) and the Response object around it."""

    body: ResponsesRequest
    created: int
    tools: list[FileSearchTool]
    searching: bool
    query: str
    results: list[dict[str, Any]]
    prompt: list[dict[str, str]]
    # The conversation's messages so far (earlier turns, then this input; no system message),
    # kept with the answer unless `store` is false (then `store` is None).
    conversation: list[dict[str, Any]] = field(default_factory=list)
    store: ResponseStore | None = None
    response_id: str = field(default_factory=lambda: new_id("resp_"))
    search_id: str = field(default_factory=lambda: new_id("fs_"))
    message_id: str = field(default_factory=lambda: new_id("msg_"))
    reasoning_id: str = field(default_factory=lambda: new_id("rs_"))

    def chat_payload(self, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.body.model, "messages": self.prompt}
        payload["stream"] = stream
        if stream:
            payload["stream_options"] = {"include_usage": True}
        if self.body.max_output_tokens is not None:
            payload["max_tokens"] = self.body.max_output_tokens
        if self.body.temperature is not None:
            payload["temperature"] = self.body.temperature
        if self.body.top_p is not None:
            payload["top_p"] = self.body.top_p
        payload.update(chat_tools(self.body))
        return payload

    def search_item(self, status: str = "completed") -> dict[str, Any]:
        include = RESULTS_INCLUDE in (self.body.include or []) and status == "completed"
        return {
            "id": self.search_id,
            "type": "file_search_call",
            "status": status,
            "queries": [self.query],
            "results": [
                {
                    "file_id": result["file_id"],
                    "filename": result["filename"],
                    "score": result["score"],
                    "attributes": result["attributes"],
                    "text": result["content"][0]["text"],
                    "page": result.get("page"),
                }
                for result in self.results
            ]
            if include
            else None,
        }

    def text_part(self, text: str) -> dict[str, Any]:
        return {
            "type": "output_text",
            "text": text,
            "annotations": _citations(text, self.results),
            "logprobs": [],
        }

    def message_item(self, text: str | None, status: str) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [] if text is None else [self.text_part(text)],
        }

    def response(
        self,
        *,
        status: str,
        output: list[dict[str, Any]],
        model: str | None = None,
        usage: dict[str, Any] | None = None,
        error: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The Response object; `usage` is the chat completion's (prompt/completion tokens)."""
        done = status in ("completed", "incomplete", "failed")
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "completed_at": int(time.time()) if done else None,
            "status": status,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "error": error,
            "model": model or self.body.model,
            "instructions": self.body.instructions,
            "output": output,
            "parallel_tool_calls": False,
            "tool_choice": self.tool_choice(),
            "tools": [tool.model_dump(exclude_none=True) for tool in self.body.tools],
            "temperature": self.body.temperature,
            "top_p": self.body.top_p,
            "max_output_tokens": self.body.max_output_tokens,
            "metadata": self.body.metadata or {},
            "store": self.store is not None,
            "previous_response_id": self.body.previous_response_id,
            "usage": None
            if usage is None
            else {
                "input_tokens": usage.get("prompt_tokens", 0),
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage.get("completion_tokens", 0),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.get("total_tokens", 0),
            },
        }

    def tool_choice(self) -> str | dict[str, Any]:
        choice = self.body.tool_choice
        if isinstance(choice, BaseModel):
            return choice.model_dump(exclude_none=True)
        return choice or "auto"

    def reasoning_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        """The model's reasoning (chat's reasoning_content) as a reasoning item's summary."""
        return {
            "id": self.reasoning_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else [],
            "status": status,
        }

    def final(
        self,
        text: str,
        finished: bool,
        model: str | None,
        usage: dict[str, Any] | None,
        *,
        calls: list[dict[str, Any]] | None = None,
        reasoning: str | None = None,
    ) -> dict[str, Any]:
        """The finished Response object: the file_search call, the reasoning if any, the
        message (left out when the reply is only calls), the function calls; kept in the
        store unless `store` was false."""
        status = "completed" if finished else "incomplete"
        # In the order streamed: the search runs before the generation.
        output = [self.search_item()] if self.searching else []
        if reasoning:
            output.append(self.reasoning_item(reasoning, status))
        if text or not calls:
            output.append(self.message_item(text, status))
        output.extend(calls or [])
        final = self.response(status=status, output=output, model=model, usage=usage or {})
        if self.store is not None:
            answer: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                answer["tool_calls"] = [
                    {
                        "id": call["call_id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for call in calls
                ]
            self.store.put(final, [*self.conversation, answer])
        return final
