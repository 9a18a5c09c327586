#!/usr/bin/env bash
# README command 1: install, build the CLI, and train the embedded default
# (an MLP score model on 8 Gaussians with the VP SDE) on the CPU. Writes
# workdir/quickstart/samples/iter_00004000/samples.png and prints the sliced
# Wasserstein distance of EMA samples to held-out data beside its floor and a
# Gaussian baseline. Extra arguments go to `scorch train` (overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
SCORCH_BUILD_TESTS=OFF BUILD_DIR=build-release bash launch/build.sh scorch_cli
workdir=${WORKDIR:-workdir/quickstart}
./build-release/scorch train --workdir "$workdir" "$@"
echo "samples: $(ls -d "$workdir"/samples/iter_* | tail -n 1)/samples.png"
echo "quality: $workdir/eval/quality.json"
