"""Tika answers mapped to text per page, metadata, and failures (Tika itself faked)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from llmserver_indexer import extract as extract_module
from llmserver_indexer.extract import (
    FileProblem,
    TikaUnavailable,
    extract,
    iso_date,
    xhtml_to_segments,
)

PDF_XHTML = (
    '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Ignored head title</title>'
    '<meta name="dc:title" content="x"/></head><body>'
    '<div class="page"><p>First page text.</p></div>'
    '<div class="page"><p>Second <b>page</b></p><div class="annotation">note</div></div>'
    '<div class="page"><p>Third page: the fact.</p></div>'
    "</body></html>"
)


def test_pages_are_split_on_tika_page_divs() -> None:
    segments, pages = xhtml_to_segments(PDF_XHTML)
    assert pages == 3
    assert segments == [
        (1, "First page text."),
        (2, "Second page\n\nnote"),
        (3, "Third page: the fact."),
    ]


def test_unpaged_documents_have_no_page() -> None:
    segments, pages = xhtml_to_segments(
        "<html><body><h1>Title</h1><p>Body &amp; more</p></body></html>"
    )
    assert pages == 0
    assert segments == [(None, "Title\n\nBody & more")]


def _fake_tika(monkeypatch: pytest.MonkeyPatch, status: int, body: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def from_buffer(data: bytes, **kwargs: Any) -> tuple[int, str]:
        seen.update(kwargs, data=data)
        if isinstance(body, Exception):
            raise body
        return status, body if isinstance(body, str) else json.dumps(body)

    monkeypatch.setattr(extract_module.tika_parser, "from_buffer", from_buffer)
    return seen


def test_metadata_and_pages_from_rmeta(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_tika(
        monkeypatch,
        200,
        [
            {
                "Content-Type": "application/pdf",
                "dc:title": "Handbook",
                "dc:creator": ["Ada", "Bob"],
                "dcterms:created": "2024-05-06T07:08:09+02:00",
                "xmpTPg:NPages": "3",
                "X-TIKA:content": PDF_XHTML,
            },
            {"X-TIKA:content": "<html><body><p>embedded image text</p></body></html>"},
        ],
    )
    document = extract(b"%PDF", "hand book.pdf", "http://tika:9998/", timeout_s=5)
    assert seen["serverEndpoint"] == "http://tika:9998"
    assert seen["xmlContent"] is True
    assert "hand%20book.pdf" in seen["headers"]["Content-Disposition"]
    assert document.title == "Handbook"
    assert document.author == "Ada"
    assert document.created == "2024-05-06T05:08:09Z"
    assert document.pages == 3
    assert document.segments[-1] == (None, "embedded image text")
    assert document.segments[2] == (3, "Third page: the fact.")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (422, "org.apache.tika.exception.TikaException: Bad trailer\n\tat x.y", "Bad trailer"),
        (415, "", "unsupported"),
        (
            200,
            [{"X-TIKA:EXCEPTION:container_exception": "EncryptedDocumentException"}],
            "encrypted",
        ),
        (200, "not json", "unreadable"),
    ],
)
def test_unparsable_files_are_file_problems(
    monkeypatch: pytest.MonkeyPatch, status: int, body: Any, reason: str
) -> None:
    _fake_tika(monkeypatch, status, body)
    with pytest.raises(FileProblem) as failure:
        extract(b"data", "f.pdf", "http://tika", timeout_s=5)
    assert reason in str(failure.value)
    assert "\tat " not in str(failure.value)


@pytest.mark.parametrize(
    "outcome",
    [(503, "busy"), requests.ConnectionError("refused"), requests.Timeout("slow")],
)
def test_tika_down_is_retryable(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> None:
    if isinstance(outcome, tuple):
        _fake_tika(monkeypatch, *outcome)
    else:
        _fake_tika(monkeypatch, 0, outcome)
    with pytest.raises(TikaUnavailable):
        extract(b"data", "f.txt", "http://tika", timeout_s=5)


def test_iso_dates_are_normalised_to_utc() -> None:
    assert iso_date("2020-01-02T03:04:05Z") == "2020-01-02T03:04:05Z"
    assert iso_date("2020-01-02T03:04:05") == "2020-01-02T03:04:05Z"
    assert iso_date("not a date") == "not a date"
    assert iso_date(None) is None
