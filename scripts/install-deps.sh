#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian/Ubuntu machine: PostgreSQL's
# server binaries (initdb, pg_ctl, postgres, psql, pgbench; postgres_fdw and file_fdw come with
# them) and, for the benchmark only, PgBouncer. Does nothing for what is already there.
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
