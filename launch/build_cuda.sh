#!/usr/bin/env bash
# Configures and builds Scorch against the CUDA LibTorch of PyPI's torch
# wheel in .venv (launch/install_deps.sh --cuda-libtorch installs it) into build-cuda/, with
# this machine's nvcc and the wheel's NCCL: the CUDA code paths (the NCCL
# communicator, fused Adam, pinned-memory noise, the allocator statistics,
# test_gpu) compile and link on every change, on machines without a GPU too.
#   launch/build_cuda.sh [target ...]      default: everything
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) ||
  { echo "build_cuda: no torch in .venv; run launch/install_deps.sh --cuda-libtorch" >&2; exit 1; }
# The wheel's root too, so that CMake finds its libtorch.so before Debian's.
export CMAKE_PREFIX_PATH="$prefix:$(dirname "$(dirname "$prefix")")"  # a path list: colons
export BUILD_DIR=${BUILD_DIR:-build-cuda}
# A compile check and CPU unit tests: unoptimised code builds in less time
# (BUILD_TYPE=Release for a build to run on a GPU).
export BUILD_TYPE=${BUILD_TYPE:-None}
exec bash launch/build.sh "$@"
