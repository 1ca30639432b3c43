"""psycopg 3 in pipeline mode against infrasql.

    python3 psycopg_pipeline.py <name>

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE). In pipeline mode every statement, BEGIN and COMMIT included, goes
through the extended protocol (Parse/Bind/Execute) and is pipelined before one
Sync. Prints one line per step; the first failure exits with status 1 naming
the step, SQLSTATE and message.
"""

import sys

import psycopg

step = "connect"


def fail(e):
    sqlstate = getattr(e, "sqlstate", None)
    print(f"FAILED at {step}: SQLSTATE {sqlstate}: {e}", file=sys.stderr)
    sys.exit(1)


def main(name):
    global step
    if not psycopg.Pipeline.is_supported():
        print(f"FAILED: libpq {psycopg.pq.version()} has no pipeline mode", file=sys.stderr)
        sys.exit(2)
    with psycopg.connect(connect_timeout=10) as conn:
        # A transaction that writes, committed inside the pipeline.
        with conn.pipeline():
            step = f"INSERT {name} in a pipeline"
            conn.execute(
                "INSERT INTO aws.vpc (name, cidr_block) VALUES (%s, '10.1.0.0/16')", (name,)
            )
            step = f"commit() in a pipeline after INSERT {name}"
            conn.commit()
        step = f"SELECT {name}"
        row = conn.execute("SELECT vpc_id FROM aws.vpc WHERE name = %s", (name,)).fetchone()
        conn.commit()
        print("commit", name, row[0] if row else "absent")

        # A transaction that only reads, committed inside the pipeline.
        with conn.pipeline():
            step = "SELECT in a read-only pipeline transaction"
            cur = conn.execute("SELECT count(*) FROM aws.vpc WHERE name = %s", (name,))
            step = "commit() of a read-only transaction in a pipeline"
            conn.commit()
        step = "fetch the read-only result"
        print("read-only count", cur.fetchone()[0])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except psycopg.Error as e:
        fail(e)
