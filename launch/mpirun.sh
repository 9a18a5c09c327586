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
# Exit status: that of `scorch train` (75 = preempted after a snapshot: run
# the same command again to resume). mpirun forwards SIGUSR2 to every rank.
set -euo pipefail
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
cmd+=("$bin" train "${args[@]}")

if [ "$dry_run" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
