#!/usr/bin/env bash
# Build gates: every target and test target builds with warnings as errors, and every module
# imports only what its target declares (SwiftPM's explicit target dependency import check).
# tools/test.sh runs this, then `swift test` with the same flags (so the build is shared).
#   tools/check.sh            gates on the debug build (.build/)
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift build --build-tests -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error "$@"
