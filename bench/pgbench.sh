#!/usr/bin/env bash
# pgbench through infrasql versus directly against its embedded PostgreSQL.
#
# Builds the release binary, starts `infrasql serve` on a free loopback port
# with a fresh temporary data dir, loads a pgbench database (scale $SCALE)
# through the proxy, then runs the same read-only pgbench (-S) load against
#   direct: the backend's Unix socket (host = DATA/pgdata, port 5432)
#   proxy:  infrasql on 127.0.0.1:PORT (which forwards to that same socket)
# alternating direct/proxy, $ROUNDS rounds each, for the simple query protocol
# and for -M prepared (extended protocol, prepared statements). The figure
# reported for each cell is the MEDIAN tps over the rounds and the latency of
# that same median run (see bench/README.md for why).
#
# Usage: bench/pgbench.sh           (from anywhere; rerunnable)
# Environment:
#   DURATION=20     seconds per pgbench run
#   ROUNDS=3        measured runs per (protocol, target); odd is best
#   CLIENTS=8 JOBS=2 SCALE=10
#   WARMUP=5        seconds of untimed warm-up per target before measuring (0 = none)
#   SINGLE=1        also measure -c 1 -j 1 (pure per-query round-trip latency)
#   SKIP_BUILD=1    use the existing target/release/infrasql
#   KEEP=1          keep the temp data dir
#   LOG_DIR=bench/logs   where build/server/pgbench output goes (*.log)
set -Eeuo pipefail

DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
WARMUP=${WARMUP:-5}
SINGLE=${SINGLE:-1}
BENCH_USER=${BENCH_USER:-bench}
DB=infrasql

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs}
BIN=$ROOT/target/release/infrasql
PGBENCH=${PGBENCH:-pgbench}
mkdir -p "$LOG_DIR"
RESULTS=$LOG_DIR/results.log
: >"$RESULTS"

say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
die() { printf 'pgbench.sh: %s\n' "$*" >&2; exit 1; }

command -v "$PGBENCH" >/dev/null || die "pgbench not found (apt-get install postgresql-client)"

# ---------------------------------------------------------------- cleanup
WORK=""
SERVER_PID=""
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 450; i++)); do # 45 s: 30 s shutdown grace + margin
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "pgbench.sh: infrasql (pid $SERVER_PID) did not stop after SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    local rc=0
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    SERVER_RC=$rc
    SERVER_PID=""
    # The embedded postmaster must be gone too.
    if [[ -n "$WORK" && -f "$WORK/data/pgdata/postmaster.pid" ]]; then
        local pm
        pm=$(head -1 "$WORK/data/pgdata/postmaster.pid" 2>/dev/null || true)
        if [[ -n "$pm" ]] && kill -0 "$pm" 2>/dev/null; then
            echo "pgbench.sh: PostgreSQL (pid $pm) still running after infrasql exited; stopping it" >&2
            kill -INT "$pm" 2>/dev/null || true
            sleep 2
        fi
    fi
}
cleanup() {
    local rc=$?
    stop_server
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "${KEEP:-0}" == 1 ]]; then
            echo "pgbench.sh: kept $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building release binary (log: $LOG_DIR/build.log) ..." >&2
    if ! (cd "$ROOT" && cargo build --release -p infrasql) >"$LOG_DIR/build.log" 2>&1; then
        tail -30 "$LOG_DIR/build.log" >&2
        die "cargo build failed; see $LOG_DIR/build.log"
    fi
fi
[[ -x "$BIN" ]] || die "$BIN not found"

# ---------------------------------------------------------------- server
WORK=$(mktemp -d /tmp/infrasql-bench.XXXXXX)
# As root the cluster runs as `postgres`, which must be able to traverse here.
chmod 755 "$WORK"
DATA=$WORK/data
SERVER_OUT=$LOG_DIR/server.stdout.log
SERVER_ERR=$LOG_DIR/server.stderr.log

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --user "$BENCH_USER" \
    --pg-option max_connections=200 >"$SERVER_OUT" 2>"$SERVER_ERR" &
SERVER_PID=$!

PORT=""
for ((i = 0; i < 1200; i++)); do # up to 120 s (first start runs initdb)
    if line=$(grep -m1 'listening on' "$SERVER_OUT" 2>/dev/null); then
        PORT=$(sed -E 's/.*listening on [^ ;]*:([0-9]+).*/\1/' <<<"$line")
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$SERVER_ERR" >&2
        die "infrasql exited before listening"
    fi
    sleep 0.1
done
[[ "$PORT" =~ ^[0-9]+$ ]] || { cat "$SERVER_ERR" >&2; die "no 'listening on' line within 120 s"; }
echo "server: $(cat "$SERVER_OUT")" >&2

export PGPASSWORD
PGPASSWORD=$(cat "$DATA/password")
PROXY=(-h 127.0.0.1 -p "$PORT" -U "$BENCH_USER")
DIRECT=(-h "$DATA/pgdata" -p 5432 -U "$BENCH_USER")

# ---------------------------------------------------------------- init
echo "pgbench -i -s $SCALE through infrasql ..." >&2
if ! "$PGBENCH" -i -s "$SCALE" "${PROXY[@]}" "$DB" >"$LOG_DIR/init.log" 2>&1; then
    cat "$LOG_DIR/init.log" >&2
    die "pgbench -i through infrasql failed"
fi

