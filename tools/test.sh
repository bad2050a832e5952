#!/usr/bin/env bash
# THE test command: installs dependencies, builds the release broker, runs the unit tests
# (swift test) and the integration suite (pytest against the real binary).
#   tools/test.sh                 everything
#   SKIP_UNIT=1 tools/test.sh     build + integration only
#   SKIP_INTEGRATION=1 tools/test.sh
#   SKIP_FUZZ=1 tools/test.sh     without the bounded fuzz run (tools/fuzz.sh 45)
#   PYTEST_ARGS="-k kcat" tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}

declare -a RESULTS=()
FAILED=0
record() { # name rc
  if [ "$2" = 0 ]; then RESULTS+=("PASS  $1"); else RESULTS+=("FAIL  $1 (exit $2)"); FAILED=1; fi
}
summary() {
  echo
  echo "================ tools/test.sh summary ================"
  for r in "${RESULTS[@]}"; do echo "$r"; done
  if [ "$FAILED" = 0 ]; then echo "ALL PASSED"; else echo "SOME STEPS FAILED"; fi
}
trap summary EXIT

step() { # name cmd...
  local name=$1; shift
  echo
  echo "==> $name: $*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  echo "<== $name: exit $rc after $((SECONDS - start)) s"
  record "$name" "$rc"
  return 0
}

step "install-deps" tools/install-deps.sh
if [ "$FAILED" != 0 ]; then exit 1; fi

# Generated protocol code must match Kafka's schemas (skipped with a note when ../shared is absent).
step "generated code up to date" tools/check-generated.sh

step "build (release petrel)" swift build -c release --product petrel
BUILD_OK=$FAILED

if [ "$BUILD_OK" = 0 ]; then
  # Unit tests that drive a real broker (LoadGenTests) use the release binary too.
  export PETREL_BIN="$(swift build -c release --show-bin-path)/petrel"
fi

if [ "${SKIP_UNIT:-0}" != 1 ]; then
  # Gates first (warnings as errors, explicit target imports); swift test reuses that build.
  step "gates (tools/check.sh)" tools/check.sh
  step "unit tests (swift test)" swift test -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error
fi

# libFuzzer + ASan, 45 s per target plus its own build in .build-fuzz (see tools/fuzz.sh).
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzz (bounded)" env FUZZ_JOBS=2 tools/fuzz.sh 45
fi

if [ "${SKIP_INTEGRATION:-0}" != 1 ]; then
  if [ "$BUILD_OK" != 0 ]; then
    record "integration tests (skipped: build failed)" 1
  else
    BIN_DIR=$(swift build -c release --show-bin-path)
    export PETREL_BIN="$BIN_DIR/petrel"
    run_pytest() {
      local rc=0
      # shellcheck disable=SC2086
      # Bounded as a whole (each test is also bounded by pytest-timeout, see pytest.ini).
      timeout -k 30 "${PYTEST_TOTAL_TIMEOUT:-2700}" \
        "$PY" -m pytest -q -p no:cacheprovider Tests/IntegrationTests ${PYTEST_ARGS:-} || rc=$?
      if [ "$rc" = 124 ]; then echo "integration suite exceeded ${PYTEST_TOTAL_TIMEOUT:-2700} s"; fi
      # 5 = no tests collected: that is a failure, not a pass.
      if [ "$rc" = 5 ]; then echo "pytest collected no tests"; fi
      return "$rc"
    }
    step "integration tests (pytest, PETREL_BIN=$PETREL_BIN)" run_pytest
  fi
fi

[ "$FAILED" = 0 ]
