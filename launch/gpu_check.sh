#!/usr/bin/env bash
# The one-command GPU check. On a machine with a GPU, PyTorch 2.x + CUDA,
# nvcc, cmake and ninja but none of Scorch's Debian libraries and no network:
# builds Scorch against PyTorch's LibTorch (torch.utils.cmake_prefix_path),
# with the other libraries unpacked from a folder of Debian packages prepared
# beforehand, then runs test_gpu, bench_step and bench_train (DDPM++ fp32 and
# bf16, 128 images per GPU, PC and EDM sampling) and writes every log and a
# summary table to one folder.
#
#   launch/gpu_check.sh prepare [DEBS]        # here (Debian, with apt): download the packages
#   launch/gpu_check.sh run [DEBS] [OUT]      # there: unpack, build, test, time
#   launch/gpu_check.sh dry-run [DEBS] [OUT]  # here: `run` against this machine's
#                                             # python3 LibTorch (CPU), short benchmarks
#
# DEBS defaults to .gpu-debs/ (ignored by git: a remote runner that copies
# the working tree must be told to carry it),
# OUT to gpu-check/ (or $OUT). Exit status: 0 when everything built and every
# test passed, 1 otherwise (the logs say what).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
debs=$(realpath -m "${2:-.gpu-debs}")
out=$(realpath -m "${3:-${OUT:-gpu-check}}")

# The -dev packages the build needs and the runtime libraries they pull in;
# a GPU machine has the C and C++ runtimes, zlib and OpenSSL's libcrypto.
dev_packages=(libopenmpi-dev openmpi-bin openmpi-common libhdf5-dev prometheus-cpp-dev libyaml-cpp-dev
  nlohmann-json3-dev libcli11-dev libstb-dev libgtest-dev libgmock-dev libzip-dev zlib1g-dev
  libssl-dev pkgconf libpkgconf3 libgloo-dev civetweb)
skip='^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|libcrypt1|libcrypt-dev|zlib1g|libssl3|libzstd1|liblzma5|libbz2-1.0|libselinux1|libpcre2-8-0|libgcc-.*-dev|libstdc\+\+-.*-dev|lib(a|t|ub|l)san[0-9]+|libitm1|libquadmath0|libatomic1|libgomp1|libcc1-0|libisl23|libmpc3|libmpfr6|libgmp10|libllvm.*|libclang.*|libflang.*|libperl.*|libpython.*|libgfortran.*|libtirpc.*|libkrb5.*|libgssapi.*|libk5crypto3|libcom-err2|libkeyutils1|libdb5.3|libgdbm.*|libffi8|libexpat1|libsystemd0|libudev1|libcap2|libaudit.*|libcap-ng0|libacl1|libattr1|libmd0|libbsd0|libtinfo6|libncurses.*|libedit2|libreadline8|libsqlite3-0|libgnutls30|libhogweed6|libnettle8|libp11-kit0|libtasn1-6|libidn2-0|libunistring2|libdebian-installer4|libsemanage.*|libsepol2|libpam.*|libxml2|libicu72|libnsl2|libjansson4|libxxhash0|libctf.*|libbinutils|libgprofng0|libsframe.*|libdpkg-perl|libfile-.*|libhtml-.*|libhttp-.*|libio-.*|liblwp-.*|libnet-.*|libtimedate-perl|liburi-perl|libwww-.*|libencode-.*|libtry-tiny-perl|libfido2-1|libcbor0.8|libmlir.*|libjs-.*|libnewt.*|libslang2|libhiredis.*|libcurl3-nss|libcurl4-nss-dev|libcurl4-gnutls-dev|libcurl3-gnutls|libnspr4|libnss3|libc-dev-bin|libnsl-dev|libz3-.*)$'

prepare() {
  mkdir -p "$debs" && cd "$debs" || exit 1
  local wanted
  wanted=$( (printf '%s\n' "${dev_packages[@]}"
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "${dev_packages[@]}" 2>/dev/null |
      grep -v '^ ' | grep -v '^<' | grep '^lib') | sort -u | grep -Ev "$skip")
  # shellcheck disable=SC2086
  apt-get download $wanted >/dev/null || { echo "gpu_check: apt-get download failed" >&2; exit 1; }
  echo "gpu_check: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in $debs"
}

