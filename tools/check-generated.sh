#!/usr/bin/env bash
# Verifies that Sources/KafkaWire/Generated matches what the generator produces.
# Usage: tools/check-generated.sh [SCHEMA_DIR]
# Exit 0: up to date (or, outside CI, schema dir absent: nothing to check). Exit 1: drift, or the
# schemas are missing under CI=true (CI always has ../shared beside the clone; a missing copy must
# not turn the check into a silent pass).
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
SCHEMA_DIR=${1:-"$ROOT/../shared/kafka-protocol"}
if [ ! -d "$SCHEMA_DIR/messages" ]; then
  if [ -n "${CI:-}" ]; then
    echo "check-generated: schema dir $SCHEMA_DIR absent under CI; cannot check the generated code." >&2
    exit 1
  fi
  echo "check-generated: schema dir $SCHEMA_DIR absent; skipping the generated-code check."
  exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$ROOT/tools/generate-protocol.sh" "$SCHEMA_DIR" "$TMP/Generated" >/dev/null
if diff -ru "$ROOT/Sources/KafkaWire/Generated" "$TMP/Generated"; then
  echo "check-generated: Sources/KafkaWire/Generated is up to date."
else
  echo "check-generated: generated code drifted; run tools/generate-protocol.sh and commit." >&2
  exit 1
fi
