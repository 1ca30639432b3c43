#!/usr/bin/env bash
# Plan latency with a large inventory: how long `SELECT count(*) FROM
# infra.plan` takes inside a transaction that changed one row, when
# aws.security_group holds $INVENTORY rows (the planner runs when that
# statement executes; its cost should grow with the change, not the inventory).
#
# The inventory is inserted directly on the backend's Unix socket as the engine
# role (infrasql_engine), the way the sync loop imports existing resources:
# change capture ignores it and nothing is applied. One VPC row vpc-bench0001
# and security groups sg-bench00001 ... in it.
#
# Then, in ONE psql session through infrasql (127.0.0.1, the wire proxy),
# $ITER measured iterations (after $WARMUP unmeasured ones) of each scenario,
# with psql's \timing (client-side round trip of the statement):
#   change1: BEGIN; UPDATE aws.security_group SET tags = '{"k":"v"}'
#              WHERE group_id = 'sg-bench05000';  (the middle row: at a size
#              other than 10000, sg-bench<size/2>)
#            SELECT count(*) FROM infra.plan;   <- timed (and the UPDATE too)
#            ROLLBACK;
#   empty:   BEGIN; SELECT count(*) FROM infra.plan; ROLLBACK;   <- the floor
#   select1: BEGIN; SELECT 1; ROLLBACK;       <- bare round trip through infrasql
# Reported: median, p95, min, max, mean in ms. Nothing is ever committed.
# Scenarios are measured at every inventory size in $SIZES (rows are added
# between sizes), to show whether the plan's cost depends on the inventory.
#
# Usage: bench/plan_latency.sh   (rerunnable; from anywhere)
# Environment:
#   SIZES="100 10000"  ITER=300  WARMUP=30
#   SKIP_BUILD=1  KEEP=1  LOG_DIR=bench/logs/plan_latency
set -Eeuo pipefail

SELF=plan_latency.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/plan_latency}
SIZES=${SIZES:-100 10000}
ITER=${ITER:-300}
WARMUP=${WARMUP:-30}
TARGET_MS=50
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.sql
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 moto_server curl; do
    command -v "$c" >/dev/null || die "$c not found"
done

bench_build
WORK=$(mktemp -d /tmp/infrasql-plan.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
snapshot_bin
start_moto
start_infrasql plan "http://127.0.0.1:$MOTO_PORT"

say "== plan_latency: SELECT count(*) FROM infra.plan after a 1-row UPDATE"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: release binary built $BIN_ID; $SYNC_NOTE"
say "iterations per scenario: $ITER measured after $WARMUP warm-up, one psql session, \\timing; load average before: $(load_avg)"

# The VPC row, as the engine.
esql -q -c "INSERT INTO aws.vpc (vpc_id, region, name, cidr_block, state, is_default)
            VALUES ('vpc-bench0001', 'us-east-1', 'bench', '10.0.0.0/16', 'available', false)
            ON CONFLICT DO NOTHING" >"$LOG_DIR/load.log" 2>&1 ||
    { cat "$LOG_DIR/load.log" >&2; die "engine insert of the VPC row failed"; }

loaded=0
load_to() { # N: grow aws.security_group's bench rows to N, as the engine
    local n=$1
    ((n > loaded)) || return 0
    esql -q -c "INSERT INTO aws.security_group (group_id, region, group_name, description, vpc_id, tags, owner_id)
                SELECT 'sg-bench' || lpad(g::text, 5, '0'), 'us-east-1', 'bench-' || g, 'bench',
                       'vpc-bench0001', '{}', '123456789012'
                FROM generate_series($((loaded + 1)), $n) g" >>"$LOG_DIR/load.log" 2>&1 ||
        { cat "$LOG_DIR/load.log" >&2; die "engine insert of security group rows failed"; }
    esql -q -c "ANALYZE aws.security_group" >>"$LOG_DIR/load.log" 2>&1
    loaded=$n
}

# gen_script SCENARIO N -> psql script on stdout
gen_script() {
    local scen=$1 n=$2 i
    echo '\timing off'
    for ((i = 0; i < n; i++)); do
        echo 'BEGIN;'
        case $scen in
        change1)
            echo '\timing on'
            echo "UPDATE aws.security_group SET tags = '{\"k\":\"v\"}' WHERE group_id = '$TARGET_ID';"
            echo 'SELECT count(*) FROM infra.plan;'
            ;;
        empty)
            echo '\timing on'
            echo 'SELECT count(*) FROM infra.plan;'
            ;;
        select1)
            echo '\timing on'
            echo 'SELECT 1;'
            ;;
        esac
        echo '\timing off'
        echo 'ROLLBACK;'
    done
}

