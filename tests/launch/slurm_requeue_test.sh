#!/usr/bin/env bash
# End-to-end test of launch/slurm.sbatch on a real single-node Slurm cluster
# started here: munged, slurmctld and slurmd on localhost with a temporary
# config and state directory (no cgroups, two fake GPUs so that the script's
# --gpus-per-task=1 is honoured). First a job is sent SIGUSR2 while its ranks
# are still starting: they exit 75 before their first step, writing nothing,
# and the script requeues it. Then it submits a 2-rank CPU training job (on
# dist.backend=gloo), sends the batch shell SIGUSR2 (as `#SBATCH --signal=B:USR2@90` would) once the job
# has made progress, and checks that the ranks save a snapshot and exit 75,
# that the script requeues the job, that the rerun resumes from the snapshot,
# and that the job completes with a final checkpoint at training.n_iters that
# torch.load reads. Every daemon it started is stopped on exit.
#
#   tests/launch/slurm_requeue_test.sh BUILD/scorch
#   SCORCH_TEST_LAUNCHER=mpirun tests/launch/slurm_requeue_test.sh BUILD/scorch
#
# Needs root, slurm-wlm, munge and /usr/bin/python3 with torch
# (launch/install_deps.sh). A daemon that does not start fails the test.
set -uo pipefail

bin=$(realpath "${1:?usage: slurm_requeue_test.sh SCORCH_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
n_iters=${SCORCH_TEST_N_ITERS:-2000}
deadline=$((SECONDS + ${SCORCH_TEST_BUDGET_S:-330}))

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
note() { echo "[slurm-test $(date +%T)] $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (slurmd runs jobs as their owner and must be root)"
[ -x "$bin" ] || fail "scorch binary '$bin' not found"
for tool in munged mungekey slurmctld slurmd sbatch scontrol squeue sinfo scancel; do
  command -v "$tool" >/dev/null ||
    fail "'$tool' not found: install slurm-wlm and munge (launch/install_deps.sh)"
done
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  fail "/usr/bin/python3 cannot import torch (Debian package python3-torch)"

tmp=$(mktemp -d /tmp/scorch_slurm_test.XXXXXX)
chmod 755 "$tmp"  # munged insists that its socket's directory be searchable by all
stepds_before=" $(pgrep -x slurmstepd | tr '\n' ' ') "
job=""

dump_logs() {
  for f in "$tmp"/slurmctld.log "$tmp"/slurmd.log "$tmp"/munged.log "$tmp"/job-*.out; do
    [ -f "$f" ] || continue
    echo "----- $f (last 40 lines)"
    tail -n 40 "$f"
  done
}

stop_pidfile() {  # stop_pidfile FILE NAME: SIGTERM, then SIGKILL after 10 s
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "[slurm-test] $2 (pid $pid) ignored SIGTERM; killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" != 0 ]; then dump_logs >&2; fi
  if [ -n "$job" ] && [ -f "$tmp/slurmctld.pid" ]; then
    scancel "$job" 2>/dev/null
    for _ in $(seq 1 50); do
      [ -z "$(squeue -h -j "$job" -t all -o %T 2>/dev/null | grep -vE 'COMPLETED|CANCELLED|FAILED')" ] && break
      sleep 0.2
    done
  fi
  stop_pidfile "$tmp/slurmd.pid" slurmd
  stop_pidfile "$tmp/slurmctld.pid" slurmctld
  stop_pidfile "$tmp/munged.pid" munged
  # Step daemons of this cluster that outlived slurmd: new since the start
  # and holding a file of $tmp open (their log).
  for pid in $(pgrep -x slurmstepd); do
    [[ "$stepds_before" == *" $pid "* ]] && continue
    ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$tmp/" && kill -9 "$pid" 2>/dev/null
  done
  if [ -n "${SCORCH_TEST_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local limit=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$limit" ] || fail "timed out after waiting for $what"
    [ "$SECONDS" -lt "$deadline" ] || fail "test budget spent while waiting for $what"
    sleep 0.5
  done
}

# --- munge -------------------------------------------------------------------
mungekey --create --keyfile="$tmp/munge.key" || fail "mungekey could not create a key"
munged --key-file="$tmp/munge.key" --socket="$tmp/munge.sock" --pid-file="$tmp/munged.pid" \
  --log-file="$tmp/munged.log" --seed-file="$tmp/munged.seed" ||
  fail "munged did not start (log: $(tail -n 3 "$tmp/munged.log" 2>/dev/null))"
munge -S "$tmp/munge.sock" -n | unmunge -S "$tmp/munge.sock" >/dev/null ||
  fail "munged runs but does not answer on $tmp/munge.sock"
note "munged up"

# --- slurm -------------------------------------------------------------------
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
mkdir -p "$tmp/state" "$tmp/spool"
cat >"$tmp/slurm.conf" <<EOF
ClusterName=scorchtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
JobRequeue=1
KillWait=10
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# Two "GPUs" backed by harmless character devices (slurmd wants devices).
cat >"$tmp/gres.conf" <<EOF
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -f "$SLURM_CONF" -i || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N localhost || fail "slurmd did not start"
node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }
wait_for 30 "the node to come up idle (slurmctld and slurmd)" node_idle
note "slurmctld (port $ctld_port) and slurmd (port $slurmd_port) up; node idle"

