-- Row triggers that have nothing to do are not called (issue #15: a sync
-- that imported 100,000 rows spent most of PostgreSQL's CPU calling them).
--
-- Every resource table carries about ten row triggers. For the engine's
-- own writes (a sync's import, the write-back) most of their functions
-- begin `IF infra.is_engine() OR infra.is_sealed() THEN RETURN ...`, yet
-- each was called per row: a PL/pgSQL call, often a `to_jsonb(NEW)` before
-- the test, and a SECURITY DEFINER call of is_engine() with its
-- search_path switch; the AFTER ones also queued an event per row. Two
-- more did work on every row for everyone: keep_secret looked up the
-- table's write-only columns (most tables have none), and stack_guard
-- serialised OLD and NEW to find that the row is in no stack. Measured as
-- the engine, 10,000 security groups: 2.1-2.7 s with the triggers, 0.35 s
-- without.
--
-- `infra.fit_row_triggers()` gives each a condition that PostgreSQL tests
-- before it calls anything, and that is true exactly when the function
-- would have done something:
-- - the functions that return at once for the engine get
--   `WHEN (infra.not_engine())`. The functions keep their own test, so a
--   condition that wrongly let the trigger fire would only cost time;
-- - stack_guard is split per event, with a condition on the stack column
--   (a row in no stack, before and after, was never its business);
-- - keep_secret stays only on tables whose description has a write-only
--   column (`infra.resource_column`), which is what its loop read.
--
-- The write-only columns come from the providers' descriptions, written at
-- every start (src/engine/registry.rs), so that is where the function is
-- called, in the same transaction: tables that later schema files create
-- are fitted the same way.

-- Whether this session is not the engine's. is_engine() compares the
-- session user with the owner of schema infra, through a SECURITY DEFINER
-- call, about 10 µs per call; this is the same comparison with the owner's
-- oid written in (by fit_row_triggers, at every start), plain SQL that
-- PostgreSQL inlines into the trigger's condition. Everything in it is
-- schema-qualified, so a caller's search_path cannot change it. Should the
-- owner change while infrasql runs, the old owner's writes would skip the
-- checks until the next start; that role owns every table and could drop
-- the triggers anyway.
-- Until the first fit it is is_engine() itself.
CREATE FUNCTION infra.not_engine() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT infra.is_engine()
$$;

CREATE FUNCTION infra.fit_row_triggers() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    owner oid := (SELECT nspowner FROM pg_namespace WHERE nspname = 'infra');
    t     record;
    done  integer := 0;
BEGIN
    -- Nodes starting together on one database fit one at a time (the
    -- migrations' lock, src/store/migrate.rs).
    PERFORM pg_advisory_xact_lock(x'1AF2A5C100000001'::bigint);

    -- A role name may need quoting; one that no longer resolves is not the
    -- engine (coalesce). Operators named with their schema, no IS DISTINCT
    -- FROM: that one would be looked up on the caller's search_path.
    IF position(format(' %s::pg_catalog.oid', owner) IN
                (SELECT prosrc FROM pg_proc WHERE oid = 'infra.not_engine()'::regprocedure)) = 0 THEN
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION infra.not_engine() RETURNS boolean LANGUAGE sql STABLE AS '
            '$f$ SELECT coalesce(pg_catalog.to_regrole(pg_catalog.quote_ident(session_user::pg_catalog.text))'
            '::pg_catalog.oid OPERATOR(pg_catalog.<>) %s::pg_catalog.oid, true) $f$', owner);
    END IF;

    -- The functions whose whole effect for the engine is their early return.
    FOR t IN
        SELECT tg.tgname, tg.tgrelid::regclass AS tbl, pg_get_triggerdef(tg.oid) AS def
          FROM pg_trigger tg
          JOIN pg_proc p ON p.oid = tg.tgfoid
         WHERE NOT tg.tgisinternal AND tg.tgqual IS NULL
           AND p.pronamespace = 'infra'::regnamespace
           AND p.proname = ANY (ARRAY[
                   'guard', 'capture', 'require_commit_path',
                   'stack_declare', 'stack_declare_member',
                   'check_tags', 'check_same_region', 'check_same_vpc',
                   'check_rule', 'check_referenced_group', 'check_subnet',
                   'check_instance_group', 'check_db_subnet_group_subnet',
                   'refuse_rename', 'refuse_cluster_move'])
         ORDER BY 2, 1
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.tbl);
        -- pg_get_triggerdef ends `... FOR EACH ROW EXECUTE FUNCTION f(...)`;
        -- WHEN goes right before EXECUTE. The name is kept, and with it
        -- the order in which the table's triggers fire.
        EXECUTE regexp_replace(t.def, ' EXECUTE (FUNCTION|PROCEDURE) ',
                               ' WHEN (infra.not_engine()) EXECUTE \1 ');
        done := done + 1;
    END LOOP;

    -- stack_guard acts when the row is in a stack before or after: per
    -- event, since a condition of an INSERT trigger cannot name OLD. The
    -- UPDATE and DELETE ones sort right after the INSERT one, where it fired.
    FOR t IN
        SELECT tg.tgname, tg.tgrelid::regclass AS tbl
          FROM pg_trigger tg
         WHERE tg.tgname = 'infrasql_stack_guard' AND tg.tgqual IS NULL
           AND tg.tgfoid = 'infra.stack_guard()'::regprocedure
         ORDER BY 2
    LOOP
        EXECUTE format('DROP TRIGGER infrasql_stack_guard ON %s', t.tbl);
        EXECUTE format('CREATE TRIGGER infrasql_stack_guard BEFORE INSERT ON %s FOR EACH ROW '
                       'WHEN (NEW.stack IS NOT NULL) EXECUTE FUNCTION infra.stack_guard()', t.tbl);
        EXECUTE format('CREATE TRIGGER infrasql_stack_guard_u BEFORE UPDATE ON %s FOR EACH ROW '
                       'WHEN (OLD.stack IS NOT NULL OR NEW.stack IS NOT NULL) '
                       'EXECUTE FUNCTION infra.stack_guard()', t.tbl);
        EXECUTE format('CREATE TRIGGER infrasql_stack_guard_d BEFORE DELETE ON %s FOR EACH ROW '
                       'WHEN (OLD.stack IS NOT NULL) EXECUTE FUNCTION infra.stack_guard()', t.tbl);
        done := done + 1;
    END LOOP;

    -- keep_secret where the description has a write-only column, and only there.
    FOR t IN
        SELECT tg.tgrelid::regclass AS tbl
          FROM pg_trigger tg
         WHERE tg.tgname = 'infrasql_keep_secret'
           AND NOT EXISTS (SELECT 1 FROM infra.resource_column c
                            WHERE c.table_name = tg.tgrelid::regclass::text AND c.kind = 'write_only')
         ORDER BY 1
    LOOP
        EXECUTE format('DROP TRIGGER infrasql_keep_secret ON %s', t.tbl);
        done := done + 1;
    END LOOP;
    FOR t IN
        SELECT DISTINCT c.table_name::regclass AS tbl
          FROM infra.resource_column c
         WHERE c.kind = 'write_only'
           AND NOT EXISTS (SELECT 1 FROM pg_trigger tg
                            WHERE tg.tgrelid = c.table_name::regclass AND tg.tgname = 'infrasql_keep_secret')
         ORDER BY 1
    LOOP
        EXECUTE format('CREATE TRIGGER infrasql_keep_secret BEFORE INSERT OR UPDATE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION infra.keep_secret()', t.tbl);
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;
