#!/usr/bin/env bash
# pgbench through infrasql versus directly against its embedded PostgreSQL.
#
# Builds the release binary, starts `infrasql serve` on a free loopback port
# with a fresh temporary data dir, loads a pgbench database (scale $SCALE)
# through the proxy, then runs the same read-only pgbench (-S) load against
#   direct:     the backend's Unix socket (host = DATA/pgdata, port 5432)
#   proxy:      infrasql on 127.0.0.1:PORT (which forwards to that same socket)
#   direct-tcp: (DIRECT_TCP=1) the backend on 127.0.0.1:5432, to show how much
#               of the gap is TCP loopback rather than the proxy itself
#   pgbouncer:  (YARDSTICK=1, when pgbouncer is installed) PgBouncer in session
#               mode on 127.0.0.1, forwarding to that same socket: what a
#               mature C proxy gets on the same machine in the same run, so the
#               cost of any extra hop is visible apart from infrasql's own
#   forwarder:  (FLOOR=1) bench/forwarder: a proxy on the same tokio runtime
#               as infrasql's sessions that only copies bytes (no framing,
#               no classification): the floor for a tokio proxy, so the gap
#               to PgBouncer splits into the runtime's and infrasql's own
#   evloop:     (FLOOR=1) the same forwarder on a bare mio event loop, as
#               PgBouncer is built: what a proxy doing no protocol work gets
#               without tokio's scheduling, so the runtime's share is measured
# in rotating order, $ROUNDS rounds each, for the simple query protocol and
# for -M prepared (extended protocol, prepared statements). Each cell reports
# the MEDIAN tps over the rounds, with the latency of that same median run.
#
# Usage: bench/pgbench.sh           (from anywhere; rerunnable; run as root or
#                                    as an ordinary user)
# Environment:
#   DURATION=20        seconds per pgbench run (8 clients)
#   SINGLE=1           also measure -c 1 -j 1 (per-query round trip, no queueing)
#   SINGLE_DURATION=10 seconds per single-client run
#   ROUNDS=3           measured runs per (protocol, target); odd is best
#   CLIENTS=8 JOBS=2 SCALE=10
#   WARMUP=5           seconds of untimed warm-up per target first (0 = none)
#   DIRECT_TCP=1       add the direct-tcp target (needs 127.0.0.1:5432 free)
#   YARDSTICK=1        add the pgbouncer target if `pgbouncer` is found
#                      (apt-get install pgbouncer); PGBOUNCER=path to choose one
#   FLOOR=1            add the forwarder and evloop targets (built with
#                      infrasql; FORWARDER= path to choose the binary)
#   QUIET_WAIT=0       before each run, wait up to this many seconds for the
#                      machine to be idle (< 15% busy over 3 s); for shared machines
#   NOISY_PCT=10 NOISY_RETRIES=2
#                      repeat a run (up to NOISY_RETRIES times) when processes
#                      other than the benchmark's used more than NOISY_PCT% of
#                      the CPU during it
#   ROTX=1             also run a read-only transaction (BEGIN; SELECT; COMMIT)
#   ONLY=rotx          run only that workload
#   SYNC_INTERVAL=0    infrasql's --sync-interval (0: no background sync)
#   SKIP_BUILD=1       use the existing target/release/infrasql
#   KEEP=1             keep the temp data dir
#   LOG_DIR=bench/logs/pgbench   where build/server/pgbench output goes (*.log)
set -Eeuo pipefail

