#!/usr/bin/env bash
# One training run under mpirun, on this node or on several:
#   bash scripts/launch.sh CONFIG [--per-node P] [--hostfile FILE] [--cuda] [--dry-run] [train_gpt args ...]
#
#   --per-node P    ranks on each node (default: with --cuda, the GPUs nvidia-smi lists; else 1)
#   --hostfile F    Open MPI hostfile, one "host slots=P" line per node; without it, this node only.
#                   Every node needs the same checkout path, build and data paths.
#   --cuda          run.device=cuda: one GPU per rank, picked by the rank's local rank
#   --dry-run       print the command and run nothing
# Other arguments go to train_gpt (e.g. --set train.steps=100). The ranks total
# P x nodes; the global batch (train.batch_tokens) stays what the config says,
# split over them. CPU ranks get OMP_NUM_THREADS = this node's cores / P.
# Examples (README, "Several ranks (data parallel, MPI and NCCL)"):
#   bash scripts/launch.sh configs/default.yaml --per-node 2                       # CPU, one node
#   bash scripts/launch.sh configs/paper_300m_dion2.yaml --cuda                    # every GPU of this node
#   bash scripts/launch.sh configs/paper_1b_dion2.yaml --cuda --hostfile hosts     # several nodes
# MPIRUN_FLAGS (e.g. "--oversubscribe") go to mpirun as they are. Running as root
# needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage="usage: $0 CONFIG [--per-node P] [--hostfile FILE] [--cuda] [--dry-run] [train_gpt args ...]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
config=$1
shift
[ -f "$config" ] || { echo "launch: no config file '$config'" >&2; exit 2; }
per_node="" hostfile="" cuda=0 dry_run=0 args=()
while [ $# -gt 0 ]; do
  case $1 in
    --per-node) per_node=${2:-}; shift 2 ;;
    --hostfile) hostfile=${2:-}; shift 2 ;;
    --cuda) cuda=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$per_node" ]; then
  per_node=1
  if [ "$cuda" -eq 1 ]; then
    per_node=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)
    [ "$per_node" -gt 0 ] || { echo "launch: --cuda but nvidia-smi lists no GPU here; give --per-node" >&2; exit 2; }
  fi
fi
[[ "$per_node" =~ ^[1-9][0-9]*$ ]] || { echo "launch: --per-node must be a positive integer, not '$per_node'" >&2; exit 2; }

nodes=1
placement=()
if [ -n "$hostfile" ]; then
  [ -f "$hostfile" ] || { echo "launch: no hostfile '$hostfile'" >&2; exit 2; }
  nodes=$(grep -cvE '^[[:space:]]*(#|$)' "$hostfile" || true)
  [ "$nodes" -gt 0 ] || { echo "launch: hostfile '$hostfile' names no host" >&2; exit 2; }
  placement=(--hostfile "$hostfile")
fi
threads=$(( $(nproc) / per_node > 0 ? $(nproc) / per_node : 1 ))
read -r -a extra_flags <<< "${MPIRUN_FLAGS:-}"
command=(mpirun "${extra_flags[@]}" -np $((per_node * nodes)) "${placement[@]}" --map-by "ppr:$per_node:node" --bind-to none
         -x "OMP_NUM_THREADS=$threads")
for name in PATH LD_LIBRARY_PATH $(compgen -e | grep -E '^NCCL_' || true); do
  [ -n "${!name:-}" ] && command+=(-x "$name")
done
command+=("$root/build/train_gpt" --config "$config")
[ "$cuda" -eq 1 ] && command+=(--set run.device=cuda)
command+=("${args[@]}")
echo "${command[*]}"
[ "$dry_run" -eq 1 ] || exec "${command[@]}"