# --- a job preempted during start-up -----------------------------------------
# SIGUSR2 while the ranks are still setting up (a large model): every rank
# exits 75 before its first step, writing nothing, and the script requeues
# the job, as it does for a preemption later on.
job_state() { scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_field() { scontrol show job "$job" 2>/dev/null | grep -o "$1=[^ ]*" | head -n 1 | cut -d= -f2; }
last_step() { [ -f "$run/log.jsonl" ] && grep -o '"step":[0-9]*' "$run/log.jsonl" | tail -n 1 | cut -d: -f2; }

early_run=$tmp/early
job=$(cd "$tmp" && sbatch --parsable --ntasks-per-node=2 --cpus-per-task=1 \
  --output="$tmp/job-%j.out" \
  --export="ALL,SCORCH_BIN=$bin,OMP_NUM_THREADS=1,SCORCH_LAUNCHER=${SCORCH_TEST_LAUNCHER:-srun}" \
  "$src/launch/slurm.sbatch" --config "$src/configs/vp/cifar10_ddpmpp_continuous.yaml" \
  --workdir "$early_run" data.dataset=synthetic_images training.batch_size=2 training.n_iters=1 \
  training.snapshot_sampling=false) || fail "sbatch refused launch/slurm.sbatch (start-up job)"
job=${job%%;*}
early_out=$tmp/job-$job.out
note "submitted start-up job $job"
starting() {
  grep -q "resolved config" "$early_out" 2>/dev/null && return 0
  case "$(job_state)" in PENDING | CONFIGURING | RUNNING) return 1 ;; esac
  fail "start-up job $job ended ($(job_state)) before its ranks started"
}
wait_for 90 "start-up job $job to start its ranks" starting
scancel --signal=USR2 --batch "$job" || fail "scancel --signal=USR2 --batch failed"
note "sent SIGUSR2 to start-up job $job while its ranks set up"
early_requeued() { [ "$(job_field Restarts)" = 1 ] && [ "$(job_state)" = PENDING ]; }
wait_for 60 "start-up job $job to be requeued" early_requeued
grep -q 'preempted by signal SIGUSR2 before the first step' "$early_out" ||
  fail "no rank reported stopping before the first step ($early_out)"
grep -q 'requeueing job' "$early_out" || fail "the script did not requeue after exit 75 ($early_out)"
[ -z "$(ls -A "$early_run/checkpoints" 2>/dev/null)" ] && [ ! -e "$early_run/config.yaml" ] ||
  fail "the start-up job wrote files: $(ls -R "$early_run")"
scancel "$job"
for _ in $(seq 1 50); do
  case "$(job_state)" in CANCELLED | COMPLETED | FAILED | "") break ;; esac
  sleep 0.2
done
note "start-up job $job stopped before its first step, wrote nothing and was requeued"

# --- the job -----------------------------------------------------------------
run=$tmp/run
job=$(cd "$tmp" && sbatch --parsable --ntasks-per-node=2 --cpus-per-task=1 \
  --output="$tmp/job-%j.out" \
  --export="ALL,SCORCH_BIN=$bin,OMP_NUM_THREADS=1,SCORCH_LAUNCHER=${SCORCH_TEST_LAUNCHER:-srun}" \
  "$src/launch/slurm.sbatch" --workdir "$run" seed=11 training.n_iters="$n_iters" \
  training.batch_size=64 training.log_freq=10 training.snapshot_freq="$n_iters" \
  training.snapshot_freq_for_preemption="$n_iters" training.snapshot_sampling=false \
  dist.backend=gloo) ||
  fail "sbatch refused launch/slurm.sbatch"
