#!/usr/bin/env bash
# Installs Scorch's build and test dependencies from Debian's packages.
# Idempotent: packages already present are left alone. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev                       # LibTorch 1.13 (CPU)
  libgloo-dev                        # c10d's Gloo process group (dist.backend=gloo)
  libopenblas0-pthread               # fast BLAS for LibTorch (the default is the reference BLAS)
  libopenmpi-dev openmpi-bin         # MPI launch and CPU collectives
  libhdf5-dev                        # sharded datasets
  libssl-dev zlib1g-dev libzip-dev   # shard SHA-256, gzip shards and .gz IDX, .npz archives
  dataset-fashion-mnist              # the default real dataset (IDX files)
  prometheus-cpp-dev                 # metrics endpoint
  prometheus                         # tests: a real Prometheus scrapes the endpoints (and promtool)
  libyaml-cpp-dev                    # configs
  nlohmann-json3-dev                 # JSON (log.jsonl, manifests, --json)
  libcli11-dev                       # command-line parsing
  libstb-dev                         # PNG writing (stb_image_write)
  libgtest-dev libgmock-dev          # tests
  python3 python3-torch python3-numpy  # tests: checkpoints readable by torch.load
  python3-h5py                       # tests: datasets readable as plain HDF5
  slurm-wlm slurm-client munge       # launch/slurm.sbatch; tests: a single-node Slurm cluster
  gnuplot-nox                        # scorch plot (PNG plots of log.jsonl)
  python3-venv                       # tests: .venv with lizard (function lengths, tests/house)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Python packages from PyPI, pinned, in a virtual environment in the checkout
# (.venv, ignored by git): lizard measures function lengths for tests/house.
# With --cuda-libtorch (launch/test.sh) also torch, a CUDA build of LibTorch
# 2.x that launch/build_cuda.sh compiles Scorch against (about 4 GB with its
# NVIDIA libraries; command 1 does not need it), pinned to the PyTorch of the
# GPU machines the project runs on, so that what CI tests is what runs there.
torch_version=2.11.0
python_tools=(lizard==1.24.3)
have_torch() { compgen -G ".venv/lib/python3*/site-packages/torch-$torch_version.dist-info" >/dev/null; }
want_torch=0
[ "${1:-}" = --cuda-libtorch ] && want_torch=1
venv() {
  [ -x .venv/bin/lizard ] && { [ $want_torch = 0 ] || have_torch; } && return 0
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
  [ $want_torch = 1 ] && python_tools+=(torch==$torch_version)
  .venv/bin/pip install -q "${python_tools[@]}"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  venv
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
venv
