-- Roles instead of grants to PUBLIC (issue #14). Three group roles, named
-- after the database because roles are cluster-wide and two infrasql
-- databases on one cluster must not share them (src/store/roles.rs makes
-- them before this file runs; infra.role_name() is the same rule):
--   <db>_infra_reader   reads everything a user may read (inventory, drift,
--                       plans, history, stacks, sync status)
--   <db>_infra_operator also INSERT, UPDATE, DELETE on aws.*, records
--                       migration files, runs stacks
--   <db>_infra_admin    also policies, drift policies, stack decisions,
--                       login roles and their scopes
-- operator is a member of reader and admin of operator.

CREATE FUNCTION infra.role_name(kind text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.current_database() || '_infra_' || kind
$$;
COMMENT ON FUNCTION infra.role_name(text) IS 'The group role of this database for reader, operator or admin: <database>_infra_<kind>';

-- What PUBLIC had becomes the roles': SELECT the reader's; writes on aws.*
-- and infra.migration_file the operator's; other writes on infra.* (policy,
-- drift_policy) the admin's. Functions PUBLIC could run go to the reader,
-- except the stack steps (operator) and a stack's decisions (admin).
-- USAGE on both schemas moves too. Objects created later keep PostgreSQL's
-- and 0001's defaults (functions and infra tables readable by PUBLIC), which
-- reach only the roles that have USAGE on the schema: the reader and up. So
-- `REVOKE ALL ... FROM PUBLIC` still hides a new table from every user.
DO $$
DECLARE
    reader   text := infra.role_name('reader');
    operator text := infra.role_name('operator');
    admin    text := infra.role_name('admin');
    r        record;
    target   text;
    obj      text;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, n.nspname, c.relname, c.relkind, a.privilege_type
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               CROSS JOIN LATERAL aclexplode(c.relacl) a
              WHERE n.nspname IN ('infra', 'aws') AND a.grantee = 0
              ORDER BY 1, 5 LOOP
        target := CASE
            WHEN r.privilege_type IN ('SELECT', 'USAGE') THEN reader
            WHEN r.nspname = 'aws' OR r.relname = 'migration_file' THEN operator
            ELSE admin END;
        obj := CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || r.rel::text;
        EXECUTE format('REVOKE %s ON %s FROM PUBLIC', r.privilege_type, obj);
        EXECUTE format('GRANT %s ON %s TO %I', r.privilege_type, obj, target);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn, p.proname
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname IN ('infra', 'aws')
                AND (p.proacl IS NULL
                     OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
              ORDER BY 1 LOOP
        target := CASE
            WHEN r.proname IN ('stack_begin', 'stack_finish', 'stack_failed', 'stack_wait', 'cancel_apply')
                THEN operator
            WHEN r.proname IN ('stack_confirm', 'stack_drop', 'stack_heal') THEN admin
            ELSE reader END;
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', r.fn);
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', r.fn, target);
    END LOOP;
    REVOKE USAGE ON SCHEMA infra, aws FROM PUBLIC;
    EXECUTE format('GRANT USAGE ON SCHEMA infra, aws TO %I', reader);
    -- In place: every login role that could use this database through
    -- PUBLIC keeps what it had, on an upgrade and on a new database alike
    -- (on a new embedded one that is only the first-start login role,
    -- which src/store/roles.rs makes an admin too). Roles made later get
    -- nothing until granted.
    FOR r IN SELECT rolname FROM pg_roles
              WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user
                AND has_database_privilege(oid, current_database(), 'CONNECT')
              ORDER BY 1 LOOP
        EXECUTE format('GRANT %I TO %I', admin, r.rolname);
    END LOOP;
END
$$;

-- Scopes: an operator limited to the resources with a tag, or of a stack.
CREATE TABLE infra.role_scope (
    role_name text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('tag', 'stack')),
    key       text NOT NULL DEFAULT '',
    value     text NOT NULL,
    PRIMARY KEY (role_name, kind, key, value)
);
COMMENT ON TABLE infra.role_scope IS 'Login roles limited to some resources (infrasql role scope): row-level security hides the others from them and refuses writes outside';
COMMENT ON COLUMN infra.role_scope.role_name IS 'The login role the scope limits (not the roles that are members of it)';
COMMENT ON COLUMN infra.role_scope.kind IS 'tag: resources whose tags has key = value; stack: resources of the stack named value';
COMMENT ON COLUMN infra.role_scope.key IS 'The tag key (empty for a stack scope)';
COMMENT ON COLUMN infra.role_scope.value IS 'The tag value, or the stack name';
DO $$ BEGIN EXECUTE format('GRANT SELECT ON infra.role_scope TO %I', infra.role_name('reader')); END $$;

-- Whether the current role is scoped at all, and whether a row with these
-- tags and stack is in its scope (several scopes: any of them). Plain SQL
-- without SET clauses, so the planner inlines them into the policies.
CREATE FUNCTION infra.scoped() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM infra.role_scope s WHERE s.role_name = current_user)
$$;
COMMENT ON FUNCTION infra.scoped() IS 'Whether the current role is limited by infra.role_scope';

