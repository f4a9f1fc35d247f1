#!/usr/bin/env bash
# Crash consistency, long version: SIGKILLs the server at random moments during uploads,
# downloads, deletes, retries and manifests for SECONDS (default 600), checking the data
# directory after every kill and finishing every upload at the end.
#
#   scripts/crash-soak.sh [SECONDS] [SEED]
#
# The test command runs the same test for about 30 seconds
# (host-server/tests/crash_consistency.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export STATESYNC_CRASH_SECS="${1:-600}"
export STATESYNC_CRASH_SEED="${2:-$RANDOM}"
echo "crash soak: ${STATESYNC_CRASH_SECS}s, seed ${STATESYNC_CRASH_SEED}"
cargo test --release -p host-server --test crash_consistency -- --nocapture
