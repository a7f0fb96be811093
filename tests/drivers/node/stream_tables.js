// Drives pgtrickle-proxy's stream-table API with node-postgres (tests/tests/drivers.rs).
//
// Usage: node stream_tables.js postgres://postgres@127.0.0.1:PORT/postgres
//
// node-postgres sends a query with values in the extended protocol (Parse/Bind/Describe/Execute/
// Sync, the unnamed statement), a query with a `name` as a named prepared statement (parsed once
// per connection, then Bind/Execute), and a query without values as a simple Query. Exits non-zero
// with a message on the first unexpected result.
'use strict';

const { Client } = require('pg');

const QUERY =
  'SELECT customer, sum(amount) AS total, count(*) AS n FROM js_orders WHERE paid GROUP BY customer';
const COLS = 'customer, total, n';
const CREATE =
  'SELECT pgtrickle.create_stream_table(name => $1, query => $2, schedule => $3, refresh_mode => $4)';

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function step(message) {
  console.log(`node: ${message}`);
}

const sorted = (rows) => rows.map((r) => JSON.stringify(r)).sort();

async function checkEqual(client, st, what) {
  const got = sorted((await client.query(`SELECT ${COLS} FROM ${st}`)).rows);
  const want = sorted((await client.query(QUERY)).rows);
  check(
    JSON.stringify(got) === JSON.stringify(want),
    `${what}: ${st} holds ${got}, its query returns ${want}`,
  );
  return got;
}

async function expectError(client, sqlstate, query, what) {
  try {
    await client.query(query);
  } catch (e) {
    check(e.code === sqlstate, `${what}: SQLSTATE ${e.code} (${e.message}), expected ${sqlstate}`);
    return e;
  }
  return fail(`${what}: no error, expected SQLSTATE ${sqlstate}`);
}

async function statusOf(client, name) {
  const r = await client.query(
    'SELECT status, refresh_mode, schedule, is_populated FROM pgtrickle.pgt_status() WHERE name = $1',
    [name],
  );
  return r.rows;
}

async function scalar(client, text, values) {
  const r = await client.query({ text, values, rowMode: 'array' });
  check(r.rows.length === 1, `${text}: ${r.rows.length} rows`);
  return r.rows[0][0];
}

