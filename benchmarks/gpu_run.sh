#!/usr/bin/env bash
# GPU tests and the GPU benchmark report on a GPU machine without network access.
#
# The machine must have Python 3.12 with a CUDA 13 build of torch and torchvision (e.g. torch 2.11+cu130);
# every other package comes as wheels made by `bash benchmarks/gpu_wheels.sh fetch` (on a machine with
# registry access), in parts of under 60 MiB: wheels/part-01 ... part-NN and wheels/SHA256SUMS. Bring the
# parts one transfer at a time into ./wheels, then run from the repository root:
#      bash benchmarks/gpu_run.sh [install] [test] [bench]      (no argument: all three)
# Each stage runs under a time limit, reports its result in $OUT/stages.txt and the next one still runs
# (a stage that hangs loses only its own time); the exit status is that of the first failing stage.
#    WHEELS      wheel folder (default: ./wheels)
#    SITE        where the wheels are installed, put on PYTHONPATH (default: /tmp/site)
#    OUT         reports and logs (default: $OUT if set, else benchmarks/reports)
#    TESTS       pytest targets of the test stage (default: the gpu-marked tests, then a CPU smoke)
#    BENCH_ARGS  extra flags for `python -m benchmarks report` (e.g. "--e2e-steps 200 --batch-size 128")
#    DATA_DIR    generated benchmark data (default: /tmp/bench-data)
#    SHARDS      shards the report reads (default: $WHEELS/bench-shards when `gpu_wheels.sh shards` made it,
#                else the preset's synthetic set, generated under DATA_DIR)
#    STAGE_SECONDS  time limit of each stage (default: 240)
# The report runs ViT-B/32, 8 frames, bf16, random weights, the gpu preset (batch 64; loader, step, e2e).
set -uo pipefail

SCRIPT=$(realpath "$0")
cd "$(dirname "$SCRIPT")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-benchmarks/reports}
DATA_DIR=${DATA_DIR:-/tmp/bench-data}
SHARDS=${SHARDS:-$([ -d "$WHEELS/bench-shards" ] && echo "$WHEELS/bench-shards")}
STAGE_SECONDS=${STAGE_SECONDS:-240}
mkdir -p "$OUT"
# The project is not pip-installed there: its packages import from the checkout, the wheels from $SITE.
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# Put every part's wheels (and chunks, joined in order) into $WHEELS/all, then check them against SHA256SUMS.
join_parts() {
    local all="$WHEELS/all" chunk whole
    [ -f "$WHEELS/SHA256SUMS" ] || { echo "no $WHEELS/SHA256SUMS: bring the parts of gpu_wheels.sh fetch" >&2; return 2; }
    mkdir -p "$all"
    find "$WHEELS" -path "$WHEELS/part-*" -name '*.whl' -exec cp -t "$all" {} +
    while read -r chunk; do
        whole=${chunk%.chunk-00}
        find "$WHEELS" -path "$WHEELS/part-*" -name "$(basename "$whole").chunk-*" -printf '%f %p\n' | sort |
            cut -d' ' -f2 | xargs cat > "$all/$(basename "$whole")"
    done < <(find "$WHEELS" -path "$WHEELS/part-*" -name '*.whl.chunk-00')
    (cd "$all" && sha256sum --quiet -c ../SHA256SUMS) || { echo "wheels missing or damaged (see above): bring every part again" >&2; return 1; }
    echo "$(wc -l < "$WHEELS/SHA256SUMS") wheels checked"
}

install() {
    join_parts || return
    # --no-deps: the list names exactly what the image lacks, and nothing preinstalled is replaced.
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/all/*.whl || return
    "$PYTHON" -c "import nvidia.dali, deepspeed, open_clip, webdataset, av, ftfy; print('installed into $SITE')"
}

# Versions, and whether CUDA is there: `check gpu` fails without it, `check` only says so (the gpu tests skip).
check() {
    "$PYTHON" - "${1:-}" <<'PY'
import sys
import torch, nvidia.dali, deepspeed, open_clip
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"{device}  torch {torch.__version__}  DALI {nvidia.dali.__version__}  deepspeed {deepspeed.__version__}  "
      f"open_clip {open_clip.__version__}")
if sys.argv[1] == "gpu" and not torch.cuda.is_available():
    raise SystemExit("CUDA is not available to torch: the gpu benchmark preset is for the GPU machine")
PY
}

run_tests() {
    check || return
    if [ -n "${TESTS:-}" ]; then
        # shellcheck disable=SC2086
        "$PYTHON" -m pytest -q -ra $TESTS 2>&1 | tee "$OUT/gpu-tests.log"
        return
    fi
    "$PYTHON" -m pytest -q -ra -m gpu tests 2>&1 | tee "$OUT/gpu-tests.log"
    local gpu=$?
    # A quick CPU smoke of the same checkout: sparse decoding, config, the model.
    "$PYTHON" -m pytest -q -ra tests/test_pipelines_sparse.py tests/test_config.py tests/test_actionclip_heads.py \
        2>&1 | tee "$OUT/cpu-smoke.log"
    local smoke=$?
    return $(( gpu != 0 ? gpu : smoke ))
}

run_bench() {
    check gpu || return
    # shellcheck disable=SC2086
    "$PYTHON" -m benchmarks report --preset gpu --arch ViT-B-32 --num-frames 8 --precision bf16 --pretrained none \
        --data-dir "$DATA_DIR" --out-dir "$OUT" ${SHARDS:+--shards "$SHARDS"} ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
}

# `gpu_run.sh --stage NAME`: one stage in this process (what the loop below runs under `timeout`).
if [ "${1:-}" = --stage ]; then
    case ${2:-} in
        install) install ;;
        test) run_tests ;;
        bench) run_bench ;;
        *) echo "unknown stage ${2:-} (install, test, bench)" >&2; exit 2 ;;
    esac
    exit
fi

status=0
for stage in ${*:-install test bench}; do
    started=$(date +%s)
    # timeout signals the stage's whole process group: pytest, the deepspeed launcher and its ranks too.
    timeout --kill-after=15 "$STAGE_SECONDS" bash "$SCRIPT" --stage "$stage"
    result=$?
    case $result in
        0) outcome=ok ;;
        124|137) outcome="timed out after $STAGE_SECONDS s (STAGE_SECONDS)" ;;
        *) outcome="failed ($result)" ;;
    esac
    echo "$stage: $outcome in $(( $(date +%s) - started )) s" | tee -a "$OUT/stages.txt"
    [ $status -ne 0 ] || status=$result
done
exit $status
