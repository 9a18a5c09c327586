#!/usr/bin/env bash
# README command 2: install; build the CLI against Debian's LibTorch 1.13 (the
# quickstart's light build) and train the embedded default with it as a smoke
# test; then build everything (CLI, tests, benchmarks) against the CUDA
# LibTorch of PyPI's torch wheel, pinned to the GPU machines' PyTorch
# (launch/install_deps.sh), and run the whole test suite (unit, end-to-end and
# quality tests) through CTest on that build, on the CPU: what CI tests is
# what runs on a GPU (test_gpu skips without one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh --cuda-libtorch
# Command 1's build and run, into a fresh workdir (a finished one returns at once).
smoke=$(mktemp -d /tmp/scorch-smoke.XXXXXX)
WORKDIR="$smoke/quickstart" bash launch/quickstart.sh
rm -rf "$smoke"
# Optimised: the quality tests train for minutes.
BUILD_TYPE=Release bash launch/build_cuda.sh
# Every test dependency was just installed: a test that finds one missing
# fails instead of skipping (tests/testing/dependencies.h, tests/house).
export CI=${CI:-true}
# One LibTorch (OpenMP) thread per test: CTest runs nproc tests at once, and
# the wheel's OpenMP threads, oversubscribed, wait on each other at every
# small operator (a patch-training test took 861 s instead of about 40).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
(cd build-cuda && ctest --output-on-failure --timeout 1200 -j"$(nproc)")
