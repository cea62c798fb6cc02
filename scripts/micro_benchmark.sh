#!/usr/bin/env bash
# The Dion2 paper's micro benchmark (its Figure 1, left; section 4.4): a 4-layer
# GPT over each rank count at several d_model: the optimizer step time (opt_ms),
# the whole step's time (step_ms) and what rank 0 sends per step (comm_bytes),
# each the mean of the last 20 of S steps, for AdamW, Muon, Dion (rank 1/4),
# Dion2 alpha 0.5/0.25/0.125 and Dion2 0.25 with compressed sync. Writes
# OUT/micro_benchmark.csv, OUT/micro_benchmark.png and OUT/micro_benchmark.md
# (the table it prints: bytes and times beside Muon's); --optimizers runs some
# of them, by the names in the CSV. The tokens are random
# over a vocabulary of 256 (OUT/shards), so that the matrices, not the
# embedding, carry the traffic, as at the paper's sizes: it times the
# optimizer, not learning.
#   bash scripts/micro_benchmark.sh OUT [--ranks "2 4"] [--widths "256 512"] [--steps 100] [--train-gpt PATH]
#                                       [--optimizers "muon dion2_alpha0.25"] [--set key=value ...]
# On the CPU it runs at small d_model; the paper's sizes (1024 ... 8192) need GPUs
# (--set run.device=cuda). --ranks 1 runs one process without mpirun.
# PYTHON (default /usr/bin/python3, Debian's) draws the PNG.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 OUT [--ranks \"R ...\"] [--widths \"D ...\"] [--steps S] [--train-gpt PATH] [--optimizers \"NAME ...\"] [--set key=value ...]" >&2; exit 2; }
out=$1
shift
ranks=4 widths="256 512" steps=100 train_gpt=$root/build/train_gpt extra=() optimizers=""
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    --widths) widths=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --train-gpt) train_gpt=$2; shift 2 ;;
    --optimizers) optimizers=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) echo "micro_benchmark: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$steps" -ge 21 ] || { echo "micro_benchmark: --steps must be at least 21 (the mean is over the last 20)" >&2; exit 2; }
for r in $ranks; do
  [[ "$r" =~ ^[1-9][0-9]*$ ]] || { echo "micro_benchmark: --ranks takes rank counts, not '$r'" >&2; exit 2; }
done
mkdir -p "$out/shards"
"${PYTHON:-/usr/bin/python3}" - "$out/shards" <<'PY' || { echo "micro_benchmark: cannot write the shards" >&2; exit 1; }
import array, os, random, sys
random.seed(1)
for name in ("micro_val_000000.bin", "micro_train_000001.bin"):
    tokens = array.array("H", (random.randrange(256) for _ in range(65536)))
    header = array.array("i", [20240520, 1, len(tokens)] + [0] * 253)  # llm.c's uint16 shard
    with open(f"{sys.argv[1]}/{name}.tmp", "wb") as f:
        header.tofile(f)
        tokens.tofile(f)
    os.replace(f"{sys.argv[1]}/{name}.tmp", f"{sys.argv[1]}/{name}")
PY
variants=("adamw|optim.matrix=adamw optim.lr=2e-3"
          "muon|optim.matrix=muon"
          "dion_rank0.25|optim.matrix=dion optim.rank_frac=0.25"
          "dion2_alpha0.5|optim.matrix=dion2 optim.alpha=0.5"
          "dion2_alpha0.25|optim.matrix=dion2 optim.alpha=0.25"
          "dion2_alpha0.125|optim.matrix=dion2 optim.alpha=0.125"
          "dion2_alpha0.25_selected_sync|optim.matrix=dion2 optim.alpha=0.25 optim.select=random optim.sync=selected train.grad_clip=0")
if [ -n "$optimizers" ]; then
  chosen=()
  for o in $optimizers; do
    found=""
    for variant in "${variants[@]}"; do [ "${variant%%|*}" = "$o" ] && found=$variant; done
    [ -n "$found" ] || { echo "micro_benchmark: --optimizers: unknown '$o' (${variants[*]%%|*})" >&2; exit 2; }
    chosen+=("$found")
  done
  variants=("${chosen[@]}")
