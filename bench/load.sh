#!/usr/bin/env bash
# 20 sessions committing at once while the sync loop runs every second:
# rounds of disjoint commits (each session its own VPC's tags) and of
# commits to one VPC (serialised on its row, or refused with 40001/40P01/
# 55P03). Every invariant is checked as in tests/load.rs; prints the
# throughput (commits per second of commit time) and COMMIT latency p50/p99.
#
# Usage: bench/load.sh   (rerunnable; from anywhere; a minute or two)
# Environment: LOAD_ROUNDS=5
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export LOAD_ROUNDS=${LOAD_ROUNDS:-5}
command -v moto_server >/dev/null || { echo "moto_server not on PATH" >&2; exit 1; }
cargo build --workspace --tests >/dev/null
cargo nextest run -p infrasql --test load --run-ignored only --no-capture \
    -E 'test(load_figures)' 2>&1 | grep -E 'commits \(|commits: |PASS|FAIL|panicked'
