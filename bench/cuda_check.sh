#!/usr/bin/env bash
# The inference service's CUDA path, on a machine with an NVIDIA GPU, nvcc, cmake, ninja and
# scikit-build-core (the same build the inference Dockerfile runs with LLAMA_BACKEND=cuda):
#
#   bench/cuda_check.sh build SOURCE_DIR WHEEL_DIR   compile llama-cpp-python with GGML_CUDA=on
#   bench/cuda_check.sh bench RESULTS_DIR             bench_inference.py on the CPU, then with
#                                                     every layer on the GPU; prints both tables
#
# The Python that runs it must already import the inference service and the llama_cpp built
# here (PYTHONPATH), and models/ must hold the default chat model.
set -euo pipefail

build() {
    local source_dir=$1 wheel_dir=$2
    # One architecture (default: Hopper) keeps the compile short; the Dockerfile builds several.
    export CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=off \
-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-90}"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
    local started=$SECONDS rc=0
    python3 -m pip wheel --no-deps --no-build-isolation --wheel-dir "$wheel_dir" "$source_dir" \
        || rc=$?
    echo "build finished rc=$rc in $((SECONDS - started)) s"
    return "$rc"
}

bench() {
    local results_dir=$1 threads=${BENCH_THREADS:-8}
    mkdir -p "$results_dir"
    # Same model, same threads, same run: the CPU figures are the baseline of the GPU ones.
    BENCH_THREADS=$threads BENCH_GPU_LAYERS=0 \
        BENCH_INFERENCE_RESULTS="$results_dir/inference-cpu.json" python3 bench/bench_inference.py
    BENCH_THREADS=$threads BENCH_GPU_LAYERS=-1 \
        BENCH_INFERENCE_RESULTS="$results_dir/inference-gpu.json" python3 bench/bench_inference.py
    python3 - "$results_dir" <<'EOF'
import json
import sys
from pathlib import Path

results = Path(sys.argv[1])
cpu = json.loads((results / "inference-cpu.json").read_text())["service"]
gpu = json.loads((results / "inference-gpu.json").read_text())["service"]
print(f"{'through the service':<28} {'CPU':>10} {'GPU':>10} {'GPU/CPU':>8}")
for key in ("single_stream_tps", "aggregate_tps_1", "aggregate_tps_4", "aggregate_tps_8",
            "ttft_s"):
    print(f"{key:<28} {cpu[key]:>10.2f} {gpu[key]:>10.2f} {gpu[key] / cpu[key]:>8.2f}")
EOF
}

case ${1:-} in
    build) build "$2" "$3" ;;
    bench) bench "$2" ;;
    *) echo "usage: $0 build SOURCE_DIR WHEEL_DIR | bench RESULTS_DIR" >&2; exit 2 ;;
esac
