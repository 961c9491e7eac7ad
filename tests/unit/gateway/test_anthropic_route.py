"""POST /v1/messages against the fake inference replica, driven by the official anthropic
client: what reaches inference, the Message and the event stream it gets back, Anthropic's error
envelope (OpenAI routes keep theirs), and the x-api-key header."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import Upstreams, assert_envelope, chat_body


def _client(gateway: TestClient, api_key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=str(gateway.base_url), api_key=api_key, http_client=gateway, max_retries=0
    )


def _chats(upstreams: Upstreams) -> list[dict]:
    return [body for _, path, body in upstreams.a.requests if path == "/v1/chat/completions"]


def test_a_message_through_the_fake(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    client = _client(gateway())
    reply = client.messages.create(
        model="gemma3",
        max_tokens=5,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert [block.text for block in reply.content] == ["Hello!"]
    assert reply.stop_reason == "end_turn" and reply.model == "Gemma 3 270M"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 2)
    [sent] = _chats(upstreams)
    assert sent["model"] == "Gemma 3 270M" and sent["max_tokens"] == 5
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_streamed_message_through_the_fake(gateway: Callable[..., TestClient]) -> None:
    client = _client(gateway())
    with client.messages.stream(
        model="gemma3", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello"
    assert final.content[0].text == "Hello" and final.stop_reason == "end_turn"


def test_errors_have_anthropics_envelope(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    client = _client(gateway())
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gemma3", max_tokens=5, messages=[])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(
            model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"
    error = {"error": {"message": "queue full", "type": "rate_limit_error"}}
    upstreams.a.overrides["/v1/chat/completions"] = (429, error, {"Retry-After": "3"})
    reply = gateway().post(
        "/v1/messages",
        json={"model": "gemma3", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 429 and reply.headers["retry-after"] == "3"
    assert reply.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "queue full"},
    }
    assert _chats(upstreams)[-1]["messages"] == [{"role": "user", "content": "x"}]


def test_openai_routes_keep_the_openai_envelope(gateway: Callable[..., TestClient]) -> None:
    assert_envelope(gateway().post("/v1/chat/completions", json=chat_body(messages=[])), 400)


def test_the_api_key_as_x_api_key(gateway: Callable[..., TestClient]) -> None:
    app = gateway(api_key="sekrit")
    reply = _client(app, api_key="sekrit").messages.create(
        model="gemma3", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.content[0].text == "Hello!"
    with pytest.raises(anthropic.AuthenticationError):
        _client(app, api_key="wrong").messages.create(
            model="gemma3", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    bearer = app.post(
        "/v1/messages",
        json={"model": "gemma3", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer sekrit"},
    )
    assert bearer.status_code == 200
    # Anthropic's header on Anthropic's routes only: the OpenAI routes take the bearer key.
    assert app.get("/v1/models", headers={"x-api-key": "sekrit"}).status_code == 401
