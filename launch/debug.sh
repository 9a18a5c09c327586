#!/usr/bin/env bash
# One training process, no MPI: the CPU (default) or one GPU, with small
# settings so that a run takes seconds, optionally under gdb. Arguments after
# the options go to `scorch train` and override the defaults below.
#
#   launch/debug.sh                                      # toy MLP, 200 steps, CPU
#   launch/debug.sh --gpu --config configs/vp/cifar10_ddpmpp_continuous.yaml model.nf=32
#   launch/debug.sh --gdb --workdir /tmp/dbg training.n_iters=20
#
# Options:
#   --gpu        use GPU 0 (CUDA_VISIBLE_DEVICES=0 unless set; dist.device=cuda)
#   --gdb        run under gdb (stops where it crashes; add `catch throw` to stop
#                at C++ exceptions)
#   --dry-run    print the command instead of running it
# Defaults (each overridable): --workdir workdir/debug, training.n_iters=200,
# training.batch_size=64, training.log_freq=10, training.snapshot_freq=100,
# training.snapshot_freq_for_preemption=50, training.snapshot_sampling=false
# (sampling at snapshots takes minutes on the CPU; =true draws them),
# dist.device=cpu, data.loader_threads=0 (no reader threads to step through).
# Environment: SCORCH_BIN, the binary (default build/scorch beside this script;
# for readable stacks build one with -DCMAKE_BUILD_TYPE=RelWithDebInfo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

gpu=0 gdb=0 dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1; shift ;;
    --gdb) gdb=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done

bin=${SCORCH_BIN:-$here/../build/scorch}
if [ "$dry_run" = 0 ] && [ ! -x "$bin" ]; then
  echo "launch/debug.sh: scorch binary '$bin' not found; build it (launch/build.sh scorch_cli) or set SCORCH_BIN" >&2
  exit 2
fi

# A launcher's variables would make scorch initialise MPI; this is one process.
for name in $(compgen -e); do
  case "$name" in OMPI_* | PMI_* | PMIX_* | MPI_LOCALNRANKS | SLURM_*) unset "$name" ;; esac
done

# The same workdir resumes; delete it (or pick another) to start over.
has_workdir=0
for a in "$@"; do case "$a" in --workdir | --workdir=*) has_workdir=1 ;; esac; done
cmd=("$bin" train)
[ "$has_workdir" = 1 ] || cmd+=(--workdir "$here/../workdir/debug")

defaults=(training.n_iters=200 training.batch_size=64 training.log_freq=10
          training.snapshot_freq=100 training.snapshot_freq_for_preemption=50
          training.snapshot_sampling=false data.loader_threads=0)
if [ "$gpu" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
  defaults+=(dist.device=cuda)
else
  defaults+=(dist.device=cpu)
fi
# Options (--config, --workdir, --json) and overrides may come in any order;
# overrides are applied left to right, so the caller's win over the defaults.
cmd+=("${defaults[@]}" "$@")
[ "$gdb" = 1 ] && cmd=(gdb -q -ex run --args "${cmd[@]}")

if [ "$dry_run" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
