#!/usr/bin/env python3
"""The table and figure of bench/paper_claims.sh: final val loss over seeds, and
the differences the Dion2 paper's four claims rest on.

    /usr/bin/python3 bench/paper_claims.py out/paper_claims/study -o out/paper_claims/paper_claims

Runs are the folders below STUDY holding loss.csv, named <optimizer>_seed<N>;
a run without done.yaml is unfinished, listed and left out. Writes OUT.md and
OUT.png and prints the markdown. --choose-lr LR_CSV picks each optimizer's lr
from the lr sweep's runs instead (choose_lr). Runs made by bench/dion2_decay_probe (their
selection_probe.csv) also go into a table of their selection statistics and
OUT_probe.png.

Per optimizer: the mean and sample standard deviation (n - 1) of the final val
loss over its seeds, and each seed's value. Per claim: the difference a - b of
two optimizers, paired by seed (a seed fixes the initial weights and the data
order, so pairing removes what the seeds share), its mean, standard deviation
and 95% confidence interval (Student's t, n - 1 degrees of freedom). A
difference is resolved when that interval excludes 0.
"""
import argparse
import csv
import math
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from plot_loss import read_csv  # noqa: E402

# The optimizers of bench/paper_claims.sh, in the order of the table (the last
# two: the probe's runs beyond the study).
ORDER = ["adamw", "muon", "dion2_l1_alpha0.5", "dion2_l1_alpha0.25", "dion2_l1_alpha0.125",
         "dion2_random_alpha0.25", "dion2_random_alpha0.125", "dion2_l1_alpha0.25_full_decay",
         "dion2_l1_alpha0.125_full_decay", "dion2_random_alpha0.125_full_decay", "dion2_l1_alpha0.0625",
         "dion2_l1_alpha0.0625_full_decay"]
# (claim, a, b): the claim rests on the sign and size of a - b.
COMPARISONS = [
    ("1. Muon beats AdamW", "muon", "adamw"),
    ("2. gentle in alpha", "dion2_l1_alpha0.25", "dion2_l1_alpha0.5"),
    ("2. gentle in alpha", "dion2_l1_alpha0.125", "dion2_l1_alpha0.25"),
    ("3. l1 ~ random", "dion2_random_alpha0.25", "dion2_l1_alpha0.25"),
    ("3. l1 ~ random", "dion2_random_alpha0.125", "dion2_l1_alpha0.125"),
    ("4. selective decay essential", "dion2_l1_alpha0.25_full_decay", "dion2_l1_alpha0.25"),
    ("4. selective decay essential", "dion2_l1_alpha0.125_full_decay", "dion2_l1_alpha0.125"),
    ("4. selective decay essential", "dion2_random_alpha0.125_full_decay", "dion2_random_alpha0.125"),
    ("4. selective decay essential", "dion2_l1_alpha0.0625_full_decay", "dion2_l1_alpha0.0625"),
]
# Student's t, two-sided 95% (the 0.975 quantile), by degrees of freedom.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
RUN_NAME = re.compile(r"^(.+)_seed(\d+)$")


def find_runs(study):
    """{optimizer: {seed: loss.csv columns}} of the finished runs, and the unfinished run names."""
    runs, unfinished = {}, []
    for name in sorted(os.listdir(study)):
        folder = os.path.join(study, name)
        match = RUN_NAME.match(name)
        if not match or not os.path.isfile(os.path.join(folder, "loss.csv")):
            continue
        if not os.path.isfile(os.path.join(folder, "done.yaml")):
            unfinished.append(name)
            continue
        columns = read_csv(os.path.join(folder, "loss.csv"))
        if not columns["val_loss"]:
            sys.exit(f"paper_claims: {folder}/loss.csv holds no val loss")
        runs.setdefault(match.group(1), {})[int(match.group(2))] = columns
    return runs, unfinished


