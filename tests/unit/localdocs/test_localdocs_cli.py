"""The llmserver-localdocs CLI against a faked HTTP API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from llmserver_localdocs import cli


def _collection(state: str, indexed: int, failed: int = 0) -> dict[str, Any]:
    return {
        "name": "manuals", "paths": ["/docs"], "state": state, "files_total": 3,
        "files_indexed": indexed, "files_failed": failed, "files_pending": 3 - indexed - failed,
        "chunks": indexed * 4,
    }  # fmt: skip


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    seen: list[tuple[str, str, Any]] = []
    progress = iter([_collection("indexing", 1), _collection("ready", 2, 1)])

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        path = request.url.path
        if request.method == "POST" and path == "/v1/localdocs/collections":
            if body["name"] == "taken":
                error = {"message": "A collection named 'taken' already exists."}
                return httpx.Response(409, json={"error": error})
            return httpx.Response(201, json=_collection("indexing", 0))
        if path == "/v1/localdocs/collections/manuals":
            return httpx.Response(200, json=next(progress))
        if path == "/v1/localdocs/collections/manuals/files":
            bad = {"path": "/docs/bad.pdf", "state": "failed", "error": "corrupt"}
            return httpx.Response(200, json={"data": [bad]})
        if path == "/v1/localdocs/collections":
            away = {"path": "/share", "reason": "missing: not mounted?", "since": "2026-12-07"}
            listed = {**_collection("ready", 3), "paths": ["/docs", "/share"]}
            return httpx.Response(200, json={"data": [{**listed, "unavailable_paths": [away]}]})
        if path == "/v1/localdocs/collections/manuals/paths":
            if request.method == "POST":
                paths = ["/docs", *body["paths"]]
            else:
                removed = request.url.params.get_list("path")
                paths = [p for p in ["/docs", "/faq"] if p not in removed]
            return httpx.Response(200, json={**_collection("indexing", 0), "paths": paths})
        if path == "/v1/localdocs/search":
            hit = {
                "text": "the answer", "file": "a.pdf", "page": 3, "title": "Guide",
                "collection": "manuals", "score": 0.9,
            }  # fmt: skip
            return httpx.Response(200, json={"data": [hit]})
        return httpx.Response(404, json={"error": {"message": "Not found."}})

    real_client = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        return real_client(transport=httpx.MockTransport(handle), **kwargs)

    monkeypatch.setattr(cli.httpx, "Client", client)
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    return seen


def test_create_watches_until_ready_and_lists_failures(
    fake_api: list, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--url", "http://gw", "create", "manuals", "/docs"]) == 0
    out = capsys.readouterr().out
    assert "created manuals" in out
    assert "/docs/bad.pdf: corrupt" in out
    assert "manuals: ready" in out
    assert fake_api[0] == (
        "POST",
        "/v1/localdocs/collections",
        {"name": "manuals", "paths": ["/docs"]},
    )


def test_api_errors_are_one_line_and_exit_2(
    fake_api: list, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["create", "taken", "/docs"]) == 2
    assert "409: A collection named 'taken' already exists." in capsys.readouterr().out


def test_list_and_search(fake_api: list, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "manuals" in out and "/share (unavailable)" in out
    assert cli.main(["search", "question", "-c", "manuals", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "a.pdf, page 3" in out and "the answer" in out
    assert fake_api[-1][2] == {"query": "question", "k": 1, "collections": ["manuals"]}


def test_unreachable_server_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--url", "http://127.0.0.1:9", "--timeout", "2", "list"]) == 2
    assert "cannot reach" in capsys.readouterr().out


def test_add_and_remove_paths(fake_api: list, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["add-path", "manuals", "/faq"]) == 0
    assert "manuals: /docs, /faq" in capsys.readouterr().out
    assert fake_api[-1] == ("POST", "/v1/localdocs/collections/manuals/paths", {"paths": ["/faq"]})
    assert cli.main(["remove-path", "manuals", "/faq"]) == 0
    assert "manuals: /docs" in capsys.readouterr().out
    assert fake_api[-1][:2] == ("DELETE", "/v1/localdocs/collections/manuals/paths")
