"""Retrieval benchmark: do the three snippets LocalDocs finds answer the question?

    .venv/bin/python bench/bench_retrieval.py [--k 10]

A corpus of real documents (bench/retrieval/corpus: two PDF manuals, an HTML page, a text file;
SOURCES.md names them and their licences) is indexed through the API as one collection; then each
known-item question of bench/retrieval/questions.yaml is asked. A result answers it when it comes
from the right file and, for PDFs, starts on the right page (for other files: contains the
evidence). Reported: recall@1, recall@3 and MRR (within the top --k) for

- the product: POST /v1/localdocs/search (hybrid search as configured),
- baselines measured in the same run on the same chunks: BM25 alone, and vectors alone (the
  query embedded by the same model), straight from Weaviate;
- hybrid search at other fusion weights (--alphas), to tune LOCALDOCS_SEARCH_ALPHA;
- the rerank stage (LOCALDOCS_RERANK_MODEL): the top N hybrid hits (--rerank-candidates, at the
  API's alpha) reordered by inference's POST /v1/rerank, as localdocs does it.

Search cost: mean milliseconds per question of the hybrid search and of hybrid + rerank.

Also indexing throughput (chunks/s), so a better chunking can be checked against its cost.
Starts its own stack (bench_stack.py). Prints a table and writes bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench_results import save_results
from bench_stack import localdocs_services
from weaviate.classes.query import Filter

from llmserver_common import docstore
from llmserver_localdocs.rerank import rerank_text
from llmserver_localdocs.settings import LocalDocsSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "bench" / "retrieval"

logger = logging.getLogger("bench_retrieval")

Search = Callable[[str], list[dict[str, Any]]]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def answers(question: dict[str, Any], reference: dict[str, Any]) -> bool:
    if reference.get("file") != question["file"]:
        return False
    if "pages" in question:
        return reference.get("page") in question["pages"]
    return _normal(question["evidence"]) in _normal(reference.get("text") or "")


def score(questions: list[dict[str, Any]], search: Search) -> dict[str, Any]:
    """recall@1, recall@3 and MRR of one way of searching, the rank per question, and the mean
    milliseconds a search took."""
    ranks: list[int | None] = []
    started = time.perf_counter()
    for question in questions:
        results = search(question["q"])
        rank = next((i + 1 for i, ref in enumerate(results) if answers(question, ref)), None)
        ranks.append(rank)
    count = len(questions)
    return {
        "recall@1": sum(1 for r in ranks if r == 1) / count,
        "recall@3": sum(1 for r in ranks if r is not None and r <= 3) / count,
        "mrr": sum(1 / r for r in ranks if r is not None) / count,
        "ms_per_search": (time.perf_counter() - started) * 1000 / count,
        "ranks": ranks,
    }


def index_corpus(api: httpx.Client, docs_root: Path, timeout_s: float) -> dict[str, Any]:
    folder = docs_root / f"retrieval-{uuid.uuid4().hex[:8]}"
    shutil.copytree(DATA / "corpus", folder, ignore=shutil.ignore_patterns("*.md"))
    name = f"retrieval-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    api.post(
        "/v1/localdocs/collections", json={"name": name, "paths": [str(folder)]}
    ).raise_for_status()
    deadline = time.monotonic() + timeout_s
    while (state := api.get(f"/v1/localdocs/collections/{name}").json())["state"] == "indexing":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still indexing after {timeout_s} s")
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    if state["files_failed"]:
        raise RuntimeError(f"corpus files failed to index: {state}")
    return {
        "name": name,
        "files": state["files_indexed"],
        "chunks": state["chunks"],
        "seconds": seconds,
        "chunks_per_s": state["chunks"] / seconds,
    }


def run(urls: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    questions = yaml.safe_load((DATA / "questions.yaml").read_text())
    with (
        httpx.Client(base_url=urls["localdocs"], timeout=120) as api,
        httpx.Client(base_url=urls["inference"], timeout=120) as inference,
    ):
        indexing = index_corpus(api, Path(urls["docs_root"]), args.timeout)
        name = indexing["name"]
        logger.info("indexed %d chunks in %.0f s", indexing["chunks"], indexing["seconds"])

        def through_api(query: str) -> list[dict[str, Any]]:
            reply = api.post(
                "/v1/localdocs/search", json={"query": query, "collections": [name], "k": args.k}
            )
            reply.raise_for_status()
            return reply.json()["data"]

        def embed(query: str) -> list[float]:
            reply = inference.post("/v1/embeddings", json={"input": query, "input_type": "query"})
            reply.raise_for_status()
            return reply.json()["data"][0]["embedding"]

        client = docstore.connect_weaviate(
            urls["weaviate"], int(urls["weaviate_grpc_port"]), urls["weaviate_api_key"]
        )
        try:
            chunks = docstore.ensure_schema(client)
            only_ours = Filter.by_property("collection").equal(name)

            def bm25(query: str) -> list[dict[str, Any]]:
                found = chunks.query.bm25(
                    query=query,
                    query_properties=list(docstore.SEARCH_PROPERTIES),
                    filters=only_ours,
                    limit=args.k,
                )
                return [docstore.to_reference(o.properties, None) for o in found.objects]

            def vectors(query: str) -> list[dict[str, Any]]:
                found = chunks.query.near_vector(
                    near_vector=embed(query), filters=only_ours, limit=args.k
                )
                return [docstore.to_reference(o.properties, None) for o in found.objects]

            def hybrid(alpha: float) -> Search:
                def search(query: str) -> list[dict[str, Any]]:
                    return docstore.hybrid_search(
                        chunks, query, embed(query), [name], k=args.k, alpha=alpha
                    )

                return search

            def reranked(candidates: int) -> Search:
                alpha = LocalDocsSettings().search_alpha  # the API's fusion weight

                def search(query: str) -> list[dict[str, Any]]:
                    hits = docstore.hybrid_search(
                        chunks, query, embed(query), [name], k=candidates, alpha=alpha
                    )
                    reply = inference.post(
                        "/v1/rerank",
                        json={"query": query, "documents": [rerank_text(h) for h in hits]},
                    )
                    reply.raise_for_status()
                    return [hits[r["index"]] for r in reply.json()["results"]][: args.k]

                return search

            result = {
                "questions": len(questions),
                "indexing": indexing,
                "api": score(questions, through_api),
                "bm25": score(questions, bm25),
                "vectors": score(questions, vectors),
                # The fusion weight, tried on the same chunks (the API uses the setting).
                "alpha": {str(a): score(questions, hybrid(a)) for a in args.alphas},
                # The rerank stage on the same chunks, over this many hybrid candidates.
                "rerank": {str(n): score(questions, reranked(n)) for n in args.rerank_candidates},
            }
        finally:
            client.close()
        api.delete(f"/v1/localdocs/collections/{name}")
    return result


def print_table(result: dict[str, Any], questions: list[dict[str, Any]]) -> None:
    index = result["indexing"]
    print(
        f"{result['questions']} questions over {index['files']} files, {index['chunks']} chunks "
        f"(indexed at {index['chunks_per_s']:.1f} chunks/s)"
    )
    print(f"{'search':<34}{'recall@1':>10}{'recall@3':>10}{'MRR':>8}{'ms/search':>11}")
    for key, label in (
        ("api", "/v1/localdocs/search"),
        ("bm25", "baseline: BM25 alone"),
        ("vectors", "baseline: vectors alone"),
    ):
        _print_row(label, result[key])
    for alpha, row in result["alpha"].items():
        _print_row(f"hybrid, alpha {alpha}", row)
    for candidates, row in result["rerank"].items():
        _print_row(f"hybrid top {candidates} + rerank", row)
    missed = [
        (q["q"], rank)
        for q, rank in zip(questions, result["api"]["ranks"], strict=True)
        if rank is None or rank > 3
    ]
    for text, rank in missed:
        print(f"  not in the top 3 ({'rank ' + str(rank) if rank else 'not found'}): {text}")


def _print_row(label: str, row: dict[str, Any]) -> None:
    print(
        f"{label:<34}{row['recall@1']:>10.3f}{row['recall@3']:>10.3f}{row['mrr']:>8.3f}"
        f"{row['ms_per_search']:>11.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=10, help="results asked per question")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to index")
    parser.add_argument(
        "--alphas",
        type=float,
        nargs="*",
        default=[0.3, 0.5, 0.7],
        help="fusion weights to try on the same chunks (0 = BM25 only, 1 = vectors only)",
    )
    parser.add_argument(
        "--rerank-candidates",
        type=int,
        nargs="*",
        default=[10, 20],
        help="hybrid hits reranked by POST /v1/rerank (the rerank stage's rows)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with localdocs_services() as urls:
        result = run(urls, args)
    print_table(result, yaml.safe_load((DATA / "questions.yaml").read_text()))
    save_results(result, "retrieval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
