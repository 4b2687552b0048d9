#!/usr/bin/env bash
# The light install, as a user gets it from `pip install ilias-rerank`: the release wheel
# (maturin build --release) in a fresh virtual environment that has nothing but numpy,
# then scripts/light_smoke.py there (re-ranking, verification, store, evaluation and the rust
# backend's extraction from JPEG and PNG photos work; the import loads no torch or Pillow;
# the OpenCV backend and the CLI name the extra to install).
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist/light
rm -rf "$out"
.venv/bin/maturin build --release --out "$out" --quiet
venv="$(mktemp -d)/light-venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$out"/ilias_rerank-*.whl
# Run from outside the repository so that nothing is imported from the source tree.
(cd "$(dirname "$venv")" && "$venv/bin/python" "$OLDPWD/scripts/light_smoke.py")
rm -rf "$(dirname "$venv")"
