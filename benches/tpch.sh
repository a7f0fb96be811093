#!/usr/bin/env bash
# TPC-H refresh benchmark. For each of the 22 queries (tests/tpch/queries) over TPC-H-shaped
# data at scale factor SF (tests/tpch: generated in SQL, no dbgen), the time to bring it up to
# date after one refresh cycle (RF1: SF x 1,500 new orders, 0.1%, with their lineitems; RF2:
# the SF x 1,500 oldest orders deleted; with UPDATES=1 also tests/tpch/updates.sql) by
#   - refresh_stream_table of a stream table created DIFFERENTIAL (when the planner refuses
#     the query, the construct it names is printed instead),
#   - refresh_stream_table of a stream table created FULL,
#   - REFRESH MATERIALIZED VIEW of a materialized view of the same query,
# interleaved query by query after each cycle, each statement in a psql of its own (a new
# session), timed by psql (client side, including the API round trip). Medians of REPEAT
# cycles (default 3). At the end every DIFFERENTIAL stream table is checked: each of its timed
# refreshes was DIFFERENTIAL, and it equals its query.
# Usage: benches/tpch.sh [SF] (default 0.1). QUERIES="q01 q06" limits the queries; PROXY_BIN
# runs that proxy binary instead of building the release one.
set -euo pipefail
SF=${1:-0.1}
REPEAT=${REPEAT:-3}
UPDATES=${UPDATES:-0}
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh
T=tests/tpch

PROXY_BIN=${PROXY_BIN:-target/release/pgtrickle-proxy}
[ "$PROXY_BIN" = target/release/pgtrickle-proxy ] &&
    cargo build --release -p pgtrickle-proxy --bin pgtrickle-proxy >&2
WORK=$(mktemp -d /tmp/pgtrickle-tpch.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=""
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    pg_stop "$WORK/data" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
START=$(date +%s)
elapsed() { echo "$(( $(date +%s) - START )) s"; }

PG_PORT=$(free_port)
pg_init_start "$WORK/data" "$PG_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
    "work_mem = 64MB" "maintenance_work_mem = 256MB"
PROXY_PORT=$(free_port)
"$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --log warn \
    --upstream "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
    --scheduler-interval-ms 3600000 2>"$WORK/proxy.log" &
PROXY_PID=$!
wait_port "$PROXY_PORT"
PSQL=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres)

timed() {
    "${PSQL[@]}" -c '\timing on' -c "$1" | awk '/^Time: / {print $2}' | tail -1
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# A query file without comment lines and final semicolon.
query_of() { grep -v '^ *--' "$T/queries/$1.sql" | sed 's/; *$//'; }

echo "SF $SF: loading" >&2
"${PSQL[@]}" -f "$T/schema.sql"
"${PSQL[@]}" -o /dev/null -c "SET tpch.sf = '$SF'" -f "$T/generate.sql" -f "$T/orders.sql"
"${PSQL[@]}" -c "VACUUM ANALYZE"
"${PSQL[@]}" -t -A -c "SELECT 'lineitem rows: ' || count(*) || ', orders: ' || (SELECT count(*) FROM orders) FROM lineitem" >&2
echo "loaded at $(elapsed)" >&2

QS=${QUERIES:-$(cd "$T/queries" && ls q*.sql | sed 's/\.sql$//')}
for q in $QS; do
    body=$(query_of "$q")
    if ! "${PSQL[@]}" -o /dev/null -c "SELECT pgtrickle.create_stream_table('${q}_diff', \$\$ $body \$\$, '1h', 'DIFFERENTIAL')" 2>"$WORK/$q.why"; then
        sed -n 's/.*ERROR: *\(.*\) is not supported.*/\1/p' "$WORK/$q.why" | head -1 > "$WORK/$q.refused"
    fi
    "${PSQL[@]}" -o /dev/null -c "SELECT pgtrickle.create_stream_table('${q}_full', \$\$ $body \$\$, '1h', 'FULL')"
    "${PSQL[@]}" -o /dev/null -c "CREATE MATERIALIZED VIEW ${q}_mv AS $body"
done
"${PSQL[@]}" -c "ANALYZE"
echo "created at $(elapsed)" >&2

for r in $(seq 1 "$REPEAT"); do
    "${PSQL[@]}" -o /dev/null -c "SET tpch.sf = '$SF'" -c BEGIN -f "$T/rf1.sql" -f "$T/orders.sql" \
        -c COMMIT -f "$T/rf2.sql"
    if [ "$UPDATES" = 1 ]; then
        "${PSQL[@]}" -o /dev/null -c "SET tpch.sf = '$SF'" -c "SET tpch.cycle = '$r'" \
            -c BEGIN -f "$T/updates.sql" -c COMMIT
    fi
    for q in $QS; do
        [ -f "$WORK/$q.refused" ] ||
            timed "SELECT pgtrickle.refresh_stream_table('${q}_diff')" >> "$WORK/$q.diff"
        timed "SELECT pgtrickle.refresh_stream_table('${q}_full')" >> "$WORK/$q.full"
        timed "REFRESH MATERIALIZED VIEW ${q}_mv" >> "$WORK/$q.mv"
    done
    echo "cycle $r done at $(elapsed)" >&2
done

# Every DIFFERENTIAL stream table refreshed DIFFERENTIAL and equals its query.
for q in $QS; do
    [ -f "$WORK/$q.refused" ] && continue
    body=$(query_of "$q")
    full=$("${PSQL[@]}" -t -A -c "SELECT string_agg(action || ' ' || coalesce(reason, ''), '; ') FROM pgtrickle.get_refresh_history('${q}_diff', $REPEAT) WHERE action <> 'DIFFERENTIAL'")
    [ -z "$full" ] || echo "NOT DIFFERENTIAL: ${q}_diff refreshed $full" >&2
    cols=$("${PSQL[@]}" -t -A -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '${q}_diff'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'")
    n=$("${PSQL[@]}" -t -A -c "SELECT (SELECT count(*) FROM (SELECT $cols FROM ${q}_diff EXCEPT ALL ($body)) a) + (SELECT count(*) FROM (($body) EXCEPT ALL SELECT $cols FROM ${q}_diff) b)")
    [ "$n" = 0 ] || echo "WRONG: ${q}_diff differs from its query by $n rows" >&2
done

echo
echo "TPC-H SF $SF, refresh after one cycle (ms, medians of $REPEAT cycles; UPDATES=$UPDATES)"
echo
echo "| query | DIFFERENTIAL | FULL | MATVIEW | FULL / DIFFERENTIAL | MATVIEW / DIFFERENTIAL |"
echo "|---|---|---|---|---|---|"
for q in $QS; do
    f=$(median < "$WORK/$q.full"); m=$(median < "$WORK/$q.mv")
    if [ -f "$WORK/$q.refused" ]; then
        printf '| %s | FULL only: %s | %.1f | %.1f | | |\n' "$q" "$(cat "$WORK/$q.refused")" "$f" "$m"
    else
        d=$(median < "$WORK/$q.diff")
        printf '| %s | %.1f | %.1f | %.1f | %.1fx | %.1fx |\n' "$q" "$d" "$f" "$m" \
            "$(echo "$f / $d" | bc -l)" "$(echo "$m / $d" | bc -l)"
    fi
done
echo "total $(elapsed)" >&2
