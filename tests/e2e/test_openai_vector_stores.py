"""OpenAI's retrieval API (Files, Vector Stores, search) through the gateway, driven with the
official `openai` client exactly as a program written for OpenAI would: uploads land in the
server's data folder, vector stores are LocalDocs collections indexed by the real Celery +
Tika + Weaviate path, search answers with file ids, attributes and page numbers, and errors
come in OpenAI's envelope with its status codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from openai import OpenAI

from tests.e2e.polling import poll_until
from tests.e2e.test_localdocs import PAGE3_QUERY, make_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

READY_TIMEOUT_S = 300.0
# Tests that look at the uploads on disk: under compose they are in the openai-files volume.
ON_DISK = pytest.mark.local_only("it reads the uploads folder, a volume under compose")
CHAT_MODEL = "Gemma 3 270M"
KETTLE = "Kettle instructions: descale the copper kettle with vinegar once a month.\n"
HERON = "Garden notes: the blue heron visits the pond when the frogs sing at dusk.\n"


def _word() -> str:
    return "zq" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def client(stack: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url('gateway')}/v1", api_key="not-needed", timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def handbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openai-docs") / "handbook.pdf"
    make_pdf(path)
    return path


def _upload(client: OpenAI, name: str, data: bytes) -> Any:
    return client.files.create(file=(name, data), purpose="assistants")


def _search_files(client: OpenAI, store_id: str, query: str, **options: Any) -> list[Any]:
    return list(client.vector_stores.search(store_id, query=query, **options))


# -- Files ------------------------------------------------------------------------------------


@ON_DISK
def test_files_upload_list_retrieve_content_delete(client: OpenAI, stack: Any) -> None:
    uploaded = _upload(client, "kettle.txt", KETTLE.encode())
    assert uploaded.id.startswith("file-")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == (
        "kettle.txt",
        len(KETTLE.encode()),
        "assistants",
    )
    # Kept by the server in its own data folder, under a path it chose.
    stored = Path(stack.data_dir) / "openai" / "files" / uploaded.id / "kettle.txt"
    assert stored.read_bytes() == KETTLE.encode()

    assert client.files.retrieve(uploaded.id).filename == "kettle.txt"
    assert uploaded.id in {f.id for f in client.files.list(purpose="assistants")}
    assert uploaded.id not in {f.id for f in client.files.list(purpose="batch")}
    assert client.files.content(uploaded.id).read() == KETTLE.encode()

    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted is True and deleted.id == uploaded.id
    assert not stored.exists()
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(uploaded.id)
    assert missing.value.body["param"] == "file_id"
    assert uploaded.id in missing.value.body["message"]


def test_files_list_pages_with_after(client: OpenAI) -> None:
    ids = [_upload(client, f"page-{i}.txt", f"page {i}".encode()).id for i in range(3)]
    first = client.files.list(limit=2, order="asc", purpose="assistants")
    collected = [f.id for f in first]  # auto-pagination follows `after` to the end
    assert [i for i in collected if i in ids] == ids
    newest = client.files.list(limit=1, order="desc")
    assert newest.data[0].id == ids[-1] and newest.has_more is True
    for file_id in ids:
        client.files.delete(file_id)


@ON_DISK
@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../../etc/evil.txt", "invalid_file_name"),
        ("folder\\evil.txt", "invalid_file_name"),
        ("program.exe", "unsupported_file"),
        ("no-extension", "unsupported_file"),
    ],
)
def test_upload_refuses_paths_and_unsupported_types(
    client: OpenAI, stack: Any, name: str, code: str
) -> None:
    before = set((Path(stack.data_dir) / "openai" / "files").glob("*/*"))
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, name, b"hello")
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == "file"
    assert refused.value.body["code"] == code
    assert set((Path(stack.data_dir) / "openai" / "files").glob("*/*")) == before


@ON_DISK
def test_upload_over_the_size_limit_is_413_and_leaves_nothing(client: OpenAI, stack: Any) -> None:
    folder = Path(stack.data_dir) / "openai" / "files"
    before = set(folder.glob("*"))
    too_big = b"x" * (50 * 1024 * 1024 + 1)  # LOCALDOCS_FILES_MAX_BYTES defaults to 50 MiB
    with pytest.raises(openai.APIStatusError) as refused:
        _upload(client, "big.txt", too_big)
    assert refused.value.status_code == 413
    assert refused.value.body["param"] == "file"
    assert set(folder.glob("*")) == before


def test_upload_refuses_unknown_purpose_and_missing_file(client: OpenAI, stack: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert refused.value.body["param"] == "purpose"
    reply = httpx.post(f"{stack.url('gateway')}/v1/files", data={"purpose": "assistants"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "file"


# -- Vector stores ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(client: OpenAI, handbook: Path) -> Iterator[dict[str, Any]]:
    """A vector store made with a PDF at once, then a text file and a batch added."""
    pdf = _upload(client, "handbook.pdf", handbook.read_bytes())
    kettle = _upload(client, "kettle.txt", KETTLE.encode())
    created = client.vector_stores.create(
        name="manuals",
        file_ids=[pdf.id],
        metadata={"team": "orchard"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert created.id.startswith("vs_")
    assert created.metadata == {"team": "orchard"}
    attached = client.vector_stores.files.create_and_poll(
        file_id=kettle.id, vector_store_id=created.id, attributes={"kind": "notes", "year": 2024}
    )
    assert attached.status == "completed", attached
    client.vector_stores.files.update(
        file_id=pdf.id, vector_store_id=created.id, attributes={"kind": "manual", "year": 2019}
    )
    batch = client.vector_stores.file_batches.upload_and_poll(
        created.id, files=[("heron.md", HERON.encode())]
    )
    assert batch.status == "completed", batch
    assert batch.file_counts.completed == 1
    yield {"id": created.id, "pdf": pdf.id, "kettle": kettle.id, "batch": batch.id}
    client.vector_stores.delete(created.id)


def test_vector_store_indexes_through_localdocs(
    client: OpenAI, stack: Any, store: dict[str, Any]
) -> None:
    ready = poll_until(
        lambda: (vs := client.vector_stores.retrieve(store["id"])).status == "completed" and vs,
        READY_TIMEOUT_S,
        "the vector store to complete",
    )
    assert ready.name == "manuals"
    assert ready.file_counts.completed == 3 and ready.file_counts.total == 3
    assert ready.usage_bytes > 0
    assert ready.expires_after.days == 7
    assert ready.expires_at == ready.last_active_at + 7 * 86400
    # The same store is a LocalDocs collection, indexed by the same workers.
    collection = httpx.get(f"{stack.url('gateway')}/v1/localdocs/collections/{store['id']}")
    assert collection.status_code == 200
    assert collection.json()["files_indexed"] == 3
    listed = client.vector_stores.files.list(store["id"], filter="completed")
    assert {f.id for f in listed} >= {store["pdf"], store["kettle"]}
    pdf = client.vector_stores.files.retrieve(file_id=store["pdf"], vector_store_id=store["id"])
    assert pdf.attributes == {"kind": "manual", "year": 2019}
    batch_files = client.vector_stores.file_batches.list_files(
        vector_store_id=store["id"], batch_id=store["batch"]
    )
    assert len(batch_files.data) == 1 and batch_files.data[0].status == "completed"


def test_search_answers_with_file_page_and_attributes(
    client: OpenAI, store: dict[str, Any]
) -> None:
    results = _search_files(client, store["id"], PAGE3_QUERY, max_num_results=3)
    assert 1 <= len(results) <= 3
    top = results[0]
    assert top.file_id == store["pdf"] and top.filename == "handbook.pdf"
    assert top.content[0].type == "text" and "zorbleflux" in top.content[0].text
    assert top.attributes == {"kind": "manual", "year": 2019}
    assert top.page == 3  # ours, beside OpenAI's fields
    assert 0.0 < top.score <= 1.0


def test_a_vector_store_serves_the_chat_localdocs_field_too(
    client: OpenAI, store: dict[str, Any]
) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": PAGE3_QUERY}],
        max_tokens=4,
        extra_body={"localdocs": {"collections": [store["id"]], "k": 2}},
    )
    references = reply.choices[0].references  # type: ignore[attr-defined]
    assert references and references[0]["file"] == "handbook.pdf"
    assert references[0]["page"] == 3 and references[0]["collection"] == store["id"]


def test_search_filters_on_attributes(client: OpenAI, store: dict[str, Any]) -> None:
    query = "copper kettle vinegar"
    notes = _search_files(
        client, store["id"], query, filters={"type": "eq", "key": "kind", "value": "notes"}
    )
    assert notes and {r.file_id for r in notes} == {store["kettle"]}
    old = _search_files(
        client, store["id"], query, filters={"type": "lt", "key": "year", "value": 2020}
    )
    assert old and {r.file_id for r in old} == {store["pdf"]}
    both = _search_files(
        client,
        store["id"],
        query,
        filters={
            "type": "or",
            "filters": [
                {"type": "eq", "key": "kind", "value": "notes"},
                {"type": "in", "key": "kind", "value": ["manual"]},
            ],
        },
    )
    assert {r.file_id for r in both} == {store["pdf"], store["kettle"]}
    none = _search_files(
        client,
        store["id"],
        query,
        filters={
            "type": "and",
            "filters": [
                {"type": "eq", "key": "kind", "value": "notes"},
                {"type": "gte", "key": "year", "value": 2025},
            ],
        },
    )
    assert none == []


def test_search_score_threshold_and_query_lists(client: OpenAI, store: dict[str, Any]) -> None:
    everything = _search_files(client, store["id"], "kettle", max_num_results=10)
    assert everything
    cut = everything[0].score
    above = _search_files(client, store["id"], "kettle", ranking_options={"score_threshold": cut})
    assert above and all(r.score >= cut for r in above)
    assert len(above) <= len(everything)
    page = client.vector_stores.search(
        store["id"], query=["blue heron pond", PAGE3_QUERY], rewrite_query=True
    )
    found = {r.filename for r in page}
    assert {"heron.md", "handbook.pdf"} <= found


def test_vector_store_list_modify_and_pages(client: OpenAI) -> None:
    made = [client.vector_stores.create(name=f"list-{i}") for i in range(3)]
    try:
        ids = [vs.id for vs in made]
        ascending = [vs.id for vs in client.vector_stores.list(limit=1, order="asc")]
        assert [i for i in ascending if i in ids] == ids
        page = client.vector_stores.list(limit=1, order="asc", after=ids[0])
        assert page.data[0].id == ids[1] and page.has_more is True
        before = client.vector_stores.list(limit=5, order="asc", before=ids[2])
        assert before.data[-1].id == ids[1]
        changed = client.vector_stores.update(
            ids[0], name="renamed", metadata={"a": "b"}, expires_after=None
        )
        assert changed.name == "renamed" and changed.metadata == {"a": "b"}
        assert changed.expires_after is None
        assert changed.status == "completed" and changed.file_counts.total == 0
    finally:
        for vs in made:
            assert client.vector_stores.delete(vs.id).deleted is True


# -- Responses API: file_search ---------------------------------------------------------------


def test_responses_file_search_puts_snippets_in_the_prompt_and_cites_file_and_page(
    client: OpenAI, store: dict[str, Any]
) -> None:
    tool = {"type": "file_search", "vector_store_ids": [store["id"]], "max_num_results": 2}
    response = client.responses.create(
        model=CHAT_MODEL,
        input=PAGE3_QUERY,
        tools=[tool],  # type: ignore[list-item]
        include=["file_search_call.results"],
        max_output_tokens=8,
        temperature=0,
    )
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    assert call.queries == [PAGE3_QUERY]
    assert call.results and call.results[0].file_id == store["pdf"]
    assert call.results[0].filename == "handbook.pdf"
    assert "zorbleflux" in call.results[0].text
    assert message.type == "message" and message.role == "assistant"
    text = message.content[0]
    assert text.type == "output_text" and response.output_text == text.text
    cited = [(a.file_id, a.filename, a.page) for a in text.annotations if a.type == "file_citation"]
    assert (store["pdf"], "handbook.pdf", 3) in cited
    assert all(0 <= a.index <= len(text.text) for a in text.annotations)

    # The same question without the tool: no search, and a shorter prompt (no snippets).
    plain = client.responses.create(
        model=CHAT_MODEL, input=PAGE3_QUERY, max_output_tokens=8, temperature=0
    )
    assert [item.type for item in plain.output] == ["message"]
    assert plain.output[0].content[0].annotations == []
    assert response.usage.input_tokens > plain.usage.input_tokens + 20


def test_responses_results_only_when_included_and_refusals(
    client: OpenAI, store: dict[str, Any]
) -> None:
    tool = {"type": "file_search", "vector_store_ids": [store["id"]]}
    response = client.responses.create(
        model=CHAT_MODEL,
        input=[{"role": "user", "content": "copper kettle vinegar"}],
        instructions="Answer briefly.",
        tools=[tool],  # type: ignore[list-item]
        max_output_tokens=4,
    )
    assert response.output[0].type == "file_search_call"
    assert response.output[0].results is None
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(
            model=CHAT_MODEL,
            input="x",
            tools=[{"type": "file_search", "vector_store_ids": ["vs_nope"]}],
            max_output_tokens=1,
        )
    assert unknown.value.body["param"] == "tools.vector_store_ids"
    with pytest.raises(openai.BadRequestError) as other_tool:
        client.responses.create(
            model=CHAT_MODEL,
            input="x",
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
            max_output_tokens=1,
        )
    assert other_tool.value.body["param"] == "tools.0.type"


def test_responses_stream_events_in_order_with_citations(
    client: OpenAI, store: dict[str, Any]
) -> None:
    tool = {"type": "file_search", "vector_store_ids": [store["id"]], "max_num_results": 2}
    # The SDK's own stream helper checks every event against the snapshot it accumulates.
    with client.responses.stream(
        model=CHAT_MODEL,
        input=PAGE3_QUERY,
        tools=[tool],  # type: ignore[list-item]
        include=["file_search_call.results"],
        max_output_tokens=6,
        temperature=0,
    ) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.index("response.file_search_call.completed") < kinds.index(
        "response.output_text.delta"
    )
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    message = final.output[-1]
    assert message.content[0].text == deltas
    assert final.output[0].type == "file_search_call"
    assert final.output[0].results[0].file_id == store["pdf"]
    added = [e.annotation for e in events if e.type == "response.output_text.annotation.added"]
    assert any(a.file_id == store["pdf"] and a.page == 3 for a in added)
    assert final.usage.output_tokens >= 1


# -- failures, removals, partial readiness ------------------------------------------------------


def test_unknown_ids_are_404_in_openai_envelope(client: OpenAI, store: dict[str, Any]) -> None:
    with pytest.raises(openai.NotFoundError) as vs:
        client.vector_stores.retrieve("vs_doesnotexist")
    assert vs.value.body["type"] == "invalid_request_error"
    assert vs.value.body["param"] == "vector_store_id"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search("vs_doesnotexist", query="x")
    with pytest.raises(openai.NotFoundError) as attach:
        client.vector_stores.files.create(vector_store_id=store["id"], file_id="file-nope")
    assert attach.value.body["param"] == "file_id"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(file_id="file-nope", vector_store_id=store["id"])
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=store["id"])
    with pytest.raises(openai.NotFoundError):
        client.files.delete("file-nope")
    # A store made with an unknown file id is not made at all.
    count = len(list(client.vector_stores.list()))
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(name="broken", file_ids=["file-nope"])
    assert len(list(client.vector_stores.list())) == count


def test_bad_search_requests_are_400(client: OpenAI, store: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as empty:
        client.vector_stores.search(store["id"], query="  ")
    assert empty.value.body["param"] == "query"
    with pytest.raises(openai.BadRequestError) as many:
        client.vector_stores.search(store["id"], query="x", max_num_results=51)
    assert many.value.body["param"] == "max_num_results"
    with pytest.raises(openai.BadRequestError) as op:
        client.vector_stores.search(
            store["id"],
            query="x",
            filters={"type": "like", "key": "k", "value": "v"},  # type: ignore[typeddict-item]
        )
    assert op.value.body["param"].startswith("filters")


def test_failed_file_has_its_reason(client: OpenAI) -> None:
    broken = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<" + bytes(64)
    corrupt = _upload(client, "corrupt.pdf", broken)
    vs = client.vector_stores.create(name="failing")
    try:
        result = client.vector_stores.files.create_and_poll(
            file_id=corrupt.id, vector_store_id=vs.id
        )
        assert result.status == "failed"
        assert result.last_error is not None
        assert result.last_error.code in ("invalid_file", "unsupported_file")
        assert result.last_error.message
        failed = client.vector_stores.files.list(vs.id, filter="failed")
        assert [f.id for f in failed] == [corrupt.id]
        assert client.vector_stores.retrieve(vs.id).file_counts.failed == 1
    finally:
        client.vector_stores.delete(vs.id)
        client.files.delete(corrupt.id)


def test_searchable_while_another_file_indexes_and_removals_leave_search(
    client: OpenAI, stack: Any
) -> None:
    first_word, second_word = _word(), _word()
    first = _upload(client, "first.txt", f"The {first_word} lives in the first file.\n".encode())
    second = _upload(client, "second.txt", f"The {second_word} lives in the second.\n".encode())
    vs = client.vector_stores.create(name="removals")
    try:
        done = client.vector_stores.files.create_and_poll(file_id=first.id, vector_store_id=vs.id)
        assert done.status == "completed"
        # Attached, not waited for: the store answers with what is ready.
        client.vector_stores.files.create(file_id=second.id, vector_store_id=vs.id)
        hits = _search_files(client, vs.id, first_word)
        assert hits and hits[0].file_id == first.id
        poll_until(
            lambda: _search_files(client, vs.id, second_word),
            READY_TIMEOUT_S,
            "the second file in search",
        )

        # Detached from the store: out of search at once; the file itself stays.
        deleted = client.vector_stores.files.delete(file_id=first.id, vector_store_id=vs.id)
        assert deleted.deleted is True
        assert all(r.file_id != first.id for r in _search_files(client, vs.id, first_word))
        assert client.files.retrieve(first.id).id == first.id

        # A file deleted through the Files API leaves every store it was in, and search.
        client.files.delete(second.id)
        assert all(r.file_id != second.id for r in _search_files(client, vs.id, second_word))
        assert [f.id for f in client.vector_stores.files.list(vs.id)] == []
        chunks = httpx.get(f"{stack.url('gateway')}/v1/localdocs/collections/{vs.id}").json()
        assert chunks["chunks"] == 0
    finally:
        client.vector_stores.delete(vs.id)
        client.files.delete(first.id)


def test_cancelling_a_batch_takes_its_unindexed_files_out(client: OpenAI, handbook: Path) -> None:
    word = _word()
    pdf = _upload(client, "cancelled.pdf", handbook.read_bytes())
    note = _upload(client, "cancelled.txt", f"The {word} was cancelled.\n".encode())
    vs = client.vector_stores.create(name="cancelling")
    try:
        batch = client.vector_stores.file_batches.create(vs.id, file_ids=[pdf.id, note.id])
        # Asked at once: Tika, chunking and embedding take far longer than this request.
        cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)
        assert cancelled.status == "cancelled"
        assert cancelled.file_counts.cancelled == 2 and cancelled.file_counts.in_progress == 0
        listed = client.vector_stores.files.list(vs.id, filter="cancelled")
        assert {f.id for f in listed} == {pdf.id, note.id}
        assert _search_files(client, vs.id, word) == []
        assert client.vector_stores.retrieve(vs.id).file_counts.cancelled == 2
    finally:
        client.vector_stores.delete(vs.id)
        client.files.delete(pdf.id)
        client.files.delete(note.id)


@ON_DISK
def test_deleting_a_vector_store_deletes_its_collection_and_records(
    client: OpenAI, stack: Any
) -> None:
    upload = _upload(client, "brief.txt", b"A short-lived note.\n")
    vs = client.vector_stores.create(name="short-lived")
    batch = client.vector_stores.file_batches.create_and_poll(vs.id, file_ids=[upload.id])
    localdocs = f"{stack.url('gateway')}/v1/localdocs/collections/{vs.id}"
    assert httpx.get(localdocs).status_code == 200
    assert client.vector_stores.delete(vs.id).deleted is True
    assert httpx.get(localdocs).status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(vs.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id)
    left = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert [key for key in left.scan_iter("llmserver:openai:*") if vs.id in key] == []
    assert not left.sismember(f"llmserver:openai:file_vector_stores:{upload.id}", vs.id)
    assert not (Path(stack.data_dir) / "openai" / "vector_stores" / vs.id).exists()
    # The file itself stays, as on OpenAI.
    assert client.files.retrieve(upload.id).id == upload.id
    client.files.delete(upload.id)


@ON_DISK
def test_unavailable_folder_shows_on_the_vector_store(client: OpenAI, stack: Any) -> None:
    word = _word()
    upload = _upload(client, "kept.txt", f"The {word} must stay searchable.\n".encode())
    vs = client.vector_stores.create(name="unavailable", file_ids=[upload.id])
    folder = Path(stack.data_dir) / "openai" / "vector_stores" / vs.id
    away = folder.with_name(vs.id + ".away")
    try:
        poll_until(
            lambda: client.vector_stores.retrieve(vs.id).status == "completed",
            READY_TIMEOUT_S,
            "the store to complete",
        )
        folder.rename(away)
        gone = poll_until(
            lambda: (v := client.vector_stores.retrieve(vs.id)).unavailable_paths and v,
            READY_TIMEOUT_S,
            "the folder to be reported unavailable",
        )
        assert gone.unavailable_paths[0]["path"] == str(folder)
        assert "missing" in gone.unavailable_paths[0]["reason"]
        assert _search_files(client, vs.id, word)  # files kept meanwhile
        away.rename(folder)
        poll_until(
            lambda: not client.vector_stores.retrieve(vs.id).unavailable_paths,
            READY_TIMEOUT_S,
            "the folder to be available again",
        )
    finally:
        if away.exists():
            away.rename(folder)
        client.vector_stores.delete(vs.id)
        client.files.delete(upload.id)
