# Shared helpers for bench/apply_vs_terraform.sh and bench/plan_latency.sh.
# Sourced, not run. Expects ROOT, LOG_DIR and SELF (script name) to be set.
# Every process started here is recorded and stopped by its own pid in
# bench_cleanup (trap it on EXIT); nothing is killed by name.

BIN=${BIN:-$ROOT/target/release/infrasql}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1

die() { printf '%s: %s\n' "$SELF" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$SELF" "$*" >&2; }

now() { printf '%s\n' "$EPOCHREALTIME"; }          # seconds.microseconds
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# median and p95 of numbers on stdin, one per line
stats() {
    sort -g | awk '{ v[NR] = $1; s += $1 } END {
        if (NR == 0) { print "n=0"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
        i95 = int(0.95 * NR + 0.999999); if (i95 < 1) i95 = 1; if (i95 > NR) i95 = NR;
        printf "n=%d median=%.3f p95=%.3f min=%.3f max=%.3f mean=%.3f\n", NR, m, v[i95], v[1], v[NR], s / NR }'
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# CPU seconds (user+system, including reaped children) used so far by the pids given
CLK_TCK=$(getconf CLK_TCK)
cpu_secs() {
    local p t=0 v
    for p in "$@"; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f\n", t / hz }'
}

# ------------------------------------------------------------------ build
# The comparisons with terraform need these; sets TF_PLUGIN_DIR (terraform
# init runs offline, from a local plugin directory).
need_terraform_tools() {
    local c d
    for c in terraform psql python3 moto_server curl; do
        command -v "$c" >/dev/null || die "$c not found"
    done
    python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 not importable (it comes with moto)"
    if [[ -z "${TF_PLUGIN_DIR:-}" ]]; then
        for d in /opt/tf-plugins /usr/share/terraform/plugins "$HOME/.terraform.d/plugins" \
            "$HOME/.local/share/terraform/plugins"; do
            if [[ -d "$d/registry.terraform.io/hashicorp/aws" ]]; then TF_PLUGIN_DIR=$d; break; fi
        done
    fi
    [[ -n "${TF_PLUGIN_DIR:-}" ]] || die "no local plugin dir with registry.terraform.io/hashicorp/aws; set TF_PLUGIN_DIR"
}

bench_build() {
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        note "building release binary (log: $LOG_DIR/build.log; waits if another cargo holds the lock) ..."
        if ! (cd "$ROOT" && cargo build --release -p infrasql) >"$LOG_DIR/build.log" 2>&1; then
            tail -30 "$LOG_DIR/build.log" >&2
            die "cargo build failed; see $LOG_DIR/build.log"
        fi
    fi
    [[ -x "$BIN" ]] || die "$BIN not found (build it, or unset SKIP_BUILD)"
}

# Copy the binary into the scratch dir ($WORK must exist), so that a build
# finishing elsewhere during the run cannot swap it between measurements.
# Also decide the sync-loop flags: the benchmarks measure the commit path
# alone, so the background sync loop is turned off when the binary has one
# (SYNC_INTERVAL=N to keep it running every N seconds instead).
SERVE_EXTRA=()
SYNC_NOTE="binary has no sync loop"
snapshot_bin() {
    # A hard link when it can (no copy of a 150 MB debug binary on a full
    # disk); a rebuild writes a new file, so the link keeps this one.
    ln -f "$BIN" "$WORK/infrasql" 2>/dev/null || cp "$BIN" "$WORK/infrasql"
    BIN_ID="$(stat -c '%y' "$BIN" | cut -d. -f1), $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- src providers schema 2>/dev/null || echo ' + uncommitted changes')"
    BIN=$WORK/infrasql
    if "$BIN" serve --help 2>/dev/null | grep -q -- '--sync-interval'; then
        SERVE_EXTRA+=(--sync-interval "${SYNC_INTERVAL:-0}")
        SYNC_NOTE="sync loop: --sync-interval ${SYNC_INTERVAL:-0}"
    fi
}

# ------------------------------------------------------------------ processes
PIDS=()      # everything we started, stopped in reverse order
WORK=""

stop_pid() { # PID [grace-seconds]
    local pid=$1 grace=${2:-45} i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            note "pid $pid did not stop within ${grace}s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

bench_cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "${KEEP:-0}" == 1 ]]; then note "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}

# ------------------------------------------------------------------ moto
MOTO_PORT="" MOTO_PID=""
start_moto() {
    MOTO_PORT=$(free_port)
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG_DIR/moto.log" 2>&1 &
    MOTO_PID=$!
    PIDS+=("$MOTO_PID")
    local i
    for ((i = 0; i < 300; i++)); do
        if curl -sf -o /dev/null -X POST "http://127.0.0.1:$MOTO_PORT/moto-api/reset"; then
            warm_moto
            return 0
        fi
        kill -0 "$MOTO_PID" 2>/dev/null || { cat "$LOG_DIR/moto.log" >&2; die "moto_server exited"; }
        sleep 0.1
    done
    die "moto_server did not answer within 30 s"
}
# moto builds its EC2 backend (and the region's default VPC) lazily on the
# first EC2 request: ~3 s on the first one after start, less after a reset.
# Pay that before any timed run, so neither side is charged for it.
warm_moto() {
    curl -sf -o /dev/null -d 'Action=DescribeVpcs&Version=2016-11-15' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0' \
        "http://127.0.0.1:$MOTO_PORT/" || die "moto warm-up request failed"
}
reset_moto() {
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$MOTO_PORT/moto-api/reset" || die "moto reset failed"
    warm_moto
}

# ------------------------------------------------------------------ count proxy
PROXY_PORT="" PROXY_PID=""
start_proxy() { # LOGNAME
    local pf="$WORK/proxy.port"
    rm -f "$pf"
    python3 "$ROOT/bench/count_proxy.py" --upstream "http://127.0.0.1:$MOTO_PORT" \
        --port-file "$pf" >"$LOG_DIR/$1" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s "$pf" ]] && { PROXY_PORT=$(cat "$pf"); return 0; }
        kill -0 "$PROXY_PID" 2>/dev/null || { cat "$LOG_DIR/$1" >&2; die "count_proxy exited"; }
        sleep 0.1
    done
    die "count_proxy did not start"
}
stop_proxy() { stop_pid "$PROXY_PID" 10; PROXY_PID=""; PROXY_PORT=""; }
proxy_reset() { curl -sf -o /dev/null -X POST "http://127.0.0.1:$PROXY_PORT/__count_proxy__/reset"; }
proxy_counts() { curl -sf "http://127.0.0.1:$PROXY_PORT/__count_proxy__/counts"; }

