"""Chunking: size limits, overlap, sentence preference, pages kept per chunk."""

from __future__ import annotations

import pytest

from llmserver_common.docstore import Chunk
from llmserver_indexer.chunking import chunk_document, split_text, text_to_embed

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


def test_overlap_never_stalls_progress() -> None:
    words = " ".join(["abcdefghij"] * 50)
    chunks = split_text(words, size=32, overlap=1000)  # overlap is capped at half a chunk
    assert 0 < len(chunks) < 100


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("text", size=0, overlap=0)


def test_segments_keep_their_page_and_indices_run_across_pages() -> None:
    segments = [(1, "alpha " * 50), (2, "beta " * 10), (3, "gamma delta"), (None, "trailer")]
    chunks = chunk_document(segments, size=100, overlap=20)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    by_page = {chunk.page for chunk in chunks}
    assert by_page == {1, 2, 3, None}
    # A chunk never mixes two pages.
    for chunk in chunks:
        words = set(chunk.text.split())
        assert len(words & {"alpha", "beta", "gamma", "trailer"}) == 1
    assert [c.page for c in chunks if "gamma" in c.text] == [3]


# -- chunk_document: chunks that follow the document's structure -------------------------------

MANUAL_PAGE_1 = """CONTENTS
1.1 Installing the widget . . . . . . . . . . . . . . 2
1.2 Removing the widget . . . . . . . . . . . . . . . 2
"""
MANUAL_PAGE_2 = (
    """WIDGET MANUAL 1.1. INSTALLING THE WIDGET

1.1 Installing the widget on a
small machine

Unpack the archive and run the installer. The installer checks the free disk space
first and refuses to continue when less than two gigabytes are free.

"""
    + " ".join(f"Step {n} copies part {n} of the widget into place." for n in range(30))
    + """

1.2 Removing the widget
To remove it, run the uninstaller; your settings are kept in a hidden folder until you
delete them yourself.

2
"""
)
MANUAL_PAGE_3 = """WIDGET MANUAL 1.2. REMOVING THE WIDGET

The uninstaller never touches files you made with the widget, wher-
ever they are.

3
"""


def test_a_heading_starts_a_chunk_and_every_chunk_knows_its_section() -> None:
    segments = [(1, MANUAL_PAGE_1), (2, MANUAL_PAGE_2), (3, MANUAL_PAGE_3)]
    chunks = chunk_document(segments, size=300, overlap=40)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    # The table of contents and the running headers are not indexed.
    assert not any(". . ." in chunk.text or "WIDGET MANUAL" in chunk.text for chunk in chunks)
    # A heading wrapped over two lines is one heading, and its section's chunks all carry it.
    installing = [c for c in chunks if c.heading == "1.1 Installing the widget on a small machine"]
    assert installing and installing[0].text.startswith("1.1 Installing the widget")
    assert len(installing) > 2 and all(c.page == 2 for c in installing)
    assert all(len(c.text) <= 300 for c in chunks)
    removing = [c for c in chunks if c.heading == "1.2 Removing the widget"]
    assert removing[0].text.startswith("1.2 Removing the widget To remove it")
    # The section runs onto page 3: its chunk there is page 3's, still under the heading;
    # a word hyphenated at a line end is whole again; the bare page number is gone.
    assert removing[-1].page == 3
    assert "wherever they are." in removing[-1].text
    assert not any(chunk.text.strip().endswith((" 2", " 3")) for chunk in chunks)


def test_consecutive_chunks_of_a_section_overlap() -> None:
    chunks = chunk_document([(2, MANUAL_PAGE_2)], size=200, overlap=40)
    steps = [c.text for c in chunks if "Step" in c.text]
    assert len(steps) > 3
    for before, after in zip(steps, steps[1:], strict=False):
        assert after.split()[0] in before.split()[-10:], (before, after)


def test_plain_text_numbered_sections_are_headings_when_they_stand_alone() -> None:
    text = (
        "Terms and conditions.\n\n  3. Protecting Users' Legal Rights\n\n"
        "No covered work shall be deemed part of an effective technological measure.\n\n"
        "Keep 3 copies. 4 of them are spare.\n\n  8. Termination.\n\n"
        "Your license from a particular copyright holder is reinstated.\n"
    )
    chunks = chunk_document([(None, text)], size=80, overlap=10)
    deemed = next(c for c in chunks if "deemed" in c.text)
    assert deemed.heading == "3. Protecting Users' Legal Rights"
    assert deemed.page is None
    reinstated = next(c for c in chunks if "reinstated" in c.text)
    assert reinstated.heading == "8. Termination."
    assert next(c for c in chunks if "spare" in c.text).heading == deemed.heading


def test_text_to_embed_adds_the_title_and_section_once() -> None:
    chunk = Chunk(text="Run the uninstaller.", page=3, index=7, heading="1.2 Removing")
    assert text_to_embed(chunk, "Widget Manual") == (
        "Widget Manual\n1.2 Removing\nRun the uninstaller."
    )
    first = Chunk(text="1.2 Removing. Run it.", page=3, index=6, heading="1.2 Removing")
    assert text_to_embed(first, None) == "1.2 Removing. Run it."
    assert chunk_document([], size=100, overlap=10) == []
