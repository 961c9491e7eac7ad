"""The embedding engine on the real MiniLM: a query does not wait for a whole bulk request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llmserver_inference.embedding import EmbeddingEngine
from llmserver_inference.llama_backend import load_model

MINILM = Path(__file__).resolve().parents[3] / "models" / "all-MiniLM-L6-v2.F32.gguf"


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbeddingEngine]:
    assert MINILM.exists(), f"{MINILM} is missing: run `make setup`"
    engine = EmbeddingEngine(load_model(str(MINILM), 0), threads=2, batch_size=512, max_sequences=8)
    yield engine
    engine.close()


def test_groups_pack_inputs_up_to_the_batch_and_sequence_limits(engine: EmbeddingEngine) -> None:
    sizes = [len(group) for group in engine._groups([[1] * 200] * 5)]
    assert sizes == [2, 2, 1]  # 512 tokens per decode: two inputs of 200
    assert [len(g) for g in engine._groups([[1] * 10] * 20)] == [8, 8, 4]  # 8 sequences at most
    assert engine._groups([]) == []


def test_a_query_waits_for_one_group_of_a_bulk_request_not_all_of_it(
    engine: EmbeddingEngine,
) -> None:
    line = "The lighthouse keeper's log notes wind, tide and the ships passing the cape. " * 8
    passage = engine.tokenize(line)[:120]
    bulk = [passage] * 160  # 40 decodes of 4 passages
    query = [engine.tokenize("wind and tide")]
    alone = engine.embed(query)
    finished: dict[str, float] = {}
    vectors: list[list[float]] = []

    def index() -> None:
        vectors.extend(engine.embed(bulk))
        finished["bulk"] = time.monotonic()

    indexing = threading.Thread(target=index)
    indexing.start()
    deadline = time.monotonic() + 10
    while not engine.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # a few groups in
    asked = time.monotonic()
    answer = engine.embed(query)
    finished["query"] = time.monotonic()
    indexing.join(timeout=120)
    assert not indexing.is_alive()
    assert "bulk" in finished, "the bulk request did not finish"
    assert finished["query"] < finished["bulk"], (
        f"the query waited for the whole bulk request ({finished['query'] - asked:.2f}s)"
    )
    # Taking turns changes nothing in the results (batch composition moves the last digits).
    assert cosine(answer[0], alone[0]) > 0.99999
    assert len(vectors) == len(bulk)
    single = engine.embed([passage])[0]
    assert cosine(vectors[0], single) > 0.99999 and cosine(vectors[-1], single) > 0.99999


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
