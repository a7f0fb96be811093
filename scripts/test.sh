#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace (unit, property-based, and end-to-end against real PostgreSQL clusters that the
# tests start themselves) against the machine's PostgreSQL (or PGTRICKLE_TEST_PG's), then the
# end-to-end test binaries in PG18_TESTS again against PostgreSQL 18 (from scripts/install-pg.sh;
# skipped when arguments are given or PGTRICKLE_TEST_PG is set), and ends with one summary line
# over all test binaries of both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The end-to-end binaries that run against PostgreSQL 18 too: the wire protocol, logins, TLS,
# cancel, the drivers and the stream tables' main paths (already built by the first run).
PG18_TESTS="passthrough stream_tables api_in_batches auth cancel tls drivers drivers_sqlx"

set +e
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ $# -eq 0 ] && [ -z "${PGTRICKLE_TEST_PG:-}" ]; then
    if [ -x .pg/18/bin/postgres ]; then
        echo "=== the same end-to-end tests against PostgreSQL 18: $PG18_TESTS"
        tests=()
        for t in $PG18_TESTS; do tests+=(--test "$t"); done
        PGTRICKLE_TEST_PG=18 cargo test -p pgtrickle-e2e --no-fail-fast "${tests[@]}" 2>&1 |
            tee -a "$log"
        [ "${PIPESTATUS[0]}" = 0 ] || status=1
    else
        echo "=== PostgreSQL 18 is not installed (scripts/install-pg.sh 18): its run is skipped"
    fi
fi
set -e
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
