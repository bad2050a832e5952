#!/usr/bin/env bash
# Is `petrel bench` cheap enough not to be the bottleneck? Runs it and a librdkafka producer
# (confluent-kafka, linger 5 ms, 1 MiB batches, 5 in flight, no compression) with the same record
# size and count, back to back against ONE broker instance, and prints both with each client's CPU
# time per record (the steadiest figure on a shared box).
#   tools/bench/client-check.sh [COUNT] [RECORD_SIZE]      (defaults 500000 1024)
# Uses PETREL_BIN (default: the repo's release build) and starts its own broker on a free port.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-500000}
SIZE=${2:-1024}
PETREL_BIN=${PETREL_BIN:-$(swift build -c release --show-bin-path)/petrel}
[ -x "$PETREL_BIN" ] || { echo "client-check: $PETREL_BIN not built (swift build -c release --product petrel)" >&2; exit 1; }
DATA=$(mktemp -d /tmp/petrel-client-check.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PETREL_BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" >"$DATA/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$DATA/broker.log" && break; sleep 0.1; done
grep -q "listening on" "$DATA/broker.log" || { cat "$DATA/broker.log" >&2; exit 1; }

cpu() { /usr/bin/env time -f "%U %S" "$@" 2>"$DATA/time" >"$DATA/out" || { cat "$DATA/out" "$DATA/time" >&2; exit 1; }; tail -1 "$DATA/time"; }
echo "== petrel bench produce ($COUNT x $SIZE B, acks=1)"
read -r u s < <(cpu "$PETREL_BIN" bench produce --bootstrap 127.0.0.1:$PORT --topic check-petrel --count "$COUNT" --record-size "$SIZE" --acks 1)
head -1 "$DATA/out"
python3 -c "print(f'   client CPU: {($u+$s)*1e6/$COUNT:.2f} µs/record')"
echo "== librdkafka (confluent-kafka) produce ($COUNT x $SIZE B, acks=1)"
"$PETREL_BIN" topics create check-rdkafka --partitions 1 --bootstrap 127.0.0.1:$PORT >/dev/null
read -r u s < <(cpu python3 tools/bench/rdkafka_produce.py 127.0.0.1:$PORT check-rdkafka "$COUNT" "$SIZE" 1 5 nocb)
cat "$DATA/out"
python3 -c "print(f'   client CPU: {($u+$s)*1e6/$COUNT:.2f} µs/record (includes the Python produce() loop)')"
