#!/usr/bin/env bash
# The adaptive AWS concurrency limiter (issue 15) against fixed limits, on
# one moto server in one run:
#   apply  1 VPC + $SG_COUNT security groups in one COMMIT (the infrasql half
#          of bench/apply_vs_terraform.sh: fresh server, moto reset, psql
#          timed from start to exit)
#   sync   a full sync (the import: fresh server, `SELECT infra.sync()`
#          timed by the client) of an inventory made once with direct EC2
#          calls: $SYNC_VPCS VPCs and $SYNC_SGS security groups (each with
#          its default egress rule)
# at each setting of $SETTINGS: `default` (no flag: adaptive under the
# default ceiling) and fixedN (`--aws-limiter fixed --aws-concurrency N`).
# $ROUNDS rounds, settings alternating within a round in an order that
# rotates from round to round (the sync after one untimed warm-up); the
# figure is the median. Printed per workload: setting -> wall time, ratio to the best
# fixed setting, ratio to fixed 1; the targets: default <= 1.15x the best
# fixed setting, and never slower than fixed 1. Then, for the default's
# first round of each workload, the limit over time per (service, region),
# from the limiter's debug lines (target infrasql::aws::limiter, enabled on
# its own through INFRASQL_LOG).
#
# Usage: bench/limiter.sh   (rerunnable; from anywhere; ~5 minutes)
#        BIN=target/debug/infrasql SKIP_BUILD=1 bench/limiter.sh  (no release build)
# Environment:
#   SG_COUNT=200  SYNC_VPCS=20  SYNC_SGS=1000  ROUNDS=3
#   WORKLOADS="apply sync"   (one of them alone: more rounds in the same time)
#   SETTINGS="default fixed1 fixed2 fixed4 fixed8 fixed16"
#   SKIP_BUILD=1  KEEP=1  LOG_DIR=bench/logs/limiter
set -Eeuo pipefail

SELF=limiter.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/limiter}
SG_COUNT=${SG_COUNT:-200}
SYNC_VPCS=${SYNC_VPCS:-20}
SYNC_SGS=${SYNC_SGS:-1000}
ROUNDS=${ROUNDS:-3}
SETTINGS=${SETTINGS:-default fixed1 fixed2 fixed4 fixed8 fixed16}
WORKLOADS=${WORKLOADS:-apply sync}
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
[[ " $SETTINGS " == *" fixed1 "* ]] || die "SETTINGS must include fixed1 (the yardstick)"

bench_build
WORK=$(mktemp -d /tmp/infrasql-limiter.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
PROFILE=$(basename "$(dirname "$BIN")")
SYNC_INTERVAL=0 snapshot_bin
start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"
# The limiter's changes at debug level, everything else as usual.
export INFRASQL_LOG="info,infrasql::aws::limiter=debug"

# The serve flags of a setting.
flags() {
    case $1 in
    default) ;;
    fixed*) echo "--aws-limiter fixed --aws-concurrency ${1#fixed}" ;;
    *) die "unknown setting $1" ;;
    esac
}

cat >"$WORK/create.sql" <<EOF
BEGIN;
INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('bench', '10.0.0.0/16', '{"bench": "limiter"}');
INSERT INTO aws.security_group (group_name, description, vpc_id, tags)
  SELECT 'bench-' || g, 'bench', vpc_id, '{"bench": "limiter"}'
  FROM aws.vpc, generate_series(1, $SG_COUNT) g WHERE name = 'bench';
COMMIT;
EOF

# run WORKLOAD SETTING ROUND -> sets SECS (wall); the server's log
# stays in $LOG_DIR/server-WORKLOAD-SETTING-rROUND.stderr.log
run() {
    local workload=$1 setting=$2 round=$3 t0 t1 rc=0
    # shellcheck disable=SC2046
    start_infrasql "$workload-$setting-r$round" "$MOTO_EP" $(flags "$setting")
    local m0
    m0=$(cpu_secs "$MOTO_PID")
    case $workload in
    apply)
        t0=$(now)
        isql -f "$WORK/create.sql" >"$LOG_DIR/$workload-$setting-r$round.psql.log" 2>&1 || rc=$?
        t1=$(now)
        ;;
    sync)
        t0=$(now)
        sync_once >/dev/null || rc=$?
        t1=$(now)
        ;;
    esac
    MOTO_CPU=$(elapsed "$m0" "$(cpu_secs "$MOTO_PID")")
    printf '%s %s r%s moto CPU %ss\n' "$workload" "$setting" "$round" "$MOTO_CPU" >>"$LOG_DIR/cpu.log"
    stop_infrasql
    ((rc == 0)) || die "$workload at $setting failed; see $LOG_DIR/server-$workload-$setting-r$round.stderr.log"
    SECS=$(elapsed "$t0" "$t1")
}

