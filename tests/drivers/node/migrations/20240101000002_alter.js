// Alters the stream table of the first migration in one Knex migration (one transaction): an
// index on the source, rows written, a new defining query (another aggregate, no filter) and
// schedule, a refresh. (A new column on a source table of a stream table is not followed by its
// change capture yet: this migration does not add one.)
'use strict';

const QUERY =
  'SELECT customer, sum(amount) AS total, count(*) AS n, max(amount) AS biggest FROM kx_orders ' +
  'GROUP BY customer';
const OLD_QUERY =
  'SELECT customer, sum(amount) AS total, count(*) AS n FROM kx_orders WHERE paid GROUP BY customer';
const ALTER = 'SELECT pgtrickle.alter_stream_table(name => ?, query => ?, schedule => ?)';

exports.up = async function (knex) {
  await knex.schema.alterTable('kx_orders', (t) => {
    t.index(['customer'], 'kx_orders_customer');
  });
  await knex('kx_orders').whereRaw('id % 2 = 0').update({ amount: knex.raw('amount * ?', [2]) });
  await knex.raw(ALTER, ['kx_totals', QUERY, '30m']);
  await knex.raw('SELECT pgtrickle.refresh_stream_table(?)', ['kx_totals']);
};

exports.down = async function (knex) {
  await knex.raw(ALTER, ['kx_totals', OLD_QUERY, '1h']);
  await knex.schema.alterTable('kx_orders', (t) => {
    t.dropIndex(['customer'], 'kx_orders_customer');
  });
};
