#!/usr/bin/env python3
"""The tables of tests/README.md ("Measured") from the outputs of their commands.

  python3 tests/bench/refresh_format.py NAME LOG...

tests/bench/refresh.sh runs a table's commands (each one's stdout into LOG,
its wall seconds into LOG.seconds) and calls this with the table's name; it
prints the table in the README's columns, in Markdown, one row per row the
bench printed (the README merges some rows, e.g. `100 / 1000`), then the
bench's own header line (threads, load average) where it has one.
Standard library only.
"""
import json
import os
import re
import sys


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def seconds(path):
    return float(read(path + ".seconds"))


def is_number(s):
    try:
        float(s.rstrip("%"))
        return True
    except ValueError:
        return False


def rows(text, numbers, before=0):
    """Lines that end in `numbers` numeric fields after `before` other words:
    [label, word..., number...] with the label (which may hold spaces) first."""
    out = []
    for line in text.splitlines():
        parts = line.rsplit(None, numbers + before)
        if len(parts) == numbers + before + 1 and all(is_number(p) for p in parts[-numbers:]):
            out.append(parts)
    return out


def table(header, body):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in body:
        print("| " + " | ".join(str(x) for x in r) + " |")


def context(text, prefix):
    """The bench's line that starts with prefix (its threads and load), if any."""
    for line in text.splitlines():
        if line.startswith(prefix):
            print(f"\n{line.strip()}")
            return


def group(n):
    return f"{n:,.0f}"


def ratio(x, base):
    return f"{x / base:.2f}×" if base else "-"


def toy(logs):
    names = ["toy VP (the embedded default, command 1)", "toy sub-VP", "toy VE (reverse diffusion + Langevin)",
             "toy EDM recipe (`edm/eight_gaussians_edm.yaml`)"]
    body = []
    for name, log in zip(names, logs):
        j = json.loads(read(log).strip().splitlines()[-1])
        q = j["quality"]
        batch = j["images_seen"] // max(j["step"], 1)
        body.append([name, f"{j['step']:,} x {batch}", f"{seconds(log):.0f} s", f"{q['swd']:.3f}",
                     f"{q['swd_floor']:.3f}", f"{q['swd_gaussian']:.3f}"])
    table(["run", "steps", "time", "SW1 to held-out", "floor", "Gaussian baseline"], body)


def passthrough(logs):
    for log in logs:
        for line in read(log).splitlines():
            if line.startswith("|"):
                print(line)


def recipes(logs):
    passthrough(logs)


def loader(logs):
    text = read(logs[0])
    by = {}
    for name, threads, rate, raw, convert in rows(text, 4):
        d = by.setdefault(name.strip(), {"raw": float(raw), "convert": float(convert)})
        d[int(threads)] = float(rate)
    body = [[n, *(f"{group(d[t])}/s" if t in d else "-" for t in (1, 2, 4)), f"{group(d['raw'])}/s",
             f"{group(d['convert'])}/s"] for n, d in by.items()]
    table(["dataset", "1 thread", "2 threads", "4 threads", "raw reads alone (1 thread)",
           "conversion alone (1 thread)"], body)
    context(text, "loader throughput")


def convert(logs):
    table(["step", "seconds"], [["`scorch data convert`, Fashion-MNIST's 60,000 training images",
                                 f"{seconds(logs[0]):.1f}"],
                                ["`scorch data verify` of the result", f"{seconds(logs[1]):.2f}"]])


SDES = ("VE", "VP", "subVP")


def sampler_throughput(logs):
    text = read(logs[0])
    body = [[label.strip(), sde, nfe, per_s] for label, sde, nfe, _, per_s, _ in rows(text, 4, 1)
            if sde in SDES]
    table(["sampler, steps", "SDE", "NFE/sample", "samples/s"], body)
    context(text, "bench_sampler")


def sampler_quality(logs):
    text = read(logs[0])
    body = [[label.strip(), sde, nfe, sw1, spread]
            for label, sde, nfe, sw1, _, spread, _, _ in rows(text, 6, 1) if sde in SDES]
    table(["sampler, steps", "SDE", "NFE", "SW1", "spread"], body)
    context(text, "SW1 of exact vs exact")
    context(text, "bench_sampler")


