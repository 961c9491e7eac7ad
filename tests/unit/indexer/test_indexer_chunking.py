"""Chunking: size limits, overlap, sentence preference, pages kept per chunk."""

from __future__ import annotations

import pytest

from llmserver_indexer.chunking import chunk_segments, split_text

SENTENCES = " ".join(f"Sentence number {n} talks about topic {n * 3}." for n in range(60))


def test_chunks_respect_the_size_limit_and_keep_every_word() -> None:
    chunks = split_text(SENTENCES, size=120, overlap=0)
    assert len(chunks) > 5
    assert all(len(chunk) <= 120 for chunk in chunks)
    assert " ".join(chunks).split() == SENTENCES.split()


def test_consecutive_chunks_overlap_by_whole_words() -> None:
    chunks = split_text(SENTENCES, size=120, overlap=40)
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_word = after.split()[0]
        tail = before[-60:]
        # The next chunk starts inside the previous one's last ~overlap characters.
        assert first_word in tail.split(), (before, after)
    # Every word still appears, and overlap only repeats words, never drops them.
    assert set(" ".join(chunks).split()) == set(SENTENCES.split())


def test_chunks_prefer_to_end_on_a_sentence() -> None:
    chunks = split_text(SENTENCES, size=200, overlap=0)
    assert all(chunk.endswith(".") for chunk in chunks)


def test_a_word_longer_than_the_chunk_is_cut() -> None:
    chunks = split_text("short " + "x" * 300 + " tail", size=100, overlap=10)
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert "".join(chunk.replace(" ", "") for chunk in chunks).count("x") >= 300


def test_empty_text_gives_no_chunk() -> None:
    assert split_text("   \n\t ", size=100, overlap=10) == []
    assert chunk_segments([], size=100, overlap=10) == []


def test_overlap_never_stalls_progress() -> None:
    words = " ".join(["abcdefghij"] * 50)
    chunks = split_text(words, size=32, overlap=1000)  # overlap is capped at half a chunk
    assert 0 < len(chunks) < 100


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("text", size=0, overlap=0)


def test_segments_keep_their_page_and_indices_run_across_pages() -> None:
    segments = [(1, "alpha " * 50), (2, "beta " * 10), (3, "gamma delta"), (None, "trailer")]
    chunks = chunk_segments(segments, size=100, overlap=20)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    by_page = {chunk.page for chunk in chunks}
    assert by_page == {1, 2, 3, None}
    # A chunk never mixes two pages.
    for chunk in chunks:
        words = set(chunk.text.split())
        assert len(words & {"alpha", "beta", "gamma", "trailer"}) == 1
    assert [c.page for c in chunks if "gamma" in c.text] == [3]
