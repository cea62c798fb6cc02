#!/usr/bin/env python3
"""Collect every run under the given folders into one CSV and one markdown table.

    /usr/bin/python3 scripts/results.py out/sweep_alpha out/sweep_selection -o out/results

A run is a folder holding loss.csv (symlinked runs included, each counted
once by where it really is). Columns: the run, the config keys that differ
between the runs (from each run's config.yaml), steps, tokens, the final
train and val loss, the best val loss (and its step), wall time, the median
step and optimizer milliseconds with their spread (p25-p75) over the steps
after the first min(10, steps / 4) (run_summary.h: the first steps hold
one-time costs), and the bytes rank 0 sent per step. A run without done.yaml
is marked unfinished. Where a run's config is one of the Dion2 paper's
(configs/paper_*: the shape, batch and steps of its 300M or 1B run, the same
optimizer, alpha and selection), its final val loss stands beside the paper's
(Figure 2: 300M, l1 and random selection; Figure 1/5: 1B Muon and 0.25-Dion2).

Writes OUT.csv and OUT.md (default: results.csv/.md in the first folder) and
prints the table.
"""
import argparse
import csv
import math
import os
import sys

# The Dion2 paper's final val losses, keyed by the settings that define its runs.
PAPER_SCALES = {
    "300M": {"model.arch": "paper", "model.n_layer": "16", "model.n_head": "8", "model.d_model": "1024",
             "model.seq_len": "2048", "train.batch_tokens": "2097152", "train.steps": "10000"},
    "1B": {"model.arch": "paper", "model.n_layer": "16", "model.n_head": "16", "model.d_model": "2048",
           "model.seq_len": "2048", "train.batch_tokens": "2097152", "train.steps": "50000"},
}
PAPER_FINALS = [  # (scale, optim.matrix, optim.alpha, optim.select, final val loss, where)
    ("300M", "dion2", "0.5", "l1", 2.9154, "Fig. 2"), ("300M", "dion2", "0.5", "random", 2.9148, "Fig. 2"),
    ("300M", "dion2", "0.25", "l1", 2.9262, "Fig. 2"), ("300M", "dion2", "0.25", "random", 2.9296, "Fig. 2"),
    ("300M", "dion2", "0.125", "l1", 2.9452, "Fig. 2"), ("300M", "dion2", "0.125", "random", 2.9469, "Fig. 2"),
    ("1B", "muon", None, None, 2.623, "Fig. 1"), ("1B", "dion2", "0.25", "l1", 2.635, "Fig. 1"),
]
# Keys that say where and how a run wrote, not what it trained.
NOT_SETTINGS = {"run.out_dir", "run.resume", "run.export_llmc", "run.export_hf", "data.vocab_dir",
                "train.ckpt_every", "train.ckpt_keep", "train.sample_every", "train.sample_tokens",
                "train.sample_top_k"}


def read_flat_yaml(path):
    """config.yaml or done.yaml as train_gpt writes them: 'section:' lines with
    '  key: value' under them, or top-level 'key: value'; quotes removed."""
    values, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, _, value = line.strip().partition(":")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not line.startswith(" ") and value == "":
                section = key
            else:
                values[f"{section}.{key}" if line.startswith(" ") and section else key] = value
    return values


def percentile(values, q):
    """numpy.percentile's default (linear between order statistics)."""
    values = sorted(values)
    if not values:
        return math.nan
    at = q / 100 * (len(values) - 1)
    below = math.floor(at)
    above = min(below + 1, len(values) - 1)
    return values[below] + (at - below) * (values[above] - values[below])


