#!/usr/bin/env bash
# Fuzz the Rust core with cargo-fuzz (libFuzzer + AddressSanitizer): every target for
# SECONDS seconds (default 10: the CI smoke run; the README's long runs use 600).
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# Installs cargo-fuzz (crates.io) when missing. A crash leaves its input under
# fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(matching verification rerank_shortlist decode)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
log="$(mktemp)"
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s"
    status=0
    cargo fuzz run -O "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        >"$log" 2>&1 || status=$?
    grep -E "^Done" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target failed (exit $status); input saved under fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
rm -f "$log"
