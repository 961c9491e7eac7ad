"""The inference service alone, real models, nothing mocked, driven by the official openai client.

The module starts `python -m llmserver_inference` itself on free ports (one default instance, one
with a single slot and no queue for the 429 and disconnect cases), so it needs no full stack.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_only(
        "starts its own inference process with test settings (one slot, no queue)"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
CHAT_FILE = "gemma-3-270m-q4_k_m.gguf"
EMBED_FILE = "all-MiniLM-L6-v2.F32.gguf"
CHAT = "Gemma 3 270M"
EMBED = "all-MiniLM-L6-v2"

if not (MODELS_DIR / CHAT_FILE).exists():
    pytest.skip(f"the default chat model {CHAT_FILE} is not in models/", allow_module_level=True)

needs_embedder = pytest.mark.skipif(
    not (MODELS_DIR / EMBED_FILE).exists(),
    reason=f"the default embedding model {EMBED_FILE} is not in models/ yet",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "INFERENCE_HOST": "127.0.0.1",
            "INFERENCE_PORT": str(self.port),
            "INFERENCE_MODELS_DIR": str(MODELS_DIR),
            "INFERENCE_THREADS": "2",
            **env,
        }
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmserver_inference"],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = log_path

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inference exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"inference not healthy: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("inference") / "inference.log")
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("inference1") / "inference.log",
        INFERENCE_SLOTS="1",
        INFERENCE_MAX_QUEUE="0",
        INFERENCE_PRELOAD_DEFAULTS="false",
        INFERENCE_PRELOAD=CHAT,
        # Room for the chat model or the embedding model, not both.
        INFERENCE_MEMORY_BUDGET_BYTES="300000000",
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)


HELLO = [{"role": "user", "content": "Say hello."}]


def test_models_are_listed_with_their_fields(client: openai.OpenAI) -> None:
    models = client.models.list().data
    by_id = {m.id: m for m in models}
    assert CHAT in by_id
    gemma = by_id[CHAT].model_dump()
    assert gemma["object"] == "model"
    assert gemma["kind"] == "chat"
    assert gemma["filename"] == CHAT_FILE
    assert "gemma-3-270m" in gemma["aliases"]
    assert gemma["context_length"] > 0
    assert gemma["loaded"] is True
    # Catalog entries whose file is absent are not listed.
    assert "Llama 3 8B Instruct" not in by_id
    assert client.models.retrieve("gemma-3-270m").id == CHAT
    assert client.models.retrieve(CHAT_FILE).id == CHAT


def test_chat_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=12, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.model == CHAT
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 3
    assert 1 <= reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_tokens_gives_length_and_counts_tokens(client: openai.OpenAI, service: Service) -> None:
    reply = client.completions.create(
        model=CHAT, prompt="The list of numbers: 1, 2, 3, 4,", max_tokens=5, temperature=0
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    # The reported prompt tokens are the real ones.
    tokens = httpx.post(
        f"{service.url}/tokenize",
        json={"model": CHAT, "content": "The list of numbers: 1, 2, 3, 4,"},
    ).json()["tokens"]
    assert reply.usage.prompt_tokens == len(tokens)
    text = httpx.post(f"{service.url}/detokenize", json={"model": CHAT, "tokens": tokens}).json()
    assert "The list of numbers" in text["content"]


def test_chat_stream_ends_with_finish_reason_usage_and_done(service: Service) -> None:
    body = {
        "model": CHAT,
        "messages": HELLO,
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events: list[str] = []
    with httpx.stream("POST", f"{service.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] >= 1
    content_chunks = chunks[:-1]
    assert content_chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in content_chunks[:-1])
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in content_chunks)
    # Streaming and not streaming give the same greedy text.
    plain = httpx.post(
        f"{service.url}/v1/chat/completions", json={**body, "stream": False}, timeout=60
    ).json()
    assert streamed == plain["choices"][0]["message"]["content"]


def test_completion_stream_with_openai_client(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=CHAT, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason == "length"


def test_n_choices_and_seed_determinism(client: openai.OpenAI) -> None:
    def ask(seed: int) -> list[str]:
        reply = client.chat.completions.create(
            model=CHAT, messages=HELLO, max_tokens=12, temperature=1.2, seed=seed, n=3
        )
        assert [c.index for c in reply.choices] == [0, 1, 2]
        return [c.message.content or "" for c in reply.choices]

    first = ask(1234)
    # The n choices of one request are sampled apart, not copies of one another...
    assert len(set(first)) == 3, first
    # ...the same seed gives the same choices again, and another seed other text.
    assert ask(1234) == first
    assert ask(98765)[0] != first[0]


def test_stop_string_is_not_in_output(client: openai.OpenAI) -> None:
    prompt = "1, 2, 3, 4, 5, 6, 7, 8,"
    free = client.completions.create(model=CHAT, prompt=prompt, max_tokens=8, temperature=0)
    text = free.choices[0].text
    assert len(text.strip()) > 2
    stop = text.strip()[1:3]
    cut = client.completions.create(
        model=CHAT, prompt=prompt, max_tokens=8, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert stop not in cut.choices[0].text
    assert text.startswith(cut.choices[0].text)


def test_echo_prepends_prompt(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=CHAT, prompt="Hello there", max_tokens=3, temperature=0, echo=True
    )
    assert reply.choices[0].text.startswith("Hello there")


def test_json_object_output_parses(client: openai.OpenAI) -> None:
    # A worked example keeps the tiny model's object short enough to close within max_tokens.
    reply = client.chat.completions.create(
        model=CHAT,
        messages=[
            {"role": "user", "content": "JSON for Bob, 30."},
            {"role": "assistant", "content": '{"name": "Bob", "age": 30}'},
            {"role": "user", "content": "JSON for Ann, 25."},
        ],
        response_format={"type": "json_object"},
        max_tokens=40,
        temperature=0,
    )
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", content
    assert isinstance(json.loads(content), dict)


def test_json_schema_output_matches(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 20}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What colour is the sky?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        max_tokens=60,
        temperature=0,
    )
    parsed = json.loads(reply.choices[0].message.content or "")
    assert set(parsed) == {"answer"} and isinstance(parsed["answer"], str)


def test_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) == reply.usage.completion_tokens  # type: ignore[union-attr]
    for item in content:
        assert item.logprob <= 0.0
        assert len(item.top_logprobs) == 2
        # Greedy: the chosen token is the most likely one.
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-4)


def test_unknown_model_is_404_naming_installed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO, max_tokens=2)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found"
    assert CHAT in error["message"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_prompt_longer_than_context_is_400(client: openai.OpenAI) -> None:
    context = client.models.retrieve(CHAT).model_dump()["context_length"]
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=CHAT, prompt="hello " * (context + 50), max_tokens=2)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert str(context) in error["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 5), ("top_p", 2), ("n", 0), ("max_tokens", 0), ("logit_bias", {"1": 2})],
)
def test_bad_parameter_is_400_naming_it(service: Service, field: str, value: object) -> None:
    body = {"model": CHAT, "messages": HELLO, "max_tokens": 2, field: value}
    r = httpx.post(f"{service.url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert field in (error["param"] or "") or field in error["message"]


def test_unknown_fields_are_ignored(service: Service) -> None:
    body = {"model": CHAT, "messages": HELLO, "max_tokens": 2, "some_new_field": {"x": 1}}
    r = httpx.post(f"{service.url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200


def test_bad_json_is_400_envelope(service: Service) -> None:
    r = httpx.post(
        f"{service.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_eight_concurrent_requests_are_all_answered(client: openai.OpenAI) -> None:
    prompts = [f"Count from {i}: {i}, {i + 1}," for i in range(8)]

    def run(prompt: str) -> tuple[str, str]:
        reply = client.completions.create(model=CHAT, prompt=prompt, max_tokens=8, temperature=0)
        return prompt, reply.choices[0].text

    # Each answer must equal the one it gets alone (no cross-talk between slots).
    alone = {p: t for p, t in (run(p) for p in prompts[:2])}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = dict(pool.map(run, prompts))
    assert len(together) == 8
    assert all(text.strip() for text in together.values())
    for prompt, text in alone.items():
        assert together[prompt] == text


@needs_embedder
def test_embeddings(client: openai.OpenAI) -> None:
    import math

    reply = client.embeddings.create(model=EMBED, input=["a cat", "a dog", "tax law"])
    vectors = [d.embedding for d in reply.data]
    assert len(vectors) == 3 and len(vectors[0]) == 384
    for vec in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-4)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert reply.usage.prompt_tokens >= 6
    # model is optional: absent, the default embedding model; empty, a 400 (as OpenAI).
    url = f"{client.base_url}embeddings"
    default = httpx.post(url, json={"input": "a cat"}, timeout=30).json()
    assert default["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-5)
    empty = httpx.post(url, json={"input": "a cat", "model": ""}, timeout=30)
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "model"


@needs_embedder
def test_embedding_input_type_prefix(service: Service) -> None:
    url = f"{service.url}/v1/embeddings"
    plain = httpx.post(url, json={"input": "hello"}).json()
    query = httpx.post(url, json={"input": "hello", "input_type": "query"}).json()
    # MiniLM has no prefixes: the same vector and token count.
    assert plain["data"][0]["embedding"] == query["data"][0]["embedding"]
    assert plain["usage"]["prompt_tokens"] == query["usage"]["prompt_tokens"]
    bad = httpx.post(url, json={"input": [[1, 2, 3]]})
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("input")
    # Not an embedding model: 404, as OpenAI answers a model the endpoint does not serve.
    chat_model = httpx.post(url, json={"input": "x", "model": CHAT})
    assert chat_model.status_code == 404
    assert chat_model.json()["error"]["code"] == "model_not_supported"


def test_health(service: Service) -> None:
    r = httpx.get(f"{service.url}/health")
    assert r.status_code == 200
    assert CHAT in r.json()["loaded"]


def _start_long_stream(
    svc: Service,
) -> tuple[httpx.Client, httpx.Response, Iterator[str]]:
    http = httpx.Client(timeout=60)
    body = {
        "model": CHAT,
        # Greedy counting goes on and on: the stream is still running when we look.
        "prompt": "1, 2, 3, 4, 5, 6,",
        "max_tokens": 1000,
        "temperature": 0,
        "stream": True,
    }
    # A stream abandoned by the previous test may hold the only slot for a moment longer.
    deadline = time.monotonic() + 10.0
    while True:
        response = http.send(
            http.build_request("POST", f"{svc.url}/v1/completions", json=body), stream=True
        )
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        response.close()
        time.sleep(0.2)
    assert response.status_code == 200
    lines = response.iter_lines()
    seen = 0
    for line in lines:
        if line.startswith("data: "):
            seen += 1
        if seen >= 3:
            break
    # The line iterator is returned too: dropping it would close the connection.
    return http, response, lines


def test_queue_full_is_429_with_retry_after(one_slot: Service) -> None:
    http, stream, _lines = _start_long_stream(one_slot)
    try:
        r = httpx.post(
            f"{one_slot.url}/v1/completions",
            json={"model": CHAT, "prompt": "Hi", "max_tokens": 2},
            timeout=30,
        )
        assert r.status_code == 429
        assert r.headers["retry-after"]
        assert r.json()["error"]["type"] == "rate_limit_error"
    finally:
        stream.close()
        http.close()


def test_disconnect_mid_stream_frees_the_slot(one_slot: Service) -> None:
    http, stream, _lines = _start_long_stream(one_slot)
    stream.close()
    http.close()
    # With one slot and no queue, only a freed slot can take the next request; a slot held by
    # the abandoned 1000-token stream would answer 429 for many seconds.
    deadline = time.monotonic() + 5.0
    status = None
    while time.monotonic() < deadline:
        r = httpx.post(
            f"{one_slot.url}/v1/completions",
            json={"model": CHAT, "prompt": "Hi", "max_tokens": 2, "temperature": 0},
            timeout=30,
        )
        status = r.status_code
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200


@needs_embedder
def test_memory_budget_unloads_the_least_recently_used_model(one_slot: Service) -> None:
    def loaded() -> dict[str, bool]:
        data = httpx.get(f"{one_slot.url}/v1/models").json()["data"]
        return {m["id"]: m["loaded"] for m in data}

    assert loaded()[CHAT] is True
    r = httpx.post(f"{one_slot.url}/v1/embeddings", json={"input": "hello"}, timeout=60)
    assert r.status_code == 200
    assert loaded() == {**loaded(), CHAT: False, EMBED: True}
    # The unloaded model comes back on its next use, pushing the other one out.
    r = httpx.post(
        f"{one_slot.url}/v1/completions",
        json={"model": CHAT, "prompt": "Hi", "max_tokens": 2},
        timeout=60,
    )
    assert r.status_code == 200
    state = loaded()
    assert state[CHAT] is True and state[EMBED] is False


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            b'{"max_tokens": 1, "messages": [{"role": "user", "content": "\\ud800 hi"}]}',
            "messages",
        ),
        ("/v1/completions", b'{"max_tokens": 1, "prompt": "\\ud800 hi"}', "prompt"),
        ("/v1/completions", b'{"max_tokens": 1, "prompt": ["ok", "\\udfff"]}', "prompt"),
        ("/v1/embeddings", b'{"input": ["fine", "\\ud800 hi"]}', "input"),
        ("/tokenize", b'{"content": "\\ud800 hi"}', "content"),
    ],
)
def test_lone_surrogate_is_400_naming_the_field(
    service: Service, path: str, body: bytes, param: str
) -> None:
    if path == "/v1/embeddings" and not (MODELS_DIR / EMBED_FILE).exists():
        pytest.skip("no embedding model")
    r = httpx.post(
        f"{service.url}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    # The field, or the item of it ("input.1") where the schema names the item.
    assert error["param"] == param or error["param"].startswith(f"{param}."), error


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [10**30, 2049, "4", 1.5])
def test_max_tokens_beyond_context_or_not_an_integer_is_400(
    service: Service, field: str, value: object
) -> None:
    # The default chat model's per-request context is 2048 tokens.
    for path, body in (
        ("/v1/chat/completions", {"model": CHAT, "messages": HELLO, field: value}),
        ("/v1/completions", {"model": CHAT, "prompt": "Hi", field: value}),
    ):
        r = httpx.post(f"{service.url}{path}", json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert field in (r.json()["error"]["param"] or "")


# Common words that MiniLM's WordPiece vocabulary holds as single tokens.
_WORDS = "the cat sat on a mat while dogs ran in green fields near old houses by blue water".split()


def _words(n: int) -> str:
    return " ".join(_WORDS[(i * 7) % len(_WORDS)] for i in range(n))


@needs_embedder
def test_minilm_inputs_are_truncated_to_256_tokens(service: Service) -> None:
    def embed(text: str) -> tuple[list[float], int]:
        r = httpx.post(f"{service.url}/v1/embeddings", json={"input": text, "model": EMBED})
        assert r.status_code == 200, r.text
        return r.json()["data"][0]["embedding"], r.json()["usage"]["prompt_tokens"]

    tokens = httpx.post(
        f"{service.url}/tokenize", json={"model": EMBED, "content": _words(400)}
    ).json()["tokens"]
    assert len(tokens) == 402  # [CLS] + one token per word + [SEP]
    # sentence-transformers keeps [CLS], the first 254 tokens and [SEP].
    head, head_tokens = embed(_words(254))
    assert head_tokens == 256
    for n in (400, 700):  # past max_seq_length 256, and past the GGUF's context of 512
        vector, used = embed(_words(n))
        assert used == 256
        assert vector == pytest.approx(head, abs=1e-5)
    # Under the limit nothing is cut: a different input, a different vector.
    shorter, _ = embed(_words(200))
    assert shorter != pytest.approx(head, abs=1e-3)


@needs_embedder
def test_minilm_vectors_match_sentence_transformers(service: Service) -> None:
    """Reference vectors made with sentence-transformers. Their items are all under 256 tokens;
    test_minilm_inputs_are_truncated_to_256_tokens checks the cut."""
    reference_file = REPO_ROOT / "tests" / "data" / "minilm-l6-v2-embeddings.json"
    if not reference_file.exists():
        pytest.skip("no sentence-transformers reference vectors")
    items = json.loads(reference_file.read_text(encoding="utf-8"))["items"]
    # An empty input is refused, as OpenAI does (its reference vector stays unused).
    empty = httpx.post(f"{service.url}/v1/embeddings", json={"input": [""], "model": EMBED})
    assert empty.status_code == 400, empty.text
    items = [item for item in items if item["text"]]
    texts = [item["text"] for item in items]
    r = httpx.post(f"{service.url}/v1/embeddings", json={"input": texts, "model": EMBED})
    assert r.status_code == 200, r.text
    for item, data in zip(items, r.json()["data"], strict=True):
        ours, theirs = data["embedding"], item["embedding"]
        cosine = sum(a * b for a, b in zip(ours, theirs, strict=True)) / math.sqrt(
            sum(b * b for b in theirs)
        )
        assert cosine >= 0.999, (item["text"][:40], cosine)
