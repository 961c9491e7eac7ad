"""LocalDocs end to end: real documents, real Tika, inference, Weaviate, Redis, Celery workers.

Documents are made here with real tools (reportlab, python-docx), indexed through the API, and
found again through the API and through a chat request to the gateway.
"""

from __future__ import annotations

import random
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.polling import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PDF_TITLE = "Orchard Maintenance Handbook"
PDF_AUTHOR = "Beatrix Quillfeather"
# Only on the PDF's third page.
PAGE3_FACT = (
    "The zorbleflux pruning shears must be oiled with walnut resin every ninth Thursday, "
    "exactly as the Quillfeather orchard charter demands."
)
PAGE3_QUERY = "How often must the zorbleflux pruning shears be oiled?"
FILLER = (
    "Apple trees need sunlight, water and patience. Mulch keeps the soil moist in summer. "
    "Ladders must stand on firm ground before anyone climbs them to reach the upper branches. "
)
INDEXED_FILES = ["handbook.pdf", "society.docx", "page.html", "notes.md", "plain.txt"]
FAILED_FILES = ["corrupt.pdf", "junk.bin"]
READY_TIMEOUT_S = 420.0
CHAT_MODEL = "Gemma 3 270M"


def make_pdf(path: Path) -> None:
    """A four-page PDF with title and author metadata; the fact is on page 3 only."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(PDF_TITLE)
    pdf.setAuthor(PDF_AUTHOR)
    for page in range(1, 5):
        text = pdf.beginText(50, 800)
        text.setFont("Helvetica", 11)
        text.textLine(f"Chapter {page}")
        body = PAGE3_FACT if page == 3 else f"Section {page}. " + FILLER
        words = body.split()
        line: list[str] = []
        for word in words:
            line.append(word)
            if len(" ".join(line)) > 80:
                text.textLine(" ".join(line))
                line = []
        if line:
            text.textLine(" ".join(line))
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Society Minutes"
    document.core_properties.author = "Ottoline Brackenridge"
    document.add_heading("Minutes of the Ventriloquist Llama Society", level=1)
    document.add_paragraph("The Ventriloquist Llama Society meets on the first Tuesday of June.")
    document.add_paragraph("Refreshments are provided by the treasurer, who insists on tea.")
    document.save(str(path))


def make_documents(folder: Path) -> dict[str, Path]:
    """A folder of real documents of every kind the indexer must handle, plus two bad ones."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / name for name in INDEXED_FILES + FAILED_FILES}
    make_pdf(files["handbook.pdf"])
    make_docx(files["society.docx"])
    files["page.html"].write_text(
        "<html><head><title>Lighthouse Notes</title></head><body>"
        "<h1>Lighthouse</h1><p>The Skerryvore lighthouse lamp is cleaned at dawn.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    files["notes.md"].write_text(
        "# Garden notes\n\nThe *blue heron* visits the pond when the frogs sing.\n",
        encoding="utf-8",
    )
    files["plain.txt"].write_text(
        "Kettle instructions: descale the copper kettle with vinegar once a month.\n",
        encoding="utf-8",
    )
    # A PDF header followed by nothing a PDF parser can use.
    files["corrupt.pdf"].write_bytes(
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Cat" + b"\x00" * 64
    )
    rng = random.Random(1234)
    files["junk.bin"].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    return files


# -- API helpers ----------------------------------------------------------------------------


def _client(stack: Any) -> httpx.Client:
    return httpx.Client(base_url=stack.url("localdocs"), timeout=60)


