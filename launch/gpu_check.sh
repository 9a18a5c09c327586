#!/usr/bin/env bash
# The GPU check, in steps that each fit one command of a lent GPU machine
# (10 minutes). That machine has a GPU, PyTorch 2.x with CUDA as its python3,
# nvcc, cmake and ninja, but none of Scorch's Debian libraries and no network:
# `prepare` downloads those libraries here as .deb files; there `build`
# unpacks them into a prefix and builds Scorch against the machine's own
# PyTorch (python3's torch.utils.cmake_prefix_path), `test` runs the GPU tests
# and a 1-rank mpirun, `bench` times training and sampling.
#
#   launch/gpu_check.sh prepare [DEBS]  here (Debian 12, apt): resolve and download the packages
#   launch/gpu_check.sh build [DEBS]    there: unpack, env file, link probe, build     (<= 5 min, 16 cores)
#   launch/gpu_check.sh prefix [DEBS]   only the first two: unpack and the env file   (seconds)
#   launch/gpu_check.sh test            there: test_gpu, test_dist, mpirun -np 1 training (<= 5 min)
#   launch/gpu_check.sh bench           there: bench_step, bench_train (DDPM++ fp32, bf16) (<= 2 min)
#   launch/gpu_check.sh run [DEBS]      build, test and bench in one command
#   launch/gpu_check.sh dry-run [DEBS]  here, as root: build and test on the CPU in a clean root that
#                                       has only a bare host's Debian packages (DRY_RUN_BENCH=1: bench
#                                       too; DRY_RUN_STEPS="build": only those)
#
# DEBS: .gpu-debs/ (ignored by git: the device tool must be told to carry it).
# WORK (gpu-check/): prefix/, build/, env.sh (what test and bench source),
# logs/MODE/ (each step's log and summary.md, the table). With $OUT set (the
# device tool brings back what is under it, 8 files at most) each subcommand
# also writes its summary and a log archive under $OUT (summary-build and
# logs-build, .md and .tar.gz, for `build`). PYTHON (python3):
# the Python whose torch is built against. JOBS: ninja's -j. TARGETS: what
# `build` builds.
# Exit status: 0 when every step passed, 1 otherwise (a skipped GPU test is a
# failure), 2 for a usage error. Each subcommand ends with a table.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
src=$PWD
mode=${1:-}
debs=$(realpath -m "${2:-.gpu-debs}")
work=$(realpath -m "${WORK:-gpu-check}")
logs=$work/logs  # WORK/logs/MODE once a subcommand begins
python=${PYTHON:-python3}
prefix=$work/prefix
multiarch=x86_64-linux-gnu
lib=$prefix/usr/lib/$multiarch
cpu_only=${GPU_CHECK_CPU:-0}  # dry-run: no GPU, small benchmarks, CPU training

# --- prepare: which packages -------------------------------------------------
# The packages to ship are the library dependencies of launch/install_deps.sh's
# list (less what a GPU machine brings or the check does not use) that a bare
# host lacks. A bare host is modelled as Debian's Essential and required
# packages plus apt, build-essential (the compiler) and python3: apt resolves
# that set and that set plus ours from an empty package database, and the
# difference is what to ship. The same model is dry-run's clean root.
not_shipped='^(build-essential|cmake|ninja-build|git|libtorch-dev|libgloo-dev|libopenblas0-pthread|dataset-fashion-mnist|prometheus|python3.*|slurm-wlm|slurm-client|munge|gnuplot-nox)$'
# Resolved but not needed to build Scorch or run one host's mpirun; what only
# they pull in goes too: the Fortran compiler (Open MPI's Fortran wrappers),
# autotools (libltdl-dev), the HTML docs' jQuery, ssh (mpirun reaches other
# hosts with it) and hwloc's optional plugins (X11, OpenCL, libxml2 with ICU).
not_needed='^(gfortran-12|libgfortran-12-dev|autoconf|automake|autotools-dev|m4|libjs-jquery|libjs-jquery-ui|openssh-client|libhwloc-plugins)$'

install_deps_packages() {  # the packages=( ... ) list of launch/install_deps.sh
  sed -n '/^packages=(/,/^)/p' "$src/launch/install_deps.sh" | sed 's/#.*//; 1d; $d' | tr -s ' \t' '\n' | grep .
}

