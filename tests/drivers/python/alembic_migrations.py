"""Runs Alembic migrations through pgtrickle-proxy (tests/tests/drivers.rs).

Usage: alembic_migrations.py postgres://postgres@127.0.0.1:PORT/postgres

The migrations in tests/drivers/python/alembic/versions run through SQLAlchemy and psycopg 3,
each in a transaction of its own (env.py): 0001 creates a table and a stream table over it with
bound parameters, 0002 adds an index and alters the stream table's query and schedule. The
program upgrades one step at a time, checks the stream table against its query after each step
(with psycopg, outside any migration), writes and refreshes, then downgrades to the base and
checks that nothing is left. Exits non-zero with a message on the first unexpected result.
"""

import os
import sys

import alembic
import psycopg
from alembic import command
from alembic.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def step(message):
    print(f"alembic: {message}", flush=True)


def rows(conn, sql, params=None):
    return sorted(conn.execute(sql, params).fetchall(), key=repr)


def defining_query(conn, name):
    row = conn.execute(
        "SELECT schedule, refresh_mode FROM pgtrickle.pgt_status() WHERE name = %s", (name,)
    ).fetchone()
    return row


def check_equal(conn, query, cols, what):
    got = rows(conn, f"SELECT {cols} FROM al_totals")
    want = rows(conn, query)
    check(got == want, f"{what}: al_totals holds {got}, its query returns {want}")
    check(len(got) > 0, f"{what}: al_totals is empty")


def run(url):
    config = Config()
    config.set_main_option("script_location", os.path.join(HERE, "alembic"))
    config.set_main_option(
        "sqlalchemy.url", url.replace("postgres://", "postgresql+psycopg://", 1)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        command.upgrade(config, "0001")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        check(version == [("0001",)], f"alembic_version after 0001: {version}")
        query1 = (
            "SELECT customer, sum(amount) AS total, count(*) AS n "
            "FROM al_orders WHERE paid GROUP BY customer"
        )
        check_equal(conn, query1, "customer, total, n", "after 0001")
        status = defining_query(conn, "public.al_totals")
        check(status == ("1h", "DIFFERENTIAL"), f"pgt_status() after 0001: {status}")
        step("0001: table and stream table created in one migration")

        conn.execute("INSERT INTO al_orders VALUES (%s, %s, %s, %s)", (100, "c1", 50, True))
        conn.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("al_totals",))
        check_equal(conn, query1, "customer, total, n", "after a write and a refresh")

        command.upgrade(config, "head")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        check(version == [("0002",)], f"alembic_version after 0002: {version}")
        query2 = (
            "SELECT customer, sum(amount) AS total, count(*) AS n, max(amount) AS biggest "
            "FROM al_orders GROUP BY customer"
        )
        cols2 = "customer, total, n, biggest"
        check_equal(conn, query2, cols2, "after 0002")
        status = defining_query(conn, "public.al_totals")
        check(status == ("30m", "DIFFERENTIAL"), f"pgt_status() after 0002: {status}")
        step("0002: index added, stream table altered (query and schedule) in one migration")

        conn.execute("INSERT INTO al_orders VALUES (%s, %s, %s, %s)", (101, "c2", 500, False))
        conn.execute("SELECT pgtrickle.refresh_stream_table(%s)", ("al_totals",))
        check_equal(conn, query2, cols2, "after 0002, a write, a refresh")

        command.downgrade(config, "0001")
        check_equal(conn, query1, "customer, total, n", "after downgrading 0002")
        command.downgrade(config, "base")
        left = conn.execute(
            "SELECT to_regclass('al_totals') IS NULL AND to_regclass('al_orders') IS NULL"
        ).fetchone()
        check(left == (True,), "downgrade to base left al_totals or al_orders")
        status = conn.execute("SELECT name FROM pgtrickle.pgt_status()").fetchall()
        check(status == [], f"pgt_status() after the downgrade: {status}")
        step("downgraded 0002 then 0001: nothing is left")


def main():
    if len(sys.argv) != 2:
        print("usage: alembic_migrations.py postgres://USER@HOST:PORT/DB", file=sys.stderr)
        sys.exit(2)
    try:
        run(sys.argv[1])
    except Failure as e:
        print(f"alembic {alembic.__version__}: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("alembic: OK")


if __name__ == "__main__":
    main()