def read_run(folder):
    rows = list(csv.DictReader(open(os.path.join(folder, "loss.csv"), newline="")))
    if not rows:
        return None
    steps = int(rows[-1]["step"]) + 1
    warmup = min(10, steps // 4)
    timed = [r for r in rows if int(r["step"]) >= warmup] or rows
    vals = [(float(r["val_loss"]), int(r["step"])) for r in rows if r["val_loss"]]
    config_path = os.path.join(folder, "config.yaml")
    done_path = os.path.join(folder, "done.yaml")
    done = read_flat_yaml(done_path) if os.path.exists(done_path) else None
    seconds = float(done["wall_seconds"]) if done and "wall_seconds" in done else \
        sum(float(r["step_ms"]) for r in rows) / 1000

    def spread(column):
        xs = [float(r[column]) for r in timed]
        return percentile(xs, 50), percentile(xs, 25), percentile(xs, 75)

    return {
        "config": read_flat_yaml(config_path) if os.path.exists(config_path) else {},
        "steps": steps, "tokens": int(rows[-1]["tokens"]), "done": done is not None,
        "train_loss": float(rows[-1]["train_loss"]),
        "val_loss": vals[-1][0] if vals and vals[-1][1] == steps - 1 else math.nan,
        "best_val": min(vals) if vals else (math.nan, -1),
        "seconds": seconds, "step_ms": spread("step_ms"), "opt_ms": spread("opt_ms"),
        "comm_bytes": percentile([float(r.get("comm_bytes") or 0) for r in timed], 50),
    }


def paper_final(config):
    for scale, matrix, alpha, select, loss, where in PAPER_FINALS:
        if any(config.get(k) != v for k, v in PAPER_SCALES[scale].items()) or config.get("optim.matrix") != matrix:
            continue
        if alpha is not None and (float(config.get("optim.alpha", "nan")) != float(alpha) or
                                  config.get("optim.select") != select):
            continue
        return loss, f"{scale} {where}"
    return None


def find_runs(folders):
    runs, seen = [], set()
    for top in folders:
        if not os.path.isdir(top):
            sys.exit(f"results: '{top}' is not a folder")
        for folder, dirs, files in os.walk(top, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d != "checkpoints")
            if "loss.csv" in files:
                real = os.path.realpath(folder)
                if real not in seen:
                    seen.add(real)
                    runs.append(folder)
    return runs


def fmt_spread(values, digits):
    median, p25, p75 = values
    return f"{median:.{digits}f} ({p25:.{digits}f}-{p75:.{digits}f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders holding runs (searched below)")
    parser.add_argument("-o", "--output", help="OUT: writes OUT.csv and OUT.md")
    args = parser.parse_args()
    folders = find_runs(args.folders)
    runs = [(f, r) for f, r in ((f, read_run(f)) for f in folders) if r is not None]
    if not runs:
        sys.exit(f"results: no run (a folder with a non-empty loss.csv) under {' '.join(args.folders)}")
    keys = sorted({k for _, r in runs for k in r["config"]} - NOT_SETTINGS)
    differing = [k for k in keys if len({r["config"].get(k, "") for _, r in runs}) > 1]
    base = os.path.commonpath([os.path.abspath(f) for f, _ in runs]) if len(runs) > 1 else \
        os.path.dirname(os.path.abspath(runs[0][0]))
    header = (["run"] + differing + ["steps", "tokens", "train_loss", "val_loss", "best_val_loss", "best_val_step",
              "wall_s", "step_ms_median", "step_ms_p25", "step_ms_p75", "opt_ms_median", "opt_ms_p25", "opt_ms_p75",
              "comm_bytes_per_step", "finished", "paper_val_loss", "paper_source"])
    table, md = [], []
    md.append("| run | " + "".join(f"{k} | " for k in differing) + "steps | tokens | final train | final val | "
              "best val (step) | paper val | wall | step ms (p25-p75) | optimizer ms (p25-p75) | sent/step |")
    md.append("|---|" + "---|" * len(differing) + "---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for folder, r in runs:
        name = os.path.relpath(os.path.abspath(folder), base)
        paper = paper_final(r["config"])
        table.append([name] + [r["config"].get(k, "") for k in differing] + [
            r["steps"], r["tokens"], f"{r['train_loss']:.6g}", f"{r['val_loss']:.6g}", f"{r['best_val'][0]:.6g}",
            r["best_val"][1], f"{r['seconds']:.1f}", *(f"{x:.4g}" for x in r["step_ms"]),
            *(f"{x:.4g}" for x in r["opt_ms"]), f"{r['comm_bytes']:.0f}", "yes" if r["done"] else "no",
            f"{paper[0]}" if paper else "", paper[1] if paper else ""])
        wall = f"{r['seconds']:.1f} s" if r["seconds"] < 120 else f"{r['seconds'] / 60:.1f} min"
        md.append(f"| {name}{'' if r['done'] else ' (unfinished)'} | " +
                  "".join(f"{r['config'].get(k, '')} | " for k in differing) +
                  f"{r['steps']} | {r['tokens']:,} | {r['train_loss']:.4f} | {r['val_loss']:.4f} | "
                  f"{r['best_val'][0]:.4f} ({r['best_val'][1]}) | "
                  f"{f'{paper[0]:.4f} ({paper[1]})' if paper else '-'} | "
                  f"{wall} | {fmt_spread(r['step_ms'], 1)} | {fmt_spread(r['opt_ms'], 2)} | "
                  f"{r['comm_bytes'] / 2**20:.2f} MiB |")
    out = args.output or os.path.join(args.folders[0], "results")
    for path, write in ((out + ".csv", lambda f: csv.writer(f, lineterminator="\n").writerows([header] + table)),
                        (out + ".md", lambda f: f.write("\n".join(md) + "\n"))):
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    print("\n".join(md))
    print(f"wrote {out}.csv and {out}.md ({len(runs)} runs)")


if __name__ == "__main__":
    main()
