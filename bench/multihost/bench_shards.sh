#!/usr/bin/env bash
# bench_shards.sh: ingest throughput of ONE ingest split into shards (ingest.shard_photos), run by
# 1 and by 2 `facenames worker` processes of one thread each (as two hosts would: different
# --host), interleaved (1, 2, 1, 2 ...) so that a drift of the shared machine's speed hits both
# alike; prints each run, the scaling factor of each pair (wall of 1 process / wall of 2), their
# median and spread, and the load average before and after.
#
# usage: bench/multihost/bench_shards.sh [--pg URL | --pg start] [BUILD_DIR] [COPIES] [SHARD] [ROUNDS]
#   COPIES x the 6 sample photos (default 16: 96 photos), SHARD photos per shard (default 8),
#   ROUNDS pairs (default 3). --pg: each run's library is a fresh database on that PostgreSQL
#   server (`start`: a throwaway one from scripts/pg-tmp, stopped at the end); else a fresh SQLite
#   library folder.
# cpu: the workers' user + system seconds together (the split's cost shows there too).
# A run's time is from the workers' start to the split job's completion (the split itself, its
# counting pass and the models' load in each worker included); the library is made and the job
# enqueued before the clock starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
pg=""
started_pg=""
if [[ ${1:-} == --pg ]]; then
  pg=$2
  shift 2
  if [[ $pg == start ]]; then
    pg=$(scripts/pg-tmp start)
    started_pg=$pg
  fi
fi
build=${1:-build}
copies=${2:-16}
shard=${3:-8}
rounds=${4:-3}
exe=$PWD/$build/src/cli/facenames
samples=$PWD/reference/node_modules/@vladmandic/face-api/demo
export FACENAMES_MODELS_DIR=$PWD/reference/node_modules/@vladmandic/face-api/model
tmp=$(mktemp -d /tmp/fn_bench_shards_XXXXXX)
cleanup() {
  rm -rf "$tmp"
  if [[ -n $started_pg ]]; then scripts/pg-tmp stop "$started_pg" || true; fi
}
trap cleanup EXIT
for ((i = 0; i < copies; i++)); do
  mkdir -p "$tmp/tree/$i"
  cp "$samples"/*.jpg "$tmp/tree/$i/"
done
n=$(find "$tmp/tree" -name '*.jpg' | wc -l)

# q LIB SQL: one value from the library
q() {
  if [[ -n $pg ]]; then psql -qAt "$1" -c "$2"; else sqlite3 "$1/library.db" "$2"; fi
}

# run WORKERS SEQ: a fresh library number SEQ; prints "WORKERS WALL_S"
run() {
  local workers=$1 seq_no=$2 lib
  if [[ -n $pg ]]; then
    psql -qAt "$pg" -c "CREATE DATABASE fn_bench_shards_$seq_no" >/dev/null
    lib=$(sed "s|///[^?]*?|///fn_bench_shards_$seq_no?|" <<<"$pg")
  else
    lib=$tmp/lib$seq_no
  fi
  "$exe" --library "$lib" --set "ingest.shard_photos=$shard" ingest "$tmp/tree" --detach >/dev/null
  local id
  id=$(q "$lib" "SELECT min(id) FROM jobs")
  local t0 t1 pids=() k
  t0=$(date +%s.%N)
  for ((k = 1; k <= workers; k++)); do
    "$exe" --library "$lib" worker --host "host$k" --threads 1 >/dev/null 2>&1 &
    pids+=($!)
  done
  while [[ $(q "$lib" "SELECT state FROM jobs WHERE id=$id") != 3 ]]; do sleep 0.05; done
  t1=$(date +%s.%N)
  # the workers' CPU seconds so far (utime + stime in clock ticks), read before they are stopped
  local cpu ticks
  ticks=$(getconf CLK_TCK)
  cpu=$(for p in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done |
    awk -v t="$ticks" '{s += $1} END {printf "%.1f", s / t}')
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  local photos
  photos=$(q "$lib" "SELECT count(*) FROM photos")
  if [[ $photos != "$n" ]]; then
    echo "run $seq_no: $photos photos in the library, expected $n" >&2
    exit 1
  fi
  awk -v w="$workers" -v t0="$t0" -v t1="$t1" -v c="$cpu" 'BEGIN { printf "%d %.3f %s\n", w, t1 - t0, c }' 
}

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
backend=sqlite
[[ -n $pg ]] && backend=postgresql
echo "backend: $backend; photos: $n; shard: $shard photos; rounds: $rounds"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$tmp/results"
for ((r = 1; r <= rounds; r++)); do
  a=$(run 1 $((2 * r - 1)))
  b=$(run 2 $((2 * r)))
  echo "round $r: 1 process $(cut -d' ' -f2 <<<"$a") s ($(awk -v n="$n" '{printf "%.2f", n / $2}' <<<"$a") photos/s, cpu $(cut -d' ' -f3 <<<"$a") s)," \
    "2 processes $(cut -d' ' -f2 <<<"$b") s ($(awk -v n="$n" '{printf "%.2f", n / $2}' <<<"$b") photos/s, cpu $(cut -d' ' -f3 <<<"$b") s)"
  echo "$(cut -d' ' -f2 <<<"$a") $(cut -d' ' -f2 <<<"$b")" >>"$tmp/results"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ r[NR] = $1 / $2 } END {
  n = NR; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
  med = n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2;
  printf "scaling (wall of 1 process / wall of 2, per pair): median %.2fx, spread %.2f-%.2fx\n", med, r[1], r[n] }' \
  "$tmp/results"
