#!/usr/bin/env bash
# README command 2: install, build everything, and run the whole test suite
# (unit, end-to-end and quality tests) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/build.sh
cd build
ctest --output-on-failure --timeout 1200 -j"$(nproc)"
