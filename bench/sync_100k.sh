#!/usr/bin/env bash
# 100,000 resources on one node (issue #15): infrasql syncing five EC2 types
# in one region from the synthetic endpoint bench/synth_ec2.py (pages
# rendered once, a few ms each), so that what is measured is infrasql's own
# cost and its PostgreSQL's, not an emulator's.
#
# Inventory ($SYNTH_VPCS VPCs, 100 resources each; 1,000 → 100,000): per VPC
# 9 subnets, 40 security groups, 40 rules (one per group), 10 instances
# (plus their root volumes and 15 group memberships, which are no resources
# of their own). infrasql: a release build, `--sync-tables` the five types,
# `--sync-regions us-east-1`, `--sync-interval 0` (rounds only when asked).
#
# Measured:
#   import   the first `SELECT infra.sync()` (again while rows are still
#            missing: rounds until all the resources are rows)
#   steady   $STEADY more rounds, nothing changed
# each with wall time (client side), CPU of infrasql and of PostgreSQL (the
# cluster's processes summed, /proc), and of the endpoint; infrasql's peak
# RSS (VmHWM); the database's size (pg_database_size). The rate per core is
# resources / (wall × cores) next to CloudQuery's published 566k resources
# in 114 s at 1.97 GB RSS.
#
# Usage: bench/sync_100k.sh   (rerunnable; from anywhere)
# Environment:
#   SYNTH_VPCS=1000  STEADY=3  SKIP_BUILD=1  KEEP=1  PERF=1 (perf record -g the
#   import and one steady round; needs perf; PERF_CALLGRAPH='--call-graph dwarf'
#   for call chains through code built without frame pointers)
#   BIN=target/release/infrasql
#   LOG_DIR=bench/logs/sync_100k  SERVE_ARGS="--pg-option log_min_duration_statement=100"
set -Eeuo pipefail

