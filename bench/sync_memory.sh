#!/usr/bin/env bash
# Memory with ~10,000 synced resources: the infrasql server's RSS (and peak
# RSS, VmHWM) and, separately, the embedded PostgreSQL's processes (RSS summed,
# which counts shared buffers once per process, and PSS summed, which divides
# shared pages among the processes that map them).
#
# Inventory (direct EC2 calls into a freshly reset moto): $MEM_VPCS VPCs and
# $MEM_SGS security groups spread over them; every group keeps AWS's default
# allow-all egress rule, so $MEM_SGS groups are 2 x $MEM_SGS synced rows
# (aws.security_group + aws.security_group_rule); with moto's defaults (the
# default VPC, subnets, route tables, default groups and their rules) the
# default 5,000 groups make ~10,060 rows.
# Then a fresh infrasql (--sync-interval 0): memory when up, after the import
# (`SELECT infra.sync()`), after $STEADY more syncs, and after a 30 s idle pause.
#
# Usage: bench/sync_memory.sh   (rerunnable; from anywhere; a few minutes)
# Environment:
#   MEM_VPCS=10  MEM_SGS=5000  STEADY=10   SKIP_BUILD=1  KEEP=1
#   LOG_DIR=bench/logs/sync_memory
set -Eeuo pipefail

SELF=sync_memory.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_memory}
MEM_VPCS=${MEM_VPCS:-10}
MEM_SGS=${MEM_SGS:-5000}
STEADY=${STEADY:-10}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/sync.out
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
# mem_report in this shell (it sets MEM_*), then say its line
mem_say() { mem_report "$1" >"$WORK/mem.line"; say "$(cat "$WORK/mem.line")"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 moto_server curl; do
    command -v "$c" >/dev/null || die "$c not found"
done
python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 not importable (it comes with moto)"

bench_build
WORK=$(mktemp -d /tmp/infrasql-mem.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
SYNC_INTERVAL=0 snapshot_bin
start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"

say "== sync_memory: infrasql memory with $MEM_VPCS VPCs + $MEM_SGS security groups (+ their default egress rules) synced"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: release binary built $BIN_ID; $SYNC_NOTE"
say "load average before: $(load_avg)"
python3 "$SYNC_PY" populate --endpoint "$MOTO_EP" --vpcs "$MEM_VPCS" --sgs "$MEM_SGS" 2>>"$LOG_DIR/populate.log" | tee -a "$RESULTS"
say "moto: $(python3 "$SYNC_PY" inventory --endpoint "$MOTO_EP")"

start_infrasql mem "$MOTO_EP"
sleep 2
mem_say "server up, nothing synced"
mem_sampler_start
s=$(sync_once)
mem_sampler_stop "during the import" >"$WORK/mem.line"
say "import (first sync): ${s}s; $(status_seen) rows seen"
say "$(cat "$WORK/mem.line")"
mem_say "after the import"
mem_sampler_start
for ((k = 1; k <= STEADY; k++)); do
    s=$(sync_once)
    say "steady sync $k: ${s}s; infrasql RSS now $(awk -v k="$(proc_kb "$SERVER_PID" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
done
mem_sampler_stop "during $STEADY steady syncs" >"$WORK/mem.line"
PEAK_LINE="infrasql RSS max $(awk -v k="$PEAK_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB, PostgreSQL RSS sum max $(awk -v k="$PEAK_PG_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB, PSS sum max $(awk -v k="$PEAK_PG_PSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
say "$(cat "$WORK/mem.line")"
mem_say "after $STEADY steady syncs"
sleep 30
mem_say "after 30 s idle"
# Every resource table infrasql knows, counted (the list is infrasql's own).
ROWS=$(isql -A -t -q -c "SELECT sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', t), false, true, '')))[1]::text::bigint)
    FROM (SELECT DISTINCT table_name AS t FROM infra.resource_column) s")
TABLES=$(isql -A -t -q -c "SELECT count(DISTINCT table_name) FROM infra.resource_column")
status_table | tee "$LOG_DIR/sync_status.log" >/dev/null
DBSIZE=$(isql -A -t -q -c "SELECT pg_size_pretty(pg_database_size('infrasql'))")
say "rows in the $TABLES aws.* tables: $ROWS; database size: $DBSIZE; per table: $(isql -A -t -q -F= -c "SELECT table_name, resources_seen FROM infra.sync_status ORDER BY 1" | tr '\n' ' ')"
say ""
say "RESULT: $ROWS synced resources: infrasql RSS $(awk -v k="$MEM_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB (peak $(awk -v k="$MEM_HWM" 'BEGIN { printf "%.1f", k / 1024 }') MiB); embedded PostgreSQL RSS sum $(awk -v k="$MEM_PG_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB, PSS sum $(awk -v k="$MEM_PG_PSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB (at rest)"
say "        during steady syncs (sampled): $PEAK_LINE"
stop_infrasql
say "load average after: $(load_avg)"
say "logs: $LOG_DIR"