unpack() {  # every .deb of $debs into $prefix (dpkg-deb where there is one, else ar + tar)
  prefix=$out/prefix
  rm -rf "$prefix" && mkdir -p "$prefix"
  local n=0
  for deb in "$debs"/*.deb; do
    [ -e "$deb" ] || { echo "gpu_check: no packages in $debs (run: launch/gpu_check.sh prepare)" >&2; exit 1; }
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else
      (cd "$(mktemp -d)" && ar x "$deb" && tar -xf data.tar.* -C "$prefix")
    fi
    n=$((n + 1))
  done
  echo "unpacked $n packages into $prefix"
}

environment() {  # paths into $prefix for CMake, the linker, pkg-config and Open MPI
  local lib=$prefix/usr/lib/x86_64-linux-gnu
  export OPAL_PREFIX=$prefix/usr  # Open MPI's wrappers and runtime, relocated
  export PATH=$prefix/usr/bin:$PATH
  export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_PATH=$lib/pkgconfig:$prefix/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$prefix
  export CPATH=$prefix/usr/include${CPATH:+:$CPATH}
  export LIBRARY_PATH=$lib${LIBRARY_PATH:+:$LIBRARY_PATH}
  torch_prefix=$($python -c 'import torch; print(torch.utils.cmake_prefix_path)') || exit 1
  torch_root=$(dirname "$(dirname "$torch_prefix")")
  cmake_prefix="$torch_prefix;$torch_root;$prefix/usr;$lib/cmake"
}

build() {
  local build=$out/build
  cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$cmake_prefix" \
    -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx.openmpi" \
    -DSCORCH_HDF5_INCLUDE="$prefix/usr/include/hdf5/serial" \
    -DSCORCH_HDF5_LIBRARY="$prefix/usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so" \
    >"$out/configure.log" 2>&1 || return 1
  ninja -C "$build" scorch_cli test_gpu bench_train bench_step test_dist test_train \
    >"$out/build.log" 2>&1 || return 1
  bin=$build
}

step() {  # step NAME COMMAND...: runs one check, logs to OUT/NAME.log, records its status
  local name=$1
  shift
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  printf '| %-10s | %-4s | %5d s | %s |\n' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" \
    $((SECONDS - t0)) "$out/$name.log" >>"$out/summary.md"
  [ $rc = 0 ] || failed=1
  return $rc
}

run_checks() {
  local batch=$1 steps=$2 pc=$3
  failed=0
  printf '| check | status | time | log |\n|---|---|---|---|\n' >"$out/summary.md"
  step unpack unpack || { cat "$out/summary.md"; exit 1; }
  environment
  step build build || { cat "$out/summary.md"; tail -n 30 "$out/configure.log" "$out/build.log"; exit 1; }
  step test_gpu "$bin/tests/test_gpu" --gtest_output=xml:"$out/test_gpu.xml" || true
  step test_dist "$bin/tests/test_dist" || true
  step bench_step "$bin/tests/bench_step" --steps 3 || true
  step bench_train "$bin/tests/bench_train" --batch "$batch" --steps "$steps" --pc-steps "$pc" \
    --precisions fp32,bf16 || true
  { echo; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    $python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } \
    >>"$out/summary.md"
  cat "$out/summary.md"
  grep -h -A12 '^network\|^model' "$out/bench_step.log" "$out/bench_train.log" 2>/dev/null
  exit $failed
}

mkdir -p "$out"
case $mode in
  prepare) prepare ;;
  run) python=python3; run_checks 128 50 1000 ;;
  dry-run) python=/usr/bin/python3; run_checks 8 3 25 ;;
  *) echo "usage: launch/gpu_check.sh prepare|run|dry-run [DEBS] [OUT]" >&2; exit 2 ;;
esac
