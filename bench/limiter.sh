#!/usr/bin/env bash
# --aws-limiter (issue 15): the adaptive concurrency limit against fixed
# limits, on one moto, in the same run.
#
# Settings: "adaptive" (no flag: adaptive, default ceiling 16) and
# "fixed N" (--aws-limiter fixed --aws-concurrency N) for N in $FIXED.
# Two workloads, each with a fresh server (fresh data dir, --sync-interval 0)
# per setting and round, settings in rotating order per round:
#   commit: one COMMIT of 1 VPC + $SG_COUNT security groups (the infrasql half
#           of bench/apply_vs_terraform.sh), moto reset before each run; the
#           end state is checked (every group has an AWS id).
#   sync:   one full `SELECT infra.sync()` (the import: every row inserted)
#           of an inventory made once, untimed, with bench/sync_bench.py
#           populate ($VPCS VPCs, $SGS security groups) before the sync runs.
# Each figure is the median over $ROUNDS rounds; ratios are to the best fixed
# setting and to fixed 1. The adaptive runs log their limit changes
# (INFRASQL_LOG=info,infrasql::aws::limiter=debug); their last round's is
# printed as time -> limit per (service, region).
#
# Usage: bench/limiter.sh   (rerunnable; from anywhere; ~10 min)
# Environment:
#   SG_COUNT=200  VPCS=20  SGS=400  ROUNDS=3  FIXED="1 2 4 8 16"
#   SKIP_BUILD=1 (use the existing target/release/infrasql)  KEEP=1
#   LOG_DIR=bench/logs/limiter
set -Eeuo pipefail

SELF=limiter.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/limiter}
SG_COUNT=${SG_COUNT:-200}
VPCS=${VPCS:-20}
SGS=${SGS:-400}
ROUNDS=${ROUNDS:-3}
FIXED=${FIXED:-1 2 4 8 16}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in psql python3 moto_server curl; do command -v "$c" >/dev/null || die "$c not found"; done
bench_build
WORK=$(mktemp -d /tmp/infrasql-limiter.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
snapshot_bin
"$BIN" serve --help | grep -q -- '--aws-limiter' || die "$BIN has no --aws-limiter"
export INFRASQL_LOG=info,infrasql::aws::limiter=debug NO_COLOR=1
start_moto
ENDPOINT=http://127.0.0.1:$MOTO_PORT

cat >"$WORK/create.sql" <<EOF
BEGIN;
INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('bench', '10.0.0.0/16', '{"bench": "limiter"}');
INSERT INTO aws.security_group (group_name, description, vpc_id, tags)
  SELECT 'bench-' || g, 'bench', vpc_id, '{"bench": "limiter"}'
  FROM aws.vpc, generate_series(1, $SG_COUNT) g WHERE name = 'bench';
COMMIT;
EOF

SETTINGS=(adaptive)
for n in $FIXED; do SETTINGS+=("fixed-$n"); done
flags() { # SETTING -> serve flags
    case $1 in
    adaptive) ;;
    fixed-*) echo "--aws-limiter fixed --aws-concurrency ${1#fixed-}" ;;
    esac
}