DURATION=${DURATION:-20}
SINGLE=${SINGLE:-1}
SINGLE_DURATION=${SINGLE_DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
WARMUP=${WARMUP:-5}
DIRECT_TCP=${DIRECT_TCP:-1}
YARDSTICK=${YARDSTICK:-1}
FLOOR=${FLOOR:-1}
ROTX=${ROTX:-1}
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; } || true)}
QUIET_WAIT=${QUIET_WAIT:-0}
NOISY_PCT=${NOISY_PCT:-10}
NOISY_RETRIES=${NOISY_RETRIES:-2}
BENCH_USER=${BENCH_USER:-bench}
# No cloud here: a background sync round would only fail for want of
# credentials, yet spend CPU (31 new engine connections at the first one)
# inside whichever run it fell in. PgBouncer has no such loop either.
SYNC_INTERVAL=${SYNC_INTERVAL:-0}
DB=infrasql

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/pgbouncer.sh"
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/pgbench}
BIN=${BIN:-$ROOT/target/release/infrasql}
FORWARDER=${FORWARDER:-$ROOT/target/release/infrasql-bench-forwarder}
PGBENCH=${PGBENCH:-pgbench}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/run-*.log
RESULTS=$LOG_DIR/results.log
: >"$RESULTS"

say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
die() { printf 'pgbench.sh: %s\n' "$*" >&2; exit 1; }

command -v "$PGBENCH" >/dev/null || die "pgbench not found (apt-get install postgresql-client)"

# ---------------------------------------------------------------- cleanup
WORK=""
SERVER_PID=""
SERVER_RC=""
BOUNCER_PID=""
FWD_PID=""
EVL_PID=""
stop_forwarder() {
    local pid
    for pid in $FWD_PID $EVL_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    FWD_PID=""
    EVL_PID=""
}
stop_bouncer() {
    [[ -n "$BOUNCER_PID" ]] || return 0
    kill -INT "$BOUNCER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$BOUNCER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BOUNCER_PID" 2>/dev/null || true
    BOUNCER_PID=""
}
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
            echo "pgbench.sh: infrasql (pid $SERVER_PID) did not stop within 45 s of SIGTERM; killing it" >&2
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
            sleep 3
        fi
    fi
}
cleanup() {
    local rc=$?
    stop_forwarder
    stop_bouncer
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

# Percentage of CPU busy over the next ${1:-1} seconds (the whole machine).
cpu_busy() {
    local a b
    read -r -a a < <(head -1 /proc/stat)
    sleep "${1:-1}"
    read -r -a b < <(head -1 /proc/stat)
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
        split(a, x, " "); split(b, y, " "); tot = 0;
        # user nice system idle iowait irq softirq steal
        for (i = 2; i <= 9; i++) tot += y[i] - x[i];
        idle = (y[5] - x[5]) + (y[6] - x[6]);
        pct = 0; if (tot > 0) pct = 100 * (tot - idle) / tot;
        printf "%.0f\n", pct }'
}

# CPU time (user+system, in clock ticks) used so far by process $1.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# (fields after "(comm) ": 12 utime, 13 stime, 14 cutime, 15 cstime)
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- build
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building release binary (log: $LOG_DIR/build.log) ..." >&2
    if ! (cd "$ROOT" && cargo build --release -p infrasql -p infrasql-bench-forwarder) >"$LOG_DIR/build.log" 2>&1; then
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

PG_OPTS=(--pg-option max_connections=200)
TARGETS=(direct proxy)
if [[ "$DIRECT_TCP" == 1 ]]; then
    if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
        echo "pgbench.sh: 127.0.0.1:5432 is in use; skipping the direct-tcp target" >&2
        DIRECT_TCP=0
    else
        # Diagnostic only: let the backend also listen on loopback TCP, with
        # an hba file of ours (infrasql's own pg_hba.conf allows only the
        # Unix socket). Later -c settings win over infrasql's fixed ones.
        cat >"$WORK/tcp_hba.conf" <<EOF
local all infrasql_engine scram-sha-256
local all all scram-sha-256
host all $BENCH_USER 127.0.0.1/32 scram-sha-256
EOF
        chmod 644 "$WORK/tcp_hba.conf"
        PG_OPTS+=(--pg-option listen_addresses=127.0.0.1 --pg-option "hba_file=$WORK/tcp_hba.conf")
        TARGETS+=(direct-tcp)
    fi
fi

