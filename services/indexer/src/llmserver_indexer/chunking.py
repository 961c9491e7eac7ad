"""Split extracted text into overlapping chunks that follow the document's structure and
remember the page and the section they are in."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmserver_common.docstore import Chunk

_WORD_RE = re.compile(r"\S+")
_SENTENCE_END_RE = re.compile(r"[.!?:;][\"')\]]*$")


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of at most `size` characters, cut between words, preferring sentence ends.

    Consecutive chunks share about `overlap` characters (whole words) so a fact cut at a chunk
    boundary is still whole in one of them. A single word longer than `size` is cut hard.
    """
    if size <= 0:
        raise ValueError("chunk size must be positive")
    overlap = max(0, min(overlap, size // 2))
    words: list[str] = []
    for match in _WORD_RE.finditer(text):
        word = match.group()
        while len(word) > size:  # a pathological token (base64, a URL): cut it
            words.append(word[:size])
            word = word[size:]
        words.append(word)
    chunks: list[str] = []
    start = 0
    while start < len(words):
        end = start
        length = 0
        while end < len(words) and length + len(words[end]) + (1 if end > start else 0) <= size:
            length += len(words[end]) + (1 if end > start else 0)
            end += 1
        if end < len(words):
            # Prefer to end on a sentence, if one ends in the last third of the chunk.
            floor = start + max(1, (end - start) * 2 // 3)
            for cut in range(end, floor, -1):
                if _SENTENCE_END_RE.search(words[cut - 1]):
                    end = cut
                    break
        chunks.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        # Step back over whole words worth about `overlap` characters, always moving forward.
        back = end
        carried = 0
        while back > start + 1 and carried + len(words[back - 1]) + 1 <= overlap:
            carried += len(words[back - 1]) + 1
            back -= 1
        start = back
    return chunks


# -- structure-aware chunking -----------------------------------------------------------------

# A table-of-contents line: a title, dot leaders, a page number.
_LEADER_RE = re.compile(r"(?:\.\s?){5,}\s*\d*\s*$")
# "8.3 How can I ...", "2.4. The glob files", "Chapter 6": a heading even inside a paragraph.
_SECTION_LINE_RE = re.compile(r"^(?:chapter\s+\d+\b|\d+(?:\.\d+)+\.?\s+\S)", re.IGNORECASE)
# "3. Protecting Users' Legal Rights", "# Install": a heading when it is a paragraph of its own.
_HEADING_BLOCK_RE = re.compile(r"^(?:\d+\.?\s+[A-Z]|#{1,6}\s+\S)")
_PAGE_NUMBER_RE = re.compile(r"^(?:page\s+)?\d{1,4}$", re.IGNORECASE)
_DIGITS_RE = re.compile(r"\d+")
# "pack-\naged": a word the layout hyphenated at a line end.
_HYPHENATED_RE = re.compile(r"([a-z])-\n([a-z])")
_HEADING_MAX_CHARS = 160


@dataclass
class _Block:
    text: str
    heading: bool


def _blocks(text: str) -> list[_Block]:
    """The page's paragraphs and headings in order, whitespace collapsed, without
    table-of-contents lines and bare page numbers (they match every query about their titles
    and answer none)."""
    blocks: list[_Block] = []
    lines = [line.strip() for line in _HYPHENATED_RE.sub(r"\1\2", text).splitlines()]
    paragraph: list[str] = []

    def end_paragraph() -> None:
        block = " ".join(" ".join(paragraph).split())
        paragraph.clear()
        if not block or _PAGE_NUMBER_RE.fullmatch(block):
            return
        # A sentence has a comma or ends in one mid-list; a title may end in a full stop
        # ("8. Termination.") when it is short and has no other.
        heading = (
            len(block) <= _HEADING_MAX_CHARS
            and not block.endswith((",", ";"))
            and (not block.endswith(".") or (len(block) <= 100 and block.count(". ") <= 1))
            and bool(_HEADING_BLOCK_RE.match(block))
        )
        blocks.append(_Block(block, heading))

    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            end_paragraph()
        elif _LEADER_RE.search(line):
            continue
        elif _SECTION_LINE_RE.match(line) and len(line) <= _HEADING_MAX_CHARS:
            end_paragraph()
            words = [line]
            # A heading wrapped over a line or two ("...on a Debian" / "system?"): taken when
            # it ends on a question mark, or its paragraph ends there without a full stop.
            follow: list[str] = []
            ahead = index
            while (
                len(follow) < 2
                and not (follow or words)[-1].endswith(("?", ".", ":"))
                and ahead < len(lines)
                and lines[ahead]
            ):
                follow.append(lines[ahead])
                ahead += 1
            ends_paragraph = ahead == len(lines) or not lines[ahead]
            if follow and (
                follow[-1].endswith("?") or (ends_paragraph and not follow[-1].endswith("."))
            ):
                words += follow
                index = ahead
            blocks.append(_Block(" ".join(" ".join(words).split()), heading=True))
        else:
            paragraph.append(line)
    end_paragraph()
    return blocks


def _running_keys(pages: list[list[_Block]]) -> set[str]:
    """Page headers and footers: a first or last block that recurs, digits aside, on at least
    three pages (a document title on every page, "Page 3 of 9")."""
    if len(pages) < 3:
        return set()
    seen: dict[str, int] = {}
    for blocks in pages:
        ends = {blocks[0].text, blocks[-1].text} if blocks else set()
        for text in ends:
            key = _DIGITS_RE.sub("#", text)
            seen[key] = seen.get(key, 0) + 1
    return {key for key, count in seen.items() if count >= 3}


def _is_running_header(block: _Block, position: int, running: set[str]) -> bool:
    if _DIGITS_RE.sub("#", block.text) in running:
        return True
    # "CHAPTER 8. THE DEBIAN PACKAGE… 8.3. HOW CAN I…": a capitalised running head on top.
    letters = [c for c in block.text if c.isalpha()]
    return (
        position == 0
        and len(block.text) <= _HEADING_MAX_CHARS
        and len(letters) >= 8
        and sum(c.isupper() for c in letters) / len(letters) > 0.8
    )


def _tail(text: str, overlap: int) -> str:
    """The last whole words of `text` worth about `overlap` characters."""
    words = text.split()
    kept: list[str] = []
    length = 0
    while words and length + len(words[-1]) + 1 <= overlap:
        length += len(words[-1]) + 1
        kept.insert(0, words.pop())
    return " ".join(kept)


class _Packer:
    """Fills chunks of at most `size` characters with whole paragraphs, for one page."""

    def __init__(self, chunks: list[Chunk], page: int | None, size: int, overlap: int) -> None:
        self.chunks = chunks
        self.page = page
        self.size = size
        self.overlap = overlap
        self.parts: list[str] = []

    @property
    def length(self) -> int:
        return sum(len(part) + 1 for part in self.parts)

    def emit(self, text: str, heading: str | None) -> None:
        self.chunks.append(
            Chunk(text=text, page=self.page, index=len(self.chunks), heading=heading)
        )

    def flush(self, heading: str | None, *, keep_tail: bool) -> None:
        if not self.parts:
            return
        text = " ".join(self.parts)
        self.parts = []
        self.emit(text, heading)
        if keep_tail and self.overlap and (tail := _tail(text, self.overlap)):
            self.parts.append(tail)

    def add(self, block: str, heading: str | None) -> None:
        if self.length + len(block) <= self.size:
            self.parts.append(block)
            return
        # A short start (a heading, an overlap tail) goes with the paragraph, not alone.
        if self.length > max(self.overlap + 1, self.size // 4):
            self.flush(heading, keep_tail=True)
        if self.length + len(block) <= self.size:
            self.parts.append(block)
            return
        # A paragraph longer than a chunk: cut it between words, with the usual overlap.
        pieces = split_text(" ".join([*self.parts, block]), self.size, self.overlap)
        for piece in pieces[:-1]:
            self.emit(piece, heading)
        self.parts = [pieces[-1]]


def chunk_document(
    segments: Sequence[tuple[int | None, str]], size: int, overlap: int
) -> list[Chunk]:
    """Chunks that follow the document's structure: paragraphs are kept whole where they fit,
    a heading starts a new chunk, and every chunk carries the heading of the section it is in
    (for embedding and keyword search; the chunk's text is the document's). Running headers,
    page numbers and table-of-contents lines are left out. Chunks never span two pages, so a
    chunk's page is where its text is; consecutive chunks of a section overlap by about
    `overlap` characters."""
    pages = [(page, _blocks(text)) for page, text in segments]
    running = _running_keys([blocks for page, blocks in pages if page is not None])
    chunks: list[Chunk] = []
    heading: str | None = None
    for page, blocks in pages:
        packer = _Packer(chunks, page, size, overlap)
        for position, block in enumerate(blocks):
            if page is not None and _is_running_header(block, position, running):
                continue
            if block.heading:
                packer.flush(heading, keep_tail=False)
                heading = block.text.lstrip("# ")
            packer.add(block.text, heading)
        packer.flush(heading, keep_tail=False)
    return chunks


def text_to_embed(chunk: Chunk, title: str | None) -> str:
    """What the embedding model sees: the chunk with the section it is in (and the document
    title), so a chunk deep in a section still matches questions about that section."""
    context = [part for part in (title, chunk.heading) if part and part not in chunk.text]
    return "\n".join([*context, chunk.text]) if context else chunk.text
