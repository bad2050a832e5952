#!/usr/bin/env bash
# Builds Petrel (release) and starts the broker on its embedded defaults:
# listening on 127.0.0.1:9092, data in ./petrel-data. Extra arguments go to `petrel serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product petrel
exec "$(swift build -c release --show-bin-path)/petrel" serve "$@"
