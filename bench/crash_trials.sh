#!/usr/bin/env bash
# kill -9 of infrasql during applies, at least 30 trials: the phases of the
# journal in turn (first call in flight, mid-creates, last create in flight,
# written back before the journal's `applied`, during an undo) and random
# kill times within 1.5 s of COMMIT. Each trial commits VPC -> subnet ->
# security group (+rule) -> instance through the fault proxy in front of
# moto, kills infrasql, restarts it on the same data dir, waits until every
# apply is settled, and checks rows = moto, no tagged leftovers, no
# duplicates. Prints a table: phase, trials, committed, kept, undone, failed.
#
# Usage: bench/crash_trials.sh   (rerunnable; from anywhere; several minutes)
# Environment: CRASH_TRIALS=30
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CRASH_TRIALS=${CRASH_TRIALS:-30}
command -v moto_server >/dev/null || { echo "moto_server not on PATH" >&2; exit 1; }
cargo build --workspace --tests >/dev/null
cargo nextest run -p infrasql --test crash --run-ignored only --no-capture \
    -E 'test(crash_trials)' 2>&1 | grep -E '^(phase|[A-Z][a-zA-Z]+ +[0-9]|[0-9]+ trials)|PASS|FAIL|panicked'