# ---------------------------------------------------------------- runs
# run_one NAME MODE TARGET CLIENTS JOBS SECONDS -> appends "tps lat_ms" to $WORK/NAME
run_one() {
    local name=$1 mode=$2 target=$3 c=$4 j=$5 t=$6 log
    local -a conn
    if [[ $target == direct ]]; then conn=("${DIRECT[@]}"); else conn=("${PROXY[@]}"); fi
    log=$LOG_DIR/run-$name-$target.log
    {
        echo "=== $(date -u +%FT%TZ) $name $target: pgbench -S -M $mode -c $c -j $j -T $t"
    } >>"$log"
    local out
    if ! out=$("$PGBENCH" -n -S -M "$mode" -c "$c" -j "$j" -T "$t" "${conn[@]}" "$DB" 2>&1); then
        printf '%s\n' "$out" >>"$log"
        printf '%s\n' "$out" >&2
        die "pgbench ($name, $target) failed; see $log"
    fi
    printf '%s\n' "$out" >>"$log"
    local tps lat failed
    tps=$(awk '/^tps = /{print $3; exit}' <<<"$out")
    lat=$(awk '/^latency average = /{print $4; exit}' <<<"$out")
    failed=$(awk '/^number of failed transactions: /{print $5; exit}' <<<"$out")
    [[ -n "$tps" && -n "$lat" ]] || die "cannot parse pgbench output; see $log"
    [[ -z "$failed" || "$failed" == 0 ]] || echo "warning: $failed failed transactions ($name $target)" >&2
    echo "$tps $lat" >>"$WORK/$name-$target"
    printf '  %-9s %-6s tps %10.1f  latency %7.3f ms\n' "$name" "$target" "$tps" "$lat" >&2
}

# median_of FILE -> "tps lat" of the run with the median tps (lower middle if even)
median_of() {
    sort -g -k1,1 "$1" | awk '{l[NR]=$0} END{print l[int((NR+1)/2)]}'
}

# bench NAME MODE CLIENTS JOBS: warm-up, then ROUNDS alternating rounds
bench() {
    local name=$1 mode=$2 c=$3 j=$4 r
    rm -f "$WORK/$name-direct" "$WORK/$name-proxy"
    echo "[$name] pgbench -S -M $mode -c $c -j $j -T $DURATION, $ROUNDS rounds" >&2
    if ((WARMUP > 0)); then
        "$PGBENCH" -n -S -M "$mode" -c "$c" -j "$j" -T "$WARMUP" "${DIRECT[@]}" "$DB" >/dev/null 2>&1 || true
        "$PGBENCH" -n -S -M "$mode" -c "$c" -j "$j" -T "$WARMUP" "${PROXY[@]}" "$DB" >/dev/null 2>&1 || true
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        # ABAB..., then BABA... so neither side always runs first.
        if ((r % 2)); then
            run_one "$name" "$mode" direct "$c" "$j" "$DURATION"
            run_one "$name" "$mode" proxy "$c" "$j" "$DURATION"
        else
            run_one "$name" "$mode" proxy "$c" "$j" "$DURATION"
            run_one "$name" "$mode" direct "$c" "$j" "$DURATION"
        fi
    done
}

# report NAME LABEL
report() {
    local name=$1 label=$2 d p
    d=$(median_of "$WORK/$name-direct")
    p=$(median_of "$WORK/$name-proxy")
    awk -v label="$label" -v d="$d" -v p="$p" \
        -v all_d="$(tr '\n' ' ' <"$WORK/$name-direct")" \
        -v all_p="$(tr '\n' ' ' <"$WORK/$name-proxy")" 'BEGIN {
        split(d, a, " "); split(p, b, " ");
        printf "%s\n", label;
        printf "  direct (unix socket): %10.1f tps   latency avg %7.3f ms\n", a[1], a[2];
        printf "  through infrasql    : %10.1f tps   latency avg %7.3f ms\n", b[1], b[2];
        printf "  ratio proxy/direct  : %10.3f\n", b[1] / a[1];
        printf "  added latency/query : %10.1f us\n", (b[2] - a[2]) * 1000;
        printf "  all runs (tps lat_ms) direct: %s\n", all_d;
        printf "  all runs (tps lat_ms) proxy : %s\n", all_p;
    }' | tee -a "$RESULTS"
}

bench simple simple "$CLIENTS" "$JOBS"
bench prepared prepared "$CLIENTS" "$JOBS"
if [[ "$SINGLE" == 1 ]]; then
    bench simple-c1 simple 1 1
    bench prepared-c1 prepared 1 1
fi

# ---------------------------------------------------------------- stop
stop_server
[[ "${SERVER_RC:-1}" == 0 ]] || echo "warning: infrasql exited with status $SERVER_RC after SIGTERM" >&2

# ---------------------------------------------------------------- report
say ""
say "== pgbench through infrasql vs direct =="
say "date: $(date -u +%FT%TZ)   host: $(uname -n)   nproc: $(nproc)   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
say "pgbench: $("$PGBENCH" --version)   infrasql: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (+uncommitted src changes)')"
say "scale $SCALE, $DURATION s per run, $ROUNDS rounds alternating direct/proxy; median tps shown (latency of that same run)"
say "infrasql server exit status after SIGTERM: ${SERVER_RC:-?}"
say ""
report simple "-S, simple protocol, -c $CLIENTS -j $JOBS"
report prepared "-S -M prepared (extended protocol), -c $CLIENTS -j $JOBS"
if [[ "$SINGLE" == 1 ]]; then
    report simple-c1 "-S, simple protocol, -c 1 -j 1 (per-query round trip, no queueing)"
    report prepared-c1 "-S -M prepared, -c 1 -j 1 (per-query round trip, no queueing)"
fi
say ""
say "target: through infrasql >= 0.85 x direct tps"
say "full output: $LOG_DIR/*.log"
