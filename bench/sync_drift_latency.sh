#!/usr/bin/env bash
# Time to drift: from an out-of-band change in the cloud to its infra.drift row,
# with the sync loop running every $INTERVAL s (--sync-interval $INTERVAL).
#
# For each inventory in $INVENTORIES ("VPCS:SGS", created in a freshly reset
# moto with direct EC2 calls):
#   1. start a fresh infrasql with --sync-interval $INTERVAL; wait until the
#      loop's first round has imported every table (infra.sync_status);
#   2. $TRIALS trials, the change kinds in $KINDS taking turns:
#        vpc_tag:   CreateTags on a VPC          -> 'changed'  row in aws.vpc
#        sg_tag:    CreateTags on a security group -> 'changed' row in aws.security_group
#        sg_create: CreateSecurityGroup          -> 'appeared' row in aws.security_group
#        vpc_create: CreateVpc                   -> 'appeared' row in aws.vpc
#      each made with boto3 straight against moto (not through infrasql), after
#      a random pause (0.2-$JITTER s, so the trials sample every phase of the
#      loop); the latency runs from the moment the change call returned to the
#      first poll that sees the drift row (one psql session through infrasql,
#      polling every $POLL s: resolution ~$POLL s).
#   3. the loop's round duration meanwhile (infra.sync_status span) is logged.
# Expected: about INTERVAL/2 + round duration on average (the loop sleeps
# INTERVAL between rounds, then lists everything), at most INTERVAL + 2 rounds.
#
# Usage: bench/sync_drift_latency.sh   (rerunnable; from anywhere; a few minutes)
# Environment:
#   INTERVAL=1  TRIALS=12  KINDS=vpc_tag,sg_tag,sg_create  POLL=0.05  JITTER=1.5
#   INVENTORIES="10:100 100:2000"   TARGET_S (none by default: the issue asks to measure)
#   SKIP_BUILD=1  KEEP=1  LOG_DIR=bench/logs/sync_drift_latency
set -Eeuo pipefail

SELF=sync_drift_latency.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_drift_latency}
INTERVAL=${INTERVAL:-1}
TRIALS=${TRIALS:-12}
KINDS=${KINDS:-vpc_tag,sg_tag,sg_create}
POLL=${POLL:-0.05}
JITTER=${JITTER:-1.5}
INVENTORIES=${INVENTORIES:-10:100 100:2000}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.json "$LOG_DIR"/sync.out
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 moto_server curl; do
    command -v "$c" >/dev/null || die "$c not found"
done
python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 not importable (it comes with moto)"

bench_build
WORK=$(mktemp -d /tmp/infrasql-drift.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
SYNC_INTERVAL=$INTERVAL snapshot_bin
[[ "$SYNC_NOTE" == *"--sync-interval $INTERVAL"* ]] || die "this binary has no --sync-interval"
start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"

say "== sync_drift_latency: out-of-band change -> infra.drift row, --sync-interval $INTERVAL"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: release binary built $BIN_ID; $SYNC_NOTE"
say "moto: $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1:$MOTO_PORT"
say "trials per inventory: $TRIALS (kinds: $KINDS), poll every ${POLL}s, random pause 0.2-${JITTER}s before each change"
say "load average before: $(load_avg)"

# Wait until every table has finished a round without error; sets SPAN_T.
wait_imported() {
    local i n
    for ((i = 0; i < 1200; i++)); do
        n=$(isql -A -t -q -c "SELECT count(*) FROM infra.sync_status WHERE last_finished IS NOT NULL AND last_error IS NULL" 2>/dev/null || echo 0)
        ((n >= 10)) && return 0
        sleep 0.1
    done
    status_table >&2
    die "the sync loop did not import every table within 120 s"
}

declare -a SUMMARY
for inv in $INVENTORIES; do
    vpcs=${inv%%:*} sgs=${inv##*:}
    say ""
    say "-- inventory: $vpcs VPCs + $sgs security groups (each with its default egress rule), plus moto's defaults"
    reset_moto
    python3 "$SYNC_PY" populate --endpoint "$MOTO_EP" --vpcs "$vpcs" --sgs "$sgs" >>"$LOG_DIR/populate.log" 2>&1 ||
        { tail "$LOG_DIR/populate.log" >&2; die "populate failed"; }
    say "moto: $(python3 "$SYNC_PY" inventory --endpoint "$MOTO_EP")"
    name="drift-$vpcs-$sgs"
    start_infrasql "$name" "$MOTO_EP"
    t0=$(now)
    wait_imported
    say "first round (import) done $(elapsed "$t0" "$(now)")s after the server was up; $(status_seen) rows seen"
    PSQL_ARGS="psql -h 127.0.0.1 -p $PG_PORT -U $(id -un) -d infrasql"
    python3 "$SYNC_PY" rounds --psql "$PSQL_ARGS" --seconds 8 >"$LOG_DIR/$name.rounds.log" 2>&1 ||
        { cat "$LOG_DIR/$name.rounds.log" >&2; die "watching the sync loop failed"; }
    sed 's/^/sync loop while idle: /' "$LOG_DIR/$name.rounds.log" | tee -a "$RESULTS"
    ROUND_SPAN=$(grep -m1 'round span' "$LOG_DIR/$name.rounds.log" | sed -E 's/.*median=([0-9.]+s).*/\1/')
    python3 "$SYNC_PY" drift --endpoint "$MOTO_EP" --trials "$TRIALS" --kinds "$KINDS" --poll "$POLL" --jitter "$JITTER" \
        --psql "$PSQL_ARGS" >"$LOG_DIR/$name.trials.log" 2>&1 ||
        { tail -20 "$LOG_DIR/$name.trials.log" >&2; die "drift trials failed"; }
    head -n -2 "$LOG_DIR/$name.trials.log" | tee -a "$RESULTS"
    js=$(tail -1 "$LOG_DIR/$name.trials.log")
    printf '%s\n' "$js" >"$LOG_DIR/$name.summary.json"
    line=$(tail -2 "$LOG_DIR/$name.trials.log" | head -1)
    say "$line"
    say "$(mem_report "memory ($name)")"
    SUMMARY+=("$vpcs VPCs + $sgs SGs ($(status_seen) rows): $line; loop round span median $ROUND_SPAN")
    stop_infrasql
done

say ""
say "-- summary (--sync-interval $INTERVAL)"
for l in "${SUMMARY[@]}"; do say "$l"; done
say "load average after: $(load_avg)"
say "logs: $LOG_DIR"
