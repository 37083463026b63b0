#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md: every benchmark run -count=10
# (COUNT to change it), raw results and benchstat tables written to the
# directory given as $1 (default bench/out/, which git ignores). Takes about
# 15 minutes on 2 cores. Run it on an otherwise idle machine. The shared
# stores' figures need the servers: see BENCHMARKS.md.
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

# 1.: the 200 path, bare and through a Transport (nothing latched, a million
# other tokens latched), in the root package; 2.: from 1 to 64 goroutines.
run passthrough . -bench '^BenchmarkPassThrough$' -benchtime=200ms
run contention . -bench '^BenchmarkContention$' -benchtime=200ms
# 3.: a latched token; one caller of a storm.
run latched . -bench '^Benchmark(Latched|DetectionFollower)$' -benchtime=200ms
# 3b.: a detected call with a 5 s Notifier against the bare 401, paired.
run detected . -bench '^BenchmarkDetectedCall$' -benchtime=20000x
# 4.: 10,000 callers, one broken token, a 50 ms Notifier: 5 storms a run,
# against the bare base and the hook floor.
run storm . -bench '^BenchmarkDetectionStorm$' -benchtime=5x
# 5.: 10,000 connections, 3 tokens each, break within a second.
COUNT_SAVED=$count; count=3
run mass . -bench '^BenchmarkMassBreakage$' -benchtime=1x
count=$COUNT_SAVED
# 6.: against the peers (oauth2, go-retryablehttp), in memory and over loopback.
run peers bench -bench '^Benchmark(PassThrough|Contention)$' -benchtime=200ms
run loopback bench -bench '^BenchmarkLoopback(Paired)?$' -benchtime=1s

benchstat() { go run "$benchstat_pkg" "$@"; }
{
  echo "# 1. The 200 path, in-memory base (columns: vs bare)"
  benchstat -col /rt "$out/passthrough.txt"
  echo
  echo "# 2. Contention (rows: goroutines per core; columns: vs bare)"
  benchstat -col /rt -row /g "$out/contention.txt"
  echo
  echo "# 3. Latched token; one caller of a storm"
  benchstat "$out/latched.txt"
  echo
  echo "# 4. Detection storm (columns: vs the floor)"
  benchstat -col /rt -row /callers "$out/storm.txt"
  echo
  echo "# 5. Mass breakage, memory store"
  benchstat "$out/mass.txt"
  echo
  echo "# 6. Against the peers (columns: vs bare)"
  benchstat -col /rt "$out/peers.txt"
  benchstat -filter '.name:Loopback' -col /rt "$out/loopback.txt"
  benchstat -filter '.name:LoopbackPaired' -col /rt "$out/loopback.txt"
} | tee "$out/benchstat.txt"
