#!/usr/bin/env bash
# Stream-table benchmarks, in one run on one cluster through one proxy:
#  1. refresh time of DIFFERENTIAL vs FULL vs REFRESH MATERIALIZED VIEW, for a grouped aggregate,
#     a 3-way join and a MIN/MAX aggregate (1,000 groups; the source has an index on the group
#     key) over a ROWS-row source, at 0.01%, 1%, 10% and 50% of rows changed (and AUTO against
#     the better of DIFFERENTIAL and FULL), each
#     statement in a psql of its own (a new session) and, again, in one warm session per round;
#  2. write overhead of change capture: 100,000 single-row INSERTs (pgbench, 4 clients) and one
#     1,000,000-row INSERT ... SELECT, with and without capture, interleaved;
#  3. freshness: time from a committed write through the proxy to its visibility in a
#     `calculated` stream table (median of many samples).
# Usage: benches/stream_tables.sh [ROWS] (default 1000000). Medians of REPEAT runs (default 3);
# PCTS="0.01 1" limits section 1 to those percentages, KINDS="minmax" to those queries.
set -euo pipefail
ROWS=${1:-1000000}
REPEAT=${REPEAT:-3}
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh
source benches/lib/stream_source.sh

cargo build --release -p pgtrickle-proxy -p pgtrickle-e2e --bin pgtrickle-proxy --bin freshness >&2
WORK=$(mktemp -d /tmp/pgtrickle-stbench.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=""
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    pg_stop "$WORK/data" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(free_port)
pg_init_start "$WORK/data" "$PG_PORT" "shared_buffers = 512MB" "max_wal_size = 4GB" "work_mem = 64MB"
PROXY_PORT=$(free_port)
target/release/pgtrickle-proxy --listen "127.0.0.1:$PROXY_PORT" --log warn \
    --upstream "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
    --scheduler-interval-ms 60000 2>"$WORK/proxy.log" &
PROXY_PID=$!
wait_port "$PROXY_PORT"
PSQL=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres)

# Runs SQL through the proxy and prints its duration in ms (client-side, psql \timing).
timed() {
    "${PSQL[@]}" -c '\timing on' -c "$1" | awk '/^Time: / {print $2}' | tail -1
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "loading $ROWS rows" >&2
load_stream_source "$ROWS"
KINDS=${KINDS:-agg join minmax}
UKINDS=$(echo "$KINDS" | tr a-z A-Z)
for kind in $UKINDS; do
    q=${!kind}
    lower=$(echo "$kind" | tr A-Z a-z)
    "${PSQL[@]}" -c "SELECT pgtrickle.create_stream_table('${lower}_diff', \$\$ $q \$\$, schedule => '1h', refresh_mode => 'DIFFERENTIAL')" >/dev/null
    "${PSQL[@]}" -c "SELECT pgtrickle.create_stream_table('${lower}_full', \$\$ $q \$\$, schedule => '1h', refresh_mode => 'FULL')" >/dev/null
    "${PSQL[@]}" -c "SELECT pgtrickle.create_stream_table('${lower}_auto', \$\$ $q \$\$, schedule => '1h', refresh_mode => 'AUTO')" >/dev/null
    "${PSQL[@]}" -c "CREATE MATERIALIZED VIEW ${lower}_mv AS $q" >/dev/null
done

echo
echo "1. Refresh time over a $ROWS-row source (ms, median of $REPEAT)"
printf '%-6s %8s %12s %10s %10s %12s %10s %10s\n' query changed DIFFERENTIAL FULL MATVIEW FULL/DIFF AUTO AUTO/best
for pct in ${PCTS:-0.01 1 10 50}; do
    step=$(echo "100 / $pct" | bc)
    for kind in $KINDS; do
        : > "$WORK/t.diff"; : > "$WORK/t.full"; : > "$WORK/t.mv"; : > "$WORK/t.auto"
        for r in $(seq 1 "$REPEAT"); do
            "${PSQL[@]}" -c "UPDATE src SET val = val + 1 WHERE id % $step = $r % $step" >/dev/null
            timed "SELECT pgtrickle.refresh_stream_table('${kind}_diff')" >> "$WORK/t.diff"
            timed "SELECT pgtrickle.refresh_stream_table('${kind}_full')" >> "$WORK/t.full"
            timed "REFRESH MATERIALIZED VIEW ${kind}_mv" >> "$WORK/t.mv"
            timed "SELECT pgtrickle.refresh_stream_table('${kind}_auto')" >> "$WORK/t.auto"
        done
        d=$(median < "$WORK/t.diff"); f=$(median < "$WORK/t.full"); m=$(median < "$WORK/t.mv"); a=$(median < "$WORK/t.auto")
        best=$(echo "if ($d < $f) $d else $f" | bc -l)
        printf '%-6s %7s%% %12.1f %10.1f %10.1f %11.1fx %10.1f %9.2fx\n' "$kind" "$pct" "$d" "$f" "$m" "$(echo "$f / $d" | bc -l)" "$a" "$(echo "$a / $best" | bc -l)"
        # The same in one warm session per round (caches loaded by a refresh with nothing to
        # do and a read of each table first), as the scheduler's own connection refreshes.
        : > "$WORK/w.diff"; : > "$WORK/w.full"; : > "$WORK/w.mv"
        for r in $(seq 1 "$REPEAT"); do
            "${PSQL[@]}" -c "SELECT pgtrickle.refresh_stream_table('${kind}_diff')" \
                -c "SELECT 1 FROM ${kind}_full LIMIT 1" -c "SELECT 1 FROM ${kind}_mv LIMIT 1" \
                -c "UPDATE src SET val = val + 1 WHERE id % $step = ($r + $REPEAT) % $step" \
                -c '\timing on' \
                -c "SELECT pgtrickle.refresh_stream_table('${kind}_diff')" \
                -c "SELECT pgtrickle.refresh_stream_table('${kind}_full')" \
                -c "REFRESH MATERIALIZED VIEW ${kind}_mv" >"$WORK/w.out"
            awk '/^Time: / {print $2}' "$WORK/w.out" | sed -n 1p >> "$WORK/w.diff"
            awk '/^Time: / {print $2}' "$WORK/w.out" | sed -n 2p >> "$WORK/w.full"
            awk '/^Time: / {print $2}' "$WORK/w.out" | sed -n 3p >> "$WORK/w.mv"
        done
        d=$(median < "$WORK/w.diff"); f=$(median < "$WORK/w.full"); m=$(median < "$WORK/w.mv")
        printf '%-6s %7s%% %12.1f %10.1f %10.1f %11.1fx  (warm session)\n' "$kind" "$pct" "$d" "$f" "$m" "$(echo "$f / $d" | bc -l)"
    done
done
# Correctness spot check: once refreshed, the differential tables equal their queries.
for kind in $UKINDS; do
    lower=$(echo "$kind" | tr A-Z a-z)
    "${PSQL[@]}" -c "SELECT pgtrickle.refresh_stream_table('${lower}_diff')" >/dev/null
    q=${!kind}
    case $kind in
        AGG) cols="grp, n, total" ;;
        JOIN) cols="id, val, name, region" ;;
        MINMAX) cols="grp, lo, hi" ;;
    esac
    n=$("${PSQL[@]}" -t -A -c "SELECT (SELECT count(*) FROM (SELECT $cols FROM ${lower}_diff EXCEPT ALL ($q)) a) + (SELECT count(*) FROM (($q) EXCEPT ALL SELECT $cols FROM ${lower}_diff) b)")
    [ "$n" = 0 ] || { echo "${lower}_diff differs from its query by $n rows" >&2; exit 1; }
