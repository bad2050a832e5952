#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the code that reads hostile bytes:
#   FuzzRequestFrame     request header + the generated decoder of every served API and version
#   FuzzRecordBatch      record-batch validation, record decoding, decompression
#   FuzzSegmentRecovery  partition loading/recovery from arbitrary .log bytes, then reading back
#   FuzzIndexLoading     arbitrary .index/.timeindex next to a valid log: accepted or rebuilt
#
#   tools/fuzz.sh [seconds-per-target] [target...]
#     FUZZ_JOBS=2 tools/fuzz.sh 45          CI: 45 s per target, two at a time (tools/test.sh)
#     tools/fuzz.sh 1800 FuzzRecordBatch    a longer local run of one target
#     tools/fuzz.sh 3600                    the long local run: an hour per target
#
# The fuzz targets exist only with PETREL_FUZZ set (Package.swift); they are built in release with
# `-sanitize=fuzzer,address` into .build-fuzz (its own scratch path). Each target's corpus lives in
# .build-fuzz/corpus/<target> and is kept between runs; it is seeded with the committed regression
# inputs (Tests/Fuzz/Corpus/<target>/), the target's own generated seeds (`<target> --write-seeds`)
# and, for FuzzRequestFrame, the captured client frames in Tests/KafkaWireTests/Fixtures.
# A crash leaves .build-fuzz/artifacts/<target>/crash-*; replay it with
#   .build-fuzz/release/<target> .build-fuzz/artifacts/<target>/crash-<hash>
# then fix it, copy the input into Tests/Fuzz/Corpus/<target>/ and add a unit test.
# Prints executions and crashes per target; exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${1:-60}
shift || true
ALL_TARGETS=(FuzzRequestFrame FuzzRecordBatch FuzzSegmentRecovery FuzzIndexLoading)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SCRATCH="$ROOT/.build-fuzz"
# No Swift backtracer on crashes: libFuzzer/ASan report them.
export PETREL_FUZZ=1 SWIFT_BACKTRACE=enable=no

echo "==> building fuzz targets (release, -sanitize=fuzzer,address) into $SCRATCH"
# lld: gold fails to link libFuzzer's runtime with Swift objects. One build per product; the second
# and later reuse the shared modules.
for target in "${TARGETS[@]}"; do
  swift build -c release --scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld --product "$target"
done
BIN="$SCRATCH/release"

run_target() { # target: fuzz it for SECONDS_PER_TARGET, exit status in $SCRATCH/<target>.rc
  local target=$1 rc=0
  local corpus="$SCRATCH/corpus/$target" artifacts="$SCRATCH/artifacts/$target"
  echo "==> $target: $SECONDS_PER_TARGET s, corpus $corpus ($(ls "$corpus" | wc -l) inputs)"
  "$BIN/$target" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$SCRATCH/$target.log" 2>&1 || rc=$?
  echo "$rc" >"$SCRATCH/$target.rc"
}

for target in "${TARGETS[@]}"; do
  corpus="$SCRATCH/corpus/$target"
  mkdir -p "$corpus" "$SCRATCH/artifacts/$target"
  if [ -d "Tests/Fuzz/Corpus/$target" ]; then cp -n Tests/Fuzz/Corpus/"$target"/* "$corpus"/ 2>/dev/null || true; fi
  "$BIN/$target" --write-seeds "$corpus"
  if [ "$target" = FuzzRequestFrame ]; then
    for hex in Tests/KafkaWireTests/Fixtures/*_request_v*.hex; do
      python3 -c 'import sys; open(sys.argv[2], "wb").write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
        "$hex" "$corpus/fixture-$(basename "$hex" .hex)"
    done
  fi
done

# FUZZ_JOBS targets at a time (default 1: the machine is shared; CI, with 2 free cores, uses 2).
running=0
for target in "${TARGETS[@]}"; do
  if [ "$running" -ge "${FUZZ_JOBS:-1}" ]; then wait -n || true; running=$((running - 1)); fi
  run_target "$target" &
  running=$((running + 1))
done
wait

declare -a SUMMARY=()
CRASHED=0
for target in "${TARGETS[@]}"; do
  log="$SCRATCH/$target.log"
  artifacts="$SCRATCH/artifacts/$target"
  rc=$(cat "$SCRATCH/$target.rc" 2>/dev/null || echo "?")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true); fi
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  crashes=$(ls "$artifacts" | grep -cE '^(crash|oom|timeout|leak)-' || true)
  if [ "$rc" != 0 ]; then
    CRASHED=1
    echo "!!! $target failed (exit $rc); from $log:"
    grep -E "FUZZ INVARIANT|Fatal error|ERROR: |SUMMARY|Test unit written|^    #[0-9] " "$log" | head -20 || true
  fi
  SUMMARY+=("$target: ${execs:-?} executions, ${cov:-cov: ?}, exit $rc, crash/oom/timeout inputs in $artifacts: $crashes")
done

echo
echo "================ tools/fuzz.sh summary ($SECONDS_PER_TARGET s per target) ================"
for line in "${SUMMARY[@]}"; do echo "$line"; done
[ "$CRASHED" = 0 ]