bare_host_packages() {  # Essential/required packages of this Debian, apt, the compiler, python3
  dpkg-query -W -f='${Package}\t${Essential}\t${Priority}\n' |
    awk -F'\t' '$2 == "yes" || $3 == "required" { print $1 }'
  printf '%s\n' apt build-essential python3
}

apt_closure() {  # packages apt installs for $@ on a machine with nothing installed
  local empty
  empty=$(mktemp) || return 1
  apt-get -s -o Dir::State::status="$empty" -o Debug::NoLocking=1 install --no-install-recommends "$@" \
    2>&1 | awk '/^Inst / { print $2 }' | sort -u
  rm -f "$empty"
}

# needed ROOTS... < CANDIDATES: the candidates that ROOTS reach through Depends
# and Pre-Depends (every alternative, and a virtual package's providers), not
# entering not_needed packages.
needed() {
  local candidates
  candidates=$(cat)
  # shellcheck disable=SC2086
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances $candidates 2>/dev/null |
    awk -v cands="$candidates" -v roots="$*" -v skip="$not_needed" '
      BEGIN { n = split(cands, c, "\n"); for (i = 1; i <= n; i++) cand[c[i]] = 1 }
      /^[^ ]/ { pkg = $1; dep = 0; next }
      /^ [ |](Pre)?Depends: / { dep = 1; name = $2; gsub(/[<>]|:any/, "", name); edge[pkg, name] = 1; last = name; next }
      /^    [^ ]/ && dep { edge[pkg, $1] = 1; next }  # a provider of the virtual package above
      { dep = 0 }
      END {
        n = split(roots, r, " "); head = 0
        for (i = 1; i <= n; i++) if ((r[i] in cand) && !(r[i] in seen)) { seen[r[i]] = 1; queue[++tail] = r[i] }
        while (head < tail) {
          p = queue[++head]
          for (k in edge) { split(k, e, SUBSEP); if (e[1] == p && (e[2] in cand) && !(e[2] in seen) && e[2] !~ skip) { seen[e[2]] = 1; queue[++tail] = e[2] } }
        }
        for (p in seen) print p
      }' | sort
}

ship_list() {  # the package names to download, one a line
  local roots base all
  roots=$(install_deps_packages | grep -Ev "$not_shipped" | sort -u)
  base=$(bare_host_packages | sort -u)
  # shellcheck disable=SC2086
  all=$(apt_closure $base $roots) && base=$(apt_closure $base) || return 1
  # shellcheck disable=SC2086
  comm -13 <(echo "$base") <(echo "$all") | needed $roots
}

alternatives_of() {  # DEB: "LINK NAME PATH" for each update-alternatives --install/--slave in its postinst
  dpkg-deb --ctrl-tarfile "$1" | tar -xO ./postinst 2>/dev/null | sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' |
    grep 'update-alternatives' | tr -s ' \t' '\n' |
    awk '$0 == "--install" || $0 == "--slave" { want = 3; next } want > 0 { printf "%s%s", $0, (--want ? " " : "\n") }' |
    grep -v '/share/man/'
}

