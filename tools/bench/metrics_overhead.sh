#!/usr/bin/env bash
# End-to-end latency and broker CPU with the metrics endpoint off vs on (same binary, two configs),
# alternating runs. "on" is scraped every second (Prometheus' default is 15 s) during the run.
# Usage: tools/bench/metrics_overhead.sh [repetitions=3] [rate=20000] [duration=10s]
set -euo pipefail
REPS=${1:-3}; RATE=${2:-20000}; DUR=${3:-10s}
BIN=${PETREL_BIN:-$(swift build -c release --show-bin-path)/petrel}
WORK=$(mktemp -d /tmp/petrel-metrics-bench.XXXX)
PORT=29092; MPORT=29404
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run() {  # $1 = off|on, $2 = repetition
  local data=$WORK/$1-$2 sets=() scraper=
  [ "$1" = on ] && sets=(--set metrics.listen=127.0.0.1:$MPORT)
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$data" "${sets[@]}" >"$WORK/$1-$2.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/$1-$2.log" && break; sleep 0.1; done
  if [ "$1" = on ]; then ( while kill -0 $pid 2>/dev/null; do curl -s -o /dev/null 127.0.0.1:$MPORT/metrics || true; sleep 1; done ) & scraper=$!; fi
  "$BIN" bench e2e --bootstrap 127.0.0.1:$PORT --topic lat --partitions 1 --rate "$RATE" --duration 2s --linger-ms 0 >/dev/null 2>&1  # warm-up
  local c0; c0=$(cpu $pid)
  local json; json=$("$BIN" bench e2e --bootstrap 127.0.0.1:$PORT --topic lat --partitions 1 --rate "$RATE" --duration "$DUR" --linger-ms 0 --json 2>/dev/null)
  local c1; c1=$(cpu $pid)
  kill $pid; wait $pid 2>/dev/null || true
  [ -n "$scraper" ] && { kill $scraper 2>/dev/null || true; wait $scraper 2>/dev/null || true; }
  echo "$1 rep=$2 broker_cpu_ticks=$((c1 - c0)) $json"
}
for r in $(seq "$REPS"); do run off "$r"; run on "$r"; done
rm -rf "$WORK"