# run WORKLOAD SETTING ROUND -> sets SECS
run() {
    local workload=$1 setting=$2 round=$3 label="$1-$2-r$3" t0 t1 rc=0
    # shellcheck disable=SC2046
    start_infrasql "$label" "$ENDPOINT" $(flags "$setting")
    t0=$(now)
    case $workload in
    commit) isql -f "$WORK/create.sql" >"$LOG_DIR/$label.psql.log" 2>&1 || rc=$? ;;
    sync) isql -A -t -q -c "SELECT infra.sync()" >"$LOG_DIR/$label.psql.log" 2>&1 || rc=$? ;;
    esac
    t1=$(now)
    if ((rc == 0)); then
        case $workload in
        commit) [[ $(isql -A -t -q -c "SELECT count(*) FROM aws.security_group
                    WHERE group_name LIKE 'bench-%' AND group_id NOT LIKE '%provisional%'") == "$SG_COUNT" ]] || rc=90 ;;
        sync) grep -q '"errors": \[\]' "$LOG_DIR/$label.psql.log" || rc=91 ;;
        esac
    fi
    stop_infrasql
    ((rc == 0)) || { tail -20 "$LOG_DIR/$label.psql.log" >&2; die "$label failed ($rc); see $LOG_DIR"; }
    SECS=$(elapsed "$t0" "$t1")
}

say "== limiter: adaptive vs fixed --aws-concurrency, commit of 1 VPC + $SG_COUNT SGs and a full sync of $VPCS VPCs + $SGS SGs"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   binary: $BIN_ID"
say "moto: $(python3 -c 'import moto; print(moto.__version__)')   load average before: $(load_avg)"

declare -A T
n=${#SETTINGS[@]}
for workload in commit sync; do
    if [[ $workload == sync ]]; then
        reset_moto
        python3 "$SYNC_PY" populate --endpoint "$ENDPOINT" --vpcs "$VPCS" --sgs "$SGS" >"$LOG_DIR/populate.log" 2>&1 ||
            { cat "$LOG_DIR/populate.log" >&2; die "populate failed"; }
        say "inventory: $(python3 "$SYNC_PY" inventory --endpoint "$ENDPOINT")"
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            s=${SETTINGS[(i + r - 1) % n]}
            [[ $workload == sync ]] || reset_moto
            run "$workload" "$s" "$r"
            T[$workload-$s]+="$SECS "
            say "round $r  $workload  $s: ${SECS}s"
        done
    done
done

median() { tr ' ' '\n' <<<"$1" | grep . | stats | sed -E 's/.*median=([0-9.]+).*/\1/'; }
say ""
for workload in commit sync; do
    best="" best_s=""
    for n_ in $FIXED; do
        m=$(median "${T[$workload-fixed-$n_]}")
        if [[ -z "$best" ]] || awk -v a="$m" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$m best_s=fixed-$n_; fi
    done
    one=$(median "${T[$workload-fixed-1]:-}")
    say "-- $workload (median of $ROUNDS; best fixed: $best_s)"
    say "$(printf '%-10s %10s %14s %12s' setting 'wall (s)' '/ best fixed' '/ fixed 1')"
    for s in "${SETTINGS[@]}"; do
        m=$(median "${T[$workload-$s]}")
        say "$(awk -v s="$s" -v m="$m" -v b="$best" -v o="${one:-0}" 'BEGIN {
            printf "%-10s %10.2f %14.2f %12s\n", s, m, m / b, (o > 0 ? sprintf("%.2f", m / o) : "-") }')"
    done
    say ""
done

# The adaptive runs' limits over time, from their last round's debug log.
for workload in commit sync; do
    say "-- adaptive limit over time, $workload (round $ROUNDS): seconds since the first change -> limit"
    python3 - "$LOG_DIR/server-$workload-adaptive-r$ROUNDS.stderr.log" <<'PY' | tee -a "$RESULTS"
import re, sys
from datetime import datetime
rows = []
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if "infrasql::aws::limiter" not in line:
        continue
    t = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    rows.append((t, f"{f['service']}/{f['region']}", int(f["limit"]), f["reason"]))
if not rows:
    print("(no limit changes logged)")
    sys.exit(0)
t0 = rows[0][0]
keys = sorted({k for _, k, _, _ in rows})
end = (rows[-1][0] - t0).total_seconds()
# The limit of each key at 12 evenly spaced moments, and the changes counted.
steps = 12
print(f"{'t (s)':>7} " + " ".join(f"{k:>22}" for k in keys))
now = {k: 1 for k in keys}
i = 0
for s in range(steps + 1):
    at = end * s / steps
    while i < len(rows) and (rows[i][0] - t0).total_seconds() <= at:
        now[rows[i][1]] = rows[i][2]
        i += 1
    print(f"{at:7.2f} " + " ".join(f"{now[k]:>22}" for k in keys))
for k in keys:
    reasons = {}
    for _, kk, _, r in rows:
        if kk == k:
            reasons[r] = reasons.get(r, 0) + 1
    print(f"{k}: changes {sum(reasons.values())} ({', '.join(f'{r} {n}' for r, n in sorted(reasons.items()))}), "
          f"max {max(l for _, kk, l, _ in rows if kk == k)}")
PY
done
