#!/usr/bin/env bash
# Foreign-table polling benchmark, in one run: a "remote" cluster holds products(id, name,
# category, price) with ROWS rows; a "local" cluster, fronted by the proxy, reads it through
# postgres_fdw (remote_products). Measured, REPEAT rounds interleaved, medians quoted:
#  1. creating a DIFFERENTIAL stream table over the foreign table (once; includes the first poll,
#     which loads the mirror);
#  2. a poll that finds nothing changed: refresh_stream_table wall time, the poll's duration_ms,
#     the proxy's CPU time (utime+stime of /proc/PID/stat), rows hashed per second of proxy CPU,
#     WAL bytes, and the WAL records that touch the mirror or the change buffer (must be none);
#  3. 1% of the remote rows updated: the poll + DIFFERENTIAL refresh cycle (wall, proxy CPU,
#     poll duration, rows changed);
#  4. the alternatives: refresh of a FULL stream table over the same foreign table (after its own
#     1% change; it polls first too), REFRESH MATERIALIZED VIEW of the same query over the foreign
#     table (as written, where postgres_fdw may push the aggregate down, and with the pushdown
#     prevented), the query run directly on the remote cluster (lower bound), and a bare COPY of
#     the foreign table on the local server (what the poll's scan costs the servers);
#  5. the proxy's VmRSS / VmHWM before and after the create, at the end, and after a restart
#     (whose first poll rebuilds the multiset from the mirror).
# Usage: benches/foreign_poll.sh [ROWS] (default 1000000); REPEAT=5 by default; LOCAL_LOG=FILE
# keeps the local server's log of statements over 20 ms (the poller's among them). Builds the
# release proxy into ${CARGO_TARGET_DIR:-target}; needs PostgreSQL's server binaries with
# postgres_fdw and pg_waldump (scripts/install-deps.sh). Clusters and proxy are thrown away.
set -euo pipefail
ROWS=${1:-1000000}
REPEAT=${REPEAT:-5}
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

cargo build --release -p pgtrickle-proxy --bin pgtrickle-proxy >&2
PROXY_BIN="${CARGO_TARGET_DIR:-target}/release/pgtrickle-proxy"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/pgtrickle-fpbench.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=""
cleanup() {
    [ -n "${LOCAL_LOG:-}" ] && cp "$WORK/local/server.log" "$LOCAL_LOG" 2>/dev/null || true
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null || true
    pg_stop "$WORK/local" || true
    pg_stop "$WORK/remote" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

REMOTE_PORT=$(free_port)
pg_init_start "$WORK/remote" "$REMOTE_PORT" "shared_buffers = 256MB" "max_wal_size = 4GB"
LOCAL_PORT=$(free_port)
pg_init_start "$WORK/local" "$LOCAL_PORT" "shared_buffers = 512MB" "max_wal_size = 4GB" \
    "work_mem = 64MB" ${LOCAL_LOG:+"log_min_duration_statement = 20"}
PROXY_PORT=$(free_port)
start_proxy() {
    "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --log warn \
        --upstream "postgres://postgres@127.0.0.1:$LOCAL_PORT/postgres?sslmode=disable" \
        --scheduler-interval-ms 3600000 2>>"$WORK/proxy.log" &
    PROXY_PID=$!
    wait_port "$PROXY_PORT"
}
start_proxy

psql_at() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres postgres "${@:2}"; }
# One value (or row, |-separated) of a query.
val() { psql_at "$1" -t -A -c "$2"; }
# Runs SQL on port $1 and prints its duration in ms (psql \timing, client side); results and
# COPY data go to /dev/null.
timed() { psql_at "$1" -o /dev/null -c '\timing on' -c "$2" | awk '/^Time: / {print $2}' | tail -1; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# utime + stime of the proxy, in clock ticks (fields 14 and 15; the command name may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$PROXY_PID/stat" | awk '{print $12 + $13}'; }
ticks_ms() { echo $(( $1 * 1000 / CLK_TCK )); }
mem() { awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MB  ", $1, $2 / 1024}' "/proc/$PROXY_PID/status"; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PROXY_PID/status"; }
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$PROXY_PID/status"; }
# Appends value $2 to series $1.
rec() { echo "$2" >> "$WORK/s.$1"; }
med() { median < "$WORK/s.$1"; }

echo "loading $ROWS rows on the remote cluster" >&2
psql_at "$REMOTE_PORT" <<SQL
CREATE TABLE products (id int PRIMARY KEY, name text, category text, price numeric);
INSERT INTO products
SELECT g, 'product ' || g, 'category ' || (g % 1000), round((g % 10000) / 100.0 + 1, 2)
FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE products;
SQL
psql_at "$LOCAL_PORT" <<SQL
CREATE EXTENSION postgres_fdw;
CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '127.0.0.1', port '$REMOTE_PORT', dbname 'postgres', fetch_size '10000');
CREATE USER MAPPING FOR postgres SERVER remote OPTIONS (user 'postgres');
CREATE FOREIGN TABLE remote_products (id int, name text, category text, price numeric)
    SERVER remote OPTIONS (table_name 'products');
