#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for a bounded time each (issue #16).
#
#   scripts/fuzz.sh                    # every target, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh api_yaml xds_resources
#
# Env: FUZZ_SECONDS (per target, default 30), FUZZ_SANITIZER (cargo fuzz -s: none (default;
# our code forbids unsafe, and it is twice as fast) or address), FUZZ_JOBS (parallel fuzzing
# processes per target, default 1).
# New inputs go to fuzz/target/corpus-run/TARGET (not checked in); the checked-in seeds in
# fuzz/corpus/TARGET and, where present, Istio's validation inputs in
# ../shared/fixtures/istio/corpus are read only. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes the script exit 1: fix it, then copy the input into
# fuzz/corpus/TARGET/ so that `cargo test -p lateen-fuzz-targets --test corpus` keeps it fixed.
# libFuzzer needs nightly features: the nightly toolchain when installed, else stable with
# RUSTC_BOOTSTRAP=1. cargo-fuzz is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
parallel=()
if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

# Debug assertions on: an arithmetic overflow is a bug the debug builds of the tests would hit.
build_flags=(-s "$sanitizer" --debug-assertions)
"${cargo[@]}" fuzz build "${build_flags[@]}"

istio_inputs=../shared/fixtures/istio/corpus/validation
failed=()
for target in "${targets[@]}"; do
    scratch="fuzz/target/corpus-run/$target"
    mkdir -p "$scratch" "fuzz/corpus/$target"
    seeds=("fuzz/corpus/$target")
    case "$target" in
        api_yaml) [ -d "$istio_inputs" ] && seeds+=("$istio_inputs") ;;
    esac
    echo "== $target: ${seconds}s"
    if ! "${cargo[@]}" fuzz run "${build_flags[@]}" "$target" "$scratch" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        "${parallel[@]}" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
