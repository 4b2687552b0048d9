#!/usr/bin/env bash
# Rebuild the extension into the source tree without disturbing running processes: the new
# library is built as a wheel, then renamed over the old one (a process that has the old
# one loaded keeps it). For development while a long benchmark runs; CI uses maturin develop.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
.venv/bin/maturin build --release --out "$tmp" --quiet
(cd "$tmp" && unzip -q -o ./*.whl 'ilias_rerank/_core*.so')
so="$(ls "$tmp"/ilias_rerank/_core*.so)"
cp "$so" "python/ilias_rerank/.$(basename "$so").new"
mv "python/ilias_rerank/.$(basename "$so").new" "python/ilias_rerank/$(basename "$so")"
rm -rf "$tmp"
