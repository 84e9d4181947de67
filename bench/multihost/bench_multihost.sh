#!/usr/bin/env bash
# bench_multihost.sh: ingest throughput of 1 and then 2 `facenames worker` processes of one thread
# each on one SQLite library, as two hosts would run them (different --host), and the scaling
# factor. Until ingest is split into shards (issue 14, not done on this branch) one job runs on one
# worker, so the tree is enqueued as two jobs of half the photos each; the figure is the engine's
# and the library's multi-process scaling, not that of one sharded job.
#
# usage: bench/multihost/bench_multihost.sh [BUILD_DIR] [COPIES]   (COPIES x 6 sample photos per
# half; default 5, i.e. 60 photos). Prints wall seconds, photos/s and the workers' CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
copies=${2:-5}
exe=$PWD/$build/src/cli/facenames
samples=$PWD/reference/node_modules/@vladmandic/face-api/demo
export FACENAMES_MODELS_DIR=$PWD/reference/node_modules/@vladmandic/face-api/model
tmp=$(mktemp -d /tmp/fn_bench_multihost_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for half in a b; do
  for ((i = 0; i < copies; i++)); do
    mkdir -p "$tmp/tree/$half/$i"
    cp "$samples"/*.jpg "$tmp/tree/$half/$i/"
  done
done
n=$(find "$tmp/tree" -name '*.jpg' | wc -l)

# run WORKERS: a fresh library, both halves enqueued, WORKERS worker processes until idle
run() {
  local workers=$1 lib=$tmp/lib$1
  "$exe" --library "$lib" ingest "$tmp/tree/a" --detach >/dev/null
  "$exe" --library "$lib" ingest "$tmp/tree/b" --detach >/dev/null
  local t0 t1 pids=() k
  t0=$(date +%s.%N)
  for ((k = 1; k <= workers; k++)); do
    /usr/bin/time -f "%U %S" -o "$tmp/cpu$workers.$k" \
      "$exe" --library "$lib" worker --host "host$k" --threads 1 --until-idle >/dev/null 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  local cpu
  cpu=$(cat "$tmp"/cpu"$workers".* | awk '{s += $1 + $2} END {printf "%.1f", s}')
  local done_n
  done_n=$(sqlite3 "$lib/library.db" "SELECT count(*) FROM photos")
  awk -v w="$workers" -v t0="$t0" -v t1="$t1" -v n="$done_n" -v cpu="$cpu" 'BEGIN {
    printf "workers=%d photos=%d wall_s=%.2f photos_per_s=%.3f cpu_s=%s\n", w, n, t1 - t0,
      n / (t1 - t0), cpu }'
  echo "$t0 $t1" >"$tmp/t$workers"
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "photos: $n (two halves, one job each)"
run 1
run 2
awk -v a="$(cat "$tmp/t1")" -v b="$(cat "$tmp/t2")" 'BEGIN {
  split(a, x, " "); split(b, y, " ");
  printf "scaling (2 processes / 1, wall): %.2fx\n", (x[2] - x[1]) / (y[2] - y[1]) }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
