#!/usr/bin/env python3
"""CMake links follow includes.

  python3 tests/house/cmake_links.py     prints one line per failure

Reads the top-level CMakeLists.txt: each `scorch_library(NAME deps...)` is the
library scorch_NAME of src/NAME/ with PUBLIC deps; add_library/add_executable
of scorch_X is the target of src/X/ or of the top-level X/ (scorch_cli is
src/cli/, scorch_data_tools is data_tools/); target_link_libraries adds links
(PUBLIC, INTERFACE and plain ones pass on to whoever links the target,
PRIVATE ones do not). A file of a folder that includes "OTHER/..." for another
folder with a target (src/OTHER/, data_tools/) fails unless the folder's
target links scorch_OTHER's target directly or through PUBLIC/INTERFACE links.
Also fails: a src/ folder with sources but no target, and a link to a
scorch_* target that CMakeLists.txt does not define.
Standard library only; needs no build directory.
"""
import os
import re
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SOURCES = (".h", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/', re.M)
KEYWORDS = {"PUBLIC", "PRIVATE", "INTERFACE", "LINK_PUBLIC", "LINK_PRIVATE",
            "LINK_INTERFACE_LIBRARIES"}


def strip_comments(text):
    """text without its comments (their lines stay; a "#" inside a string stays)."""
    out, quote, i = [], False, 0
    while i < len(text):
        c = text[i]
        if quote and c == "\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            quote = not quote
        elif c == "#" and not quote:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def cmake_commands(text):
    """(line, command name, [arguments]) of every command call; a string is one argument."""
    text = strip_comments(text)
    out, call, pos = [], re.compile(r"(?<![\w$])([A-Za-z_]\w*)[ \t]*\("), 0
    arg = re.compile(r'"(?:\\.|[^"\\])*"|[^\s()"]+|[()]|\s+|.', re.S)
    while m := call.search(text, pos):
        args, depth, i = [], 1, m.end()
        while depth and i < len(text):
            t = arg.match(text, i)
            i = t.end()
            tok = t.group(0)
            if tok in ("(", ")"):
                depth += 1 if tok == "(" else -1
            elif not tok.isspace():
                args.append(tok)
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1).lower(), args))
        pos = i  # past the arguments: a "(" inside a string is no call
    return out


def main():
    cmake = "CMakeLists.txt"
    with open(os.path.join(ROOT, cmake), encoding="utf-8") as f:
        commands = cmake_commands(f.read())
    failures = []
    folder_of = {}  # target -> folder (relative to ROOT)
    links = {}  # target -> [(dep, passes on to dependents)]
    defined_at = {}
    for line, cmd, args in commands:
        if not args or "${" in args[0]:
            continue  # the body of a function(), in terms of its parameters
        if cmd == "scorch_library":
            target = f"scorch_{args[0]}"
            folder_of[target] = f"src/{args[0]}"
            links.setdefault(target, []).extend((d, True) for d in args[1:])
            defined_at[target] = line
        elif cmd in ("add_library", "add_executable"):
            target = args[0]
            defined_at[target] = line
            links.setdefault(target, [])
            short = target[len("scorch_"):] if target.startswith("scorch_") else None
            for folder in (f"src/{short}", short) if short else ():
                if os.path.isdir(os.path.join(ROOT, folder)):
                    folder_of[target] = folder
                    break
        elif cmd == "target_link_libraries":
            passes = True
            for a in args[1:]:
                if a in KEYWORDS:
                    passes = a != "PRIVATE" and a != "LINK_PRIVATE"
                else:
                    links.setdefault(args[0], []).append((a, passes))
    for target, deps in links.items():
        for dep, _ in deps:
            if dep.startswith("scorch") and "${" not in dep and dep not in defined_at:
                failures.append(f"{cmake}: {target} links {dep}, which it does not define")

    def closure(target):
        """Every target whose headers target's own sources may use."""
        seen, todo = set(), [d for d, _ in links.get(target, [])]
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo += [d for d, passes in links.get(t, []) if passes]
        return seen

    target_of = {folder: target for target, folder in folder_of.items()}
    src_folders = sorted(e.name for e in os.scandir(os.path.join(ROOT, "src")) if e.is_dir())
    for name in src_folders:
        folder = f"src/{name}"
        if folder not in target_of and any(
                f.endswith(SOURCES) for _, _, fs in os.walk(os.path.join(ROOT, folder)) for f in fs):
            failures.append(f"{cmake}: {folder}/ has no target (add scorch_library({name} deps...))")
    for folder, target in sorted(target_of.items()):
        linked = closure(target)
        for top, _, names in sorted(os.walk(os.path.join(ROOT, folder))):
            for file in sorted(n for n in names if n.endswith(SOURCES)):
                path = os.path.relpath(os.path.join(top, file), ROOT)
                with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
                    used = sorted(set(INCLUDE.findall(f.read())))
                for other in used:
                    dep = target_of.get(f"src/{other}") or target_of.get(other)
                    if dep and dep != target and dep not in linked:
                        failures.append(
                            f"{path} includes {other}/, but {target} ({cmake} line {defined_at[target]}) "
                            f"does not link {dep}, directly or through its links")
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
