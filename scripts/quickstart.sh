#!/usr/bin/env bash
# One command on a fresh machine: virtual environment, dependencies, release build of the
# Rust core into the package, then the embedded default job (no ../shared, no network).
# Needs: python3 (>= 3.10) with venv, a Rust toolchain (cargo), and access to PyPI/crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "maturin>=1.7,<2"
# Remove a stale extension that could shadow the fresh build (see docs/STYLE pitfalls).
rm -f python/ilias_rerank/_core*.so
# Release build + every extra (torch, kornia, faiss, scikit-image, ...) and the test tools.
.venv/bin/maturin develop --release --extras all,test --quiet
# The whole pipeline on the embedded demo dataset: extract -> store -> global shortlist ->
# re-rank -> evaluate -> pictures and the HTML report (out/demo/report.html). Extra
# arguments go to `ilias-rerank run`.
.venv/bin/ilias-rerank run --report "$@"
