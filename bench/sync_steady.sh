#!/usr/bin/env bash
# What a steady sync round costs PostgreSQL when nothing changed (issue #15):
# a round writes only the rows that differ from AWS, so with ~10,000
# unchanged rows PostgreSQL should do little more than read them.
#
# Inventory as bench/sync_memory.sh (direct EC2 calls into a freshly reset
# moto): $MEM_VPCS VPCs and $MEM_SGS security groups with their default
# egress rules; with moto's defaults, 5,000 groups make ~10,060 rows.
# A fresh infrasql (--sync-interval 0) imports them, then $ROUNDS triples of:
#   settle  the first round with nothing changed after every row was
#           written (the import, or the last full round): it also pays for
#           that write's aftermath (pruning the old row versions, hint bits)
#   steady  the next round with nothing changed: the steady state
#   session no round: a client session running SELECT 1 through infrasql,
#           which each measured round also opens (psql, a backend, SCRAM)
#   full    the same round after every row's synced_at was set NULL as the
#           engine role, so every row is rewritten: the old behaviour (every
#           row's cloud columns and synced_at updated each round), as the
#           yardstick from the same run
# Per round: wall time (client side), CPU seconds of the embedded PostgreSQL
# (all its processes, reaped ones included, from /proc/<pid>/stat: so
# autovacuum and the checkpointer count too), of infrasql and of moto, and
# the rows the round wrote (a newer xmin than a transaction id taken just
# before the round).
# A round also has a fixed cost, whatever the rows: a dozen statements per
# (table, region) pair, ~33 pairs. MEM_VPCS=0 MEM_SGS=0 measures it (moto's
# defaults only, ~10 rows), to subtract from the figures above.
#
# Usage: bench/sync_steady.sh   (rerunnable; from anywhere; a few minutes)
#        BIN=target/debug/infrasql SKIP_BUILD=1 bench/sync_steady.sh  (no release build)
# Environment:
#   MEM_VPCS=10  MEM_SGS=5000  ROUNDS=5  SKIP_BUILD=1  KEEP=1
#   LOG_DIR=bench/logs/sync_steady
#   PG_STATS=1  also count what one steady round sends PostgreSQL: the
#               cluster runs with pg_stat_statements (track=all, planning
#               timed); after the rounds, one more steady round is counted
#               from a reset: $LOG_DIR/statements.log (calls, plan and
#               execution ms per statement) and the engine's backends it
#               started (log_connections lines in the cluster's log). Its own timing costs CPU, so
#               the rounds' CPU figures are taken without it.
set -Eeuo pipefail

SELF=sync_steady.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_steady}
MEM_VPCS=${MEM_VPCS:-10}
MEM_SGS=${MEM_SGS:-5000}
ROUNDS=${ROUNDS:-5}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/sync.out
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
WORK=$(mktemp -d /tmp/infrasql-steady.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
PROFILE=$(basename "$(dirname "$BIN")") # release, or debug with BIN=target/debug/infrasql
SYNC_INTERVAL=0 snapshot_bin
start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"

say "== sync_steady: PostgreSQL's work in a steady sync round, $MEM_VPCS VPCs + $MEM_SGS security groups (+ their default egress rules)"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: $PROFILE binary built $BIN_ID; $SYNC_NOTE"
say "load average before: $(load_avg)"
python3 "$SYNC_PY" populate --endpoint "$MOTO_EP" --vpcs "$MEM_VPCS" --sgs "$MEM_SGS" 2>>"$LOG_DIR/populate.log" | tee -a "$RESULTS"
PG_EXTRA=()
if [[ "${PG_STATS:-0}" == 1 ]]; then
    PG_EXTRA=(--pg-option shared_preload_libraries=pg_stat_statements
        --pg-option pg_stat_statements.track=all --pg-option pg_stat_statements.track_planning=on
        --pg-option pg_stat_statements.max=10000 --pg-option log_connections=on)
fi
start_infrasql steady "$MOTO_EP" "${PG_EXTRA[@]}"
s=$(sync_once)
ROWS=$(isql -A -t -q -c "SELECT count(*) FROM infra.resource_confirmed")
say "import (first sync): ${s}s; $ROWS rows"

# The next transaction id (this call takes one): rows a later round
# writes get a newer xmin.
next_xid() { esql -A -t -q -c "SELECT pg_current_xact_id()::text"; }
# Rows of every resource table whose xmin is newer than $1: written since.
written_since() {
    esql -A -t -q -c "SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format(
        'SELECT count(*) AS n FROM %s WHERE xmin::text::bigint > %s', table_name, $1), false, true, '')))[1]::text::bigint), 0)
        FROM infra.resource_type"
}
# Every row rewritten next round: synced_at NULL, as the engine role (which
# sync itself writes as, so neither the guard nor change capture objects).
force_rewrite() {
    esql -q -c "DO \$\$ DECLARE t text; BEGIN
        FOR t IN SELECT table_name FROM infra.resource_type LOOP
            EXECUTE format('UPDATE %s SET synced_at = NULL', t);
        END LOOP; END \$\$" >/dev/null
    esql -q -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
}

