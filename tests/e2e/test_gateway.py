"""The gateway against the real stack: official OpenAI clients, GPT4All's shapes, the seed's curl.

Nothing is mocked: every request goes through the gateway to the real inference service (llama.cpp
with the default Gemma 3 270M model) and the real localdocs service.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

DEFAULT_CHAT_MODEL = "Gemma 3 270M"
# Few tokens: the machine is shared and the tests check behaviour, not prose.
SMALL = 8


def gateway(stack: Stack) -> str:
    return stack.url("gateway")


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway(stack)}/v1", api_key="not-needed", timeout=120)


def hello() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Say hello."}]


# -- the official OpenAI client ------------------------------------------------------------------


def test_openai_models_list_and_retrieve(stack: Stack) -> None:
    api = client(stack)
    models = api.models.list().data
    kinds = {model.id: (model.model_extra or {}).get("kind") for model in models}
    assert kinds.get(DEFAULT_CHAT_MODEL) == "chat"
    assert "embedding" in kinds.values()
    assert api.models.retrieve(DEFAULT_CHAT_MODEL).id == DEFAULT_CHAT_MODEL
    # The file name resolves to the display name too.
    filename = next(m for m in models if m.id == DEFAULT_CHAT_MODEL).model_extra["filename"]
    assert api.models.retrieve(filename).id == DEFAULT_CHAT_MODEL
    with pytest.raises(openai.NotFoundError) as raised:
        api.models.retrieve("no-such-model")
    assert DEFAULT_CHAT_MODEL in str(raised.value)


def test_openai_chat_sync(stack: Stack) -> None:
    reply = client(stack).chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=hello(), max_tokens=SMALL, temperature=0
    )
    assert reply.model == DEFAULT_CHAT_MODEL
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= SMALL


def test_openai_chat_streamed(stack: Stack) -> None:
    stream = client(stack).chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=hello(),
        max_tokens=SMALL,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    first_choice = chunks[0].choices[0]
    assert "references" in (first_choice.model_extra or {})  # GPT4All's field, first chunk
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_openai_async_chat_and_completion(stack: Stack) -> None:
    async def run() -> tuple[Any, Any]:
        api = openai.AsyncOpenAI(base_url=f"{gateway(stack)}/v1", api_key="x", timeout=120)
        try:
            chat = await api.chat.completions.create(
                model=DEFAULT_CHAT_MODEL, messages=hello(), max_tokens=SMALL
            )
            text = await api.completions.create(
                model=DEFAULT_CHAT_MODEL, prompt="The capital of France is", max_tokens=SMALL
            )
            return chat, text
        finally:
            await api.close()

    chat, text = asyncio.run(run())
    assert chat.choices[0].message.content
    assert text.object == "text_completion"
    assert text.choices[0].text


def test_openai_completion_streamed(stack: Stack) -> None:
    stream = client(stack).completions.create(
        model=DEFAULT_CHAT_MODEL, prompt="One, two, three,", max_tokens=SMALL, stream=True
    )
    text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    assert text


def test_openai_embeddings(stack: Stack) -> None:
    api = client(stack)
    embedding_model = next(
        m.id for m in api.models.list().data if (m.model_extra or {}).get("kind") == "embedding"
    )
    result = api.embeddings.create(input=["first text", "second text"], model=embedding_model)
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 0
    assert result.data[0].embedding != result.data[1].embedding
    # `model` is optional on our server: the default embedding model answers.
    raw = httpx.post(f"{gateway(stack)}/v1/embeddings", json={"input": "hello"}, timeout=60)
    assert raw.status_code == 200, raw.text
    assert len(raw.json()["data"][0]["embedding"]) == len(result.data[0].embedding)


def test_openai_errors_are_typed(stack: Stack) -> None:
    api = client(stack)
    with pytest.raises(openai.NotFoundError) as missing:
        api.chat.completions.create(model="gpt-4o", messages=hello(), max_tokens=SMALL)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=hello(),
            max_tokens=SMALL,
            temperature="hot",  # type: ignore[arg-type]
        )


# -- raw HTTP: GPT4All's exact shapes and our error envelope -------------------------------------


def test_gpt4all_chat_shape(stack: Stack) -> None:
    response = httpx.post(
        f"{gateway(stack)}/v1/chat/completions",
        json={"model": DEFAULT_CHAT_MODEL, "messages": hello(), "max_tokens": SMALL},
        timeout=120,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["id"]
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["references"] is None  # no collections are active by default
    assert "logprobs" in choice
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_gpt4all_model_entry_shape(stack: Stack) -> None:
    listing = httpx.get(f"{gateway(stack)}/v1/models", timeout=30).json()
    entry = next(e for e in listing["data"] if e["id"] == DEFAULT_CHAT_MODEL)
    assert entry["object"] == "model"
    assert entry["root"] == DEFAULT_CHAT_MODEL and entry["parent"] is None
    assert isinstance(entry["permissions"], list) and entry["permissions"]


def test_error_envelopes(stack: Stack) -> None:
    url = gateway(stack)
    cases = [
        (httpx.get(f"{url}/v1/chat/completions"), 405, "Only POST requests are accepted."),
        (httpx.post(f"{url}/v1/chat/completions", content=b"{nope"), 400, "error parsing"),
        (httpx.get(f"{url}/v1/nothing"), 404, None),
        (
            httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": DEFAULT_CHAT_MODEL, "messages": "not a list"},
            ),
            400,
            None,
        ),
    ]
    for response, status, message in cases:
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if message:
            assert message in error["message"]


def test_seed_curl_example(stack: Stack) -> None:
    # As in GPT4All's documentation: curl -d with no Content-Type (so: form-encoded label).
    body = json.dumps(
        {
            "model": DEFAULT_CHAT_MODEL,
            "messages": [{"role": "user", "content": "Who is Lionel Messi?"}],
            "max_tokens": 16,
            "temperature": 0.28,
        }
    )
    completed = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{gateway(stack)}/v1/chat/completions", "-d", body],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    reply = json.loads(completed.stdout)
    assert reply["model"] == DEFAULT_CHAT_MODEL
    assert reply["choices"][0]["message"]["content"].strip()


def test_health_and_metrics(stack: Stack) -> None:
    health = httpx.get(f"{gateway(stack)}/health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    assert body["inference"][0]["state"] == "up"
    assert body["localdocs"]["state"] == "up"
    assert body["status"] == "ok"


def metric_values(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the gateway's /metrics, by name and sorted labels."""
    text = httpx.get(f"{gateway(stack)}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_a_chat_request(stack: Stack) -> None:
    """One chat moves the request counter, the latency histogram, the per-replica counter and
    the token counter by exactly what it did; the names alone would pass with dead counters."""
    route = (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200"))
    before = metric_values(stack)
    reply = client(stack).chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=hello(), max_tokens=SMALL, temperature=0
    )
    assert reply.usage is not None and reply.usage.completion_tokens >= 1
    after = metric_values(stack)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert moved("gateway_requests_total", route) == 1, route
    latency = (("route", "/v1/chat/completions"),)
    assert moved("gateway_request_duration_seconds_count", latency) == 1
    assert moved("gateway_request_duration_seconds_sum", latency) > 0
    replicas = [labels for name, labels in after if name == "gateway_inference_requests_total"]
    assert sum(moved("gateway_inference_requests_total", labels) for labels in replicas) == 1
    model = (("model", DEFAULT_CHAT_MODEL),)
    assert moved("gateway_tokens_generated_total", model) == reply.usage.completion_tokens


def test_cors_preflight(stack: Stack) -> None:
    response = httpx.options(
        f"{gateway(stack)}/v1/chat/completions",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


# -- LocalDocs through the gateway ----------------------------------------------------------------


def _wait_ready(url: str, name: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/v1/localdocs/collections/{name}", timeout=30).json()
        if state.get("state") in {"ready", "error"}:
            return state
        time.sleep(1)
    raise AssertionError(f"collection {name} never became ready: {state}")


def test_localdocs_chat_references(stack: Stack) -> None:
    url = gateway(stack)
    folder = stack.docs_root / "gateway-e2e"
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / "zorblax.txt"
    note.write_text(
        "The Zorblax reactor on Kepler station runs on purple crystals harvested in spring.\n"
    )
    created = httpx.post(
        f"{url}/v1/localdocs/collections",
        json={"name": "gateway-e2e", "paths": [str(folder)]},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    assert _wait_ready(url, "gateway-e2e")["state"] == "ready"

    question = "What does the Zorblax reactor run on?"
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": DEFAULT_CHAT_MODEL,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": SMALL,
            "localdocs": {"collections": ["gateway-e2e"], "k": 2},
        },
        timeout=180,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-localdocs-status"] == "ok"
    references = response.json()["choices"][0]["references"]
    assert references and references[0]["path"] == str(note)
    assert "purple crystals" in references[0]["text"]
    assert references[0]["collection"] == "gateway-e2e"

    # The official client reaches the same through extra_body.
    reply = client(stack).chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=[{"role": "user", "content": question}],
        max_tokens=SMALL,
        extra_body={"localdocs": {"collections": ["gateway-e2e"]}},
    )
    assert reply.choices[0].model_extra["references"][0]["file"] == "zorblax.txt"

    missing = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": DEFAULT_CHAT_MODEL,
            "messages": [{"role": "user", "content": question}],
            "localdocs": {"collections": ["never-made"]},
        },
        timeout=60,
    )
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_localdocs_down_degrades_chat(stack: Stack) -> None:
    url = gateway(stack)
    stack.stop_service("localdocs")
    try:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": DEFAULT_CHAT_MODEL,
                "messages": hello(),
                "max_tokens": SMALL,
                "localdocs": {"collections": ["anything"]},
            },
            timeout=120,
        )
        assert response.status_code == 200
        assert response.headers["x-localdocs-status"] == "unavailable"
        assert response.json()["choices"][0]["references"] is None
        health = httpx.get(f"{url}/health", timeout=30)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
    finally:
        stack.start_service("localdocs")
        _wait_gateway_healthy(url)


def test_inference_down_is_503_not_hang(stack: Stack) -> None:
    url = gateway(stack)
    stack.stop_service("inference")
    try:
        started = time.monotonic()
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": DEFAULT_CHAT_MODEL, "messages": hello(), "max_tokens": SMALL},
            timeout=30,
        )
        assert time.monotonic() - started < 5
        assert response.status_code == 503
        assert "retry-after" in response.headers
        try:
            urllib.request.urlopen(f"{url}/health", timeout=30)
            raise AssertionError("health answered 200 with inference down")
        except urllib.error.HTTPError as down:
            assert down.code == 503
    finally:
        stack.start_service("inference")
        _wait_gateway_healthy(url)


def _wait_gateway_healthy(url: str, timeout: float = 60) -> None:
    """/health re-checks every upstream, so the next test finds the gateway's view current."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=30)
        if health.status_code == 200 and health.json()["status"] == "ok":
            return
        time.sleep(0.5)
    raise AssertionError("the gateway did not become healthy again")
