"""LocalDocs benchmark: indexing throughput against raw embedding throughput, search latency.

    .venv/bin/python bench/bench_localdocs.py [--docs 8] [--search-chunks 10000] [--queries 100]
        [--live-files 20]

Starts its own stack (devstack: Redis, Tika, Weaviate, inference, localdocs, indexer) on free
ports, or uses running services (bench_stack.py says how).

1. Baseline: the raw throughput (chunks/s) of the inference service's /v1/embeddings on the very
   chunk texts the indexer will make, in the indexer's batch size.
2. Indexing: a collection over the same documents, created through the API, timed until ready
   (Tika, chunking, embedding, Weaviate writes, Celery). Ratio = indexing / baseline; goal >= 0.8.
3. Search: N chunks written straight into Weaviate (batch writes; their vectors are real model
   embeddings of a pool of sentences, reused with a little noise), then
   POST /v1/localdocs/search latency, p50/p95 (query embedding included), and Weaviate's hybrid
   query alone for comparison.
4. Live folders (live_folders.py): seconds from a small file's write in a watched folder to its
   first search hit, p50/p95, against adding the same kind of file through the API.

Prints a table and writes bench/results/localdocs.json.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_results import save_results
from bench_stack import localdocs_services
from live_folders import bench_live_folder

from llmserver_common import docstore
from llmserver_indexer.chunking import chunk_document, text_to_embed

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNK_SIZE = 512
CHUNK_OVERLAP = 64
EMBED_BATCH = 32
WORDS = (
    "orchard lantern harbour granite meadow copper violin quartz river saddle thistle "
    "compass ember willow falcon marble tundra velvet cobalt juniper basalt parsley "
    "glacier pepper walnut bramble cinder harvest beacon anchor"
).split()

logger = logging.getLogger("bench_localdocs")


def sentence(rng: random.Random, number: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
    return f"Record {number}: the {' '.join(words)}."


def make_documents(folder: Path, count: int, rng: random.Random) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        text = " ".join(sentence(rng, number * 1000 + line) for line in range(120))
        path = folder / f"doc-{number:04d}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def embed_all(inference: httpx.Client, texts: list[str], batch: int) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        response = inference.post(
            "/v1/embeddings",
            json={"input": texts[start : start + batch], "input_type": "document"},
        )
        response.raise_for_status()
        rows = sorted(response.json()["data"], key=lambda row: row["index"])
        vectors.extend(row["embedding"] for row in rows)
    return vectors


def wait_ready(client: httpx.Client, name: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/v1/localdocs/collections/{name}").json()
        if state["state"] != "indexing":
            return state
        time.sleep(0.25)
    raise TimeoutError(f"{name} still indexing after {timeout_s}s")


def run(urls: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    docs_root = Path(urls["docs_root"])
    folder = docs_root / f"bench-{uuid.uuid4().hex[:8]}"
    paths = make_documents(folder, args.docs, rng)
    # The same chunk texts the indexer will make (plain text: one unpaged segment per file).
    texts = [
        text_to_embed(chunk, None)
        for path in paths
        for chunk in chunk_document([(None, path.read_text())], CHUNK_SIZE, CHUNK_OVERLAP)
    ]
    result: dict[str, Any] = {"documents": len(paths), "chunks": len(texts)}

    with (
        httpx.Client(base_url=urls["inference"], timeout=300) as inference,
        httpx.Client(base_url=urls["localdocs"], timeout=300) as api,
    ):
        embed_all(inference, texts[:EMBED_BATCH], EMBED_BATCH)  # warm-up
        started = time.perf_counter()
        embed_all(inference, texts, EMBED_BATCH)
        baseline_s = time.perf_counter() - started
        result["embedding_baseline"] = {
            "seconds": baseline_s,
            "chunks_per_s": len(texts) / baseline_s,
        }

        name = f"bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        created = api.post("/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]})
        created.raise_for_status()
        state = wait_ready(api, name, timeout_s=args.timeout)
        indexing_s = time.perf_counter() - started
        result["indexing"] = {
            "seconds": indexing_s,
            "chunks": state["chunks"],
            "files_indexed": state["files_indexed"],
            "files_failed": state["files_failed"],
            "chunks_per_s": state["chunks"] / indexing_s,
        }
        result["indexing_vs_embedding_ratio"] = (
            result["indexing"]["chunks_per_s"] / result["embedding_baseline"]["chunks_per_s"]
        )
        api.delete(f"/v1/localdocs/collections/{name}")

        result["search"] = bench_search(urls, inference, api, args, rng)
        result["live_folder"] = bench_live_folder(api, docs_root, args.live_files)
    return result


def bench_search(
    urls: dict[str, Any],
    inference: httpx.Client,
    api: httpx.Client,
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    """Search latency with `args.search_chunks` chunks written directly to Weaviate."""
    name = f"bench-search-{uuid.uuid4().hex[:8]}"
    folder = Path(urls["docs_root"]) / name
    folder.mkdir(parents=True)
    created = api.post("/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]})
    created.raise_for_status()
    wait_ready(api, name, timeout_s=60)

    client = docstore.connect_weaviate(
        urls["weaviate"], int(urls["weaviate_grpc_port"]), urls["weaviate_api_key"]
    )
    try:
        chunks_collection = docstore.ensure_schema(client)
        # Real model vectors for a pool of distinct sentences; the 10k chunks reuse them with a
        # little noise (embedding 10k chunks on a small CPU would take longer than the bench).
        pool_texts = [sentence(rng, -n) for n in range(args.vector_pool)]
        pool_vectors = embed_all(inference, pool_texts, 64)
        noise = random.Random(11)

        def vector_for(number: int) -> list[float]:
            base = pool_vectors[number % len(pool_vectors)]
            jittered = [x + noise.gauss(0.0, 0.01) for x in base]
            norm = sum(x * x for x in jittered) ** 0.5 or 1.0
            return [x / norm for x in jittered]

        started = time.perf_counter()
        per_file = 100
        total = args.search_chunks
        for file_number in range(0, total, per_file):
            count = min(per_file, total - file_number)
            texts = [
                f"{pool_texts[(file_number + n) % len(pool_texts)]} Copy {file_number + n}."
                for n in range(count)
            ]
            vectors = [vector_for(file_number + n) for n in range(count)]
            info = docstore.DocumentInfo(
                collection=name,
                path=str(folder / f"synthetic-{file_number:06d}.txt"),
                content_hash=f"bench{file_number}",
                title=None,
                author=None,
                date="2026-01-01T00:00:00Z",
                embedding_model="",
            )
            chunks = [docstore.Chunk(text=t, page=None, index=i) for i, t in enumerate(texts)]
            docstore.write_chunks(chunks_collection, info, chunks, vectors, batch_size=100)
        load_s = time.perf_counter() - started
        stored = docstore.count_chunks(chunks_collection, name)

        queries = [" ".join(rng.choice(WORDS) for _ in range(4)) for _ in range(args.queries)]
        for query in queries[:5]:  # warm-up
            api.post("/v1/localdocs/search", json={"query": query, "collections": [name]})
        api_latencies = []
        for query in queries:
            started = time.perf_counter()
            response = api.post(
                "/v1/localdocs/search", json={"query": query, "collections": [name], "k": 3}
            )
            api_latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            assert len(response.json()["data"]) == 3
        query_vectors = embed_all(inference, queries, 64)
        weaviate_latencies = []
        for query, vector in zip(queries, query_vectors, strict=True):
            started = time.perf_counter()
            docstore.hybrid_search(chunks_collection, query, vector, [name], k=3, alpha=0.5)
            weaviate_latencies.append((time.perf_counter() - started) * 1000)
        docstore.delete_collection_chunks(chunks_collection, name)
    finally:
        client.close()
    api.delete(f"/v1/localdocs/collections/{name}")
    return {
        "chunks_stored": stored,
        "distinct_real_vectors": len(pool_vectors),
        "load_seconds": load_s,
        "queries": len(queries),
        "api_ms": {
            "p50": statistics.median(api_latencies),
            "p95": percentile(api_latencies, 0.95),
        },
        "weaviate_hybrid_ms": {
            "p50": statistics.median(weaviate_latencies),
            "p95": percentile(weaviate_latencies, 0.95),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    base = result["embedding_baseline"]
    index = result["indexing"]
    search = result["search"]
    live = result["live_folder"]
    rows = [
        ("documents / chunks", f"{result['documents']} / {result['chunks']}"),
        ("raw embeddings (baseline)", f"{base['chunks_per_s']:.1f} chunks/s"),
        ("indexing through the API", f"{index['chunks_per_s']:.1f} chunks/s"),
        ("ratio indexing / baseline", f"{result['indexing_vs_embedding_ratio']:.2f} (goal >= 0.8)"),
        (f"search API at {search['chunks_stored']} chunks",
         f"p50 {search['api_ms']['p50']:.1f} ms, p95 {search['api_ms']['p95']:.1f} ms"),
        ("  of which Weaviate hybrid",
         f"p50 {search['weaviate_hybrid_ms']['p50']:.1f} ms, "
         f"p95 {search['weaviate_hybrid_ms']['p95']:.1f} ms"),
        (f"live folder: write -> first hit ({live['files']} files)",
         f"p50 {live['write_to_hit_s']['p50']:.2f} s, p95 {live['write_to_hit_s']['p95']:.2f} s"),
        ("  baseline: add-path API -> first hit",
         f"p50 {live['api_add_to_hit_s']['p50']:.2f} s, "
         f"p95 {live['api_add_to_hit_s']['p95']:.2f} s"),
        ("  ratio watched / API (p50)", f"{live['ratio_p50']:.2f} (goal: hit within 5 s)"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=8, help="text documents to index")
    parser.add_argument("--search-chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--vector-pool", type=int, default=128, help="distinct real embeddings behind the 10k"
    )
    parser.add_argument("--live-files", type=int, default=20, help="files for the live row")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here

    with localdocs_services() as urls:
        result = run(urls, args)
    print_table(result)
    save_results(result, "localdocs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
