#!/usr/bin/env bash
# Preemption signals at random moments of a run's start-up never lose the
# run: 2-rank toy runs of launch/mpirun.sh are each sent SIGUSR2 at a moment
# drawn uniformly from 0 to 2 s after the launch, alternately to the launcher
# (as Slurm's --signal=B:USR2 reaches the batch shell, which passes it on) and
# to every rank process directly (as Slurm may signal all processes of a job
# step) -- before main(), while the loader maps LibTorch, during set-up or
# during training. Every run must exit 0 or 75 (never 140, killed by the
# signal, which a requeue loop counts as a failure); each preempted workdir is
# run again to completion, and every final checkpoint must equal, tensor for
# tensor, that of an uninterrupted run. First, a deterministic check of the
# mechanism: `scorch train` started with SIGUSR2 blocked and pending (as the
# launchers start each rank) holds it and exits 75 before its first step.
#
#   tests/launch/startup_preemption_test.sh BUILD/scorch
#   SCORCH_TEST_SEED=1234 tests/launch/startup_preemption_test.sh BUILD/scorch   # replay
#
# Environment: SCORCH_TEST_SEED (default: random, printed), SCORCH_TEST_RUNS
# (30), SCORCH_TEST_MAX_DELAY_MS (2000), SCORCH_TEST_KEEP=1 keeps the workdirs.
# Needs mpirun and /usr/bin/python3 with torch (launch/install_deps.sh).
set -uo pipefail

