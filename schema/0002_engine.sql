-- The engine's machinery: change capture, the read-only guard, the safety
-- net, the plan view, and the apply journal. Resource tables opt in with
-- `SELECT infra.manage('aws.vpc')` in their own schema file.

CREATE TABLE infra.setting (
    key   text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE infra.setting IS 'Server settings the database needs (default region)';

-- Known only to the engine role: proves a transaction passed the commit path.
CREATE TABLE infra.secret (
    key   text PRIMARY KEY,
    value text NOT NULL
);
REVOKE ALL ON infra.secret FROM PUBLIC;
INSERT INTO infra.secret VALUES ('seal', encode(sha256(convert_to(gen_random_uuid()::text || clock_timestamp()::text || random()::text, 'UTF8')), 'hex'));

-- Written by the engine at start-up from the providers' descriptions.
CREATE TABLE infra.resource_column (
    table_name  text NOT NULL,
    column_name text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('identity', 'desired', 'replace', 'cloud', 'write_only')),
    references_table text,
    doc         text NOT NULL DEFAULT '',
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE infra.resource_column IS 'Every resource column and its kind: the one description the planner, sync, guard and docs read';

CREATE FUNCTION infra.default_region() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value FROM infra.setting WHERE key = 'default_region'), 'us-east-1')
$$;

-- New rows need an identity before AWS assigns one; foreign keys reference
-- it ON UPDATE CASCADE and the write-back replaces it with the real id.
CREATE FUNCTION infra.provisional_id(kind text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'pending-' || kind || '-' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 17)
$$;

-- Sessions of the role that owns the infra schema are the engine's.
CREATE FUNCTION infra.is_engine() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT (SELECT oid FROM pg_roles WHERE rolname = session_user)
         = (SELECT nspowner FROM pg_namespace WHERE nspname = 'infra')
$$;

CREATE TABLE infra.sealed (
    xid       xid8 PRIMARY KEY,
    sealed_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON infra.sealed FROM PUBLIC;

CREATE FUNCTION infra.is_sealed() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM infra.sealed WHERE xid = pg_current_xact_id_if_assigned())
$$;

