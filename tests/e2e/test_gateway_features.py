"""OpenAI generation features and LocalDocs retrieval through the gateway, on the real stack.

The inference module tests these features on the inference service alone; here each request
goes through the gateway (its validation, its relay and its LocalDocs step), so a field the
gateway drops or a stream it rewrites wrongly fails here. Greedy or seeded sampling keeps
every check deterministic; every check compares outputs, never timings.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT = "Gemma 3 270M"
EMBED = "all-MiniLM-L6-v2"
HTTP = httpx.Timeout(180.0, connect=5.0)
READY_TIMEOUT_S = 180.0
HELLO = [{"role": "user", "content": "Say hello."}]
FACT = "The Quillmoth lantern on Varnel island burns amber whale-free oil every winter.\n"
QUESTION = "What does the Quillmoth lantern burn?"


@pytest.fixture(scope="module")
def api(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{stack.url('gateway')}/v1", api_key="unused", timeout=180, max_retries=0
    )


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), timeout=HTTP) as client:
        yield client


# -- generation ---------------------------------------------------------------------------------


def test_json_schema_reply_matches_the_schema(api: openai.OpenAI) -> None:
    # An enum the free-running model would not produce verbatim: only constrained decoding
    # (the schema reaching llama.cpp's grammar through the gateway) yields this exact object.
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["cerulean", "vermilion"]}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    reply = api.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What colour is the sky?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        max_tokens=40,
        temperature=0,
    )
    content = reply.choices[0].message.content or ""
    parsed = json.loads(content)
    assert set(parsed) == {"colour"} and parsed["colour"] in ("cerulean", "vermilion"), content


def test_stop_string_cuts_the_reply(api: openai.OpenAI) -> None:
    prompt = "1, 2, 3, 4, 5, 6, 7, 8,"
    free = api.completions.create(model=CHAT, prompt=prompt, max_tokens=8, temperature=0)
    text = free.choices[0].text
    assert len(text.strip()) > 2, text
    stop = text.strip()[1:3]
    cut = api.completions.create(
        model=CHAT, prompt=prompt, max_tokens=8, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop", cut.choices[0]
    assert stop not in cut.choices[0].text
    assert text.startswith(cut.choices[0].text)
    # Chat too: the same stop ends a chat reply early.
    chat_free = api.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=12, temperature=0
    )
    words = (chat_free.choices[0].message.content or "").split()
    assert len(words) >= 2, chat_free.choices[0].message.content
    chat_cut = api.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=12, temperature=0, stop=[words[1]]
    )
    assert chat_cut.choices[0].finish_reason == "stop"
    assert words[1] not in (chat_cut.choices[0].message.content or "")


def _seeded(api: openai.OpenAI, seed: int, n: int = 1) -> list[str]:
    reply = api.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=12, temperature=1.2, seed=seed, n=n
    )
    assert [choice.index for choice in reply.choices] == list(range(n))
    return [choice.message.content or "" for choice in reply.choices]


def test_seed_repeats_and_another_seed_changes_the_text(api: openai.OpenAI) -> None:
    first = _seeded(api, 1234)
    assert _seeded(api, 1234) == first
    assert _seeded(api, 98765) != first


def test_n_choices_differ_and_repeat_with_the_seed(api: openai.OpenAI) -> None:
    choices = _seeded(api, 4242, n=3)
    assert len(set(choices)) == 3, choices
    assert _seeded(api, 4242, n=3) == choices


def test_logprobs_are_returned_for_every_token(api: openai.OpenAI) -> None:
    reply = api.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content, reply.choices[0]
    assert reply.usage is not None
    assert len(logprobs.content) == reply.usage.completion_tokens
    for item in logprobs.content:
        assert item.logprob <= 0.0
        assert len(item.top_logprobs) == 2
        # Greedy: the chosen token is the most likely one.
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-4)
    assert "".join(item.token for item in logprobs.content) == reply.choices[0].message.content


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_match_sentence_transformers(http: httpx.Client) -> None:
    """The reference vectors were made with sentence-transformers (tests/data, committed)."""
    reference = json.loads(
        (REPO_ROOT / "tests" / "data" / "minilm-l6-v2-embeddings.json").read_text("utf-8")
    )
    # OpenAI's API refuses an empty input string; that item is for the inference service.
    items = [item for item in reference["items"] if item["text"]]
    response = http.post(
        "/v1/embeddings", json={"input": [i["text"] for i in items], "model": EMBED}
    )
    assert response.status_code == 200, response.text[:300]
    data = response.json()["data"]
    assert [entry["index"] for entry in data] == list(range(len(items)))
    for item, entry in zip(items, data, strict=True):
        ours, theirs = entry["embedding"], item["embedding"]
        dot = sum(a * b for a, b in zip(ours, theirs, strict=True))
        cosine = dot / math.sqrt(sum(a * a for a in ours) * sum(b * b for b in theirs))
        assert cosine >= 0.999, (item["text"][:40], cosine)


# -- LocalDocs through chat ---------------------------------------------------------------------


def _wait_ready(http: httpx.Client, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = http.get(f"/v1/localdocs/collections/{name}").json()
        if view.get("state") != "indexing" and view.get("files_total"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"collection {name} not ready after {READY_TIMEOUT_S:.0f}s: {view}")


@pytest.fixture(scope="module")
def fact_collection(stack: Stack, http: httpx.Client) -> Iterator[tuple[str, Path]]:
    name = f"features-{uuid.uuid4().hex[:8]}"
    folder = stack.docs_root / name
    folder.mkdir(parents=True)
    note = folder / "quillmoth.txt"
    note.write_text(FACT, encoding="utf-8")
    created = http.post("/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]})
    assert created.status_code == 201, created.text[:300]
    view = _wait_ready(http, name)
    assert view["state"] == "ready" and view["files_indexed"] == 1, view
    yield name, note
    http.delete(f"/v1/localdocs/collections/{name}")


def _stream_chat(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()[:300]
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", events[-3:]
    return [json.loads(event) for event in events[:-1]]


def test_streamed_chat_carries_the_references_in_its_first_chunk(
    http: httpx.Client, fact_collection: tuple[str, Path]
) -> None:
    name, note = fact_collection
    chunks = _stream_chat(
        http,
        {
            "model": CHAT,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 6,
            "temperature": 0,
            "localdocs": {"collections": [name], "k": 2},
        },
    )
    references = chunks[0]["choices"][0].get("references")
    assert references, chunks[0]
    assert references[0]["path"] == str(note) and references[0]["collection"] == name
    assert "amber whale-free oil" in references[0]["text"]
    # The rest of the stream is the usual one: content deltas and a finish_reason.
    assert any(c["choices"] and c["choices"][0].get("finish_reason") for c in chunks), chunks[-2:]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _chat_references(http: httpx.Client, **fields: Any) -> list[dict[str, Any]] | None:
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 2,
        "temperature": 0,
        **fields,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text[:300]
    return response.json()["choices"][0].get("references")


def test_chat_without_localdocs_uses_the_active_collections(
    http: httpx.Client, fact_collection: tuple[str, Path]
) -> None:
    name, note = fact_collection
    previous = http.get("/v1/localdocs/active").json()["collections"]
    try:
        assert http.put("/v1/localdocs/active", json={"collections": [name]}).status_code == 200
        references = _chat_references(http)
        assert references, "a chat with no localdocs field ignored the active collections"
        assert {ref["collection"] for ref in references} == {name}, references
        assert references[0]["path"] == str(note)

        assert http.put("/v1/localdocs/active", json={"collections": []}).status_code == 200
        assert not _chat_references(http)
        # An explicit list still wins over the (now empty) active set.
        assert _chat_references(http, localdocs={"collections": [name]})
    finally:
        http.put("/v1/localdocs/active", json={"collections": previous})
