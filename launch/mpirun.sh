#!/usr/bin/env bash
# Data-parallel training under Open MPI's mpirun: one rank per GPU (all GPUs
# of every host), or -n ranks on the CPU. Everything this script does not know
# goes to `scorch train`, so the command reads like the single-process one:
#
#   launch/mpirun.sh --config configs/vp/cifar10_ddpmpp_continuous.yaml --workdir runs/c10
#   launch/mpirun.sh --hostfile hosts -- --workdir runs/c10 training.batch_size=256
#   launch/mpirun.sh -n 2 --workdir /tmp/toy training.n_iters=2000     # CPU, no GPU needed
#
# Options (before the scorch arguments; `--` ends them):
#   -n, --np N            ranks (default: the hostfile's slots, else one per GPU
#                         that nvidia-smi lists on this host, else 1)
#   --hostfile FILE       Open MPI hostfile, one line per host: `node01 slots=8`
#                         (slots = GPUs); ranks fill each host's slots in order
#   --mpirun-arg ARG      one more argument for mpirun (repeatable), e.g.
#                         --mpirun-arg=--mca --mpirun-arg=pml --mpirun-arg=ucx
#   --dry-run             print the mpirun command line instead of running it
# Environment:
#   SCORCH_BIN               the scorch binary (default build/scorch beside this script)
#   SCORCH_MPIRUN            the mpirun to use (default: mpirun on PATH)
#   SCORCH_PROM_TARGETS_DIR  a Prometheus file_sd directory: rank 0 writes this
#                            run's targets there (monitor.targets_file, with
#                            monitor.enabled=true unless you set it)
# Exported to every rank: SCORCH_*, NCCL_*, UCX_*, HDF5_*, OMP_NUM_THREADS,
# CUDA_VISIBLE_DEVICES, PATH, LD_LIBRARY_PATH (whichever are set).
# Exit status: that of `scorch train` (75 = preempted: run the same command
# again to resume), with one mapping: a rank (or mpirun) ended by SIGUSR2 or
# SIGTERM before this run wrote a checkpoint exits 75 too, since nothing was
# lost (exit 140/143 would look like a failure to a requeue loop).
#
# Preemption signals. A SIGUSR2 or SIGTERM sent to this script is passed on
# to mpirun as SIGUSR2, which mpirun forwards to every rank (mpirun's own
# SIGTERM handling kills the ranks before they can save a snapshot). The
# script waits until mpirun handles SIGUSR2 and has started a rank that
# blocks or holds it (at most 10 s) before passing it on: earlier, mpirun
# would die of it, or forward it to no rank or to a rank that dies of it.
# SIGINT (Ctrl-C) is left to mpirun, which the terminal signals too; a
# SIGINT sent to this script alone is passed on. Each rank starts as
# `env --block-signal=USR1,USR2,TERM,INT,HUP,QUIT,XCPU scorch train ...`
# (the signals `scorch` holds from the first line of main, see
# src/core/signals.h): a signal that reaches a rank while the loader maps
# LibTorch, before main, stays pending and is held then, instead of killing
# the rank. The block is per rank because Open MPI unblocks every signal in
# the processes it starts.
set -euo pipefail
# Preemption signals from the start; they are passed on once mpirun runs.
received=0 forwarded=0 interrupted=0 pid=""
names=()
on_signal() {
  received=$((received + 1))
  names+=("$1")
  [ -z "$pid" ] || forward
}
trap 'on_signal USR2' USR2
trap 'on_signal TERM' TERM
here=$(cd "$(dirname "$0")" && pwd)

