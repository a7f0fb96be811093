"""Drives pgtrickle-proxy's stream-table API with asyncpg (tests/tests/drivers.rs).

Usage: asyncpg_stream_tables.py postgres://postgres@127.0.0.1:PORT/postgres

asyncpg speaks only the extended protocol, with named prepared statements it caches per
connection: `fetch`/`execute` with arguments Parse (named), Describe, Sync, then Bind/Execute/Sync;
`executemany` sends one Bind/Execute per argument set and a single Sync, so API calls stand in
the middle of a batch, between other Bind/Execute pairs. A transaction is a simple-query BEGIN
(`conn.transaction()`). Exits non-zero with a message on the first unexpected result.
"""

import asyncio
import sys
from decimal import Decimal

import asyncpg

QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n "
    "FROM apg_orders WHERE paid GROUP BY customer"
)
COLS = "customer, total, n"
CREATE = (
    "SELECT pgtrickle.create_stream_table(name => $1, query => $2, schedule => $3, "
    "refresh_mode => $4)"
)
REFRESH = "SELECT pgtrickle.refresh_stream_table($1)"
DROP = "SELECT pgtrickle.drop_stream_table($1)"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def step(message):
    print(f"asyncpg: {message}", flush=True)


async def rows(conn, sql, *args):
    return sorted((tuple(r) for r in await conn.fetch(sql, *args)), key=repr)


async def check_equal(conn, st, what):
    got = await rows(conn, f"SELECT {COLS} FROM {st}")
    want = await rows(conn, QUERY)
    check(got == want, f"{what}: {st} holds {got}, its query returns {want}")
    return got


async def missing(conn, name):
    return await conn.fetchval("SELECT to_regclass($1) IS NULL", name)


async def expect_error(sqlstate, what, coro):
    try:
        await coro
    except asyncpg.PostgresError as e:
        check(e.sqlstate == sqlstate, f"{what}: SQLSTATE {e.sqlstate} ({e}), expected {sqlstate}")
        return
    raise Failure(f"{what}: no error, expected SQLSTATE {sqlstate}")


