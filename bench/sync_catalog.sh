#!/usr/bin/env bash
# Full sync of the web-application catalogue (IAM, S3, ELBv2, ACM, Route53):
# API calls per full sync, by action, and the time of one full sync of at
# least 2,000 resources spread across those types.
#
# Inventory: bench/catalog_bench.py populate --scale $SCALE into a fresh moto
# (direct boto3 calls; 27.3 resources per unit, so the default 80 makes about
# 2,180: roles, customer policies, attachments, inline policies, instance
# profiles, buckets with and without security settings, target groups, load
# balancers with listeners, certificates, hosted zones and records).
#
# Then a fresh infrasql (--sync-interval 0) whose AWS endpoint is
# bench/count_proxy.py in front of moto:
#   import:        `SELECT infra.sync()` once (every row inserted);
#   steady state:  $STEADY more (nothing changed).
# Each is timed from psql start to exit, with the API calls the proxy counted
# during it, by action. The yardstick in the same run is moto itself: the same
# reads made by a raw boto3 client one after another (catalog_bench.py floor),
# so the ratio says how close a full sync comes to the cost of its own calls.
#
# Usage: bench/sync_catalog.sh   (rerunnable; from anywhere; a few minutes)
# Environment:
#   SCALE=80  STEADY=3  SKIP_BUILD=1 (use the existing binary)  KEEP=1
#   BIN=target/debug/infrasql (default: the release binary, built first)
#   LOG_DIR=bench/logs/sync_catalog
set -Eeuo pipefail

SELF=sync_catalog.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_catalog}
SCALE=${SCALE:-80}
STEADY=${STEADY:-3}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.json "$LOG_DIR"/sync.out
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
CAT_PY=$ROOT/bench/catalog_bench.py

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 moto_server curl; do
    command -v "$c" >/dev/null || die "$c not found"
done
python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 not importable (it comes with moto)"

bench_build
WORK=$(mktemp -d /tmp/infrasql-catalog.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
SYNC_INTERVAL=0 snapshot_bin
# AWS-managed policies (arn:aws:iam::aws:policy/...) exist only when moto loads them.
export MOTO_IAM_LOAD_MANAGED_POLICIES=true
start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"

say "== sync_catalog: full sync of the web-application catalogue, scale $SCALE"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: binary built $BIN_ID; $SYNC_NOTE"
say "load average before: $(load_avg)"
say "populate: $(python3 "$CAT_PY" populate --endpoint "$MOTO_EP" --scale "$SCALE" 2>>"$LOG_DIR/populate.log")"

start_proxy proxy.log
start_infrasql catalog "http://127.0.0.1:$PROXY_PORT"

# by_action of the proxy's counts, one "Action=N" per line, most first
calls_by_action() {
    python3 -c 'import json,sys; d=json.load(sys.stdin)
print("total", d["total"]); [print(" ", a, n) for a, n in sorted(d["by_action"].items(), key=lambda x: -x[1])]'
}

proxy_reset
secs=$(sync_once)
say "import (first full sync): ${secs} s, $(status_seen) resources seen"
proxy_counts | tee "$LOG_DIR/import-calls.json" | calls_by_action | tee -a "$RESULTS"
status_table >>"$RESULTS"

steady=()
for ((i = 1; i <= STEADY; i++)); do
    proxy_reset
    before=$(cpu_split)
    secs=$(sync_once)
    after=$(cpu_split)
    steady+=("$secs")
    say "steady sync $i: ${secs} s; CPU (moto pg infrasql) before: $before after: $after"
    proxy_counts >"$LOG_DIR/steady-$i-calls.json"
done
say "steady-state API calls by action (last round):"
calls_by_action <"$LOG_DIR/steady-$STEADY-calls.json" | tee -a "$RESULTS"
say "open drift after the steady syncs: $(drift_count) (0 expected: nothing changed)"
rows=$(isql -A -t -q -c "SELECT sum(resources_seen) FROM infra.sync_status WHERE table_name ~ '(iam|s3|lb|acm|route53)'")
say "catalogue rows seen per full sync: $rows"

floor=$(python3 "$CAT_PY" floor --endpoint "$MOTO_EP" 2>>"$LOG_DIR/floor.log")
say "moto floor (the same reads, raw boto3, one after another): $floor"
med=$(printf '%s\n' "${steady[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
fsecs=${floor%% *}
say "steady full sync median: ${med} s; floor ${fsecs} s; ratio infrasql / floor: $(awk -v a="$med" -v b="$fsecs" 'BEGIN { printf "%.2f", a / b }')"
