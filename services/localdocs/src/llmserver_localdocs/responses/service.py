"""A Responses API request: `file_search` over the named vector stores, the snippets put into
the prompt, one chat completion by the inference service, and OpenAI's Response object back:
a `file_search_call` item (its `results` when `include` asks for them) and the assistant's
message, whose text carries a `file_citation` per file and page it was given; with function
tools, a `function_call` item per call (tools.py), and a `reasoning` item for the model's
reasoning.

The Response object is built in answer.py. Unless `store` is false, the answer is kept
(store.py) for `previous_response_id` and GET/DELETE /v1/responses/{id}. With `stream: true`
the same answer comes as server-sent events (streaming.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.responses.answer import RESULTS_INCLUDE, Prepared
from llmserver_localdocs.responses.schemas import (
    FileSearchTool,
    FunctionCallInput,
    FunctionCallOutput,
    InputText,
    ResponsesRequest,
)
from llmserver_localdocs.responses.store import ResponseStore
from llmserver_localdocs.responses.tools import (
    call_items,
    call_message,
    chat_tools,
    forces_function,
    result_message,
)
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.upstreams import unavailable
from llmserver_localdocs.vector_stores.schemas import VectorStoreSearchRequest
from llmserver_localdocs.vector_stores.service import VectorStoresService

logger = logging.getLogger(__name__)

DEFAULT_RESULTS = 5
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
CONTEXT_INTRO = (
    "### Context (excerpts of the user's files; cite one by its number in brackets, like [1]):"
)


def _text_of(content: str | list[InputText], where: str) -> str:
    """A message's text: a string, or its input_text / output_text parts."""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


def _messages(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The input as chat messages: text messages by role, consecutive `function_call` items as
    one assistant message with their tool_calls, a `function_call_output` as a tool message."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    messages: list[dict[str, Any]] = []
    calls: list[FunctionCallInput] = []
    for index, item in enumerate(body.input):
        if isinstance(item, FunctionCallInput):
            calls.append(item)
            continue
        if calls:
            messages.append(call_message(calls))
            calls = []
        if isinstance(item, FunctionCallOutput):
            messages.append(result_message(item))
            continue
        messages.append(
            {"role": ROLES[item.role], "content": _text_of(item.content, f"input.{index}")}
        )
    if calls:
        messages.append(call_message(calls))
    if not messages:
        raise invalid_request("The input has no messages.", param="input")
    return messages


def _refuse_unsupported(body: ResponsesRequest) -> None:
    for index, name in enumerate(body.include or []):
        if name != RESULTS_INCLUDE:
            raise invalid_request(
                f"'{name}' cannot be included; only '{RESULTS_INCLUDE}' can.",
                param=f"include.{index}",
            )


def upstream_error(reply: httpx.Response) -> APIError:
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
    def __init__(
        self, localdocs: LocalDocsService, stores: VectorStoresService, kept: ResponseStore
    ) -> None:
        self.localdocs = localdocs
        self.stores = stores
        self.kept = kept

    async def _file_search(self, tools: list[FileSearchTool], query: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for tool in tools:
            limit = tool.max_num_results or DEFAULT_RESULTS
            # Not validated again: a blank query is the search's own 400 (param "query").
            request = VectorStoreSearchRequest.model_construct(
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

    async def prepare(self, body: ResponsesRequest) -> Prepared:
        """Everything that may fail as a plain HTTP error, before any answer starts."""
        created = int(time.time())
        _refuse_unsupported(body)
        messages = _messages(body)
        if body.previous_response_id is not None:
            earlier = self.kept.get(body.previous_response_id, param="previous_response_id")
            messages = [*earlier.conversation, *messages]
        tools = [tool for tool in body.tools if isinstance(tool, FileSearchTool)]
        chat_tools(body)  # a tool_choice naming no function tool: 400 before any work
        searching = bool(tools) and body.tool_choice != "none" and not forces_function(body)
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
        logger.info("response with %d file_search results", len(results))
        conversation = [dict(m) for m in messages if m["role"] != "system"]
        store = None if body.store is False else self.kept
        return Prepared(
            body, created, tools, searching, query, results, prompt, conversation, store
        )

    async def create(self, body: ResponsesRequest) -> dict[str, Any]:
        prepared = await self.prepare(body)
        timeout = self.localdocs.settings.responses_timeout_s
        try:
            reply = await self.localdocs.http.post(
                "/v1/chat/completions", json=prepared.chat_payload(stream=False), timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise APIError(504, "The inference service did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise unavailable("The inference service") from exc
        if reply.status_code != 200:
            raise upstream_error(reply)
        completion = reply.json()
        choice = completion["choices"][0]
        message = choice["message"]
        return prepared.final(
            message.get("content") or "",
            choice.get("finish_reason") != "length",
            completion.get("model"),
            completion.get("usage"),
            calls=call_items(message.get("tool_calls"), "completed"),
            reasoning=message.get("reasoning_content"),
        )
