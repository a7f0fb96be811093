"""Drives pgtrickle-proxy's stream-table API with psycopg 3 (tests/tests/drivers.rs).

Usage: stream_tables.py postgres://postgres@127.0.0.1:PORT/postgres

psycopg's `cursor.execute(sql, params)` binds parameters on the server: the extended protocol
(Parse/Bind/Describe/Execute/Sync), an unnamed statement at first and a named prepared statement
once the same query has run `prepare_threshold` (5) times; `executemany` pipelines its
statements, and `conn.pipeline()` queues several statements, API calls among them, before one
Sync. One call goes through `ClientCursor`, which binds on the client and sends a simple
Query. Exits non-zero with a message on the first unexpected result.
"""

import sys
from decimal import Decimal

import psycopg
from psycopg import ClientCursor

QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n "
    "FROM py_orders WHERE paid GROUP BY customer"
)
COLS = "customer, total, n"


def fail(message):
    print(f"python/psycopg {psycopg.__version__}: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def step(message):
    print(f"python: {message}", flush=True)


def rows(cur, sql, params=None):
    cur.execute(sql, params)
    return sorted(cur.fetchall(), key=repr)


def check_equal(cur, st, what):
    got = rows(cur, f"SELECT {COLS} FROM {st}")
    want = rows(cur, QUERY)
    check(got == want, f"{what}: {st} holds {got}, its query returns {want}")
    return got


def expect_error(conn, sqlstate, sql, params, what):
    """Runs a statement that must fail with `sqlstate` (extended protocol)."""
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        check(
            e.sqlstate == sqlstate,
            f"{what}: SQLSTATE {e.sqlstate} ({type(e).__name__}: {e}), expected {sqlstate}",
        )
        return e
    fail(f"{what}: no error, expected SQLSTATE {sqlstate}")


def status_of(cur, name):
    cur.execute(
        "SELECT status, refresh_mode, schedule, is_populated FROM pgtrickle.pgt_status() "
        "WHERE name = %s",
        (name,),
    )
    return cur.fetchall()


def main():
    if len(sys.argv) != 2:
        fail("usage: stream_tables.py postgres://USER@HOST:PORT/DB")
    url = sys.argv[1]
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(
            "CREATE TABLE py_orders (id int PRIMARY KEY, customer text, amount numeric, "
            "paid boolean NOT NULL)"
        )
        # executemany: pipelined Parse/Bind/Execute with bound parameters.
        cur.executemany(
            "INSERT INTO py_orders VALUES (%s, %s, %s, %s)",
            [(i, f"c{i % 5}", Decimal(i) / 4, i % 3 != 0) for i in range(1, 101)],
        )
        step("source table created, 100 rows inserted")

        cur.execute(
            "SELECT pgtrickle.create_stream_table(name => %s, query => %s, schedule => %s, "
            "refresh_mode => %s)",
            ("py_totals", QUERY, "1h", "DIFFERENTIAL"),
        )
        check(
            [d.name for d in cur.description] == ["create_stream_table"],
            f"create_stream_table answered columns {cur.description}",
        )
        result = cur.fetchall()
        check(len(result) == 1, f"create_stream_table answered {result}, expected one row")
        before = check_equal(cur, "py_totals", "after create")
        check(len(before) == 5, f"py_totals has {len(before)} groups, expected 5")
        step("stream table created with bound parameters, equals its query")

        cur.execute(
            "INSERT INTO py_orders VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
            (101, "c9", Decimal("7.25"), True, 102, None, Decimal("1"), True),
        )
        cur.execute("UPDATE py_orders SET paid = NOT paid WHERE id %% %s = 0", (7,))
        cur.execute("DELETE FROM py_orders WHERE id = ANY(%s)", ([1, 2, 3, 50],))
        stale = rows(cur, f"SELECT {COLS} FROM py_totals")
        check(stale == before, "py_totals changed before its refresh (schedule 1h)")

        cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_totals",))
        check(len(cur.fetchall()) == 1, "refresh_stream_table answered no row")
        after = check_equal(cur, "py_totals", "after refresh")
        check(after != before, "the refresh changed nothing")
        step("refreshed with a bound name, equals its query")

        # The same query more than prepare_threshold times: psycopg switches to a named
        # server-side statement (Parse once, then Bind/Execute of it).
        for i in range(8):
            cur.execute("INSERT INTO py_orders VALUES (%s, %s, %s, %s)", (200 + i, "c1", i, True))
            cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_totals",))
            check_equal(cur, "py_totals", f"after refresh {i + 1} of the prepared statement")
        step("refresh as a named prepared statement, 8 times")

        status = status_of(cur, "public.py_totals")
        check(
            status == [("ACTIVE", "DIFFERENTIAL", "1h", True)],
            f"pgt_status() for public.py_totals: {status}",
        )
        step("pgt_status() lists it")

        e = expect_error(
            conn,
            "22023",
            "SELECT pgtrickle.create_stream_table(name => %s, query => %s, schedule => %s, "
            "refresh_mode => %s)",
            ("py_bad", QUERY, "soon", "FULL"),
            "create with schedule 'soon'",
        )
        check(
            isinstance(e, psycopg.errors.InvalidParameterValue),
            f"schedule 'soon' raised {type(e).__name__}",
        )
        e = expect_error(
            conn,
            "42P01",
            "SELECT pgtrickle.refresh_stream_table(%s)",
            ("py_missing",),
            "refresh of a missing stream table",
        )
        check(
            isinstance(e, psycopg.errors.UndefinedTable),
            f"refresh of a missing stream table raised {type(e).__name__}",
        )
        cur.execute("SELECT to_regclass(%s) IS NULL", ("py_bad",))
        check(cur.fetchone() == (True,), "the failed create left a table py_bad")
        cur.execute("SELECT %s::int + 1", (41,))
        check(cur.fetchone() == (42,), "the session is not usable after the errors")
        step("errors: 22023 and 42P01, the session goes on")

        # A create inside a transaction, rolled back: nothing is left.
        conn.autocommit = False
        cur.execute(
            "SELECT pgtrickle.create_stream_table(name => %s, query => %s, schedule => %s, "
            "refresh_mode => %s)",
            ("py_tx", QUERY, "1h", "FULL"),
        )
        cur.execute("SELECT count(*) FROM py_tx")
        (n,) = cur.fetchone()
        check(n == len(after), f"py_tx holds {n} rows inside its transaction")
        check(
            conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS,
            f"transaction status {conn.info.transaction_status} after the create",
        )
        conn.rollback()
        conn.autocommit = True
        cur.execute("SELECT to_regclass(%s) IS NULL", ("py_tx",))
        check(cur.fetchone() == (True,), "the rolled-back create left a table py_tx")
        check(status_of(cur, "public.py_tx") == [], "pgt_status() lists the rolled-back py_tx")
        step("create in a rolled-back transaction leaves nothing")

        # A failed call inside a transaction fails the transaction, as a server error would.
        conn.autocommit = False
        expect_error(
            conn,
            "42P01",
            "SELECT pgtrickle.refresh_stream_table(%s)",
            ("py_missing",),
            "refresh of a missing stream table in a transaction",
        )
        check(
            conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR,
            f"transaction status {conn.info.transaction_status} after a failed call",
        )
        expect_error(conn, "25P02", "SELECT %s::int", (1,), "a statement in the failed block")
        conn.rollback()
        conn.autocommit = True
        step("a failed call fails its transaction (25P02 after it)")

        # Simple protocol: ClientCursor binds on the client and sends one Query message.
        ccur = ClientCursor(conn)
        ccur.execute("INSERT INTO py_orders VALUES (%s, %s, %s, %s)", (300, "c3", 100, True))
        ccur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_totals",))
        check(len(ccur.fetchall()) == 1, "refresh through ClientCursor answered no row")
        check_equal(ccur, "py_totals", "after a refresh through ClientCursor")
        try:
            ccur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_missing",))
            fail("ClientCursor refresh of a missing stream table: no error")
        except psycopg.errors.UndefinedTable:
            pass
        ccur.execute("SELECT 1")
        check(ccur.fetchone() == (1,), "the session is not usable after a simple-protocol error")
        step("simple protocol through ClientCursor")

        # Pipeline mode: statements are queued without waiting for their answers and synced
        # together, so API calls stand in the middle of a batch between other statements.
        create = (
            "SELECT pgtrickle.create_stream_table(name => %s, query => %s, schedule => %s, "
            "refresh_mode => %s)"
        )
        insert = "INSERT INTO py_orders VALUES (%s, %s, %s, %s)"
        with conn.pipeline():
            cur.execute(insert, (400, "c4", 4, True))
            cur.execute(create, ("py_pipe", QUERY, "1h", "DIFFERENTIAL"))
            cur.execute(insert, (401, "c4", 5, True))
            cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_pipe",))
            cur.execute("SELECT count(*) FROM py_pipe WHERE customer = %s", ("c4",))
            piped = cur.fetchone()
        check(piped == (1,), f"count of c4 read in the pipeline: {piped}")
        check_equal(cur, "py_pipe", "after a pipeline with a create and a refresh in the middle")
        step("pipeline mode: create and refresh among inserts")

        # A failing call in the middle of a pipeline: what follows it up to the sync is skipped.
        try:
            with conn.pipeline():
                cur.execute(insert, (402, "c4", 6, True))
                cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_missing",))
                cur.execute(insert, (403, "c4", 7, True))
            fail("pipeline with a refresh of a missing stream table: no error")
        except psycopg.errors.UndefinedTable:
            pass
        # 403 was skipped. (Whether 402 stays differs: outside a transaction block the proxy
        # has the server commit what came before a call in the middle of a batch
        # (docs/STREAM_TABLES.md), and 402 stays with PostgreSQL 15; with 18 it is rolled back,
        # as PostgreSQL itself would. Not checked until that is settled.)
        cur.execute("SELECT array_agg(id ORDER BY id) FROM py_orders WHERE id BETWEEN 402 AND 403")
        (ids,) = cur.fetchone()
        check(ids in (None, [402]), f"rows {ids} of the failed pipeline are left")
        step("a failing call in a pipeline skips the rest of it")

        # A pipeline inside a transaction, committed.
        conn.autocommit = False
        with conn.transaction():
            with conn.pipeline():
                cur.execute(insert, (404, "c0", 8, True))
                cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_pipe",))
                cur.execute(create, ("py_pipe2", QUERY, "1h", "FULL"))
                cur.execute(insert, (405, "c0", 9, True))
                cur.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("py_pipe2",))
        conn.autocommit = True
        # py_pipe was refreshed in the middle of the pipeline: after 404, before 405.
        got = rows(cur, f"SELECT {COLS} FROM py_pipe")
        want = rows(cur, QUERY.replace("WHERE paid", "WHERE paid AND id <> 405"))
        check(got == want, f"py_pipe holds {got}, refreshed between 404 and 405: {want}")
        check_equal(cur, "py_pipe2", "py_pipe2 after the transaction's pipeline")
        with conn.pipeline():
            cur.execute("SELECT pgtrickle.drop_stream_table(%s)", ("py_pipe",))
            cur.execute("SELECT pgtrickle.drop_stream_table(%s)", ("py_pipe2",))
        cur.execute("SELECT to_regclass(%s) IS NULL AND to_regclass(%s) IS NULL", ("py_pipe", "py_pipe2"))
        check(cur.fetchone() == (True,), "the pipelined drops left a table")
        step("pipeline in a transaction: refresh, create, refresh; pipelined drops")

        cur.execute("SELECT pgtrickle.drop_stream_table(%s)", ("py_totals",))
        cur.execute("SELECT to_regclass(%s) IS NULL", ("py_totals",))
        check(cur.fetchone() == (True,), "drop_stream_table left the table")
        step("dropped")
    print("python: OK")


if __name__ == "__main__":
    main()
