#!/usr/bin/env bash
# Fuzzes proto-core and the server: runs every cargo-fuzz target of proto-core/fuzz/ and
# host-server/fuzz/ for SECONDS each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 seconds, every target
#   scripts/fuzz.sh 600 round_trip           ten minutes of one target
#
# Targets: serial_accumulator, length_accumulator, client_frame_decode,
# server_frame_decode, name_validate, round_trip, frame_open (proto-core/fuzz/: proto-core alone),
# and session, manifest (host-server/fuzz/: host-server as a library: raw bytes into a session;
# manifest/upload/repair sequences from two devices) — `cargo +nightly fuzz list` in each crate.
#
# Needs a nightly toolchain and cargo-fuzz, which this script does not install:
#   rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz
#
# Not part of the test command. `cargo test` replays the committed corpus
# (<crate>/fuzz/corpus/<target>/) and <crate>/fuzz/artifacts-regressions/ through the same
# harnesses instead (proto-core/tests/fuzz_corpus.rs for proto-core's targets,
# host-server/tests/hardening_fuzz_corpus.rs for the server's), so what fuzzing found keeps
# being tested.
#
# New inputs go to a scratch corpus in $FUZZ_WORK (default: a fresh temporary directory), so the
# committed corpus stays small; to keep a few, copy them into <crate>/fuzz/corpus/<target>/.
# A crash stops the script (exit 1) with libFuzzer's report; the input is in
# <crate>/fuzz/artifacts/<target>/. After fixing it, copy the input into
# <crate>/fuzz/artifacts-regressions/ so the test command replays it from then on.
# A target that cannot be built or started stops the script with exit 2.
set -euo pipefail

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
crates=(proto-core host-server)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz on a nightly toolchain is needed:" >&2
    echo "  rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz" >&2
    exit 2
fi

wanted=("$@")
work="${FUZZ_WORK:-$(mktemp -d -t statesync-fuzz.XXXXXX)}"

# Runs one target of the crate in the current directory; exits on a crash or a failed start.
fuzz_one() {
    local crate="$1" target="$2"
    mkdir -p "$work/$target" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    local log="$work/$target.log"
    local started="$work/$target.started"
    touch "$started"
    echo "== $target: ${seconds}s (new inputs in $work/$target, log in $log)"
    # The first corpus directory receives new inputs; the committed one is only read.
    if cargo +nightly fuzz run --features libfuzzer "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
        echo "== $target: no crash; $(find "$work/$target" -type f | wc -l) new inputs"
    elif [ -n "$(find "fuzz/artifacts/$target" -type f -newer "$started")" ]; then
        grep -E -A3 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" >&2 || tail -n 40 "$log" >&2
        echo "== $target FOUND A CRASH: the input is in $crate/fuzz/artifacts/$target/" >&2
        exit 1
    else
        tail -n 40 "$log" >&2
        echo "== $target did not run (build or setup failed, see above); no crash recorded" >&2
        exit 2
    fi
}

ran=0
for crate in "${crates[@]}"; do
    cd "$root/$crate"
    mapfile -t available < <(cargo +nightly fuzz list)
    targets=()
    for target in "${available[@]}"; do
        if [ "${#wanted[@]}" -eq 0 ] || [[ " ${wanted[*]} " == *" $target "* ]]; then
            targets+=("$target")
        fi
    done
    [ "${#targets[@]}" -eq 0 ] && continue
    cargo +nightly fuzz build --features libfuzzer
    for target in "${targets[@]}"; do
        fuzz_one "$crate" "$target"
        ran=$((ran + 1))
    done
done
if [ "${#wanted[@]}" -ne 0 ] && [ "$ran" -ne "${#wanted[@]}" ]; then
    echo "== not every target named exists: ${wanted[*]} (see the list at the top of $0)" >&2
    exit 2
fi
