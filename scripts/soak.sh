#!/usr/bin/env bash
# Load soak, long version: DEVICES devices (default 500) connect, upload, download, subscribe
# and disconnect (politely or by dropping the link) against one server on loopback for SECONDS
# (default 600); checks that the server's memory stays flat and that every session's sockets,
# threads and hub entry are given back at the end. Prints the figures.
#
#   scripts/soak.sh [SECONDS] [DEVICES]
#
# The test command runs the same test with 200 devices for about 20 seconds
# (host-server/tests/hardening_soak.rs). Loopback only; it stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export STATESYNC_SOAK_SECS="${1:-600}"
export STATESYNC_SOAK_DEVICES="${2:-500}"
ulimit -n 65536 2>/dev/null || true
cargo test --release -p host-server --test hardening_soak -- --nocapture
