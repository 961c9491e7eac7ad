"""Incremental output: stop-string hold-back and chat templates (no model needed)."""

from __future__ import annotations

import pytest

from llmserver_common.errors import APIError
from llmserver_inference.engine import _stop_prefix_len
from llmserver_inference.prompting import ChatTemplater, chat_format_exists


def test_stop_prefix_hold_back() -> None:
    assert _stop_prefix_len("Hello wor", ["world"]) == 3
    assert _stop_prefix_len("Hello", ["world"]) == 0
    assert _stop_prefix_len("a\n\n", ["\n\n\n", "END"]) == 2
    assert _stop_prefix_len("xE", ["\n\n\n", "END"]) == 1


def test_gemma_format_is_registered_and_renders_turns() -> None:
    assert chat_format_exists("gemma")
    templater = ChatTemplater(
        chat_format="gemma",
        chat_template=None,
        gguf_template=None,
        bos_token="<bos>",
        eos_token="<eos>",
    )
    prompt = templater.render([{"role": "user", "content": "Hi"}])
    assert "<start_of_turn>user\nHi<end_of_turn>" in prompt.text
    assert prompt.text.endswith("<start_of_turn>model\n")
    assert not prompt.has_bos


def test_gpt4all_template_with_extra_variables_renders() -> None:
    template = (
        "{{- '<|im_start|>system\\n' }}{% if toolList|length > 0 %}tools{% endif %}"
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    templater = ChatTemplater(
        chat_format=None,
        chat_template=template,
        gguf_template=None,
        bos_token="<s>",
        eos_token="</s>",
    )
    text = templater.render([{"role": "user", "content": "Hi"}]).text
    assert "<|im_start|>user\nHi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_broken_catalog_template_falls_back_to_gguf_template() -> None:
    templater = ChatTemplater(
        chat_format=None,
        chat_template="{{ raise_exception('nope') }}",
        gguf_template="{% for m in messages %}[{{ m['content'] }}]{% endfor %}",
        bos_token="",
        eos_token="",
    )
    assert templater.render([{"role": "user", "content": "Hi"}]).text == "[Hi]"


def test_no_template_at_all_is_a_400() -> None:
    templater = ChatTemplater(
        chat_format=None, chat_template=None, gguf_template=None, bos_token="", eos_token=""
    )
    with pytest.raises(APIError) as info:
        templater.render([{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 400
