"""Turn markers: found in the chat format/template, and they end a sequence in the scheduler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import llama_cpp
import pytest

from llmserver_inference.catalog import load_catalog_file
from llmserver_inference.engine import ChatEngine
from llmserver_inference.generation import GenerationEvent
from llmserver_inference.llama_backend import load_model, tokenize
from llmserver_inference.models import _stop_token_ids
from llmserver_inference.prompting import ChatTemplater
from llmserver_inference.sampling import Samplers, SamplingParams

from .engine_events import run_request

MODELS = Path(__file__).resolve().parents[3] / "models"
GEMMA = MODELS / "gemma-3-270m-q4_k_m.gguf"


def templater(chat_format: str | None = None, chat_template: str | None = None) -> ChatTemplater:
    return ChatTemplater(
        chat_format=chat_format,
        chat_template=chat_template,
        gguf_template=None,
        bos_token="<s>",
        eos_token="</s>",
    )


def test_markers_of_gemma_format() -> None:
    assert templater("gemma").turn_markers() == ["<end_of_turn>", "<start_of_turn>"]


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("Phi-3 Mini Instruct", "<|end|>"),
        ("Llama 3 8B Instruct", "<|eot_id|>"),
        ("Nous Hermes 2 Mistral DPO", "<|im_end|>"),
        ("Qwen2-1.5B-Instruct", "<|im_end|>"),
    ],
)
def test_markers_of_gpt4all_templates(name: str, marker: str) -> None:
    entry = next(e for e in load_catalog_file(MODELS / "catalog.yaml") if e.name == name)
    assert marker in templater(chat_template=entry.chat_template).turn_markers()


@pytest.mark.skipif(not GEMMA.exists(), reason="the default chat model is not in models/")
def test_turn_marker_ends_the_sequence_and_is_not_shown() -> None:
    """Force the model to emit <start_of_turn> (not an EOG token in this GGUF)."""
    model = load_model(str(GEMMA), 0)
    vocab = model.vocab
    stop_ids = _stop_token_ids(vocab, ["<end_of_turn>", "<start_of_turn>"])
    start_of_turn = tokenize(vocab, "<start_of_turn>", False, True)[0]
    assert start_of_turn in stop_ids
    assert not llama_cpp.llama_vocab_is_eog(vocab, start_of_turn)
    engine = ChatEngine(
        model,
        context_length=256,
        slots=1,
        threads=2,
        batch_size=64,
        max_queue=1,
        stop_token_ids=stop_ids,
    )

    async def generate() -> list[GenerationEvent]:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        bias = (llama_cpp.llama_logit_bias * 1)()
        bias[0].token = start_of_turn
        bias[0].bias = 1000.0
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, 1, bias)
        )
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        prompt = tokenize(vocab, "Hello", True, True)
        params = SamplingParams(temperature=0.0, max_tokens=5)
        return await run_request(engine, prompt, params, Samplers(chain=chain))

    try:
        events = asyncio.run(generate())
    finally:
        engine.close()
    last = events[-1]
    assert last.error is None
    assert last.finish_reason == "stop"
    assert last.completion_tokens == 0
    assert "".join(e.text for e in events) == ""
