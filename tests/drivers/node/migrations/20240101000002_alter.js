// Alters the table and the stream table of the first migration in one Knex migration (one
// transaction): a new column, rows that use it, a new defining query and schedule, a refresh.
'use strict';

const QUERY =
  'SELECT customer, region, sum(amount) AS total, count(*) AS n FROM kx_orders WHERE paid ' +
  'GROUP BY customer, region';
const OLD_QUERY =
  'SELECT customer, sum(amount) AS total, count(*) AS n FROM kx_orders WHERE paid GROUP BY customer';
const ALTER = 'SELECT pgtrickle.alter_stream_table(name => ?, query => ?, schedule => ?)';

exports.up = async function (knex) {
  await knex.schema.alterTable('kx_orders', (t) => {
    t.text('region').defaultTo('north');
  });
  await knex('kx_orders').whereRaw('id % 2 = 0').update({ region: 'south' });
  await knex.raw(ALTER, ['kx_totals', QUERY, '30m']);
  await knex.raw('SELECT pgtrickle.refresh_stream_table(?)', ['kx_totals']);
};

exports.down = async function (knex) {
  await knex.raw(ALTER, ['kx_totals', OLD_QUERY, '1h']);
  await knex.schema.alterTable('kx_orders', (t) => {
    t.dropColumn('region');
  });
};
