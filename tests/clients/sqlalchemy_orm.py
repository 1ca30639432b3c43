"""SQLAlchemy 2 ORM (automap) against infrasql: add, commit, refresh.

    python3 sqlalchemy_orm.py <url> <name>

<url> is a SQLAlchemy URL (postgresql+psycopg://...). The ORM maps aws.vpc by
reflection, adds a VPC, commits, and then reads vpc_id, which makes the ORM
reload the row by its primary key. Prints "vpc <name> <vpc_id>"; a failure
exits with status 1 naming the step and the exception.
"""

import sys

from sqlalchemy import create_engine
from sqlalchemy.ext.automap import automap_base
from sqlalchemy.orm import Session

step = "connect and reflect aws.vpc"


def main(url, name):
    global step
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    Base = automap_base()
    Base.prepare(autoload_with=engine, schema="aws", reflection_options={"only": ["vpc"]})
    Vpc = Base.classes.vpc
    step = "map aws.vpc"
    pk = [c.name for c in Vpc.__table__.primary_key.columns]
    print("primary key", ",".join(pk))

    with Session(engine) as session:
        step = f"session.add(Vpc(name={name!r}))"
        vpc = Vpc(name=name, cidr_block="10.1.0.0/16")
        session.add(vpc)
        step = "session.commit()"
        session.commit()
        step = "read vpc.vpc_id after commit (refresh)"
        vpc_id = vpc.vpc_id
        step = "session.refresh(vpc)"
        session.refresh(vpc)
        print("vpc", vpc.name, vpc_id, vpc.vpc_id, vpc.state)


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as e:  # noqa: BLE001 - report whatever the ORM raised
        print(f"FAILED at {step}: {type(e).__module__}.{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
