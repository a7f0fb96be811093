"""Async COPY TO STDOUT over TLS at many sizes with psycopg 3 (tests/tests/tls.rs).

Usage: tls_copy.py "host=127.0.0.1 port=PORT user=postgres dbname=postgres sslmode=require"

psycopg's async connection waits on the socket between reads, and libpq reads 8 KB at a time:
when a TLS record holds more than that, its tail stays inside OpenSSL while the socket looks
idle, and the COPY waits for ever. PostgreSQL never writes records above 8 KB; the proxy must
not either. Each COPY has a time limit; rows of many widths and counts put the boundaries of
CopyData messages, of the proxy's reads and of TLS records everywhere. Exits non-zero with a
message on the first hang or wrong byte count.
"""

import asyncio
import sys

import psycopg

WIDTHS = [1, 100, 1000, 4000, 8000, 8185, 8192, 8193, 9000, 16000, 16384, 16400, 40000, 70000]
COUNTS = [1, 2, 7, 130, 1000]
LIMIT_BYTES = 20_000_000
TIMEOUT = 30


async def copy_out(conn, width, count):
    total = 0
    async with conn.cursor() as cur:
        sql = f"COPY (SELECT repeat('x', {width}) FROM generate_series(1, {count})) TO STDOUT"
        async with cur.copy(sql) as copy:
            async for data in copy:
                total += len(data)
    return total


async def run(conninfo):
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        ssl = conn.pgconn.ssl_in_use
        if not ssl:
            raise SystemExit("tls_copy: the connection is not encrypted")
        copies = 0
        for round_ in range(2):
            for width in WIDTHS:
                for count in COUNTS:
                    if width * count > LIMIT_BYTES:
                        continue
                    try:
                        total = await asyncio.wait_for(copy_out(conn, width, count), TIMEOUT)
                    except asyncio.TimeoutError:
                        raise SystemExit(
                            f"tls_copy: COPY of {count} rows of {width} bytes hung "
                            f"(round {round_ + 1}, after {copies} copies)"
                        )
                    want = count * (width + 1)
                    if total != want:
                        raise SystemExit(
                            f"tls_copy: COPY of {count} rows of {width} bytes gave {total} bytes, "
                            f"expected {want}"
                        )
                    copies += 1
        print(f"tls_copy: {copies} async COPYs over TLS, psycopg {psycopg.__version__}: OK")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: tls_copy.py CONNINFO")
    asyncio.run(run(sys.argv[1]))


if __name__ == "__main__":
    main()