# Empty the files first: the background job truncates them only once it runs,
# and a stale "listening on" line from the last run must not be read.
: >"$SERVER_OUT"
: >"$SERVER_ERR"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --user "$BENCH_USER" \
    --sync-interval "$SYNC_INTERVAL" "${PG_OPTS[@]}" >"$SERVER_OUT" 2>"$SERVER_ERR" &
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
conn_args() { # TARGET -> connection flags
    case $1 in
    direct) echo "-h $DATA/pgdata -p 5432 -U $BENCH_USER" ;;
    proxy) echo "-h 127.0.0.1 -p $PORT -U $BENCH_USER" ;;
    direct-tcp) echo "-h 127.0.0.1 -p 5432 -U $BENCH_USER" ;;
    pgbouncer) echo "-h 127.0.0.1 -p $BOUNCER_PORT -U $BENCH_USER" ;;
    forwarder) echo "-h 127.0.0.1 -p $FWD_PORT -U $BENCH_USER" ;;
    evloop) echo "-h 127.0.0.1 -p $EVL_PORT -U $BENCH_USER" ;;
    esac
}

# ---------------------------------------------------------------- yardstick
BOUNCER_PORT=""
if [[ "$YARDSTICK" == 1 && -n "$PGBOUNCER" ]]; then
    BOUNCER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_pgbouncer "$PGBOUNCER" "$WORK/pgbouncer" "$DATA/pgdata" "$BOUNCER_PORT" "$BENCH_USER" "$PGPASSWORD" \
        "$LOG_DIR/pgbouncer.stdout.log"
    TARGETS+=(pgbouncer)
    echo "pgbouncer: $("$PGBOUNCER" --version 2>&1 | head -1) on 127.0.0.1:$BOUNCER_PORT" >&2
elif [[ "$YARDSTICK" == 1 ]]; then
    echo "pgbench.sh: pgbouncer not found (apt-get install pgbouncer); no yardstick proxy in this run" >&2
fi

# ---------------------------------------------------------------- floor
FWD_PORT=""
EVL_PORT=""
# start_floor NAME [--mio]: start the forwarder; sets FLOOR_PID and FLOOR_PORT
start_floor() {
    local name=$1 out=$LOG_DIR/$1.stdout.log line i
    shift
    : >"$out"
    "$FORWARDER" "$@" 127.0.0.1:0 "$DATA/pgdata/.s.PGSQL.5432" >"$out" 2>"$LOG_DIR/$name.stderr.log" &
    FLOOR_PID=$!
    FLOOR_PORT=""
    for ((i = 0; i < 100; i++)); do
        if line=$(grep -m1 'listening on' "$out" 2>/dev/null); then
            FLOOR_PORT=${line##*:}
            break
        fi
        sleep 0.1
    done
    [[ "$FLOOR_PORT" =~ ^[0-9]+$ ]] || die "the $name floor did not start; see $LOG_DIR/$name.stderr.log"
    TARGETS+=("$name")
    echo "$name (floor): 127.0.0.1:$FLOOR_PORT" >&2
}
if [[ "$FLOOR" == 1 ]]; then
    [[ -x "$FORWARDER" ]] || die "$FORWARDER not found (cargo build --release -p infrasql-bench-forwarder, or FLOOR=0)"
    start_floor forwarder
    FWD_PID=$FLOOR_PID FWD_PORT=$FLOOR_PORT
    start_floor evloop --mio
    EVL_PID=$FLOOR_PID EVL_PORT=$FLOOR_PORT
fi

# ---------------------------------------------------------------- init
echo "pgbench -i -s $SCALE through infrasql ..." >&2
# shellcheck disable=SC2046
if ! "$PGBENCH" -i -s "$SCALE" $(conn_args proxy) "$DB" >"$LOG_DIR/init.log" 2>&1; then
    cat "$LOG_DIR/init.log" >&2
    die "pgbench -i through infrasql failed"
fi

# ---------------------------------------------------------------- runs
# Machine-wide CPU clock ticks since boot: "total busy" (busy counts steal).
machine_ticks() {
    awk '/^cpu /{ t = 0; for (i = 2; i <= 9; i++) t += $i; print t, t - $5 - $6; exit }' /proc/stat
}
# Ticks used so far by this benchmark's own processes, as three numbers: the
# proxies (infrasql, and pgbouncer when it is in the run: each is idle while
# the other is measured); the postmaster with every backend it has reaped;
# pgbench (a reaped child of this shell, $$).
our_ticks() {
    local pm pg=0 proxy
    pm=$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null || true)
    if [[ -n "$pm" ]]; then
        # Reaped backends are in the postmaster's cutime; live ones (those a
        # pooler keeps open between runs) are read one by one.
        local kids
        kids=$(pgrep -P "$pm" | sed 's#.*#/proc/&/stat#' | tr '\n' ' ')
        # shellcheck disable=SC2086
        pg=$(awk 'FNR == 1 { sub(/^.*\) /, ""); t += $12 + $13 + (FILENAME ~ /\/'"$pm"'\// ? $14 + $15 : 0) } END { print t + 0 }' \
            "/proc/$pm/stat" $kids 2>/dev/null || true) # a backend may exit meanwhile
        [[ -n "$pg" ]] || pg=0
    fi
    proxy=$(cpu_ticks "$SERVER_PID")
    [[ -z "$BOUNCER_PID" ]] || proxy=$((proxy + $(cpu_ticks "$BOUNCER_PID")))
    [[ -z "$FWD_PID" ]] || proxy=$((proxy + $(cpu_ticks "$FWD_PID")))
    [[ -z "$EVL_PID" ]] || proxy=$((proxy + $(cpu_ticks "$EVL_PID")))
    echo "$proxy $pg $(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat")"
}
# Wait (up to QUIET_WAIT s) until the machine is idle before a run.
wait_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) b
    while :; do
        b=$(cpu_busy 3)
        ((b < 15)) && return 0
        if ((SECONDS >= deadline)); then
            echo "warning: CPU still ${b}% busy after waiting ${QUIET_WAIT} s; measuring anyway" >&2
            return 0
        fi
        sleep 4
    done
}

