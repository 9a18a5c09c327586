#!/usr/bin/env bash
# Configures and builds Scorch into build/ (Release, Ninja).
#   launch/build.sh [target ...]      default: everything (CLI, tests)
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release; None
# compiles without optimisation, faster), CMAKE_PREFIX_PATH / Torch_DIR for a
# CUDA LibTorch, SCORCH_BUILD_TESTS=OFF to skip the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
  -DSCORCH_BUILD_TESTS="${SCORCH_BUILD_TESTS:-ON}" >"$build_dir.cmake.log" 2>&1 ||
  { cat "$build_dir.cmake.log"; exit 1; }
# Each LibTorch translation unit takes ~1.5 GB to compile: one job per core.
jobs=$(nproc)
if [ $# -gt 0 ]; then
  ninja -C "$build_dir" -j"$jobs" "$@"
else
  ninja -C "$build_dir" -j"$jobs"
fi
