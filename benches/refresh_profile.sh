#!/usr/bin/env bash
# Where the milliseconds of one refresh go: every statement the proxy sends for it, with
# PostgreSQL's own duration of each and the time between them (round trips, the proxy's work),
# from the server log (log_min_duration_statement = 0).
# Usage: benches/refresh_profile.sh [ROWS] [PCT] [KIND]   (defaults 1000000, 1, agg;
# KIND is agg, join or minmax, the queries of benches/stream_tables.sh). The refresh is profiled
# after a warm-up refresh of the same size, so caches are loaded as in the scheduler's session.
set -euo pipefail
ROWS=${1:-1000000}
PCT=${2:-1}
KIND=${3:-agg}
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh
source benches/lib/stream_source.sh

cargo build --release -p pgtrickle-proxy --bin pgtrickle-proxy >&2
WORK=$(mktemp -d /tmp/pgtrickle-profile.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=""
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    pg_stop "$WORK/data" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(free_port)
pg_init_start "$WORK/data" "$PG_PORT" "shared_buffers = 512MB" "max_wal_size = 4GB" \
    "work_mem = 64MB" "log_line_prefix = '%m [%p] '"
PROXY_PORT=$(free_port)
target/release/pgtrickle-proxy --listen "127.0.0.1:$PROXY_PORT" --log warn \
    --upstream "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
    --scheduler-interval-ms 600000 2>"$WORK/proxy.log" &
PROXY_PID=$!
wait_port "$PROXY_PORT"
PSQL=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres)

load_stream_source "$ROWS"
case $KIND in
    agg) Q=$AGG ;;
    join) Q=$JOIN ;;
    minmax) Q=$MINMAX ;;
    *) echo "KIND: agg, join or minmax" >&2; exit 2 ;;
esac
"${PSQL[@]}" -c "SELECT pgtrickle.create_stream_table('st', \$\$ $Q \$\$, schedule => '1h', refresh_mode => 'DIFFERENTIAL')" >/dev/null
step=$(echo "100 / $PCT" | bc)
"${PSQL[@]}" -c "UPDATE src SET val = val + 1 WHERE id % $step = 1" -c "SELECT pgtrickle.refresh_stream_table('st')" >/dev/null
"${PSQL[@]}" -c "UPDATE src SET val = val + 1 WHERE id % $step = 2" >/dev/null
as_postgres "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres \
    -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
: > "$WORK/data/server.log" 2>/dev/null || true
LOG_FROM=$(wc -l < "$WORK/data/server.log")
client=$("${PSQL[@]}" -c '\timing on' -c "SELECT pgtrickle.refresh_stream_table('st')" | awk '/^Time: / {print $2}')
sleep 0.3
tail -n +"$((LOG_FROM + 1))" "$WORK/data/server.log" | tee "${PROFILE_LOG:-/dev/null}" | python3 -c '
import re, sys, datetime
rows = []
for line in sys.stdin:
    m = re.match(r"(\S+ \S+) UTC \[(\d+)\] LOG:  duration: ([\d.]+) ms  (?:statement|execute [^:]*): (.*)", line)
    if m:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
        rows.append((t, m.group(2), float(m.group(3)), m.group(4)))
    elif rows and not re.match(r"\S+ \S+ UTC \[", line):
        pass
if not rows:
    sys.exit("no statements logged")
start = rows[0][0] - datetime.timedelta(milliseconds=rows[0][2])
prev_end = start
total_sql = 0.0
print("%8s %7s %8s  statement (pid)" % ("at ms", "gap", "sql ms"))
for t, pid, d, s in rows:
    begun = t - datetime.timedelta(milliseconds=d)
    gap = (begun - prev_end).total_seconds() * 1000
    total_sql += d
    print(f"{(begun - start).total_seconds()*1000:8.2f} {gap:7.2f} {d:8.2f}  {s[:110]} ({pid})")
    prev_end = t
span = (rows[-1][0] - start).total_seconds() * 1000
print(f"{len(rows)} statements, {total_sql:.1f} ms in PostgreSQL, {span:.1f} ms from first to last")
'
echo "client-side: $client ms ($KIND, $PCT% of $ROWS rows changed)"
