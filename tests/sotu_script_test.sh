# The opening of the script tests that train on the SOTU shards and plot
# (sourced with the repository root as $1): run from the root, skip with a
# "SKIP:" line where the shards or matplotlib are missing, and a scratch
# folder $out removed on exit.
set -euo pipefail
root=$1
cd "$root"
ls data/sotu/sotu_train_*.bin > /dev/null 2>&1 || { echo "SKIP: data/sotu is not prepared (data/prepare_sotu.sh)"; exit 0; }
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || { echo "SKIP: matplotlib is not installed"; exit 0; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