CREATE FUNCTION infra.in_scope(tags jsonb, stack text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM infra.role_scope s WHERE s.role_name = current_user)
        OR EXISTS (SELECT 1 FROM infra.role_scope s
                    WHERE s.role_name = current_user
                      AND ((s.kind = 'tag' AND $1 ->> s.key = s.value)
                           OR (s.kind = 'stack' AND $2 = s.value)))
$$;
COMMENT ON FUNCTION infra.in_scope(jsonb, text) IS 'Whether a row with these tags and stack is in the current role''s scope (always, for a role without one)';

-- The scope as a RESTRICTIVE policy (ANDed with the stack policies of 0760).
-- A table with `tags` is scoped by its row; one without (a join table, a
-- rule, a record) by its stack and else through the rows it references:
-- each referenced row must be visible to the role, so a scoped operator
-- cannot hang a row under a resource outside the scope. The owner of the
-- tables (the engine) bypasses row-level security: the sync loop, apply and
-- recovery see every row.
CREATE FUNCTION infra.scope_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stack   text := 'NULL';
    cond    text;
    parents text := '';
    fk      record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'stack' AND NOT attisdropped) THEN
        stack := 'stack';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'tags' AND NOT attisdropped) THEN
        cond := format('infra.in_scope(tags, %s)', stack);
    ELSE
        FOR fk IN SELECT c.confrelid::regclass AS parent, a.attname AS col, pa.attname AS pcol
                    FROM pg_constraint c
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                    JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
                   WHERE c.conrelid = tbl AND c.contype = 'f' AND cardinality(c.conkey) = 1
                     AND c.confrelid <> tbl
                   ORDER BY c.conname LOOP
            parents := parents || format(' AND (%2$I IS NULL OR EXISTS (SELECT 1 FROM %1$s p WHERE p.%3$I = %4$s.%2$I))',
                                         fk.parent, fk.col, fk.pcol, tbl);
        END LOOP;
        cond := format('NOT infra.scoped() OR infra.in_scope(NULL, %s) OR (%s%s)',
                       stack, CASE WHEN parents = '' THEN 'false' ELSE 'true' END, parents);
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    -- Restrictive policies narrow permissive ones; without any, no row shows.
    IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = tbl AND polpermissive) THEN
        EXECUTE format('CREATE POLICY infrasql_all ON %s USING (true) WITH CHECK (true)', tbl);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = tbl AND polname = 'infrasql_scope') THEN
        EXECUTE format('DROP POLICY infrasql_scope ON %s', tbl);
    END IF;
    EXECUTE format('CREATE POLICY infrasql_scope ON %s AS RESTRICTIVE USING (%s) WITH CHECK (%s)', tbl, cond, cond);
END
$$;
COMMENT ON FUNCTION infra.scope_table(regclass) IS 'Put the role-scope policy on a resource table (infra.manage and infra.manage_set do)';

