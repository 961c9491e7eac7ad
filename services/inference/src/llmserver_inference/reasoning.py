"""Reasoning models: the `<think>...</think>` part of a reply (markers set per model) goes to
`reasoning_content`, the rest to `content`, in one piece or as a stream of pieces.

As llama-server's DeepSeek-style parsing, the start marker counts only at the start of the reply
(after whitespace); a chat template whose generation prompt already ends with it (Qwen3,
DeepSeek-R1) opens the reply inside the reasoning. A reply cut short inside the reasoning has
only reasoning_content.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MARKERS = ("<think>", "</think>")


@dataclass(frozen=True)
class ReasoningMarkers:
    start: str
    end: str


class ReasoningSplitter:
    """Splits streamed text into (reasoning, content) pieces. A marker split across pieces is
    recognised: text that may be the beginning of one is held until the next piece shows."""

    def __init__(self, markers: ReasoningMarkers, *, open_at_start: bool = False) -> None:
        self.markers = markers
        # "start": before the reply's first non-space text; "reasoning"; "content".
        self._state = "reasoning" if open_at_start else "start"
        self._held = ""
        # Whether the reply had a reasoning part at all.
        self.entered = open_at_start

    def feed(self, text: str) -> tuple[str, str]:
        """(reasoning, content) to send for this piece of the reply."""
        pending = self._held + text
        self._held = ""
        reasoning = content = ""
        while pending:
            if self._state == "start":
                stripped = pending.lstrip()
                if not stripped:
                    self._held = pending
                    return reasoning, content
                if stripped.startswith(self.markers.start):
                    self._state = "reasoning"
                    self.entered = True
                    pending = stripped[len(self.markers.start) :].lstrip()
                    continue
                if self.markers.start.startswith(stripped):
                    self._held = pending  # maybe the marker, cut short: wait
                    return reasoning, content
                self._state = "content"
                continue
            if self._state == "reasoning":
                at = pending.find(self.markers.end)
                if at >= 0:
                    reasoning += pending[:at]
                    pending = pending[at + len(self.markers.end) :].lstrip()
                    self._state = "content"
                    continue
                keep = _partial_suffix(pending, self.markers.end)
                reasoning += pending[: len(pending) - keep]
                self._held = pending[len(pending) - keep :]
                return reasoning, content
            content += pending
            pending = ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        """What is still held when the reply ends: it was no marker after all."""
        held, self._held = self._held, ""
        if self._state == "reasoning":
            return held, ""
        return "", held


def split_reasoning(
    text: str, markers: ReasoningMarkers, *, open_at_start: bool = False
) -> tuple[str | None, str]:
    """(reasoning or None, content) of a whole reply."""
    splitter = ReasoningSplitter(markers, open_at_start=open_at_start)
    reasoning, content = splitter.feed(text)
    more_reasoning, more_content = splitter.finish()
    reasoning += more_reasoning
    content += more_content
    return (reasoning if splitter.entered else None), content


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0
