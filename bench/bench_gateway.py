"""The gateway's overhead against calling the inference service directly, in the same run.

    python bench/bench_gateway.py                 # starts inference + gateway through devstack
    BENCH_GATEWAY_URL=... BENCH_INFERENCE_URL=... python bench/bench_gateway.py   # running stack

Measures, alternating direct and gateway calls so both see the same machine load:
- streamed generation: tokens/s through the gateway / tokens/s direct (goal >= 0.97);
- small non-streamed requests (GET /v1/models, chat with max_tokens=1): p50 latency added by the
  gateway, in ms (goal <= 3 ms), and the gateway's CPU ms per request (steady on a busy machine,
  where wall-clock latencies are not).
Prints a table and writes bench/results/gateway.json.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger("bench.gateway")

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results" / "gateway.json"
MODEL = os.environ.get("BENCH_MODEL", "Gemma 3 270M")
STREAM_TOKENS = int(os.environ.get("BENCH_STREAM_TOKENS", "64"))
STREAM_ROUNDS = int(os.environ.get("BENCH_STREAM_ROUNDS", "5"))
MODELS_ITERATIONS = int(os.environ.get("BENCH_MODELS_ITERATIONS", "200"))
CHAT_ITERATIONS = int(os.environ.get("BENCH_CHAT_ITERATIONS", "30"))


def streamed_tokens_per_second(client: httpx.Client, base: str) -> float:
    """Chunks with content per second, from the request to the last chunk."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": STREAM_TOKENS,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    }
    tokens = 0
    started = time.perf_counter()
    with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    tokens += 1
    elapsed = time.perf_counter() - started
    return tokens / elapsed if elapsed > 0 else 0.0


def gateway_cpu_seconds(client: httpx.Client, gateway_url: str) -> float | None:
    """The gateway process's CPU time (Prometheus process collector), or None if absent."""
    text = client.get(f"{gateway_url}/metrics").text
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    return None


