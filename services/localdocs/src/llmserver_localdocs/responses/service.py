"""A Responses API request: `file_search` over the named vector stores, the snippets put into
the prompt, one chat completion by the inference service, and OpenAI's Response object back:
a `file_search_call` item (its `results` when `include` asks for them) and the assistant's
message, whose text carries a `file_citation` per file and page it was given.

Not kept: a response is answered, not stored (`previous_response_id` is refused).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import httpx

from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.openai_shared import new_id
from llmserver_localdocs.responses.schemas import FileSearchTool, ResponsesRequest
from llmserver_localdocs.service import LocalDocsService, unavailable
from llmserver_localdocs.vector_stores.schemas import SearchRequest
from llmserver_localdocs.vector_stores.service import VectorStoresService

logger = logging.getLogger(__name__)

RESULTS_INCLUDE = "file_search_call.results"
DEFAULT_RESULTS = 5
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
CONTEXT_INTRO = (
    "### Context (excerpts of the user's files; cite one by its number in brackets, like [1]):"
)


def _text_of(content: Any, where: str) -> str:
    """A message's text: a string, or its input_text / output_text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise invalid_request(
                    "Only text parts (input_text, output_text) are supported.",
                    param=f"{where}.content.{index}",
                )
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    raise invalid_request("A message's content is a string or a list of parts.", where)


def _messages(body: ResponsesRequest) -> list[dict[str, str]]:
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    messages = []
    for index, item in enumerate(body.input):
        kind = item.get("type", "message")
        role = item.get("role")
        if kind != "message" or role not in ROLES:
            raise invalid_request(
                "Only messages with a role (user, assistant, system, developer) are supported.",
                param=f"input.{index}",
            )
        messages.append(
            {"role": ROLES[role], "content": _text_of(item.get("content"), f"input.{index}")}
        )
    if not messages:
        raise invalid_request("The input has no messages.", param="input")
    return messages


def _refuse_unsupported(body: ResponsesRequest) -> None:
    if body.stream:
        raise invalid_request("Streaming responses are not supported yet.", param="stream")
    if body.previous_response_id:
        raise invalid_request(
            "Responses are not stored here, so 'previous_response_id' cannot be used.",
            param="previous_response_id",
        )
    for index, tool in enumerate(body.tools):
        if not isinstance(tool, FileSearchTool):
            raise invalid_request(
                f"The tool type '{tool.type}' is not supported; only 'file_search' is.",
                param=f"tools.{index}.type",
            )
    for index, name in enumerate(body.include or []):
        if name != RESULTS_INCLUDE:
            raise invalid_request(
                f"'{name}' cannot be included; only '{RESULTS_INCLUDE}' can.",
                param=f"include.{index}",
            )


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


def _upstream_error(reply: httpx.Response) -> APIError:
    """The inference service's error (unknown model, context too long, busy) as is."""
    try:
        error = reply.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return APIError(502, f"The inference service answered {reply.status_code}.")
    retry = reply.headers.get("retry-after")
    return APIError(
        reply.status_code,
        message,
        type=error.get("type"),
        param=error.get("param"),
        code=error.get("code"),
        headers={"Retry-After": retry} if retry else None,
    )


