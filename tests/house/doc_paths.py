#!/usr/bin/env python3
"""Every path that a Markdown file or a source comment names exists.

  python3 tests/house/doc_paths.py     prints FILE:LINE: PATH: why, one per failure

Reads every Markdown file of the repository (all of its text, code blocks
included) and the comments of the sources and scripts: `//` in *.h *.cpp
*.cu *.cuh, `#` in *.sh *.cmake CMakeLists.txt *.sbatch and the other files
of src/, data_tools/, tests/, launch/, docker/, .ci/ and the top-level
CMakeLists.txt. The rules:

  - A Markdown link `[text](target)` that is not a URL exists relative to the
    Markdown file's folder; its `#anchor`, into a Markdown file, is one of
    that file's headings (GitHub's anchors).
  - A path with a `/` ending in a file extension of the repository (.h .cpp
    .cu .cuh .md .sh .cmake .yaml .sbatch, or CMakeLists.txt) exists relative
    to the file's folder, the repository root or a top-level folder (src/,
    tests/, configs/, ...) -- checked when its first component is a folder
    there, so that users' paths (`runs/ve/config.yaml`, `WORKDIR/config.yaml`)
    and other projects' headers (`torch/torch.h`) are not; `../` is relative
    to the file's folder.
  - A bare file name with a source or doc extension (.h .cpp .cu .cuh .sh
    .cmake .sbatch .md, CMakeLists.txt) is a file of the repository: for a
    comment, anywhere in it; for a Markdown file, in its folder or below it,
    or at the top level (its readers see only that folder: data_tools/'s page
    names src/data/npz.h by its path, not as `npz.h`).
  - A Markdown file (.md) named by a path whose first component is not a
    folder of the repository is still one of the repository's: the docs
    cite no notes outside it (`notes/metrics.md`, with no folder `notes/`).
  - A path above the repository (`../` from the root) always fails.

Not checked, as not naming a file of this repository: names with a
placeholder (`*`, `{`, `<`, `$`, `%`, `NNNNN`, `...`, or a one-letter stem
such as `nn/x.h`); absolute and home paths; outside a folder of the
repository, a name right after a peer's `owner/repo` or possessive
(yang-song/score_sde's `README.md`, Prometheus's docs/guides/file-sd.md); a
bare name that a source or script of the repository also uses in its code
(a header CMake looks for, `nccl.h`; a file a script writes, `summary.md`).
Standard library only; needs no build directory.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

PATH_EXTS = (".h", ".cpp", ".cu", ".cuh", ".md", ".sh", ".cmake", ".yaml", ".sbatch")
BARE_EXTS = (".h", ".cpp", ".cu", ".cuh", ".sh", ".cmake", ".sbatch", ".md")
CXX_EXTS = (".h", ".cpp", ".cu", ".cuh")
HASH_EXTS = (".sh", ".cmake", ".sbatch")
PLACEHOLDERS = ("*", "{", "<", "$", "%", "NNNNN", "...")

# A path-like token; placeholder characters belong to it, so that a token
# with a placeholder is seen whole (and skipped), not cut into real-looking parts.
TOKEN = re.compile(r"[A-Za-z0-9_.\-/~+*{}<>$%]+")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)>`\"']*")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
# A peer right before a name: `owner/repo`, or a possessive (`Prometheus's`).
PEER = re.compile(r"(?:^|[\s(`])(?:[\w.-]+/[\w.-]+|[\w.-]+(?:/[\w.-]+)?'s)`?\s*`?$")


def repo_files():
    """Tracked files and untracked ones that are not ignored (files being added)."""
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout.decode()
        files = [f for f in out.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]
        if files:
            return sorted(set(files))
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []  # not a git checkout: the tree less what .gitignore names
    for top, dirs, names in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        dirs[:] = [d for d in dirs if d != "__pycache__" and (d == ".ci" or not d.startswith("."))
                   and not (rel == "." and d.startswith(("build", "workdir", "gpu-check")))]
        files += [os.path.normpath(os.path.join(rel, n)) for n in names if not n.endswith(".pyc")]
    return sorted(files)


def commented(f):
    """Whether f is a source or script whose comments are checked."""
    if f.startswith(("src/", "data_tools/", "tests/")):
        return f.endswith(CXX_EXTS + HASH_EXTS) or os.path.basename(f) == "CMakeLists.txt"
    if f.startswith(("launch/", "docker/", ".ci/")):
        return not f.endswith(".md")
    return f == "CMakeLists.txt"


def split_comments(path, text):
    """(line number, code, comment) for every line of a source or script."""
    cxx = path.endswith(CXX_EXTS)
    for n, line in enumerate(text.splitlines(), 1):
        if cxx and line.lstrip().startswith("#"):
            yield n, line, ""  # a preprocessor line
            continue
        quote, i = None, 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = None
            elif c in "\"'" and not (c == "'" and i > 0 and line[i - 1].isalnum()):
                quote = c
            elif cxx and line.startswith("//", i):
                yield n, line[:i], line[i + 2:]
                break
            elif not cxx and c == "#" and (i == 0 or line[i - 1] in " \t"):
                yield n, line[:i], "" if (n == 1 and line.startswith("#!")) else line[i + 1:]
                break
            i += 1
        else:
            yield n, line, ""


def heading_anchors(path, cache={}):
    """GitHub's anchors of the headings of a Markdown file."""
    if path not in cache:
        count, out, fence = {}, set(), False
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            for line in f:
                if line.startswith("```"):
                    fence = not fence
                m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                    out.add(f"{a}-{count[a]}" if a in count else a)  # repeats: a-1, a-2, ...
                    count[a] = count.get(a, 0) + 1
        cache[path] = out
    return cache[path]


