#!/usr/bin/env bash
# Where a proxied query's cost goes, infrasql beside PgBouncer: the counts
# behind bench/pgbench.sh's throughput ratio, which repeat on a noisy
# machine where tps does not.
#
#   syscalls   `perf stat` of each proxy while `pgbench -S` runs through it:
#              system calls, epoll_waits and context switches per
#              transaction (CLIENTS=1 shows one wake-up per message
#              forwarded; more means the proxy is woken for nothing).
#   callgrind  infrasql under callgrind (CALLGRIND=1): user-space
#              instructions per transaction, for MODE=simple and prepared.
#              One connection's SCRAM exchange (sha2/hmac) is left out.
#   backends   (BACKENDS=1) `perf stat` of the PostgreSQL backends while
#              `pgbench -S -c BACKEND_CLIENTS` runs through each proxy:
#              how often a backend sleeps for its next query (epoll_wait),
#              is woken, moves between CPUs, and its CPU per transaction.
#
# Usage: bench/proxy_profile.sh      (as root: PgBouncer is started as postgres)
# Environment:
#   BIN=target/release/infrasql  SKIP_BUILD=1
#   CLIENTS=1 TXNS=20000         pgbench clients and transactions per client
#   MODES="simple prepared"
#   CALLGRIND=1 CG_TXNS=50000    (needs valgrind; CALLGRIND=0 skips it)
#   PGBOUNCER=path               (apt-get install pgbouncer)
#   SYSCALLS=1 (0 skips the proxies' counts)
#   BACKENDS=0 BACKEND_CLIENTS=8 BACKEND_SECS=5 BACKEND_ROUNDS=3
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=proxy_profile.sh
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/proxy_profile}
source "$ROOT/bench/bench_common.sh"
source "$ROOT/bench/pgbouncer.sh"
CLIENTS=${CLIENTS:-1}
TXNS=${TXNS:-20000}
MODES=${MODES:-simple prepared}
CALLGRIND=${CALLGRIND:-1}
CG_TXNS=${CG_TXNS:-50000}
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
mkdir -p "$LOG_DIR"

command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
[[ -x "$PGBOUNCER" ]] || die "pgbouncer not found (apt-get install pgbouncer)"
[[ $(id -u) == 0 ]] || die "run as root: PgBouncer is started as postgres, perf attaches to it"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p infrasql >"$LOG_DIR/build.log" 2>&1) ||
        die "cargo build failed; see $LOG_DIR/build.log"
fi

