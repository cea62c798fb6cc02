#!/usr/bin/env python3
"""Plot train and val loss from one or more llm.dion loss.csv files.

    /usr/bin/python3 scripts/plot_loss.py out/a/loss.csv out/b/loss.csv

Two panels: loss against step and against tokens. Train loss is drawn thin
(with a moving average when --smooth > 1), val loss as markers joined by a line.
Each run is named by the folder its loss.csv is in (or --labels).

--val-only draws val loss against step alone; --zoom F adds a panel of the
runs' last fraction F of the steps (as the Dion2 paper's figures do: val loss
there, or the train loss where fewer than two evaluations fall in it); --log-y
puts loss on a log scale. Runs that differ in one setting only (their
config.yaml, e.g. optim.select l1 vs random) share a colour, one line style per
value of that setting. The PNG goes to -o, else beside the input: loss.png next
to a single loss.csv, loss_<run>_<run>....png in the folder holding several.
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LINE_STYLES = ["-", "--", ":", "-."]


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


def read_config(csv_path):
    """The run's resolved settings (config.yaml beside loss.csv), flattened; {} without one."""
    path = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "config.yaml")
    settings, section = {}, None
    if os.path.exists(path):
        for line in open(path):
            key, _, value = line.strip().partition(":")
            if not line.startswith(" "):
                section = key
            elif key not in ("out_dir", "resume"):
                settings[f"{section}.{key}"] = value.strip()
    return settings


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


def styles(configs):
    """(colour index, line style) per run: runs whose settings differ in one key
    alone share a colour and take one line style per value of that key (the key
    that pairs the most runs); every other run its own colour, a solid line."""
    n = len(configs)
    best_key, best_groups = None, None
    for key in sorted({k for c in configs for k in c}) if all(configs) else []:
        groups = {}
        for i, c in enumerate(configs):
            rest = tuple(sorted((k, v) for k, v in c.items() if k != key))
            groups.setdefault(rest, []).append(i)
        # The most runs paired; then the fewest values (line styles), e.g. select over alpha.
        score = (sum(len(g) for g in groups.values() if len(g) > 1), -len({c[key] for c in configs}))
        if score[0] > 0 and (best_key is None or score > best_score):
            best_key, best_groups, best_score = key, list(groups.values()), score
    if best_key is None:
        return [(i, "-") for i in range(n)], None
    values = sorted({configs[i][best_key] for g in best_groups for i in g})
    out = [None] * n
    for colour, group in enumerate(sorted(best_groups)):
        for i in group:
            out[i] = (colour, LINE_STYLES[values.index(configs[i][best_key]) % len(LINE_STYLES)])
    return out, best_key


def default_output(paths, labels):
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if len(paths) == 1:
        return os.path.join(folders[0], "loss.png")
    name = "loss_" + "_".join(labels)
    return os.path.join(os.path.commonpath(folders) if len(set(folders)) > 1 else folders[0],
                        (name[:120] if len(name) > 120 else name) + ".png")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csvs", nargs="+", help="loss.csv files")
    parser.add_argument("-o", "--output", help="PNG to write (default: beside the input)")
    parser.add_argument("--labels", nargs="*", help="one name per CSV")
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window for train loss")
    parser.add_argument("--title", help="figure title (default: the runs' names)")
    parser.add_argument("--val-only", action="store_true", help="val loss against step alone")
    parser.add_argument("--zoom", type=float, default=0.0, help="a panel of the last fraction of steps (0 = none)")
    parser.add_argument("--log-y", action="store_true", help="loss on a log scale")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.csvs):
        sys.exit("plot_loss: give one label per CSV")
    if not 0.0 <= args.zoom < 1.0:
        sys.exit("plot_loss: --zoom must be a fraction in [0, 1)")
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.csvs]
    runs = [read_csv(p) for p in args.csvs]
    run_styles, paired_key = styles([read_config(p) for p in args.csvs])

    panels = [("step", "val_step")] + ([] if args.val_only else [("tokens", "val_tokens")])
    fig, axes = plt.subplots(1, len(panels) + (args.zoom > 0), figsize=(6.5 * (len(panels) + (args.zoom > 0)), 4.8),
                             squeeze=False)
    axes = list(axes[0])
    for (label, data), (colour, line) in zip(zip(labels, runs), run_styles):
        colour = f"C{colour % 10}"
        for ax, (x, val_x) in zip(axes, panels):
            if not args.val_only:
                ax.plot(data[x], moving_average(data["train_loss"], args.smooth), color=colour, ls=line, lw=0.8,
                        alpha=0.6, label=f"{label} train")
            if data["val_loss"]:
                ax.plot(data[val_x], data["val_loss"], color=colour, ls=line, marker="o", ms=3.5, lw=1.5,
                        label=label if args.val_only else f"{label} val")
    if args.zoom > 0:
        zoom = axes[-1]
        last = max(d["step"][-1] for d in runs)
        start = last * (1.0 - args.zoom)
        use_train = any(sum(s >= start for s in d["val_step"]) < 2 for d in runs)
        for (label, data), (colour, line) in zip(zip(labels, runs), run_styles):
            if use_train:
                points = [(s, v) for s, v in zip(data["step"], moving_average(data["train_loss"], args.smooth))
                          if s >= start]
                zoom.plot([p[0] for p in points], [p[1] for p in points], color=f"C{colour % 10}", ls=line, lw=1.2,
                          label=label)
            else:
                points = [(s, v) for s, v in zip(data["val_step"], data["val_loss"]) if s >= start]
                zoom.plot([p[0] for p in points], [p[1] for p in points], color=f"C{colour % 10}", ls=line,
                          marker="o", ms=3, lw=1.2, label=label)
        zoom.set_xlim(start, last)
        zoom.set_title(f"last {args.zoom:.0%} of steps ({'train' if use_train else 'val'} loss)", fontsize=9)
        zoom.set_xlabel("step")
    for ax, (x, _) in zip(axes, panels):
        ax.set_xlabel(x)
    for ax in axes:
        ax.set_ylabel("val loss" if args.val_only else "loss")
        ax.grid(alpha=0.3)
        if args.log_y:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8, loc="best",
                   title=f"line style: {paired_key}" if paired_key else None, title_fontsize=8)
    fig.suptitle(args.title if args.title is not None else "loss: " + ", ".join(labels))
    fig.tight_layout()
    output = args.output or default_output(args.csvs, labels)
    tmp = output + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
