// Runs Knex migrations through pgtrickle-proxy (tests/tests/drivers.rs).
//
// Usage: node knex_migrations.js postgres://postgres@127.0.0.1:PORT/postgres
//
// The migrations in migrations/ run one at a time (`migrate.up()`), each in a transaction of its
// own (Knex's default), with Knex's own lock and bookkeeping statements around them: the first
// creates a table and a stream table over it, the second adds an index and alters the stream
// table's query and schedule. After each step the program checks the stream table against its
// query, writes and refreshes outside any migration, then rolls both back (`migrate.down()`) and
// checks that nothing is left. Exits non-zero with a message on the first unexpected result.
'use strict';

const path = require('path');
const knexFactory = require('knex');

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

function step(message) {
  console.log(`knex: ${message}`);
}

const QUERY1 =
  'SELECT customer, sum(amount) AS total, count(*) AS n FROM kx_orders WHERE paid GROUP BY customer';
const QUERY2 =
  'SELECT customer, sum(amount) AS total, count(*) AS n, max(amount) AS biggest FROM kx_orders ' +
  'GROUP BY customer';
const COLS2 = 'customer, total, n, biggest';

async function rows(knex, sql, bindings = []) {
  const result = await knex.raw(sql, bindings);
  return result.rows.map((r) => JSON.stringify(r)).sort();
}

async function checkEqual(knex, query, cols, what) {
  const got = await rows(knex, `SELECT ${cols} FROM kx_totals`);
  const want = await rows(knex, query);
  check(got.length > 0, `${what}: kx_totals is empty`);
  check(
    JSON.stringify(got) === JSON.stringify(want),
    `${what}: kx_totals holds ${got}, its query returns ${want}`,
  );
}

async function status(knex) {
  const r = await knex.raw(
    'SELECT schedule, refresh_mode FROM pgtrickle.pgt_status() WHERE name = ?',
    ['public.kx_totals'],
  );
  return r.rows.map((x) => `${x.schedule}|${x.refresh_mode}`).join(',');
}

async function run(url) {
  const knex = knexFactory({
    client: 'pg',
    connection: url,
    pool: { min: 0, max: 2 },
    migrations: { directory: path.join(__dirname, 'migrations') },
  });
  try {
    const [, first] = await knex.migrate.up();
    check(first.length === 1, `first migrate.up() ran ${first}`);
    await checkEqual(knex, QUERY1, 'customer, total, n', 'after the first migration');
    check((await status(knex)) === '1h|DIFFERENTIAL', `pgt_status(): ${await status(knex)}`);
    step('first migration: table and stream table created in one transaction');

    await knex.raw('INSERT INTO kx_orders VALUES (?, ?, ?, ?)', [100, 'c1', 50, true]);
    await knex.raw('SELECT pgtrickle.refresh_stream_table(?)', ['kx_totals']);
    await checkEqual(knex, QUERY1, 'customer, total, n', 'after a write and a refresh');

    const [, second] = await knex.migrate.up();
    check(second.length === 1, `second migrate.up() ran ${second}`);
    await checkEqual(knex, QUERY2, COLS2, 'after the second migration');
    check((await status(knex)) === '30m|DIFFERENTIAL', `pgt_status(): ${await status(knex)}`);
    step('second migration: index added, stream table altered in one transaction');

    // Outside the migrations, in a transaction of the program's own.
    await knex.transaction(async (trx) => {
      await trx.raw('INSERT INTO kx_orders VALUES (?, ?, ?, ?)', [101, 'c2', 500, false]);
      await trx.raw('SELECT pgtrickle.refresh_stream_table(?)', ['kx_totals']);
      await checkEqual(trx, QUERY2, COLS2, 'refreshed in a transaction');
    });
    await checkEqual(knex, QUERY2, COLS2, 'after that transaction');
    step('write and refresh in a transaction');

    await knex.migrate.down();
    await checkEqual(knex, QUERY1, 'customer, total, n', 'after rolling back the second');
    await knex.migrate.down();
    const left = await knex.raw(
      "SELECT to_regclass('kx_totals') IS NULL AND to_regclass('kx_orders') IS NULL AS gone",
    );
    check(left.rows[0].gone === true, 'rolling back left kx_totals or kx_orders');
    check((await status(knex)) === '', `pgt_status() after the rollbacks: ${await status(knex)}`);
    const done = await knex('knex_migrations').count('* as n');
    check(Number(done[0].n) === 0, `knex_migrations still lists ${done[0].n} migrations`);
    step('both migrations rolled back: nothing is left');
  } finally {
    await knex.destroy();
  }
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node knex_migrations.js postgres://USER@HOST:PORT/DB');
    process.exit(2);
  }
  const version = require('knex/package.json').version;
  try {
    await run(process.argv[2]);
  } catch (e) {
    console.error(`knex ${version}: FAIL: ${e instanceof Failure ? e.message : e.stack}`);
    process.exit(1);
  }
  console.log('knex: OK');
}

main();
