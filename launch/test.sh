#!/usr/bin/env bash
# README command 2: install, build everything, and run the whole test suite
# (unit, end-to-end and quality tests) through CTest; then build everything
# against the CUDA LibTorch of PyPI's torch wheel and run that build's CPU
# unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh --cuda-libtorch
bash launch/build.sh
# Every test dependency was just installed: a test that finds one missing
# fails instead of skipping (tests/testing/dependencies.h, tests/house).
export CI=${CI:-true}
# The CUDA build's unit tests skip what the CPU build's CTest run covers end
# to end or by quality (seconds to minutes each).
cuda_build_filter='-*Quality*:*Sampler*Converges*:*FashionMnist*:*Classifier*'
(cd build && ctest --output-on-failure --timeout 1200 -j"$(nproc)")
# The CUDA build: PyPI's torch wheel (LibTorch 2.x, CUDA, NCCL) with this
# machine's nvcc, into build-cuda/. Every target must compile and link, and
# the build's CPU unit tests must pass here too (test_gpu skips without a GPU).
bash launch/build_cuda.sh
for suite in test_core test_sde test_nn test_losses test_sampling test_likelihood test_data test_jobs \
  test_dist test_train test_gpu; do
  echo "build-cuda: $suite"
  "build-cuda/tests/$suite" --gtest_brief=1 --gtest_filter="$cuda_build_filter"
done
