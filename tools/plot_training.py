#!/usr/bin/env python3
"""Training curves as D2L draws them: train loss, train accuracy and test accuracy against the epoch.

    build/release/examples/lenet_fashion_mnist --log lenet.csv
    /usr/bin/python3 tools/plot_training.py lenet.csv --png lenet.png
    /usr/bin/python3 tools/plot_training.py lenet.csv bn_lenet.csv --png both.png --title "Fashion-MNIST"

Reads the CSV files the trainer's --log writes (header
epoch,loss,train_acc,test_acc,seconds,examples_per_sec; other columns are ignored) and draws, for
each file, one axes like d2l.Animator's in the book's train_ch6: x = epoch, the lines 'train loss'
(solid), 'train acc' (magenta dashed) and 'test acc' (green dash-dot), a grid, y from 0. Several
files give one subplot each, side by side, titled by file name. It also prints each file's last
epoch. Needs Debian's python3-matplotlib (run it with /usr/bin/python3, not a venv's python3).
"""
import argparse
import csv
import math
import os
import sys
import textwrap

COLUMNS = ("epoch", "loss", "train_acc", "test_acc")
# d2l.Animator's fmts ('-', 'm--', 'g-.', 'r:') and legend, in the order train_ch6 passes them
LINES = (("loss", "-", "train loss"), ("train_acc", "m--", "train acc"), ("test_acc", "g-.", "test acc"))


def read_log(path):
    """{column: [float, ...]} of one --log CSV; ValueError naming the file if it is not one."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            header = ",".join(reader.fieldnames or [])
            header = header if len(header) <= 80 else header[:77] + "..."
            raise ValueError(f"{path}: not a trainer --log CSV (no column {', '.join(missing)} in its first line "
                             f"{header!r})")
        data = {c: [] for c in COLUMNS}
        for line, row in enumerate(reader, start=2):
            try:
                values = {c: float(row[c]) for c in COLUMNS}
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: not a number in {row}") from None
            for c in COLUMNS:
                data[c].append(values[c])
    if not data["epoch"]:
        raise ValueError(f"{path}: no epochs yet (only the header)")
    return data


def plot(logs, png, title):
    import matplotlib
    if png:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(logs)
    # d2l.Animator's figure is 3.5 x 2.5 inches; a little larger, so a title fits
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False)
    for ax, (path, data) in zip(axes[0], logs):
        epochs = data["epoch"]
        for column, fmt, label in LINES:  # a single epoch is a point: give it a marker
            ax.plot(epochs, data[column], fmt, label=label, marker="o" if len(epochs) == 1 else None)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs), max(epochs) if max(epochs) > min(epochs) else min(epochs) + 1)
        top = max(max(data[c]) for c, _, _ in LINES)
        ax.set_ylim(0, max(1.0, math.ceil(top * 10) / 10))
        ax.grid(True)
        ax.legend()
        if n > 1 or not title:
            ax.set_title(os.path.splitext(os.path.basename(path))[0], fontsize=10)
    if title:
        if n > 1:
            fig.suptitle(title)
        else:
            axes[0][0].set_title(textwrap.fill(title, 64), fontsize=10)
    fig.tight_layout()
    if png:
        fig.savefig(png, dpi=120)
    else:
        plt.show()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", nargs="+", help="CSV files written by lenet_fashion_mnist --log FILE")
    ap.add_argument("--png", help="write the figure here (without it: matplotlib's window)")
    ap.add_argument("--title", help="the figure's title (default: each subplot is titled by its file name)")
    args = ap.parse_args(argv)
    logs = []
    for path in args.csv:
        try:
            logs.append((path, read_log(path)))
        except (OSError, ValueError) as e:
            print(f"plot_training.py: {e}", file=sys.stderr)
            return 1
    for path, d in logs:
        print(f"{path}: epoch {d['epoch'][-1]:g}: loss {d['loss'][-1]:.3f}, train acc {d['train_acc'][-1]:.3f}, "
              f"test acc {d['test_acc'][-1]:.3f}")
    plot(logs, args.png, args.title)
    if args.png:
        print(f"figure written to {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
