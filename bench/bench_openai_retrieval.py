"""OpenAI's retrieval API against LocalDocs' own, on the same files, in the same run.

    .venv/bin/python bench/bench_openai_retrieval.py [--docs 12] [--queries 40] [--rounds 2]

Starts its own stack (devstack, every service, gateway included) on free ports; everything is
asked through the gateway, with plain HTTP on both sides (no client library's cost).

- Baseline: the documents written into a folder under the allowed root, a collection created
  over it (POST /v1/localdocs/collections), timed until every file is indexed; then
  POST /v1/localdocs/search latency.
- Measured: the same documents uploaded (POST /v1/files, multipart), a vector store created
  with their ids (POST /v1/vector_stores), timed until it is completed with every file; then
  POST /v1/vector_stores/{id}/search latency on the same queries.

Rounds alternate the two (baseline first, then measured, then again), and searches alternate
query by query (either side first by turns), so a machine that gets busier affects both.
Ratios are measured / baseline (medians over rounds for ingest, p50 over every query for
search); goal: <= 1.05.
Prints a table and writes bench/results/openai_retrieval.json.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_results import save_results
from bench_stack import devstack

WORDS = (
    "orchard lantern harbour granite meadow copper violin quartz river saddle thistle "
    "compass ember willow falcon marble tundra velvet cobalt juniper basalt parsley "
    "glacier pepper walnut bramble cinder harvest beacon anchor"
).split()
POLL_S = 0.05

logger = logging.getLogger("bench_openai_retrieval")


def make_texts(count: int, rng: random.Random) -> dict[str, bytes]:
    """Documents of a few paragraphs, each with one code word a query can find."""
    texts = {}
    for number in range(count):
        paragraphs = [
            " ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "." for _ in range(4)
        ]
        paragraphs.insert(2, f"The code word of document {number} is zq{number:04d}quill.")
        texts[f"doc-{number:03d}.txt"] = "\n\n".join(paragraphs).encode()
    return texts


def timed_until(done: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"{what} not done after {timeout_s} s")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def ingest_localdocs(
    api: httpx.Client, docs_root: Path, texts: dict[str, bytes], timeout_s: float
) -> tuple[str, float]:
    name = f"bench-openai-base-{uuid.uuid4().hex[:8]}"
    folder = docs_root / name
    started = time.perf_counter()
    folder.mkdir(parents=True)
    for file_name, data in texts.items():
        (folder / file_name).write_bytes(data)
    api.post(
        "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
    ).raise_for_status()

    def ready() -> bool:
        state = api.get(f"/v1/localdocs/collections/{name}").json()
        return state["state"] == "ready" and state["files_indexed"] == len(texts)

    timed_until(ready, timeout_s, name)
    return name, time.perf_counter() - started


def ingest_openai(
    api: httpx.Client, texts: dict[str, bytes], timeout_s: float
) -> tuple[str, list[str], float]:
    started = time.perf_counter()
    file_ids = []
    for file_name, data in texts.items():
        reply = api.post(
            "/v1/files", files={"file": (file_name, data)}, data={"purpose": "assistants"}
        )
        reply.raise_for_status()
        file_ids.append(reply.json()["id"])
    created = api.post(
        "/v1/vector_stores", json={"name": "bench", "file_ids": file_ids}
    ).raise_for_status()
    store_id = created.json()["id"]

    def ready() -> bool:
        store = api.get(f"/v1/vector_stores/{store_id}").json()
        return store["status"] == "completed" and store["file_counts"]["completed"] == len(texts)

    timed_until(ready, timeout_s, store_id)
    return store_id, file_ids, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def run(gateway: str, docs_root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(26)
    texts = make_texts(args.docs, rng)
    base_s: list[float] = []
    api_s: list[float] = []
    base_ms: list[float] = []
    api_ms: list[float] = []
    with httpx.Client(base_url=gateway, timeout=120) as api:
        for round_number in range(args.rounds):
            name, seconds = ingest_localdocs(api, docs_root, texts, args.timeout)
            base_s.append(seconds)
            store_id, file_ids, seconds = ingest_openai(api, texts, args.timeout)
            api_s.append(seconds)
            logger.info(
                "round %d: localdocs %.2f s, openai %.2f s", round_number, base_s[-1], api_s[-1]
            )
            for number in range(args.queries):
                query = f"zq{number % args.docs:04d}quill {rng.choice(WORDS)}"
                asks = [
                    (base_ms, "/v1/localdocs/search", {"query": query, "collections": [name]}),
                    (api_ms, f"/v1/vector_stores/{store_id}/search", {"query": query}),
                ]
                # Either side first by turns: neither always follows the other.
                for latencies, path, body in asks if number % 2 == 0 else asks[::-1]:
                    started = time.perf_counter()
                    reply = api.post(path, json={**body, "k": 3, "max_num_results": 3})
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert reply.raise_for_status().json()["data"], query
            api.delete(f"/v1/localdocs/collections/{name}").raise_for_status()
            api.delete(f"/v1/vector_stores/{store_id}").raise_for_status()
            for file_id in file_ids:
                api.delete(f"/v1/files/{file_id}").raise_for_status()
    ingest_ratio = statistics.median(api_s) / statistics.median(base_s)
    search_ratio = statistics.median(api_ms) / statistics.median(base_ms)
    return {
        "documents": args.docs,
        "rounds": args.rounds,
        "queries_per_round": args.queries,
        "ingest_s": {"localdocs": base_s, "openai": api_s},
        "ingest_ratio": ingest_ratio,
        "search_ms": {
            "localdocs": {"p50": percentile(base_ms, 0.5), "p95": percentile(base_ms, 0.95)},
            "openai": {"p50": percentile(api_ms, 0.5), "p95": percentile(api_ms, 0.95)},
        },
        "search_ratio_p50": search_ratio,
    }


def print_table(result: dict[str, Any]) -> None:
    ingest = result["ingest_s"]
    search = result["search_ms"]
    rows = [
        ("documents / rounds", f"{result['documents']} / {result['rounds']}"),
        ("ingest via /v1/localdocs (baseline)",
         f"median {statistics.median(ingest['localdocs']):.2f} s"),
        ("upload + vector store via /v1/files, /v1/vector_stores",
         f"median {statistics.median(ingest['openai']):.2f} s"),
        ("  ratio", f"{result['ingest_ratio']:.3f} (goal <= 1.05)"),
        ("search /v1/localdocs/search (baseline)",
         f"p50 {search['localdocs']['p50']:.1f} ms, p95 {search['localdocs']['p95']:.1f} ms"),
        ("search /v1/vector_stores/{id}/search",
         f"p50 {search['openai']['p50']:.1f} ms, p95 {search['openai']['p95']:.1f} ms"),
        ("  ratio (p50)", f"{result['search_ratio_p50']:.3f} (goal <= 1.05)"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--queries", type=int, default=40, help="per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    with devstack() as stack:
        result = run(stack.url("gateway"), stack.docs_root, args)
    print_table(result)
    save_results(result, "openai_retrieval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
