#!/usr/bin/env bash
# launch/gpu_check.sh without a GPU: `prepare` resolves and downloads the
# packages into a temporary folder (about 24 MB from Debian's archive), `prefix`
# unpacks them and writes the env file; then mpirun, mpicxx and pkg-config
# must resolve inside the prefix, the .pc files point into it, and `test`
# (with stand-in test binaries) must fail when a test is skipped and pass
# when none is. Needs apt's package lists (apt-get update) and network access
# to Debian's archive.
#
#   tests/launch/gpu_check_test.sh
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/scorch_gpu_check_test.XXXXXX)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
failures=0 passes=0
check() {  # check WHAT COMMAND...: one assertion
  local what=$1
  shift
  if "$@"; then passes=$((passes + 1)); else echo "FAIL: $what" >&2; failures=$((failures + 1)); fi
}
inside() { [[ $(realpath "$2") == "$1"/* ]]; }
python=$src/.venv/bin/python
[ -x "$python" ] || python=/usr/bin/python3  # any Python with torch will do for the env file

check "bash -n" bash -n "$src/launch/gpu_check.sh"
if command -v shellcheck >/dev/null; then
  check "shellcheck" shellcheck -S warning "$src/launch/gpu_check.sh"
fi

# --- prepare -------------------------------------------------------------------
debs=$tmp/debs
bash "$src/launch/gpu_check.sh" prepare "$debs" >"$tmp/prepare.log" 2>&1
rc=$?
check "prepare exits 0 ($(tail -n 3 "$tmp/prepare.log"))" test $rc = 0
for p in pkgconf-bin pkgconf libpkgconf3 openmpi-bin openmpi-common libopenmpi3 libpmix2 libhdf5-dev \
  libzip-dev libyaml-cpp-dev prometheus-cpp-dev libgtest-dev libcli11-dev nlohmann-json3-dev libstb-dev; do
  check "prepare downloads $p" compgen -G "$debs/${p}_*.deb" >/dev/null
done
for p in libc6 libstdc++6 python3.11 libssl3 zlib1g gfortran-12 libtorch-dev openssh-client; do
  check "prepare leaves out $p (the bare host's, or not needed)" test -z "$(compgen -G "$debs/${p}_*.deb")"
done
check "alternatives.txt names mpirun" grep -q '^/usr/bin/mpirun mpirun /usr/bin/mpirun.openmpi$' \
  "$debs/alternatives.txt"

# --- prefix: unpack and env file ---------------------------------------------------
work=$tmp/work
WORK=$work OUT=$tmp/logs PYTHON=$python bash "$src/launch/gpu_check.sh" prefix "$debs" >"$tmp/prefix.log" 2>&1
rc=$?
check "prefix exits 0 ($(tail -n 5 "$tmp/prefix.log"))" test $rc = 0
prefix=$work/prefix
for link in mpirun mpiexec mpicxx pkg-config; do
  check "$link resolves inside the prefix" inside "$prefix" "$prefix/usr/bin/$link"
done
check "mpirun goes through the prefix's /etc/alternatives" \
  test "$(readlink "$prefix/usr/bin/mpirun")" = ../../etc/alternatives/mpirun
check "mpirun is orterun" test "$(basename "$(realpath "$prefix/usr/bin/mpirun")")" = orterun
check "libnl (a /lib package) merged into usr/lib" test -e "$prefix/usr/lib/x86_64-linux-gnu/libnl-3.so.200"
check "no .pc file points at /usr outside the prefix" \
  test -z "$(grep -lE '(^|[=[:space:]]|-I|-L)/usr(/|$|[[:space:]])' "$prefix"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc)"
env_file=$work/env.sh
check "env.sh written" test -f "$env_file"
for v in PATH LD_LIBRARY_PATH CPATH PKG_CONFIG PKG_CONFIG_PATH CMAKE_PREFIX_PATH OPAL_PREFIX PMIX_PREFIX \
  PMIX_PKGLIBDIR OMPI_MCA_plm_rsh_agent SCORCH_GPU_TORCH; do
  check "env.sh exports $v" grep -q "export .*\b$v=" "$env_file"
done
# shellcheck disable=SC1090
libs=$(source "$env_file" && pkg-config --libs libzip)
check "pkg-config --libs libzip from the prefix ($libs)" test "${libs%% *}" = "-L$prefix/usr/lib/x86_64-linux-gnu"
check "pkg-config is the prefix's" bash -c "source '$env_file' && [ \"\$(command -v pkg-config)\" = '$prefix/usr/bin/pkg-config' ]"

# --- test: a skipped test fails the check ---------------------------------------------
fake_gtest() {  # fake_gtest FILE SKIPS: a stand-in GoogleTest binary
  cat >"$1" <<EOF
#!/bin/sh
echo '[==========] Running 2 tests from 1 test suite.'
echo '[       OK ] Gpu.A (1 ms)'
[ $2 = 0 ] || echo '[  SKIPPED ] Gpu.B (0 ms)'
[ $2 = 0 ] && echo '[  PASSED  ] 2 tests.' || { echo '[  PASSED  ] 1 test.'; echo '[  SKIPPED ] 1 test, listed below:'; echo '[  SKIPPED ] Gpu.B'; }
exit 0
EOF
  chmod +x "$1"
}
mkdir -p "$work/build/tests"
cat >"$work/build/scorch" <<'EOF'
#!/bin/sh
# stand-in scorch: `train --workdir W ...` writes W/checkpoints/checkpoint_100.pt
while [ $# -gt 0 ]; do [ "$1" = --workdir ] && w=$2; shift; done
mkdir -p "$w/checkpoints" && : >"$w/checkpoints/checkpoint_100.pt"
EOF
chmod +x "$work/build/scorch"
fake_gtest "$work/build/tests/test_dist" 0
fake_gtest "$work/build/tests/test_gpu" 1
WORK=$work OUT=$tmp/logs bash "$src/launch/gpu_check.sh" test >"$tmp/test_skip.log" 2>&1
rc=$?
check "test fails when a GPU test skips" test $rc = 1
check "the table names the skipped test" grep -q 'test_gpu .*FAIL.*SKIPPED: Gpu.B' "$tmp/test_skip.log"
check "mpirun -np 1 from the prefix runs" grep -q 'mpirun_np1 *| ok' "$tmp/test_skip.log"
check "mpirun_train through launch/mpirun.sh" grep -q 'mpirun_train *| ok' "$tmp/test_skip.log"
fake_gtest "$work/build/tests/test_gpu" 0
WORK=$work OUT=$tmp/logs bash "$src/launch/gpu_check.sh" test >"$tmp/test_pass.log" 2>&1
rc=$?
check "test passes when no test skips ($(grep FAIL "$tmp/test_pass.log"))" test $rc = 0

echo "gpu_check_test: $passes passed, $failures failed"
[ $failures = 0 ]
