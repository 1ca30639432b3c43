#!/usr/bin/env bash
# One infrasql full sync versus `terraform plan -refresh-only`, over the same
# account, in the same run.
#
# Setup (untimed for the comparison, but reported): `terraform apply` of
# bench/terraform_sync/main.tf creates $VPCS VPCs, $SGS security groups spread
# round-robin over them (one inline ingress rule each; default egress revoked)
# and $INSTANCES instances (ami-760aaa0f, t2.micro, default subnet) in moto, so
# terraform manages all of them (they are in its state).
#
# Phase 1 (timing), $ROUNDS rounds, sides alternating, no proxy:
#   infrasql:  a fresh server (fresh data dir, --sync-interval 0);
#              `SELECT infra.sync()` once = the import (first sync, every row
#              inserted), then $STEADY more = steady state (nothing changed:
#              every row compared, none rewritten). Timed from psql start to
#              psql exit; the server-side span of the round (infra.sync_status:
#              max(last_finished) - min(last_started)) is reported too.
#   terraform: `terraform plan -refresh-only -parallelism=$TF_PARALLELISM` on
#              the state the setup wrote (all $((VPCS + SGS + INSTANCES))
#              resources), timed as a whole (provider start-up included: what a
#              user waits for); the refresh phase alone (first "Refreshing
#              state..." line to exit) is reported too.
#   terraform (subset, TF_SUBSET=1): the same with -target=aws_vpc.bench
#              -target=aws_security_group.bench, i.e. without the instances:
#              how the ratio looks without terraform's costliest type (its
#              instance refresh makes several calls per instance, infrasql's
#              one paginated DescribeInstances per round).
# Ratios: terraform median / infrasql steady-state median (also vs import).
#
# Phase 2 (API calls, COUNT=1): bench/count_proxy.py between each client and
# moto; counters reset just before each measured command: infrasql import,
# infrasql steady-state sync (a fresh server), terraform full refresh, terraform
# subset refresh. infra.sync_status.api_calls (summed) is shown next to the
# proxy's exact count (the server's own count is approximate when tables of a
# level sync concurrently).
#
# Moto's floor: in every round, the same 11 list calls infrasql's full sync
# makes (bench/sync_bench.py floor: raw HTTP, no SDK, one after another) are
# timed against moto (a lower bound: its first page only, for calls moto pages), and
# the CPU moto, PostgreSQL and infrasql each use during every steady sync is
# logged, so whose work a sync is waiting on is visible.
#
# The server's memory (RSS, and the embedded PostgreSQL's) after the syncs is
# logged too; bench/sync_memory.sh is the dedicated memory benchmark.
#
# Usage: bench/sync_vs_terraform.sh   (rerunnable; from anywhere; ~30-60 min)
# Environment:
#   VPCS=100 SGS=2000 INSTANCES=500  ROUNDS=3  STEADY=3  TARGET=20
#   TF_PARALLELISM=10 (terraform's default)   SETUP_PARALLELISM=50
#   TAGGED=1 (0: no tags anywhere, see terraform_sync/main.tf)
#   SERIAL=1 (also time infrasql with --aws-concurrency 1: moto serves one
#            request at a time, so parallel listings only contend)
#   TF_SUBSET=1   COUNT=1   SKIP_BUILD=1 (use the existing binary)   KEEP=1
#   TF_PLUGIN_DIR (default: found under /opt/tf-plugins, ...)
#   LOG_DIR=bench/logs/sync_vs_terraform
set -Eeuo pipefail

