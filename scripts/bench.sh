#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md (issue 4): every benchmark run
# -count=10 (COUNT to change it), raw results and benchstat tables written to
# the directory given as $1 (default bench/out/, which git ignores).
# Takes about 10 minutes on 2 cores. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/out}
count=${COUNT:-10}
benchstat_pkg=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
mkdir -p "$out"

# The figures are medians, but a machine busy with other work still skews
# them: wait (up to 5 minutes) for the 1-minute load average to fall below 1.
for _ in $(seq 60); do
  awk '{ exit !($1 < 1.0) }' /proc/loadavg 2>/dev/null && break
  sleep 5
done

{
  echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "go:     $(go version)"
  echo "cores:  $(nproc) ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'))"
  echo "kernel: $(uname -sr)"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (1, 5, 15 min, before the run)"
} | tee "$out/machine.txt"

# run NAME DIR ARGS...: go test in DIR with ARGS, -count=$count, into NAME.txt.
run() {
  local name=$1 dir=$2
  shift 2
  echo
  echo "=== $name: (cd $dir && go test -run '^\$' $* -count=$count .)   load: $(cut -d' ' -f1 /proc/loadavg)"
  (cd "$dir" && go test -run '^$' "$@" -count="$count" -timeout=30m .) | tee "$out/$name.txt"
}

# 1. and 6.: the in-memory pass-through, alone and from 1 to 64 goroutines.
run passthrough bench -bench '^BenchmarkPassThrough$' -benchtime=200ms
run contention bench -bench '^BenchmarkContention$' -benchtime=200ms
# 2.: real HTTP over loopback.
run loopback bench -bench '^BenchmarkLoopback(Paired)?$' -benchtime=1s
# 3.: a latched token; one caller of a storm.
run latched . -bench '^Benchmark(Latched|DetectionFollower)$' -benchtime=200ms
# 4.: 10,000 callers, one broken token, a 50 ms Notifier: 3 storms a run.
run storm . -bench '^BenchmarkDetectionStorm$' -benchtime=3x
# 5.: 1,000 to 1,000,000 latched tokens.
run manytokens . -bench '^BenchmarkManyTokens$' -benchtime=200ms

benchstat() { go run "$benchstat_pkg" "$@"; }
{
  echo "# 1. Pass-through, 200, in-memory base (columns: vs bare)"
  benchstat -col /rt "$out/passthrough.txt"
  echo
  echo "# 2. Loopback end to end (columns: vs bare; then each wrapper alternating with bare)"
  benchstat -filter '.name:Loopback' -col /rt "$out/loopback.txt"
  benchstat -filter '.name:LoopbackPaired' -col /rt "$out/loopback.txt"
  echo
  echo "# 3. Latched token; one caller of a storm"
  benchstat "$out/latched.txt"
  echo
  echo "# 4. Detection storm (columns: vs the floor)"
  benchstat -col /rt -row /callers "$out/storm.txt"
  echo
  echo "# 5. Many tokens (columns: vs 1,000 entries; floor-*: a plain Go map; entries=0: the empty latch)"
  benchstat -col '/entries@(1000 10000 100000 1000000)' -row /op "$out/manytokens.txt"
  benchstat -filter '/op:healthy-200' -col '/entries@(0 1000 1000000)' -row /op "$out/manytokens.txt"
  echo
  echo "# 6. Contention (rows: goroutines; columns: vs bare)"
  benchstat -col /rt -row /g "$out/contention.txt"
} | tee "$out/benchstat.txt"