prepare() {
  local names tmp
  names=$(ship_list) || { echo "gpu_check: resolving the packages failed (run apt-get update?)" >&2; exit 1; }
  [ -n "$names" ] || { echo "gpu_check: no packages resolved (run apt-get update?)" >&2; exit 1; }
  mkdir -p "$debs" && tmp=$(mktemp -d "$debs/.download.XXXXXX") || exit 1
  # shellcheck disable=SC2086
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download $names >/dev/null) || { rm -rf "$tmp"; echo "gpu_check: apt-get download failed" >&2; exit 1; }
  rm -f "$debs"/*.deb && mv "$tmp"/*.deb "$debs"/ && rm -rf "$tmp"
  : >"$debs/alternatives.txt"
  for deb in "$debs"/*.deb; do alternatives_of "$deb" >>"$debs/alternatives.txt"; done
  for deb in "$debs"/*.deb; do
    printf '%-34s %-28s %8d KiB\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
      $(($(stat -c %s "$deb") / 1024))
  done >"$debs/packages.txt"
  cat "$debs/packages.txt"
  echo "gpu_check: $(ls "$debs"/*.deb | wc -l) packages, $(du -ch "$debs"/*.deb | tail -1 | cut -f1) in $debs" \
    "(package list: $debs/packages.txt; alternatives: $debs/alternatives.txt)"
}

# --- build: the prefix ---------------------------------------------------------
host_library() {  # NAME: the bare host's copy of a library (libz.so.1.2.13 -> its libz.so.1), if any
  local name=$1 path
  while :; do
    path=$("$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | awk -v n="$name" '$1 == n && /x86-64/ { print $NF; exit }')
    [ -n "$path" ] && { echo "$path"; return 0; }
    [[ $name == *.so.* ]] || return 1
    name=${name%.*}
  done
}

relink() {  # the links dpkg-x leaves pointing outside the prefix, and Debian's alternatives
  local link target name path
  while read -r link name path; do  # /usr/bin/mpirun -> /etc/alternatives/mpirun -> /usr/bin/mpirun.openmpi
    [ -e "$prefix$path" ] && [ ! -e "$prefix$link" ] && [ ! -L "$prefix$link" ] || continue
    mkdir -p "$prefix/etc/alternatives" "$(dirname "$prefix$link")"
    ln -sfn "$(realpath -sm --relative-to="$prefix/etc/alternatives" "$prefix$path")" "$prefix/etc/alternatives/$name"
    ln -sfn "$(realpath -sm --relative-to="$(dirname "$prefix$link")" "$prefix/etc/alternatives/$name")" "$prefix$link"
  done <"$debs/alternatives.txt"
  find "$prefix" -type l | while read -r link; do
    target=$(readlink "$link")
    if [[ $target == /* ]] && { [ -e "$prefix$target" ] || [ -L "$prefix$target" ]; }; then
      ln -sfn "$(realpath -sm --relative-to="$(dirname "$link")" "$prefix$target")" "$link"  # into the prefix
    elif { [[ $target == /* ]] || [ ! -e "$link" ]; } && [[ $(basename "$target") == lib*.so* ]]; then
      # a -dev package's link to a library of the bare host (libz.so -> /lib/.../libz.so.1.2.13,
      # libcrypto.so -> libcrypto.so.3): to the host's copy of that library, whatever its version
      if path=$(host_library "$(basename "$target")"); then
        ln -sfn "$path" "$link" && echo "relinked ${link#"$prefix"} -> $path (the host's)"
      else
        echo "warning: ${link#"$prefix"} -> $target: the host has no such library"
      fi
    fi
  done
}

relocate_pc_files() {  # pkg-config files (Open MPI's lie in openmpi/lib/pkgconfig): /usr/... -> PREFIX/usr/...
  find "$prefix" -name '*.pc' -type f -exec \
    sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|\$|[[:space:]])#\1$prefix/usr\2#g" {} +
}

unpack() {
  local deb n=0
  compgen -G "$debs/*.deb" >/dev/null ||
    { echo "gpu_check: no packages in $debs (run launch/gpu_check.sh prepare here and carry it)"; return 1; }
  rm -rf "$prefix" && mkdir -p "$prefix" || return 1
  for deb in "$debs"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix" || return 1
    else  # ar + tar: a host without dpkg
      (d=$(mktemp -d) && cd "$d" && ar x "$deb" && tar -xf data.tar.* -C "$prefix" && rm -rf "$d") || return 1
    fi
    n=$((n + 1))
  done
  echo "unpacked $n packages into $prefix"
  local d
  for d in bin sbin lib lib64; do  # /lib/x86_64-linux-gnu/libnl-3.so.200 etc.: merged into usr/ as on the host
    [ -d "$prefix/$d" ] && [ ! -L "$prefix/$d" ] || continue
    mkdir -p "$prefix/usr/$d" && cp -a "$prefix/$d/." "$prefix/usr/$d/" && rm -rf "${prefix:?}/$d" &&
      ln -s "usr/$d" "$prefix/$d" || return 1
  done
  relink
  relocate_pc_files
  for link in mpirun mpicxx pkg-config; do
    echo "$link -> $(realpath "$prefix/usr/bin/$link" 2>&1)"
    [[ $(realpath "$prefix/usr/bin/$link") == "$prefix"/* ]] || { echo "$link does not resolve inside the prefix"; return 1; }
  done
}

write_env() {  # WORK/env.sh: what the build, the tests and the benchmarks run with
  local torch_prefix torch_version nvcc_dir=""
  { read -r torch_prefix && read -r torch_version; } < <(env -u LD_LIBRARY_PATH "$python" -W ignore -c \
    'import torch; print(torch.utils.cmake_prefix_path); print(torch.__version__)')
  [ -n "${torch_version:-}" ] || { echo "gpu_check: $python has no torch"; return 1; }
  echo "torch $torch_version: $torch_prefix"
  command -v nvcc >/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc_dir=/usr/local/cuda/bin:; }
  local pmix=$lib/pmix2
  {
    echo "# launch/gpu_check.sh build: the prefix of Debian packages and the torch it built against"
    printf 'export SCORCH_GPU_PREFIX=%q\n' "$prefix"
    printf 'export SCORCH_GPU_TORCH=%q SCORCH_GPU_PYTHON=%q\n' "$torch_version" "$(realpath -s "$(command -v "$python")")"
    printf 'export PATH=%q\n' "$nvcc_dir$prefix/usr/bin:$PATH"
    printf 'export LD_LIBRARY_PATH=%q\n' "$lib:$lib/openmpi/lib:$lib/hdf5/serial:$pmix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Debian's multiarch headers (OpenSSL's, libzip's and MPI's): the compiler
    # searches /usr/include/x86_64-linux-gnu by itself, but not the prefix's.
    printf 'export CPATH=%q\n' "$prefix/usr/include/$multiarch${CPATH:+:$CPATH}"
    printf 'export PKG_CONFIG=%q PKG_CONFIG_PATH=%q\n' "$prefix/usr/bin/pkg-config" \
      "$lib/pkgconfig:$prefix/usr/share/pkgconfig"
    # The wheel's root after its cmake folder, so that CMake takes its libtorch.so.
    printf 'export CMAKE_PREFIX_PATH=%q\n' "$torch_prefix:$(dirname "$(dirname "$torch_prefix")"):$prefix/usr"
    # Open MPI 4.1 (ORTE, no PRRTE): its install paths move with OPAL_PREFIX,
    # except sysconfdir (/etc/openmpi). Its PMIx is Debian's external libpmix2,
    # installed under /usr/lib/x86_64-linux-gnu/pmix2 with absolute paths, so
    # every one it looks up (MCA components in lib/pmix, help files) is set.
    printf 'export OPAL_PREFIX=%q OPAL_SYSCONFDIR=%q\n' "$prefix/usr" "$prefix/etc/openmpi"
    # mpirun wants its remote agent (ssh) to exist even for ranks on this host
    # alone, and a bare host may have no ssh: `false` is never run for them.
    echo 'export OMPI_MCA_plm_rsh_agent=false'
    printf 'export PMIX_PREFIX=%q PMIX_EXEC_PREFIX=%q PMIX_LIBDIR=%q PMIX_PKGLIBDIR=%q\n' \
      "$pmix" "$pmix" "$pmix/lib" "$pmix/lib/pmix"
    printf 'export PMIX_DATAROOTDIR=%q PMIX_DATADIR=%q PMIX_PKGDATADIR=%q PMIX_INCLUDEDIR=%q\n' \
      "$pmix/share" "$pmix/share" "$pmix/share/pmix" "$pmix/include"
  } >"$work/env.sh"
  cat "$work/env.sh"
}

cmake_args=()
set_cmake_args() {
  cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx"
    -DSCORCH_HDF5_INCLUDE="$prefix/usr/include/hdf5/serial"
    -DSCORCH_HDF5_LIBRARY="$lib/hdf5/serial/libhdf5.so")
}

probe() {  # the link probe (launch/gpu_check_probe/): every library but LibTorch, one MPI rank
  rm -rf "$work/probe"
  cmake "${cmake_args[@]}" -S "$src/launch/gpu_check_probe" -B "$work/probe" &&
    ninja -C "$work/probe" ${JOBS:+-j "$JOBS"} &&
    mpirun_np1 "$work/probe/probe"
}

mpirun_np1() {  # one rank of Open MPI's mpirun from the prefix
  local as_root=()
  [ "$(id -u)" = 0 ] && as_root=(--allow-run-as-root)
  timeout 120 mpirun "${as_root[@]}" --oversubscribe -np 1 "$@"
}

configure() {
  cmake "${cmake_args[@]}" -S "$src" -B "$work/build"
}

default_targets="scorch_cli test_gpu test_dist bench_step bench_train"
compile() {
  # shellcheck disable=SC2086
  ninja -C "$work/build" ${JOBS:+-j "$JOBS"} ${TARGETS:-$default_targets}
}

# --- steps and tables ------------------------------------------------------------
record() {  # record NAME RC T0 [NOTE]: one row of the table
  local note=${4:-}
  [ "$2" = 124 ] && note="timed out${note:+; $note}"
  printf '| %-12s | %-4s | %5d s | %s |\n' "$1" "$([ "$2" = 0 ] && echo ok || echo FAIL)" \
    $((SECONDS - $3)) "$1.log${note:+ ($note)}" >>"$summary"
  [ "$2" = 0 ] || failed=1
  return "$2"
}

step() {  # step NAME COMMAND...: runs one check, logs to LOGS/NAME.log
  local name=$1 t0=$SECONDS
  shift
  "$@" >"$logs/$name.log" 2>&1
  record "$name" $? $t0
}

begin() {  # begin MODE: a fresh WORK/logs/MODE/ with its table, summary.md
  logs=$work/logs/$1
  rm -rf "$logs" && mkdir -p "$logs" || exit 1
  summary=$logs/summary.md
  failed=0
  printf '## gpu_check %s (%s)\n\n| step | status | time | log |\n|---|---|---|---|\n' "$1" \
    "$(date -u +%FT%TZ)" >"$summary"
}

finish() {  # prints the table with the GPU and the torch used; returns the status
  {
    echo
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
      echo "no GPU (nvidia-smi found none)"
    echo "torch ${SCORCH_GPU_TORCH:-?} from ${SCORCH_GPU_PYTHON:-?}; $(ldd --version 2>/dev/null | head -1);" \
      "$(nproc) cores; logs in $logs"
  } >>"$summary"
  cat "$summary"
  if [ -n "${OUT:-}" ]; then  # two files per subcommand: the device tool brings back 8 at most
    local mode
    mode=$(basename "$logs")
    mkdir -p "$OUT" && cp "$summary" "$OUT/summary-$mode.md" &&
      tar -czf "$OUT/logs-$mode.tar.gz" -C "$(dirname "$logs")" "$mode"
  fi
  [ $failed = 0 ] || echo "gpu_check: FAILED"
  return $failed
}

load_env() {
  [ -f "$work/env.sh" ] || { echo "gpu_check: no $work/env.sh: run launch/gpu_check.sh build first" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$work/env.sh"
}

prefix_steps() {  # unpack + env file (the first steps of build; `prefix` alone)
  step unpack unpack || { tail -n 20 "$logs/unpack.log"; return 1; }
  step env write_env || { tail -n 20 "$logs/env.log"; return 1; }
}

make_prefix() {
  begin prefix
  prefix_steps && load_env
  finish
}

build() {
  begin build
  { cmake --version && ninja --version; } >/dev/null || { echo "gpu_check: needs cmake and ninja" >&2; exit 1; }
  prefix_steps || { finish; return 1; }
  load_env
  set_cmake_args
  step probe probe || { finish; tail -n 40 "$logs/probe.log"; return 1; }
  step configure configure || { finish; tail -n 40 "$logs/configure.log"; return 1; }
  local t0=$SECONDS
  compile >"$logs/build.log" 2>&1
  record build $? $t0 "${TARGETS:-$default_targets}" || { finish; tail -n 40 "$logs/build.log"; return 1; }
  grep -h 'Scorch: ' "$logs/configure.log" >>"$summary"
  finish
}

skipped_tests() {  # GoogleTest's output on stdin: the names of the skipped tests, one a line
  sed -n 's/^\[  SKIPPED \] \([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_./]*\).*/\1/p' | sort -u
}