SQL
FOID=$(val "$LOCAL_PORT" "SELECT 'remote_products'::regclass::oid")
MIRROR="pgtrickle_changes.mirror_$FOID"
BUFFER="pgtrickle_changes.changes_$FOID"
DBOID=$(val "$LOCAL_PORT" "SELECT oid FROM pg_database WHERE datname = current_database()")
AGG="SELECT category, count(*) AS n, sum(price) AS total FROM remote_products GROUP BY category"
# The same, with the aggregate kept local (postgres_fdw cannot push a GROUP BY above OFFSET 0).
AGG_LOCAL="SELECT category, count(*) AS n, sum(price) AS total
           FROM (SELECT * FROM remote_products OFFSET 0) p GROUP BY category"
# duration_ms|rows_scanned|rows_changed of the last poll of the source.
poll_status() {
    val "$PROXY_PORT" "SELECT round(duration_ms::numeric, 1), rows_scanned, rows_changed
                       FROM pgtrickle.pgt_poll_status() WHERE mirror = '$MIRROR'"
}
# Runs SQL through the proxy; prints "wall_ms proxy_cpu_ms".
measured() {
    local c0 c1 t
    c0=$(cpu_ticks)
    t=$(timed "$PROXY_PORT" "$1")
    c1=$(cpu_ticks)
    echo "$t $(ticks_ms $((c1 - c0)))"
}
# Relfilenodes of the mirror, the change buffer, their indexes and TOAST tables (a|b|c).
relfilenodes() {
    val "$LOCAL_PORT" "WITH t AS (SELECT unnest(ARRAY['$MIRROR', '$BUFFER']::regclass[]) AS r),
        rels AS (SELECT r FROM t
                 UNION SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT r FROM t)
                 UNION SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT r FROM t)
                   AND reltoastrelid <> 0)
        SELECT string_agg(pg_relation_filenode(r)::text, '|') FROM rels"
}
# WAL records between LSNs $1 and $2 that touch the relfilenodes $3: "records row_writes bytes".
wal_on_rels() {
    local i
    for i in $(seq 1 100); do
        [ "$(val "$LOCAL_PORT" "SELECT pg_current_wal_lsn() >= '$2'::pg_lsn")" = t ] && break
        sleep 0.1
    done
    as_postgres "$PG_BINDIR/pg_waldump" -p "$WORK/local/pg_wal" -s "$1" -e "$2" 2>/dev/null \
        | grep -E "rel [0-9]+/$DBOID/($3)( |,|$)" > "$WORK/wal.hits" || true
    awk '{n++} /rmgr: Heap2? .*desc: (INSERT|DELETE|UPDATE|HOT_UPDATE|MULTI_INSERT)/ {w++}
         /rmgr: Btree .*desc: INSERT/ {w++}
         {s = $0; sub(/.*\(rec\/tot\): *[0-9]+\/ */, "", s); b += int(s)} END {printf "%d %d %d\n", n, w, b}' "$WORK/wal.hits"
}
# Kinds of the WAL records last found by wal_on_rels ("Heap2/PRUNE:12,..."), "-" when none.
wal_kinds() {
    awk '{d = $0; sub(/.*desc: /, "", d); split(d, a, " "); k[$2 "/" a[1]]++}
         END {for (x in k) {printf "%s%s:%d", sep, x, k[x]; sep = ","}; if (!sep) printf "-"; print ""}' \
        "$WORK/wal.hits"
}

