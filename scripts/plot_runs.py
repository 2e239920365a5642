#!/usr/bin/env python3
"""Plot mqtrain run logs: training loss vs iteration and test accuracy vs epoch.

Reads run directories written by `mqtrain pretrain|quantize`
(Results/<model>-<dataset>/runs-Quant/<run>/ with loss.txt, train-acc.txt, lr.txt
("iter, value" lines), test-acc.txt ("epoch, value" lines, epoch counted from 0),
metrics.jsonl and config.json). Runs that differ only by seed (the trials of one
`--trials N` invocation) are grouped into one curve: the mean over the group, with a
shaded band from the minimum to the maximum.

Grouping (--group-by):
  (default)        the run directory name with its "-seed<N>" suffix removed, prefixed
                   by the <model>-<dataset> folder when the runs come from several;
  KEY[,KEY...]     config.json keys, when every key is present in the runs' config.json
                   (e.g. "mode" or "mode,optimizer,lr"); the label joins their values;
  REGEX            otherwise a Python regex searched in the run directory path; the
                   label is the concatenation of its capture groups, or the whole match
                   when it has none. A run the regex does not match is an error.

Arguments may be run directories, globs (quote them), or any directory above runs
(every run directory below it, i.e. every folder holding a config.json, is used).

Example:
  python3 scripts/plot_runs.py 'Results/resnet20-cifar10/runs-Quant/*' \\
      --out runs.png --title 'ResNet20 / CIFAR-10'

Needs only numpy and matplotlib (Debian: python3-numpy, python3-matplotlib).
"""
import argparse
import glob
import json
import os
import re
import sys

import numpy as np

RUN_FILES = ("loss.txt", "test-acc.txt", "config.json")


def fail(msg):
    sys.exit(f"plot_runs.py: error: {msg}")


def read_pairs(path):
    """Reads "x, value" lines into two float arrays; errors name the file and line."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    xs, ys = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2:
                fail(f"{path}:{n}: expected 'x, value', got {line!r}")
            try:
                xs.append(float(parts[0]))
                ys.append(float(parts[1]))
            except ValueError:
                fail(f"{path}:{n}: not numbers: {line!r}")
    if not xs:
        fail(f"{path}: empty (the run wrote no data yet, or was interrupted before its "
             f"first {'epoch' if 'test' in os.path.basename(path) else 'iteration'})")
    return np.asarray(xs), np.asarray(ys)


def read_config(path):
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"{path}: not valid JSON: {e}")
    if not isinstance(cfg, dict):
        fail(f"{path}: expected a JSON object")
    return cfg


def expand_args(args):
    """Run directories from paths/globs, in a stable order without duplicates."""
    runs = []
    for arg in args:
        matches = sorted(glob.glob(arg)) if glob.has_magic(arg) else [arg]
        if not matches:
            fail(f"{arg}: no file or directory matches")
        for m in matches:
            if not os.path.exists(m):
                fail(f"{m}: no such directory")
            if not os.path.isdir(m):
                fail(f"{m}: not a directory (expected a run directory)")
            if os.path.isfile(os.path.join(m, "config.json")) or os.path.isfile(
                    os.path.join(m, "loss.txt")):
                runs.append(m)
                continue
            below = sorted(os.path.dirname(p) for p in
                           glob.glob(os.path.join(glob.escape(m), "**", "config.json"),
                                     recursive=True))
            if not below:
                fail(f"{m}: not a run directory (no config.json or loss.txt) and no run "
                     f"directories below it")
            runs.extend(below)
    seen, out = set(), []
    for r in runs:
        key = os.path.realpath(r)
        if key not in seen:
            seen.add(key)
            out.append(os.path.normpath(r))
    return out


def load_run(d):
    for name in RUN_FILES:
        if not os.path.isfile(os.path.join(d, name)):
            fail(f"{d}: missing {name} (not an mqtrain run directory?)")
    it, loss = read_pairs(os.path.join(d, "loss.txt"))
    ep, acc = read_pairs(os.path.join(d, "test-acc.txt"))
    return {"dir": d, "config": read_config(os.path.join(d, "config.json")),
            "iter": it, "loss": loss, "epoch": ep + 1, "test_acc": acc}


def group_label(run, spec, keys, regex, multi_parent):
    d = run["dir"]
    if keys is not None:
        return ", ".join(f"{k}={run['config'][k]}" for k in keys)
    if regex is not None:
        m = regex.search(d)
        if not m:
            fail(f"{d}: --group-by regex {spec!r} does not match this run")
        return "".join(g or "" for g in m.groups()) if m.groups() else m.group(0)
    name = re.sub(r"-seed\d+$", "", os.path.basename(d))
    if multi_parent:
        name = f"{os.path.basename(os.path.dirname(os.path.dirname(d)))}/{name}"
    return name


def band(xs_list, ys_list, what, label):
    """Mean, min and max over the runs of a group, on the first run's x values."""
    n = min(len(y) for y in ys_list)
    if any(len(y) != n for y in ys_list):
        print(f"plot_runs.py: warning: group {label!r}: runs have {sorted({len(y) for y in ys_list})}"
              f" {what} points; plotting the first {n}", file=sys.stderr)
    x = xs_list[0][:n]
    for other in xs_list[1:]:
        if not np.array_equal(other[:n], x):
            print(f"plot_runs.py: warning: group {label!r}: {what} x values differ between "
                  f"runs; using the first run's", file=sys.stderr)
            break
    y = np.stack([v[:n] for v in ys_list])
    return x, y.mean(0), y.min(0), y.max(0)