SELF=sync_100k.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_100k}
SYNTH_VPCS=${SYNTH_VPCS:-1000}
STEADY=${STEADY:-3}
TABLES=aws.vpc,aws.subnet,aws.security_group,aws.security_group_rule,aws.instance
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/sync.out "$LOG_DIR"/*.perf.data
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 curl; do
    command -v "$c" >/dev/null || die "$c not found"
done
[[ "${PERF:-0}" != 1 ]] || command -v perf >/dev/null || die "PERF=1 needs perf"

# As deployed: a backtrace captured (and symbolized) on every error would
# be measured too (RUST_BACKTRACE=1 in a shell showed up as memory in
# heaptrack).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
# Each pair's phases (listing, read, diff, write, sets, commit) at debug.
export INFRASQL_LOG=${INFRASQL_LOG:-info,infrasql::engine::sync=debug}
bench_build
WORK=$(mktemp -d /tmp/infrasql-100k.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
SYNC_INTERVAL=0 snapshot_bin

# ------------------------------------------------------------------ endpoint
SYNTH_PID=""
start_synth() {
    local pf="$WORK/synth.port" i
    python3 "$ROOT/bench/synth_ec2.py" --vpcs "$SYNTH_VPCS" --port-file "$pf" \
        --log "$LOG_DIR/synth-requests.log" >"$LOG_DIR/synth.log" 2>&1 &
    SYNTH_PID=$!
    PIDS+=("$SYNTH_PID")
    for ((i = 0; i < 1200; i++)); do
        [[ -s "$pf" ]] && { SYNTH_PORT=$(cat "$pf"); return 0; }
        kill -0 "$SYNTH_PID" 2>/dev/null || { cat "$LOG_DIR/synth.log" >&2; die "synth_ec2.py exited"; }
        sleep 0.1
    done
    die "synth_ec2.py did not start within 120 s"
}
synth_stats() { curl -sf "http://127.0.0.1:$SYNTH_PORT/_synth/stats"; }

# CPU seconds so far: "SYNTH PG INFRASQL". PostgreSQL: the postmaster with
# its reaped backends, plus every live child; infrasql: its own threads only
# (PostgreSQL is not its child, but be exact either way).
cpu3() {
    local pm files=()
    pm=$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null || true)
    files=("/proc/$SYNTH_PID/stat" "/proc/$SERVER_PID/stat")
    if [[ -n "$pm" ]]; then
        files+=("/proc/$pm/stat")
        while read -r p; do files+=("/proc/$p/stat"); done < <(pgrep -P "$pm" || true)
    fi
    awk -v hz="$CLK_TCK" -v pm="/proc/$pm/stat" -v s="/proc/$SYNTH_PID/stat" -v i="/proc/$SERVER_PID/stat" '
        FNR == 1 {
            f = FILENAME; sub(/^.*\) /, "");
            t = $12 + $13; if (f == pm) t += $14 + $15;
            if (f == s) a += t; else if (f == i) c += t; else b += t
        }
        END { printf "%.2f %.2f %.2f\n", a / hz, b / hz, c / hz }' "${files[@]}" 2>/dev/null ||
        true # a backend that exited since pgrep: awk says so, and sums the rest
}
# Differences of two cpu3 lines: "SYNTH PG INFRASQL"
cpu_diff() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); printf "%.2f %.2f %.2f\n", y[1] - x[1], y[2] - x[2], y[3] - x[3] }'; }

rows_now() {
    isql -A -t -q -c "SELECT (SELECT count(*) FROM aws.vpc) + (SELECT count(*) FROM aws.subnet)
        + (SELECT count(*) FROM aws.security_group) + (SELECT count(*) FROM aws.security_group_rule)
        + (SELECT count(*) FROM aws.instance)"
}
per_table() {
    isql -A -t -q -F= -c "SELECT 'vpc', count(*) FROM aws.vpc UNION ALL SELECT 'subnet', count(*) FROM aws.subnet
        UNION ALL SELECT 'security_group', count(*) FROM aws.security_group
        UNION ALL SELECT 'security_group_rule', count(*) FROM aws.security_group_rule
        UNION ALL SELECT 'instance', count(*) FROM aws.instance
        UNION ALL SELECT 'instance_security_group', count(*) FROM aws.instance_security_group" | tr '\n' ' '
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# perf_on LABEL / perf_off: a call graph of infrasql during one sync.
PERF_PID=""
perf_on() {
    [[ "${PERF:-0}" == 1 ]] || return 0
    perf record ${PERF_CALLGRAPH:--g} -F 499 -p "$SERVER_PID" -o "$LOG_DIR/$1.perf.data" >"$LOG_DIR/perf-$1.log" 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    sleep 1
}
perf_off() {
    [[ -n "$PERF_PID" ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    stop_pid "$PERF_PID" 30
    PERF_PID=""
}

start_synth
EXPECTED=$((SYNTH_VPCS * 100))
say "== sync_100k: $EXPECTED resources (5 EC2 types, 1 region) from bench/synth_ec2.py"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: $(basename "$ROOT") binary built $BIN_ID; $SYNC_NOTE; --sync-tables $TABLES"
say "endpoint: $(tail -1 "$LOG_DIR/synth.log")"
say "load average before: $(load_avg)"

# shellcheck disable=SC2086 # SERVE_ARGS: extra words for `infrasql serve`
start_infrasql synth "http://127.0.0.1:$SYNTH_PORT" --sync-tables "$TABLES" --sync-regions us-east-1 ${SERVE_ARGS:-}
say "infrasql up: RSS $(mib "$(proc_kb "$SERVER_PID" VmRSS)") MiB"

# ------------------------------------------------------------------ import
perf_on import
c0=$(cpu3)
t0=$(now)
rounds=0
while :; do
    sync_once >/dev/null
    rounds=$((rounds + 1))
    have=$(rows_now)
    [[ "$have" -lt "$EXPECTED" && "$rounds" -lt 5 ]] || break
done
t1=$(now)
c1=$(cpu3)
perf_off
IMPORT_S=$(elapsed "$t0" "$t1")
read -r IS IP II <<<"$(cpu_diff "$c0" "$c1")"
IMPORT_HWM=$(proc_kb "$SERVER_PID" VmHWM)
say "import: ${IMPORT_S}s in $rounds round(s); rows $have of $EXPECTED ($(per_table))"
say "        CPU: infrasql ${II}s, PostgreSQL ${IP}s, endpoint ${IS}s; infrasql peak RSS $(mib "$IMPORT_HWM") MiB"
status_table >"$LOG_DIR/sync_status-import.log"
[[ "$have" -eq "$EXPECTED" ]] || die "only $have of $EXPECTED resources are rows after $rounds rounds (see $LOG_DIR)"

# ------------------------------------------------------------------ steady
: >"$WORK/steady"
for ((k = 1; k <= STEADY; k++)); do
    [[ $k -ne 2 ]] || perf_on steady
    c0=$(cpu3)
    s=$(sync_once)
    c1=$(cpu3)
    [[ $k -ne 2 ]] || perf_off
    read -r SS SP SI <<<"$(cpu_diff "$c0" "$c1")"
    echo "$s $SI $SP" >>"$WORK/steady"
    say "steady round $k: ${s}s; CPU infrasql ${SI}s, PostgreSQL ${SP}s, endpoint ${SS}s; drift rows $(drift_count)"
done
status_table >"$LOG_DIR/sync_status-steady.log"
grep -E 'infrasql::engine::sync.*(listed in|read )' "$LOG_DIR/server-synth.stderr.log" |
    sed -E 's/\x1b\[[0-9;]*m//g; s/^.*infrasql::engine::sync[^:]*: //' >"$LOG_DIR/phases.log" || true
STEADY_MED=$(cut -d' ' -f1 "$WORK/steady" | stats | sed -E 's/.*median=([0-9.]+).*/\1/')
STEADY_I=$(cut -d' ' -f2 "$WORK/steady" | stats | sed -E 's/.*median=([0-9.]+).*/\1/')
STEADY_P=$(cut -d' ' -f3 "$WORK/steady" | stats | sed -E 's/.*median=([0-9.]+).*/\1/')
HWM=$(proc_kb "$SERVER_PID" VmHWM)
RSS=$(proc_kb "$SERVER_PID" VmRSS)
DBSIZE=$(isql -A -t -q -c "SELECT pg_size_pretty(pg_database_size('infrasql'))")
CALLS=$(synth_stats)
say "endpoint requests: $CALLS"
say "database size: $DBSIZE; infrasql RSS now $(mib "$RSS") MiB, peak (VmHWM) $(mib "$HWM") MiB"