async function run(client) {
  await client.query(
    'CREATE TABLE js_orders (id int PRIMARY KEY, customer text, amount numeric, paid boolean NOT NULL)',
  );
  for (let i = 1; i <= 60; i++) {
    await client.query('INSERT INTO js_orders VALUES ($1, $2, $3, $4)', [
      i,
      `c${i % 4}`,
      (i * 1.25).toFixed(2),
      i % 3 !== 0,
    ]);
  }
  step('source table created, 60 rows inserted with bound parameters');

  const created = await client.query(CREATE, ['js_totals', QUERY, '1h', 'DIFFERENTIAL']);
  check(
    created.fields.length === 1 && created.fields[0].name === 'create_stream_table',
    `create_stream_table answered fields ${JSON.stringify(created.fields)}`,
  );
  check(created.rowCount === 1, `create_stream_table answered ${created.rowCount} rows`);
  const before = await checkEqual(client, 'js_totals', 'after create');
  check(before.length === 4, `js_totals has ${before.length} groups, expected 4`);
  step('stream table created with bound parameters, equals its query');

  await client.query('INSERT INTO js_orders VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)', [
    61, 'c9', '7.25', true, 62, null, '1', true,
  ]);
  await client.query('UPDATE js_orders SET paid = NOT paid WHERE id % $1 = 0', [7]);
  await client.query('DELETE FROM js_orders WHERE id = ANY($1)', [[1, 2, 3, 30]]);
  const stale = sorted((await client.query(`SELECT ${COLS} FROM js_totals`)).rows);
  check(JSON.stringify(stale) === JSON.stringify(before), 'js_totals changed before its refresh');

  const refreshed = await client.query('SELECT pgtrickle.refresh_stream_table($1)', ['js_totals']);
  check(refreshed.rowCount === 1, `refresh_stream_table answered ${refreshed.rowCount} rows`);
  const after = await checkEqual(client, 'js_totals', 'after refresh');
  check(JSON.stringify(after) !== JSON.stringify(before), 'the refresh changed nothing');
  step('refreshed with a bound name, equals its query');

  // A named prepared statement: Parse 'js_refresh' once, then Bind/Execute of it each time.
  for (let i = 0; i < 3; i++) {
    await client.query({
      name: 'js_insert',
      text: 'INSERT INTO js_orders VALUES ($1, $2, $3, $4)',
      values: [100 + i, 'c1', i, true],
    });
    const r = await client.query({
      name: 'js_refresh',
      text: 'SELECT pgtrickle.refresh_stream_table($1)',
      values: ['js_totals'],
    });
    check(r.rowCount === 1, `named refresh ${i + 1} answered ${r.rowCount} rows`);
    await checkEqual(client, 'js_totals', `after named refresh ${i + 1}`);
  }
  step('refresh as a named prepared statement, 3 times');

  const status = await statusOf(client, 'public.js_totals');
  check(
    JSON.stringify(status) ===
      JSON.stringify([
        { status: 'ACTIVE', refresh_mode: 'DIFFERENTIAL', schedule: '1h', is_populated: true },
      ]),
    `pgt_status() for public.js_totals: ${JSON.stringify(status)}`,
  );
  step('pgt_status() lists it');

  await expectError(
    client,
    '22023',
    { text: CREATE, values: ['js_bad', QUERY, 'soon', 'FULL'] },
    "create with schedule 'soon'",
  );
  await expectError(
    client,
    '42P01',
    { text: 'SELECT pgtrickle.refresh_stream_table($1)', values: ['js_missing'] },
    'refresh of a missing stream table',
  );
  // The named statement again, with a bad argument.
  await expectError(
    client,
    '42P01',
    { name: 'js_refresh', text: 'SELECT pgtrickle.refresh_stream_table($1)', values: ['js_missing'] },
    'named refresh of a missing stream table',
  );
  check((await scalar(client, 'SELECT to_regclass($1) IS NULL', ['js_bad'])) === true,
    'the failed create left a table js_bad');
  check((await scalar(client, 'SELECT $1::int + 1', [41])) === 42,
    'the session is not usable after the errors');
  step('errors: 22023 and 42P01, the session goes on');

  // A create inside a transaction, rolled back: nothing is left.
  await client.query('BEGIN');
  await client.query(CREATE, ['js_tx', QUERY, '1h', 'FULL']);
  const n = Number(await scalar(client, 'SELECT count(*) FROM js_tx', []));
  check(n === after.length, `js_tx holds ${n} rows inside its transaction`);
  await client.query('ROLLBACK');
  check((await scalar(client, 'SELECT to_regclass($1) IS NULL', ['js_tx'])) === true,
    'the rolled-back create left a table js_tx');
  check((await statusOf(client, 'public.js_tx')).length === 0,
    'pgt_status() lists the rolled-back js_tx');
  step('create in a rolled-back transaction leaves nothing');

  // A failed call inside a transaction fails the transaction, as a server error would.
  await client.query('BEGIN');
  await expectError(
    client,
    '42P01',
    { text: 'SELECT pgtrickle.refresh_stream_table($1)', values: ['js_missing'] },
    'refresh of a missing stream table in a transaction',
  );
  await expectError(client, '25P02', { text: 'SELECT $1::int', values: [1] },
    'a statement in the failed block');
  await client.query('ROLLBACK');
  step('a failed call fails its transaction (25P02 after it)');

  // Simple protocol: a query without values is one Query message.
  await client.query('INSERT INTO js_orders VALUES (300, \'c3\', 100, true)');
  await client.query("SELECT pgtrickle.refresh_stream_table('js_totals')");
  await checkEqual(client, 'js_totals', 'after a simple-protocol refresh');
  step('simple protocol');

  await client.query('SELECT pgtrickle.drop_stream_table($1)', ['js_totals']);
  check((await scalar(client, 'SELECT to_regclass($1) IS NULL', ['js_totals'])) === true,
    'drop_stream_table left the table');
  step('dropped');
}

async function main() {
  if (process.argv.length !== 3) fail('usage: node stream_tables.js postgres://USER@HOST:PORT/DB');
  const client = new Client({ connectionString: process.argv[2] });
  // An error on the connection itself (not a query's) must fail the run too.
  client.on('error', (e) => {
    console.error(`node/pg: FAIL: connection error: ${e.stack || e}`);
    process.exit(1);
  });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
  console.log('node: OK');
}

main().catch((e) => {
  const version = require('pg/package.json').version;
  console.error(`node/pg ${version}: FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
  process.exit(1);
});
