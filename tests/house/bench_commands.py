#!/usr/bin/env python3
"""Every command that a table of tests/README.md names as its reproduction exists.

  python3 tests/house/bench_commands.py     prints one line per failure

A table names its reproduction as a line with "`tests/bench/refresh.sh NAME`
runs:" followed by a ```sh block, one command per line (a trailing `\\`
continues a line; `# ...` ends it). The rules:

  - `bash tests/bench/refresh.sh --list` lists table NAME with the same
    commands in the same order, and every table it lists is named in
    tests/README.md;
  - a benchmark, `build/tests/bench_X`, is a target of tests/CMakeLists.txt
    (`add_executable(bench_X SOURCE)`), and each `--flag` the command passes
    is one that SOURCE registers (CLI11's add_option / add_flag, or a
    comparison with "--flag" where the bench parses its arguments itself);
  - `build/scorch SUBCOMMAND ...`: `scorch_cli` is a target of the top-level
    CMakeLists.txt, each leading word is a subcommand that src/cli/
    registers (add_subcommand) and each `--flag` an option or flag of src/cli/;
  - a script (a path ending in .sh) exists and is executable;
  - every path of the repository the command names (configs/..., a
    comma-separated list of them) exists.
`mpirun` and its options, and leading VAR=value assignments, are skipped.
Standard library only; needs no build directory.
"""
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README = "tests/README.md"
REFRESH = "tests/bench/refresh.sh"
MARK = re.compile(r"`tests/bench/refresh\.sh ([a-z0-9_]+)` runs:")  # NAME: lower case
FLAG = re.compile(r"""add_(?:option|flag)\(\s*"([^"]+)\"""")
COMPARED = re.compile(r"""==\s*"(--[A-Za-z0-9-]+)\"""")
SUBCOMMAND = re.compile(r"""add_subcommand\(\s*"([A-Za-z0-9_-]+)\"""")
EXECUTABLE = re.compile(r"add_executable\(\s*(bench_[A-Za-z0-9_]+)\s+([^\s)]+)")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def readme_tables():
    """[(line, NAME, [command, ...])] in the order of tests/README.md."""
    lines = read(README).splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARK.search(line)
        if not m:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        commands = []
        if j < len(lines) and lines[j].startswith("```"):
            current = []
            for body in lines[j + 1:]:
                if body.startswith("```"):
                    break
                body = re.sub(r"(^|\s+)#.*$", "", body).rstrip()
                continued = body.endswith("\\")
                current.append(body[:-1] if continued else body)
                if not continued:
                    command = " ".join(" ".join(current).split())
                    if command:
                        commands.append(command)
                    current = []
        out.append((i + 1, m.group(1), commands))
    return out


def refresh_tables(fail):
    """NAME -> [command, ...] as `refresh.sh --list` prints them."""
    try:
        listed = subprocess.run(["bash", os.path.join(ROOT, REFRESH), "--list"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"{REFRESH} --list failed: {e}")
        return {}
    out = {}
    for line in listed.splitlines():
        name, _, command = line.partition(": ")
        out.setdefault(name, []).append(" ".join(command.split()))
    return out


def registered(paths):
    names = set()
    for rel in paths:
        text = read(rel)
        for m in FLAG.finditer(text):
            names.update(n.strip() for n in m.group(1).split(","))
        names.update(COMPARED.findall(text))
    return names


def check_command(where, command, fail):
    try:
        words = shlex.split(command)
    except ValueError as e:
        fail(f"{where}: `{command}`: {e}")
        return
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    if words and words[0] == "mpirun":
        words.pop(0)
        while words and "/" not in words[0]:
            words.pop(0)  # mpirun's options and their values
    if not words:
        fail(f"{where}: `{command}`: no program")
        return
    program, args = words[0], words[1:]
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    if program.startswith("build/tests/bench_"):
        target = os.path.basename(program)
        sources = dict(EXECUTABLE.findall(read("tests/CMakeLists.txt")))
        if target not in sources:
            fail(f"{where}: `{command}`: {target} is not a target of tests/CMakeLists.txt")
            return
        source = os.path.join("tests", sources[target])
        known = registered([source])
        for f in flags:
            if f not in known:
                fail(f"{where}: `{command}`: {target} ({source}) registers no option {f}")
    elif program == "build/scorch":
        if "scorch_cli" not in read("CMakeLists.txt"):
            fail(f"{where}: `{command}`: the top-level CMakeLists.txt has no scorch_cli target")
        cli = sorted(os.path.join("src/cli", f) for f in os.listdir(os.path.join(ROOT, "src/cli"))
                     if f.endswith(".cpp"))
        subcommands = set()
        for rel in cli:
            subcommands.update(SUBCOMMAND.findall(read(rel)))
        leading = args[:1]
        if args and args[0] in ("data", "config"):  # groups: `data convert`, `config show`
            leading = args[:2]
        for word in leading:
            if word not in subcommands:
                fail(f"{where}: `{command}`: scorch has no subcommand '{word}' (src/cli/)")
        known = registered(cli)
        for f in flags:
            if f not in known:
                fail(f"{where}: `{command}`: src/cli/ registers no option {f}")
    elif program.endswith(".sh"):
        path = os.path.join(ROOT, program)
        if not os.path.isfile(path):
            fail(f"{where}: `{command}`: {program} does not exist")
        elif not os.access(path, os.X_OK):
            fail(f"{where}: `{command}`: {program} is not executable")
    else:
        fail(f"{where}: `{command}`: {program} is neither build/tests/bench_*, build/scorch "
             "nor a script")
    for a in args:
        for part in a.split("=", 1)[-1].split(","):
            if part.startswith(("configs/", "tests/", "launch/")) and not os.path.exists(
                    os.path.join(ROOT, part)):
                fail(f"{where}: `{command}`: {part} does not exist")


def main():
    failures = []
    fail = failures.append
    tables = readme_tables()
    listed = refresh_tables(fail)
    named = set()
    for line, name, commands in tables:
        where = f"{README}:{line}"
        named.add(name)
        if not commands:
            fail(f"{where}: table {name}: no ```sh block of commands after the line")
        for command in commands:
            check_command(where, command, fail)
        if listed and name not in listed:
            fail(f"{where}: {REFRESH} --list has no table {name}")
        elif listed and listed[name] != commands:
            fail(f"{where}: table {name}: the README runs {commands}, {REFRESH} runs {listed[name]}")
    for name in listed:
        if name not in named:
            fail(f"{REFRESH}: table {name} is not named in {README} (\"`tests/bench/refresh.sh "
                 f"{name}` runs:\")")
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