CORES=$(nproc)
say ""
say "RESULT: $EXPECTED resources, $CORES cores: import ${IMPORT_S}s ($(awk -v n="$EXPECTED" -v s="$IMPORT_S" -v c="$CORES" 'BEGIN { printf "%.0f resources/s, %.0f per core-second", n / s, n / s / c }')),"
say "        steady round median ${STEADY_MED}s ($(awk -v n="$EXPECTED" -v s="$STEADY_MED" -v c="$CORES" 'BEGIN { printf "%.0f resources/s, %.0f per core-second", n / s, n / s / c }')),"
say "        CPU per steady round: infrasql ${STEADY_I}s, PostgreSQL ${STEADY_P}s; infrasql peak RSS $(mib "$HWM") MiB; database $DBSIZE"
# On a shared machine wall time includes others' work; CPU time does not.
say "        per CPU-second spent (infrasql + PostgreSQL): import $(awk -v n="$EXPECTED" -v a="$II" -v b="$IP" 'BEGIN { printf "%.0f", n / (a + b) }'), steady $(awk -v n="$EXPECTED" -v a="$STEADY_I" -v b="$STEADY_P" 'BEGIN { printf "%.0f", n / (a + b) }') resources"
say "        yardstick: CloudQuery's published 566,000 resources in 114 s at 1.97 GB RSS = 4,965 resources/s;"
say "        import rate / CloudQuery's rate = $(awk -v n="$EXPECTED" -v s="$IMPORT_S" 'BEGIN { printf "%.2f", (n / s) / (566000 / 114) }') (wall clock; per core see bench/README.md);"
say "        RSS per 1,000 resources: infrasql $(awk -v k="$HWM" -v n="$EXPECTED" 'BEGIN { printf "%.2f", k / 1024 / n * 1000 }') MiB, CloudQuery $(awk 'BEGIN { printf "%.2f", 1.97 * 1024 / 566 }') MiB"
say "        targets (2 cores): import <= 30 s, steady <= 10 s, RSS <= 250 MB"
stop_infrasql
say "load average after: $(load_avg)"
say "logs: $LOG_DIR"