fi
csv="$out/micro_benchmark.csv"
echo "optimizer,d_model,ranks,opt_ms,comm_bytes,step_ms" > "$csv.tmp"
for r in $ranks; do
  launch=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -x OMP_NUM_THREADS=1 -np "$r")
  if [ "$r" -eq 1 ]; then launch=(env); fi
  for d in $widths; do
    for variant in "${variants[@]}"; do
      name=${variant%%|*}
      sets=()
      for o in ${variant#*|}; do sets+=(--set "$o"); done
      run="$out/r${r}_d${d}_$name"
      rm -rf "$run"
      "${launch[@]}" "$train_gpt" --config "$root/configs/sotu_dion2.yaml" \
        --set model.d_model="$d" --set model.n_head=$((d / 64 > 0 ? d / 64 : 1)) --set model.n_layer=4 \
        --set train.micro_batch=1 --set model.seq_len=64 --set train.batch_tokens=$((64 * r)) \
        --set train.steps="$steps" --set train.eval_every=0 --set train.eval_tokens=64 --set train.ckpt_every=0 \
        --set model.vocab_size=256 --set data.train="$out/shards/micro_train_*.bin" \
        --set data.val="$out/shards/micro_val_*.bin" --set train.sample_every=0 \
        "${extra[@]}" "${sets[@]}" --set run.out_dir="$run" > "$run.out" 2>&1 ||
        { echo "micro_benchmark: $name at d_model $d on $r ranks failed; see $run.out" >&2; exit 1; }
      # loss.csv: step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes
      tail -n 20 "$run/loss.csv" | awk -F, -v n="$name" -v d="$d" -v r="$r" \
        '{step += $7; opt += $8; bytes += $10} END {printf "%s,%s,%s,%.3f,%.0f,%.3f\n", n, d, r, opt / NR, bytes / NR, step / NR}' \
        >> "$csv.tmp"
      tail -n 1 "$csv.tmp"
    done
  done
done
mv "$csv.tmp" "$csv"
"${PYTHON:-/usr/bin/python3}" - "$csv" "$out/micro_benchmark.png" "$out/micro_benchmark.md" <<'PY'
import csv, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
rank_counts = list(dict.fromkeys(r["ranks"] for r in rows))

# The table: per rank count and width, each optimizer beside Muon.
muon = {(r["ranks"], r["d_model"]): r for r in rows if r["optimizer"] == "muon"}
lines = ["| ranks | d_model | optimizer | step ms | optimizer ms | MB sent per step | bytes vs Muon | optimizer ms vs Muon |",
         "|---|---|---|---|---|---|---|---|"]
def ratio(value, base):
    return f"{value / base:.2f}x" if base > 0 else "-"
for r in rows:
    base = muon.get((r["ranks"], r["d_model"]))
    bytes_ = float(r["comm_bytes"])
    lines.append(f"| {r['ranks']} | {r['d_model']} | {r['optimizer']} | {float(r['step_ms']):.1f} | "
                 f"{float(r['opt_ms']):.1f} | {bytes_ / 1e6:.2f} | "
                 f"{ratio(bytes_, float(base['comm_bytes'])) if base else '-'} | "
                 f"{ratio(float(r['opt_ms']), float(base['opt_ms'])) if base else '-'} |")
table = "\n".join(lines) + "\n"
print(table, end="")
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(table)
os.replace(sys.argv[3] + ".tmp", sys.argv[3])

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for index, name in enumerate(dict.fromkeys(r["optimizer"] for r in rows)):
    color = plt.get_cmap("tab10")(index % 10)  # one color an optimizer, one line style a rank count
    for ranks in rank_counts:
        mine = [r for r in rows if r["optimizer"] == name and r["ranks"] == ranks]
        label = name if len(rank_counts) == 1 else f"{name}, {ranks} ranks"
        style = ["-", "--", ":", "-."][rank_counts.index(ranks) % 4]
        d = [int(r["d_model"]) for r in mine]
        axes[0].plot(d, [float(r["opt_ms"]) for r in mine], style, color=color, marker="o", label=label)
        axes[1].plot(d, [float(r["comm_bytes"]) / 1e6 for r in mine], style, color=color, marker="o", label=label)
axes[0].set_ylabel("optimizer step ms (mean of last 20)")
axes[1].set_ylabel("MB sent by rank 0 per step")
for ax in axes:
    ax.set_xlabel("d_model")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=7)
fig.suptitle(f"4-layer GPT over {' and '.join(rank_counts)} ranks")
fig.tight_layout()
fig.savefig(sys.argv[2] + ".tmp.png", dpi=120)
os.replace(sys.argv[2] + ".tmp.png", sys.argv[2])
print("wrote", sys.argv[2], "and", sys.argv[3])
PY
