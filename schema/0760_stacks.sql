-- Declarative stacks (issue #12). A stack's files state the whole desired
-- set of its resources as plain INSERTs; run between infra.stack_begin()
-- and infra.stack_finish() in one transaction they converge:
--   - an INSERT whose natural key (infra.resource_column.natural_key) names
--     a resource the stack has becomes an UPDATE of that row, so applying
--     the same files twice plans nothing;
--   - a resource of the stack no statement declared is deleted (prune);
--   - an unmanaged resource with the same key is adopted only when asked.
-- Membership is the `stack` column of every resource table (and, where the
-- type has tags, the `infrasql:stack` tag in AWS, so a re-import finds it).
-- Inside a stack run, row-level security scopes every lookup to the stack.

CREATE TABLE infra.stack_state (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    source      text,
    revision    text,
    author      text,
    applied_at  timestamptz,
    -- synced | out_of_sync | failed; `drifted` is computed (infra.stack).
    status      text NOT NULL DEFAULT 'out_of_sync' CHECK (status IN ('synced', 'out_of_sync', 'failed')),
    error       text,
    failures    int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON infra.stack_state FROM PUBLIC;
GRANT SELECT ON infra.stack_state TO PUBLIC;
COMMENT ON TABLE infra.stack_state IS 'What infrasql records of each stack; read infra.stack';
COMMENT ON COLUMN infra.stack_state.name IS 'The stack''s name, e.g. web.staging';
COMMENT ON COLUMN infra.stack_state.source IS 'Where its declaration comes from: files, or a git repository and path';
COMMENT ON COLUMN infra.stack_state.revision IS 'The git commit last applied, if it came from git';
COMMENT ON COLUMN infra.stack_state.author IS 'The author of that commit';
COMMENT ON COLUMN infra.stack_state.applied_at IS 'When its declaration was last applied';
COMMENT ON COLUMN infra.stack_state.status IS 'synced (declaration applied), out_of_sync (declaration or rows changed since) or failed (see error)';
COMMENT ON COLUMN infra.stack_state.error IS 'Why the last apply failed';
COMMENT ON COLUMN infra.stack_state.failures IS 'Failed applies in a row (the agent backs off)';
COMMENT ON COLUMN infra.stack_state.next_attempt_at IS 'When the agent tries a failed stack again';
COMMENT ON COLUMN infra.stack_state.created_at IS 'When the stack was first seen';

-- What a stack run has declared so far, per transaction: the rows its
-- statements named (a second statement naming the same row is an error
-- naming both), and the unmanaged resources it found in its way.
CREATE TABLE infra.stack_claim (
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stack      text NOT NULL,
    table_name text NOT NULL,
    row_id     bigint,
    statement  text,
    conflict   text,
    UNIQUE (xid, table_name, row_id)
);
REVOKE ALL ON infra.stack_claim FROM PUBLIC;
COMMENT ON TABLE infra.stack_claim IS 'The rows each open stack run has declared (row_id NULL: the run''s start), and unmanaged resources in its way (conflict)';
COMMENT ON COLUMN infra.stack_claim.xid IS 'The stack run''s transaction';
COMMENT ON COLUMN infra.stack_claim.stack IS 'The stack being applied';
COMMENT ON COLUMN infra.stack_claim.table_name IS 'The resource table';
COMMENT ON COLUMN infra.stack_claim.row_id IS 'The declared row''s id';
COMMENT ON COLUMN infra.stack_claim.statement IS 'Where it was declared (file:line, from infra.stack_statement)';
COMMENT ON COLUMN infra.stack_claim.conflict IS 'An unmanaged resource with the same natural key, when not adopting';

ALTER TABLE infra.resource_column DROP CONSTRAINT resource_column_kind_check;
ALTER TABLE infra.resource_column ADD CONSTRAINT resource_column_kind_check
    CHECK (kind IN ('row_key', 'stack', 'identity', 'name', 'desired', 'replace', 'cloud', 'write_only'));

-- Defaults, so that SHOW answers and an unset value reads as off.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.allow_stack_edit = off', current_database());
    EXECUTE format('ALTER DATABASE %I SET infra.stack = %L', current_database(), '');
END
$$;

-- The stack this transaction is applying, if infra.stack_begin() started
-- one in it (a plain SET infra.stack only narrows what the session reads).
CREATE FUNCTION infra.running_stack() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT c.stack FROM infra.stack_claim c
    WHERE c.xid = pg_current_xact_id_if_assigned() AND c.row_id IS NULL AND c.table_name = ''
      AND c.stack = nullif(current_setting('infra.stack', true), '')
$$;

-- Row-level security: inside a stack run, the stack's own rows (plus those
-- of stacks named by infra.read_stack()); everywhere else, every row.
CREATE FUNCTION infra.stack_visible(s text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT coalesce(current_setting('infra.stack', true), '') = ''
        OR s = current_setting('infra.stack', true)
        OR coalesce(s, '') = ANY (string_to_array(coalesce(current_setting('infra.stack_reads', true), ''), ','))
$$;

CREATE FUNCTION infra.stack_writable(s text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT coalesce(current_setting('infra.stack', true), '') = ''
        OR s IS NOT DISTINCT FROM current_setting('infra.stack', true)
$$;

-- Inside a stack's files: also see (not change) another stack's resources,
-- or with NULL the resources of no stack.
CREATE FUNCTION infra.read_stack(name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog AS $$
    SELECT set_config('infra.stack_reads',
        concat_ws(',', nullif(current_setting('infra.stack_reads', true), ''), coalesce(name, '')), true);
$$;
GRANT EXECUTE ON FUNCTION infra.read_stack(text) TO PUBLIC;
COMMENT ON FUNCTION infra.read_stack(text) IS 'Inside a stack''s files: make another stack''s resources visible to lookups (NULL: the resources of no stack); they stay read-only';

-- "aws.vpc name = 'main'": a resource by its natural key, for messages.
CREATE FUNCTION infra.natural_key_text(tbl text, r jsonb) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT tbl || ' ' || coalesce(string_agg(format('%s = %s', c.column_name,
               coalesce(quote_literal(r ->> c.column_name), 'NULL')), ', ' ORDER BY c.natural_key), '(no natural key)')
    FROM infra.resource_column c
    WHERE c.table_name = tbl AND c.natural_key IS NOT NULL
$$;

-- A declared row: claimed once per run; a second claim is the same
-- resource declared twice, and the error names both statements.
CREATE FUNCTION infra.stack_claim_row(s text, tbl text, rid bigint, what text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    here  text := nullif(current_setting('infra.stack_statement', true), '');
    prior record;
BEGIN
    SELECT statement INTO prior FROM infra.stack_claim
    WHERE xid = pg_current_xact_id() AND table_name = tbl AND row_id = rid;
    IF FOUND THEN
        RAISE EXCEPTION '% is declared twice in stack %', what, s
            USING ERRCODE = '23505',
                  DETAIL = format('First declared at %s, again at %s.', coalesce(prior.statement, '?'), coalesce(here, '?')),
                  HINT = 'Within a stack a resource is named by its natural key (infra.resource_column.natural_key); declare each once.';
    END IF;
    INSERT INTO infra.stack_claim (stack, table_name, row_id, statement) VALUES (s, tbl, rid, here);
END
$$;

-- BEFORE INSERT on a resource table, inside a stack run: the INSERT names
-- the stack's resource by its natural key. A new one is inserted into the
-- stack; one the stack has becomes an UPDATE of that row (write-only
-- columns are left alone: they are sent when the resource is created);
-- an unmanaged one is adopted, or recorded as a conflict for
-- infra.stack_finish() to report with the others.
CREATE FUNCTION infra.stack_declare() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s     text := infra.running_stack();
    tbl   text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    cond  text;
    cols  text;
    hit   record;
    adopt boolean := coalesce(current_setting('infra.stack_adopt', true), 'off') = 'on';
BEGIN
    IF s IS NULL OR infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    NEW.stack := s;
    SELECT string_agg(format('t.%1$I IS NOT DISTINCT FROM ($1).%1$I', column_name), ' AND ')
      INTO cond FROM infra.resource_column WHERE table_name = tbl AND natural_key IS NOT NULL;
    IF cond IS NULL THEN
        PERFORM infra.stack_claim_row(s, tbl, NEW.id, infra.natural_key_text(tbl, to_jsonb(NEW)));
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT t.id, t.stack FROM %s t WHERE (t.stack = $2 OR t.stack IS NULL) AND %s
                    ORDER BY t.stack NULLS LAST LIMIT 1', tbl, cond)
        INTO hit USING NEW, s;
    IF hit.id IS NULL THEN
        PERFORM infra.stack_claim_row(s, tbl, NEW.id, infra.natural_key_text(tbl, to_jsonb(NEW)));
        RETURN NEW;
    END IF;
    IF hit.stack IS NULL AND NOT adopt THEN
        INSERT INTO infra.stack_claim (stack, table_name, row_id, statement, conflict)
        VALUES (s, tbl, hit.id, nullif(current_setting('infra.stack_statement', true), ''),
                infra.natural_key_text(tbl, to_jsonb(NEW)))
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    PERFORM infra.stack_claim_row(s, tbl, hit.id, infra.natural_key_text(tbl, to_jsonb(NEW)));
    SELECT string_agg(format('%1$I = ($1).%1$I', column_name), ', ')
      INTO cols FROM infra.resource_column
     WHERE table_name = tbl AND kind IN ('name', 'desired', 'replace');
    EXECUTE format('UPDATE %s t SET %s stack = $2 WHERE t.id = $3', tbl,
                   coalesce(cols || ',', ''))
        USING NEW, s, hit.id;
    RETURN NULL;
END
$$;

-- The same for a join row of a member set: its natural key is (owner,
-- member), and it belongs to its owner's stack.
CREATE FUNCTION infra.stack_declare_member() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s   text := infra.running_stack();
    tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    rs  record;
    rid bigint;
    n   jsonb := to_jsonb(NEW);
BEGIN
    IF s IS NULL OR infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    SELECT * INTO rs FROM infra.resource_set WHERE join_table = tbl;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT id FROM %s WHERE %I = $1 AND %I = $2', tbl, rs.owner_column, rs.member_column)
        INTO rid USING n ->> rs.owner_column, n ->> rs.member_column;
    PERFORM infra.stack_claim_row(s, tbl, coalesce(rid, NEW.id),
        format('%s %s = %L, %s = %L', tbl, rs.owner_column, n ->> rs.owner_column, rs.member_column, n ->> rs.member_column));
    RETURN CASE WHEN rid IS NULL THEN NEW END;
END
$$;

CREATE FUNCTION infra.stack_mark_edited(stacks text[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    INSERT INTO infra.stack_state (name) SELECT DISTINCT x FROM unnest(stacks) x WHERE x IS NOT NULL
    ON CONFLICT DO NOTHING;
    UPDATE infra.stack_state SET status = 'out_of_sync'
    WHERE name = ANY (stacks) AND status = 'synced';
$$;

-- Edits outside the declaration: a stack's rows change in its own run (or
-- by the engine: sync, write-back). Elsewhere a change is refused, naming
-- the stack, unless the session sets infra.allow_stack_edit = on; the
-- stack then shows out_of_sync until its files say the same.
CREATE FUNCTION infra.stack_guard_edit(tbl text, old_s text, new_s text, what text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s text := infra.running_stack();
BEGIN
    IF new_s IS NOT NULL THEN
        INSERT INTO infra.stack_state (name) VALUES (new_s) ON CONFLICT DO NOTHING;
    END IF;
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN;
    END IF;
    IF (old_s IS NULL OR old_s = s) AND (new_s IS NULL OR new_s = s) THEN
        RETURN;
    END IF;
    IF coalesce(nullif(current_setting('infra.allow_stack_edit', true), '')::boolean, false) THEN
        PERFORM infra.stack_mark_edited(ARRAY[old_s, new_s]);
        RETURN;
    END IF;
    RAISE EXCEPTION '% belongs to stack %; change it in the stack''s files', what, coalesce(old_s, new_s)
        USING ERRCODE = '55000',
              DETAIL = 'A stack''s files declare its resources; a change made elsewhere would be undone by its next apply.',
              HINT = 'Apply the stack with the change (infrasql apply --stack), or SET infra.allow_stack_edit = on: the stack then shows out_of_sync until its files say the same.';
END
$$;

CREATE FUNCTION infra.stack_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    o   jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    n   jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
BEGIN
    IF o ->> 'stack' IS DISTINCT FROM n ->> 'stack' OR o ->> 'stack' IS NOT NULL THEN
        PERFORM infra.stack_guard_edit(tbl, o ->> 'stack', n ->> 'stack',
                                       infra.natural_key_text(tbl, coalesce(n, o)));
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

-- A join row belongs to its owner's stack.
CREATE FUNCTION infra.stack_guard_member() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    r   jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    rs  record;
    owner_stack text;
BEGIN
    SELECT * INTO rs FROM infra.resource_set WHERE join_table = tbl;
    IF FOUND THEN
        EXECUTE format('SELECT stack FROM %s WHERE %I = $1', rs.table_name, rs.owner_column)
            INTO owner_stack USING r ->> rs.owner_column;
        IF owner_stack IS NOT NULL THEN
            PERFORM infra.stack_guard_edit(tbl, owner_stack, owner_stack,
                format('%s %s = %L, %s = %L', tbl, rs.owner_column, r ->> rs.owner_column,
                       rs.member_column, r ->> rs.member_column));
        END IF;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

-- Start applying a stack's declaration in this transaction.
CREATE FUNCTION infra.stack_begin(name text, adopt boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9][A-Za-z0-9._-]*$' THEN
        RAISE EXCEPTION 'invalid stack name %', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'A stack name is letters, digits, ".", "_" and "-", e.g. web.staging.';
    END IF;
    IF EXISTS (SELECT 1 FROM infra.stack_claim WHERE xid = pg_current_xact_id() AND row_id IS NULL AND table_name = '') THEN
        RAISE EXCEPTION 'a stack run is already open in this transaction' USING ERRCODE = '55000';
    END IF;
    INSERT INTO infra.stack_state (name, source) VALUES (name, 'files') ON CONFLICT DO NOTHING;
    PERFORM set_config('infra.stack', name, true);
    PERFORM set_config('infra.stack_adopt', CASE WHEN adopt THEN 'on' ELSE 'off' END, true);
    PERFORM set_config('infra.stack_reads', '', true);
    INSERT INTO infra.stack_claim (stack, table_name, row_id) VALUES (name, '', NULL);
END
$$;
GRANT EXECUTE ON FUNCTION infra.stack_begin(text, boolean) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_begin(text, boolean) IS 'Start a stack run in this transaction: its INSERTs declare the stack''s resources by natural key, lookups see only the stack';

-- Delete the stack's rows no statement of this run declared, join rows
-- first; a row others still depend on waits for a later pass, and one that
-- never goes is an error naming it.
CREATE FUNCTION infra.stack_prune(s text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t       record;
    n       int;
    total   int := 0;
    left_   int;
    progress int;
    blocked text;
    x       xid8 := pg_current_xact_id();
BEGIN
    FOR t IN SELECT * FROM infra.resource_set ORDER BY join_table LOOP
        EXECUTE format('DELETE FROM %s j WHERE j.%I IN (SELECT o.%I FROM %s o WHERE o.stack = $1)
                        AND j.id NOT IN (SELECT row_id FROM infra.stack_claim
                                         WHERE xid = $2 AND table_name = %L AND row_id IS NOT NULL)',
                       t.join_table, t.owner_column, t.owner_column, t.table_name, t.join_table)
            USING s, x;
    END LOOP;
    LOOP
        progress := 0;
        left_ := 0;
        FOR t IN SELECT DISTINCT table_name FROM infra.resource_column ORDER BY table_name LOOP
            BEGIN
                EXECUTE format('WITH d AS (DELETE FROM %s r WHERE r.stack = $1
                                  AND r.id NOT IN (SELECT row_id FROM infra.stack_claim
                                                   WHERE xid = $2 AND table_name = %L AND row_id IS NOT NULL)
                                  RETURNING 1) SELECT count(*) FROM d', t.table_name, t.table_name)
                    INTO STRICT n USING s, x;
                progress := progress + n;
            EXCEPTION WHEN foreign_key_violation THEN
                left_ := left_ + 1;
                blocked := format('%s: %s', t.table_name, SQLERRM);
            END;
        END LOOP;
        total := total + progress;
        EXIT WHEN left_ = 0;
        IF progress = 0 THEN
            RAISE EXCEPTION 'stack %: a resource its files no longer declare cannot be deleted', s
                USING ERRCODE = '23503', DETAIL = blocked,
                      HINT = 'Something outside the stack still refers to it; change that first.';
        END IF;
    END LOOP;
    RETURN total;
END
$$;

-- End the stack run: report unmanaged resources in the way, prune what the
-- files no longer declare (unless prune is false), and record the stack as
-- applied, in this transaction: if its COMMIT fails, none of it happened.
CREATE FUNCTION infra.stack_finish(prune boolean DEFAULT true, revision text DEFAULT NULL,
                                   author text DEFAULT NULL, source text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s         text := infra.running_stack();
    x         xid8 := pg_current_xact_id();
    conflicts text;
    declared  int;
    pruned    int := 0;
BEGIN
    IF s IS NULL THEN
        RAISE EXCEPTION 'no stack run is open in this transaction' USING ERRCODE = '55000',
            HINT = 'Call infra.stack_begin(name) first, in the same transaction.';
    END IF;
    SELECT string_agg(conflict, E'\n' ORDER BY conflict) INTO conflicts
    FROM infra.stack_claim WHERE xid = x AND conflict IS NOT NULL;
    IF conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'stack %: resources with the same natural key exist outside any stack', s
            USING ERRCODE = '42710', DETAIL = conflicts,
                  HINT = 'Adopt them into the stack with --adopt (infra.stack_begin(name, adopt => true)), or change the declarations.';
    END IF;
    SELECT count(*) INTO declared FROM infra.stack_claim WHERE xid = x AND row_id IS NOT NULL AND conflict IS NULL;
    IF prune THEN
        pruned := infra.stack_prune(s);
    END IF;
    UPDATE infra.stack_state st SET status = 'synced', applied_at = now(), error = NULL, failures = 0,
           next_attempt_at = NULL, revision = coalesce(stack_finish.revision, st.revision),
           author = coalesce(stack_finish.author, st.author), source = coalesce(stack_finish.source, st.source)
    WHERE st.name = s;
    DELETE FROM infra.stack_claim WHERE xid = x;
    PERFORM set_config('infra.stack', '', true);
    PERFORM set_config('infra.stack_reads', '', true);
    RETURN jsonb_build_object('stack', s, 'declared', declared, 'pruned', pruned);
END
$$;
GRANT EXECUTE ON FUNCTION infra.stack_finish(boolean, text, text, text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_finish(boolean, text, text, text) IS 'End the stack run: refuse unmanaged resources in the way, prune undeclared ones (unless prune => false), record the stack applied (with the git revision and author, if any)';

-- A failed apply, recorded in its own transaction by whoever applied it.
CREATE FUNCTION infra.stack_failed(name text, error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    INSERT INTO infra.stack_state (name, status, error, failures) VALUES (name, 'failed', error, 1)
    ON CONFLICT (name) DO UPDATE SET status = 'failed', error = excluded.error,
        failures = infra.stack_state.failures + 1,
        next_attempt_at = now() + least(interval '1 hour', interval '30 seconds' * power(2, infra.stack_state.failures));
$$;
GRANT EXECUTE ON FUNCTION infra.stack_failed(text, text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_failed(text, text) IS 'Record that applying the stack failed (the agent retries with backoff)';

-- Open drift on a stack's resources.
CREATE FUNCTION infra.stack_drift(name text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR t IN SELECT table_name, column_name FROM infra.resource_column
             WHERE kind IN ('identity', 'name') ORDER BY table_name LOOP
        EXECUTE format('SELECT count(*) FROM infra.drift d JOIN %s r ON r.%I = d.resource_id
                        WHERE d.table_name = %L AND d.resolution = ''open'' AND r.stack = $1',
                       t.table_name, t.column_name, t.table_name)
            INTO n USING name;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

CREATE FUNCTION infra.stack_size(name text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR t IN SELECT DISTINCT table_name FROM infra.resource_column ORDER BY table_name LOOP
        EXECUTE format('SELECT count(*) FROM %s WHERE stack = $1', t.table_name) INTO n USING name;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

CREATE VIEW infra.stack AS
    SELECT s.name, s.source, s.revision, s.author, s.applied_at,
           CASE WHEN s.status <> 'synced' THEN s.status
                WHEN infra.stack_drift(s.name) > 0 THEN 'drifted'
                ELSE 'synced' END AS status,
           s.error, infra.stack_size(s.name) AS resources, infra.stack_drift(s.name) AS open_drift,
           s.next_attempt_at
    FROM infra.stack_state s;
COMMENT ON VIEW infra.stack IS 'One row per stack: where its declaration comes from, when it was applied, and its status';
COMMENT ON COLUMN infra.stack.name IS 'The stack''s name';
COMMENT ON COLUMN infra.stack.source IS 'files, or the git repository and path it comes from';
COMMENT ON COLUMN infra.stack.revision IS 'The git commit last applied';
COMMENT ON COLUMN infra.stack.author IS 'The author of that commit';
COMMENT ON COLUMN infra.stack.applied_at IS 'When its declaration was last applied';
COMMENT ON COLUMN infra.stack.status IS 'synced: rows equal the declaration and AWS equals the rows; out_of_sync: the declaration or the rows changed since; drifted: open drift on its resources; failed: see error';
COMMENT ON COLUMN infra.stack.error IS 'Why the last apply failed';
COMMENT ON COLUMN infra.stack.resources IS 'How many resources belong to it';
COMMENT ON COLUMN infra.stack.open_drift IS 'Open drift records on its resources';
COMMENT ON COLUMN infra.stack.next_attempt_at IS 'When the agent tries a failed stack again';
GRANT SELECT ON infra.stack TO PUBLIC;

-- Every resource table: the stack column, its triggers and row-level
-- security. Join tables: their declare and guard triggers.
CREATE FUNCTION infra.add_stack(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS stack text DEFAULT NULL', tbl);
    EXECUTE format('CREATE INDEX ON %s (stack) WHERE stack IS NOT NULL', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_declare BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION infra.stack_declare()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_stack_guard BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.stack_guard()', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY infrasql_stack_read ON %s FOR SELECT USING (infra.stack_visible(stack))', tbl);
    EXECUTE format('CREATE POLICY infrasql_stack_write ON %s FOR ALL USING (infra.stack_writable(stack)) WITH CHECK (infra.stack_writable(stack))', tbl);
END
$$;

CREATE FUNCTION infra.add_stack_member(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER infrasql_declare BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION infra.stack_declare_member()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_stack_guard BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.stack_guard_member()', tbl);
END
$$;

CREATE OR REPLACE FUNCTION infra.manage(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM infra.stable_key(tbl);
    EXECUTE format('CREATE TRIGGER infrasql_guard BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.guard()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_keep_secret BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.keep_secret()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO PUBLIC', tbl);
    PERFORM infra.add_stack(tbl);
END
$$;

CREATE OR REPLACE FUNCTION infra.manage_set(tbl regclass, owner regclass, owner_column text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER infrasql_lock_owner BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.lock_set_owner(%L, %L)', tbl, owner::text, owner_column);
    EXECUTE format('CREATE TRIGGER infrasql_set_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO PUBLIC', tbl);
    PERFORM infra.add_stack_member(tbl);
END
$$;

-- Internal steps: reached only through the triggers and functions above.
REVOKE EXECUTE ON FUNCTION infra.stack_claim_row(text, text, bigint, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION infra.stack_mark_edited(text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION infra.stack_guard_edit(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION infra.stack_prune(text) FROM PUBLIC;

-- The tables managed so far.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_guard' AND NOT tgisinternal ORDER BY 1 LOOP
        PERFORM infra.add_stack(t);
    END LOOP;
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_lock_owner' AND NOT tgisinternal ORDER BY 1 LOOP
        PERFORM infra.add_stack_member(t);
    END LOOP;
END
$$;
