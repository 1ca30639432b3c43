#!/usr/bin/env bash
# infrasql COMMIT versus `terraform apply`: 1 VPC + $SG_COUNT security groups,
# the same end state, against the same moto server (reset before every run).
#
#   infrasql:  one psql command running
#                BEGIN; INSERT INTO aws.vpc ...; INSERT INTO aws.security_group
#                ... SELECT ... generate_series(1, $SG_COUNT); COMMIT;
#              against a freshly started server (fresh data dir, so every run
#              starts equally cold); timed from psql start to psql exit, after
#              the server is up. Once per --aws-concurrency in $CONCURRENCY
#              ("default" = no flag, i.e. 16).
#   terraform: `terraform apply -auto-approve -parallelism=10` of
#              bench/terraform/main.tf (aws_vpc + aws_security_group with
#              count), in a scratch dir initialised once (untimed) with
#              -plugin-dir; state removed before every run. Timed as a whole
#              (provider start-up, plan and apply: what a user waits for);
#              the phases are reported too (from timestamped output lines):
#              plan (until the plan is printed), apply start-up (plan printed
#              to the first "Creating..."), create (first "Creating..." to
#              "Apply complete!"), exit.
#
# Phase 1 (timing): $ROUNDS rounds, sides alternating, WITHOUT the counting
# proxy; each figure is the median over the rounds.
# Phase 2 (counting): one more run per side with bench/count_proxy.py between
# the client and moto; API calls tallied by Action over exactly the timed
# command (the proxy's counters are reset just before it).
# Phase 3 (the moto floor, with phase 2): the exact requests each counted
# infrasql run sent (recorded by the proxy) are replayed against a reset moto
# by bench/replay_floor.py, a raw HTTP client, at concurrency 1 and at the
# run's --aws-concurrency (ids AWS assigned rewritten; a request waits for
# the answer that made an id it names); the faster is the floor: what moto
# needs for these calls with no client cost. Printed: calls per group, the
# phase-1 infrasql wall, the floor, infrasql / floor (target <= 1.3) and
# terraform / infrasql.
# After every run the end state is checked straight against moto (boto3):
# 1 VPC 10.0.0.0/16, $SG_COUNT groups in it besides `default`, no egress rules
# left on them.
#
# Usage: bench/apply_vs_terraform.sh   (rerunnable; from anywhere)
# Environment:
#   SG_COUNT=200  ROUNDS=3  CONCURRENCY="10 default"  TF_PARALLELISM=10
#   COUNT=1       run phases 2 and 3   FLOOR_ROUNDS=3 replays per concurrency
#   SKIP_BUILD=1  use the existing binary
#   TF_PLUGIN_DIR (default: found under /opt/tf-plugins, /usr/share/terraform/plugins, ~/.terraform.d/plugins)
#   KEEP=1        keep the scratch dir    LOG_DIR=bench/logs/apply_vs_terraform
set -Eeuo pipefail

SELF=apply_vs_terraform.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/apply_vs_terraform}
SG_COUNT=${SG_COUNT:-200}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-10 default}
TF_PARALLELISM=${TF_PARALLELISM:-10}
COUNT=${COUNT:-1}
FLOOR_ROUNDS=${FLOOR_ROUNDS:-3}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.json
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_terraform_tools

bench_build

