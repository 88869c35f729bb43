#!/usr/bin/env bash
# Fetch the wheels the GPU machine lacks and cut them into parts that fit its transfers.
#
#   bash benchmarks/gpu_wheels.sh fetch        (on any x86-64 machine with registry access and this project's .venv)
#   bash benchmarks/gpu_wheels.sh shards       (optional: the gpu benchmark preset's shards, made here)
#   bash benchmarks/gpu_wheels.sh pack FOLDER  (parts and SHA256SUMS of the wheels in FOLDER, as fetch makes)
#
# Downloads every pin of benchmarks/gpu_wheels.txt for Python 3.12 / manylinux x86-64 (without their
# dependencies: the list already names those the GPU image lacks), builds deepspeed's wheel from its
# sdist, writes SHA256SUMS, and packs everything into $WHEELS/part-01 ... part-NN, each under $PART_MIB
# MiB (a larger wheel is cut into numbered chunks over several parts). Send one part per transfer, then
# `bash benchmarks/gpu_run.sh install` joins, checks and installs them offline.
# `shards` builds the synthetic set the gpu preset would generate (320 VP9 videos, about 36 MiB) into
# $WHEELS/bench-shards; carried with the last part, it spares the GPU machine a minute of encoding, and
# `gpu_run.sh bench` reads it when it is there.
#    WHEELS    output folder (default: wheels)
#    PART_MIB  largest part in MiB (default: 56; a transfer of 64 MiB also carries the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-wheels}
PART_MIB=${PART_MIB:-56}
PIP=${PIP:-.venv/bin/python -m pip}
PLATFORMS="manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64"

fetch() {
    local downloads="$WHEELS/downloads" pins
    rm -rf "$WHEELS" && mkdir -p "$downloads"
    pins=$(grep -E '^[A-Za-z0-9_.-]+==' benchmarks/gpu_wheels.txt)
    # shellcheck disable=SC2046
    $PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $(printf -- '--platform %s ' $PLATFORMS) -d "$downloads" $(grep -v '^deepspeed==' <<<"$pins")
    # PyPI has deepspeed as an sdist only; its wheel is pure Python (ops build at run time, and none is used).
    $PIP wheel --quiet --no-deps --no-build-isolation -w "$downloads" "$(grep '^deepspeed==' <<<"$pins")"
    package "$downloads"
    rm -rf "$downloads"
}

# SHA256SUMS of the wheels in folder $1, and the parts holding them (the folder itself is left as it was).
package() {
    local all="$WHEELS/all" parts total
    rm -rf "$WHEELS"/part-* "$all" && mkdir -p "$all"
    cp -- "$1"/*.whl "$all"/
    (cd "$all" && sha256sum -- *.whl) > "$WHEELS/SHA256SUMS"
    pack "$all"
    rm -rf "$all"
    parts=$(find "$WHEELS" -maxdepth 1 -name 'part-*' -type d | wc -l)
    total=$(du -cb "$WHEELS"/part-*/* | tail -1 | cut -f1)
    echo "$parts parts, $((total / 1048576)) MiB in all ($(wc -l < "$WHEELS/SHA256SUMS") wheels), in $WHEELS/"
    du -sh "$WHEELS"/part-*
}

shards() {
    local out="$WHEELS/bench-shards" folder
    # Cached under data/bench as any benchmark run's data; the last line printed is the folder.
    folder=$(.venv/bin/python -m benchmarks data --preset gpu | tail -1)
    rm -rf "$out" && cp -r "$folder" "$out"
    echo "$(du -sh "$out" | cut -f1) of shards ($folder) in $out"
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
    shards) shards ;;
    pack) [ -d "${2:-}" ] || { echo "usage: bash $0 pack FOLDER   (a folder of .whl files)" >&2; exit 2; }
        package "$2" ;;
    *) echo "usage: bash $0 fetch|shards|pack FOLDER   (see the header for what they do)" >&2; exit 2 ;;
esac