SELF=sync_vs_terraform.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/bench/logs/sync_vs_terraform}
VPCS=${VPCS:-100}
SGS=${SGS:-2000}
INSTANCES=${INSTANCES:-500}
ROUNDS=${ROUNDS:-3}
STEADY=${STEADY:-3}
TARGET=${TARGET:-20}
TF_PARALLELISM=${TF_PARALLELISM:-10}
SETUP_PARALLELISM=${SETUP_PARALLELISM:-50}
SERIAL=${SERIAL:-1}
TF_SUBSET=${TF_SUBSET:-1}
TAGGED=${TAGGED:-1}
COUNT=${COUNT:-1}
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.json "$LOG_DIR"/sync.out
RESULTS=$LOG_DIR/results.log
# shellcheck source=bench_common.sh
. "$ROOT/bench/bench_common.sh"
# shellcheck source=sync_common.sh
. "$ROOT/bench/sync_common.sh"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_terraform_tools

bench_build
WORK=$(mktemp -d /tmp/infrasql-svt.XXXXXX)
chmod 755 "$WORK" # as root the embedded cluster runs as `postgres`
SYNC_INTERVAL=0 snapshot_bin

export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE=$WORK/terraformrc
: >"$TF_CLI_CONFIG_FILE"
TFDIR=$WORK/tf
mkdir -p "$TFDIR"
cp "$ROOT/bench/terraform_sync/main.tf" "$TFDIR/"
(cd "$TFDIR" && terraform init -input=false -plugin-dir="$TF_PLUGIN_DIR") >"$LOG_DIR/terraform-init.log" 2>&1 ||
    { tail -20 "$LOG_DIR/terraform-init.log" >&2; die "terraform init failed"; }
TFVARS=(-var "vpc_count=$VPCS" -var "sg_count=$SGS" -var "instance_count=$INSTANCES")
if [[ "$TAGGED" == 1 ]]; then TFVARS+=(-var tagged=true); TAGNOTE="tagged (VPCs and instances Name + bench, groups bench)"; else TFVARS+=(-var tagged=false); TAGNOTE="UNTAGGED variant (no tags anywhere)"; fi

start_moto
MOTO_EP="http://127.0.0.1:$MOTO_PORT"

RESOURCES_TF=$((VPCS + SGS + INSTANCES))
say "== sync_vs_terraform: infrasql full sync vs terraform plan -refresh-only"
say "   $VPCS VPCs + $SGS security groups + $INSTANCES instances = $RESOURCES_TF terraform-managed resources; $TAGNOTE"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC')   cores: $(nproc)   host: $(uname -sr)"
say "infrasql: release binary built $BIN_ID; $SYNC_NOTE"
say "terraform: $(terraform version | head -1), aws provider $(ls "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws" | tr '\n' ' ')"
say "moto: $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1:$MOTO_PORT"
say "load average before: $(load_avg)"
say ""

# ------------------------------------------------------------------ setup
say "-- setup: terraform apply -parallelism=$SETUP_PARALLELISM (creates everything; not part of the comparison)"
t0=$(now)
(cd "$TFDIR" && terraform apply -auto-approve -input=false -no-color \
    -parallelism="$SETUP_PARALLELISM" -var "endpoint=$MOTO_EP" "${TFVARS[@]}") \
    >"$LOG_DIR/setup-apply.log" 2>&1 || { tail -30 "$LOG_DIR/setup-apply.log" >&2; die "terraform apply failed"; }
t1=$(now)
grep -q 'Apply complete!' "$LOG_DIR/setup-apply.log" || die "terraform apply did not complete; see setup-apply.log"
say "setup apply: $(elapsed "$t0" "$t1")s; $(grep -m1 'Apply complete!' "$LOG_DIR/setup-apply.log")"
INV=$(python3 "$SYNC_PY" inventory --endpoint "$MOTO_EP")
say "moto now holds: $INV"
python3 - "$INV" "$VPCS" "$SGS" "$INSTANCES" <<'PY' || die "inventory does not match the request"
import sys
d = dict(kv.split("=") for kv in sys.argv[1].split())
v, s, i = map(int, sys.argv[2:5])
ok = int(d["vpcs_nondefault"]) == v and int(d["security_groups_nondefault"]) == s and int(d["instances_running"]) == i
sys.exit(0 if ok else 1)
PY
say ""

