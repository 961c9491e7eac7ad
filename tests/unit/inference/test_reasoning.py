"""Reasoning: <think>...</think> (or a model's own markers) split from the reply, whole or
streamed, markers split across stream pieces included."""

from __future__ import annotations

import pytest

from llmserver_inference.catalog import CatalogError, _parse_entry
from llmserver_inference.chat_shaping import ChatShaping, ChoiceStream, shape_message
from llmserver_inference.reasoning import ReasoningMarkers, ReasoningSplitter, split_reasoning

THINK = ReasoningMarkers("<think>", "</think>")


def streamed(text: str, size: int, markers: ReasoningMarkers = THINK, **kw: bool) -> tuple:
    splitter = ReasoningSplitter(markers, **kw)
    reasoning = content = ""
    for i in range(0, len(text), size):
        r, c = splitter.feed(text[i : i + size])
        reasoning += r
        content += c
    r, c = splitter.finish()
    return reasoning + r, content + c


def test_whole_reply_split() -> None:
    assert split_reasoning("<think>2+2 is 4</think>\n\nIt is 4.", THINK) == ("2+2 is 4", "It is 4.")
    assert split_reasoning("  <think>x</think>y", THINK) == ("x", "y")
    assert split_reasoning("No reasoning here.", THINK) == (None, "No reasoning here.")
    # Only at the start: a marker later in the text is content.
    assert split_reasoning("Say <think> please", THINK) == (None, "Say <think> please")


def test_reply_cut_short_inside_reasoning_is_all_reasoning() -> None:
    assert split_reasoning("<think>still thinking", THINK) == ("still thinking", "")


def test_template_that_opens_the_reasoning() -> None:
    assert split_reasoning("4 plus 4 is 8</think>8", THINK, open_at_start=True) == (
        "4 plus 4 is 8",
        "8",
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_markers_split_across_stream_pieces(size: int) -> None:
    text = "<think>first, the sum</think>The answer is 4 </thin k>."
    assert streamed(text, size) == ("first, the sum", "The answer is 4 </thin k>.")


@pytest.mark.parametrize("size", [1, 2, 4])
def test_text_that_only_looks_like_a_marker_start_is_content(size: int) -> None:
    assert streamed("<thinking is fun", size) == ("", "<thinking is fun")
    assert streamed("<th", size) == ("", "<th")


def test_other_markers() -> None:
    markers = ReasoningMarkers("[THINK]", "[/THINK]")
    assert streamed("[THINK]hmm[/THINK]ok", 2, markers) == ("hmm", "ok")


def test_stream_deltas_carry_reasoning_content() -> None:
    stream = ChoiceStream(0, ChatShaping(reasoning=THINK))
    pieces = ["<thi", "nk>a", "b</th", "ink>", "c"]
    items = []
    for i, piece in enumerate(pieces):
        items += stream.on_text(piece, "stop" if i == len(pieces) - 1 else None, None)
    reasoning = "".join(i["delta"].get("reasoning_content", "") for i in items)
    content = "".join(i["delta"].get("content", "") for i in items)
    assert (reasoning, content) == ("ab", "c")
    assert items[-1]["finish_reason"] == "stop"


def test_message_has_reasoning_content_only_when_there_was_reasoning() -> None:
    message, _ = shape_message("<think>r</think>c", "stop", ChatShaping(reasoning=THINK))
    assert (message["reasoning_content"], message["content"]) == ("r", "c")
    message, _ = shape_message("<think>r</think>c", "stop", ChatShaping(reasoning=None))
    assert "reasoning_content" not in message and message["content"] == "<think>r</think>c"
    message, _ = shape_message("plain", "stop", ChatShaping(reasoning=THINK))
    assert "reasoning_content" not in message


def test_reasoning_then_tool_call() -> None:
    from tests.unit.inference.test_tool_calls import setup_of

    text = '<think>need weather</think><tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    message, finish = shape_message(text, "stop", ChatShaping(tools=setup_of(), reasoning=THINK))
    assert finish == "tool_calls"
    assert message["reasoning_content"] == "need weather"
    assert message["tool_calls"][0]["function"]["name"] == "get_time"


def test_catalog_reasoning_setting() -> None:
    base = {"name": "m", "filename": "m.gguf"}
    assert _parse_entry(base, 0).reasoning_markers == ("<think>", "</think>")
    assert _parse_entry({**base, "reasoning": False}, 0).reasoning_markers is None
    custom = {**base, "reasoning": {"start": "<r>", "end": "</r>"}}
    assert _parse_entry(custom, 0).reasoning_markers == ("<r>", "</r>")
    with pytest.raises(CatalogError):
        _parse_entry({**base, "reasoning": {"start": "<r>"}}, 0)
