"""llmserver_common.docstore: ids, validation, reference mapping, progress summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmserver_common import docstore
from llmserver_common.docstore import Chunk, DocumentInfo, FileRecord


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    first = docstore.chunk_uuid("manuals", "/docs/a.pdf", 0, "h1")
    assert first == docstore.chunk_uuid("manuals", "/docs/a.pdf", 0, "h1")
    others = {
        docstore.chunk_uuid("manuals", "/docs/a.pdf", 1, "h1"),
        docstore.chunk_uuid("manuals", "/docs/b.pdf", 0, "h1"),
        docstore.chunk_uuid("other", "/docs/a.pdf", 0, "h1"),
        docstore.chunk_uuid("manuals", "/docs/a.pdf", 0, "h2"),
    }
    assert first not in others
    assert len(others) == 4


@pytest.mark.parametrize("name", ["a", "manuals", "My_Docs-2", "x" * 64])
def test_valid_collection_names(name: str) -> None:
    assert docstore.is_valid_collection_name(name)


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "has space", "../up", "a/b", "naïve", "semi;colon", "dot.name"]
)
def test_invalid_collection_names(name: str) -> None:
    assert not docstore.is_valid_collection_name(name)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    (allowed / "folder").mkdir(parents=True)
    outside.mkdir()
    (allowed / "folder" / "doc.txt").write_text("hello")
    (outside / "secret.txt").write_text("secret")
    return allowed, outside


def test_paths_under_the_roots_resolve(roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    assert (
        docstore.resolve_allowed_path(str(allowed / "folder"), [allowed])
        == (allowed / "folder").resolve()
    )
    assert docstore.resolve_allowed_path(allowed, [allowed]) == allowed.resolve()


def test_traversal_out_of_the_roots_is_refused(roots: tuple[Path, Path]) -> None:
    allowed, outside = roots
    with pytest.raises(docstore.PathNotAllowed, match="outside"):
        docstore.resolve_allowed_path(f"{allowed}/folder/../../outside/secret.txt", [allowed])
    # Traversal that stays inside is fine: it names a real place under the root.
    inside = docstore.resolve_allowed_path(f"{allowed}/folder/../folder/doc.txt", [allowed])
    assert inside == (allowed / "folder" / "doc.txt").resolve()


def test_symlink_escaping_the_roots_is_refused(roots: tuple[Path, Path]) -> None:
    allowed, outside = roots
    os.symlink(outside, allowed / "escape")
    os.symlink(outside / "secret.txt", allowed / "secret-link.txt")
    for link in ("escape", "secret-link.txt"):
        with pytest.raises(docstore.PathNotAllowed, match="outside"):
            docstore.resolve_allowed_path(str(allowed / link), [allowed])


def test_a_root_prefix_is_not_a_root(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs-private").mkdir()
    with pytest.raises(docstore.PathNotAllowed):
        docstore.resolve_allowed_path(str(tmp_path / "docs-private"), [tmp_path / "docs"])


@pytest.mark.parametrize("raw", ["", "relative/path", "/no/such/place/at/all", "/tmp/\x00x"])
def test_bad_paths_are_refused(raw: str, roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    with pytest.raises(docstore.PathNotAllowed):
        docstore.resolve_allowed_path(raw, [Path("/")])


def test_nothing_is_allowed_without_roots(roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    with pytest.raises(docstore.PathNotAllowed):
        docstore.resolve_allowed_path(str(allowed), [])


def test_chunk_properties_map_back_to_the_reference() -> None:
    doc = DocumentInfo(
        collection="manuals",
        path="/docs/guide.pdf",
        content_hash="abc",
        title="Guide",
        author="Ada",
        date="2024-01-02T03:04:05Z",
        embedding_model="MiniLM",
    )
    properties = docstore.chunk_properties(doc, Chunk(text="the fact", page=3, index=7))
    assert properties["chunk_index"] == 7
    assert properties["file"] == "guide.pdf"
    reference = docstore.to_reference(properties, 0.75)
    assert reference == {
        "text": "the fact",
        "author": "Ada",
        "date": "2024-01-02T03:04:05Z",
        "page": 3,
        "title": "Guide",
        "file": "guide.pdf",
        "path": "/docs/guide.pdf",
        "collection": "manuals",
        "score": 0.75,
    }


def test_unknown_fields_map_to_null() -> None:
    reference = docstore.to_reference(
        {"text": "t", "path": "/d/notes.md", "collection": "c", "title": "", "page": None}, None
    )
    assert reference["title"] is None
    assert reference["author"] is None
    assert reference["page"] is None
    assert reference["score"] is None
    assert reference["file"] == "notes.md"


def test_file_records_round_trip_and_ignore_unknown_fields() -> None:
    record = FileRecord(path="/d/a.pdf", state="indexed", chunks=4, pages=2, title="T")
    again = FileRecord.from_json(record.to_json())
    assert again == record
    assert FileRecord.from_json('{"path": "/x", "future_field": 1}').path == "/x"
    assert record.public()["file"] == "a.pdf"


def test_progress_summary() -> None:
    files = [
        FileRecord(path="/a", state=docstore.FILE_INDEXED, chunks=3),
        FileRecord(path="/b", state=docstore.FILE_FAILED, error="corrupt"),
        FileRecord(path="/c", state=docstore.FILE_PENDING, chunks=2),
    ]
    progress = docstore.summarize_progress(docstore.SCAN_DONE, files)
    assert progress == {
        "state": "indexing",
        "files_total": 3,
        "files_indexed": 1,
        "files_failed": 1,
        "files_pending": 1,
        "chunks": 5,
    }
    assert docstore.summarize_progress(docstore.SCAN_DONE, files[:2])["state"] == "ready"
    assert docstore.summarize_progress(docstore.SCAN_SCANNING, [])["state"] == "indexing"
    assert docstore.summarize_progress(docstore.SCAN_ERROR, files[:2])["state"] == "error"
