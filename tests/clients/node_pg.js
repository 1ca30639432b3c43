// node-postgres against infrasql: COMMIT as a named prepared statement.
//
//   node node_pg.js <name prefix>
//
// Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE). Two transactions each end with
// client.query({ name: 'commit', text: 'COMMIT' }): the first parses the
// named statement, the second reuses it (Bind/Execute only). Prints one line
// per transaction; the first failure exits with status 1 naming the step,
// SQLSTATE and message.
'use strict';

const { Client } = require('pg');

let step = 'connect';

async function main(prefix) {
  const client = new Client({ connectionTimeoutMillis: 10000, query_timeout: 120000 });
  await client.connect();
  for (const n of [1, 2]) {
    const name = `${prefix}-${n}`;
    step = `BEGIN (${name})`;
    await client.query('BEGIN');
    step = `INSERT ${name}`;
    await client.query('INSERT INTO aws.vpc (name, cidr_block) VALUES ($1, $2)', [name, '10.1.0.0/16']);
    step = `named COMMIT after INSERT ${name}`;
    await client.query({ name: 'commit', text: 'COMMIT' });
    step = `SELECT ${name}`;
    const r = await client.query('SELECT vpc_id FROM aws.vpc WHERE name = $1', [name]);
    console.log('commit', name, r.rows.length ? r.rows[0].vpc_id : 'absent');
  }
  step = 'end';
  await client.end();
}

main(process.argv[2]).catch((e) => {
  console.error(`FAILED at ${step}: SQLSTATE ${e.code}: ${e.message}`);
  process.exit(1);
});