bin=$(realpath "${1:?usage: startup_preemption_test.sh SCORCH_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
runs=${SCORCH_TEST_RUNS:-30}
max_delay_ms=${SCORCH_TEST_MAX_DELAY_MS:-2000}
seed=${SCORCH_TEST_SEED:-$((($(date +%s%N) / 1000) % 1000000))}
tmp=$(mktemp -d /tmp/scorch_startup_preemption.XXXXXX)
cleanup() {
  if [ -n "${SCORCH_TEST_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
export SCORCH_BIN=$bin OMP_NUM_THREADS=1
failures=0

note() { echo "[startup-preemption $(date +%T)] $*"; }
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
[ -x "$bin" ] || { echo "FAIL: scorch binary '$bin' not found" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  { echo "FAIL: /usr/bin/python3 cannot import torch (Debian package python3-torch)" >&2; exit 1; }
note "seed $seed (replay: SCORCH_TEST_SEED=$seed), $runs runs, signal 0-$max_delay_ms ms after the launch"
RANDOM=$seed

# The toy, short: a few seconds a run on two CPU cores, a checkpoint every
# 100 steps so that a signal during training finds one to resume from.
n_iters=400
train_args=(--config "$src/configs/toy/eight_gaussians_vp.yaml" seed=5 training.n_iters=$n_iters
  training.batch_size=64 training.log_freq=100 training.snapshot_freq=100
  training.snapshot_freq_for_preemption=100 training.snapshot_sampling=false)
final_name=$(printf 'checkpoint_%08d.pt' "$n_iters")

# --- the mechanism: a signal pending across exec is held ----------------------
held=USR1,USR2,TERM,INT,HUP,QUIT,XCPU
env --block-signal=$held bash -c 'kill -USR2 $$; exec "$0" train "$@"' "$bin" \
  --workdir "$tmp/pending" "${train_args[@]}" >"$tmp/pending.log" 2>&1
rc=$?
[ "$rc" = 75 ] || fail "scorch started with SIGUSR2 pending: exit $rc, expected 75 ($(tail -n 3 "$tmp/pending.log"))"
grep -q "preempted by signal SIGUSR2 before the first step" "$tmp/pending.log" ||
  fail "scorch started with SIGUSR2 pending did not stop before its first step ($(tail -n 3 "$tmp/pending.log"))"
[ -z "$(ls -A "$tmp/pending/checkpoints" 2>/dev/null)" ] || fail "scorch started with SIGUSR2 pending wrote a checkpoint"
note "pending SIGUSR2 across exec: exit $rc, held and stopped before the first step"

# --- the reference: an uninterrupted run --------------------------------------
start=$SECONDS
bash "$src/launch/mpirun.sh" -n 2 --workdir "$tmp/ref" "${train_args[@]}" >"$tmp/ref.log" 2>&1
rc=$?
if [ "$rc" != 0 ] || [ ! -f "$tmp/ref/checkpoints/$final_name" ]; then
  echo "FAIL: the reference run exited $rc without $final_name ($(tail -n 5 "$tmp/ref.log"))" >&2
  exit 1
fi
note "reference run: $((SECONDS - start)) s"

# --- the signalled runs -------------------------------------------------------
children() { cat /proc/"$1"/task/*/children 2>/dev/null; }
ranks_of() {  # the rank processes of the mpirun that launcher $1 started
  local c
  for c in $(children "$1"); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = mpirun ] && children "$c"
  done
}
catches_usr2() {  # the process has a handler for SIGUSR2 (the launcher's trap is set)
  local mask
  mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null)
  [ -n "$mask" ] && (((16#$mask >> 11) & 1))
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

declare -A outcome=()
preempted=()
for ((i = 1; i <= runs; i++)); do
  delay=$((RANDOM % (max_delay_ms + 1)))
  if ((i % 2)); then mode=launcher; else mode=ranks; fi
  w=$tmp/run$i
  t0=$(now_ms)
  bash "$src/launch/mpirun.sh" -n 2 --workdir "$w" "${train_args[@]}" >"$w.log" 2>&1 &
  launcher=$!
  left=$((t0 + delay - $(now_ms)))
  [ "$left" -gt 0 ] && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
  what=""
  if [ "$mode" = launcher ]; then
    # Only bash's own start-up (a few ms, before the script's first line)
    # cannot hold a signal: wait for the trap there.
    until catches_usr2 "$launcher" || ! kill -0 "$launcher" 2>/dev/null; do sleep 0.001; done
    kill -USR2 "$launcher" 2>/dev/null && what="the launcher"
  else
    pids=$(ranks_of "$launcher")
    for p in $pids; do kill -USR2 "$p" 2>/dev/null && what+=" $p"; done
    what=${what:+ranks$what}
  fi
  wait "$launcher"
  rc=$?
  at=$(($(now_ms) - t0))
  how=""  # what the ranks and the launcher made of it
  if grep -q "a rank was ended by" "$w.log"; then
    how="; a rank died of it before holding it, nothing written: counted as preempted"
  elif grep -q "before the first step" "$w.log"; then
    how="; held, stopped before the first step"
  elif step=$(grep -o -m 1 "stopped at step [0-9]*" "$w.log"); then
    how="; snapshot at step ${step##* }"
  fi
  note "run $i: SIGUSR2 at $delay ms to ${what:-nobody (no rank yet or the run had ended)}: exit $rc after $at ms$how"
  outcome[$rc]=$((${outcome[$rc]:-0} + 1))
  case "$rc" in
    0) ;;
    75) preempted+=("$i") ;;
    *) fail "run $i (seed $seed, SIGUSR2 at $delay ms to $mode) exited $rc ($(tail -n 4 "$w.log"))" ;;
  esac
done
summary=""
for rc in "${!outcome[@]}"; do summary+=" exit $rc: ${outcome[$rc]};"; done
note "signalled runs:$summary resuming ${#preempted[@]} preempted runs"
[ "${outcome[75]:-0}" -gt 0 ] || fail "no run was preempted: the signals came too late to matter"

# --- resume every preempted run to the end ------------------------------------
# Two at a time (no signals here, so timing does not matter; a run leaves the
# cores idle for much of its start-up and shutdown).
resume() {  # resume I: run workdir I again until it completes; its exit status
  local w=$tmp/run$1 rc=75 attempt
  for attempt in 1 2; do
    bash "$src/launch/mpirun.sh" -n 2 --workdir "$w" "${train_args[@]}" >>"$w.log" 2>&1
    rc=$?
    [ "$rc" = 75 ] || break
  done
  return "$rc"
}
start=$SECONDS
for ((k = 0; k < ${#preempted[@]}; k += 2)); do
  pids=()
  for i in "${preempted[@]:k:2}"; do
    resume "$i" &
    pids+=("$!:$i")
  done
  for p in "${pids[@]}"; do
    wait "${p%%:*}"
    rc=$?
    i=${p#*:}
    [ "$rc" = 0 ] || fail "run $i did not complete when run again (exit $rc; $(tail -n 4 "$tmp/run$i.log"))"
  done
done
note "resumed ${#preempted[@]} runs in $((SECONDS - start)) s"

# --- every final checkpoint equals the reference ------------------------------
finals=()
for ((i = 1; i <= runs; i++)); do
  [ -f "$tmp/run$i/checkpoints/$final_name" ] || { fail "run $i has no $final_name"; continue; }
  finals+=("$tmp/run$i/checkpoints/$final_name")
done
/usr/bin/python3 - "$tmp/ref/checkpoints/$final_name" "${finals[@]}" <<'EOF' || fail "final checkpoints differ from the reference"
import sys, torch

def same(a, b, path):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k], f"{path}.{k}") for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, f"{path}[{j}]") for j, (x, y) in enumerate(zip(a, b)))
    return a == b

ref = torch.load(sys.argv[1])
bad = 0
for path in sys.argv[2:]:
    ckpt = torch.load(path)
    diff = [k for k in ref if k not in ckpt or not same(ref[k], ckpt[k], k)]
    if diff or ckpt.keys() != ref.keys():
        print(f"{path}: differs from the reference in {diff or sorted(set(ckpt) ^ set(ref))}")
        bad += 1
print(f"{len(sys.argv) - 2 - bad} of {len(sys.argv) - 2} final checkpoints equal the reference "
      f"(keys: {', '.join(sorted(ref))})")
sys.exit(1 if bad else 0)
EOF

if [ "$failures" = 0 ]; then
  note "PASS (seed $seed)"
else
  echo "FAIL: $failures failure(s); replay with SCORCH_TEST_SEED=$seed" >&2
  exit 1
fi
