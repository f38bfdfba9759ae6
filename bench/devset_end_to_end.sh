#!/usr/bin/env bash
# The standard dev benchmark through the real commands: build the gallery index, then eval.
#   bash bench/devset_end_to_end.sh [OUT_DIR]      (needs ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data
out=${1:-bench/out/dev-index}
firs=.venv/bin/firs
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
SECONDS=0
$firs build "$data/viton-dev/products" "$data/distractors" --out "$out" --quiet
echo "build wall time: ${SECONDS} s"
echo "index size on disk: $(du -sh "$out" | cut -f1) ($(du -shc "$out"/views/*/features | tail -1 | cut -f1) of it feature shards)"
$firs eval --index "$out" --queries "$data/viton-dev/queries.tsv" --mode simple --mode fine --mode tag --json --quiet
