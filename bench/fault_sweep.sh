#!/usr/bin/env bash
# The cloud-fault sweep (issue #14) at full size: every fault kind
# (throttling, 500, 503, reset before moto sees the call, reset after moto
# carried it out, an answer past the 2 s attempt timeout) at every AWS call
# of a create commit (8 actions: VPC, 2 subnets, security group, 2 rules,
# 2 instances), of the delete commit of the same, and of a sync round of those five types.
# The three scenarios are the tests of tests/fault_sweep.rs, which run a
# rotating subset (one kind per call) in CI; INFRASQL_SWEEP=full runs all.
#
# Prints per scenario: cases run, succeeded, failed cleanly (an error that
# names the resource and AWS's cause), unclean, orphans (in moto, tagged by
# infrasql, in no row) and lost changes (a row naming what moto lacks); the
# tests fail unless unclean, orphans and lost are 0.
#
# Usage: bench/fault_sweep.sh   (rerunnable; from anywhere; needs moto_server
# on PATH; about five minutes on 2 cores)
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build --workspace --tests
start=$(date +%s)
INFRASQL_SWEEP=full cargo nextest run -p infrasql --test fault_sweep --no-fail-fast \
    --success-output immediate --failure-output immediate 2>&1 |
    grep -E "fault sweep|PASS|FAIL|panicked" || true
echo "fault sweep: total $(( $(date +%s) - start )) s"
