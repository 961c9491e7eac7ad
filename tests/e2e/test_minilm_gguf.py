"""The converted all-MiniLM-L6-v2 GGUF, run by llama.cpp, embeds like sentence-transformers.

Reference vectors (tests/data/minilm-l6-v2-embeddings.json) were made with sentence-transformers
from the same weights: mean pooling over tokens, then L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
from tokenizers import Tokenizer

from llmserver_inference import convert_minilm

logger = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_only(
        "converts and loads MiniLM in-process; the compose stack serves the same file"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_FILE = REPO_ROOT / "tests" / "data" / "minilm-l6-v2-embeddings.json"
SHARED_MODEL = REPO_ROOT / "models" / "all-MiniLM-L6-v2.F32.gguf"
MIN_COSINE = 0.999
N_BLOCKS = 6
# llama.cpp's names for one BERT block (llama-arch.cpp, LLM_ARCH_BERT).
BLOCK_TENSORS = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "attn_output_norm",
    "ffn_up",
    "ffn_down",
    "layer_output_norm",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def minilm_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Reuse the shared model only when the converter vouches for it; otherwise convert afresh.
    if convert_minilm.is_up_to_date(SHARED_MODEL):
        return SHARED_MODEL
    out = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2.F32.gguf"
    result = convert_minilm.convert(out)
    assert result.converted
    return result.path


@pytest.fixture(scope="module")
def embedder(minilm_gguf: Path) -> Iterator[llama_cpp.Llama]:
    model = llama_cpp.Llama(
        model_path=str(minilm_gguf),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_threads=min(2, os.cpu_count() or 1),
        verbose=False,
    )
    try:
        yield model
    finally:
        model.close()


def _unit(vector: list[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64)
    return array / np.linalg.norm(array)


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    assert field is not None, f"missing GGUF key {key}"
    return field.contents()


def test_gguf_declares_llama_cpp_bert_layout(minilm_gguf: Path) -> None:
    reader = gguf.GGUFReader(minilm_gguf)
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]
    keys = gguf.Keys
    assert _field(reader, keys.General.ARCHITECTURE) == arch
    expected_numbers = {
        keys.LLM.CONTEXT_LENGTH: 512,
        keys.LLM.EMBEDDING_LENGTH: 384,
        keys.LLM.BLOCK_COUNT: N_BLOCKS,
        keys.LLM.FEED_FORWARD_LENGTH: 1536,
        keys.Attention.HEAD_COUNT: 12,
        keys.LLM.POOLING_TYPE: int(gguf.PoolingType.MEAN),
    }
    for key, value in expected_numbers.items():
        assert _field(reader, key.format(arch=arch)) == value, key
    assert _field(reader, keys.Attention.CAUSAL.format(arch=arch)) is False
    eps = _field(reader, keys.Attention.LAYERNORM_EPS.format(arch=arch))
    assert math.isclose(eps, 1e-12, rel_tol=1e-6)

    assert _field(reader, keys.Tokenizer.MODEL) == "bert"
    assert _field(reader, keys.Tokenizer.BOS_ID) == 101  # [CLS]
    assert _field(reader, keys.Tokenizer.EOS_ID) == 102  # [SEP]
    assert _field(reader, keys.Tokenizer.SEP_ID) == 102
    assert _field(reader, keys.Tokenizer.UNK_ID) == 100
    assert _field(reader, keys.Tokenizer.PAD_ID) == 0
    assert _field(reader, keys.Tokenizer.MASK_ID) == 103
    assert _field(reader, keys.Tokenizer.ADD_BOS) is True
    assert _field(reader, keys.Tokenizer.ADD_EOS) is True
    assert _field(reader, convert_minilm.NORMALIZER_LOWERCASE_KEY) is True

    tokens = _field(reader, keys.Tokenizer.LIST)
    token_types = _field(reader, keys.Tokenizer.TOKEN_TYPE)
    assert len(tokens) == len(token_types) == 30522
    # Special tokens verbatim and CONTROL; word starts carry U+2581; "##" continuations lose it.
    assert tokens[101] == "[CLS]" and token_types[101] == gguf.TokenType.CONTROL
    assert "\u2581the" in tokens and "\u2581fox" in tokens
    assert not any(token.startswith("##") for token in tokens)

    tensors = {tensor.name: tensor for tensor in reader.tensors}
    expected = {
        "token_embd.weight",
        "token_types.weight",
        "position_embd.weight",
        "token_embd_norm.weight",
        "token_embd_norm.bias",
    }
    for bid in range(N_BLOCKS):
        for part in BLOCK_TENSORS:
            expected |= {f"blk.{bid}.{part}.weight", f"blk.{bid}.{part}.bias"}
    assert set(tensors) == expected
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())
    assert list(tensors["token_embd.weight"].shape) == [384, 30522]  # ggml order: ne0 first
    assert list(tensors["blk.5.ffn_up.weight"].shape) == [384, 1536]


def test_llama_cpp_tokenizes_like_the_huggingface_tokenizer(
    embedder: llama_cpp.Llama, reference: dict[str, Any]
) -> None:
    hf_tokenizer = Tokenizer.from_file(str(convert_minilm.default_model_dir() / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128; sentence-transformers encodes up to 256 unpadded.
    hf_tokenizer.no_padding()
    hf_tokenizer.enable_truncation(reference["max_seq_length"])
    mismatches = {}
    for item in reference["items"]:
        expected = hf_tokenizer.encode(item["text"]).ids
        actual = embedder.tokenize(item["text"].encode("utf-8"), add_bos=True, special=False)
        if actual != expected:
            mismatches[item["text"]] = (actual, expected)
    assert not mismatches, f"llama.cpp vs HuggingFace token ids: {mismatches}"


def test_embeddings_match_sentence_transformers(
    embedder: llama_cpp.Llama,
    reference: dict[str, Any],
    record_property: Callable[[str, object], None],
) -> None:
    items = reference["items"]
    assert len(items) >= 10
    cosines: dict[str, float] = {}
    for item in items:
        expected = _unit(item["embedding"])
        actual = _unit(embedder.embed(item["text"]))
        assert actual.shape == expected.shape == (384,)
        cosines[item["text"][:40]] = float(actual @ expected)

    worst_text = min(cosines, key=cosines.__getitem__)
    worst = cosines[worst_text]
    mean = sum(cosines.values()) / len(cosines)
    logger.info(
        "MiniLM GGUF vs sentence-transformers over %d items: min cosine %.6f (%r), mean %.6f",
        len(cosines),
        worst,
        worst_text,
        mean,
    )
    record_property("min_cosine", worst)
    record_property("mean_cosine", mean)
    below = {text: round(value, 6) for text, value in cosines.items() if value < MIN_COSINE}
    assert not below, f"cosine < {MIN_COSINE} (min {worst:.6f}): {below}"


def test_conversion_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    first = convert_minilm.convert(tmp_path / "first.gguf")
    second = convert_minilm.convert(tmp_path / "second.gguf")
    assert first.converted and second.converted
    assert _sha256(first.path) == _sha256(second.path)

    # Up to date: a second run leaves the file alone.
    before = first.path.stat().st_mtime_ns
    again = convert_minilm.convert(first.path)
    assert not again.converted
    assert first.path.stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".*.partial"))

    # A damaged file is not up to date and is rewritten to the same bytes.
    first.path.write_bytes(first.path.read_bytes()[:4096])
    assert not convert_minilm.is_up_to_date(first.path)
    repaired = convert_minilm.convert(first.path)
    assert repaired.converted
    assert _sha256(repaired.path) == _sha256(second.path)

    # --force rewrites even an up-to-date file.
    assert convert_minilm.convert(second.path, force=True).converted