def mean_sd(values):
    """Mean and sample standard deviation (None for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def interval95(values):
    """The 95% t confidence interval of the mean (None below two values)."""
    if len(values) < 2:
        return None
    mean, sd = mean_sd(values)
    half = T_975.get(len(values) - 1, 1.96) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def fmt_sd(sd, digits=4):
    return "-" if sd is None else f"{sd:.{digits}f}"


def choose_lr(lr_csv):
    """The lr sweep's choice: per optimizer (runs <optimizer>_lr<lr> in results.py's
    CSV), the lr of the lowest final val loss and where it lies in the grid tried
    (lower, upper or inside), printed as 'optimizer lr loss place' lines; the
    final val loss against lr beside the CSV (<name>_choice.png)."""
    tried = {}
    with open(lr_csv, newline="") as f:
        for row in csv.DictReader(f):
            family, _, lr = row["run"].rpartition("_lr")
            if family and row["val_loss"]:
                tried.setdefault(family, []).append((float(lr), lr, float(row["val_loss"])))
    if not tried:
        sys.exit(f"paper_claims: no finished <optimizer>_lr<lr> run in {lr_csv}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, runs in sorted(tried.items()):
        runs.sort()
        best = min(runs, key=lambda r: r[2])
        place = "lower" if best is runs[0] else "upper" if best is runs[-1] else "inside"
        print(family, best[1], best[2], place)
        line = ax.plot([r[0] for r in runs], [r[2] for r in runs], marker="o", label=family)[0]
        ax.plot([best[0]], [best[2]], marker="*", markersize=14, color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("lr (the matrices'; embeddings, head and norms: AdamW 2e-3)")
    ax.set_ylabel("final val loss")
    ax.set_title("lr sweep (star: chosen)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.splitext(lr_csv)[0] + "_choice.png"
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", help="the folder holding the runs (<optimizer>_seed<N>)")
    parser.add_argument("-o", "--out", help="OUT.md and OUT.png (default: STUDY/paper_claims)")
    parser.add_argument("--choose-lr", metavar="LR_CSV", help="print the lr sweep's choice instead (see choose_lr)")
    args = parser.parse_args()
    if args.choose_lr:
        choose_lr(args.choose_lr)
        return
    if not args.study:
        parser.error("give the study's folder (or --choose-lr LR_CSV)")
    out = args.out or os.path.join(args.study, "paper_claims")
    runs, unfinished = find_runs(args.study)
    if not runs:
        sys.exit(f"paper_claims: no finished run (<optimizer>_seed<N> with done.yaml) in {args.study}")
    names = [n for n in ORDER if n in runs] + sorted(n for n in runs if n not in ORDER)
    seeds = sorted({seed for by_seed in runs.values() for seed in by_seed})
    final = {n: {seed: c["val_loss"][-1] for seed, c in runs[n].items()} for n in names}
    steps = sorted({c["step"][-1] + 1 for by_seed in runs.values() for c in by_seed.values()})

    lines = ["| optimizer | seeds | final val loss, mean ± sd | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---:|---:|" + "---:|" * len(seeds)]
    for n in names:
        mean, sd = mean_sd(list(final[n].values()))
        per_seed = " | ".join(f"{final[n][s]:.4f}" if s in final[n] else "-" for s in seeds)
        lines.append(f"| {n} | {len(final[n])} | {mean:.4f} ± {fmt_sd(sd)} | {per_seed} |")
    spreads = [statistics.stdev(v.values()) for v in final.values() if len(v) > 1]
    if spreads:
        pooled = math.sqrt(statistics.fmean([s * s for s in spreads]))
        lines += ["", f"Seed spread of the final val loss (sd pooled over the {len(spreads)} optimizers with two or "
                  f"more seeds): {pooled:.4f}."]

    lines += ["", "Differences a - b of the final val loss, paired by seed (negative: a is lower):", "",
              "| claim | a - b | per seed | mean ± sd | 95% interval | resolved |", "|---|---|---|---:|---:|---|"]
    for claim, a, b in COMPARISONS:
        if a not in final or b not in final:
            continue
        common = [s for s in seeds if s in final[a] and s in final[b]]
        diffs = [final[a][s] - final[b][s] for s in common]
        if not diffs:
            continue
        mean, sd = mean_sd(diffs)
        ci = interval95(diffs)
        if ci is None:
            ci_text, resolved = "-", "no: one seed"
        else:
            ci_text = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"
            resolved = ("yes: a lower" if ci[1] < 0 else "yes: b lower") if ci[0] > 0 or ci[1] < 0 else \
                "no: the interval holds 0"
        per_seed = ", ".join(f"{d:+.4f}" for d in diffs)
        lines.append(f"| {claim} | {a} - {b} | {per_seed} | {mean:+.4f} ± {fmt_sd(sd)} | {ci_text} | {resolved} |")
    if unfinished:
        lines += ["", "Unfinished, left out: " + ", ".join(unfinished) + "."]
    lines += ["", f"Steps per run: {', '.join(map(str, steps))}."]
    probes = read_probes(args.study, runs)
    if probes:
        lines += ["", "Dion2's selection over a run (bench/dion2_decay_probe): the steps probed (fewer than the "
                  "run's where the probe was interrupted and train_gpt finished the training), at the last "
                  "probed step the share "
                  "of slices never selected, the steps since a slice's last selection (mean, max), M's RMS and the "
                  "largest slice norm over its matrix's median; over the run, the gaps between a slice's "
                  "selections (mean, largest) and the share of a gap's gradients that the full decay keeps "
                  "until the slice is selected (mean over the run).", "",
                  "| probe run | final val loss | steps probed | never selected | idle mean | idle max | gap mean | gap max | "
                  "full decay keeps | M rms | max/median slice norm |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, (rows, val) in probes.items():
            last = rows[-1]
            lines.append(f"| {name} | {val:.4f} | {last['step'] + 1:.0f} | {last['never_selected']:.3f} | {last['idle_mean']:.1f} | "
                         f"{last['idle_max']:.0f} | {statistics.fmean(r['gap_mean'] for r in rows):.2f} | "
                         f"{max(r['gap_max'] for r in rows):.0f} | "
                         f"{statistics.fmean(r['full_decay_keeps'] for r in rows):.3f} | "
                         f"{last['momentum_rms']:.4f} | {last['slice_norm_max_median']:.1f} |")
    text = "\n".join(lines) + "\n"
    with open(out + ".md.tmp", "w") as f:
        f.write(text)
    os.replace(out + ".md.tmp", out + ".md")
    print(text, end="")
    plot(runs, names, final, seeds, out + ".png")
    if probes:
        plot_probes(probes, out + "_probe.png")


def read_probes(study, runs):
    """{run: (rows of its selection_probe.csv as floats, its final val loss)} for the finished runs that have one;
    a row cut short by an interruption is left out."""
    probes = {}
    for name, by_seed in sorted(runs.items()):
        for seed, columns in sorted(by_seed.items()):
            path = os.path.join(study, f"{name}_seed{seed}", "selection_probe.csv")
            if os.path.isfile(path):
                with open(path, newline="") as f:
                    rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)
                            if None not in row.values() and "" not in row.values()]
                if rows:
                    probes[f"{name}_seed{seed}"] = (rows, columns["val_loss"][-1])
    return probes


def plot_probes(probes, path):
    """The share of slices never selected, the mean steps since a slice's last
    selection, and M's RMS, against step."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, (rows, _) in probes.items():
        style = "--" if "full" in name else (":" if "random" in name else "-")
        for ax, key in zip(axes, ["never_selected", "idle_mean", "momentum_rms"]):
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], linestyle=style, label=name)
    for ax, title in zip(axes, ["slices never selected (share)", "steps since last selection (mean over slices)",
                                "RMS of the momentum M"]):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)