async def run(url):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE apg_orders (id int PRIMARY KEY, customer text, amount numeric, "
            "paid boolean NOT NULL)"
        )
        await conn.executemany(
            "INSERT INTO apg_orders VALUES ($1, $2, $3, $4)",
            [(i, f"c{i % 4}", Decimal(i) / 4, i % 3 != 0) for i in range(1, 81)],
        )
        step("source table created, 80 rows inserted with executemany")

        answer = await conn.fetch(CREATE, "apg_totals", QUERY, "1h", "DIFFERENTIAL")
        check(len(answer) == 1, f"create_stream_table answered {answer}")
        check(list(answer[0].keys()) == ["create_stream_table"], f"columns {answer[0].keys()}")
        before = await check_equal(conn, "apg_totals", "after create")
        check(len(before) == 4, f"apg_totals has {len(before)} groups, expected 4")
        step("stream table created with bound parameters (a named prepared statement)")

        await conn.execute("INSERT INTO apg_orders VALUES ($1, $2, $3, $4)", 81, "c9", 7, True)
        await conn.execute("UPDATE apg_orders SET paid = NOT paid WHERE id % $1 = 0", 7)
        await conn.execute("DELETE FROM apg_orders WHERE id = ANY($1::int[])", [1, 2, 3])
        check(await rows(conn, f"SELECT {COLS} FROM apg_totals") == before, "changed early")
        for i in range(3):
            answer = await conn.fetch(REFRESH, "apg_totals")
            check(len(answer) == 1, f"refresh_stream_table answered {answer}")
            await check_equal(conn, "apg_totals", f"after refresh {i + 1}")
        step("refreshed with the cached prepared statement, 3 times")

        # executemany of API calls: three creates in one batch (Bind/Execute x3, one Sync).
        await conn.executemany(
            CREATE,
            [
                ("apg_m1", QUERY, "1h", "FULL"),
                ("apg_m2", QUERY, "1h", "DIFFERENTIAL"),
                ("apg_m3", QUERY, "1h", "AUTO"),
            ],
        )
        for name in ("apg_m1", "apg_m2", "apg_m3"):
            await check_equal(conn, name, f"{name} after the executemany of creates")
        step("executemany of three creates in one batch")

        # The middle refresh stands between two others in one batch.
        await conn.executemany(
            "INSERT INTO apg_orders VALUES ($1, $2, $3, $4)", [(500, "c0", 5, True), (501, "c5", 1, True)]
        )
        await conn.executemany(REFRESH, [("apg_m1",), ("apg_m2",), ("apg_m3",)])
        for name in ("apg_m1", "apg_m2", "apg_m3"):
            await check_equal(conn, name, f"{name} after an executemany of refreshes")
        step("executemany of three refreshes in one batch")

        # In a transaction, a bad call in the middle of executemany: the whole batch fails and
        # the transaction rolls back, the first call's work included.
        async with conn.transaction():
            await conn.execute("INSERT INTO apg_orders VALUES (600, 'c1', 1, true)")
        try:
            async with conn.transaction():
                await conn.executemany(
                    CREATE,
                    [
                        ("apg_t1", QUERY, "1h", "FULL"),
                        ("apg_t2", QUERY, "soon", "FULL"),
                        ("apg_t3", QUERY, "1h", "FULL"),
                    ],
                )
            raise Failure("executemany with a bad schedule in the middle: no error")
        except asyncpg.PostgresError as e:
            check(e.sqlstate == "22023", f"bad schedule in executemany: {e.sqlstate} ({e})")
        for name in ("apg_t1", "apg_t2", "apg_t3"):
            check(await missing(conn, name), f"the failed batch left {name}")
        check(await conn.fetchval("SELECT $1::int + 1", 41) == 42, "session unusable")
        step("a bad call in the middle of executemany fails the batch; nothing is left")

        # Inside a transaction: create, write, refresh, read, drop, committed.
        async with conn.transaction():
            await conn.fetch(CREATE, "apg_tx", QUERY, "1h", "DIFFERENTIAL")
            await conn.execute("INSERT INTO apg_orders VALUES ($1, $2, $3, $4)", 700, "c2", 3, True)
            await conn.fetchval(REFRESH, "apg_tx")
            await check_equal(conn, "apg_tx", "apg_tx inside its transaction")
        await check_equal(conn, "apg_tx", "apg_tx after commit")
        # Rolled back: nothing is left.
        tx = conn.transaction()
        await tx.start()
        await conn.fetch(CREATE, "apg_rb", QUERY, "1h", "FULL")
        check(not await missing(conn, "apg_rb"), "apg_rb missing inside its transaction")
        await tx.rollback()
        check(await missing(conn, "apg_rb"), "the rolled-back create left apg_rb")
        step("create, refresh, read in a committed transaction; a rolled-back create")

        await expect_error("42P01", "refresh of a missing table", conn.fetchval(REFRESH, "apg_x"))
        await expect_error(
            "22023", "bad schedule", conn.fetch(CREATE, "apg_bad", QUERY, "soon", "FULL")
        )
        check(await conn.fetchval("SELECT 1") == 1, "session unusable after errors")
        step("errors: 42P01 and 22023, the session goes on")

        await conn.executemany(DROP, [("apg_m1",), ("apg_m2",), ("apg_m3",), ("apg_tx",)])
        await conn.fetch(DROP, "apg_totals")
        for name in ("apg_m1", "apg_m2", "apg_m3", "apg_tx", "apg_totals"):
            check(await missing(conn, name), f"drop left {name}")
        status = await conn.fetch("SELECT name FROM pgtrickle.pgt_status()")
        check(status == [], f"pgt_status() after the drops: {status}")
        step("dropped (executemany of drops)")
    finally:
        await conn.close()


def main():
    if len(sys.argv) != 2:
        print("usage: asyncpg_stream_tables.py postgres://USER@HOST:PORT/DB", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(run(sys.argv[1]))
    except Failure as e:
        print(f"python/asyncpg {asyncpg.__version__}: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("asyncpg: OK")


if __name__ == "__main__":
    main()