-- Called by the commit path once the cloud matches, before the write-back.
-- The token is a hash of the engine's secret and this transaction's id, so
-- it cannot be forged or reused by another transaction.
CREATE FUNCTION infra.seal(token text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    x xid8 := pg_current_xact_id();
BEGIN
    IF token IS DISTINCT FROM encode(sha256(convert_to(
           (SELECT value FROM infra.secret WHERE key = 'seal') || ':' || x::text, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION 'invalid infrasql seal' USING ERRCODE = '42501';
    END IF;
    INSERT INTO infra.sealed (xid) VALUES (x) ON CONFLICT DO NOTHING;
END
$$;

-- Change capture: one row per row change, per transaction.
CREATE TABLE infra.change (
    seq        bigserial PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    table_name text NOT NULL,
    op         "char" NOT NULL,
    old_row    jsonb,
    new_row    jsonb
);
CREATE INDEX change_xid ON infra.change (xid);
COMMENT ON TABLE infra.change IS 'Row changes of open transactions, consumed by the commit path';

CREATE FUNCTION infra.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NULL;
    END IF;
    INSERT INTO infra.change (table_name, op, old_row, new_row)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, left(TG_OP, 1)::"char",
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END
$$;

-- The read-only guard: cloud-assigned columns and ids are not the user's to write.
CREATE FUNCTION infra.guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    c record;
    n jsonb := to_jsonb(NEW);
    o jsonb;
    tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        o := to_jsonb(OLD);
    END IF;
    FOR c IN SELECT column_name, kind FROM infra.resource_column
             WHERE table_name = tbl AND kind IN ('cloud', 'identity') LOOP
        IF TG_OP = 'INSERT' THEN
            IF c.kind = 'cloud' AND n -> c.column_name <> 'null'::jsonb THEN
                RAISE EXCEPTION 'column "%" of % is assigned by AWS and cannot be written', c.column_name, tbl
                    USING ERRCODE = '428C9', HINT = 'Leave it out; infrasql fills it in when the change is applied.';
            END IF;
            IF c.kind = 'identity' AND n ->> c.column_name NOT LIKE 'pending-%' THEN
                RAISE EXCEPTION 'column "%" of % is assigned by AWS and cannot be written', c.column_name, tbl
                    USING ERRCODE = '428C9',
                          HINT = 'Leave it out: a provisional id is used until AWS assigns the real one.';
            END IF;
        ELSIF n -> c.column_name IS DISTINCT FROM o -> c.column_name THEN
            RAISE EXCEPTION 'column "%" of % is assigned by AWS and cannot be changed', c.column_name, tbl
                USING ERRCODE = '428C9';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;

-- The safety net: at commit, every change to a resource table must have
-- passed the commit path (sealed) or come from the engine itself.
CREATE FUNCTION infra.require_commit_path() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'changes to %.% must be committed through infrasql', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'IX100',
              DETAIL = 'This session is connected to the backend PostgreSQL directly, so the change was never applied to the cloud.',
              HINT = 'Connect through infrasql (default port 5433) and run the transaction again.';
END
$$;

CREATE FUNCTION infra.manage(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER infrasql_guard BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.guard()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO PUBLIC', tbl);
END
$$;

-- The plan of the current transaction, filled in by infrasql when a
-- statement reads infra.plan.
CREATE TABLE infra.plan_step (
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    step        int NOT NULL,
    action      text NOT NULL,
    table_name  text NOT NULL,
    resource_id text,
    name        text,
    region      text,
    changes     jsonb NOT NULL DEFAULT '{}',
    depends_on  int[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (xid, step)
);
REVOKE ALL ON infra.plan_step FROM PUBLIC;

CREATE VIEW infra.plan AS
    SELECT step, action, table_name AS "table", resource_id, name, region, changes, depends_on
    FROM infra.plan_step
    WHERE xid = pg_current_xact_id_if_assigned()
    ORDER BY step;
COMMENT ON VIEW infra.plan IS 'What COMMIT would do now, inside the current transaction';
GRANT SELECT ON infra.plan TO PUBLIC;

CREATE FUNCTION infra.put_plan(steps jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DELETE FROM infra.plan_step WHERE xid = pg_current_xact_id();
    INSERT INTO infra.plan_step (step, action, table_name, resource_id, name, region, changes, depends_on)
    SELECT step, action, "table", resource_id, name, region, coalesce(changes, '{}'), coalesce(depends_on, '{}')
    FROM jsonb_to_recordset(steps) AS s(step int, action text, "table" text, resource_id text,
                                        name text, region text, changes jsonb, depends_on int[]);
$$;

-- The apply journal: written by the engine on its own connection, so it
-- survives the client's transaction and a crash.
CREATE TABLE infra.apply (
    apply_id     text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- running: calling AWS; applied: cloud matches, waiting for the client's
    -- COMMIT; succeeded: committed; failed: refused and undone; recovered:
    -- the process died or the COMMIT failed, and recovery undid the apply.
    status       text NOT NULL CHECK (status IN ('running', 'applied', 'succeeded', 'failed', 'recovered')),
    xid          xid8,
    username     text NOT NULL,
    source       text NOT NULL DEFAULT 'commit',
    actions      int NOT NULL DEFAULT 0,
    error        text
);
COMMENT ON TABLE infra.apply IS 'Every apply: one COMMIT that changed the cloud';

CREATE TABLE infra.apply_action (
    apply_id    text NOT NULL REFERENCES infra.apply ON DELETE CASCADE,
    step        int NOT NULL,
    action      text NOT NULL,
    table_name  text NOT NULL,
    resource_id text,
    region      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('started', 'done', 'failed', 'undone', 'undo_failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    before      jsonb,
    after       jsonb,
    error       text,
    PRIMARY KEY (apply_id, step)
);
COMMENT ON TABLE infra.apply_action IS 'The journal: one row per AWS action, written before the call';

CREATE SCHEMA IF NOT EXISTS aws;
GRANT USAGE ON SCHEMA aws TO PUBLIC;

-- Called by the commit path after the write-back: the transaction's captured
-- changes and plan preview have been consumed.
CREATE FUNCTION infra.finish() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DELETE FROM infra.change WHERE xid = pg_current_xact_id();
    DELETE FROM infra.plan_step WHERE xid = pg_current_xact_id();
$$;
