#!/usr/bin/env bash
# Fetch the wheels the GPU machine lacks and cut them into parts that fit its transfers.
#
#   bash benchmarks/gpu_wheels.sh fetch        (on any x86-64 machine with registry access and this project's .venv)
#
# Downloads every pin of benchmarks/gpu_wheels.txt for Python 3.12 / manylinux x86-64 (without their
# dependencies: the list already names those the GPU image lacks), builds deepspeed's wheel from its
# sdist, writes SHA256SUMS, and packs everything into $WHEELS/part-01 ... part-NN, each under $PART_MIB
# MiB (a larger wheel is cut into numbered chunks over several parts). Send one part per transfer, then
# `bash benchmarks/gpu_run.sh install` joins, checks and installs them offline.
#    WHEELS    output folder (default: wheels)
#    PART_MIB  largest part in MiB (default: 56; a transfer of 64 MiB also carries the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-wheels}
PART_MIB=${PART_MIB:-56}
PIP=${PIP:-.venv/bin/python -m pip}
PLATFORMS="manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64"

fetch() {
    local all="$WHEELS/all" pins
    rm -rf "$WHEELS" && mkdir -p "$all"
    pins=$(grep -E '^[A-Za-z0-9_.-]+==' benchmarks/gpu_wheels.txt)
    # shellcheck disable=SC2046
    $PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $(printf -- '--platform %s ' $PLATFORMS) -d "$all" $(grep -v '^deepspeed==' <<<"$pins")
    # PyPI has deepspeed as an sdist only; its wheel is pure Python (ops build at run time, and none is used).
    $PIP wheel --quiet --no-deps --no-build-isolation -w "$all" "$(grep '^deepspeed==' <<<"$pins")"
    (cd "$all" && sha256sum -- *.whl > ../SHA256SUMS)
    pack "$all"
    rm -rf "$all"
    local parts total
    parts=$(find "$WHEELS" -maxdepth 1 -name 'part-*' -type d | wc -l)
    total=$(du -cb "$WHEELS"/part-*/* | tail -1 | cut -f1)
    echo "$parts parts, $((total / 1048576)) MiB in all ($(wc -l < "$WHEELS/SHA256SUMS") wheels), in $WHEELS/"
    du -sh "$WHEELS"/part-*
}

# First fit, largest first: whole wheels where they fit, chunks of PART_MIB for the rest.
pack() {
    local source=$1 limit=$((PART_MIB * 1048576)) file size
    local -a used=()
    place() {  # place FILE SIZE: into the first part with room, or a new one
        local number
        for number in "${!used[@]}"; do
            if (( used[number] + $2 <= limit )); then
                used[number]=$((used[number] + $2)); mv "$1" "$(part_dir "$number")/"; return
            fi
        done
        used+=("$2"); number=$((${#used[@]} - 1)); mkdir -p "$(part_dir "$number")"; mv "$1" "$(part_dir "$number")/"
    }
    while read -r size file; do
        if (( size > limit )); then
            split -b "$limit" -d -a 2 "$file" "$file.chunk-"
            rm "$file"
            for chunk in "$file".chunk-*; do place "$chunk" "$(stat -c %s "$chunk")"; done
        else
            place "$file" "$size"
        fi
    done < <(find "$source" -name '*.whl' -printf '%s %p\n' | sort -rn)
}

part_dir() { printf '%s/part-%02d' "$WHEELS" $(($1 + 1)); }

case ${1:-} in
    fetch) fetch ;;
    *) echo "usage: bash $0 fetch   (see the header for what it does)" >&2; exit 2 ;;
esac