# The limit over time in one server log: one row per change, time from the
# first change, the limit of every (service, region) after it.
limit_table() { # LOGFILE
    python3 - "$1" <<'PY'
import re, sys, datetime
ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
rows, t0, cur = [], None, {}
for line in open(sys.argv[1], errors="replace"):
    line = ansi.sub("", line)
    if "infrasql::aws::limiter" not in line:
        continue
    ts = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
    f = dict(w.split("=", 1) for w in line.split() if "=" in w)
    key = f"{f['service']}/{f['region']}"
    t0 = t0 or ts
    cur[key] = f["limit"]
    rows.append(((ts - t0).total_seconds(), f["reason"], dict(cur)))
if not rows:
    print("  (no limit changes logged)")
    sys.exit(0)
keys = sorted({k for _, _, c in rows for k in c})
# At most 25 rows: every change if few, else evenly spaced ones and the last.
pick = rows if len(rows) <= 25 else [rows[i * (len(rows) - 1) // 24] for i in range(25)]
print(f"  {'t (s)':>8}  {'reason':<8}  " + "  ".join(f"{k:>16}" for k in keys)
      + f"   ({len(rows)} changes)")
for t, why, c in pick:
    print(f"  {t:8.3f}  {why:<8}  " + "  ".join(f"{c.get(k, '-'):>16}" for k in keys))
PY
}

say "== limiter: adaptive (default) vs fixed concurrency, one moto"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: $PROFILE binary built $BIN_ID; $SYNC_NOTE"
say "moto: $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1:$MOTO_PORT"
say "settings: $SETTINGS; $ROUNDS round(s), median"
say "load average before: $(load_avg)"

# Wall seconds and moto's CPU seconds per run, by workload/setting.
declare -A T C
for workload in $WORKLOADS; do
    if [[ $workload == sync ]]; then
        reset_moto
        python3 "$SYNC_PY" populate --endpoint "$MOTO_EP" --vpcs "$SYNC_VPCS" --sgs "$SYNC_SGS" \
            2>>"$LOG_DIR/populate.log" | tee -a "$RESULTS"
        say "moto: $(python3 "$SYNC_PY" inventory --endpoint "$MOTO_EP")"
        # The first listing of a new inventory is slower whatever the
        # setting (it was the slowest sync of the run in three of four runs
        # before this warm-up): one untimed sync, so no setting pays for it.
        run sync fixed1 0
        note "sync warm-up (untimed, round 0): ${SECS}s"
    fi
    read -ra order <<<"$SETTINGS"
    for ((r = 1; r <= ROUNDS; r++)); do
        # Rotating order: each setting runs first in some round, and none
        # always follows the same other one.
        for ((k = 0; k < ${#order[@]}; k++)); do
            setting=${order[(k + r - 1) % ${#order[@]}]}
            [[ $workload == apply ]] && reset_moto
            run "$workload" "$setting" "$r"
            T[$workload/$setting]+="$SECS "
            C[$workload/$setting]+="$MOTO_CPU "
            note "$workload $setting round $r: ${SECS}s"
        done
    done
done
say "load average after: $(load_avg)"

for workload in $WORKLOADS; do
    case $workload in
    apply) say "" && say "-- apply: 1 VPC + $SG_COUNT security groups in one COMMIT (wall s, median of $ROUNDS)" ;;
    sync) say "" && say "-- sync: full import of $SYNC_VPCS VPCs + $SYNC_SGS groups (wall s, median of $ROUNDS)" ;;
    esac
    declare -A M=()
    best="" best_s=""
    for setting in $SETTINGS; do
        M[$setting]=$(tr ' ' '\n' <<<"${T[$workload/$setting]}" | grep . | stats | sed -E 's/.*median=([0-9.]+).*/\1/')
        if [[ $setting == fixed* ]] && { [[ -z "$best_s" ]] || awk -v a="${M[$setting]}" -v b="$best_s" 'BEGIN { exit !(a < b) }'; }; then
            best=$setting best_s=${M[$setting]}
        fi
    done
    # moto's CPU per run shows how much of a run's time was the endpoint's
    # own variance (a single-process emulator answering several calls at
    # once) rather than the setting's.
    say "$(printf '  %-10s %8s %14s %12s %10s   %s' setting wall 'x best fixed' 'x fixed1' 'moto CPU' 'runs')"
    for setting in $SETTINGS; do
        cpu=$(tr ' ' '\n' <<<"${C[$workload/$setting]}" | grep . | stats | sed -E 's/.*median=([0-9.]+).*/\1/')
        say "$(awk -v n="$setting" -v s="${M[$setting]}" -v b="$best_s" -v f="${M[fixed1]}" -v c="$cpu" -v runs="${T[$workload/$setting]}" \
            'BEGIN { printf "  %-10s %8.3f %14.2f %12.2f %10.2f   %s\n", n, s, s / b, s / f, c, runs }')"
    done
    if [[ " $SETTINGS " == *" default "* ]]; then
        say "$(awk -v d="${M[default]}" -v b="$best_s" -v bn="$best" -v f="${M[fixed1]}" 'BEGIN {
            printf "  target: default <= 1.15x best fixed (%s): %.2fx %s; default <= fixed1: %.2fx %s\n",
                bn, d / b, (d / b <= 1.15 ? "MET" : "NOT MET"), d / f, (d <= f ? "MET" : "NOT MET") }')"
        say "  default's limit over time (round 1; t from the first change):"
        limit_table "$LOG_DIR/server-$workload-default-r1.stderr.log" | tee -a "$RESULTS"
    fi
    unset M
done
say ""
say "moto CPU per run: $LOG_DIR/cpu.log"
