#!/usr/bin/env bash
# The shape of the project, checked on every CI run so that it stays readable:
#   - README.md has at most 300 lines (details live beside what they describe);
#   - no function in src/ or data_tools/ is longer than 100 lines (lizard), except
#     tables and network constructors that follow a reference line by line,
#     which say so with a `#lizard forgives` comment and the reason;
#   - includes follow the layer order written in src/README.md (a folder of
#     src/ includes only itself and the layers below it; data_tools/ only from cli/);
#   - every path that a Markdown file or a source comment names exists: link
#     targets (and their #anchors), paths into the repository's folders, bare
#     file names (in a Markdown file: of its folder or below it), and nothing
#     above the repository (tests/house/doc_paths.py has the exact rules);
#   - CMake links follow includes: a file of src/NAME/ (or data_tools/) that
#     includes "OTHER/..." is built into a target that links OTHER's library,
#     directly or through PUBLIC/INTERFACE links, in the top-level
#     CMakeLists.txt, and every src/ folder has a target (tests/house/cmake_links.py);
#   - every command that a table of tests/README.md names as its reproduction
#     exists: a bench binary is a target of tests/CMakeLists.txt and each flag
#     it passes is one the bench's source registers, scorch's subcommands and
#     flags are src/cli/'s, scripts and configs exist, and tests/bench/refresh.sh
#     lists the table with the same commands (tests/house/bench_commands.py).
#
#   tests/house/house_test.sh [LIZARD]     default: .venv/bin/lizard (launch/install_deps.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# --- README length ------------------------------------------------------------
lines=$(wc -l <README.md)
[ "$lines" -le 300 ] ||
  fail "README.md has $lines lines (at most 300): move details to the README of the folder they describe"

# --- function length ----------------------------------------------------------
lizard=${1:-.venv/bin/lizard}
if [ -x "$lizard" ]; then
  long=$("$lizard" --length 100 --CCN 100000 --arguments 100000 --warnings_only src data_tools 2>&1)
  [ -z "$long" ] || fail "functions over 100 lines (split them into named steps):
$long"
elif [ "${CI:-}" = true ]; then
  fail "lizard not found at '$lizard': run bash launch/install_deps.sh (it installs lizard into .venv)"
else
  echo "SKIP: function lengths (lizard not found at '$lizard'; bash launch/install_deps.sh installs it)"
fi

# --- layer order ----------------------------------------------------------------
order=$(grep -m 1 -E '^core <- ' src/README.md) ||
  fail "src/README.md does not state the layer order (a line 'core <- ... <- cli')"
declare -A rank
r=0
for group in $(sed 's/ *<- */\n/g; s/[{}]//g; s/, */,/g' <<<"$order"); do
  for layer in ${group//,/ }; do rank[$layer]=$r; done
  r=$((r + 1))
done
for dir in src/*/; do
  layer=$(basename "$dir")
  [ -n "${rank[$layer]:-}" ] || { fail "src/$layer/ is not in the layer order of src/README.md"; continue; }
  while IFS=: read -r file include; do
    used=${include#*\"}
    used=${used%%/*}
    if [ "$used" = data_tools ]; then
      [ "$layer" = cli ] || fail "$file includes data_tools/ (only cli/ may)"
      continue
    fi
    [ -n "${rank[$used]:-}" ] || continue
    [ "$used" = "$layer" ] || [ "${rank[$used]}" -lt "${rank[$layer]}" ] ||
      fail "$file includes $used/, which is not below $layer/ in the layer order ($order)"
  done < <(grep -HE '^#include "[a-z_]+/' "$dir"*.h "$dir"*.cpp 2>/dev/null)
done

# --- paths named in docs and comments; CMake links --------------------------------
if command -v python3 >/dev/null; then
  bad=$(python3 tests/house/doc_paths.py 2>&1) ||
    fail "paths named in Markdown files or source comments that do not exist (name the file by its path from there, or drop the reference):
$bad"
  bad=$(python3 tests/house/cmake_links.py 2>&1) ||
    fail "CMakeLists.txt does not link what the sources include (add the library to the target's deps):
$bad"
  bad=$(python3 tests/house/bench_commands.py 2>&1) ||
    fail "a table of tests/README.md names a command that does not exist or that tests/bench/refresh.sh does not run (fix the command in both):
$bad"
else
  fail "python3 not found: doc paths, CMake links and bench commands need it (bash launch/install_deps.sh installs it)"
fi

if [ "$failures" -gt 0 ]; then
  echo "house_test: $failures check(s) failed" >&2
  exit 1
fi
echo "PASS: house_test (README $lines lines; function lengths; layer order; doc paths; CMake links; bench commands)"