# What each bench runs: -S (pgbench's select-only script), or for names
# starting with "rotx" a read-only transaction, BEGIN; SELECT; COMMIT, whose
# COMMIT must cost no more round trips than through PgBouncer.
workload() {
    case $1 in
    rotx*) echo "-f $WORK/rotx.sql" ;;
    *) echo "-S" ;;
    esac
}

# run_one NAME MODE TARGET CLIENTS JOBS SECONDS
#   -> appends "tps lat_ms others% cpu_proxy cpu_postgres cpu_pgbench" to
#      $WORK/NAME-TARGET (CPU in microseconds per transaction)
# "others%" is the share of the machine's CPU that processes other than this
# benchmark's (a cargo build, another benchmark, the hypervisor's steal) used
# during the run; a run above NOISY_PCT is repeated up to NOISY_RETRIES times.
run_one() {
    local name=$1 mode=$2 target=$3 c=$4 j=$5 t=$6 log out attempt
    local m0 b0 i0 p0 k0 m1 b1 i1 p1 k1 others
    log=$LOG_DIR/run-$name-$target.log
    for ((attempt = 1; ; attempt++)); do
        wait_quiet
        read -r m0 b0 < <(machine_ticks)
        read -r i0 p0 k0 < <(our_ticks)
        # shellcheck disable=SC2046
        if ! out=$("$PGBENCH" -n $(workload "$name") -M "$mode" -c "$c" -j "$j" -T "$t" $(conn_args "$target") "$DB" 2>&1); then
            printf '%s\n' "$out" >>"$log"
            printf '%s\n' "$out" >&2
            die "pgbench ($name, $target) failed; see $log"
        fi
        sleep 0.3 # let the postmaster reap the backends
        read -r m1 b1 < <(machine_ticks)
        read -r i1 p1 k1 < <(our_ticks)
        others=$(awk -v m="$((m1 - m0))" -v b="$((b1 - b0))" -v o="$((i1 - i0 + p1 - p0 + k1 - k0))" \
            'BEGIN { p = m > 0 ? 100 * (b - o) / m : 0; if (p < 0) p = 0; printf "%.0f\n", p }')
        {
            echo "=== $(date -u +%FT%TZ) $name $target attempt $attempt: pgbench $(workload "$name") -M $mode -c $c -j $j -T $t"
            echo "CPU used by other processes during the run: ${others}% of the machine"
            printf '%s\n' "$out"
        } >>"$log"
        if ((others > NOISY_PCT && attempt <= NOISY_RETRIES)); then
            echo "  $name $target: other processes used ${others}% of the CPU during the run; repeating it" >&2
            continue
        fi
        break
    done
    local tps lat failed txns cpu
    txns=$(awk -F'[:/ ]+' '/^number of transactions actually processed/{print $6; exit}' <<<"$out")
    # CPU time per transaction of infrasql (idle during direct runs), of
    # PostgreSQL (all backends) and of pgbench.
    cpu=$(awk -v i="$((i1 - i0))" -v p="$((p1 - p0))" -v k="$((k1 - k0))" -v hz="$CLK_TCK" -v n="${txns:-0}" \
        'BEGIN { f = n > 0 ? 1e6 / hz / n : 0; printf "%.1f %.1f %.1f\n", i * f, p * f, k * f }')
    echo "CPU per transaction (us): proxy postgres pgbench = $cpu" >>"$log"
    tps=$(awk '/^tps = /{print $3; exit}' <<<"$out")
    lat=$(awk '/^latency average = /{print $4; exit}' <<<"$out")
    failed=$(awk '/^number of failed transactions: /{print $5; exit}' <<<"$out")
    [[ -n "$tps" && -n "$lat" ]] || die "cannot parse pgbench output; see $log"
    [[ -z "$failed" || "$failed" == 0 ]] || echo "warning: $failed failed transactions ($name $target)" >&2
    echo "$tps $lat $others $cpu" >>"$WORK/$name-$target"
    read -r ci cp ck <<<"$cpu"
    printf '  %-11s %-10s tps %9.1f  lat %6.3f ms  cpu us/txn: proxy %5s postgres %5s pgbench %5s  others %s%%\n' \
        "$name" "$target" "$tps" "$lat" "$ci" "$cp" "$ck" "$others" >&2
}