echo
echo "Foreign-table polling: $ROWS remote rows, postgres_fdw fetch_size 10000, $REPEAT rounds"
echo "EXPLAIN of the materialized view's query (aggregate pushdown?):"
val "$LOCAL_PORT" "EXPLAIN (VERBOSE, COSTS OFF) $AGG" | grep -E "Remote SQL|Foreign Scan|Aggregate" | sed 's/^/    /' | cut -c1-150

MEM_BEFORE="$(mem)"; RSS0=$(rss_mb); HWM0=$(hwm_mb)
T_CREATE=$(timed "$PROXY_PORT" "SELECT pgtrickle.create_stream_table('product_summary', \$\$ $AGG \$\$,
    schedule => '1h', refresh_mode => 'DIFFERENTIAL')")
CREATE_POLL=$(poll_status)
MEM_CREATE="$(mem)"
T_CREATE_FULL=$(timed "$PROXY_PORT" "SELECT pgtrickle.create_stream_table('product_summary_full',
    \$\$ $AGG \$\$, schedule => '1h', refresh_mode => 'FULL')")
MEM_CREATE2="$(mem)"
psql_at "$LOCAL_PORT" -c "CREATE MATERIALIZED VIEW product_summary_mv AS $AGG" \
    -c "CREATE MATERIALIZED VIEW product_summary_mv_local AS $AGG_LOCAL" >/dev/null
echo "create product_summary: $T_CREATE ms (first poll: duration_ms|scanned|changed = $CREATE_POLL)"
echo "create product_summary_full: $T_CREATE_FULL ms"