class ResponsesService:
    def __init__(self, localdocs: LocalDocsService, stores: VectorStoresService) -> None:
        self.localdocs = localdocs
        self.stores = stores

    async def _file_search(self, tools: list[FileSearchTool], query: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for tool in tools:
            limit = tool.max_num_results or DEFAULT_RESULTS
            request = SearchRequest(
                query=query,
                max_num_results=limit,
                filters=tool.filters,
                ranking_options=tool.ranking_options,
            )
            found: list[dict[str, Any]] = []
            for store_id in dict.fromkeys(tool.vector_store_ids):
                try:
                    found.extend((await self.stores.search(store_id, request))["data"])
                except APIError as exc:
                    if exc.status_code == 404:
                        exc.param = "tools.vector_store_ids"
                    raise
            found.sort(key=lambda result: result["score"], reverse=True)
            results.extend(found[:limit])
        return results

    async def _complete(self, body: ResponsesRequest, messages: list[dict[str, str]]) -> dict:
        payload: dict[str, Any] = {"model": body.model, "messages": messages, "stream": False}
        if body.max_output_tokens is not None:
            payload["max_tokens"] = body.max_output_tokens
        if body.temperature is not None:
            payload["temperature"] = body.temperature
        if body.top_p is not None:
            payload["top_p"] = body.top_p
        timeout = self.localdocs.settings.responses_timeout_s
        try:
            reply = await self.localdocs.http.post(
                "/v1/chat/completions", json=payload, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise APIError(504, "The inference service did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise unavailable("The inference service") from exc
        if reply.status_code != 200:
            raise _upstream_error(reply)
        return reply.json()

    async def create(self, body: ResponsesRequest) -> dict[str, Any]:
        created = int(time.time())
        _refuse_unsupported(body)
        messages = _messages(body)
        tools = [tool for tool in body.tools if isinstance(tool, FileSearchTool)]
        searching = bool(tools) and body.tool_choice != "none"
        query = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        results = await self._file_search(tools, query) if searching and query.strip() else []

        # The instructions and the client's system messages as one system message; the
        # excerpts in front of the last user message, as GPT4All's LocalDocs (and our chat
        # `localdocs` field) do: chat templates without a system role still see them.
        system = [body.instructions] if body.instructions else []
        system += [m["content"] for m in messages if m["role"] == "system"]
        prompt = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        prompt += [dict(m) for m in messages if m["role"] != "system"]
        if results:
            excerpts = [
                f"[{number}] {result['filename']}"
                + (f", page {result['page']}" if result.get("page") else "")
                + f":\n{result['content'][0]['text']}"
                for number, result in enumerate(results, start=1)
            ]
            last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
            prompt[last]["content"] = (
                CONTEXT_INTRO + "\n\n" + "\n\n".join(excerpts) + "\n\n" + prompt[last]["content"]
            )

        completion = await self._complete(body, prompt)
        choice = completion["choices"][0]
        text = choice["message"].get("content") or ""
        finished = choice.get("finish_reason") != "length"
        usage = completion.get("usage") or {}

        output: list[dict[str, Any]] = []
        if searching:
            include = RESULTS_INCLUDE in (body.include or [])
            output.append(
                {
                    "id": new_id("fs_"),
                    "type": "file_search_call",
                    "status": "completed",
                    "queries": [query],
                    "results": [
                        {
                            "file_id": result["file_id"],
                            "filename": result["filename"],
                            "score": result["score"],
                            "attributes": result["attributes"],
                            "text": result["content"][0]["text"],
                            "page": result.get("page"),
                        }
                        for result in results
                    ]
                    if include
                    else None,
                }
            )
        output.append(
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "status": "completed" if finished else "incomplete",
                "content": [
                    {
                        "type": "output_text",
                        "text": text,
                        "annotations": _citations(text, results),
                        "logprobs": [],
                    }
                ],
            }
        )
        logger.info("response with %d file_search results", len(results))
        return {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": created,
            "completed_at": int(time.time()),
            "status": "completed" if finished else "incomplete",
            "incomplete_details": None if finished else {"reason": "max_output_tokens"},
            "error": None,
            "model": completion.get("model") or body.model,
            "instructions": body.instructions,
            "output": output,
            "parallel_tool_calls": False,
            "tool_choice": body.tool_choice or "auto",
            "tools": [tool.model_dump(exclude_none=True) for tool in tools],
            "temperature": body.temperature,
            "top_p": body.top_p,
            "max_output_tokens": body.max_output_tokens,
            "metadata": body.metadata or {},
            "store": False,
            "usage": {
                "input_tokens": usage.get("prompt_tokens", 0),
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage.get("completion_tokens", 0),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.get("total_tokens", 0),
            },
        }