done

echo
echo "2. Write overhead of change capture (ms, median of $REPEAT; interleaved)"
"${PSQL[@]}" <<SQL
CREATE TABLE w_plain (id bigserial PRIMARY KEY, grp int, val int);
CREATE TABLE w_captured (id bigserial PRIMARY KEY, grp int, val int);
SELECT pgtrickle.create_stream_table('w_agg', 'SELECT grp, count(*) AS n FROM w_captured GROUP BY grp', schedule => '1h');
SQL
for t in plain captured; do echo "INSERT INTO w_$t (grp, val) VALUES (random() * 100, 1);" > "$WORK/ins_$t.sql"; done
: > "$WORK/w.single.plain"; : > "$WORK/w.single.captured"; : > "$WORK/w.bulk.plain"; : > "$WORK/w.bulk.captured"
for r in $(seq 1 "$REPEAT"); do
    for t in plain captured; do
        s=$(date +%s%N)
        "$PG_BINDIR/pgbench" -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 4 -j 2 -t 25000 -f "$WORK/ins_$t.sql" postgres >/dev/null 2>&1
        echo $(( ($(date +%s%N) - s) / 1000000 )) >> "$WORK/w.single.$t"
        timed "INSERT INTO w_$t (grp, val) SELECT g % 100, g FROM generate_series(1, 1000000) g" >> "$WORK/w.bulk.$t"
    done
    "${PSQL[@]}" -c "SELECT pgtrickle.refresh_stream_table('w_agg')" >/dev/null
done
sp=$(median < "$WORK/w.single.plain"); sc=$(median < "$WORK/w.single.captured")
bp=$(median < "$WORK/w.bulk.plain"); bc_=$(median < "$WORK/w.bulk.captured")
printf '%-34s %10s %10s %8s\n' workload plain captured ratio
printf '%-34s %10.0f %10.0f %7.2fx\n' "100k single-row INSERTs (pgbench)" "$sp" "$sc" "$(echo "$sc / $sp" | bc -l)"
printf '%-34s %10.0f %10.0f %7.2fx\n' "1M-row INSERT ... SELECT" "$bp" "$bc_" "$(echo "$bc_ / $bp" | bc -l)"

echo
echo "3. Freshness of a calculated stream table (write through the proxy -> visible)"
target/release/freshness "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=postgres" 200
