"""The model catalog: name/alias/file resolution, unlisted GGUF files, absent files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from gguf import GGUFWriter

from llmserver_inference.catalog import CatalogError, ModelCatalog, load_catalog_file

CATALOG = """
- name: Gemma 3 270M
  filename: gemma.gguf
  kind: chat
  chat_format: gemma
  context_length: 1024
  aliases: [gemma-3-270m]
  defaults: {temperature: 0.7}
- name: all-MiniLM-L6-v2
  filename: minilm.gguf
  kind: embedding
  aliases: [all-minilm-l6-v2, text-embedding-all-minilm-l6-v2]
- name: Nomic Embed Text v1.5
  filename: nomic.gguf
  kind: embedding
  query_prefix: "search_query: "
  document_prefix: "search_document: "
- name: Phi-3 Mini Instruct
  filename: Phi-3-mini-4k-instruct.Q4_0.gguf
  chat_template: "{{ messages[0]['content'] }}"
"""


def write_gguf(path: Path, arch: str, pooling: int | None = None, settled: bool = True) -> None:
    writer = GGUFWriter(str(path), arch)
    writer.add_context_length(128)
    if pooling is not None:
        writer.add_uint32(f"{arch}.pooling_type", pooling)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if settled:
        # As if copied in a while ago: a file written just now is still "landing".
        past = time.time() - 60
        os.utime(path, (past, past))


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    write_gguf(tmp_path / "gemma.gguf", "gemma3")
    write_gguf(tmp_path / "minilm.gguf", "bert", pooling=1)
    write_gguf(tmp_path / "nomic.gguf", "nomic-bert", pooling=1)
    return tmp_path


def test_resolves_display_name_alias_and_file_name_case_insensitively(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    for name in ("Gemma 3 270M", "gemma 3 270m", "GEMMA-3-270M", "gemma.gguf", "Gemma"):
        entry = catalog.resolve(name)
        assert entry is not None, name
        assert entry.name == "Gemma 3 270M"
    minilm = catalog.resolve("text-embedding-all-minilm-l6-v2")
    assert minilm is not None and minilm.kind == "embedding"
    assert catalog.resolve("no-such-model") is None


def test_entry_fields_are_read(models_dir: Path) -> None:
    entry = ModelCatalog(models_dir).resolve("gemma-3-270m")
    assert entry is not None
    assert entry.chat_format == "gemma"
    assert entry.context_length == 1024
    assert entry.defaults == {"temperature": 0.7}
    nomic = ModelCatalog(models_dir).resolve("Nomic Embed Text v1.5")
    assert nomic is not None
    assert (nomic.query_prefix, nomic.document_prefix) == ("search_query: ", "search_document: ")


def test_absent_file_is_not_listed_nor_resolved(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    names = catalog.installed_names()
    assert "Phi-3 Mini Instruct" not in names
    assert catalog.resolve("Phi-3 Mini Instruct") is None
    write_gguf(models_dir / "Phi-3-mini-4k-instruct.Q4_0.gguf", "phi3")
    assert "Phi-3 Mini Instruct" in catalog.installed_names()
    assert catalog.resolve("phi-3 mini instruct") is not None


def test_unlisted_gguf_is_served_under_its_file_name_with_kind_from_metadata(
    models_dir: Path,
) -> None:
    write_gguf(models_dir / "my-chat.gguf", "llama")
    write_gguf(models_dir / "my-embedder.gguf", "bert")
    write_gguf(models_dir / "pooled.gguf", "qwen3", pooling=3)
    catalog = ModelCatalog(models_dir)
    chat = catalog.resolve("my-chat.gguf")
    assert chat is not None and chat.kind == "chat" and not chat.in_catalog
    assert chat.name == "my-chat.gguf"
    embedder = catalog.resolve("MY-EMBEDDER")
    assert embedder is not None and embedder.kind == "embedding"
    pooled = catalog.resolve("pooled.gguf")
    assert pooled is not None and pooled.kind == "embedding"
    listed = catalog.installed_names()
    assert listed[:3] == ["Gemma 3 270M", "all-MiniLM-L6-v2", "Nomic Embed Text v1.5"]
    assert {"my-chat.gguf", "my-embedder.gguf", "pooled.gguf"} <= set(listed)


def test_a_file_still_landing_is_listed_only_once_it_has_settled(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    write_gguf(models_dir / "landing.gguf", "llama", settled=False)
    write_gguf(models_dir / "Phi-3-mini-4k-instruct.Q4_0.gguf", "phi3", settled=False)
    names = catalog.installed_names()
    assert "landing.gguf" not in names and "Phi-3 Mini Instruct" not in names
    assert catalog.resolve("landing.gguf") is None
    past = time.time() - 10
    for name in ("landing.gguf", "Phi-3-mini-4k-instruct.Q4_0.gguf"):
        os.utime(models_dir / name, (past, past))
    assert {"landing.gguf", "Phi-3 Mini Instruct"} <= set(catalog.installed_names())


def test_metadata_is_read_again_when_a_file_is_replaced_in_place(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    path = models_dir / "swapped.gguf"
    write_gguf(path, "llama")
    stamp = path.stat().st_mtime
    assert catalog.resolve("swapped.gguf").kind == "chat"  # type: ignore[union-attr]
    write_gguf(path, "bert", pooling=1)
    os.utime(path, (stamp, stamp))  # same mtime (cp -p): the size still tells them apart
    assert catalog.resolve("swapped.gguf").kind == "embedding"  # type: ignore[union-attr]


def test_non_gguf_files_are_ignored(models_dir: Path) -> None:
    (models_dir / "notes.txt").write_text("hello")
    assert "notes.txt" not in ModelCatalog(models_dir).installed_names()


def test_malformed_catalog_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text("- name: x\n")
    with pytest.raises(CatalogError, match="filename"):
        load_catalog_file(tmp_path / "catalog.yaml")
    (tmp_path / "catalog.yaml").write_text("- name: x\n  filename: x.gguf\n  kind: vision\n")
    with pytest.raises(CatalogError, match="kind"):
        load_catalog_file(tmp_path / "catalog.yaml")


def test_shipped_catalog_has_the_default_models() -> None:
    shipped = Path(__file__).resolve().parents[3] / "models" / "catalog.yaml"
    entries = {e.name: e for e in load_catalog_file(shipped)}
    gemma = entries["Gemma 3 270M"]
    assert gemma.filename == "gemma-3-270m-q4_k_m.gguf"
    assert gemma.chat_format == "gemma" and gemma.kind == "chat"
    minilm = entries["all-MiniLM-L6-v2"]
    assert minilm.filename == "all-MiniLM-L6-v2.F32.gguf" and minilm.kind == "embedding"
    assert set(minilm.aliases) >= {"all-minilm-l6-v2", "text-embedding-all-minilm-l6-v2"}
    nomic = entries["Nomic Embed Text v1.5"]
    assert nomic.query_prefix == "search_query: "
    assert nomic.document_prefix == "search_document: "
    for name in ("Phi-3 Mini Instruct", "Llama 3 8B Instruct", "Mistral Instruct"):
        assert entries[name].chat_template, name