# ------------------------------------------------------------------ phase 1
declare -A T
run_tf_refresh() { # LABEL ENDPOINT [extra plan args] -> SECS, REFRESH
    local label=$1 ep=$2 rc=0 t0 t1 r0
    shift 2
    t0=$(now)
    (cd "$TFDIR" && terraform plan -refresh-only -input=false -no-color -lock=false \
        -parallelism="$TF_PARALLELISM" -var "endpoint=$ep" "${TFVARS[@]}" "$@" 2>&1) |
        while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$LOG_DIR/$label.tf.log" || rc=$?
    t1=$(now)
    if ((rc != 0)) || grep -q 'Error:' "$LOG_DIR/$label.tf.log"; then
        tail -30 "$LOG_DIR/$label.tf.log" >&2
        die "terraform plan -refresh-only ($label) failed; see $LOG_DIR/$label.tf.log"
    fi
    r0=$(grep -m1 'Refreshing state\.\.\.' "$LOG_DIR/$label.tf.log" | cut -d' ' -f1)
    SECS=$(elapsed "$t0" "$t1")
    REFRESH=$(elapsed "${r0:-$t0}" "$t1")
    REFRESHED=$(grep -c 'Refreshing state\.\.\.' "$LOG_DIR/$label.tf.log" || true)
    if grep -q 'No changes' "$LOG_DIR/$label.tf.log"; then
        TFCHANGES="no changes"
    elif ! cut -d' ' -f2- "$LOG_DIR/$label.tf.log" | grep -E '^ +[-+~] ' | grep -vE '^ +~ resource ' |
        grep -qvE '^ +\+ tags +(_all +)?= \{\}$'; then
        # untagged variant: the provider reads back tags = {} where the state has null
        TFCHANGES="only 'tags: null -> {}' reported (provider quirk; no real change)"
    else
        TFCHANGES="CHANGES REPORTED (see $label.tf.log)"
    fi
}

