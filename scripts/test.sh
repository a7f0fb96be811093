#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace (unit, property-based, and end-to-end against real PostgreSQL clusters that the
# tests start themselves), and ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
