"""Split extracted text into overlapping chunks that remember the page they start on."""

from __future__ import annotations

import re
from collections.abc import Sequence

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


def chunk_segments(
    segments: Sequence[tuple[int | None, str]], size: int, overlap: int
) -> list[Chunk]:
    """Chunks per segment (a page, or the whole unpaged text), numbered across the document.

    Chunks never span two pages, so a chunk's page is exactly where its text is.
    """
    chunks: list[Chunk] = []
    for page, text in segments:
        for piece in split_text(text, size, overlap):
            chunks.append(Chunk(text=piece, page=page, index=len(chunks)))
    return chunks
