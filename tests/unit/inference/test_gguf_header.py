"""The fast GGUF metadata reader the catalog uses on the request path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gguf import GGUFWriter

from llmserver_inference.catalog import read_gguf_info
from llmserver_inference.gguf_header import GGUFHeaderError, iter_metadata

VOCAB = 262_144  # Gemma 3's vocabulary: the size that made the old reader take seconds


def write_model_header(path: Path, arch: str, pooling: int | None = None) -> None:
    writer = GGUFWriter(str(path), arch)
    writer.add_string("general.name", "test model")
    writer.add_token_list([f"tok{i}" for i in range(VOCAB)])
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_chat_template("{{ messages }}")
    # Written after the vocabulary on purpose: the reader must find keys wherever they are.
    writer.add_context_length(4096)
    if pooling is not None:
        writer.add_uint32(f"{arch}.pooling_type", pooling)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def big_vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "big.gguf"
    write_model_header(path, "bert", pooling=2)
    return path


def test_reads_keys_after_a_large_vocabulary_quickly(big_vocab: Path) -> None:
    started = time.perf_counter()
    info = read_gguf_info(big_vocab)
    elapsed = time.perf_counter() - started
    assert (info.architecture, info.pooling_type, info.context_length) == ("bert", 2, 4096)
    assert info.is_embedding
    # Well under the gateway's 1 s health timeout even on a slow CI core.
    assert elapsed < 0.5, elapsed


def test_values_match_the_file(big_vocab: Path) -> None:
    metadata = dict(iter_metadata(big_vocab))
    assert metadata["general.name"] == "test model"
    assert metadata["tokenizer.chat_template"] == "{{ messages }}"
    assert metadata["tokenizer.ggml.tokens"] is None  # arrays are skipped, not read
    assert metadata["bert.context_length"] == 4096


def test_a_file_cut_short_or_foreign_is_an_error_not_a_hang(
    big_vocab: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(big_vocab.read_bytes()[: 1 << 20])  # mid-vocabulary, as while copying
    with pytest.raises(GGUFHeaderError):
        read_gguf_info(cut)
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(b"not a model at all")
    with pytest.raises(GGUFHeaderError):
        read_gguf_info(foreign)
