#!/usr/bin/env bash
# The wire fuzzer for a time box: each target of tests/fuzz_wire.rs
# (startup packets, message framing, the statement classifier) runs for
# SECONDS with a random seed, and the script prints the cases run and the
# panics found per target (a panic's shrunk input is saved under
# target/tmp/fuzz-failures/<target>/; copy it into tests/fuzz_corpus/<target>/
# once fixed, so CI replays it).
#
# Usage: bench/fuzz.sh [seconds per target, default 60]
# Environment: FUZZ_SEED=N replays a run (the seed is printed).
#             SKIP_BUILD=1 skips `cargo build --workspace --tests`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
SEED="${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --workspace --tests >/dev/null 2>&1 || cargo build --workspace --tests
fi
status=0
total_cases=0
total_panics=0
for t in fuzz_startup_packets fuzz_message_framing fuzz_statement_classifier; do
    out=$(FUZZ_SECONDS="$SECONDS_PER_TARGET" FUZZ_SEED="$SEED" \
        cargo nextest run -p infrasql --test fuzz_wire --no-capture --no-fail-fast -E "test(=$t)" 2>&1) || status=1
    line=$(grep -E '^fuzz [a-z]+: [0-9]+ cases' <<<"$out" || true)
    if [ -z "$line" ]; then
        echo "$t: no result line (hang or build failure):"
        tail -20 <<<"$out"
        status=1
        continue
    fi
    echo "$line"
    total_cases=$((total_cases + $(sed -E 's/.*: ([0-9]+) cases.*/\1/' <<<"$line")))
    total_panics=$((total_panics + $(sed -E 's/.* ([0-9]+) panics.*/\1/' <<<"$line")))
    grep -A3 'panicked:' <<<"$out" || true
done
echo "total: $total_cases cases, $total_panics panics, ${SECONDS_PER_TARGET} s per target, seed $SEED"
exit $status