def eval_(logs):
    text = read(logs[0])
    body = []
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}([\d.]+)\s+(samples|images)\b(.*)$", line)
        if m:
            body.append([m.group(1), f"{m.group(2)} {m.group(3)}{m.group(4)}"])
    table(["stage", "per second"], body)
    context(text, "scorch eval throughput")


def dist(logs):
    passthrough(logs)
    context(read(logs[0]), "bench_dist")


def step(logs):
    body = []
    for log in logs:
        text = read(log)
        base = {}
        config = ""
        for line in text.splitlines():
            if line.startswith("update half"):
                config = os.path.basename(line.split(", ")[1]).removesuffix(".yaml")
            parts = line.split(None, 8)
            if len(parts) < 9 or parts[0] != "DDPM++" or not is_number(parts[7]):
                continue
            _, scale, _, top, launches, all_ops, reads, ms, label = parts
            ms = float(ms)
            if label.startswith("per tensor"):
                base[scale] = ms
                shown = f"{ms:.0f}"
            else:
                shown = f"{ms:.0f} ({ratio(ms, base.get(scale, 0))})"
            body.append([config, label, scale, group(float(top)), group(float(launches)),
                         group(float(all_ops)), reads, shown])
        context(text, "update half")
    table(["config", "update", "loss scale", "top-level ops", "CUDA launches (estimate)", "all ops",
           "host reads", "ms per step"], body)


def train_rows(text):
    """bench_train's training rows {config: images/s} and PC rows {config: samples/s}."""
    train, pc = {}, {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1] in ("fp32", "bf16", "fp16") and is_number(parts[2]):
            train[parts[0]] = float(parts[2])
        elif len(parts) > 3 and parts[1] == "PC" and is_number(parts[-2]):
            pc[parts[0]] = float(parts[-2])
    return train, pc


def patch(logs):
    train, pc = train_rows(read(logs[0]))
    _, pc_full = train_rows(read(logs[1]))
    w, p = "adm.yaml", "patch16.yaml"
    table(["", "whole 28×28 ADM", "16×16 patches"], [
        ["training images/s", f"{train[w]:.1f}", f"{train[p]:.1f} ({ratio(train[p], train[w])})"],
        ["PC sampling samples/s, tiles", f"{pc[w]:.2f}", f"{pc[p]:.2f} ({ratio(pc[p], pc[w])})"],
        ["PC sampling samples/s, `full`", "", f"{pc_full[p]:.2f} ({ratio(pc_full[p], pc[w])})"]])
    context(read(logs[0]), "bench_train")


def checkpointing(logs):
    text = read(logs[0])
    body, last = [], None
    for name, mode, graph, g, peak, p, ms, m in rows(text, 6, 1):
        if mode not in ("none", "attention", "blocks"):
            continue
        shown = name.strip() if name.strip() != last else ""
        last = name.strip()
        if mode == "none":
            body.append([shown, mode, graph, peak, ms])
        else:
            body.append([shown, mode, f"{graph} ({g})", f"{peak} ({p})", f"{ms} ({m})"])
    table(["model", "checkpointing", "graph MiB", "step peak MiB", "forward+backward ms"], body)
    context(text, "bench_train")


def sharding(logs):
    text = read(logs[0])
    body, last = [], None
    for name, params, ranks, mode, *figures in rows(text, 6, 3):
        if mode not in ("none", "optimizer", "optimizer_ema"):
            continue
        first = name.strip() != last
        last = name.strip()
        body.append([name.strip() if first else "", group(float(params)) if first else "", ranks, mode,
                     *figures])
    table(["model", "params", "ranks", "shard_state", "state MiB", "vs none/W", "resident MiB",
           "heap MiB", "peak MiB", "update ms"], body)
    context(text, "bench_train")


def gradients(logs):
    text = read(logs[0])
    body = [[name.strip(), *figures] for name, *figures in rows(text, 4)]
    table(["model", "params MiB", "buckets MiB", "other held MiB", "gradient bytes / parameter bytes"],
          body)
    context(text, "bench_train")


FORMATS = {"toy": toy, "recipes": recipes, "loader": loader, "convert": convert,
           "sampler_throughput": sampler_throughput, "sampler_quality": sampler_quality,
           "eval": eval_, "dist": dist, "step": step, "patch": patch,
           "checkpointing": checkpointing, "sharding": sharding, "gradients": gradients}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in FORMATS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    FORMATS[sys.argv[1]](sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