# median_of FILE -> "tps lat cpu_proxy cpu_postgres cpu_pgbench" of the run
# with the median tps (lower middle if even)
median_of() {
    sort -g -k1,1 "$1" | awk '{l[NR]=$1" "$2" "$4" "$5" "$6} END{print l[int((NR+1)/2)]}'
}

# bench NAME MODE CLIENTS JOBS SECONDS: warm-up, then ROUNDS rounds, rotating
# the order of the targets each round so none always runs first.
bench() {
    local name=$1 mode=$2 c=$3 j=$4 t=$5 r k n=${#TARGETS[@]} target
    for target in "${TARGETS[@]}"; do rm -f "$WORK/$name-$target"; done
    echo "[$name] pgbench $(workload "$name") -M $mode -c $c -j $j -T $t, $ROUNDS rounds over: ${TARGETS[*]}" >&2
    if ((WARMUP > 0)); then
        for target in "${TARGETS[@]}"; do
            # shellcheck disable=SC2046
            "$PGBENCH" -n $(workload "$name") -M "$mode" -c "$c" -j "$j" -T "$WARMUP" $(conn_args "$target") "$DB" >/dev/null 2>&1 || true
        done
    fi
    for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            run_one "$name" "$mode" "${TARGETS[(r + k) % n]}" "$c" "$j" "$t"
        done
    done
}

# report NAME LABEL
report() {
    local name=$1 label=$2 d p tcp="" all_tcp="" bnc="" all_bnc="" bnc_pair="" fwd="" all_fwd="" evl="" all_evl=""
    d=$(median_of "$WORK/$name-direct")
    p=$(median_of "$WORK/$name-proxy")
    if [[ "$DIRECT_TCP" == 1 ]]; then
        tcp=$(median_of "$WORK/$name-direct-tcp")
        all_tcp=$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-direct-tcp")
    fi
    # Ratio within each round (adjacent runs): less sensitive to background
    # load that drifts over minutes than the ratio of the medians.
    pair_ratio_of() { # FILE_A FILE_B -> median over rounds of tps(B) / tps(A)
        paste -d' ' "$1" "$2" | awk '{ print $7 / $1 }' | sort -g | awk '{ v[NR] = $1 } END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f\n", m }'
    }
    local pair_ratio
    pair_ratio=$(pair_ratio_of "$WORK/$name-direct" "$WORK/$name-proxy")
    if [[ -f "$WORK/$name-pgbouncer" ]]; then
        bnc=$(median_of "$WORK/$name-pgbouncer")
        all_bnc=$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-pgbouncer")
        bnc_pair=$(pair_ratio_of "$WORK/$name-direct" "$WORK/$name-pgbouncer")
    fi
    if [[ -f "$WORK/$name-forwarder" ]]; then
        fwd=$(median_of "$WORK/$name-forwarder")
        all_fwd=$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-forwarder")
    fi
    if [[ -f "$WORK/$name-evloop" ]]; then
        evl=$(median_of "$WORK/$name-evloop")
        all_evl=$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-evloop")
    fi
    awk -v label="$label" -v d="$d" -v p="$p" -v tcp="$tcp" -v pair="$pair_ratio" \
        -v all_d="$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-direct")" \
        -v all_p="$(awk '{printf "%.0f/%s/%s%% ", $1, $2, $3}' "$WORK/$name-proxy")" \
        -v all_tcp="$all_tcp" -v bnc="$bnc" -v all_bnc="$all_bnc" -v bnc_pair="$bnc_pair" \
        -v fwd="$fwd" -v all_fwd="$all_fwd" -v evl="$evl" -v all_evl="$all_evl" 'BEGIN {
        split(d, a, " "); split(p, b, " ");
        printf "%s\n", label;
        printf "  direct (unix socket)  : %9.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s\n", a[1], a[2], a[4], a[5];
        printf "  through infrasql      : %9.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s, infrasql %s\n", b[1], b[2], b[4], b[5], b[3];
        printf "  ratio proxy/direct    : %9.3f   (median of per-round ratios: %s)\n", b[1] / a[1], pair;
        printf "  added latency/query   : %9.1f us (proxy - direct)\n", (b[2] - a[2]) * 1000;
        if (tcp != "") {
            split(tcp, c, " ");
            printf "  direct-tcp (diagnostic): %8.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s; proxy/direct-tcp %.3f\n", c[1], c[2], c[4], c[5], b[1] / c[1];
        }
        if (bnc != "") {
            split(bnc, e, " ");
            printf "  pgbouncer (yardstick) : %9.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s, pgbouncer %s\n", e[1], e[2], e[4], e[5], e[3];
            printf "  ratio pgbouncer/direct: %9.3f   (median of per-round ratios: %s); infrasql/pgbouncer %.3f\n", e[1] / a[1], bnc_pair, b[1] / e[1];
        }
        if (fwd != "") {
            split(fwd, f, " ");
            printf "  forwarder (tokio floor): %8.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s, forwarder %s; infrasql/forwarder %.3f", f[1], f[2], f[4], f[5], f[3], b[1] / f[1];
            if (bnc != "") printf ", forwarder/pgbouncer %.3f", f[1] / e[1];
            printf "\n";
        }
        if (evl != "") {
            split(evl, g, " ");
            printf "  evloop (mio floor)    : %9.1f tps   latency avg %7.3f ms   CPU us/txn: postgres %s, pgbench %s, evloop %s; infrasql/evloop %.3f", g[1], g[2], g[4], g[5], g[3], b[1] / g[1];
            if (bnc != "") printf ", evloop/pgbouncer %.3f", g[1] / e[1];
            printf "\n";
        }
        printf "  all runs (tps/latency ms/CPU%% used by others) direct    : %s\n", all_d;
        printf "  all runs (tps/latency ms/CPU%% used by others) proxy     : %s\n", all_p;
        if (all_tcp != "") printf "  all runs (tps/latency ms/CPU%% used by others) direct-tcp: %s\n", all_tcp;
        if (all_bnc != "") printf "  all runs (tps/latency ms/CPU%% used by others) pgbouncer : %s\n", all_bnc;
        if (all_fwd != "") printf "  all runs (tps/latency ms/CPU%% used by others) forwarder : %s\n", all_fwd;
        if (all_evl != "") printf "  all runs (tps/latency ms/CPU%% used by others) evloop    : %s\n", all_evl;
    }' | tee -a "$RESULTS"
}

