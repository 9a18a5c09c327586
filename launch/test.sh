#!/usr/bin/env bash
# README command 2: install, build everything, and run the whole test suite
# (unit, end-to-end and quality tests) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/build.sh
# Every test dependency was just installed: a test that finds one missing
# fails instead of skipping (tests/testing/dependencies.h, tests/house).
export CI=${CI:-true}
cd build
ctest --output-on-failure --timeout 1200 -j"$(nproc)"
