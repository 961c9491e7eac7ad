"""The inference service's model lifecycle routes on the real app and model (nothing faked):
list loaded with memory, load with an idle TTL, unload, and the errors of each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserver_inference.app import create_app
from llmserver_inference.settings import InferenceSettings

MODELS = Path(__file__).resolve().parents[3] / "models"
GEMMA = "Gemma 3 270M"

pytestmark = pytest.mark.skipif(
    not (MODELS / "gemma-3-270m-q4_k_m.gguf").exists(), reason="the default chat model is absent"
)


@pytest.fixture()
def client() -> Iterator[TestClient]:
    settings = InferenceSettings(models_dir=MODELS, preload_defaults=False, slots=1)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def loaded(client: TestClient) -> dict[str, dict]:
    answer = client.get("/v1/loaded_models")
    assert answer.status_code == 200
    return {m["id"]: m for m in answer.json()["data"]}


def test_load_list_unload(client: TestClient) -> None:
    assert loaded(client) == {}
    answer = client.post(f"/v1/models/{GEMMA}/load")
    assert answer.status_code == 200, answer.text
    model = answer.json()
    assert model["id"] == GEMMA and model["kind"] == "chat"
    assert model["size_bytes"] > 0 and model["ttl"] is None and model["expires_in"] is None
    assert loaded(client)[GEMMA]["size_bytes"] == model["size_bytes"]

    answer = client.post(f"/v1/models/{GEMMA}/unload")
    assert answer.json() == {"id": GEMMA, "object": "model", "unloaded": True}
    assert loaded(client) == {}
    # Unloading again is no error: there was nothing to do.
    assert client.post(f"/v1/models/{GEMMA}/unload").json()["unloaded"] is False

    # A chat loads it again on demand.
    chat = client.post(
        "/v1/chat/completions",
        json={"model": GEMMA, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    )
    assert chat.status_code == 200, chat.text
    assert GEMMA in loaded(client)


def test_a_model_loaded_with_a_ttl_unloads_itself_once_idle(client: TestClient) -> None:
    answer = client.post(f"/v1/models/{GEMMA}/load", json={"ttl": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ttl"] == 1
    assert 0 < answer.json()["expires_in"] <= 1
    deadline = time.monotonic() + 10
    while GEMMA in loaded(client):
        assert time.monotonic() < deadline, "the model outlived its TTL"
        time.sleep(0.2)


def test_a_busy_model_is_not_unloaded(client: TestClient) -> None:
    assert client.post(f"/v1/models/{GEMMA}/load", json={"ttl": 1}).status_code == 200
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": GEMMA,
            "messages": [{"role": "user", "content": "Count from one to one hundred."}],
            "max_tokens": 400,
            "stream": True,
        },
    ) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        answer = client.post(f"/v1/models/{GEMMA}/unload")
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "model_busy"
        # Past its TTL while generating: still loaded, still streaming.
        time.sleep(1.5)
        assert loaded(client)[GEMMA]["busy"] is True
        assert next(line for line in lines if line.startswith("data:")) != "data: [DONE]"
    # The client gone, the model idle: now its TTL runs out.
    deadline = time.monotonic() + 10
    while GEMMA in loaded(client):
        assert time.monotonic() < deadline, "the model outlived its TTL"
        time.sleep(0.2)


@pytest.mark.parametrize(
    "body",
    [{"ttl": 0}, {"ttl": "soon"}, {"ttl": 10**9}, {"keep": 1}],
)
def test_a_bad_load_body_is_a_400_naming_the_field(client: TestClient, body: dict) -> None:
    answer = client.post(f"/v1/models/{GEMMA}/load", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == next(iter(body))


def test_an_unknown_model_is_a_404_naming_it(client: TestClient) -> None:
    for action in ("load", "unload"):
        answer = client.post(f"/v1/models/no-such-model/{action}")
        assert answer.status_code == 404
        assert "no-such-model" in answer.json()["error"]["message"]
