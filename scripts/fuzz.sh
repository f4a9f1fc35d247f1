#!/usr/bin/env bash
# Fuzzes proto-core: runs every cargo-fuzz target in proto-core/fuzz/ for SECONDS each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 seconds, every target
#   scripts/fuzz.sh 600 round_trip           ten minutes of one target
#
# Targets: serial_accumulator, length_accumulator, client_frame_decode,
# server_frame_decode, name_validate, round_trip, frame_open (proto-core alone), and session, manifest
# (host-server as a library: raw bytes into a session; manifest/upload/repair sequences from
# two devices) — `cargo +nightly fuzz list` in proto-core/.
#
# Needs a nightly toolchain and cargo-fuzz, which this script does not install:
#   rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz
#
# Not part of the test command. `cargo test` replays the committed corpus
# (proto-core/fuzz/corpus/<target>/) and proto-core/fuzz/artifacts-regressions/ through every
# decoder instead (proto-core/tests/fuzz_corpus.rs; the server targets' corpus through the
# server harnesses in host-server/tests/hardening_fuzz_corpus.rs), so what fuzzing found keeps
# being tested.
#
# New inputs go to a scratch corpus in $FUZZ_WORK (default: a fresh temporary directory), so the
# committed corpus stays small; to keep a few, copy them into proto-core/fuzz/corpus/<target>/.
# A crash stops the script (exit 1) with libFuzzer's report; the input is in
# proto-core/fuzz/artifacts/<target>/. After fixing it, copy the input into
# proto-core/fuzz/artifacts-regressions/ so the test command replays it from then on.
# A target that cannot be built or started stops the script with exit 2.
set -euo pipefail

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

cd "$(dirname "$0")/../proto-core"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz on a nightly toolchain is needed:" >&2
    echo "  rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz" >&2
    exit 2
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
work="${FUZZ_WORK:-$(mktemp -d -t proto-core-fuzz.XXXXXX)}"

cargo +nightly fuzz build
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="$work/$target.log"
    started="$work/$target.started"
    touch "$started"
    echo "== $target: ${seconds}s (new inputs in $work/$target, log in $log)"
    # The first corpus directory receives new inputs; the committed one is only read.
    if cargo +nightly fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
        echo "== $target: no crash; $(find "$work/$target" -type f | wc -l) new inputs"
    elif [ -n "$(find "fuzz/artifacts/$target" -type f -newer "$started")" ]; then
        grep -E -A3 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" >&2 || tail -n 40 "$log" >&2
        echo "== $target FOUND A CRASH: the input is in proto-core/fuzz/artifacts/$target/" >&2
        exit 1
    else
        tail -n 40 "$log" >&2
        echo "== $target did not run (build or setup failed, see above); no crash recorded" >&2
        exit 2
    fi
done