ranks="" hostfile="" dry_run=0
mpirun_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --np) ranks=${2:?"$1 needs a number of ranks"}; shift 2 ;;
    -n=* | --np=*) ranks=${1#*=}; shift ;;
    --hostfile) hostfile=${2:?"--hostfile needs a file"}; shift 2 ;;
    --hostfile=*) hostfile=${1#*=}; shift ;;
    --mpirun-arg) mpirun_extra+=("${2:?"--mpirun-arg needs a value"}"); shift 2 ;;
    --mpirun-arg=*) mpirun_extra+=("${1#*=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done

die() { echo "launch/mpirun.sh: $*" >&2; exit 2; }
[ -z "$ranks" ] || [[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive number of ranks, got '$ranks'"
[ -z "$hostfile" ] || [ -r "$hostfile" ] || die "--hostfile '$hostfile' is not a readable file"

bin=${SCORCH_BIN:-$here/../build/scorch}
mpirun_bin=${SCORCH_MPIRUN:-mpirun}
command -v "$mpirun_bin" >/dev/null || die "'$mpirun_bin' not found (Debian: apt-get install openmpi-bin)"
[ "$dry_run" = 1 ] || [ -x "$bin" ] || die "scorch binary '$bin' not found; build it (launch/build.sh scorch_cli) or set SCORCH_BIN"

# GPUs this host can use: CUDA_VISIBLE_DEVICES narrows what nvidia-smi lists.
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && [ "$gpus" -gt 0 ]; then
    visible=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c . || true)
    [ "$visible" -lt "$gpus" ] && gpus=$visible
  fi
fi

cmd=("$mpirun_bin")
[ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
if [ -n "$hostfile" ]; then
  cmd+=(--hostfile "$hostfile")
  [ -n "$ranks" ] && cmd+=(-np "$ranks")
else
  if [ -z "$ranks" ]; then
    ranks=$((gpus > 0 ? gpus : 1))
    [ "$gpus" = 0 ] && echo "launch/mpirun.sh: no GPU found; 1 CPU rank (use -n N for more)" >&2
  fi
  cmd+=(-np "$ranks")
  # CPU runs may ask for more ranks than cores (tests, debugging).
  [ "$gpus" = 0 ] && cmd+=(--oversubscribe)
fi
# Ranks run LibTorch thread pools: binding each to one core (Open MPI's default
# for np <= 2) would serialise them. Fill each host before the next.
cmd+=(--bind-to none --map-by slot)
# openib is superseded by UCX in Open MPI 4 and only prints warnings.
cmd+=(--mca btl '^openib')

# NCCL: warnings and errors only, unless the caller asked for more.
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
for name in $(compgen -e); do
  case "$name" in
    SCORCH_* | NCCL_* | UCX_* | HDF5_* | OMP_NUM_THREADS | CUDA_VISIBLE_DEVICES | PATH | LD_LIBRARY_PATH)
      cmd+=(-x "$name") ;;
  esac
done
cmd+=("${mpirun_extra[@]}")

# Scorch arguments; the Prometheus targets file goes last unless given.
args=("$@")
if [ -n "${SCORCH_PROM_TARGETS_DIR:-}" ]; then
  has() { local a; for a in "${args[@]}"; do [[ "$a" == "$1"=* ]] && return 0; done; return 1; }
  run_name="scorch-${SLURM_JOB_ID:-$(hostname -s)-$$}"
  has monitor.targets_file || args+=("monitor.targets_file=$SCORCH_PROM_TARGETS_DIR/$run_name.json")
  has monitor.enabled || args+=("monitor.enabled=true")
fi
# The signals scorch holds (src/core/signals.cpp's table), blocked from
# before exec until main() holds them (coreutils >= 8.31 has --block-signal).
held_signals=USR1,USR2,TERM,INT,HUP,QUIT,XCPU
if env --block-signal=USR2 true 2>/dev/null; then
  cmd+=(env "--block-signal=$held_signals")
else
  echo "launch/mpirun.sh: env(1) has no --block-signal (coreutils < 8.31): a preemption" \
    "signal that reaches a rank before its main() ends it" >&2
fi
cmd+=("$bin" train "${args[@]}")

if [ "$dry_run" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi

log() { echo "launch/mpirun.sh: $*" >&2; }

# The workdir whose checkpoints tell whether this run wrote any (scorch
# train's default is ./workdir).
workdir=workdir
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --workdir) [ $((i + 1)) -lt ${#args[@]} ] && workdir=${args[i + 1]} ;;
    --workdir=*) workdir=${args[i]#*=} ;;
  esac
done
started=$(date +%s.%N)
wrote_checkpoint() {  # a complete checkpoint (renamed into place) newer than the launch
  [ -n "$(find "$workdir/checkpoints" -maxdepth 1 -name 'checkpoint_*.pt' -newermt "@$started" \
    -print -quit 2>/dev/null)" ]
}

# mpirun runs in the background so that this shell can take signals (bash
# runs a trap only between commands, and `wait` returns for one).
set +e
on_interrupt() {
  interrupted=$((interrupted + 1))
  # Ctrl-C reaches mpirun as well when this script's process group is the
  # terminal's foreground group; only a SIGINT sent to this script alone is
  # passed on (mpirun kills the job at once on a second one).
  local stat
  if read -r stat <"/proc/$$/stat" 2>/dev/null; then
    read -r -a stat <<<"${stat##*) }"  # state ppid pgrp session tty tpgid ...
    [ "${stat[2]}" = "${stat[5]}" ] && return
  fi
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null
}
trap on_interrupt INT

# mpirun can pass SIGUSR2 on once it takes it (a handler, SigCgt) and has a
# child that takes it without dying: a local rank past env's block (or
# scorch holding it), or a daemon for other hosts (ssh, srun). Earlier, mpirun
# dies of it, forwards it to no rank, or to a rank that dies of it.
masks() {  # masks PID: its state, SigBlk and SigCgt from /proc
  awk '$1 == "State:" {s = $2} $1 == "SigBlk:" {b = $2} $1 == "SigCgt:" {c = $2}
    END {print s, b, c}' "/proc/$1/status" 2>/dev/null
}
has_usr2() { [ -n "$1" ] && (((16#$1 >> ($(kill -l USR2) - 1)) & 1)); }
mpirun_ready() {
  local state blocked caught kids="" f c
  read -r state blocked caught < <(masks "$pid")
  [ -n "$state" ] && [ "$state" != Z ] || return 0  # no /proc, or mpirun is gone
  has_usr2 "$caught" || return 1
  for f in /proc/"$pid"/task/*/children; do
    [ -r "$f" ] || return 0
    kids+=" $(<"$f")"
  done
  for c in $kids; do
    read -r state blocked caught < <(masks "$c")
    case "$(cat "/proc/$c/comm" 2>/dev/null)" in
      "" | mpirun) ;;  # gone, or forked and not yet exec'd
      env) has_usr2 "$blocked" && return 0 ;;
      *) return 0 ;;
    esac
  done
  return 1
}
forward() {  # pass each signal received so far on to mpirun, as SIGUSR2
  local limit=$((SECONDS + 10))
  while [ "$forwarded" -lt "$received" ]; do
    if mpirun_ready || [ "$SECONDS" -ge "$limit" ]; then
      log "got SIG${names[forwarded]}; passing SIGUSR2 to mpirun (the ranks save a snapshot and exit 75)"
      kill -USR2 "$pid" 2>/dev/null || true
      forwarded=$((forwarded + 1))
    else
      sleep 0.02
    fi
  done
}

# The subshell gives SIGINT and SIGQUIT back their default actions (bash
# ignores them in background commands) and becomes mpirun; stdin stays the
# terminal's (not /dev/null) as with a foreground mpirun.
(
  trap - INT QUIT
  exec "${cmd[@]}"
) <&0 &
pid=$!

# `wait` returns early (status > 128) when a trapped signal arrives: wait
# again until mpirun itself has exited and its status is known.
rc=""
while :; do
  forward
  before=$((received + interrupted))
  wait "$pid"
  status=$?
  [ "$status" = 127 ] && [ -n "$rc" ] && break  # collected already
  rc=$status
  [ "$status" -gt 128 ] && [ "$((received + interrupted))" != "$before" ] && continue
  break
done

# A rank (or mpirun) ended by a preemption signal before it could hold it,
# with no checkpoint written by this run: nothing was lost, so it counts as
# preempted, like a rank that held the signal and exited 75. Not after a
# SIGINT: mpirun ends the ranks with SIGTERM then.
if [ "$interrupted" = 0 ] && { [ "$rc" = $((128 + $(kill -l USR2))) ] || [ "$rc" = $((128 + $(kill -l TERM))) ]; } &&
  ! wrote_checkpoint; then
  log "a rank was ended by SIG$(kill -l "$rc") (exit $rc) before this run wrote a checkpoint:" \
    "nothing was lost; exiting 75 (preempted: run the same command again to resume)"
  rc=75
fi
exit "$rc"