def main():
    ap = argparse.ArgumentParser(
        description="Plot mqtrain runs: training loss vs iteration and test accuracy vs "
                    "epoch, one mean curve with a min/max band per group of trials.")
    ap.add_argument("runs", nargs="+", help="run directories, globs, or directories above runs")
    ap.add_argument("--group-by", metavar="KEYS|REGEX",
                    help="config.json key(s), comma-separated, or a regex on the run path "
                         "(default: run name without -seed<N>)")
    ap.add_argument("--out", default="runs.png", help="output image (default: runs.png)")
    ap.add_argument("--title", help="figure title")
    ap.add_argument("--dpi", type=int, default=100, help="resolution (default: 100)")
    args = ap.parse_args()

    runs = [load_run(d) for d in expand_args(args.runs)]

    keys = regex = None
    if args.group_by:
        cand = [k.strip() for k in args.group_by.split(",")]
        if all(k and all(k in r["config"] for r in runs) for k in cand):
            keys = cand
        else:
            try:
                regex = re.compile(args.group_by)
            except re.error as e:
                fail(f"--group-by {args.group_by!r}: not config.json keys of every run, and not "
                     f"a valid regex: {e}")
    parents = {os.path.dirname(os.path.dirname(r["dir"])) for r in runs}
    groups = {}
    for r in runs:
        groups.setdefault(group_label(r, args.group_by, keys, regex, len(parents) > 1), []).append(r)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (label, members) in enumerate(groups.items()):
        color = f"C{i % 10}"
        legend = f"{label} (n={len(members)})"
        x, m, lo, hi = band([r["iter"] for r in members], [r["loss"] for r in members],
                            "loss", label)
        ax_loss.plot(x, m, color=color, lw=1.4, label=legend)
        ax_loss.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
        x, m, lo, hi = band([r["epoch"] for r in members], [r["test_acc"] for r in members],
                            "test accuracy", label)
        ax_acc.plot(x, m, color=color, lw=1.4, marker="o", ms=4, label=legend)
        ax_acc.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)

    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss (running mean)")
    ax_loss.set_title("training loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8, loc="best")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}: {len(runs)} runs in {len(groups)} groups"
          + "".join(f"\n  {k}: {len(v)} runs" for k, v in groups.items()))


if __name__ == "__main__":
    main()
