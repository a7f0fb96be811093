// A source table and a stream table over it, created in one Knex migration (one transaction),
// the stream table with bound parameters (knex.raw with `?` placeholders: node-postgres binds
// them on the server, in the extended protocol).
'use strict';

const QUERY =
  'SELECT customer, sum(amount) AS total, count(*) AS n FROM kx_orders WHERE paid GROUP BY customer';

exports.up = async function (knex) {
  await knex.schema.createTable('kx_orders', (t) => {
    t.integer('id').primary();
    t.text('customer');
    t.decimal('amount');
    t.boolean('paid').notNullable();
  });
  const rows = [];
  for (let i = 1; i <= 40; i++) {
    rows.push({ id: i, customer: `c${i % 3}`, amount: i, paid: i % 4 !== 0 });
  }
  await knex('kx_orders').insert(rows);
  await knex.raw(
    'SELECT pgtrickle.create_stream_table(name => ?, query => ?, schedule => ?, refresh_mode => ?)',
    ['kx_totals', QUERY, '1h', 'DIFFERENTIAL'],
  );
};

exports.down = async function (knex) {
  await knex.raw('SELECT pgtrickle.drop_stream_table(?)', ['kx_totals']);
  await knex.schema.dropTable('kx_orders');
};