step=100
for r in $(seq 1 "$REPEAT"); do
    # 2. A poll that finds nothing changed (every change so far was consumed by both readers).
    rfn=$(relfilenodes)
    counts0=$(val "$LOCAL_PORT" "SELECT (SELECT count(*) FROM $MIRROR), (SELECT count(*) FROM $BUFFER)")
    lsn0=$(val "$LOCAL_PORT" "SELECT pg_current_wal_insert_lsn()")
    read -r t c <<< "$(measured "SELECT pgtrickle.refresh_stream_table('product_summary')")"
    lsn1=$(val "$LOCAL_PORT" "SELECT pg_current_wal_insert_lsn()")
    IFS='|' read -r pd ps pc <<< "$(poll_status)"
    counts1=$(val "$LOCAL_PORT" "SELECT (SELECT count(*) FROM $MIRROR), (SELECT count(*) FROM $BUFFER)")
    wal=$(val "$LOCAL_PORT" "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
    read -r wn ww wb <<< "$(wal_on_rels "$lsn0" "$lsn1" "$rfn")"
    [ "$wn" = 0 ] || echo "round $r: WAL records on mirror/buffer during the no-change call: $(wal_kinds)" >&2
    [ "$pc" = 0 ] || echo "round $r: the no-change poll reported $pc rows changed" >&2
    rec nc.wall "$t"; rec nc.cpu "$c"; rec nc.poll "$pd"; rec nc.wal "$wal"
    rec nc.rate "$(awk -v n="$ps" -v c="$c" 'BEGIN {print (c > 0 ? n * 1000 / c : 0)}')"
    rec nc.walrecs "$wn"; rec nc.walwrites "$ww"; rec nc.changed "$pc"
    [ "$counts0" = "$counts1" ] || echo "round $r: mirror|buffer rows $counts0 -> $counts1" >&2
    echo "round $r no change: wall $t ms, proxy cpu $c ms, poll $pd ms, scanned $ps, changed $pc," \
         "WAL $wal B, WAL records on mirror/buffer $wn (row writes $ww, $wb B), mirror|buffer rows $counts1," \
         "proxy VmRSS $(rss_mb) / VmHWM $(hwm_mb) MB" >&2

    # 3. 1% of the remote rows changed, then poll + DIFFERENTIAL refresh.
    psql_at "$REMOTE_PORT" -c "UPDATE products SET price = price + 1 WHERE id % $step = $(( (2 * r) % step ))" >/dev/null
    lsn0=$(val "$LOCAL_PORT" "SELECT pg_current_wal_insert_lsn()")
    read -r t c <<< "$(measured "SELECT pgtrickle.refresh_stream_table('product_summary')")"
    lsn1=$(val "$LOCAL_PORT" "SELECT pg_current_wal_insert_lsn()")
    IFS='|' read -r pd ps pc <<< "$(poll_status)"
    wal=$(val "$LOCAL_PORT" "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
    # The same WAL check as above, as a positive control: here the poll does write.
    read -r wn ww wb <<< "$(wal_on_rels "$lsn0" "$lsn1" "$rfn")"
    rec d.wall "$t"; rec d.cpu "$c"; rec d.poll "$pd"; rec d.changed "$pc"; rec d.wal "$wal"
    rec d.walwrites "$ww"
    rec d.rate "$(awk -v n="$ps" -v c="$c" 'BEGIN {print (c > 0 ? n * 1000 / c : 0)}')"
    echo "round $r 1% cycle: wall $t ms, proxy cpu $c ms, poll $pd ms, changed $pc, WAL $wal B," \
         "WAL records on mirror/buffer $wn (row writes $ww, $wb B), proxy VmRSS $(rss_mb) / VmHWM $(hwm_mb) MB" >&2

    # 4a. FULL refresh of the same query, after its own 1% change (it polls first too).
    psql_at "$REMOTE_PORT" -c "UPDATE products SET price = price + 1 WHERE id % $step = $(( (2 * r + 1) % step ))" >/dev/null
    read -r t c <<< "$(measured "SELECT pgtrickle.refresh_stream_table('product_summary_full')")"
    IFS='|' read -r pd ps pc <<< "$(poll_status)"
    rec f.wall "$t"; rec f.cpu "$c"; rec f.poll "$pd"
    echo "round $r FULL: wall $t ms, proxy cpu $c ms, poll $pd ms, changed $pc, proxy VmRSS $(rss_mb) / VmHWM $(hwm_mb) MB" >&2
    # Untimed: product_summary consumes that change, so the next round's no-change poll starts
    # with every buffered change consumed (and cleaned up) by both readers.
    psql_at "$PROXY_PORT" -c "SELECT pgtrickle.refresh_stream_table('product_summary')" >/dev/null

    # 4b. REFRESH MATERIALIZED VIEW over the foreign table, as written and without pushdown.
    t=$(timed "$PROXY_PORT" "REFRESH MATERIALIZED VIEW product_summary_mv"); rec mv.wall "$t"
    t2=$(timed "$PROXY_PORT" "REFRESH MATERIALIZED VIEW product_summary_mv_local"); rec mvl.wall "$t2"
    # 4c. The query on the remote cluster itself.
    t3=$(timed "$REMOTE_PORT" "${AGG//remote_products/products}"); rec direct.wall "$t3"
    # 4d. The foreign table's rows streamed by the local server, without the proxy.
    t4=$(timed "$LOCAL_PORT" "COPY (SELECT id, name, category, price FROM remote_products) TO STDOUT")
    rec copy.wall "$t4"
    echo "round $r matview $t ms, matview without pushdown $t2 ms, direct on remote $t3 ms," \
         "COPY of the foreign table $t4 ms" >&2
done
MEM_END="$(mem)"; RSS2=$(rss_mb); HWM2=$(hwm_mb)

# Correctness: both stream tables equal their query over the foreign table.
for st in product_summary product_summary_full; do
    psql_at "$PROXY_PORT" -c "SELECT pgtrickle.refresh_stream_table('$st')" >/dev/null
    n=$(val "$LOCAL_PORT" "SELECT (SELECT count(*) FROM (SELECT category, n, total FROM $st EXCEPT ALL ($AGG)) a)
                               + (SELECT count(*) FROM (($AGG) EXCEPT ALL SELECT category, n, total FROM $st) b)")
    [ "$n" = 0 ] || { echo "$st differs from its query by $n rows" >&2; exit 1; }
done

# Restart: the first poll rebuilds the multiset from the mirror.
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
start_proxy
MEM_RESTART0="$(mem)"
read -r RT RC <<< "$(measured "SELECT pgtrickle.refresh_stream_table('product_summary')")"
RPOLL=$(poll_status)
MEM_RESTART="$(mem)"; RSS3=$(rss_mb); HWM3=$(hwm_mb)

NC_WALRECS=$(sort -n "$WORK/s.nc.walrecs" | tail -1)
NC_WALWRITES=$(sort -n "$WORK/s.nc.walwrites" | tail -1)
NC_CHANGED=$(sort -n "$WORK/s.nc.changed" | tail -1)
D=$(med d.wall); F=$(med f.wall); MV=$(med mv.wall); MVL=$(med mvl.wall)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
echo
echo "Medians of $REPEAT rounds ($ROWS remote rows)"
printf '%-52s %10s %10s %10s %8s\n' "" "wall ms" "proxy CPU" "poll ms" changed
printf '%-52s %10.1f %10s %10s %8s\n' "create product_summary (first poll loads mirror)" "$T_CREATE" - "${CREATE_POLL%%|*}" "${CREATE_POLL##*|}"
printf '%-52s %10.1f %10.0f %10.1f %8s\n' "no change: refresh_stream_table (poll + refresh)" "$(med nc.wall)" "$(med nc.cpu)" "$(med nc.poll)" "$NC_CHANGED"
printf '%-52s %10.1f %10.0f %10.1f %8.0f\n' "1% changed: poll + DIFFERENTIAL refresh" "$D" "$(med d.cpu)" "$(med d.poll)" "$(med d.changed)"
printf '%-52s %10.1f %10.0f %10.1f %8s\n' "1% changed: FULL stream table refresh (polls too)" "$F" "$(med f.cpu)" "$(med f.poll)" ""
printf '%-52s %10.1f\n' "REFRESH MATERIALIZED VIEW (as written)" "$MV"
printf '%-52s %10.1f\n' "REFRESH MATERIALIZED VIEW (no aggregate pushdown)" "$MVL"
printf '%-52s %10.1f\n' "the query directly on the remote cluster" "$(med direct.wall)"
printf '%-52s %10.1f\n' "COPY of the foreign table on the local server" "$(med copy.wall)"
printf '%-52s %10.1f\n' "after a restart: refresh (poll rebuilds multiset)" "$RT"
echo
echo "rows hashed per second of proxy CPU: no-change poll $(med nc.rate | awk '{printf "%.0f", $1}')," \
     "1% cycle $(med d.rate | awk '{printf "%.0f", $1}')"
echo "no-change call: WAL $(med nc.wal) B (median); WAL records on mirror/buffer: max $NC_WALRECS" \
     "over $REPEAT rounds, row writes among them: max $NC_WALWRITES"
echo "1% cycle call (control): WAL $(med d.wal) B, row-write WAL records on mirror/buffer $(med d.walwrites) (medians)"
echo "1% cycle / REFRESH MATERIALIZED VIEW: $(ratio "$D" "$MV") (no pushdown: $(ratio "$D" "$MVL"))"
echo "1% cycle / FULL refresh: $(ratio "$D" "$F")"
echo "after restart: proxy CPU $RC ms, poll duration_ms|scanned|changed $RPOLL"
echo
echo "proxy memory:"
echo "  before create:  $MEM_BEFORE"
echo "  after create:   $MEM_CREATE"
echo "  after 2nd create: $MEM_CREATE2"
echo "  end:            $MEM_END"
echo "  restarted:      $MEM_RESTART0"
echo "  after its poll: $MEM_RESTART"
echo "  growth over the run: RSS +$(awk -v a="$RSS2" -v b="$RSS0" 'BEGIN {printf "%.1f", a - b}') MB," \
     "peak (VmHWM) +$(awk -v a="$HWM2" -v b="$HWM0" 'BEGIN {printf "%.1f", a - b}') MB;" \
     "after restart + poll: RSS $RSS3 MB, VmHWM $HWM3 MB"
