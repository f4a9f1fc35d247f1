#!/usr/bin/env bash
# The fleet test, long version: runs tests/tests/fleet_churn.rs (200 devices hanging up at
# random against a real server) for N seeds in a row, one after the other, and reports
# every seed that broke a promise with the command that replays it.
#
#   scripts/fleet-soak.sh [N] [FIRST_SEED]
#
# N defaults to 200; seeds are FIRST_SEED, FIRST_SEED+1, … (FIRST_SEED defaults to a random
# one). Debug build, as in the test command. Each failure's output is kept in
# target/fleet-soak/SEED.log. Exits 1 when any seed failed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
first="${2:-$(( (RANDOM << 15 | RANDOM) ))}"
logs=target/fleet-soak
mkdir -p "$logs"
cargo test -p tests --test fleet_churn --no-run --quiet
failed=()
for ((i = 0; i < runs; i++)); do
    seed=$((first + i))
    if FLEET_SEED="$seed" cargo test --quiet -p tests --test fleet_churn -- \
        --exact two_hundred_devices_hanging_up_at_random_keep_every_promise --nocapture \
        >"$logs/$seed.log" 2>&1; then
        rm -f "$logs/$seed.log"
        echo "seed $seed: ok ($((i + 1))/$runs)"
    else
        failed+=("$seed")
        echo "seed $seed: FAILED ($((i + 1))/$runs), output in $logs/$seed.log"
    fi
done
echo "fleet soak: $runs seeds from $first, ${#failed[@]} failed${failed:+: ${failed[*]}}"
for seed in "${failed[@]}"; do
    echo "  replay: FLEET_SEED=$seed cargo test -p tests --test fleet_churn -- two_hundred_devices"
done
[ "${#failed[@]}" -eq 0 ]
