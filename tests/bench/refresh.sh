#!/usr/bin/env bash
# Re-runs the commands behind every CPU table of tests/README.md ("Measured")
# and prints each table in the README's format (its columns, in Markdown; one
# row per row the bench prints), one section per table, so that a stale
# table is one command from fixed. Needs a build with the tests
# (launch/build.sh: build/scorch and build/tests/bench_*) and, for `recipes`
# and `convert`, Debian's dataset-fashion-mnist. Figures meant for the README
# want a machine with nothing else running; the whole set takes hours on 2
# cores (`recipes`, `checkpointing` and `sharding` the longest).
#
#   tests/bench/refresh.sh               every table, in the README's order
#   tests/bench/refresh.sh NAME ...      the named tables
#   tests/bench/refresh.sh --list        each table's name and its commands; runs nothing
#
# Each table in tests/README.md names the same commands under
# "`tests/bench/refresh.sh NAME` runs:", and tests/house/bench_commands.py
# (House.shape) fails when they differ or a command's binary, flag or file
# no longer exists. Raw outputs, workdirs and datasets go to
# /tmp/scorch_refresh; tests/bench/refresh_format.py turns the outputs into
# the tables. As root, mpirun gets --allow-run-as-root.
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch=/tmp/scorch_refresh

names=(toy recipes loader convert sampler_throughput sampler_quality eval dist step patch
  checkpointing sharding gradients)
declare -A commands
# The toy: the embedded default as command 1 trains it (configs/toy/eight_gaussians_vp.yaml,
# two snapshots), then the quality test's runs (tests/train/trainer_toy_quality_test.cpp).
commands[toy]="build/scorch train --workdir /tmp/scorch_refresh/toy_vp --json
build/scorch train --config configs/toy/eight_gaussians_subvp.yaml --workdir /tmp/scorch_refresh/toy_subvp --json training.snapshot_freq=4000 training.log_freq=1000
build/scorch train --config configs/toy/eight_gaussians_ve.yaml --workdir /tmp/scorch_refresh/toy_ve --json training.snapshot_freq=4000 training.log_freq=1000
build/scorch train --config configs/edm/eight_gaussians_edm.yaml --workdir /tmp/scorch_refresh/toy_edm --json training.snapshot_freq=4000 training.log_freq=1000"
commands[recipes]="tests/bench/fashion_mnist_recipes.sh 1000"
commands[loader]="build/tests/bench_loader"
commands[convert]="build/scorch data convert --from idx --input /usr/share/datasets/fashion-mnist --out /tmp/scorch_refresh/fashion_mnist
build/scorch data verify /tmp/scorch_refresh/fashion_mnist"
commands[sampler_throughput]="build/tests/bench_sampler --table 1 --threads 1"
commands[sampler_quality]="build/tests/bench_sampler --table 2 --threads 1"
commands[eval]="build/tests/bench_eval --num 32"
commands[dist]="mpirun --oversubscribe -np 2 build/tests/bench_dist --steps 40"
commands[step]="build/tests/bench_step --steps 3
build/tests/bench_step --steps 3 --config configs/edm/cifar10_ddpmpp_edm.yaml"
commands[patch]="build/tests/bench_train --configs configs/fashion_mnist/adm.yaml,configs/fashion_mnist/patch16.yaml --batch 32 --steps 5 --precisions fp32 --pc-steps 40 --sample-batch 32 --threads 1 model.nf=32
build/tests/bench_train --configs configs/fashion_mnist/patch16.yaml --batch 32 --steps 5 --precisions fp32 --pc-steps 40 --sample-batch 32 --threads 1 model.nf=32 model.patch_sampling=full"
commands[checkpointing]="build/tests/bench_train --checkpointing --batch 1 --steps 2 --threads 1 model.nf=128"
commands[sharding]="build/tests/bench_train --sharding --steps 2 --threads 1"
commands[gradients]="build/tests/bench_train --gradients --batch 2"

list() {
  local name line
  for name in "${names[@]}"; do
    while IFS= read -r line; do echo "$name: $line"; done <<<"${commands[$name]}"
  done
}

# Runs one table's commands, each into $scratch/NAME.<i>.log (its wall time
# in .seconds), then prints the table.
refresh() {
  local name=$1 i=0 line log start status
  local -a logs=()
  echo "## $name"
  echo
  while IFS= read -r line; do
    log=$scratch/$name.$i.log
    i=$((i + 1))
    # A fresh workdir or dataset each time (a finished workdir would return at once).
    for dir in $(grep -oE -- '--(workdir|out) /tmp/scorch_refresh/[A-Za-z0-9_]+' <<<"$line" |
      cut -d' ' -f2 || true); do
      rm -rf "$dir"
    done
    if [ "$(id -u)" = 0 ]; then line=${line/#mpirun /mpirun --allow-run-as-root }; fi
    echo "\$ $line" >&2
    start=$(date +%s%N)
    status=0
    bash -c "$line" >"$log" 2>"$log.err" || status=$?
    awk -v ns="$(($(date +%s%N) - start))" 'BEGIN { printf "%.1f\n", ns / 1e9 }' >"$log.seconds"
    if [ "$status" -ne 0 ]; then
      echo "refresh: '$line' failed with exit code $status; its output: $log, $log.err" >&2
      return 1
    fi
    logs+=("$log")
  done <<<"${commands[$name]}"
  python3 tests/bench/refresh_format.py "$name" "${logs[@]}" || {
    echo "refresh: could not read the table $name from ${logs[*]}" >&2
    return 1
  }
  echo
}

if [ "${1:-}" = --list ]; then
  list
  exit 0
fi
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${names[@]}")
for name in "${wanted[@]}"; do
  [ -n "${commands[$name]:-}" ] || {
    echo "refresh: no table '$name'; the tables: ${names[*]}" >&2
    exit 2
  }
done
mkdir -p "$scratch"
failed=0
for name in "${wanted[@]}"; do
  refresh "$name" || failed=1
done
exit "$failed"