def latency_ms(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def alternate(
    direct: Callable[[], float], through: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """Interleave the two so that load changes on the shared machine hit both alike."""
    direct_values: list[float] = []
    gateway_values: list[float] = []
    for index in range(rounds):
        order = (direct, through) if index % 2 == 0 else (through, direct)
        for measure in order:
            value = measure()
            (direct_values if measure is direct else gateway_values).append(value)
    return direct_values, gateway_values


def run(inference_url: str, gateway_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {"model": MODEL}
    with httpx.Client(timeout=300) as direct_client, httpx.Client(timeout=300) as gateway_client:
        # Warm-up: model loaded, connections open, caches filled.
        for client, base in ((direct_client, inference_url), (gateway_client, gateway_url)):
            client.get(f"{base}/v1/models").raise_for_status()
            client.post(
                f"{base}/v1/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 1,
                },
            ).raise_for_status()

        logger.info(
            "streamed generation: %d rounds of %d tokens each way", STREAM_ROUNDS, STREAM_TOKENS
        )
        direct_tps, gateway_tps = alternate(
            lambda: streamed_tokens_per_second(direct_client, inference_url),
            lambda: streamed_tokens_per_second(gateway_client, gateway_url),
            STREAM_ROUNDS,
        )
        # Adjacent runs share the machine's load at that moment: the median of their ratios
        # is steadier than the ratio of medians on a busy machine.
        paired = [g / d for d, g in zip(direct_tps, gateway_tps, strict=True) if d > 0]
        results["stream"] = {
            "rounds": STREAM_ROUNDS,
            "max_tokens": STREAM_TOKENS,
            "direct_tokens_per_s": statistics.median(direct_tps),
            "gateway_tokens_per_s": statistics.median(gateway_tps),
            "ratio": statistics.median(paired),
            "ratio_of_medians": statistics.median(gateway_tps) / statistics.median(direct_tps),
            "goal_ratio_at_least": 0.97,
        }

        logger.info(
            "small requests: %d x GET /v1/models, %d x chat max_tokens=1 each way",
            MODELS_ITERATIONS,
            CHAT_ITERATIONS,
        )
        cpu_before = gateway_cpu_seconds(gateway_client, gateway_url)
        direct_models, gateway_models = alternate(
            lambda: latency_ms(lambda: direct_client.get(f"{inference_url}/v1/models")),
            lambda: latency_ms(lambda: gateway_client.get(f"{gateway_url}/v1/models")),
            MODELS_ITERATIONS,
        )
        cpu_after = gateway_cpu_seconds(gateway_client, gateway_url)
        if cpu_before is not None and cpu_after is not None:
            # CPU is immune to the machine's load, unlike wall-clock latency.
            results["gateway_cpu_ms_per_models_request"] = (
                (cpu_after - cpu_before) * 1000 / MODELS_ITERATIONS
            )
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        cpu_before = gateway_cpu_seconds(gateway_client, gateway_url)
        direct_chat, gateway_chat = alternate(
            lambda: latency_ms(
                lambda: direct_client.post(f"{inference_url}/v1/chat/completions", json=chat)
            ),
            lambda: latency_ms(
                lambda: gateway_client.post(f"{gateway_url}/v1/chat/completions", json=chat)
            ),
            CHAT_ITERATIONS,
        )
        cpu_after = gateway_cpu_seconds(gateway_client, gateway_url)
        if cpu_before is not None and cpu_after is not None:
            results["gateway_cpu_ms_per_chat_request"] = (
                (cpu_after - cpu_before) * 1000 / CHAT_ITERATIONS
            )
        for name, direct_values, gateway_values, iterations in (
            ("models", direct_models, gateway_models, MODELS_ITERATIONS),
            ("chat_max_tokens_1", direct_chat, gateway_chat, CHAT_ITERATIONS),
        ):
            direct_p50 = statistics.median(direct_values)
            gateway_p50 = statistics.median(gateway_values)
            results[name] = {
                "iterations": iterations,
                "direct_p50_ms": direct_p50,
                "gateway_p50_ms": gateway_p50,
                "added_p50_ms": gateway_p50 - direct_p50,
                "ratio": gateway_p50 / direct_p50,
                "goal_added_p50_ms_at_most": 3.0,
            }
    return results


def print_table(results: dict[str, Any]) -> None:
    stream = results["stream"]
    rows = [
        ("measure", "direct", "gateway", "gateway/direct", "added", "goal"),
        (
            f"stream tokens/s ({stream['max_tokens']} tok)",
            f"{stream['direct_tokens_per_s']:.1f}",
            f"{stream['gateway_tokens_per_s']:.1f}",
            f"{stream['ratio']:.3f}",
            "",
            ">= 0.97 ratio",
        ),
    ]
    for name in ("models", "chat_max_tokens_1"):
        entry = results[name]
        rows.append(
            (
                f"{name} p50 ms (n={entry['iterations']})",
                f"{entry['direct_p50_ms']:.2f}",
                f"{entry['gateway_p50_ms']:.2f}",
                f"{entry['ratio']:.3f}",
                f"{entry['added_p50_ms']:+.2f} ms",
                "<= 3 ms added",
            )
        )
    if "gateway_cpu_ms_per_models_request" in results:
        cpu = results["gateway_cpu_ms_per_models_request"]
        rows.append(("gateway CPU ms per /v1/models", "", f"{cpu:.2f}", "", "", ""))
    if "gateway_cpu_ms_per_chat_request" in results:
        cpu = results["gateway_cpu_ms_per_chat_request"]
        rows.append(("gateway CPU ms per 1-token chat", "", f"{cpu:.2f}", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        logger.info("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    gateway_url = os.environ.get("BENCH_GATEWAY_URL")
    inference_url = os.environ.get("BENCH_INFERENCE_URL")
    with ExitStack() as cleanup:
        if not (gateway_url and inference_url):
            sys.path.insert(0, str(REPO_ROOT))
            from devstack.stack import Ports, Stack, StackConfig

            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            stack = Stack(
                StackConfig(data_dir=data_dir, models_dir=REPO_ROOT / "models", ports=Ports.free())
            )
            cleanup.callback(stack.stop)
            logger.info("starting inference, localdocs and the gateway through devstack ...")
            stack.start(["redis", "weaviate", "inference", "localdocs", "gateway"])
            gateway_url, inference_url = stack.url("gateway"), stack.url("inference")
        results = run(inference_url, gateway_url)
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results["load_average_1m"] = os.getloadavg()[0]
    logger.info("load average (1 min) at the end: %.2f", results["load_average_1m"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    logger.info("wrote %s", RESULTS.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
