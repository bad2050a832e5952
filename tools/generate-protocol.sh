#!/usr/bin/env bash
# Regenerates Sources/KafkaWire/Generated/*.swift from Kafka's JSON schemas.
# Usage: tools/generate-protocol.sh [SCHEMA_DIR] [OUT_DIR]
#   SCHEMA_DIR defaults to $(git rev-parse --show-toplevel)/../shared/kafka-protocol
#   OUT_DIR    defaults to Sources/KafkaWire/Generated (used by tools/check-generated.sh)
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
SCHEMA_DIR=${1:-"$ROOT/../shared/kafka-protocol"}
OUT_DIR=${2:-"$ROOT/Sources/KafkaWire/Generated"}
if [ ! -d "$SCHEMA_DIR/messages" ]; then
  echo "generate-protocol: schema dir not found: $SCHEMA_DIR (expected messages/ inside)" >&2
  exit 2
fi
exec python3 "$ROOT/tools/codegen/generate_protocol.py" \
  --schemas "$SCHEMA_DIR" \
  --served "$ROOT/Sources/KafkaWire/ServedAPIs.json" \
  --out "$OUT_DIR"