WORK=$(mktemp -d /tmp/infrasql-profile.XXXXXX)
chmod 755 "$WORK"
SERVER_PID="" BOUNCER_PID=""
cleanup() {
    [[ -n "$BOUNCER_PID" ]] && kill "$BOUNCER_PID" 2>/dev/null
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# infrasql with no background sync (no cloud here), on a free port; WRAP
# runs it under a tool (callgrind).
start_server() { # [wrapper...]
    : >"$WORK/out"
    "$@" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --user bench \
        --sync-interval 0 --pg-option max_connections=200 >"$WORK/out" 2>>"$LOG_DIR/server.log" &
    SERVER_PID=$!
    for ((i = 0; i < 1200; i++)); do
        grep -q 'listening on' "$WORK/out" && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "infrasql exited; see $LOG_DIR/server.log"
        sleep 0.1
    done
    PORT=$(sed -E 's/.*listening on [^ ;]*:([0-9]+).*/\1/' <"$WORK/out")
    export PGPASSWORD
    PGPASSWORD=$(cat "$WORK/data/password")
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
bench() { # PORT MODE TXNS
    local jobs=1
    ((CLIENTS > 1)) && jobs=2
    pgbench -S -M "$2" -c "$CLIENTS" -j "$jobs" -t "$3" -h 127.0.0.1 -p "$1" -U bench infrasql
}

start_server
pgbench -i -s 10 -h 127.0.0.1 -p "$PORT" -U bench infrasql >"$LOG_DIR/init.log" 2>&1 ||
    die "pgbench -i failed; see $LOG_DIR/init.log"

BPORT=$(free_port)
start_pgbouncer "$PGBOUNCER" "$WORK/pgbouncer" "$WORK/data/pgdata" "$BPORT" bench "$PGPASSWORD" "$LOG_DIR/pgbouncer.log"

echo "# $(date -u +%FT%TZ) $(git -C "$ROOT" rev-parse --short HEAD); $CLIENTS client(s) x $TXNS transactions"
if [[ "${SYSCALLS:-1}" == 1 ]]; then
    echo "# per transaction: system calls, epoll_wait, recvfrom, sendto, context switches, CPU µs"
    for mode in $MODES; do
        for target in "infrasql $PORT $SERVER_PID" "pgbouncer $BPORT $BOUNCER_PID"; do
            read -r name port pid <<<"$target"
            bench "$port" "$mode" 300 >/dev/null 2>&1 # connect and warm up first
            perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,context-switches,task-clock \
                -p "$pid" -o "$WORK/perf.csv" &
            PERF=$!
            sleep 0.5
            bench "$port" "$mode" "$TXNS" >"$WORK/pgbench.out" 2>&1
            kill -INT "$PERF"
            wait "$PERF" || true
            awk -F, -v n=$((CLIENTS * TXNS)) -v who="$name" -v mode="$mode" '
                $3 ~ /sys_enter$/ { s = $1 } $3 ~ /epoll_wait/ { e = $1 } $3 ~ /recvfrom/ { r = $1 }
                $3 ~ /sendto/ { w = $1 } $3 ~ /context-switches/ { c = $1 } $3 ~ /task-clock/ { t = $1 }
                END { printf "%-9s %-9s syscalls %5.2f  epoll_wait %4.2f  recvfrom %4.2f  sendto %4.2f  cswitch %4.2f  cpu %5.1f µs\n",
                      mode, who, s / n, e / n, r / n, w / n, c / n, t * 1000 / n }' "$WORK/perf.csv"
        done
    done
fi

# The backends serving pgbench's connections: children of the postmaster
# whose title names the bench role (the engine's are infrasql_engine's).
bench_backends() {
    local pm
    pm=$(head -1 "$WORK/data/pgdata/postmaster.pid")
    for p in $(pgrep -P "$pm"); do
        if grep -q '^postgres: bench infrasql' "/proc/$p/cmdline" 2>/dev/null; then printf '%s,' "$p"; fi
    done | sed 's/,$//'
}
if [[ "${BACKENDS:-0}" == 1 ]]; then
    BC=${BACKEND_CLIENTS:-8}
    BS=${BACKEND_SECS:-5}
    echo "# PostgreSQL's backends, $BC clients, ${BS} s under perf stat; per transaction:"
    for ((round = 1; round <= ${BACKEND_ROUNDS:-3}; round++)); do
        for mode in $MODES; do
            for target in "infrasql $PORT" "pgbouncer $BPORT"; do
                read -r name port <<<"$target"
                pgbench -n -S -M "$mode" -c "$BC" -j 2 -T $((BS + 3)) -h 127.0.0.1 -p "$port" -U bench infrasql >"$WORK/pgbench.out" 2>&1 &
                PGB=$!
                sleep 1.5 # connected and past the start
                pids=$(bench_backends)
                [[ -n "$pids" ]] || die "no bench backends found"
                perf stat -x, -e task-clock,context-switches,cpu-migrations,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom \
                    -p "$pids" -o "$WORK/perf.csv" -- sleep "$BS"
                wait "$PGB" || die "pgbench through $name failed: $(tail -3 "$WORK/pgbench.out")"
                tps=$(awk '/^tps = /{print $3; exit}' "$WORK/pgbench.out")
                # Transactions in the window: pgbench's rate over its whole run.
                awk -F, -v n="$(awk -v t="$tps" -v s="$BS" 'BEGIN { print t * s }')" -v who="$name" -v mode="$mode" -v tps="$tps" '
                    $3 == "task-clock" { t = $1 } $3 == "context-switches" { c = $1 } $3 == "cpu-migrations" { m = $1 }
                    $3 ~ /epoll_wait/ { e = $1 } $3 ~ /recvfrom/ { r = $1 }
                    END { printf "%-9s %-9s tps %7.0f  cpu %5.1f µs  epoll_wait %4.2f  recvfrom %4.2f  cswitch %4.2f  migrations %5.3f\n",
                          mode, who, tps, t * 1000 / n, e / n, r / n, c / n, m / n }' "$WORK/perf.csv"
            done
        done
    done
fi

if [[ "$CALLGRIND" == 1 ]]; then
    command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
    kill "$BOUNCER_PID"
    BOUNCER_PID=""
    stop_server
    echo "# infrasql's user-space instructions per transaction (callgrind, 1 client x $CG_TXNS)"
    for mode in $MODES; do
        rm -f "$WORK"/cg.*
        start_server valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
            --callgrind-out-file="$WORK/cg.%p"
        bench "$PORT" "$mode" 200 >/dev/null 2>&1
        callgrind_control -d "$SERVER_PID" >/dev/null # part 1: start-up and warm-up
        bench "$PORT" "$mode" "$CG_TXNS" >/dev/null 2>&1
        callgrind_control -d "$SERVER_PID" >/dev/null # part 2: the measured run
        stop_server
        # Self cost per function (lines after `calls=` are inclusive costs
        # of a call and are skipped), less the connection's SCRAM.
        awk -v n="$CG_TXNS" -v mode="$mode" '
            /^fn=/ { fn = substr($0, 4); next }
            /^calls=/ { skip = 1; next }
            /^[0-9]+ [0-9]+$/ { if (skip) { skip = 0; next } total += $2; if (fn ~ /sha2|hmac|sasl/) scram += $2; next }
            { skip = 0 }
            END { printf "%-9s infrasql  %6d instructions (%d with one SCRAM exchange)\n", mode, (total - scram) / n, total / n }' \
            "$(ls "$WORK"/cg.*.2)"
    done
fi