say "-- phase 1: timing, no proxy, $ROUNDS round(s); infrasql: import + $STEADY steady-state syncs per round"
for ((r = 1; r <= ROUNDS; r++)); do
    start_infrasql "sync-r$r" "$MOTO_EP"
    mem_report "r$r: server up, nothing synced" >>"$LOG_DIR/memory.log"
    s=$(sync_once)
    span=$(round_span)
    T[import]+="$s "
    say "round $r  infrasql import (first sync): ${s}s (server-side round span ${span}s; $(status_seen) rows seen; drift rows: $(drift_count))"
    mem_report "r$r: after import" >>"$LOG_DIR/memory.log"
    for ((k = 1; k <= STEADY; k++)); do
        read -r cm0 cp0 ci0 < <(cpu_split)
        s=$(sync_once)
        read -r cm1 cp1 ci1 < <(cpu_split)
        span=$(round_span)
        T[steady]+="$s "
        say "round $r  infrasql steady sync $k: ${s}s (server-side span ${span}s; $(status_seen) rows seen; sync_status api_calls sum $(status_calls); drift rows: $(drift_count)); CPU during it: moto $(awk -v a="$cm0" -v b="$cm1" 'BEGIN{printf "%.2f", b-a}')s, PostgreSQL $(awk -v a="$cp0" -v b="$cp1" 'BEGIN{printf "%.2f", b-a}')s, infrasql $(awk -v a="$ci0" -v b="$ci1" 'BEGIN{printf "%.2f", b-a}')s"
    done
    mem_report "r$r: after $STEADY steady syncs" >>"$LOG_DIR/memory.log"
    if [[ "$SERIAL" == 1 ]]; then
        # moto answers one request at a time under Python's GIL: listings in
        # parallel only slow each other down. --aws-concurrency 1 tells
        # infrasql so (one call in flight per region).
        stop_infrasql
        start_infrasql "sync-serial-r$r" "$MOTO_EP" --aws-concurrency 1
        s=$(sync_once)
        say "round $r  infrasql --aws-concurrency 1 import: ${s}s"
        for ((k = 1; k <= STEADY; k++)); do
            s=$(sync_once)
            span=$(round_span)
            T[serial]+="$s "
            say "round $r  infrasql --aws-concurrency 1 steady sync $k: ${s}s (server-side span ${span}s; $(status_seen) rows seen)"
        done
    fi
    # moto's own share: the same 11 list calls, raw HTTP, one after another
    fl=$(python3 "$SYNC_PY" floor --endpoint "$MOTO_EP")
    T[floor]+="${fl%% *} "
    say "round $r  moto floor (infrasql's 11 list calls as raw HTTP, one after another): ${fl%% *}s (${fl#* * * }; $(cut -d' ' -f3 <<<"$fl") response bytes)"
    if ((r == 1)); then
        status_table >"$LOG_DIR/sync_status.log"
        isql -A -t -q -c "SELECT table_name, kind, field, count(*) FROM infra.drift GROUP BY 1, 2, 3 ORDER BY 4 DESC" \
            >"$LOG_DIR/drift-summary.log"
        ROWS_SEEN=$(status_seen)
        MEM_LINE=$(mem_report "after $STEADY steady syncs (round 1)")
    fi
    stop_infrasql

    run_tf_refresh "time-terraform-full-r$r" "$MOTO_EP"
    T[tf]+="$SECS "
    T[tf-refresh]+="$REFRESH "
    say "round $r  terraform plan -refresh-only (all $RESOURCES_TF): ${SECS}s total, ${REFRESH}s refresh phase; $REFRESHED resources refreshed; $TFCHANGES"
    if [[ "$TF_SUBSET" == 1 ]]; then
        run_tf_refresh "time-terraform-subset-r$r" "$MOTO_EP" -target=aws_vpc.bench -target=aws_security_group.bench
        T[tfs]+="$SECS "
        T[tfs-refresh]+="$REFRESH "
        say "round $r  terraform plan -refresh-only -target VPCs+SGs ($((VPCS + SGS))): ${SECS}s total, ${REFRESH}s refresh phase; $REFRESHED resources refreshed; $TFCHANGES"
    fi
done