# gtest_step NAME SECONDS BINARY [ARGS]: a GoogleTest binary, failed when a
# test fails, none passes, or one is skipped (GTEST_SKIP: in a GPU check "no
# CUDA device visible" is a failure, not a pass); without a GPU (dry-run)
# skips are listed as expected.
gtest_step() {
  local name=$1 limit=$2 bin=$3 t0=$SECONDS rc skipped passed note
  shift 3
  timeout "$limit" "$bin" --gtest_output=json:"$logs/$name.json" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  skipped=$(skipped_tests <"$logs/$name.log")
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' "$logs/$name.log" | tail -1)
  note="${passed:-0} passed"
  [ "${passed:-0}" -gt 0 ] || [ -n "$skipped" ] || { [ $rc = 0 ] && rc=1; note="no test ran"; }
  if [ -n "$skipped" ]; then
    note="$note, $(echo "$skipped" | wc -l) SKIPPED: $(echo $skipped)"
    if [ "$cpu_only" = 1 ]; then note="$note (no GPU: expected)"; else [ $rc = 0 ] && rc=1; fi
  fi
  record "$name" $rc $t0 "$note"
}

mpirun_train() {  # `scorch train` of the toy config through launch/mpirun.sh, one rank
  local run=$work/mpirun_train device=cuda backend=nccl
  [ "$cpu_only" = 1 ] && device=cpu backend=mpi
  rm -rf "$run"
  SCORCH_BIN=$work/build/scorch timeout 180 bash "$src/launch/mpirun.sh" -n 1 --workdir "$run" \
    dist.device=$device dist.backend=$backend training.n_iters=100 training.log_freq=20 \
    training.snapshot_freq=100 training.snapshot_sampling=false data.loader_threads=0 || return 1
  ls "$run"/checkpoints/* >/dev/null || { echo "no checkpoint in $run/checkpoints"; return 1; }
  echo "mpirun -np 1 (dist.device=$device, dist.backend=$backend): $(ls "$run"/checkpoints)"
}

test_() {
  begin test
  load_env
  local bin=$work/build/tests
  step mpirun_np1 mpirun_np1 hostname
  gtest_step test_gpu 240 "$bin/test_gpu"
  gtest_step test_dist 120 "$bin/test_dist"
  step mpirun_train mpirun_train
  finish
}

bench() {  # about 2 minutes on an H100: DDPM++ only, 20 timed steps, 200 PC steps
  begin bench
  load_env
  local bin=$work/build/tests batch=128 steps=20 pc=200
  [ "$cpu_only" = 1 ] && batch=4 steps=2 pc=5
  step bench_step timeout 20 "$bin/bench_step" --steps 3
  step bench_train timeout 100 "$bin/bench_train" --configs "$src/configs/vp/cifar10_ddpmpp_continuous.yaml" \
    --batch "$batch" --sample-batch "$batch" --steps "$steps" --pc-steps "$pc" --precisions fp32,bf16
  { echo; cat "$logs/bench_step.log" "$logs/bench_train.log"; } >>"$summary"
  finish
}

# --- dry-run: a clean root -----------------------------------------------------
# A root built from this machine's files of the bare-host packages (hard
# links, mounted read-only in a private mount namespace), plus /usr/local/cuda,
# the checkout (with .venv's torch 2.11.0, the GPU machines' version) and
# PyPI's cmake and ninja (as the GPU image has them): no Debian library,
# header, .pc file, pkg-config or mpirun of Scorch's is in it.
dry_run() {
  [ "$(id -u)" = 0 ] || { echo "gpu_check: dry-run needs root (unshare, mount, chroot)" >&2; exit 1; }
  local root=${DRY_RUN_ROOT:-/tmp/scorch-gpu-check-root} tools=${DRY_RUN_TOOLS:-/tmp/scorch-gpu-check-tools}
  local py=${PYTHON:-$src/.venv/bin/python} t0=$SECONDS rc
  [ -x "$tools/cmake/data/bin/cmake" ] && [ -x "$tools/bin/ninja" ] ||
    "$py" -m pip install -q --target "$tools" cmake ninja || exit 1
  mkdir -p "$work" "$debs" ${OUT:+"$OUT"} || exit 1
  make_root "$root" || exit 1
  echo "gpu_check: clean root $root: $(find "$root" -xdev -type f | wc -l) files, $((SECONDS - t0)) s"
  export DRY_ROOT=$root DRY_TOOLS=$tools DRY_SRC=$src DRY_WORK=$work DRY_OUT=${OUT:-} DRY_DEBS=$debs DRY_PY=$py
  export DRY_STEPS=${DRY_RUN_STEPS:-build test${DRY_RUN_BENCH:+ bench}}
  # shellcheck disable=SC2016
  unshare -m --propagation private bash -c '
    set -e
    r=$DRY_ROOT
    mount --bind "$r" "$r" && mount -o remount,bind,ro "$r"
    mount -t proc proc "$r/proc" && mount --rbind /sys "$r/sys" && mount --rbind /dev "$r/dev"
    mount -t tmpfs tmpfs "$r/tmp"
    mount --bind "$DRY_TOOLS" "$r/opt/tools"
    if [ -d /usr/local/cuda ]; then mount --rbind /usr/local/cuda "$r/usr/local/cuda"; fi
    for d in "$DRY_SRC" "$DRY_WORK" ${DRY_OUT:+"$DRY_OUT"} "$DRY_DEBS"; do
      mkdir -p "$r$d" 2>/dev/null || true  # below /tmp (a tmpfs there); elsewhere made by make_root
      mountpoint -q "$r$d" || mount --bind "$d" "$r$d"
    done
    exec chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
      PATH=/opt/tools/cmake/data/bin:/opt/tools/bin:/usr/local/cuda/bin:/usr/sbin:/usr/bin \
      WORK="$DRY_WORK" OUT="$DRY_OUT" PYTHON="$DRY_PY" JOBS="${JOBS:-}" TARGETS="${TARGETS:-}" \
      GPU_CHECK_CPU=1 STEPS="$DRY_STEPS" SRC="$DRY_SRC" DEBS="$DRY_DEBS" \
      /bin/bash -c '\''cd "$SRC" && for m in $STEPS; do bash launch/gpu_check.sh $m "$DEBS" || exit 1; done'\''
  '
  rc=$?
  echo "gpu_check: dry-run (${DRY_STEPS// /, }) took $((SECONDS - t0)) s in all, exit $rc"
  return $rc
}

make_root() {  # ROOT: the bare host's packages' files, hard-linked from this machine
  local root=$1 alt d
  rm -rf "$root" && mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,usr/sbin,etc/alternatives,proc,sys,dev,tmp,root} || return 1
  mkdir -p "$root"/{opt/tools,usr/local/cuda} || return 1
  for d in bin lib lib64 sbin; do ln -s "usr/$d" "$root/$d"; done
  for d in "$src" "$work" "$debs" ${OUT:+"$OUT"}; do mkdir -p "$root$d"; done  # mount points
  # shellcheck disable=SC2046
  { dpkg-query -L $(apt_closure $(bare_host_packages | sort -u)) 2>/dev/null || true; } |  # some: not here
    sed -E 's#^/(bin|lib|lib64|sbin)/#/usr/\1/#' | grep -v '^/[^/]*$' | sort -u | while read -r f; do
      if [ -f "$f" ] || [ -L "$f" ]; then echo "$f"; fi
    done | xargs -d '\n' cp -P -l --parents -t "$root" || return 1
  cp /etc/passwd /etc/group /etc/hosts "$root/etc/"
  for alt in /etc/alternatives/*; do  # awk, cc, c++...: those whose target is in the root
    [ -L "$alt" ] && [ -e "$root$(readlink -f "$alt")" ] && cp -P "$alt" "$root/etc/alternatives/"
  done
  find /usr/bin /usr/sbin -maxdepth 1 -lname '/etc/alternatives/*' | while read -r f; do
    if [ -e "$root$(readlink "$f")" ]; then cp -P "$f" "$root$f"; fi
  done
  ldconfig -X -r "$root"
}

case $mode in
  prepare) prepare ;;
  prefix) make_prefix ;;
  build) build ;;
  test) test_ ;;
  bench) bench ;;
  run) build && { test_; t=$?; bench; b=$?; [ $t = 0 ] && [ $b = 0 ]; } ;;
  dry-run) dry_run ;;
  *) echo "usage: launch/gpu_check.sh prepare|prefix|build|test|bench|run|dry-run [DEBS]  (see the header)" >&2; exit 2 ;;
esac
