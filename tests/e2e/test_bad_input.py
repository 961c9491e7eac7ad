"""Bad input against the real gateway: every malformed request gets the OpenAI error envelope.

A table of malformed requests (bad JSON, wrong types, out-of-range numbers, empty and huge
messages, unknown roles, invalid unicode, nested garbage, wrong content types, oversized bodies,
path traversal in collection paths and names, unknown models, collections and routes), each
answered with a 4xx and `{"error": {"message", "type", "param", "code"}}`: never a 5xx, never a
hang, never a stack trace or an internal address in the message. (schemathesis fuzzes the
OpenAPI documents themselves in test_openapi_contract.py.)

Every generation request in the table carries `max_tokens: 1` unless max_tokens is the field under
test, so a request the server wrongly accepts costs one token, not a long generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from devstack.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Per-request bound: a hang is a failure, not a stuck suite. Generous for the huge-message cases,
# which the server must tokenize before refusing.
REQUEST_TIMEOUT_S = 60.0
# The gateway's default GATEWAY_MAX_BODY_BYTES is 8 MiB; 9 MiB is past it.
OVERSIZED_BYTES = 9 * 1024 * 1024
# Far past the default model's 2048-token context, well under the body limit.
HUGE_TEXT = "The quick brown fox jumps over the lazy dog. " * 12_000

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
COLLECTIONS = "/v1/localdocs/collections"
SEARCH = "/v1/localdocs/search"
ACTIVE = "/v1/localdocs/active"
VECTOR_STORES = "/v1/vector_stores"
RESPONSES = "/v1/responses"
RERANK = "/v1/rerank"
# Anthropic's Messages API answers in Anthropic's error envelope, not OpenAI's: its bad input is
# tested in test_anthropic_messages.py.
ANTHROPIC_ROUTES = "/v1/messages"
USER = [{"role": "user", "content": "Say hi."}]


@dataclass
class BadRequest:
    """One malformed request and the statuses the contract allows for it."""

    case_id: str
    method: str
    path: str
    # A dict/list/scalar is sent as JSON; bytes are sent as they are.
    body: Any = None
    expected: tuple[int, ...] = (400,)
    headers: dict[str, str] = field(default_factory=dict)
    # Root-relative paths in the body are resolved against the stack's documents folder.
    needs_docs_root: bool = False


def _chat(**fields: Any) -> dict[str, Any]:
    return {"messages": USER, "max_tokens": 1, **fields}


def _completion(**fields: Any) -> dict[str, Any]:
    return {"prompt": "Say hi.", "max_tokens": 1, **fields}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _bad_json_cases() -> Iterator[BadRequest]:
    bodies: dict[str, bytes] = {
        "empty": b"",
        "whitespace": b"   \n\t ",
        "truncated-object": b'{"model": "x", "messages": [',
        "single-quotes": b"{'model': 'x'}",
        "trailing-comma": b'{"prompt": "hi",}',
        "two-objects": b'{"a": 1}{"b": 2}',
        "missing-value": b'{"model": }',
        "bare-word": b"hello",
        "json-null": b"null",
        "json-number": b"42",
        "json-string": b'"just a string"',
        "json-array": b"[1, 2, 3]",
        "json-true": b"true",
        "not-utf8": b'{"prompt": "\xff\xfe\xfd"}',
        "overlong-utf8": b'{"prompt": "\xc0\xaf"}',
        "nul-byte": b'{"prompt": "a"}\x00',
        "nan-literal": b'{"prompt": "hi", "max_tokens": NaN}',
        "deep-nesting-100k": _nested(100_000),
    }
    targets = [
        ("POST", CHAT),
        ("POST", COMPLETIONS),
        ("POST", EMBEDDINGS),
        ("POST", COLLECTIONS),
        ("POST", SEARCH),
        ("PUT", ACTIVE),
    ]
    for method, path in targets:
        for name, body in bodies.items():
            if name == "nan-literal" and path not in (CHAT, COMPLETIONS):
                continue
            yield BadRequest(f"bad-json-{name}-{method}{path}", method, path, body)


def _chat_field_cases() -> Iterator[BadRequest]:
    bad_fields: dict[str, dict[str, Any]] = {
        "messages-missing": {"messages": None},
        "messages-string": {"messages": "hello"},
        "messages-object": {"messages": {"role": "user", "content": "hi"}},
        "messages-empty": {"messages": []},
        "message-not-object": {"messages": ["hi"]},
        "message-number": {"messages": [42]},
        "message-empty-object": {"messages": [{}]},
        "role-missing": {"messages": [{"content": "hi"}]},
        "role-number": {"messages": [{"role": 7, "content": "hi"}]},
        "role-empty": {"messages": [{"role": "", "content": "hi"}]},
        "role-unknown": {"messages": [{"role": "wizard", "content": "hi"}]},
        "role-null": {"messages": [{"role": None, "content": "hi"}]},
        "content-number": {"messages": [{"role": "user", "content": 12345}]},
        "content-object": {"messages": [{"role": "user", "content": {"text": "hi"}}]},
        "content-list-of-strings": {"messages": [{"role": "user", "content": ["hi", "there"]}]},
        "content-part-text-object": {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": {"a": [1, {"b": None}]}}]}
            ]
        },
        "content-part-unknown-type": {
            "messages": [{"role": "user", "content": [{"type": "hologram", "data": [[[]]]}]}]
        },
        "model-number": {"model": 12},
        "model-list": {"model": ["a", "b"]},
        "model-unknown": {"model": "no-such-model-anywhere"},
        "model-traversal": {"model": "../../../etc/passwd"},
        "stream-string": {"stream": "yes"},
        "stream-number": {"stream": 1},
        "stream-options-bad": {"stream": True, "stream_options": {"include_usage": "yes"}},
        "stream-options-string": {"stream": True, "stream_options": "usage"},
        "max-tokens-string": {"max_tokens": "4"},
        "max-tokens-negative": {"max_tokens": -1},
        "max-tokens-zero": {"max_tokens": 0},
        "max-tokens-float": {"max_tokens": 1.5},
        "max-tokens-huge-int": {"max_tokens": 10**30},
        "max-completion-tokens-zero": {"max_completion_tokens": 0},
        "temperature-string": {"temperature": "hot"},
        "temperature-negative": {"temperature": -1},
        "temperature-too-high": {"temperature": 3},
        "top-p-too-high": {"top_p": 2},
        "top-p-negative": {"top_p": -0.5},
        "top-k-negative": {"top_k": -1},
        "min-p-too-high": {"min_p": 1.5},
        "n-zero": {"n": 0},
        "n-too-large": {"n": 1000},
        "stop-number": {"stop": 5},
        "stop-list-of-numbers": {"stop": [1, 2]},
        "seed-string": {"seed": "lucky"},
        "seed-float": {"seed": 1.5},
        "presence-penalty-high": {"presence_penalty": 5},
        "frequency-penalty-low": {"frequency_penalty": -3},
        "repeat-penalty-string": {"repeat_penalty": "much"},
        "user-number": {"user": 5},
        "response-format-string": {"response_format": "json"},
        "localdocs-string": {"localdocs": "yes"},
        "localdocs-number": {"localdocs": 5},
        "localdocs-list": {"localdocs": ["manuals"]},
        "localdocs-k-zero": {"localdocs": {"k": 0}},
        "localdocs-k-huge": {"localdocs": {"k": 1000}},
        "localdocs-k-string": {"localdocs": {"k": "3"}},
        "localdocs-collections-string": {"localdocs": {"collections": "manuals"}},
        "logprobs-string": {"logprobs": "maybe"},
        "top-logprobs-too-high": {"logprobs": True, "top_logprobs": 21},
        "logit-bias-string": {"logit_bias": "x"},
        "tools-string": {"tools": "x"},
        "tools-invalid-schema": {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]
        },
        "tool-choice-unknown-function": {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        "tool-choice-required-without-tools": {"tool_choice": "required"},
        "parallel-tool-calls-string": {"parallel_tool_calls": "yes"},
        "functions-string": {"functions": "x"},
    }
    for name, fields in bad_fields.items():
        body = _chat(**fields)
        if fields.get("messages", "present") is None:
            del body["messages"]
        if "max_tokens" in fields and fields["max_tokens"] is None:
            del body["max_tokens"]
        expected = (404,) if name == "model-unknown" or name == "model-traversal" else (400,)
        yield BadRequest(f"chat-{name}", "POST", CHAT, body, expected)
    # Unknown collections and traversal in chat's collection names.
    yield BadRequest(
        "chat-localdocs-unknown-collection",
        "POST",
        CHAT,
        _chat(localdocs={"collections": ["no_such_collection"]}),
        (404,),
    )
    yield BadRequest(
        "chat-localdocs-traversal-collection",
        "POST",
        CHAT,
        _chat(localdocs={"collections": ["../../etc"]}),
        (400,),
    )
    # Huge: far past the context, well under the body limit.
    yield BadRequest(
        "chat-huge-message",
        "POST",
        CHAT,
        _chat(messages=[{"role": "user", "content": HUGE_TEXT}]),
    )
    yield BadRequest(
        "chat-many-messages",
        "POST",
        CHAT,
        _chat(messages=[{"role": "user", "content": "hello there " * 20}] * 2000),
    )
    # A lone surrogate is not a Unicode scalar value: it cannot be encoded for the model.
    yield BadRequest(
        "chat-lone-surrogate",
        "POST",
        CHAT,
        b'{"max_tokens": 1, "messages": [{"role": "user", "content": "\\ud800 hi"}]}',
    )


def _completion_cases() -> Iterator[BadRequest]:
    bad_fields: dict[str, dict[str, Any]] = {
        "prompt-missing": {"prompt": None},
        "prompt-number": {"prompt": 42},
        "prompt-object": {"prompt": {"text": "hi"}},
        "prompt-list-of-floats": {"prompt": [1.5, 2.5]},
        "prompt-list-of-objects": {"prompt": [{"a": 1}]},
        "prompt-mixed-list": {"prompt": ["hi", 3]},
        "prompt-huge": {"prompt": HUGE_TEXT},
        "echo-string": {"echo": "yes"},
        "max-tokens-negative": {"max_tokens": -5},
        "max-tokens-string": {"max_tokens": "five"},
        "temperature-too-high": {"temperature": 9.5},
        "n-zero": {"n": 0},
        "model-unknown": {"model": "gpt-17-ultra"},
        "stream-string": {"stream": "no"},
        "stream-options-string": {"stream": True, "stream_options": "usage"},
        "max-completion-tokens-zero": {"max_completion_tokens": 0},
        "top-p-too-high": {"top_p": 2},
        "top-k-negative": {"top_k": -1},
        "min-p-too-high": {"min_p": 1.5},
        "stop-number": {"stop": 5},
        "seed-string": {"seed": "lucky"},
        "presence-penalty-high": {"presence_penalty": 5},
        "frequency-penalty-low": {"frequency_penalty": -3},
        "repeat-penalty-string": {"repeat_penalty": "much"},
        "user-number": {"user": 5},
        "logprobs-too-high": {"logprobs": 6},
        "suffix-number": {"suffix": 5},
        "best-of-zero": {"best_of": 0},
        "response-format-string": {"response_format": "json"},
        "logit-bias-string": {"logit_bias": "x"},
        "tools-string": {"tools": "x"},
        "functions-string": {"functions": "x"},
    }
    for name, fields in bad_fields.items():
        body = _completion(**fields)
        if fields.get("prompt", "present") is None:
            del body["prompt"]
        expected = (404,) if name == "model-unknown" else (400,)
        yield BadRequest(f"completion-{name}", "POST", COMPLETIONS, body, expected)


def _embedding_cases() -> Iterator[BadRequest]:
    bad_bodies: dict[str, dict[str, Any]] = {
        "input-missing": {},
        "input-number": {"input": 42},
        "input-object": {"input": {"text": "hi"}},
        "input-null": {"input": None},
        "input-list-of-null": {"input": [None]},
        "input-list-of-floats": {"input": [0.5, 1.5]},
        "input-mixed": {"input": ["hi", {"x": 1}]},
        "input-empty-list": {"input": []},
        "model-number": {"input": "hi", "model": 3},
        "model-unknown": {"input": "hi", "model": "no-such-embedder"},
        "input-type-number": {"input": "hi", "input_type": 5},
        "encoding-format-unknown": {"input": "hi", "encoding_format": "base32"},
        "dimensions-zero": {"input": "hi", "dimensions": 0},
        "user-number": {"input": "hi", "user": 5},
    }
    for name, body in bad_bodies.items():
        expected = (404,) if name == "model-unknown" else (400,)
        yield BadRequest(f"embeddings-{name}", "POST", EMBEDDINGS, body, expected)


def _content_type_cases() -> Iterator[BadRequest]:
    form = {"content-type": "application/x-www-form-urlencoded"}
    multipart = {"content-type": "multipart/form-data; boundary=xyz"}
    xml = {"content-type": "application/xml"}
    for path in (CHAT, COMPLETIONS, EMBEDDINGS):
        yield BadRequest(
            f"form-encoded-fields{path}",
            "POST",
            path,
            b"model=x&messages=hi&max_tokens=1",
            (400,),
            form,
        )
        yield BadRequest(
            f"multipart{path}",
            "POST",
            path,
            b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n--xyz--\r\n',
            (400,),
            multipart,
        )
        yield BadRequest(
            f"xml{path}", "POST", path, b"<request><prompt>hi</prompt></request>", (400,), xml
        )


def _oversized_cases() -> Iterator[BadRequest]:
    for method, path in (
        ("POST", CHAT),
        ("POST", COMPLETIONS),
        ("POST", EMBEDDINGS),
        ("POST", COLLECTIONS),
        ("POST", SEARCH),
    ):
        payload = json.dumps({"prompt": "x" * OVERSIZED_BYTES, "max_tokens": 1}).encode()
        yield BadRequest(f"oversized-{method}{path}", method, path, payload, (413,))


def _localdocs_cases() -> Iterator[BadRequest]:
    # Paths: outside the allowed roots, relative, traversal out of the documents folder.
    bad_paths = {
        "etc": "/etc",
        "etc-passwd": "/etc/passwd",
        "root": "/",
        "relative": "documents",
        "dot-dot-relative": "../../etc/passwd",
        "traversal-out-of-root": "{root}/../../../etc",
        "traversal-dots-only": "{root}/../..",
        "home-tilde": "~/.ssh",
        "file-url": "file:///etc/passwd",
        "nul-byte": "{root}/a\u0000b",
        "empty": "",
        "missing-inside-root": "{root}/does-not-exist-anywhere",
        "proc": "/proc/self/environ",
    }
    for name, path in bad_paths.items():
        yield BadRequest(
            f"collection-path-{name}",
            "POST",
            COLLECTIONS,
            {"name": f"bad_{name.replace('-', '_')}", "paths": [path]},
            (400,),
            needs_docs_root="{root}" in path,
        )
    bad_names = {
        "dot-dot": "..",
        "slash-traversal": "../etc",
        "slash": "a/b",
        "too-long": "a" * 65,
        "empty": "",
        "space": "a b",
        "semicolon": "a;rm -rf",
        "unicode": "名前",
        "percent": "%2e%2e",
        "newline": "a\nb",
        "number": 42,
        "null": None,
        "list": ["a"],
    }
    for name, value in bad_names.items():
        yield BadRequest(
            f"collection-name-{name}",
            "POST",
            COLLECTIONS,
            {"name": value, "paths": ["{root}"]},
            (400,),
            needs_docs_root=True,
        )
    yield BadRequest("collection-name-missing", "POST", COLLECTIONS, {"paths": ["/tmp"]})
    yield BadRequest("collection-paths-missing", "POST", COLLECTIONS, {"name": "nopaths"})
    yield BadRequest("collection-paths-empty", "POST", COLLECTIONS, {"name": "x", "paths": []})
    yield BadRequest("collection-paths-string", "POST", COLLECTIONS, {"name": "x", "paths": "/tmp"})
    yield BadRequest(
        "collection-paths-numbers", "POST", COLLECTIONS, {"name": "x", "paths": [1, 2]}
    )
    # Unknown collections and traversal in the URL.
    unknown = "no_such_collection"
    yield BadRequest("get-unknown-collection", "GET", f"{COLLECTIONS}/{unknown}", None, (404,))
    yield BadRequest(
        "files-unknown-collection", "GET", f"{COLLECTIONS}/{unknown}/files", None, (404,)
    )
    yield BadRequest(
        "delete-unknown-collection", "DELETE", f"{COLLECTIONS}/{unknown}", None, (404,)
    )
    yield BadRequest(
        "reindex-unknown-collection", "POST", f"{COLLECTIONS}/{unknown}/reindex", None, (404,)
    )
    yield BadRequest(
        "add-paths-unknown-collection",
        "POST",
        f"{COLLECTIONS}/{unknown}/paths",
        {"paths": ["/tmp"]},
        (400, 404),
    )
    yield BadRequest(
        "add-paths-empty", "POST", f"{COLLECTIONS}/{unknown}/paths", {"paths": []}, (400,)
    )
    for name, segment in {
        "encoded-traversal": "..%2F..%2Fetc",
        "double-encoded": "%252e%252e",
        "too-long": "b" * 200,
        "dots": "...",
        "encoded-nul": "a%00b",
    }.items():
        yield BadRequest(
            f"get-collection-{name}", "GET", f"{COLLECTIONS}/{segment}", None, (400, 404)
        )
    # Search.
    yield BadRequest("search-empty-query", "POST", SEARCH, {"query": "", "collections": [unknown]})
    yield BadRequest("search-query-missing", "POST", SEARCH, {"collections": [unknown]})
    yield BadRequest("search-query-number", "POST", SEARCH, {"query": 7})
    yield BadRequest("search-query-too-long", "POST", SEARCH, {"query": "q" * 20_000})
    yield BadRequest("search-k-zero", "POST", SEARCH, {"query": "hi", "k": 0, "collections": []})
    yield BadRequest("search-k-negative", "POST", SEARCH, {"query": "hi", "k": -3})
    yield BadRequest("search-k-huge", "POST", SEARCH, {"query": "hi", "k": 10**6})
    yield BadRequest("search-k-string", "POST", SEARCH, {"query": "hi", "k": "three"})
    yield BadRequest(
        "search-collections-string", "POST", SEARCH, {"query": "hi", "collections": "x"}
    )
    yield BadRequest(
        "search-unknown-collection",
        "POST",
        SEARCH,
        {"query": "hi", "collections": [unknown]},
        (404,),
    )
    yield BadRequest(
        "search-traversal-collection", "POST", SEARCH, {"query": "hi", "collections": ["../x"]}
    )
    yield BadRequest("active-missing", "PUT", ACTIVE, {})
    yield BadRequest("active-string", "PUT", ACTIVE, {"collections": "x"})
    yield BadRequest("active-unknown", "PUT", ACTIVE, {"collections": [unknown]}, (400, 404))
    yield BadRequest("active-traversal", "PUT", ACTIVE, {"collections": ["../../x"]}, (400, 404))


def _openai_retrieval_cases() -> Iterator[BadRequest]:
    """One malformed field at a time on the Files/Vector Stores/Responses routes (#26); the ids
    in the URL are well formed but unknown, so only the body can make the 400."""
    store = f"{VECTOR_STORES}/vs_bad_input_none"
    bad_store_fields: dict[str, dict[str, Any]] = {
        "name-number": {"name": 5},
        "name-too-long": {"name": "n" * 300},
        "file-ids-string": {"file_ids": "file-abc"},
        "metadata-list": {"metadata": ["a"]},
        "metadata-value-number": {"metadata": {"k": 1}},
        "expires-after-string": {"expires_after": "7 days"},
        "chunking-strategy-string": {"chunking_strategy": "auto"},
    }
    for name, body in bad_store_fields.items():
        yield BadRequest(f"vector-store-create-{name}", "POST", VECTOR_STORES, body)
        if set(body) <= {"name", "metadata", "expires_after"}:
            yield BadRequest(f"vector-store-modify-{name}", "POST", store, body)
    for name, body in {
        "query-missing": {},
        "query-blank": {"query": "  "},
        "query-empty-list": {"query": []},
        "max-num-results-zero": {"query": "q", "max_num_results": 0},
        "max-num-results-huge": {"query": "q", "max_num_results": 51},
        "filters-string": {"query": "q", "filters": "a=b"},
        "ranking-options-string": {"query": "q", "ranking_options": "best"},
        "rewrite-query-string": {"query": "q", "rewrite_query": "yes please"},
    }.items():
        yield BadRequest(f"vector-store-search-{name}", "POST", f"{store}/search", body)
    for name, body in {
        "file-id-missing": {},
        "file-id-empty": {"file_id": ""},
        "attributes-list": {"file_id": "file-x", "attributes": [1]},
        "chunking-strategy-number": {"file_id": "file-x", "chunking_strategy": 3},
    }.items():
        yield BadRequest(f"vector-store-file-{name}", "POST", f"{store}/files", body)
    yield BadRequest(
        "vector-store-file-update-attributes-string",
        "POST",
        f"{store}/files/file-bad_input_none",
        {"attributes": "a=b"},
    )
    # Neither file_ids nor files: refused, after or before the store is looked up.
    yield BadRequest("vector-store-batch-empty", "POST", f"{store}/file_batches", {}, (400, 404))
    for name, body in {
        "file-ids-empty": {"file_ids": []},
        "files-string": {"files": "file-x"},
        "attributes-string": {"file_ids": ["file-x"], "attributes": "a"},
        "chunking-strategy-list": {"file_ids": ["file-x"], "chunking_strategy": []},
    }.items():
        yield BadRequest(f"vector-store-batch-{name}", "POST", f"{store}/file_batches", body)
    base = {"model": "x", "input": "hi"}
    for name, body in {
        "model-missing": {"input": "hi"},
        "model-empty": {**base, "model": ""},
        "input-missing": {"model": "x"},
        "input-empty-list": {**base, "input": []},
        "instructions-number": {**base, "instructions": 3},
        "tools-unknown-type": {**base, "tools": [{"type": "web_search"}]},
        "tool-choice-bogus": {**base, "tool_choice": "sometimes"},
        "include-unknown": {**base, "include": ["reasoning.encrypted_content"]},
        "max-output-tokens-zero": {**base, "max_output_tokens": 0},
        "temperature-high": {**base, "temperature": 3},
        "top-p-high": {**base, "top_p": 1.5},
        "metadata-list": {**base, "metadata": ["a"]},
        "stream-string": {**base, "stream": "yes please"},
        "previous-response-id-number": {**base, "previous_response_id": 5},
        "previous-response-id-empty": {**base, "previous_response_id": ""},
        "store-string": {**base, "store": "always"},
        "tools-function-no-name": {**base, "tools": [{"type": "function"}]},
        "tools-function-name-spaces": {**base, "tools": [{"type": "function", "name": "a b"}]},
        "tools-function-parameters-list": {
            **base,
            "tools": [{"type": "function", "name": "f", "parameters": []}],
        },
        "tools-function-strict-string": {
            **base,
            "tools": [{"type": "function", "name": "f", "strict": "yes"}],
        },
        "tools-function-description-number": {
            **base,
            "tools": [{"type": "function", "name": "f", "description": 5}],
        },
        "tool-choice-function-unknown": {
            **base,
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "function", "name": "g"},
        },
        "tool-choice-type-unknown": {**base, "tool_choice": {"type": "web_search"}},
        "input-item-type-unknown": {**base, "input": [{"type": "bogus"}]},
        "input-function-call-no-call-id": {
            **base,
            "input": [{"type": "function_call", "name": "f", "arguments": "{}"}],
        },
        "input-function-call-arguments-object": {
            **base,
            "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}],
        },
        "input-function-call-output-number": {
            **base,
            "input": [{"type": "function_call_output", "call_id": "c", "output": 5}],
        },
    }.items():
        yield BadRequest(f"responses-{name}", "POST", RESPONSES, body)
    unknown = {**base, "previous_response_id": "resp_bad_input_none"}
    yield BadRequest("responses-previous-response-id-unknown", "POST", RESPONSES, unknown, (404,))
    for method in ("GET", "DELETE"):
        yield BadRequest(
            f"responses-{method.lower()}-malformed-id", method, f"{RESPONSES}/x", None, (400, 404)
        )
        stored = f"{RESPONSES}/resp_bad_input_none"
        yield BadRequest(f"responses-{method.lower()}-unknown-id", method, stored, None, (404,))


def _rerank_cases() -> Iterator[BadRequest]:
    base = {"query": "q", "documents": ["a"]}
    for name, body in {
        "model-empty": {**base, "model": ""},
        "query-missing": {"documents": ["a"]},
        "query-empty": {**base, "query": ""},
        "documents-missing": {"query": "q"},
        "documents-empty": {**base, "documents": []},
        "documents-string": {**base, "documents": "a"},
        "top-n-zero": {**base, "top_n": 0},
        "return-documents-string": {**base, "return_documents": "yes please"},
    }.items():
        yield BadRequest(f"rerank-{name}", "POST", RERANK, body)
    yield BadRequest("rerank-unknown-model", "POST", RERANK, {**base, "model": "nope"}, (404,))


def _route_cases() -> Iterator[BadRequest]:
    yield BadRequest("unknown-route", "GET", "/v1/nothing-here", None, (404,))
    yield BadRequest("unknown-version", "GET", "/v2/models", None, (404,))
    yield BadRequest("unknown-model", "GET", "/v1/models/no-such-model", None, (404,))
    yield BadRequest(
        "unknown-model-traversal", "GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", None, (404,)
    )
    yield BadRequest("root-traversal", "GET", "/../../etc/passwd", None, (400, 404))
    yield BadRequest("unknown-localdocs-route", "GET", "/v1/localdocs/nothing", None, (404,))
    yield BadRequest("get-chat", "GET", CHAT, None, (405,))
    yield BadRequest("put-chat", "PUT", CHAT, _chat(), (405,))
    yield BadRequest("delete-completions", "DELETE", COMPLETIONS, None, (405,))
    yield BadRequest("get-embeddings", "GET", EMBEDDINGS, None, (405,))
    yield BadRequest("post-models", "POST", "/v1/models", {}, (405,))
    yield BadRequest("delete-models", "DELETE", "/v1/models", None, (405,))
    yield BadRequest("post-health", "POST", "/health", {}, (405,))
    yield BadRequest("put-search", "PUT", SEARCH, {"query": "hi"}, (404, 405))


def bad_requests() -> list[BadRequest]:
    cases = [
        *_bad_json_cases(),
        *_chat_field_cases(),
        *_completion_cases(),
        *_embedding_cases(),
        *_content_type_cases(),
        *_oversized_cases(),
        *_localdocs_cases(),
        *_openai_retrieval_cases(),
        *_rerank_cases(),
        *_route_cases(),
    ]
    ids = [case.case_id for case in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


BAD_REQUESTS = bad_requests()


def _documented_body_fields(document: dict[str, Any]) -> dict[str, set[str]]:
    """{path: top-level fields} of every operation the gateway documents with a JSON body."""
    schemas = document.get("components", {}).get("schemas", {})
    fields: dict[str, set[str]] = {}
    for path, operations in document["paths"].items():
        if path.startswith(ANTHROPIC_ROUTES):
            continue
        for operation in operations.values():
            schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
            )
            while "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            if schema.get("properties"):
                fields.setdefault(path, set()).update(schema["properties"])
    return fields


def _matches(template: str, path: str) -> bool:
    """Whether a concrete path is an instance of a documented one ("/collections/{name}")."""
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


def _fields_under_test(case: BadRequest) -> set[str]:
    """The body fields a case makes bad: those it sets to something other than the valid
    defaults every case of its route carries, or leaves out."""
    if not isinstance(case.body, dict):
        return set()
    defaults = {CHAT: _chat(), COMPLETIONS: _completion()}.get(case.path, {})
    changed = {name for name, value in case.body.items() if defaults.get(name, object()) != value}
    return changed | (set(defaults) - set(case.body))


def test_every_documented_body_field_has_a_bad_value_case(gateway: httpx.Client) -> None:
    """The table follows the live schema: a field the gateway documents (today or after a
    change) without a malformed-value case here fails, instead of going silently untested."""
    documented = _documented_body_fields(gateway.get("/openapi.json").json())
    assert {CHAT, COMPLETIONS, EMBEDDINGS} <= set(documented), sorted(documented)
    covered: dict[str, set[str]] = {}
    for case in BAD_REQUESTS:
        path = next((t for t in documented if _matches(t, case.path)), case.path)
        covered.setdefault(path, set()).update(_fields_under_test(case))
    missing = {
        path: sorted(fields - covered.get(path, set())) for path, fields in documented.items()
    }
    assert not any(missing.values()), f"documented fields without a bad-value case: {missing}"


# -- checking one answer -----------------------------------------------------------------------


def forbidden_leaks(stack: Stack) -> list[str]:
    """Strings no error message may contain: stack traces and internal addresses."""
    ports = stack.ports
    internal = [
        ports.inference,
        ports.localdocs,
        ports.weaviate,
        ports.weaviate_grpc,
        ports.tika,
        ports.redis,
    ]
    return ["Traceback", 'File "', "http://", "https://"] + [f":{port}" for port in internal]


def assert_envelope(response: httpx.Response, leaks: list[str]) -> dict[str, Any]:
    """The OpenAI envelope with exactly its four fields, and nothing internal in the message."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers.get("content-type"),
        response.text[:300],
    )
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    for leak in leaks:
        assert leak not in error["message"], (leak, error["message"])
    return error


