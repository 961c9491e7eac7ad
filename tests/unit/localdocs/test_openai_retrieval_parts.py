"""The pieces of OpenAI's Files and Vector Stores API that need no stack: attribute filters,
cursor pages, metadata limits, upload names and the upload size limit (with a real Redis)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from llmserver_common.errors import APIError
from llmserver_localdocs.openai_files.service import FilesService
from llmserver_localdocs.openai_shared import check_key_values, cursor_page
from llmserver_localdocs.settings import LocalDocsSettings
from llmserver_localdocs.vector_stores.filters import matches
from llmserver_localdocs.vector_stores.records import file_counts, last_error_of

ATTRS = {"kind": "manual", "year": 2019, "draft": False, "score": 0.5}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"type": "eq", "key": "kind", "value": "manual"}, True),
        ({"type": "eq", "key": "kind", "value": "notes"}, False),
        ({"type": "ne", "key": "kind", "value": "notes"}, True),
        ({"type": "ne", "key": "missing", "value": "notes"}, False),
        ({"type": "eq", "key": "year", "value": 2019.0}, True),
        ({"type": "gt", "key": "year", "value": 2018}, True),
        ({"type": "gte", "key": "year", "value": 2019}, True),
        ({"type": "lt", "key": "year", "value": 2019}, False),
        ({"type": "lte", "key": "score", "value": 0.5}, True),
        ({"type": "gt", "key": "kind", "value": 3}, False),  # a string is no number
        ({"type": "eq", "key": "draft", "value": False}, True),
        ({"type": "eq", "key": "draft", "value": 0}, False),  # a boolean is no number
        ({"type": "in", "key": "kind", "value": ["notes", "manual"]}, True),
        ({"type": "nin", "key": "kind", "value": ["notes", "manual"]}, False),
        ({"type": "nin", "key": "year", "value": [2020, 2021]}, True),
        ({"type": "eq", "key": "missing", "value": "x"}, False),
    ],
)
def test_comparison_filters(condition: dict[str, Any], expected: bool) -> None:
    assert matches(condition, ATTRS) is expected


def test_compound_filters_nest() -> None:
    manual_or_new = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "kind", "value": "notes"},
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "kind", "value": "manual"},
                    {"type": "lt", "key": "year", "value": 2020},
                ],
            },
        ],
    }
    assert matches(manual_or_new, ATTRS) is True
    assert matches(manual_or_new, {**ATTRS, "year": 2021}) is False


ITEMS = [{"id": f"obj_{i}"} for i in range(5)]


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def test_cursor_pages_follow_openai() -> None:
    first = cursor_page(ITEMS, limit=2, order="asc", after=None, before=None)
    assert _ids(first) == ["obj_0", "obj_1"] and first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == ("obj_0", "obj_1")
    last = cursor_page(ITEMS, limit=2, order="asc", after="obj_2", before=None)
    assert _ids(last) == ["obj_3", "obj_4"] and last["has_more"] is False
    newest = cursor_page(ITEMS, limit=2, order="desc", after=None, before=None)
    assert _ids(newest) == ["obj_4", "obj_3"]
    previous = cursor_page(ITEMS, limit=2, order="asc", after=None, before="obj_3")
    assert _ids(previous) == ["obj_1", "obj_2"] and previous["has_more"] is True
    empty = cursor_page([], limit=2, order="asc", after=None, before=None)
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False


def test_cursor_page_refuses_an_unknown_cursor() -> None:
    with pytest.raises(APIError) as refused:
        cursor_page(ITEMS, limit=2, order="asc", after="obj_9", before=None)
    assert (refused.value.status_code, refused.value.param) == (404, "after")


def test_key_value_limits() -> None:
    assert check_key_values(None, "metadata", scalars=(str,)) == {}
    with pytest.raises(APIError) as many:
        check_key_values({str(i): "v" for i in range(17)}, "metadata", scalars=(str,))
    assert many.value.param == "metadata"
    with pytest.raises(APIError) as long_value:
        check_key_values({"k": "v" * 513}, "metadata", scalars=(str,))
    assert long_value.value.param == "metadata.k"
    with pytest.raises(APIError) as wrong_type:
        check_key_values({"k": True}, "metadata", scalars=(str,))
    assert wrong_type.value.param == "metadata.k"
    assert check_key_values({"k": True, "n": 2}, "attributes", scalars=(str, bool, int, float))


@pytest.fixture
def files(tmp_path: Path, redis_url: str) -> FilesService:
    settings = LocalDocsSettings(openai_dir=tmp_path / "openai", files_max_bytes=10)
    return FilesService(settings, aioredis.Redis.from_url(redis_url, decode_responses=True))


@pytest.mark.parametrize(
    "name",
    [
        "../x.txt",
        "a/b.txt",
        "a\\b.txt",
        ".hidden.txt",
        "",
        "..",
        "x.exe",
        "README",
        "x" * 197 + ".txt",
    ],
)
def test_upload_names_are_checked(files: FilesService, name: str) -> None:
    with pytest.raises(APIError) as refused:
        files.check_filename(name)
    assert (refused.value.status_code, refused.value.param) == (400, "file")


def test_an_upload_over_the_limit_leaves_nothing(files: FilesService, tmp_path: Path) -> None:
    with pytest.raises(APIError) as refused:
        asyncio.run(files.create("big.txt", "assistants", io.BytesIO(b"x" * 11)))
    assert (refused.value.status_code, refused.value.param) == (413, "file")
    assert list((tmp_path / "openai" / "files").iterdir()) == []


def test_an_upload_is_stored_under_its_id(files: FilesService, tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        stored = await files.create("notes.txt", "user_data", io.BytesIO(b"0123456789"))
        listed = await files.list(purpose="user_data", limit=10, order="desc", after=None)
        return stored, listed

    stored, listed = asyncio.run(scenario())
    path = tmp_path / "openai" / "files" / stored["id"] / "notes.txt"
    assert path.read_bytes() == b"0123456789"
    assert files.id_of_path(str(path)) == stored["id"]
    assert files.id_of_path(str(tmp_path / "elsewhere" / "notes.txt")) is None
    assert stored["id"] in [item["id"] for item in listed["data"]]


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("no text could be extracted (application/octet-stream)", "unsupported_file"),
        ("gave up after 6 tries: ConnectError: refused", "server_error"),
        ("TikaError: the PDF is damaged", "invalid_file"),
        (None, "invalid_file"),
    ],
)
def test_a_failed_file_reason_maps_to_openai_codes(reason: str | None, code: str) -> None:
    error = last_error_of(reason)
    assert error["code"] == code
    assert error["message"] == (reason or "the file could not be indexed")


def test_file_counts_total_every_status() -> None:
    counts = file_counts(["completed", "completed", "failed", "in_progress", "cancelled"])
    assert counts == {
        "in_progress": 1,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
        "total": 5,
    }
