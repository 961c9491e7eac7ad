"""Live folders through the real stack: files added, changed, renamed and deleted are reflected in
search without a reindex (a rename embeds nothing); a folder missing when the services start
keeps its index and resumes without re-embedding when it is back; a burst of 200 files is
embedded once each; a path added through the gateway is indexed, and removing it removes its
chunks and nothing else.

The periodic rescan runs every 300 s here, so anything seen within WATCH_BOUND_S came from the
folder watcher. Embedding work is counted on the inference service's /metrics.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.polling import poll_until
from tests.e2e.test_localdocs import _weaviate_chunks_per_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
logger = logging.getLogger(__name__)

# Far under the periodic rescan (300 s), generous for a loaded 2-core machine; the issue's
# target (5 s for a small text file) is measured by `make bench`, not asserted here.
WATCH_BOUND_S = 30.0
READY_TIMEOUT_S = 300.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _word() -> str:
    """A made-up word no other document contains, to search for."""
    return "zq" + uuid.uuid4().hex[:10]


def embedded_documents(stack: Any) -> float:
    """Texts the inference service embedded as documents (the indexer's work) so far."""
    text = httpx.get(f"{stack.url('inference')}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "inference_embedding_inputs":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {"input_type": "document"}:
                    return sample.value
    return 0.0


class Collection:
    """One collection through the LocalDocs API."""

    def __init__(self, stack: Any, paths: list[Path]) -> None:
        self.stack = stack
        self.name = _unique("live")
        self.client = httpx.Client(base_url=stack.url("localdocs"), timeout=60)
        reply = self.client.post(
            "/v1/localdocs/collections",
            json={"name": self.name, "paths": [str(p) for p in paths]},
        )
        assert reply.status_code == 201, reply.text

    def get(self) -> dict[str, Any]:
        reply = self.client.get(f"/v1/localdocs/collections/{self.name}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    def files(self) -> dict[str, dict[str, Any]]:
        reply = self.client.get(f"/v1/localdocs/collections/{self.name}/files")
        assert reply.status_code == 200, reply.text
        return {Path(entry["path"]).name: entry for entry in reply.json()["data"]}

    def ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        return poll_until(
            lambda: (state := self.get())["state"] == "ready" and state,
            timeout_s,
            f"{self.name} to be ready",
        )

    def hits(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        reply = self.client.post(
            "/v1/localdocs/search", json={"query": query, "collections": [self.name], "k": k}
        )
        assert reply.status_code == 200, reply.text
        return [hit for hit in reply.json()["data"] if query in hit["text"]]

    def seconds_until(self, predicate: Callable[[], bool], what: str) -> float:
        started = time.monotonic()
        poll_until(predicate, WATCH_BOUND_S, what)
        return time.monotonic() - started

    def close(self) -> None:
        self.client.delete(f"/v1/localdocs/collections/{self.name}")
        self.client.close()


@pytest.fixture
def collection_over(stack: Any) -> Iterator[Callable[..., Collection]]:
    made: list[Collection] = []

    def make(*paths: Path) -> Collection:
        made.append(Collection(stack, list(paths)))
        return made[-1]

    yield make
    for collection in made:
        collection.close()


def _folder(stack: Any, files: dict[str, str]) -> Path:
    folder = Path(stack.docs_root) / _unique("watched")
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _all_quiet(stack: Any) -> None:
    """No collection of this run still indexing, so embedding counts move only for ours."""
    with httpx.Client(base_url=stack.url("localdocs"), timeout=60) as client:
        poll_until(
            lambda: all(
                c["state"] != "indexing"
                for c in client.get("/v1/localdocs/collections").json()["data"]
            ),
            READY_TIMEOUT_S,
            "every collection to finish indexing",
            poll_s=1.0,
        )


def test_added_changed_renamed_and_deleted_files_reach_search(
    stack: Any, collection_over: Callable[..., Collection]
) -> None:
    folder = _folder(stack, {"start.txt": "The folder starts with this one note.\n"})
    docs = collection_over(folder)
    docs.ready()

    added = _word()
    (folder / "added.txt").write_text(f"The courier's password is {added} today.\n")
    took_added = docs.seconds_until(lambda: bool(docs.hits(added)), "an added file in search")

    changed = _word()
    (folder / "added.txt").write_text(f"The courier's password changed to {changed}.\n")
    took_changed = docs.seconds_until(
        lambda: bool(docs.hits(changed)) and not docs.hits(added), "a changed file in search"
    )

    # Renamed: its chunks move with their vectors (Weaviate's, checked per path), no embedding.
    _all_quiet(stack)
    embedded = embedded_documents(stack)
    chunks = docs.files()["added.txt"]["chunks"]
    (folder / "added.txt").rename(folder / "renamed.txt")
    took_renamed = docs.seconds_until(
        lambda: [h["file"] for h in docs.hits(changed)] == ["renamed.txt"],
        "a renamed file in search under its new name only",
    )
    assert embedded_documents(stack) == embedded, "a renamed file was embedded again"
    stored = _weaviate_chunks_per_file(
        stack,
        docs.name,
        [str(folder.resolve() / "added.txt"), str(folder.resolve() / "renamed.txt")],
    )
    assert stored == {"added.txt": 0, "renamed.txt": chunks}

    (folder / "renamed.txt").unlink()
    took_deleted = docs.seconds_until(lambda: not docs.hits(changed), "a deleted file gone")
    assert set(docs.files()) == {"start.txt"}
    logger.info(
        "seconds to search: added %.1f, changed %.1f, renamed %.1f, deleted %.1f",
        took_added, took_changed, took_renamed, took_deleted,
    )  # fmt: skip


def test_a_folder_missing_at_start_keeps_its_index_and_resumes_without_embedding(
    stack: Any, collection_over: Callable[..., Collection]
) -> None:
    secret = _word()
    folder = _folder(
        stack,
        {
            "minutes.txt": f"The board approved project {secret} on Monday.\n",
            "budget.txt": "The budget grows by four percent next year.\n",
            "staff.txt": "Eleven people joined the company this quarter.\n",
        },
    )
    docs = collection_over(folder)
    indexed = docs.ready()
    assert indexed["files_indexed"] == 3
    _all_quiet(stack)
    embedded = embedded_documents(stack)

    # As a drive not yet mounted when the services start: stopped, folder gone, started.
    parked = folder.with_name(folder.name + "-away")
    stack.stop_service("indexer")
    stack.stop_service("localdocs")
    folder.rename(parked)
    stack.start_service("localdocs")
    stack.start_service("indexer")

    missing = poll_until(
        lambda: (state := docs.get())["unavailable_paths"] and state,
        READY_TIMEOUT_S,
        "the missing folder to be reported",
    )
    [entry] = missing["unavailable_paths"]
    assert entry["path"] == str(folder.resolve())
    assert entry["reason"].startswith("missing")
    assert (missing["files_total"], missing["chunks"]) == (3, indexed["chunks"])
    assert docs.hits(secret), "the files of a missing folder stay searchable"

    parked.rename(folder)
    back = poll_until(
        lambda: (
            (state := docs.get())["unavailable_paths"] == [] and state["state"] == "ready" and state
        ),
        WATCH_BOUND_S,
        "the folder's return to be noticed",
    )
    assert (back["files_indexed"], back["chunks"]) == (3, indexed["chunks"])
    _all_quiet(stack)
    assert embedded_documents(stack) == embedded, "unchanged files were embedded again"
    assert docs.hits(secret)


def test_a_burst_of_200_files_is_embedded_once_each_and_touching_them_embeds_nothing(
    stack: Any, collection_over: Callable[..., Collection]
) -> None:
    folder = _folder(stack, {"seed.txt": "A folder about to receive many notes.\n"})
    docs = collection_over(folder)
    docs.ready()
    _all_quiet(stack)
    embedded = embedded_documents(stack)

    words = [_word() for _ in range(200)]
    burst = folder / "burst"
    burst.mkdir()
    for i, word in enumerate(words):
        (burst / f"note{i:03}.txt").write_text(f"Note {i} keeps the word {word}.\n")
    state = poll_until(
        lambda: (s := docs.get())["files_indexed"] == 201 and s["state"] == "ready" and s,
        READY_TIMEOUT_S,
        "200 new files indexed",
        poll_s=1.0,
    )
    assert state["files_failed"] == 0
    # 200 notes that differ by one made-up word embed almost alike, so the hybrid ranking rests
    # on BM25's share: the note is asked for among the top 20, not the top 5.
    for word in (words[0], words[-1]):
        poll_until(lambda w=word: docs.hits(w, k=20), WATCH_BOUND_S, f"the note with {word}")
    # Each small file is one chunk: 200 texts embedded means each file exactly once.
    assert embedded_documents(stack) - embedded == 200

    # A `git checkout` rewriting every file with the same content: looked at, not embedded.
    time.sleep(1.1)  # updated_at has one-second resolution
    touched_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    later = time.time() + 10
    for path in burst.iterdir():
        os.utime(path, (later, later))
    poll_until(
        lambda: (
            all(
                f["updated_at"] >= touched_at
                for name, f in docs.files().items()
                if name != "seed.txt"
            )
            and docs.get()["state"] == "ready"
        ),
        READY_TIMEOUT_S,
        "every touched file looked at again",
        poll_s=1.0,
    )
    assert embedded_documents(stack) - embedded == 200


def test_adding_then_removing_a_path_through_the_gateway(
    stack: Any, collection_over: Callable[..., Collection]
) -> None:
    """A path added to a collection is indexed and searchable; removed, its chunks go and
    nothing else does. Both changes are asked of the public API (the gateway)."""
    kept_word, removed_word = _word(), _word()
    kept = _folder(stack, {"kept.txt": f"The kept folder says {kept_word}.\n"})
    removed = _folder(stack, {"gone.txt": f"The removed folder says {removed_word}.\n"})
    docs = collection_over(kept)
    docs.ready()
    gateway = httpx.Client(base_url=stack.url("gateway"), timeout=60)
    docs.client.close()
    docs.client = gateway  # every call of this test goes through the public API

    reply = gateway.post(
        f"/v1/localdocs/collections/{docs.name}/paths", json={"paths": [str(removed)]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["paths"] == [str(kept.resolve()), str(removed.resolve())]
    poll_until(lambda: docs.hits(removed_word), WATCH_BOUND_S, "the added path in search")
    assert docs.ready()["files_indexed"] == 2

    reply = gateway.delete(
        f"/v1/localdocs/collections/{docs.name}/paths", params={"path": str(removed)}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["paths"] == [str(kept.resolve())]
    poll_until(lambda: not docs.hits(removed_word), WATCH_BOUND_S, "the removed path's chunks gone")
    state = docs.ready()
    assert state["files_total"] == 1 and docs.hits(kept_word)
    gone = str((removed / "gone.txt").resolve())
    assert _weaviate_chunks_per_file(stack, docs.name, [gone]) == {"gone.txt": 0}
    # The folder itself is untouched: only the index forgot it.
    assert (removed / "gone.txt").exists()

    for params, status, code in (
        ({"path": str(removed)}, 404, "path_not_in_collection"),
        ({"path": str(kept)}, 409, "last_path"),
    ):
        reply = docs.client.delete(f"/v1/localdocs/collections/{docs.name}/paths", params=params)
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["code"] == code
