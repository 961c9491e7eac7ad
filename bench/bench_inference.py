"""Inference benchmark: the service against in-process llama-cpp-python, same model and threads.

    python bench/bench_inference.py

Prints a table of ratios against baselines measured in the same run (best of REPEATS each, as
the machine is shared) and writes
bench/results/inference.json. Starts the inference service itself on a free port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("INFERENCE_MODELS_DIR", REPO / "models"))
CHAT_FILE = "gemma-3-270m-q4_k_m.gguf"
CHAT = "Gemma 3 270M"
EMBED_FILE = "all-MiniLM-L6-v2.F32.gguf"
EMBED = "all-MiniLM-L6-v2"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Layers offloaded to the GPU, in the service and in-process alike (0: CPU only; -1: all).
GPU_LAYERS = int(os.environ.get("BENCH_GPU_LAYERS", "0"))
RESULTS_FILE = Path(
    os.environ.get("BENCH_INFERENCE_RESULTS", REPO / "bench" / "results" / "inference.json")
)
# llama.cpp's own llama-server, built from the same llama.cpp as our llama-cpp-python
# (`make llama-server`), measured in the same run as a reference for batching; skipped if absent.
LLAMA_SERVER = Path(
    os.environ.get(
        "BENCH_LLAMA_SERVER",
        Path(os.environ.get("LLMSERVER_CACHE", Path.home() / ".cache" / "llmserver"))
        / "llama-server-0.3.36"
        / "llama-server",
    )
)
GEN_TOKENS = 64
# Each measure is taken several times and the best kept: the machine is shared and noisy.
REPEATS = 3
PROMPT = "Here is a long list of numbers, one per line:\n1\n2\n3\n4\n5\n"
LONG_PROMPT = "The history of the city, told in great detail. " * 25
EMBED_TEXTS = [f"Document number {i} talks about topic {i % 7} in some detail." for i in range(128)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INFERENCE_PORT": str(port),
        "INFERENCE_HOST": "127.0.0.1",
        "INFERENCE_MODELS_DIR": str(MODELS_DIR),
        "INFERENCE_THREADS": str(THREADS),
        "INFERENCE_N_GPU_LAYERS": str(GPU_LAYERS),
        "INFERENCE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmserver_inference"], env=env, start_new_session=True
    )
    return wait_healthy(proc, port, "the inference service")


def wait_healthy(proc: subprocess.Popen[bytes], port: int, what: str) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        time.sleep(0.3)
    raise SystemExit(f"{what} did not become healthy")


def start_llama_server(port: int) -> subprocess.Popen[bytes]:
    """The same model, threads, slots and per-slot context as the service."""
    proc = subprocess.Popen(
        [
            str(LLAMA_SERVER),
            *("-m", str(MODELS_DIR / CHAT_FILE), "-t", str(THREADS), "-tb", str(THREADS)),
            *("-np", "8", "-c", str(8 * 2048), "-ngl", str(999 if GPU_LAYERS < 0 else GPU_LAYERS)),
            *("--host", "127.0.0.1", "--port", str(port), "--no-webui"),
        ],
        env={**os.environ, "LD_LIBRARY_PATH": str(LLAMA_SERVER.parent)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return wait_healthy(proc, port, "llama-server")


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


async def one_completion(http: httpx.AsyncClient, prompt: str, max_tokens: int) -> int:
    r = await http.post(
        "/v1/completions",
        json={"model": CHAT, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0},
    )
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"])


async def aggregate_tps(http: httpx.AsyncClient, clients: int) -> float:
    prompts = [f"{PROMPT}{i}\n" for i in range(clients)]
    started = time.perf_counter()
    counts = await asyncio.gather(*(one_completion(http, p, GEN_TOKENS) for p in prompts))
    return sum(counts) / (time.perf_counter() - started)


async def service_ttft(http: httpx.AsyncClient) -> float:
    body = {"model": CHAT, "prompt": LONG_PROMPT, "max_tokens": 1, "temperature": 0}
    started = time.perf_counter()
    async with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"text": ""' not in line and "[DONE]" not in line:
                return time.perf_counter() - started
    raise RuntimeError("no token streamed")


async def service_embeddings(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    for i in range(0, len(EMBED_TEXTS), 32):
        r = await http.post(
            "/v1/embeddings", json={"model": EMBED, "input": EMBED_TEXTS[i : i + 32]}
        )
        r.raise_for_status()
    return len(EMBED_TEXTS) / (time.perf_counter() - started)


async def measure_service(port: int, reference: dict[str, Any] | None) -> dict[str, Any]:
    """The service's figures; llama-server's aggregates go into `reference` when it runs."""
    out: dict[str, Any] = {}
    ref_http = None
    if reference is not None:
        ref_http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{reference['port']}", timeout=300)
        await aggregate_tps(ref_http, 2)  # warm-up
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        out["ttft_s"] = min([await service_ttft(http) for _ in range(REPEATS)])
        # Repeats interleaved, so that a burst of load from elsewhere hits every level (and
        # llama-server) alike.
        rates: dict[int, list[float]] = {1: [], 4: [], 8: []}
        ref_rates: dict[int, list[float]] = {1: [], 4: [], 8: []}
        for _ in range(REPEATS):
            for clients, found in rates.items():
                found.append(await aggregate_tps(http, clients))
                if ref_http is not None:
                    ref_rates[clients].append(await aggregate_tps(ref_http, clients))
        for clients, found in rates.items():
            out[f"aggregate_tps_{clients}"] = max(found)
            if reference is not None:
                reference[f"aggregate_tps_{clients}"] = max(ref_rates[clients])
        if (MODELS_DIR / EMBED_FILE).exists():
            await service_embeddings(http)  # warm-up
            out["embeddings_per_s"] = max([await service_embeddings(http) for _ in range(REPEATS)])
    if ref_http is not None:
        await ref_http.aclose()
    return out


def service_single_stream(port: int) -> float:
    body = {"model": CHAT, "prompt": PROMPT, "max_tokens": GEN_TOKENS, "temperature": 0}
    started = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=300)
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"]) / (time.perf_counter() - started)


def local_single_stream(llm: Any) -> float:
    started = time.perf_counter()
    reply = llm.create_completion(PROMPT, max_tokens=GEN_TOKENS, temperature=0)
    return int(reply["usage"]["completion_tokens"]) / (time.perf_counter() - started)


def local_chat_model() -> Any:
    """The baseline: llama-cpp-python in-process, same model, threads and GPU layers."""
    from llama_cpp import Llama

    return Llama(
        str(MODELS_DIR / CHAT_FILE),
        n_ctx=2048,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        n_batch=512,
        n_gpu_layers=GPU_LAYERS,
        verbose=False,
    )


def measure_in_process() -> dict[str, Any]:
    from llama_cpp import Llama

    out: dict[str, Any] = {}
    llm = local_chat_model()
    tokens = llm.tokenize(LONG_PROMPT.encode())
    times = []
    for _ in range(REPEATS):
        llm.reset()
        llm._ctx.kv_cache_clear()
        started = time.perf_counter()
        llm.eval(tokens)
        times.append(time.perf_counter() - started)
    out["prompt_eval_s"] = min(times)
    out["prompt_tokens"] = len(tokens)
    del llm
    if (MODELS_DIR / EMBED_FILE).exists():
        emb = Llama(
            str(MODELS_DIR / EMBED_FILE),
            embedding=True,
            n_ctx=2048,
            n_batch=2048,
            n_ubatch=2048,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            n_gpu_layers=GPU_LAYERS,
            verbose=False,
        )
        emb.embed(EMBED_TEXTS[:32])  # warm-up
        rates = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            for i in range(0, len(EMBED_TEXTS), 32):
                emb.embed(EMBED_TEXTS[i : i + 32], normalize=True)
            rates.append(len(EMBED_TEXTS) / (time.perf_counter() - started))
        out["embeddings_per_s"] = max(rates)
    return out


def main() -> None:
    if not (MODELS_DIR / CHAT_FILE).exists():
        raise SystemExit(f"{CHAT_FILE} is not in {MODELS_DIR}")

    port = free_port()
    proc = start_service(port)
    reference: dict[str, Any] | None = None
    reference_proc = None
    try:
        if LLAMA_SERVER.exists():
            reference = {"port": free_port(), "binary": str(LLAMA_SERVER)}
            reference_proc = start_llama_server(reference["port"])
        else:
            print(f"llama-server reference skipped: {LLAMA_SERVER} is absent (make llama-server)")
        # One stream, alternating service and in-process so both see the same machine load.
        llm = local_chat_model()
        service_single_stream(port)  # warm-up
        llm.create_completion(PROMPT, max_tokens=8, temperature=0)  # warm-up
        service_rates, local_rates = [], []
        for _ in range(REPEATS):
            service_rates.append(service_single_stream(port))
            local_rates.append(local_single_stream(llm))
        del llm
        service = asyncio.run(measure_service(port, reference))
        service["single_stream_tps"] = max(service_rates)
    finally:
        stop_service(proc)
        if reference_proc is not None:
            stop_service(reference_proc)
    local = measure_in_process()
    local["single_stream_tps"] = max(local_rates)

    rows: list[tuple[str, str, str, float, str]] = []

    def row(name: str, value: float, base: float, unit: str, goal: str) -> None:
        rows.append((name, f"{value:.2f} {unit}", f"{base:.2f} {unit}", value / base, goal))

    row(
        "one stream: service vs in-process",
        service["single_stream_tps"],
        local["single_stream_tps"],
        "tok/s",
        ">= 0.97",
    )
    row(
        f"TTFT ({local['prompt_tokens']}-token prompt) vs prompt eval",
        service["ttft_s"],
        local["prompt_eval_s"],
        "s",
        "close to 1",
    )
    for clients in (4, 8):
        row(
            f"aggregate at {clients} clients vs 1",
            service[f"aggregate_tps_{clients}"],
            service["aggregate_tps_1"],
            "tok/s",
            ">= 1.79" if clients == 4 else "grows",
        )
    if reference is not None:
        row(
            "llama-server: aggregate at 4 clients vs 1",
            reference["aggregate_tps_4"],
            reference["aggregate_tps_1"],
            "tok/s",
            "reference",
        )
        for clients in (1, 4, 8):
            row(
                f"service vs llama-server at {clients} client{'s' if clients > 1 else ''}",
                service[f"aggregate_tps_{clients}"],
                reference[f"aggregate_tps_{clients}"],
                "tok/s",
                ">= 1" if clients == 4 else "",
            )
    if "embeddings_per_s" in service and "embeddings_per_s" in local:
        row(
            "embeddings: service vs in-process",
            service["embeddings_per_s"],
            local["embeddings_per_s"],
            "emb/s",
            "close to 1",
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  {'baseline':>14}  {'ratio':>6}  goal")
    for name, value, base, ratio, goal in rows:
        print(f"{name:<{width}}  {value:>14}  {base:>14}  {ratio:>6.2f}  {goal}")

    results = {
        "threads": THREADS,
        "gpu_layers": GPU_LAYERS,
        "model": CHAT_FILE,
        "service": service,
        "in_process": local,
        "llama_server": reference,
        "ratios": {name: round(ratio, 3) for name, _, _, ratio, _ in rows},
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS_FILE}")


if __name__ == "__main__":
    main()