class Checker:
    def __init__(self, files):
        self.files = set(files)
        self.paths_of = {}  # file name -> the files of that name
        for f in files:
            self.paths_of.setdefault(os.path.basename(f), []).append(f)
        self.basenames = set(self.paths_of)
        self.dirs = {""}
        for f in files:
            d = os.path.dirname(f)
            while d:
                self.dirs.add(d)
                d = os.path.dirname(d)
        self.tops = sorted(d for d in self.dirs if d and "/" not in d)
        self.code_names = set()  # bare file names the sources and scripts use in code
        self.failures = []

    def fail(self, where, line, path, why):
        self.failures.append((where, line, f"{where}:{line}: {path}: {why}"))

    def exists(self, rel):
        return rel in self.files or rel in self.dirs or os.path.exists(os.path.join(ROOT, rel))

    def resolve(self, where, path):
        """path relative to where's folder, or None above the repository."""
        rel = os.path.normpath(os.path.join(os.path.dirname(where), path))
        return None if rel == ".." or rel.startswith("../") else rel

    def bases(self, where):
        """Where a path may start: the file's folder, the root, a top-level folder."""
        return [os.path.dirname(where), ""] + self.tops

    def repo_folder(self, where, first):
        return any(os.path.join(b, first) in self.dirs for b in self.bases(where))

    def peer(self, before):
        m = PEER.search(before)
        return bool(m) and not self.repo_folder("", m.group(0).strip(" (`").split("/")[0])

    def link(self, where, line, target):
        if SCHEME.match(target):
            return
        path, _, anchor = target.partition("#")
        rel = self.resolve(where, path) if path else where
        if rel is None:
            self.fail(where, line, target, "points outside the repository")
        elif not self.exists(rel):
            self.fail(where, line, target, "link target does not exist")
        elif anchor and rel.endswith(".md") and anchor not in heading_anchors(rel):
            self.fail(where, line, target, f"{rel} has no heading with anchor #{anchor}")

    def token(self, where, line, tok, before, markdown):
        tok = tok.rstrip(".-/")
        name = os.path.basename(tok)
        stem = name.split(".")[0]
        if not (tok.endswith(PATH_EXTS) or name == "CMakeLists.txt") or len(stem) <= 1:
            return  # not a file name, or a placeholder such as `nn/x.h` (or `.cpp`)
        if any(p in tok for p in PLACEHOLDERS) or tok.startswith(("/", "~")):
            return
        here = os.path.dirname(where)
        if "/" in tok:
            first = tok.split("/", 1)[0]
            if first == "..":
                rel = self.resolve(where, tok)
                if rel is None:
                    self.fail(where, line, tok, "points outside the repository")
                elif not self.exists(rel):
                    self.fail(where, line, tok, f"does not exist (from {here or '.'}/)")
            elif first == ".":  # a Markdown file's folder, or a command's (the root)
                if not any(self.exists(os.path.normpath(os.path.join(b, tok))) for b in (here, "")):
                    self.fail(where, line, tok, f"does not exist (from {here or '.'}/ or the root)")
            elif self.repo_folder(where, first):
                if not any(self.exists(os.path.normpath(os.path.join(b, tok))) for b in self.bases(where)):
                    self.fail(where, line, tok, "does not exist (from this file's folder, the root or a top-level folder)")
            elif name.endswith(".md") and name not in self.basenames and not self.peer(before):
                self.fail(where, line, tok, "not a Markdown file of this repository (the docs cite only their own)")
            return
        if not name.endswith(BARE_EXTS) and name != "CMakeLists.txt":
            return  # a bare .yaml: a user's file (config.yaml)
        if name not in self.basenames:
            if name not in self.code_names and not self.peer(before):
                self.fail(where, line, tok, "no file of that name in the repository")
        elif markdown and here and name not in self.files and not any(
                f.startswith(here + "/") for f in self.paths_of[name]):
            self.fail(where, line, tok, f"not in {here}/ or below it: name it by its path from there")

    def text(self, where, line, text, markdown, previous=""):
        """Checks the names in one line; previous: the line before, for a peer's name there."""
        text = URL.sub(" ", text)
        previous = URL.sub(" ", previous).strip()
        for m in TOKEN.finditer(text):
            before = text[:m.start()]
            self.token(where, line, m.group(0), before if before.strip() else previous + " ", markdown)


def main():
    files = repo_files()
    check = Checker(files)
    sources = {}
    for f in filter(commented, files):
        try:
            with open(os.path.join(ROOT, f), encoding="utf-8") as fh:
                sources[f] = list(split_comments(f, fh.read()))
        except UnicodeDecodeError:
            continue
        for _, code, _ in sources[f]:
            check.code_names.update(os.path.basename(t) for t in TOKEN.findall(code))
    for md in (f for f in files if f.endswith(".md")):
        with open(os.path.join(ROOT, md), encoding="utf-8") as fh:
            previous = ""
            for n, line in enumerate(fh, 1):
                for m in LINK.finditer(line):
                    check.link(md, n, m.group(1))
                # the link targets are checked above; their texts like the rest
                line = LINK.sub(lambda m: m.group(0)[:m.start(1) - m.start(0)], line)
                check.text(md, n, line, True, previous)
                previous = line
    for f, lines in sources.items():
        previous = ""
        for n, _, comment in lines:
            if comment:
                check.text(f, n, comment, False, previous)
            previous = comment
    seen = set()
    for where, line, message in sorted(check.failures, key=lambda x: (x[0], x[1])):
        if message not in seen:
            seen.add(message)
            print(message)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
