#!/usr/bin/env bash
# Proxy overhead: pgbench select-only (-S) over TCP in three modes (simple protocol with 4
# clients, prepared with 4, simple with 1), directly against PostgreSQL, through a bare tokio
# copy_bidirectional forwarder (the floor of any user-space relay: benches/bare_forwarder.rs),
# through pgtrickle-proxy (default runtime; one worker thread; with its HTTP listener on and
# scraped every second), and through PgBouncer (session mode) when it is installed. Targets are
# interleaved within each round; medians are reported with their ratios to direct TPS and to
# the bare forwarder's.
#
# Usage: benches/pgbench_overhead.sh [ROUNDS] [SECONDS_PER_RUN]
# Environment: PG_BINDIR (server binaries), CLIENTS (default 4), SCALE (default 10).
set -euo pipefail
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
CLIENTS=${CLIENTS:-4}
SCALE=${SCALE:-10}
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

cargo build --release -p pgtrickle-proxy --bin pgtrickle-proxy --example bare_forwarder >&2
PROXY=target/release/pgtrickle-proxy
FORWARDER=target/release/examples/bare_forwarder

WORK=$(mktemp -d /tmp/pgtrickle-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    # PgBouncer runs under runuser: its own pid is in its pidfile.
    [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
    pg_stop "$WORK/data" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(free_port)
pg_init_start "$WORK/data" "$PG_PORT" "max_connections = 100" "shared_buffers = 256MB"
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1

# The proxy with its default runtime (one worker per core) and with a single-threaded one.
TARGETS="direct:$PG_PORT"
FORWARDER_PORT=$(free_port)
"$FORWARDER" "127.0.0.1:$FORWARDER_PORT" "127.0.0.1:$PG_PORT" 2>>"$WORK/forwarder.log" &
PIDS+=($!)
wait_port "$FORWARDER_PORT"
TARGETS="$TARGETS forwarder:$FORWARDER_PORT"
for variant in "proxy:0" "proxy-1t:1" "proxy-http:0"; do
    port=$(free_port)
    http=()
    if [ "${variant%%:*}" = proxy-http ]; then
        HTTP_PORT=$(free_port)
        http=(--http-listen "127.0.0.1:$HTTP_PORT")
    fi
    "$PROXY" --listen "127.0.0.1:$port" --worker-threads "${variant##*:}" "${http[@]}" \
        --upstream "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
        --log warn 2>>"$WORK/proxy.log" &
    PIDS+=($!)
    wait_port "$port"
    TARGETS="$TARGETS ${variant%%:*}:$port"
done
# A Prometheus-like scraper of the listener, once a second, for the whole run.
( while sleep 1; do curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >/dev/null || true; done ) &
PIDS+=($!)
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    BOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    BOUNCER_PORT=$(free_port)
    cat > "$WORK/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$PG_PORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
    echo '"postgres" ""' > "$WORK/userlist.txt"
    chown -R postgres "$WORK" 2>/dev/null || true
    as_postgres "$BOUNCER" -q "$WORK/pgbouncer.ini" &
    PIDS+=($!)
    wait_port "$BOUNCER_PORT"
    TARGETS="$TARGETS pgbouncer:$BOUNCER_PORT"
    echo "PgBouncer: $("$BOUNCER" --version | head -1)" >&2
else
    echo "PgBouncer not installed: reporting direct and proxy only" >&2
fi

RESULTS="$WORK/results.txt"
: > "$RESULTS"
MODES="simple prepared simple-1"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        protocol=${mode%-1}
        clients=$CLIENTS; threads=2
        [ "$mode" = simple-1 ] && { clients=1; threads=1; }
        for t in $TARGETS; do
            name=${t%%:*}; port=${t##*:}
            tps=$("$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -S -M "$protocol" \
                -c "$clients" -j "$threads" -T "$SECONDS_PER_RUN" postgres 2>/dev/null \
                | awk '/^tps = / {print $3; exit}')
            echo "$mode $name $tps" >> "$RESULTS"
            echo "round $round: $mode $name $tps tps" >&2
        done
    done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "pgbench -S, $CLIENTS clients (simple-1: one), ${SECONDS_PER_RUN}s runs, $ROUNDS interleaved rounds (median TPS)"
printf '%-9s %-10s %10s %9s %12s\n' mode target tps vs-direct vs-forwarder
for mode in $MODES; do
    direct=$(awk -v m=$mode '$1==m && $2=="direct" {print $3}' "$RESULTS" | median)
    forwarder=$(awk -v m=$mode '$1==m && $2=="forwarder" {print $3}' "$RESULTS" | median)
    for t in $TARGETS; do
        name=${t%%:*}
        med=$(awk -v m=$mode -v n=$name '$1==m && $2==n {print $3}' "$RESULTS" | median)
        printf '%-9s %-10s %10.0f %8.3fx %11.3fx\n' "$mode" "$name" "$med" \
            "$(echo "$med / $direct" | bc -l)" "$(echo "$med / $forwarder" | bc -l)"
    done
done