printf '%s\n' '\set aid random(1, 100000 * :scale)' 'BEGIN;' \
    'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;' 'COMMIT;' >"$WORK/rotx.sql"
if [[ "${ONLY:-}" != rotx ]]; then
    bench simple simple "$CLIENTS" "$JOBS" "$DURATION"
    bench prepared prepared "$CLIENTS" "$JOBS" "$DURATION"
fi
if [[ "$SINGLE" == 1 && "${ONLY:-}" != rotx ]]; then
    bench simple-c1 simple 1 1 "$SINGLE_DURATION"
    bench prepared-c1 prepared 1 1 "$SINGLE_DURATION"
fi
if [[ "$ROTX" == 1 ]]; then
    bench rotx simple "$CLIENTS" "$JOBS" "$DURATION"
    bench rotx-prepared prepared "$CLIENTS" "$JOBS" "$DURATION"
    bench rotx-c1 simple 1 1 "$SINGLE_DURATION"
fi

# ---------------------------------------------------------------- stop
stop_forwarder
stop_bouncer
stop_server
[[ "$SERVER_RC" == 0 ]] || echo "warning: infrasql exited with status $SERVER_RC after SIGTERM" >&2

# ---------------------------------------------------------------- report
max_others=$(cat "$WORK"/*-direct* "$WORK"/*-proxy "$WORK"/*-pgbouncer "$WORK"/*-forwarder "$WORK"/*-evloop 2>/dev/null | awk 'BEGIN{m=0} $3>m{m=$3} END{print m}')
say ""
say "== pgbench through infrasql vs direct =="
say "date: $(date -u +%FT%TZ)   host: $(uname -n)   nproc: $(nproc)   cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
say "$("$PGBENCH" --version); infrasql $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/')"
say "scale $SCALE; $ROUNDS rounds, targets in rotating order; median tps shown (with the latency of that run)"
say "CPU used by other processes during the runs kept: at most ${max_others}% of the machine (per-run figures in the logs)"
say "infrasql exit status after SIGTERM: $SERVER_RC"
say ""
if [[ "${ONLY:-}" != rotx ]]; then
    report simple "pgbench -S (simple protocol) -c $CLIENTS -j $JOBS -T $DURATION"
    report prepared "pgbench -S -M prepared (extended protocol) -c $CLIENTS -j $JOBS -T $DURATION"
fi
if [[ "$SINGLE" == 1 && "${ONLY:-}" != rotx ]]; then
    report simple-c1 "pgbench -S (simple) -c 1 -j 1 -T $SINGLE_DURATION: per-query round trip"
    report prepared-c1 "pgbench -S -M prepared -c 1 -j 1 -T $SINGLE_DURATION: per-query round trip"
fi
if [[ "$ROTX" == 1 ]]; then
    report rotx "BEGIN; SELECT; COMMIT (read-only transaction, simple) -c $CLIENTS -j $JOBS -T $DURATION"
    report rotx-prepared "BEGIN; SELECT; COMMIT (read-only transaction, prepared) -c $CLIENTS -j $JOBS -T $DURATION"
    report rotx-c1 "BEGIN; SELECT; COMMIT (read-only transaction, simple) -c 1 -j 1 -T $SINGLE_DURATION"
fi
say ""
say "targets: through infrasql >= 1.0 x PgBouncer's tps; added latency at 1 client <= PgBouncer's"
say "full output: $LOG_DIR/*.log"