WORK=$(mktemp -d /tmp/infrasql-avt.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
snapshot_bin

# Terraform: no network, no checkpoint, no user CLI config.
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE=$WORK/terraformrc
: >"$TF_CLI_CONFIG_FILE"
TFDIR=$WORK/tf
mkdir -p "$TFDIR"
cp "$ROOT/bench/terraform/main.tf" "$TFDIR/"
(cd "$TFDIR" && terraform init -input=false -plugin-dir="$TF_PLUGIN_DIR") >"$LOG_DIR/terraform-init.log" 2>&1 ||
    { tail -20 "$LOG_DIR/terraform-init.log" >&2; die "terraform init failed"; }

start_moto

cat >"$WORK/create.sql" <<EOF
BEGIN;
INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('bench', '10.0.0.0/16', '{"bench": "apply_vs_terraform"}');
INSERT INTO aws.security_group (group_name, description, vpc_id, tags)
  SELECT 'bench-' || g, 'bench', vpc_id, '{"bench": "apply_vs_terraform"}'
  FROM aws.vpc, generate_series(1, $SG_COUNT) g WHERE name = 'bench';
COMMIT;
EOF

# Check the end state directly against moto. Prints one line; fails if wrong.
verify() { # LABEL
    python3 - "$MOTO_PORT" "$SG_COUNT" "$1" <<'PY'
import sys, boto3
port, want, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.0.0.0/16"]
groups = []
if len(vpcs) == 1:
    groups = [g for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["SecurityGroups"]
        if g["GroupName"] != "default"]
egress = sum(len(g.get("IpPermissionsEgress", [])) for g in groups)
tagged = sum(1 for g in groups if any(t["Key"] == "bench" for t in g.get("Tags", [])))
ok = len(vpcs) == 1 and len(groups) == want and egress == 0
print(f"end state [{label}]: vpcs(10.0.0.0/16)={len(vpcs)} groups={len(groups)} "
      f"egress_rules={egress} tagged={tagged} -> {'OK' if ok else 'WRONG'}")
sys.exit(0 if ok else 1)
PY
}

# run_infrasql LABEL ENDPOINT CONC -> sets SECS; logs in $LOG_DIR
run_infrasql() {
    local label=$1 endpoint=$2 conc=$3 args=()
    [[ "$conc" == default ]] || args=(--aws-concurrency "$conc")
    start_infrasql "$label" "$endpoint" "${args[@]}"
    [[ -z "$PROXY_PORT" ]] || proxy_reset
    local t0 t1 rc=0 pm c0 c1 m0 m1
    pm=$(head -1 "$DATA/pgdata/postmaster.pid")
    # infrasql, the postmaster and all its backends (the engine's journal connection too)
    c0=$(cpu_secs "$SERVER_PID" "$pm" $(ps -o pid= --ppid "$pm"))
    m0=$(cpu_secs "$MOTO_PID")
    t0=$(now)
    isql -f "$WORK/create.sql" >"$LOG_DIR/$label.psql.log" 2>&1 || rc=$?
    t1=$(now)
    sleep 0.2 # let the session's backend exit, so the postmaster has reaped it
    c1=$(cpu_secs "$SERVER_PID" "$pm" $(ps -o pid= --ppid "$pm"))
    m1=$(cpu_secs "$MOTO_PID")
    CPU_NOTE="CPU: infrasql+PostgreSQL $(elapsed "$c0" "$c1")s, moto $(elapsed "$m0" "$m1")s"
    if [[ -n "$PROXY_PORT" ]]; then
        proxy_counts >"$LOG_DIR/$label.counts.json"
        curl -sf "http://127.0.0.1:$PROXY_PORT/__count_proxy__/requests" >"$LOG_DIR/$label.requests.json"
    fi
    stop_infrasql
    if ((rc != 0)); then
        tail -20 "$LOG_DIR/$label.psql.log" >&2
        die "infrasql run $label failed (psql exit $rc); see $LOG_DIR/$label.psql.log and server-$label.stderr.log"
    fi
    SECS=$(elapsed "$t0" "$t1")
}

# run_terraform LABEL ENDPOINT -> sets SECS (total) and CREATE (create phase)
run_terraform() {
    local label=$1 endpoint=$2
    rm -f "$TFDIR"/terraform.tfstate "$TFDIR"/terraform.tfstate.backup
    [[ -z "$PROXY_PORT" ]] || proxy_reset
    local t0 t1 rc=0 m0 m1
    m0=$(cpu_secs "$MOTO_PID")
    t0=$(now)
    echo "$t0 START terraform apply" >"$LOG_DIR/$label.tf.log"
    # Timestamp every output line (for the phases); the pipe costs nothing measurable.
    # `time` also gives the CPU seconds terraform and its provider plugin used
    # (a figure that CPU contention from other work on the machine hardly moves).
    local TIMEFORMAT='%3U %3S'
    { time { (cd "$TFDIR" && terraform apply -auto-approve -input=false -no-color \
        -parallelism="$TF_PARALLELISM" -var "endpoint=$endpoint" -var "sg_count=$SG_COUNT" 2>&1) |
        while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >>"$LOG_DIR/$label.tf.log"; }; } \
        2>"$WORK/tf.cpu" || rc=$?
    t1=$(now)
    [[ -z "$PROXY_PORT" ]] || proxy_counts >"$LOG_DIR/$label.counts.json"
    if ((rc != 0)) || ! grep -q 'Apply complete!' "$LOG_DIR/$label.tf.log"; then
        tail -20 "$LOG_DIR/$label.tf.log" >&2
        die "terraform run $label failed; see $LOG_DIR/$label.tf.log"
    fi
    local p1 c0 c1
    p1=$(sed -n 2p "$LOG_DIR/$label.tf.log" | cut -d' ' -f1) # first output: the plan is done
    c0=$(grep -m1 'Creating\.\.\.' "$LOG_DIR/$label.tf.log" | cut -d' ' -f1)
    c1=$(grep -m1 'Apply complete!' "$LOG_DIR/$label.tf.log" | cut -d' ' -f1)
    SECS=$(elapsed "$t0" "$t1")
    CREATE=$(elapsed "$c0" "$c1")
    m1=$(cpu_secs "$MOTO_PID")
    TF_CPU=$(awk '{ printf "%.1f", $1 + $2 }' "$WORK/tf.cpu")
    PHASES="plan $(elapsed "$t0" "$p1")s + apply start-up $(elapsed "$p1" "$c0")s + create ${CREATE}s + exit $(elapsed "$c1" "$t1")s; CPU: terraform+provider ${TF_CPU}s, moto $(elapsed "$m0" "$m1")s"
}

RESOURCES=$((SG_COUNT + 1))
say "== apply_vs_terraform: 1 VPC + $SG_COUNT security groups ($RESOURCES resources)"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: release binary built $BIN_ID; $SYNC_NOTE"
say "terraform: $(terraform version | head -1), aws provider $(ls "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws" | tr '\n' ' ')"
say "moto: $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1:$MOTO_PORT"
say "load average before: $(load_avg)"
say ""
say "-- phase 1: timing, no proxy, $ROUNDS round(s), fresh moto state per run"

declare -A T FLOOR CALLS
for ((r = 1; r <= ROUNDS; r++)); do
    for conc in $CONCURRENCY; do
        reset_moto
        run_infrasql "time-infrasql-c$conc-r$r" "http://127.0.0.1:$MOTO_PORT" "$conc"
        s=$SECS
        v=$(verify "infrasql c=$conc round $r") || die "$v"
        T[infrasql-$conc]+="$s "
        say "round $r  infrasql --aws-concurrency $conc: ${s}s; $CPU_NOTE   ($v)"
    done
    reset_moto
    run_terraform "time-terraform-r$r" "http://127.0.0.1:$MOTO_PORT"
    tot=$SECS create=$CREATE
    v=$(verify "terraform round $r") || die "$v"
    T[terraform]+="$tot "
    T[terraform-create]+="$create "
    say "round $r  terraform -parallelism=$TF_PARALLELISM: ${tot}s total = $PHASES   ($v)"
done

median() { tr ' ' '\n' <<<"$1" | grep . | stats | sed -E 's/.*median=([0-9.]+).*/\1/'; }
say ""
say "-- phase 1 result (median of $ROUNDS)"
TFM=$(median "${T[terraform]}")
TFC=$(median "${T[terraform-create]}")
say "terraform apply -parallelism=$TF_PARALLELISM: ${TFM}s   (create phase alone: ${TFC}s)"
for conc in $CONCURRENCY; do
    m=$(median "${T[infrasql-$conc]}")
    ratio=$(awk -v a="$TFM" -v b="$m" 'BEGIN { printf "%.2f", a / b }')
    ratio_c=$(awk -v a="$TFC" -v b="$m" 'BEGIN { printf "%.2f", a / b }')
    verdict=$(awk -v x="$ratio" 'BEGIN { print (x >= 5) ? "meets the 5x target" : "MISSES the 5x target" }')
    say "infrasql --aws-concurrency $conc: ${m}s   terraform/infrasql = ${ratio}x ($verdict; vs terraform's create phase alone: ${ratio_c}x)"
done

if [[ "$COUNT" == 1 ]]; then
    say ""
    say "-- phase 2: API calls, through bench/count_proxy.py (1 run per side; times include the proxy)"
    summarize() { # LABEL TIME
        python3 - "$LOG_DIR/$1.counts.json" "$RESOURCES" "$SG_COUNT" "$1" "$2" <<'PY' | tee -a "$RESULTS"
import json, sys
path, res, sgs, label, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = json.load(open(path))
print(f"{label}: {c['total']} calls for {res} resources = {c['total'] / res:.2f} calls/resource "
      f"(wall-clock with proxy {secs}s)")
for action, n in c["by_action"].items():
    print(f"    {n:6d}  {action:34s} {n / sgs:6.2f} per security group")
if c["errors"]:
    print("    HTTP errors: " + ", ".join(f"{k} x{v}" for k, v in c["errors"].items()))
PY
    }
    start_proxy count_proxy.log
    EP="http://127.0.0.1:$PROXY_PORT"
    for conc in $CONCURRENCY; do
        reset_moto
        run_infrasql "count-infrasql-c$conc" "$EP" "$conc"
        s=$SECS
        v=$(verify "infrasql c=$conc via proxy") || die "$v"
        say "$v"
        summarize "count-infrasql-c$conc" "$s"
        # Phase 3: the same requests, replayed raw (the replay resets moto).
        c=$conc
        [[ "$c" == default ]] && c=16
        python3 "$ROOT/bench/replay_floor.py" --moto "http://127.0.0.1:$MOTO_PORT" \
            --requests "$LOG_DIR/count-infrasql-c$conc.requests.json" --concurrency 1 "$c" \
            --rounds "$FLOOR_ROUNDS" >"$LOG_DIR/floor-c$conc.log" 2>&1 ||
            { tail -5 "$LOG_DIR/floor-c$conc.log" >&2; die "floor replay failed"; }
        v=$(verify "floor replay of infrasql c=$conc") || die "$v"
        say "$v"
        FLOOR[$conc]=$(tail -1 "$LOG_DIR/floor-c$conc.log")
        CALLS[$conc]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"])' \
            "$LOG_DIR/count-infrasql-c$conc.counts.json")
    done
    reset_moto
    run_terraform count-terraform "$EP"
    tot=$SECS
    v=$(verify "terraform via proxy") || die "$v"
    say "$v"
    summarize count-terraform "$tot"
    stop_proxy
    say ""
    say "-- phase 3: the moto floor (infrasql's recorded requests replayed raw; best of $FLOOR_ROUNDS per concurrency)"
    for conc in $CONCURRENCY; do
        m=$(median "${T[infrasql-$conc]}")
        python3 - "${FLOOR[$conc]}" "${CALLS[$conc]}" "$SG_COUNT" "$m" "$TFM" "$conc" <<'PY' | tee -a "$RESULTS"
import json, sys
f, calls, sgs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wall, tf, conc = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
floor = f["floor"]
by = ", ".join(f"{float(v):.2f}s at {k}" for k, v in f["by_concurrency"].items())
r = wall / floor
per = calls / sgs
print(f"infrasql --aws-concurrency {conc}: {per:.3f} calls per group ({calls} calls incl. the VPC's; "
      f"{'meets' if per <= 2.0 + 1.0 / sgs else 'MISSES'} the <= 2 target); "
      f"infrasql {wall:.2f}s, floor {floor:.2f}s ({by}; the recording had up to "
      f"{f['recorded_overlap']} calls in flight); infrasql/floor = {r:.2f} "
      f"({'meets' if r <= 1.3 else 'MISSES'} the 1.3x target); terraform/infrasql = {tf / wall:.2f}x")
PY
    done
fi
say ""
say "load average after: $(load_avg)"
say "logs: $LOG_DIR"