job=${job%%;*}
out=$tmp/job-$job.out
note "submitted job $job"

progressed() {
  local s
  s=$(last_step)
  [ -n "$s" ] && [ "$s" -ge 30 ] && return 0
  case "$(job_state)" in PENDING | CONFIGURING | RUNNING) return 1 ;; esac
  fail "job $job ended ($(job_state)) before it made progress"
}
wait_for 90 "job $job to log step 30" progressed
step_at_signal=$(last_step)
[ "$step_at_signal" -lt "$n_iters" ] || fail "training finished before the signal; raise n_iters"
scancel --signal=USR2 --batch "$job" || fail "scancel --signal=USR2 --batch failed"
note "sent SIGUSR2 to the batch shell at logged step $step_at_signal"

# Requeued: Slurm holds a requeued job until its credential has expired
# (120 s by default); let it start at once.
requeued() { [ "$(job_field Restarts)" = 1 ] && [ "$(job_state)" = PENDING ]; }
wait_for 60 "job $job to be requeued" requeued
scontrol update JobId="$job" StartTime=now || fail "scontrol update StartTime=now failed"
note "job $job requeued; released"

finished() {
  case "$(job_state)" in
    COMPLETED) return 0 ;;
    FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
      fail "job $job ended $(job_state) (exit $(job_field ExitCode))" ;;
  esac
  return 1
}
wait_for 150 "job $job to complete after the requeue" finished
note "job $job completed"

# --- checks ------------------------------------------------------------------
[ "$(job_field Restarts)" = 1 ] || fail "expected 1 restart, Slurm counts $(job_field Restarts)"
[ "$(job_field ExitCode)" = 0:0 ] || fail "final exit code $(job_field ExitCode), expected 0:0"
grep -q 'got SIGUSR2' "$out" || fail "the batch shell did not report SIGUSR2 ($out)"
preempt_line=$(grep -m 1 'preempted by signal SIGUSR2: stopped at step' "$out") ||
  fail "no rank reported stopping on SIGUSR2 with a snapshot ($out)"
stop_step=$(sed -E 's/.*stopped at step ([0-9]+).*/\1/' <<<"$preempt_line")
grep -q 'requeueing job' "$out" || fail "the script did not requeue after exit 75 ($out)"
grep -q "restart 1:" "$out" || fail "the requeued run did not start ($out)"
grep -q "resumed from .*checkpoint_0*${stop_step}.pt at step ${stop_step}" "$out" ||
  fail "the rerun did not resume from the snapshot of step $stop_step ($out)"
grep -q 'training complete' "$out" || fail "the rerun did not complete ($out)"
[ "$stop_step" -ge "$step_at_signal" ] && [ "$stop_step" -lt "$n_iters" ] ||
  fail "snapshot step $stop_step not in [$step_at_signal, $n_iters)"
[ "$(last_step)" = "$n_iters" ] || fail "log.jsonl ends at step $(last_step), expected $n_iters"

final=$(printf '%s/checkpoints/checkpoint_%08d.pt' "$run" "$n_iters")
[ -f "$final" ] || fail "no final checkpoint $final (have: $(ls "$run/checkpoints"))"
/usr/bin/python3 - "$final" "$n_iters" "$run/log.jsonl" <<'EOF' || fail "the final checkpoint or log.jsonl is not valid"
import json, sys, torch
ckpt = torch.load(sys.argv[1])
n_iters = int(sys.argv[2])
assert int(ckpt["step"]) == n_iters, f"step {ckpt['step']} != {n_iters}"
assert ckpt["world_size"] == 2, f"world_size {ckpt['world_size']}"
assert all(torch.isfinite(t).all() for t in ckpt["model"].values()), "non-finite weights"
# One uninterrupted log: every 10th step once, the preempted run's lines past
# its snapshot dropped by the resumed run.
steps = [r["step"] for r in map(json.loads, open(sys.argv[3])) if "loss" in r]
assert steps == list(range(10, n_iters + 1, 10)), f"log.jsonl steps {steps[:5]}..{steps[-5:]}"
EOF
note "preempted at step $stop_step, requeued, resumed, finished at step $n_iters; checkpoint loads"
echo "PASS: slurm_requeue_test"
