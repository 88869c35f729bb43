#!/usr/bin/env bash
# GPU tests and the full benchmark report on a GPU machine without network access.
#
# The machine must have Python 3.12 with a CUDA 13 build of torch and torchvision (e.g. torch 2.11+cu130);
# every other package comes as a wheel from a local folder (benchmarks/gpu_wheels.txt lists them).
#
# 1. Fetch the wheels, on any x86-64 machine with network and this project's venv:
#      python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#          -d wheels -r <(grep -v '^deepspeed' benchmarks/gpu_wheels.txt)
#      .venv/bin/pip wheel --no-deps --no-build-isolation deepspeed==0.19.8 -w wheels   # sdist only on PyPI
#    (several hundred MB, most of it DALI). Where a transfer limits file sizes, cut big wheels with
#    `split -b 60M wheels/X.whl wheels/X.whl.part-`; this script joins `*.whl.part-*` back before installing.
# 2. Copy the repository and the wheels folder to the GPU machine and run, from the repository root:
#      bash benchmarks/gpu_run.sh [install] [test] [bench]      (no argument: all three; where one
#      command's time is limited, run the stages as separate commands)
#    WHEELS   wheel folder (default: ./wheels)
#    OUT      where reports and logs go (default: benchmarks/reports)
#    TESTS    pytest targets (default: the whole suite, tests/)
#    BENCH_ARGS  extra flags for `python -m benchmarks report` (e.g. "--e2e-steps 200 --batch-size 128")
#    DATA_DIR generated benchmark data (default: /tmp/bench-data)
# The report runs ViT-B/32, 8 frames, bf16, random weights, the gpu preset (batch 64, 640 videos).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels}
OUT=${OUT:-benchmarks/reports}
TESTS=${TESTS:-tests}
DATA_DIR=${DATA_DIR:-/tmp/bench-data}
STAGES=${*:-install test bench}
mkdir -p "$OUT"
# The project is not pip-installed there: its packages import from the checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

join_parts() {
    local part whole
    for part in "$WHEELS"/*.whl.part-aa; do
        [ -e "$part" ] || continue
        whole=${part%.part-aa}
        [ -e "$whole" ] || cat "$whole".part-* > "$whole"
    done
}

install() {
    if "$PYTHON" -c "import nvidia.dali, deepspeed, open_clip, webdataset, av, ftfy" 2>/dev/null; then
        echo "packages already installed"
        return
    fi
    [ -d "$WHEELS" ] || { echo "no wheel folder $WHEELS: see the header of $0 for how to fetch it" >&2; exit 2; }
    join_parts
    # Only the project's own dependencies are named: pip takes their requirements from what is installed
    # (torch, torchvision, numpy, ...) or else from the folder, and never upgrades a preinstalled package
    # that already satisfies them. The pins come from the wheel list.
    local wanted
    wanted=$(grep -E '^(nvidia-dali-cuda130|deepspeed|open_clip_torch|webdataset|av|ftfy)==' benchmarks/gpu_wheels.txt)
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" $wanted
}

check() {
    "$PYTHON" - <<'PY'
import torch, nvidia.dali, deepspeed, open_clip
if not torch.cuda.is_available():
    raise SystemExit("CUDA is not available to torch: this script is for the GPU machine")
print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  DALI {nvidia.dali.__version__}  "
      f"deepspeed {deepspeed.__version__}  open_clip {open_clip.__version__}")
PY
}

run_tests() {
    "$PYTHON" -m pytest -q -ra $TESTS 2>&1 | tee "$OUT/gpu-tests.log"
}

run_bench() {
    # shellcheck disable=SC2086
    "$PYTHON" -m benchmarks report --preset gpu --arch ViT-B-32 --num-frames 8 --precision bf16 --pretrained none \
        --data-dir "$DATA_DIR" --out-dir "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
}

for stage in $STAGES; do
    case $stage in
        install) install ;;
        test) check && run_tests ;;
        bench) check && run_bench ;;
        *) echo "unknown stage $stage (install, test, bench)" >&2; exit 2 ;;
    esac
done