# ------------------------------------------------------------------ infrasql
# start_infrasql NAME ENDPOINT [extra serve args...]
# Sets SERVER_PID, PG_PORT, DATA (fresh data dir $WORK/NAME), PGPASSWORD.
SERVER_PID="" PG_PORT="" DATA=""
start_infrasql() {
    local name=$1 endpoint=$2
    shift 2
    DATA=$WORK/$name
    local out="$LOG_DIR/server-$name.stdout.log" err="$LOG_DIR/server-$name.stderr.log"
    : >"$out"
    : >"$err"
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --aws-endpoint-url "$endpoint" \
        --pg-option fsync=off --shutdown-grace 5 "${SERVE_EXTRA[@]}" "$@" >"$out" 2>"$err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    PG_PORT=""
    local i line
    for ((i = 0; i < 1200; i++)); do # up to 120 s (first start runs initdb)
        if line=$(grep -m1 'listening on' "$out" 2>/dev/null); then
            PG_PORT=$(sed -E 's/.*listening on [^ ;]*:([0-9]+).*/\1/' <<<"$line")
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -30 "$err" >&2; die "infrasql exited before listening"; }
        sleep 0.1
    done
    [[ "$PG_PORT" =~ ^[0-9]+$ ]] || { tail -30 "$err" >&2; die "no 'listening on' line within 120 s"; }
    export PGPASSWORD
    PGPASSWORD=$(cat "$DATA/password")
}
stop_infrasql() {
    stop_pid "$SERVER_PID" 45
    SERVER_PID=""
    # The embedded postmaster must be gone too.
    if [[ -n "$DATA" && -f "$DATA/pgdata/postmaster.pid" ]]; then
        local pm
        pm=$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null || true)
        if [[ -n "$pm" ]] && kill -0 "$pm" 2>/dev/null; then
            note "PostgreSQL (pid $pm) still running after infrasql exited; stopping it"
            kill -INT "$pm" 2>/dev/null || true
            sleep 3
        fi
    fi
}
# psql through infrasql as the login user
isql() { psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$(id -un)" -d infrasql "$@"; }
# psql directly on the backend's Unix socket as the engine role
esql() {
    PGPASSWORD=$(cat "$DATA/engine.password") \
        psql -X -v ON_ERROR_STOP=1 -h "$DATA/pgdata" -p 5432 -U infrasql_engine -d infrasql "$@"
}