def _wait_ready(client: httpx.Client, name: str, timeout_s: float = READY_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    last: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/localdocs/collections/{name}")
        assert response.status_code == 200, response.text
        last = response.json()
        if last["state"] != "indexing":
            return last
        time.sleep(1.0)
    pytest.fail(f"collection {name} not ready after {timeout_s:.0f}s: {last}")


def _files_by_name(client: httpx.Client, name: str) -> dict[str, dict]:
    response = client.get(f"/v1/localdocs/collections/{name}/files")
    assert response.status_code == 200, response.text
    return {Path(entry["path"]).name: entry for entry in response.json()["data"]}


def _weaviate_chunks_per_file(stack: Any, name: str, paths: list[str]) -> dict[str, int]:
    """Chunks per file as Weaviate holds them (not as the progress records say)."""
    from llmserver_common import docstore

    client = docstore.connect_weaviate(
        stack.url("weaviate"), stack.weaviate_grpc_port, stack.weaviate_api_key
    )
    try:
        chunks = docstore.ensure_schema(client)
        return {Path(path).name: docstore.count_chunks(chunks, name, path) for path in paths}
    finally:
        client.close()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def indexed(stack: Any) -> Iterator[dict[str, Any]]:
    """One collection over the document folder, created and indexed through the API."""
    folder = Path(stack.docs_root) / _unique("docs")
    files = make_documents(folder)
    name = _unique("handbook")
    with _client(stack) as client:
        response = client.post(
            "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == name
        collection = _wait_ready(client, name)
    yield {"name": name, "folder": folder, "files": files, "collection": collection}
    with _client(stack) as client:
        client.delete(f"/v1/localdocs/collections/{name}")


# -- tests ----------------------------------------------------------------------------------


def test_collection_indexes_good_files_and_fails_bad_ones(stack: Any, indexed: dict) -> None:
    with _client(stack) as client:
        collection = client.get(f"/v1/localdocs/collections/{indexed['name']}").json()
        files = _files_by_name(client, indexed["name"])
    assert collection["state"] == "ready"
    assert collection["files_total"] == len(INDEXED_FILES) + len(FAILED_FILES)
    assert collection["files_indexed"] == len(INDEXED_FILES)
    assert collection["files_failed"] == len(FAILED_FILES)
    assert collection["chunks"] >= len(INDEXED_FILES)
    for file_name in INDEXED_FILES:
        assert files[file_name]["state"] == "indexed", files[file_name]
        assert files[file_name]["chunks"] >= 1
        assert files[file_name]["error"] is None
    for file_name in FAILED_FILES:
        assert files[file_name]["state"] == "failed", files[file_name]
        assert files[file_name]["error"], files[file_name]
        # A short reason for people, not a Java stack trace.
        assert "\tat " not in files[file_name]["error"]
        assert len(files[file_name]["error"]) <= 300
    pdf = files["handbook.pdf"]
    assert pdf["pages"] == 4
    assert pdf["title"] == PDF_TITLE
    assert pdf["author"] == PDF_AUTHOR


def test_search_finds_the_fact_on_page_three(stack: Any, indexed: dict) -> None:
    with _client(stack) as client:
        response = client.post(
            "/v1/localdocs/search",
            json={"query": PAGE3_QUERY, "collections": [indexed["name"]], "k": 3},
        )
    assert response.status_code == 200, response.text
    references = response.json()["data"]
    assert 1 <= len(references) <= 3
    top = references[0]
    assert "zorbleflux" in top["text"]
    assert top["page"] == 3
    assert top["title"] == PDF_TITLE
    assert top["author"] == PDF_AUTHOR
    assert top["file"] == "handbook.pdf"
    assert top["collection"] == indexed["name"]
    assert top["path"].endswith("handbook.pdf")
    assert top["date"] and top["date"][:4].isdigit()
    assert isinstance(top["score"], float)


def test_chat_through_the_gateway_returns_the_page_three_reference(
    stack: Any, indexed: dict
) -> None:
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": PAGE3_QUERY}],
        "max_tokens": 8,
        "temperature": 0,
        "localdocs": {"collections": [indexed["name"]], "k": 3},
    }
    with httpx.Client(base_url=stack.url("gateway"), timeout=180) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    references = response.json()["choices"][0]["references"]
    assert references, "the gateway returned no references"
    page3 = [ref for ref in references if "zorbleflux" in ref["text"]]
    assert page3, references
    assert page3[0]["page"] == 3
    assert page3[0]["title"] == PDF_TITLE
    assert page3[0]["author"] == PDF_AUTHOR


def test_bad_requests_get_openai_errors(stack: Any, indexed: dict, tmp_path: Path) -> None:
    with _client(stack) as client:
        cases = [
            ("post", "/v1/localdocs/collections", {"name": "bad name!", "paths": ["/"]}, 400),
            ("post", "/v1/localdocs/collections", {"name": _unique("x"), "paths": ["/etc"]}, 400),
            (
                "post",
                "/v1/localdocs/collections",
                {"name": _unique("x"), "paths": [f"{stack.docs_root}/../../etc"]},
                400,
            ),
            (
                "post",
                "/v1/localdocs/collections",
                {"name": indexed["name"], "paths": [str(indexed["folder"])]},
                409,
            ),
            ("get", "/v1/localdocs/collections/nope-does-not-exist", None, 404),
            ("post", "/v1/localdocs/search", {"query": "x", "collections": ["nope-nope"]}, 404),
            ("post", "/v1/localdocs/search", {"collections": [indexed["name"]]}, 400),
            ("put", "/v1/localdocs/active", {"collections": ["nope-nope"]}, 404),
        ]
        for method, url, body, status in cases:
            response = client.request(method, url, json=body)
            assert response.status_code == status, (url, body, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert "Traceback" not in error["message"]


def test_active_collections_round_trip(stack: Any, indexed: dict) -> None:
    with _client(stack) as client:
        put = client.put("/v1/localdocs/active", json={"collections": [indexed["name"]]})
        assert put.status_code == 200, put.text
        assert client.get("/v1/localdocs/active").json()["collections"] == [indexed["name"]]
        # Search with no collections uses the active set.
        found = client.post("/v1/localdocs/search", json={"query": PAGE3_QUERY}).json()["data"]
        assert any(ref["collection"] == indexed["name"] for ref in found)
        assert client.put("/v1/localdocs/active", json={"collections": []}).status_code == 200
        assert client.get("/v1/localdocs/active").json()["collections"] == []


def test_reindex_unchanged_adds_nothing_and_removed_file_is_dropped(stack: Any) -> None:
    folder = Path(stack.docs_root) / _unique("reindex")
    folder.mkdir(parents=True)
    make_pdf(folder / "handbook.pdf")
    make_docx(folder / "society.docx")
    (folder / "plain.txt").write_text("The tortoise named Quentin likes dandelions.\n")
    name = _unique("reindex")
    with _client(stack) as client:
        assert (
            client.post(
                "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
            ).status_code
            == 201
        )
        first = _wait_ready(client, name)
        assert first["files_indexed"] == 3
        chunks_before = {k: v["chunks"] for k, v in _files_by_name(client, name).items()}

        assert client.post(f"/v1/localdocs/collections/{name}/reindex").status_code == 200
        second = _wait_ready(client, name)
        assert second["chunks"] == first["chunks"]
        files = _files_by_name(client, name)
        assert {k: v["chunks"] for k, v in files.items()} == chunks_before
        paths = [entry["path"] for entry in files.values()]
        assert _weaviate_chunks_per_file(stack, name, paths) == chunks_before
        # The search index holds no duplicate either: the same query returns distinct chunks.
        hits = client.post(
            "/v1/localdocs/search",
            json={"query": "tortoise Quentin dandelions", "collections": [name], "k": 10},
        ).json()["data"]
        texts = [hit["text"] for hit in hits if "Quentin" in hit["text"]]
        assert len(texts) == 1

        (folder / "plain.txt").unlink()
        assert client.post(f"/v1/localdocs/collections/{name}/reindex").status_code == 200
        third = _wait_ready(client, name)
        assert third["files_total"] == 2
        assert third["chunks"] == first["chunks"] - chunks_before["plain.txt"]
        hits = client.post(
            "/v1/localdocs/search",
            json={"query": "tortoise Quentin dandelions", "collections": [name], "k": 10},
        ).json()["data"]
        assert not [hit for hit in hits if hit["file"] == "plain.txt"]
        assert _weaviate_chunks_per_file(stack, name, paths)["plain.txt"] == 0

        assert client.delete(f"/v1/localdocs/collections/{name}").status_code == 200
        assert client.get(f"/v1/localdocs/collections/{name}").status_code == 404


LEDGERS = 60


def test_worker_killed_mid_collection_ends_with_every_file_once(stack: Any) -> None:
    folder = Path(stack.docs_root) / _unique("kill")
    folder.mkdir(parents=True)
    for number in range(LEDGERS):
        sentences = " ".join(
            f"Ledger {number} line {line}: the heron counted {number * 7 + line} pebbles."
            for line in range(40)
        )
        (folder / f"ledger-{number:02d}.txt").write_text(sentences + "\n")
    make_pdf(folder / "handbook.pdf")

    clean_name = _unique("clean")
    killed_name = _unique("killed")
    with _client(stack) as client:
        assert (
            client.post(
                "/v1/localdocs/collections", json={"name": clean_name, "paths": [str(folder)]}
            ).status_code
            == 201
        )
        clean = _wait_ready(client, clean_name)
        clean_chunks = {k: v["chunks"] for k, v in _files_by_name(client, clean_name).items()}
        assert clean["files_indexed"] == LEDGERS + 1

        assert (
            client.post(
                "/v1/localdocs/collections", json={"name": killed_name, "paths": [str(folder)]}
            ).status_code
            == 201
        )

        def some_progress() -> bool:
            progress = client.get(f"/v1/localdocs/collections/{killed_name}").json()
            return progress["files_indexed"] >= 1

        poll_until(some_progress, 120, "the first indexed file", poll_s=0.1)
        stack.kill_service("indexer")
        midway = client.get(f"/v1/localdocs/collections/{killed_name}").json()
        # The kill really came mid-collection (else this test would prove nothing).
        assert midway["files_indexed"] < LEDGERS + 1, midway
        stack.start_service("indexer")
        killed = _wait_ready(client, killed_name)
        killed_chunks = {k: v["chunks"] for k, v in _files_by_name(client, killed_name).items()}

        assert killed["files_indexed"] == LEDGERS + 1, (midway, killed)
        assert killed["files_failed"] == 0
        assert killed_chunks == clean_chunks
        assert killed["chunks"] == clean["chunks"]
        paths = [
            entry["path"]
            for entry in client.get(f"/v1/localdocs/collections/{killed_name}/files").json()["data"]
        ]
        # What Weaviate holds, file by file: the same as the clean run, nothing twice.
        assert _weaviate_chunks_per_file(stack, killed_name, paths) == clean_chunks
        # Weaviate holds exactly one copy of each chunk: ask for more than exist of one file.
        hits = client.post(
            "/v1/localdocs/search",
            json={"query": "Ledger 5 heron pebbles", "collections": [killed_name], "k": 50},
        ).json()["data"]
        texts = [hit["text"] for hit in hits]
        assert len(texts) == len(set(texts))

        for name in (clean_name, killed_name):
            client.delete(f"/v1/localdocs/collections/{name}")
    shutil.rmtree(folder, ignore_errors=True)


def test_cli_through_the_gateway(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from llmserver_localdocs import cli

    folder = Path(stack.docs_root) / _unique("cli")
    folder.mkdir(parents=True)
    (folder / "recipe.txt").write_text("The marmalade recipe needs seville oranges and sugar.\n")
    name = _unique("cli")
    gateway = stack.url("gateway")
    assert cli.main(["--url", gateway, "create", name, str(folder), "--wait-timeout", "300"]) == 0
    assert f"{name}: ready" in capsys.readouterr().out
    assert cli.main(["--url", gateway, "list"]) == 0
    assert name in capsys.readouterr().out
    assert cli.main(["--url", gateway, "search", "marmalade oranges", "-c", name]) == 0
    assert "recipe.txt" in capsys.readouterr().out
    assert cli.main(["--url", gateway, "create", name, str(folder), "--no-wait"]) == 2
    assert "409" in capsys.readouterr().out
    with httpx.Client(base_url=gateway, timeout=60) as client:
        assert client.delete(f"/v1/localdocs/collections/{name}").status_code == 200