def _materialize(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace("{root}", root)
    if isinstance(value, list):
        return [_materialize(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _materialize(item, root) for key, item in value.items()}
    return value


def send(client: httpx.Client, case: BadRequest, root: str) -> httpx.Response:
    headers = dict(case.headers)
    if case.body is None:
        content = None
    elif isinstance(case.body, bytes):
        content = case.body
    else:
        body = _materialize(case.body, root) if case.needs_docs_root else case.body
        content = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    return client.request(case.method, case.path, content=content, headers=headers)


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    # A fresh connection per request: a server that drops a connection after one bad request
    # must not make the next case fail in its place.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(
        base_url=stack.url("gateway"), timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:
        yield client


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case.case_id for case in BAD_REQUESTS])
def test_bad_request_gets_the_error_envelope(
    case: BadRequest, gateway: httpx.Client, stack: Stack
) -> None:
    response = send(gateway, case, str(stack.docs_root))
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.status_code in case.expected, (response.status_code, response.text[:500])
    assert_envelope(response, forbidden_leaks(stack))
    if response.status_code == 405:
        assert "allow" in response.headers


def test_oversized_chunked_body_is_refused_while_reading(
    gateway: httpx.Client, stack: Stack
) -> None:
    """No Content-Length to trust: the limit must hold while the body streams in."""

    def chunks() -> Iterator[bytes]:
        yield b'{"max_tokens": 1, "prompt": "'
        for _ in range(OVERSIZED_BYTES // (1024 * 1024) + 1):
            yield b"y" * (1024 * 1024)
        yield b'"}'

    try:
        response = gateway.post(COMPLETIONS, content=chunks())
    except httpx.WriteError:
        # Answering 413 and closing before the client finished sending is allowed; then the
        # answer may not be readable. Retry with a body the client can finish sending first.
        response = gateway.post(COMPLETIONS, content=b"".join(chunks()))
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert_envelope(response, forbidden_leaks(stack))


def test_symlink_out_of_the_allowed_roots_is_refused(gateway: httpx.Client, stack: Stack) -> None:
    link = stack.docs_root / "bad-input-escape-link"
    if not link.is_symlink():
        link.symlink_to("/etc")
    response = gateway.post(COLLECTIONS, json={"name": "bad_symlink", "paths": [str(link)]})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert_envelope(response, forbidden_leaks(stack))
    gone = gateway.get(f"{COLLECTIONS}/bad_symlink")
    assert gone.status_code == 404, gone.text[:300]