# measure SCENARIO SIZE
measure() {
    local scen=$1 size=$2 log="$LOG_DIR/$1-$2.log"
    gen_script "$scen" "$WARMUP" >"$WORK/warm.sql"
    gen_script "$scen" "$ITER" >"$WORK/run.sql"
    isql -q -At -f "$WORK/warm.sql" >/dev/null 2>"$LOG_DIR/$scen-$size.warmup.err" ||
        { cat "$LOG_DIR/$scen-$size.warmup.err" >&2; die "warm-up of $scen failed"; }
    isql -q -At -f "$WORK/run.sql" >"$log" 2>&1 || { tail "$log" >&2; die "$scen failed; see $log"; }
    # Each iteration prints: [UPDATE time], the SELECT's value, the SELECT's time.
    local counts
    counts=$(grep -v '^Time:' "$log" | sort | uniq -c | awk '{ printf "%s x%s ", $2, $1 }')
    local sel="" upd=""
    if [[ "$scen" == change1 ]]; then
        upd=$(grep '^Time:' "$log" | awk 'NR % 2 == 1 { print $2 }' | stats)
        sel=$(grep '^Time:' "$log" | awk 'NR % 2 == 0 { print $2 }' | stats)
    else
        sel=$(grep '^Time:' "$log" | awk '{ print $2 }' | stats)
    fi
    local what
    case $scen in
    change1) what="1 changed row: SELECT count(*) FROM infra.plan" ;;
    empty) what="empty txn:     SELECT count(*) FROM infra.plan" ;;
    select1) what="empty txn:     SELECT 1 (round trip)        " ;;
    esac
    say "  [$size rows] $what  ms: $sel   (results: $counts)"
    [[ -z "$upd" ]] || say "  [$size rows] 1 changed row: the UPDATE itself                ms: $upd"
    if [[ "$scen" == change1 ]]; then
        local med
        med=$(sed -E 's/.*median=([0-9.]+).*/\1/' <<<"$sel")
        P95=$(sed -E 's/.*p95=([0-9.]+).*/\1/' <<<"$sel")
        MED=$med
    fi
}

for size in $SIZES; do
    load_to "$size"
    TARGET_ID=sg-bench$(printf '%05d' $((size / 2)))
    rows=$(esql -At -c "SELECT count(*) FROM aws.security_group")
    say ""
    say "-- aws.security_group rows: $rows"
    # Show the plan once (sanity: one update step for the changed row).
    isql -q -c "BEGIN" \
        -c "UPDATE aws.security_group SET tags = '{\"k\":\"v\"}' WHERE group_id = '$TARGET_ID'" \
        -c "SELECT step, action, \"table\", resource_id, changes FROM infra.plan" \
        -c "ROLLBACK" >"$LOG_DIR/plan-$size.log" 2>&1 || { cat "$LOG_DIR/plan-$size.log" >&2; die "plan read failed"; }
    sed 's/^/    /' "$LOG_DIR/plan-$size.log" | tee -a "$RESULTS" >&2
    grep -q '(1 row)' "$LOG_DIR/plan-$size.log" || note "WARNING: expected a one-step plan for the UPDATE of $TARGET_ID"
    measure change1 "$size"
    measure empty "$size"
    measure select1 "$size"
    verdict=$(awk -v m="$MED" -v p="$P95" -v t="$TARGET_MS" 'BEGIN {
        print (p < t) ? "median and p95 under the " t " ms target" : (m < t ? "median under, p95 OVER the " t " ms target" : "MISSES the " t " ms target") }')
    say "  [$size rows] verdict: $verdict"
done

# Nothing was applied: the cloud is untouched and no change is pending.
pending=$(esql -At -c "SELECT count(*) FROM infra.change")
applies=$(esql -At -c "SELECT count(*) FROM infra.apply")
say ""
say "after: infra.change rows $pending, infra.apply rows $applies (both should be 0); load average: $(load_avg)"
say "logs: $LOG_DIR"
