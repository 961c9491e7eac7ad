"""A system prompt is never silently lost: where the chat format drops system messages
(llama-cpp-python's Gemma format, the default model's), it opens the first user turn, as
Gemma 3's own template does; formats that keep system messages are left as they are."""

from __future__ import annotations

from llmserver_inference.prompting import ChatTemplater, fold_system_into_first_user

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)


def templater(chat_format: str | None = None, chat_template: str | None = None) -> ChatTemplater:
    return ChatTemplater(
        chat_format=chat_format,
        chat_template=chat_template,
        gguf_template=None,
        bos_token="<s>",
        eos_token="</s>",
    )


def test_gemma_format_gets_the_system_prompt_in_the_first_user_turn() -> None:
    gemma = templater("gemma")
    assert not gemma.keeps_system
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thanks"},
    ]
    text = gemma.render(messages).text
    assert "<start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>" in text
    assert text.count("Answer in French.") == 1
    assert text.endswith("<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n")
    # The caller's messages are not changed.
    assert messages[1] == {"role": "user", "content": "Hello"}


def test_a_template_that_keeps_system_messages_is_left_alone() -> None:
    chatml = templater(chat_template=CHATML)
    assert chatml.keeps_system
    text = chatml.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text.text.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>")


def test_folding_joins_several_system_messages_and_makes_a_user_turn_if_none() -> None:
    folded = fold_system_into_first_user(
        [
            {"role": "system", "content": "A"},
            {"role": "assistant", "content": "x"},
            {"role": "system", "content": "B"},
            {"role": "user", "content": "U"},
        ]
    )
    assert folded == [
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "A\n\nB\n\nU"},
    ]
    assert fold_system_into_first_user([{"role": "system", "content": "A"}]) == [
        {"role": "user", "content": "A"}
    ]
