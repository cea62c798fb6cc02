#!/usr/bin/env python3
"""Plot train and val loss from one or more llm.dion loss.csv files.

    /usr/bin/python3 scripts/plot_loss.py out/a/loss.csv out/b/loss.csv -o losses.png

Two panels: loss against step and against tokens. Train loss is drawn thin
(with a moving average when --smooth > 1), val loss as markers joined by a line.
Each run is named by the folder its loss.csv is in (or --labels).
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    columns = {"step": [], "tokens": [], "train_loss": [], "val_step": [], "val_tokens": [], "val_loss": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step, tokens = int(row["step"]), int(row["tokens"])
            columns["step"].append(step)
            columns["tokens"].append(tokens)
            columns["train_loss"].append(float(row["train_loss"]))
            if row.get("val_loss"):
                columns["val_step"].append(step)
                columns["val_tokens"].append(tokens)
                columns["val_loss"].append(float(row["val_loss"]))
    if not columns["step"]:
        sys.exit(f"plot_loss: {path} has no rows")
    return columns


def moving_average(values, window):
    if window <= 1:
        return values
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csvs", nargs="+", help="loss.csv files")
    parser.add_argument("-o", "--output", default="loss.png", help="PNG to write")
    parser.add_argument("--labels", nargs="*", help="one name per CSV")
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window for train loss")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.csvs):
        sys.exit("plot_loss: give one label per CSV")

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, path in enumerate(args.csvs):
        data = read_csv(path)
        label = args.labels[i] if args.labels else os.path.basename(os.path.dirname(os.path.abspath(path)))
        color = f"C{i % 10}"
        for ax, x, val_x in ((axes[0], "step", "val_step"), (axes[1], "tokens", "val_tokens")):
            ax.plot(data[x], moving_average(data["train_loss"], args.smooth), color=color, lw=0.8, alpha=0.6,
                    label=f"{label} train")
            if data["val_loss"]:
                ax.plot(data[val_x], data["val_loss"], color=color, marker="o", ms=3.5, lw=1.5, label=f"{label} val")
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("tokens")
    for ax in axes:
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    tmp = args.output + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
