#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian/Ubuntu machine: PostgreSQL's
# server binaries (initdb, pg_ctl, postgres, psql, pgbench; postgres_fdw and file_fdw come with
# them), the client drivers of the driver tests (JDBC, psycopg 3, node-postgres) and, for the
# benchmark only, PgBouncer; Debian's chromium renders the status page in a test. Does nothing for what is already there.
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
# packages, psycopg 3 for the python3 on PATH, and node-postgres as locked in
# tests/drivers/node/package-lock.json.
drivers=()
command -v javac >/dev/null 2>&1 || drivers+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || drivers+=(libpostgresql-jdbc-java)
command -v python3 >/dev/null 2>&1 || drivers+=(python3)
command -v npm >/dev/null 2>&1 || drivers+=(nodejs npm)
# The status page test (tests/tests/operations_page.rs) renders the page in headless Chromium.
command -v chromium >/dev/null 2>&1 || drivers+=(chromium)
if ! python3 -c 'import psycopg' >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
    drivers+=(python3-pip)
fi
if [ ${#drivers[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "please install: ${drivers[*]}" >&2
        exit 1
    fi
    echo "installing ${drivers[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${drivers[@]}" >/dev/null
fi
if ! python3 -c 'import psycopg' >/dev/null 2>&1; then
    echo "installing psycopg 3 (pip) for $(command -v python3)" >&2
    # A Debian python refuses installs outside a venv (PEP 668) unless told otherwise.
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    python3 -m pip install --quiet 'psycopg[binary]' 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages 'psycopg[binary]'
fi
if [ ! -d "$root/tests/drivers/node/node_modules" ]; then
    echo "installing node-postgres (npm ci in tests/drivers/node)" >&2
    npm ci --prefix "$root/tests/drivers/node" --silent --no-audit --no-fund
fi