-- The grants of a resource table: the reader reads it, the operator writes it.
CREATE FUNCTION infra.grant_resource(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON %s TO %I', tbl, infra.role_name('reader'));
    EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %s TO %I', tbl, infra.role_name('operator'));
    PERFORM infra.scope_table(tbl);
END
$$;
COMMENT ON FUNCTION infra.grant_resource(regclass) IS 'The role grants and the scope policy of a resource table';

CREATE OR REPLACE FUNCTION infra.manage(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM infra.stable_key(tbl);
    EXECUTE format('CREATE TRIGGER infrasql_guard BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.guard()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_keep_secret BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.keep_secret()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    PERFORM infra.add_stack(tbl);
    PERFORM infra.grant_resource(tbl);
END
$$;

CREATE OR REPLACE FUNCTION infra.manage_set(tbl regclass, owner regclass, owner_column text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER infrasql_lock_owner BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.lock_set_owner(%L, %L)', tbl, owner::text, owner_column);
    EXECUTE format('CREATE TRIGGER infrasql_set_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    PERFORM infra.add_stack_member(tbl);
    PERFORM infra.grant_resource(tbl);
END
$$;

-- Every resource table so far (the ones carrying the commit-path check).
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_commit_path' AND NOT tgisinternal
              ORDER BY 1 LOOP
        PERFORM infra.scope_table(t);
    END LOOP;
END
$$;

-- `infrasql role add`: a login role in one of the groups. The client sends
-- a SCRAM verifier, never the password. SECURITY DEFINER: the engine role
-- has CREATEROLE, the admin need not.
CREATE FUNCTION infra.role_add(name text, kind text, verifier text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    grp text;
BEGIN
    IF kind NOT IN ('reader', 'operator', 'admin') THEN
        RAISE EXCEPTION 'unknown role kind "%"', kind USING ERRCODE = '22023',
              HINT = 'Use reader, operator or admin.';
    END IF;
    IF verifier NOT LIKE 'SCRAM-SHA-256$%' THEN
        RAISE EXCEPTION 'the password must be a SCRAM-SHA-256 verifier' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
        RAISE EXCEPTION 'role "%" already exists', name USING ERRCODE = '42710',
              HINT = 'Roles are cluster-wide: choose another name, or GRANT the group to the existing role.';
    END IF;
    grp := infra.role_name(kind);
    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', name, verifier, grp);
    RETURN grp;
END
$$;
COMMENT ON FUNCTION infra.role_add(text, text, text) IS 'Create a login role in the reader, operator or admin group (infrasql role add)';

-- `infrasql role scope`: limit a role to a tag or a stack.
CREATE FUNCTION infra.role_scope(name text, kind text, key text, value text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
        RAISE EXCEPTION 'role "%" does not exist', name USING ERRCODE = '42704';
    END IF;
    IF pg_has_role(name, infra.role_name('admin'), 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" is an admin and cannot be scoped', name USING ERRCODE = '22023',
              DETAIL = 'An admin writes policies and scopes, which apply to every resource.';
    END IF;
    INSERT INTO infra.role_scope (role_name, kind, key, value)
    VALUES (name, kind, coalesce(key, ''), value) ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION infra.role_scope(text, text, text, text) IS 'Limit a login role to resources with a tag or of a stack (infrasql role scope)';

DO $$
DECLARE
    admin text := infra.role_name('admin');
BEGIN
    REVOKE EXECUTE ON FUNCTION infra.role_add(text, text, text), infra.role_scope(text, text, text, text),
                               infra.scope_table(regclass), infra.grant_resource(regclass) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION infra.role_add(text, text, text) TO %I', admin);
    EXECUTE format('GRANT EXECUTE ON FUNCTION infra.role_scope(text, text, text, text) TO %I', admin);
    EXECUTE format('GRANT EXECUTE ON FUNCTION infra.role_name(text), infra.scoped(), infra.in_scope(jsonb, text) TO %I',
                   infra.role_name('reader'));
    REVOKE EXECUTE ON FUNCTION infra.role_name(text), infra.scoped(), infra.in_scope(jsonb, text) FROM PUBLIC;
END
$$;
