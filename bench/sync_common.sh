# Shared helpers for the sync benchmarks (bench/sync_vs_terraform.sh,
# bench/sync_drift_latency.sh, bench/sync_memory.sh), on top of
# bench/bench_common.sh (sourced first). Sourced, not run.

SYNC_PY=$ROOT/bench/sync_bench.py

# sync_once [TABLE]: one synchronous full sync through infrasql; prints the
# client-side wall time in seconds; the JSON summary goes to $LOG_DIR/sync.out.
# Dies if the summary reports errors.
sync_once() {
    local arg="" t0 t1 out
    [[ -z "${1:-}" ]] || arg="'$1'"
    t0=$(now)
    out=$(isql -A -t -q -c "SELECT infra.sync($arg)" 2>&1) || { printf '%s\n' "$out" >&2; die "SELECT infra.sync() failed"; }
    t1=$(now)
    printf '%s %s\n' "$(date -u +%T)" "$out" >>"$LOG_DIR/sync.out"
    if ! grep -q '"errors": \[\]' <<<"$out"; then
        printf '%s\n' "$out" >&2
        die "infra.sync() reported errors: $out"
    fi
    elapsed "$t0" "$t1"
}

# The span of the last full round, from infra.sync_status (server side), in s.
round_span() {
    isql -A -t -q -c "SELECT round(extract(epoch FROM max(last_finished) - min(last_started))::numeric, 3)
                      FROM infra.sync_status"
}
# Sum of infra.sync_status.api_calls over all (table, region) rows.
status_calls() { isql -A -t -q -c "SELECT coalesce(sum(api_calls), 0) FROM infra.sync_status"; }
# Sum of resources_seen over all (table, region) rows.
status_seen() { isql -A -t -q -c "SELECT coalesce(sum(resources_seen), 0) FROM infra.sync_status"; }
# infra.sync_status as a table, for the logs.
status_table() {
    isql -c "SELECT table_name, duration_ms, resources_seen, api_calls, last_error
             FROM infra.sync_status ORDER BY table_name"
}
drift_count() { isql -A -t -q -c "SELECT count(*) FROM infra.drift"; }

# kB of a /proc/PID/status field (VmRSS, VmHWM)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Pss (kB) of a process, from smaps_rollup (shared pages divided among sharers)
pss_kb() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# The embedded PostgreSQL: postmaster (from postmaster.pid) and its children.
pg_pids() {
    local pm
    pm=$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null) || return 0
    [[ -n "$pm" ]] || return 0
    echo "$pm"
    ps -o pid= --ppid "$pm" | tr -d ' '
}

# mem_report LABEL: one line with infrasql's RSS (now and peak) and the
# embedded PostgreSQL's processes (count, summed RSS, summed PSS).
mem_report() {
    local label=$1 rss hwm n=0 prss=0 ppss=0 p
    rss=$(proc_kb "$SERVER_PID" VmRSS)
    hwm=$(proc_kb "$SERVER_PID" VmHWM)
    for p in $(pg_pids); do
        n=$((n + 1))
        prss=$((prss + $(proc_kb "$p" VmRSS)))
        ppss=$((ppss + $(pss_kb "$p")))
    done
    MEM_RSS=$rss MEM_HWM=$hwm MEM_PG_RSS=$prss MEM_PG_PSS=$ppss
    awk -v l="$label" -v r="$rss" -v h="$hwm" -v n="$n" -v pr="$prss" -v pp="$ppss" 'BEGIN {
        printf "%-34s infrasql RSS %7.1f MiB (peak %7.1f MiB) | PostgreSQL %d processes: RSS sum %7.1f MiB, PSS sum %7.1f MiB\n",
            l, r / 1024, h / 1024, n, pr / 1024, pp / 1024 }'
}

# Background sampler (every 0.2 s) of the same figures, for peaks during a
# sync: mem_sampler_start; ...; mem_sampler_stop -> PEAK_PG_RSS, PEAK_PG_PSS,
# PEAK_RSS (kB) and a printed line.
mem_raw() {
    local n=0 prss=0 ppss=0 p
    for p in $(pg_pids); do
        n=$((n + 1))
        prss=$((prss + $(proc_kb "$p" VmRSS)))
        ppss=$((ppss + $(pss_kb "$p")))
    done
    echo "$(proc_kb "$SERVER_PID" VmRSS) $n $prss $ppss"
}
SAMPLER_PID=""
mem_sampler_start() {
    (while :; do mem_raw; sleep 0.2; done) >"$WORK/mem.samples" 2>/dev/null &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
}
mem_sampler_stop() { # LABEL
    stop_pid "$SAMPLER_PID" 5
    SAMPLER_PID=""
    read -r PEAK_RSS PEAK_PG_N PEAK_PG_RSS PEAK_PG_PSS < <(awk '
        { if ($1 > a) a = $1; if ($2 > n) n = $2; if ($3 > b) b = $3; if ($4 > c) c = $4 }
        END { print a + 0, n + 0, b + 0, c + 0 }' "$WORK/mem.samples")
    awk -v l="$1" -v r="$PEAK_RSS" -v n="$PEAK_PG_N" -v pr="$PEAK_PG_RSS" -v pp="$PEAK_PG_PSS" -v s="$(wc -l <"$WORK/mem.samples")" 'BEGIN {
        printf "%-34s infrasql RSS max %7.1f MiB | PostgreSQL max %d processes, RSS sum max %7.1f MiB, PSS sum max %7.1f MiB (%d samples, 0.2 s apart)\n",
            l, r / 1024, n, pr / 1024, pp / 1024, s }'
}

# CPU seconds used so far by moto, by the embedded PostgreSQL (postmaster,
# reaped backends, live children) and by infrasql: "MOTO PG INFRASQL".
# Differences around a sync show whose work a sync's wall time is.
cpu_split() {
    awk -v hz="$(getconf CLK_TCK)" -v pm="$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null)" '
        FNR == 1 {
            f = FILENAME; sub(/^.*\) /, "");
            t = $12 + $13;
            if (f == "/proc/" pm "/stat") t += $14 + $15;
            who[f] = t
        }
        END {
            for (f in who) {
                if (f == "/proc/'"$MOTO_PID"'/stat") m += who[f];
                else if (f == "/proc/'"$SERVER_PID"'/stat") i += who[f];
                else p += who[f];
            }
            printf "%.2f %.2f %.2f\n", m / hz, p / hz, i / hz
        }' "/proc/$MOTO_PID/stat" "/proc/$SERVER_PID/stat" \
        $(pm=$(head -1 "$DATA/pgdata/postmaster.pid" 2>/dev/null) && [[ -n "$pm" ]] &&
            { echo "/proc/$pm/stat"; pgrep -P "$pm" | sed 's#.*#/proc/&/stat#'; }) 2>/dev/null || true
}
