#!/usr/bin/env bash
# launch/mpirun.sh and launch/debug.sh: the command lines they build (ranks,
# root flag, exported environment, Prometheus targets file, defaults that the
# caller's overrides replace) and real CPU runs: 2 ranks through mpirun.sh
# (to the end, and stopped by a preemption signal during start-up), and one
# process through debug.sh even inside a launcher's environment.
#
#   tests/launch/launch_scripts_test.sh BUILD/scorch
set -uo pipefail

bin=$(realpath "${1:?usage: launch_scripts_test.sh SCORCH_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/scorch_launch_test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export SCORCH_BIN=$bin
failures=0 passes=0

check() {  # check WHAT COMMAND...: one assertion
  local what=$1
  shift
  if "$@"; then
    passes=$((passes + 1))
  else
    echo "FAIL: $what" >&2
    failures=$((failures + 1))
  fi
}
contains() { [[ "$1" == *"$2"* ]]; }
ckpt_field() {  # ckpt_field FILE KEY: a checkpoint entry, read by torch.load
  /usr/bin/python3 -c 'import sys, torch; print(torch.load(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# --- mpirun.sh: the command line ---------------------------------------------
line=$(SCORCH_PROM_TARGETS_DIR=$tmp/targets SCORCH_FOO=1 NCCL_ALGO=Ring \
  bash "$src/launch/mpirun.sh" --dry-run -n 3 --mpirun-arg=--tag-output -- \
  --workdir "$tmp/w" training.n_iters=5)
check "mpirun.sh: -np 3 ($line)" contains "$line" "-np 3 "
check "mpirun.sh: exports SCORCH_* and NCCL_*" contains "$line" "-x SCORCH_FOO"
check "mpirun.sh: exports NCCL_ALGO" contains "$line" "-x NCCL_ALGO"
check "mpirun.sh: extra mpirun argument" contains "$line" "--tag-output"
check "mpirun.sh: targets file in SCORCH_PROM_TARGETS_DIR" contains "$line" "monitor.targets_file=$tmp/targets/scorch-"
check "mpirun.sh: monitoring enabled with a targets dir" contains "$line" "monitor.enabled=true"
check "mpirun.sh: scorch train and its arguments last" contains "$line" "$bin train --workdir $tmp/w training.n_iters=5"
check "mpirun.sh: each rank starts with the held signals blocked" \
  contains "$line" "env --block-signal=USR1\\,USR2\\,TERM\\,INT\\,HUP\\,QUIT\\,XCPU $bin train"
if [ "$(id -u)" = 0 ]; then
  check "mpirun.sh: --allow-run-as-root as root" contains "$line" "--allow-run-as-root"
fi
line=$(SCORCH_PROM_TARGETS_DIR=$tmp/t bash "$src/launch/mpirun.sh" --dry-run -n 2 monitor.enabled=false)
check "mpirun.sh: the caller's monitor.enabled wins" bash -c '[[ "$1" != *monitor.enabled=true* ]]' _ "$line"
echo "node01 slots=4" >"$tmp/hosts"
line=$(bash "$src/launch/mpirun.sh" --dry-run --hostfile "$tmp/hosts" --workdir x)
check "mpirun.sh: hostfile passed, slots decide the ranks ($line)" \
  bash -c '[[ "$1" == *"--hostfile $2"* && "$1" != *" -np "* ]]' _ "$line" "$tmp/hosts"
bash "$src/launch/mpirun.sh" --dry-run -n zero >/dev/null 2>"$tmp/err"
check "mpirun.sh: a bad -n is exit 2" test $? = 2
check "mpirun.sh: a bad -n is named" grep -q -- "-n must be a positive number" "$tmp/err"

# --- mpirun.sh: a real 2-rank CPU run -----------------------------------------
OMP_NUM_THREADS=1 bash "$src/launch/mpirun.sh" -n 2 --workdir "$tmp/mpi" seed=3 \
  training.n_iters=40 training.batch_size=64 training.log_freq=10 \
  training.snapshot_sampling=false >"$tmp/mpi.log" 2>&1
rc=$?
check "mpirun.sh -n 2 trains to the end (exit $rc; $(tail -n 3 "$tmp/mpi.log"))" test "$rc" = 0
ckpt=$tmp/mpi/checkpoints/checkpoint_00000040.pt
check "mpirun.sh -n 2: final checkpoint" test -f "$ckpt"
check "mpirun.sh -n 2: the checkpoint was written by 2 ranks" test "$(ckpt_field "$ckpt" world_size)" = 2

# --- mpirun.sh: a preemption signal during start-up ----------------------------
# SIGUSR2 to mpirun (which passes it to the ranks) while the ranks are still
# setting up a large model: every rank exits 75 before its first step, with
# nothing written, and the rerun starts from scratch.
wait_for_line() {  # wait_for_line FILE TEXT SECONDS
  local limit=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$limit" ] || return 1
    sleep 0.05
  done
}
OMP_NUM_THREADS=1 bash "$src/launch/mpirun.sh" -n 2 --config "$src/configs/vp/cifar10_ddpmpp_continuous.yaml" \
  --workdir "$tmp/early" data.dataset=synthetic_images training.batch_size=2 training.n_iters=1 \
  training.snapshot_sampling=false >"$tmp/early.log" 2>&1 &
launcher=$!
if wait_for_line "$tmp/early.log" "resolved config" 60; then
  kill -USR2 "$launcher"
  wait "$launcher"
  rc=$?
  check "signal during start-up: exit 75 (got $rc; $(tail -n 3 "$tmp/early.log"))" test "$rc" = 75
  check "signal during start-up: stopped before the first step" \
    grep -q "preempted by signal SIGUSR2 before the first step" "$tmp/early.log"
  check "signal during start-up: no checkpoint written" \
    test -z "$(ls -A "$tmp/early/checkpoints" 2>/dev/null)"
  check "signal during start-up: no config.yaml or log.jsonl written" \
    test ! -e "$tmp/early/config.yaml" -a ! -e "$tmp/early/log.jsonl"
else
  kill "$launcher" 2>/dev/null
  wait "$launcher"
  check "signal during start-up: the ranks started ($(tail -n 5 "$tmp/early.log"))" false
fi

# --- debug.sh -----------------------------------------------------------------
line=$(bash "$src/launch/debug.sh" --dry-run training.n_iters=7)
check "debug.sh: defaults then the caller's override ($line)" \
  bash -c '[[ "$1" == *"training.n_iters=200 "*"training.n_iters=7"* && "$1" == *dist.device=cpu* ]]' _ "$line"
line=$(bash "$src/launch/debug.sh" --dry-run --gdb --workdir /x)
check "debug.sh: --gdb wraps the command" contains "$line" "gdb -q -ex run --args $bin train"
check "debug.sh: the caller's --workdir replaces the default" bash -c '[[ "$1" != *workdir/debug* ]]' _ "$line"
# Launcher variables in the environment must not turn the run into an MPI one.
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 PMIX_RANK=0 \
  bash "$src/launch/debug.sh" --workdir "$tmp/dbg" training.n_iters=30 >"$tmp/dbg.log" 2>&1
rc=$?
check "debug.sh trains to the end (exit $rc; $(tail -n 3 "$tmp/dbg.log"))" test "$rc" = 0
ckpt=$tmp/dbg/checkpoints/checkpoint_00000030.pt
check "debug.sh: final checkpoint at the caller's n_iters" test -f "$ckpt"
check "debug.sh: one process" test "$(ckpt_field "$ckpt" world_size)" = 1
check "debug.sh: batch size default applied" grep -q "batch_size: 64" "$tmp/dbg/config.yaml"

echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