median() { tr ' ' '\n' <<<"$1" | grep . | stats | sed -E 's/.*median=([0-9.]+).*/\1/'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
verdict() { awk -v x="$1" -v t="$TARGET" 'BEGIN { print (x >= t) ? "meets" : "MISSES" }'; }
IM=$(median "${T[import]}")
SM=$(median "${T[steady]}")
TF=$(median "${T[tf]}")
TFR=$(median "${T[tf-refresh]}")
say ""
say "-- phase 1 result (medians; infrasql rows seen per full sync: $ROWS_SEEN, instances included)"
say "infrasql steady-state full sync: ${SM}s   (all: $(tr ' ' '\n' <<<"${T[steady]}" | grep . | stats))"
say "infrasql import (first sync):    ${IM}s   (all: $(tr ' ' '\n' <<<"${T[import]}" | grep . | stats))"
FM=$(median "${T[floor]}")
say "moto floor for those list calls:  ${FM}s   (all: $(tr ' ' '\n' <<<"${T[floor]}" | grep . | stats)) -> a steady sync takes $(awk -v a="$SM" -v b="$FM" 'BEGIN { printf "%.1f", a - b }')s more (see each sync's CPU split: moto works harder for concurrent, paginated SDK calls than for this floor)"
say "terraform plan -refresh-only, all $RESOURCES_TF resources: ${TF}s (refresh phase alone ${TFR}s)"
r1=$(ratio "$TF" "$SM")
if [[ "$SERIAL" == 1 ]]; then
    SS=$(median "${T[serial]}")
    say "infrasql --aws-concurrency 1 steady-state full sync: ${SS}s   (all: $(tr ' ' '\n' <<<"${T[serial]}" | grep . | stats))"
    say "RATIO terraform(all) / infrasql(--aws-concurrency 1, steady) = $(ratio "$TF" "$SS")x  -> $(verdict "$(ratio "$TF" "$SS")") the ${TARGET}x target"
fi
say "RATIO terraform(all) / infrasql(steady) = ${r1}x  -> $(verdict "$r1") the ${TARGET}x target   [like for like: both sides refresh every VPC, group and instance]"
say "      terraform refresh phase alone / infrasql(steady) = $(ratio "$TFR" "$SM")x; terraform(all) / infrasql(import) = $(ratio "$TF" "$IM")x"
if [[ "$TF_SUBSET" == 1 ]]; then
    TFS=$(median "${T[tfs]}")
    TFSR=$(median "${T[tfs-refresh]}")
    r2=$(ratio "$TFS" "$SM")
    say "terraform plan -refresh-only -target VPCs+SGs ($((VPCS + SGS)) resources): ${TFS}s (refresh phase alone ${TFSR}s)"
    say "RATIO terraform(VPCs+SGs) / infrasql(steady) = ${r2}x  -> $(verdict "$r2") the ${TARGET}x target   [terraform without its instances; infrasql still syncs everything]"
    say "      terraform(VPCs+SGs) refresh phase alone / infrasql(steady) = $(ratio "$TFSR" "$SM")x; terraform(VPCs+SGs) / infrasql(import) = $(ratio "$TFS" "$IM")x"
fi
say "memory $MEM_LINE"

# ------------------------------------------------------------------ phase 2
if [[ "$COUNT" == 1 ]]; then
    say ""
    say "-- phase 2: API calls, through bench/count_proxy.py (times include the proxy)"
    start_proxy count_proxy.log
    EP="http://127.0.0.1:$PROXY_PORT"
    start_infrasql count "$EP"
    proxy_reset
    s=$(sync_once)
    proxy_counts >"$LOG_DIR/count-infrasql-import.counts.json"
    say "infrasql import via proxy: ${s}s; infra.sync_status api_calls sum = $(status_calls)"
    python3 "$SYNC_PY" counts --file "$LOG_DIR/count-infrasql-import.counts.json" --label "count-infrasql-import" \
        --resources "$(status_seen)" | tee -a "$RESULTS"
    proxy_reset
    s=$(sync_once)
    proxy_counts >"$LOG_DIR/count-infrasql-steady.counts.json"
    SC=$(status_calls)
    say "infrasql steady-state sync via proxy: ${s}s; infra.sync_status api_calls sum = $SC"
    python3 "$SYNC_PY" counts --file "$LOG_DIR/count-infrasql-steady.counts.json" --label "count-infrasql-steady" \
        --resources "$(status_seen)" | tee -a "$RESULTS"
    stop_infrasql
    proxy_reset
    run_tf_refresh count-terraform-full "$EP"
    proxy_counts >"$LOG_DIR/count-terraform-full.counts.json"
    say "terraform refresh (all) via proxy: ${SECS}s"
    python3 "$SYNC_PY" counts --file "$LOG_DIR/count-terraform-full.counts.json" --label "count-terraform-full" \
        --resources "$RESOURCES_TF" | tee -a "$RESULTS"
    if [[ "$TF_SUBSET" == 1 ]]; then
        proxy_reset
        run_tf_refresh count-terraform-subset "$EP" -target=aws_vpc.bench -target=aws_security_group.bench
        proxy_counts >"$LOG_DIR/count-terraform-subset.counts.json"
        say "terraform refresh (VPCs+SGs) via proxy: ${SECS}s"
        python3 "$SYNC_PY" counts --file "$LOG_DIR/count-terraform-subset.counts.json" --label "count-terraform-subset" \
            --resources "$((VPCS + SGS))" --per "security group=$SGS" | tee -a "$RESULTS"
    fi
    stop_proxy
fi
say ""
say "load average after: $(load_avg)"
say "logs: $LOG_DIR (results.log, memory.log, sync_status.log, *.tf.log, *.counts.json)"
