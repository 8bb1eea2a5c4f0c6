#!/usr/bin/env bash
# mcbench on an NVIDIA GPU, from nothing but this repository, in at most 8 minutes:
#
#   1. a virtual environment (.venv-gpu) with a CUDA build of torch and `-e .[test]`;
#   2. the CUDA tests (`pytest -m cuda`: a training step on the GPU agrees with the CPU in fp32
#      and bf16, and the benchmark reports GPU memory);
#   3. `mcbench bench --models all --device cuda --precision fp32,bf16 --batch-sizes 32`,
#      saved as results/bench/<timestamp>-<host>-<gpu>.json (in one process: CUDA's peak
#      memory is reset for every combination, and starting CUDA once saves a minute);
#   4. one short real `mcbench run` on the synthetic data on the GPU;
#   5. the projected compute of the paper's Table I (5 models x 15,244 MagnaTagATune training
#      clips x 50 epochs; Wang et al., IJCNN 2019) from the measured throughput.
#
# Usage:  bash scripts/gpu-check.sh            (from the repository root, or anywhere)
# Settings (environment):
#   TORCH_INDEX  the PyTorch wheel index of a CUDA build (default
#                https://download.pytorch.org/whl/cu128: CUDA 12.8 wheels, which run on NVIDIA
#                drivers >= 570; use .../whl/cu126 for drivers >= 560, .../whl/cu130 for newer;
#                the driver's CUDA version is the one `nvidia-smi` prints top right)
#   VENV         the virtual environment to create or reuse (default .venv-gpu)
#   PYTHON       the interpreter for it (default python3)
#   SKIP_INSTALL=1  use the current environment's torch and mcbench as they are (offline machines)
#   BUDGET_S     the whole script's limit in seconds (default 480)
#   OUT_DIR      where the bench JSON and the log go (default results/bench)
# Each step has its own timeout inside that budget; a step that fails or runs out of time is
# reported and the later steps still run. Exit status: 0 when every step passed, 1 otherwise.

set -u -o pipefail

BUDGET_S=${BUDGET_S:-480}
START=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
VENV=${VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}
TORCH_VERSION=$(sed -n 's/^torch==//p' constraints.txt | head -n 1)
OUT_DIR=${OUT_DIR:-results/bench}
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOG="$OUT_DIR/gpu-check-$STAMP.log"
FAILED=()

say() { printf '\n== %s (%ds elapsed)\n' "$*" "$(( $(date +%s) - START ))" | tee -a "$LOG"; }

# step NAME SECONDS COMMAND...: run COMMAND with at most SECONDS (and never past the budget)
step() {
    local name=$1 limit=$2
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - START) ))
    if (( left <= 5 )); then
        say "$name: skipped, the ${BUDGET_S}s budget is spent"
        FAILED+=("$name (no time left)")
        return 1
    fi
    (( limit > left )) && limit=$left
    say "$name (at most ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    if (( rc == 124 || rc == 137 )); then
        say "$name: ran out of time (${limit}s)"
        FAILED+=("$name (timeout)")
    elif (( rc != 0 )); then
        say "$name: failed (exit $rc)"
        FAILED+=("$name (exit $rc)")
    fi
    return "$rc"
}

say "GPU"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"; then
    echo "nvidia-smi failed: no NVIDIA GPU or driver here; this script needs one" | tee -a "$LOG"
    exit 1
fi
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        step "create $VENV" 60 "$PYTHON" -m venv "$VENV" || exit 1
    fi
    # The CUDA build first, from PyTorch's index (a plain package index may give another build);
    # then mcbench with the constraints file, which pins the version only and so keeps it.
    step "install torch $TORCH_VERSION from $TORCH_INDEX" 240 \
        "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX" || exit 1
    step "install mcbench" 120 "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]" || exit 1
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
fi

step "torch build" 30 mcbench --version
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "torch sees no CUDA device: $(python -c 'import torch; print(torch.__version__, torch.version.cuda)')" \
        "(a CPU build, or a CUDA build newer than the driver: set TORCH_INDEX)" | tee -a "$LOG"
    exit 1
fi

step "CUDA tests" 120 python -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py

BENCH_JSON="$OUT_DIR/$STAMP-$(hostname | tr -c 'A-Za-z0-9_\n-' '_')-$GPU.json"
step "mcbench bench on the GPU" 180 mcbench bench --models all --device cuda --precision fp32,bf16 \
    --batch-sizes 32 --repeats 5 --warmup 2 --in-process --output "$BENCH_JSON"

RUN_DIR=$(mktemp -d)
step "one short mcbench run on synthetic data, on the GPU" 120 mcbench run --models crnn_tf \
    --dataset synthetic --dataset-param n_clips=40 --data-dir "$RUN_DIR/data" \
    --results-dir "$RUN_DIR/results" --epochs 1 --batch-size 8 --device cuda
rm -rf "$RUN_DIR"

if [[ -f "$BENCH_JSON" ]]; then
    step "projected compute of Table I" 30 python -m mcbench.bench project "$BENCH_JSON"
else
    FAILED+=("projection (no bench JSON)")
fi

say "done"
echo "log: $LOG; bench: $BENCH_JSON" | tee -a "$LOG"
if (( ${#FAILED[@]} )); then
    printf 'failed: %s\n' "${FAILED[@]}" | tee -a "$LOG"
    exit 1
fi
echo "every step passed" | tee -a "$LOG"
