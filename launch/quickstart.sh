#!/usr/bin/env bash
# README command 1: install, build the CLI, and train the embedded default
# (an MLP score model on 8 Gaussians with the VP SDE) on the CPU. Writes
# workdir/quickstart/samples/iter_*/samples.png and prints the sliced
# Wasserstein distance of EMA samples to held-out data beside its floor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
SCORCH_BUILD_TESTS=OFF BUILD_DIR=build-release bash launch/build.sh scorch_cli
workdir=${WORKDIR:-workdir/quickstart}
./build-release/scorch train --workdir "$workdir" --json "$@" | tee "$workdir.result.json"
python3 - "$workdir.result.json" "$workdir" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
q = r["quality"]
print(f"\nquality: sliced Wasserstein distance to held-out data = {q['swd']:.4f} "
      f"(data-vs-data floor {q['swd_floor']:.4f}, moment-matched Gaussian {q['swd_gaussian']:.4f}; lower is better)")
print(f"samples: {sys.argv[2]}/samples/iter_{r['step']:08d}/samples.png")
PY