# A client session that only runs SELECT 1 through infrasql, measured as a
# round is: each measured round is such a session too (psql connects, a
# backend starts, SCRAM), which the background loop's rounds never pay.
null_round() {
    local t0 t1
    t0=$(now)
    isql -A -t -q -c "SELECT 1" >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
}

# measure KIND: one round; appends "KIND wall pg_cpu infrasql_cpu moto_cpu rows_written"
measure() {
    local kind=$1 c0 c1 x w
    x=$(next_xid)
    read -r -a c0 <<<"$(cpu_split)"
    if [[ "$kind" == session ]]; then w=$(null_round); else w=$(sync_once); fi
    read -r -a c1 <<<"$(cpu_split)"
    printf '%s %s %s %s %s %s\n' "$kind" "$w" \
        "$(awk -v a="${c0[1]}" -v b="${c1[1]}" 'BEGIN { printf "%.2f", b - a }')" \
        "$(awk -v a="${c0[2]}" -v b="${c1[2]}" 'BEGIN { printf "%.2f", b - a }')" \
        "$(awk -v a="${c0[0]}" -v b="${c1[0]}" 'BEGIN { printf "%.2f", b - a }')" \
        "$(written_since "$x")" | tee -a "$LOG_DIR/rounds.log"
}

say "rounds: kind wall_s pg_cpu_s infrasql_cpu_s moto_cpu_s rows_written"
: >"$LOG_DIR/rounds.log"
for ((k = 1; k <= ROUNDS; k++)); do
    say "$(measure session)"
    say "$(measure settle)"
    say "$(measure steady)"
    force_rewrite
    say "$(measure full)"
done
status_table >"$LOG_DIR/sync_status.log"

# count_round: one more steady round (after a settle round), counted by pg_stat_statements from a
# reset; prints the summary and writes $LOG_DIR/statements.log.
count_round() {
    esql -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    local s0 s1
    esql -q -c "SELECT pg_stat_statements_reset()" >/dev/null
    s0=$(grep -c 'connection authorized: user=infrasql_engine' "$DATA/postgres.log" || true)
    sync_once >/dev/null
    s1=$(grep -c 'connection authorized: user=infrasql_engine' "$DATA/postgres.log" || true)
    esql -c "SELECT calls, round(total_plan_time::numeric, 1) AS plan_ms,
                    round(total_exec_time::numeric, 1) AS exec_ms, plans,
                    left(regexp_replace(query, '\s+', ' ', 'g'), 150) AS query
             FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%'
             ORDER BY total_plan_time + total_exec_time DESC" >"$LOG_DIR/statements.log"
    esql -A -t -q -F ' ' -c "SELECT sum(calls), count(*), round(sum(total_plan_time)::numeric, 1),
                    round(sum(total_exec_time)::numeric, 1), sum(plans)
             FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%'" |
        { read -r calls distinct plan exec plans
          echo "one steady round: $calls statements ($distinct distinct), $plans planned; plan ${plan} ms, execution ${exec} ms (pg_stat_statements, top-level and nested); the engine's new backends: $((s1 - s0))"; }
}
if [[ "${PG_STATS:-0}" == 1 ]]; then
    sync_once >/dev/null # the last round was a full one: settle first
    say "$(count_round)"
fi

summary() { # KIND COLUMN(2..6)
    awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$LOG_DIR/rounds.log" | stats
}
say ""
for kind in session settle steady full; do
    say "$kind: wall         $(summary $kind 2)"
    say "$kind: PostgreSQL   $(summary $kind 3)"
    say "$kind: infrasql     $(summary $kind 4)"
    say "$kind: moto         $(summary $kind 5)"
    say "$kind: rows written $(summary $kind 6)"
done
med() { summary "$1" "$2" | sed -E 's/.*median=([0-9.]+).*/\1/'; }
PG_S=$(med steady 3) PG_F=$(med full 3) PG_T=$(med settle 3)
say ""
say "RESULT: $ROWS rows: a steady round costs PostgreSQL ${PG_S} s of CPU (median of $ROUNDS; target <= 0.1 s), a full rewrite ${PG_F} s: $(awk -v s="$PG_S" -v f="$PG_F" 'BEGIN { if (s > 0) printf "%.1fx less", f / s; else print "below the 0.01 s resolution" }'); rows written $(med steady 6 | cut -d. -f1) vs $(med full 6 | cut -d. -f1); the first steady round after a full one (settle) ${PG_T} s; a client session alone $(med session 3) s"
stop_infrasql
say "load average after: $(load_avg)"
say "logs: $LOG_DIR"
