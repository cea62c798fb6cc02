#!/usr/bin/env python3
"""Plot train and val loss from one or more llm.dion loss.csv files.

    /usr/bin/python3 scripts/plot_loss.py out/a/loss.csv out/b/loss.csv -o losses.png

Two panels: loss against step and against tokens. Train loss is drawn thin
(with a moving average when --smooth > 1), val loss as markers joined by a line.
Each run is named by the folder its loss.csv is in (or --labels).

--val-only draws one panel, val loss against step; --inset F adds a zoomed view
of the last fraction F of the steps (as the Dion2 paper's figures do);
--summary T.md writes a table of each run's final losses and mean times.
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    columns = {"step": [], "tokens": [], "train_loss": [], "val_step": [], "val_tokens": [], "val_loss": [],
               "step_ms": [], "opt_ms": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step, tokens = int(row["step"]), int(row["tokens"])
            columns["step"].append(step)
            columns["tokens"].append(tokens)
            columns["train_loss"].append(float(row["train_loss"]))
            columns["step_ms"].append(float(row.get("step_ms") or "nan"))
            columns["opt_ms"].append(float(row.get("opt_ms") or "nan"))
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


def write_summary(path, labels, runs):
    """A markdown table: final val loss (the last evaluation), final train loss
    (mean of the last 5% of steps), mean step and optimizer milliseconds."""
    lines = ["| run | steps | final val loss | final train loss (last 5%) | step ms | optimizer ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, data in zip(labels, runs):
        tail = max(1, len(data["train_loss"]) // 20)
        train = sum(data["train_loss"][-tail:]) / tail
        val = f"{data['val_loss'][-1]:.4f}" if data["val_loss"] else "-"
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        lines.append(f"| {label} | {data['step'][-1] + 1} | {val} | {train:.4f} | {mean(data['step_ms']):.1f} "
                     f"| {mean(data['opt_ms']):.2f} |")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print("\n".join(lines))
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csvs", nargs="+", help="loss.csv files")
    parser.add_argument("-o", "--output", default="loss.png", help="PNG to write")
    parser.add_argument("--labels", nargs="*", help="one name per CSV")
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window for train loss")
    parser.add_argument("--title", default="", help="figure title")
    parser.add_argument("--val-only", action="store_true", help="one panel: val loss against step")
    parser.add_argument("--inset", type=float, default=0.0, help="zoom on the last fraction of steps (0 = none)")
    parser.add_argument("--summary", help="also write a markdown table of final losses here")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.csvs):
        sys.exit("plot_loss: give one label per CSV")
    if not 0.0 <= args.inset < 1.0:
        sys.exit("plot_loss: --inset must be a fraction in [0, 1)")
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.csvs]
    runs = [read_csv(p) for p in args.csvs]
    if args.summary:
        write_summary(args.summary, labels, runs)

    if args.val_only:
        fig, ax = plt.subplots(figsize=(8, 5.2))
        axes = [ax]
        panels = ((ax, "step", "val_step"),)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        panels = ((axes[0], "step", "val_step"), (axes[1], "tokens", "val_tokens"))
    zoom = None
    if args.inset > 0:
        zoom = axes[0].inset_axes([0.45, 0.4, 0.5, 0.5])
    for i, (label, data) in enumerate(zip(labels, runs)):
        color = f"C{i % 10}"
        for ax, x, val_x in panels:
            if not args.val_only:
                ax.plot(data[x], moving_average(data["train_loss"], args.smooth), color=color, lw=0.8, alpha=0.6,
                        label=f"{label} train")
            if data["val_loss"]:
                ax.plot(data[val_x], data["val_loss"], color=color, marker="o", ms=3.5, lw=1.5,
                        label=label if args.val_only else f"{label} val")
        if zoom is not None and data["val_loss"]:
            start = data["step"][-1] * (1.0 - args.inset)
            points = [(s, v) for s, v in zip(data["val_step"], data["val_loss"]) if s >= start]
            zoom.plot([p[0] for p in points], [p[1] for p in points], color=color, marker="o", ms=3, lw=1.2)
    axes[0].set_xlabel("step")
    if not args.val_only:
        axes[1].set_xlabel("tokens")
    for ax in axes:
        ax.set_ylabel("val loss" if args.val_only else "loss")
        ax.grid(alpha=0.3)
    if zoom is not None:
        zoom.set_title(f"last {args.inset:.0%} of steps", fontsize=8)
        zoom.tick_params(labelsize=7)
        zoom.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left" if zoom is not None else "best")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    tmp = args.output + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
