"""The web page's routes on the gateway (web.py): `/` and `/web/...`, open without the API key,
OpenAI errors for everything else, and a clear 404 when the bundle was never built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

Gateway = Callable[..., TestClient]
KEY = "sk-web-page-test"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "web").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>llmserver</title>")
    (tmp_path / "web" / "app.js").write_text("console.log('hi');")
    return tmp_path


def _assert_envelope(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_page_and_assets_are_served(gateway: Gateway, bundle: Path) -> None:
    client = gateway(web_dir=bundle)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>llmserver</title>" in page.text
    script = client.get("/web/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


def test_missing_asset_and_wrong_method_get_openai_errors(gateway: Gateway, bundle: Path) -> None:
    client = gateway(web_dir=bundle)
    _assert_envelope(client.get("/web/nope.js"), 404)
    _assert_envelope(client.get("/web/../index.html"), 404)
    _assert_envelope(client.post("/"), 405)


def test_unbuilt_bundle_is_a_404_saying_how_to_build(gateway: Gateway, tmp_path: Path) -> None:
    client = gateway(web_dir=tmp_path / "never-built")
    error = _assert_envelope(client.get("/"), 404)
    assert error["code"] == "web_page_not_built"
    assert "make setup" in error["message"]


def test_page_is_open_but_the_api_needs_the_key(gateway: Gateway, bundle: Path) -> None:
    client = gateway(web_dir=bundle, api_key=KEY)
    assert client.get("/").status_code == 200
    assert client.get("/web/app.js").status_code == 200
    _assert_envelope(client.get("/v1/models"), 401)
    _assert_envelope(client.get("/webfoo"), 401)
    ok = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
