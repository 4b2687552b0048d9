#!/usr/bin/env bash
# The whole test suite: Rust core (cargo test, proptest) and Python (pytest, hypothesis).
# Rebuilds the extension first (incremental) so the tests never run a stale build.
# Tests that need ../shared/data skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    echo "no .venv: run scripts/quickstart.sh first" >&2
    exit 2
fi
.venv/bin/maturin develop --release --extras all,test --quiet
cargo test --release
.venv/bin/python -m pytest tests "$@"
