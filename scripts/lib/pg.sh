# Shell helpers for scripts and benchmarks: find PostgreSQL's server binaries, run them as the
# postgres user when we are root, create/start/stop throwaway clusters, free ports.

find_pg_bindir() {
    if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then echo "$PG_BINDIR"; return; fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
    echo "PostgreSQL server binaries not found: run scripts/install-deps.sh" >&2
    return 1
}
PG_BINDIR=$(find_pg_bindir)

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# pg_init_start DATA_DIR PORT [postgresql.conf lines...]
pg_init_start() {
    local data=$1 port=$2; shift 2
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data" "$(dirname "$data")"
    as_postgres "$PG_BINDIR/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 \
        --locale=C >/dev/null
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$data'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        for line in "$@"; do echo "$line"; done
    } >> "$data/postgresql.conf"
    as_postgres "$PG_BINDIR/pg_ctl" -D "$data" -l "$data/server.log" -w start >/dev/null
}

pg_stop() {
    [ -f "$1/postmaster.pid" ] && as_postgres "$PG_BINDIR/pg_ctl" -D "$1" -m fast -w stop >/dev/null
}
