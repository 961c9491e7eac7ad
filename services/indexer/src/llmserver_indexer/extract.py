"""Text, metadata and page boundaries from Apache Tika server (through the `tika` package)."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

# Never let the tika package fetch or start a server jar: the Tika server is a separate service.
os.environ.setdefault("TIKA_CLIENT_ONLY", "True")
# The package would otherwise add a log file in /tmp and a second console handler.
os.environ.setdefault("TIKA_LOG_FILE", "")

import requests  # noqa: E402  (the tika package's own HTTP client; its errors are ours to map)
import tika  # noqa: E402
import tika.tika as tika_client  # noqa: E402
from tika import parser as tika_parser  # noqa: E402

tika.TikaClientOnly = True
tika_client.TikaClientOnly = True

logger = logging.getLogger(__name__)

# Metadata keys Tika uses across formats, most specific first.
_TITLE_KEYS = ("dc:title", "pdf:docinfo:title", "title", "Title")
_AUTHOR_KEYS = ("dc:creator", "meta:author", "pdf:docinfo:creator", "Author", "creator")
_CREATED_KEYS = (
    "dcterms:created",
    "pdf:docinfo:created",
    "meta:creation-date",
    "Creation-Date",
    "created",
)
_BLOCK_TAGS = {
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table",
    "blockquote", "section", "article", "td", "th", "title", "dt", "dd",
}  # fmt: skip


class FileProblem(Exception):
    """The file itself cannot be indexed (corrupt, encrypted, binary, too big); not retried."""


class TikaUnavailable(Exception):
    """Tika could not be reached or answered with a server error; worth retrying."""


@dataclass
class ExtractedDocument:
    # (1-based page, text) for paged documents, (None, text) otherwise, in reading order.
    segments: list[tuple[int | None, str]]
    title: str | None
    author: str | None
    created: str | None  # ISO 8601, from metadata
    pages: int | None
    content_type: str | None


class _XHTMLText(HTMLParser):
    """Collects text per page: Tika wraps each PDF page in <div class="page">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.segments: list[tuple[int | None, list[str]]] = [(None, [])]
        self.page_count = 0
        self._div_depth = 0
        self._page_div_depth: int | None = None
        self._skip_depth = 0  # inside <head> (metadata, not content) or <script>/<style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "script", "style"):
            self._skip_depth += 1
            return
        if tag == "div":
            self._div_depth += 1
            classes = (dict(attrs).get("class") or "").split()
            if "page" in classes and self._page_div_depth is None:
                self.page_count += 1
                self._page_div_depth = self._div_depth
                self.segments.append((self.page_count, []))
        if tag in _BLOCK_TAGS:
            self.segments[-1][1].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "script", "style"):
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if tag in _BLOCK_TAGS:
            self.segments[-1][1].append("\n")
        if tag == "div":
            if self._page_div_depth == self._div_depth:
                self._page_div_depth = None
                # Text after the last page (annotations, attachments) is unpaged.
                self.segments.append((None, []))
            self._div_depth = max(0, self._div_depth - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.segments[-1][1].append(data)


def xhtml_to_segments(xhtml: str) -> tuple[list[tuple[int | None, str]], int]:
    """Text per page from Tika's XHTML; blank segments dropped. Returns (segments, page count)."""
    collector = _XHTMLText()
    collector.feed(xhtml)
    collector.close()
    segments: list[tuple[int | None, str]] = []
    for page, parts in collector.segments:
        text = normalize_text("".join(parts))
        if text:
            segments.append((page, text))
    return segments, collector.page_count


def normalize_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _first(metadata: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, list):
            value = next((v for v in value if v), None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def iso_date(value: str | None) -> str | None:
    """Tika's dates are ISO 8601 already; normalise to UTC with a trailing Z where we can."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _short_reason(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    # Drop Java class prefixes and keep it short: the reason is shown to users, not a trace.
    first_line = re.sub(r"^([\w.]+(Exception|Error):\s*)+", "", first_line)
    return first_line[:200] or "unknown error"


def extract(data: bytes, filename: str, tika_url: str, timeout_s: float) -> ExtractedDocument:
    """Ask Tika for the XHTML and metadata of `data` (recursive: embedded documents included)."""
    headers = {
        # The name helps Tika detect text formats (md, rst, csv, source code) that have no magic.
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "X-Tika-OCRskipOcr": "true",
    }
    try:
        status, body = tika_parser.from_buffer(
            data,
            serverEndpoint=tika_url.rstrip("/"),
            xmlContent=True,
            headers=headers,
            requestOptions={"timeout": timeout_s},
            raw_response=True,
        )
    except requests.RequestException as exc:
        raise TikaUnavailable(f"Tika could not be reached: {exc.__class__.__name__}") from exc
    if status in (502, 503, 504):
        raise TikaUnavailable(f"Tika answered {status}")
    if status == 415:
        raise FileProblem("unsupported file type")
    if status != 200:
        # 422 (and 500 for some inputs) carry a Java trace: keep its first line only.
        raise FileProblem(f"Tika could not parse the file: {_short_reason(body or '')}")
    try:
        entries = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise FileProblem("Tika returned an unreadable answer") from exc
    if not isinstance(entries, list) or not entries:
        raise FileProblem("Tika found nothing in the file")
    container: dict[str, Any] = entries[0]
    for key, value in container.items():
        if key.startswith("X-TIKA:EXCEPTION:") and key != "X-TIKA:EXCEPTION:warn":
            if "encrypt" in str(value).lower():
                raise FileProblem("the file is encrypted")
            raise FileProblem(f"Tika could not parse the file: {_short_reason(str(value))}")
    segments, page_count = xhtml_to_segments(str(container.get("X-TIKA:content") or ""))
    for embedded in entries[1:]:  # attachments and embedded files: their text, unpaged
        more, _ = xhtml_to_segments(str(embedded.get("X-TIKA:content") or ""))
        segments.extend((None, text) for _, text in more)
    content_type = _first(container, ("Content-Type",))
    pages_meta = _first(container, ("xmpTPg:NPages",))
    pages = page_count or (int(pages_meta) if pages_meta and pages_meta.isdigit() else None)
    return ExtractedDocument(
        segments=segments,
        title=_first(container, _TITLE_KEYS),
        author=_first(container, _AUTHOR_KEYS),
        created=iso_date(_first(container, _CREATED_KEYS)),
        pages=pages,
        content_type=content_type,
    )