def plot(runs, names, final, seeds, path):
    """Left: each optimizer's final val loss, a dot a seed, the mean ± sd as a bar.
    Right: the mean val loss over seeds against step, over the last half of the
    steps, the sd as a band."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.3]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for y, n in enumerate(names):
        values = list(final[n].values())
        mean, sd = mean_sd(values)
        color = colors[y % len(colors)]
        left.errorbar([mean], [y], xerr=[sd or 0], fmt="D", color=color, capsize=4)
        left.scatter(values, [y] * len(values), color=color, alpha=0.5, s=18)
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlabel("final val loss (dots: seeds; diamond: mean ± sd)")
    left.grid(True, axis="x", alpha=0.3)
    for i, n in enumerate(names):
        curves = [(c["val_step"], c["val_loss"]) for c in runs[n].values()]
        length = min(len(v) for _, v in curves)
        steps = curves[0][0][:length]
        values = [[v[j] for _, v in curves] for j in range(length)]
        means = [statistics.fmean(v) for v in values]
        sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        first = next(j for j, s in enumerate(steps) if s >= steps[-1] / 2)
        color = colors[i % len(colors)]
        right.plot(steps[first:], means[first:], color=color, marker=".", label=n,
                   linestyle="--" if "full_decay" in n else (":" if "random" in n else "-"))
        right.fill_between(steps[first:], [m - s for m, s in zip(means[first:], sds[first:])],
                           [m + s for m, s in zip(means[first:], sds[first:])], color=color, alpha=0.12)
    right.set_xlabel("step")
    right.set_ylabel(f"val loss, mean over seeds {', '.join(map(str, seeds))} (band: ± sd)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle("The Dion2 paper's claims on SOTU (CPU): final val loss over seeds")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)


if __name__ == "__main__":
    main()
