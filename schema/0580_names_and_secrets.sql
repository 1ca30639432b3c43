-- Chosen names and secrets that never rest (issue #10).

-- RDS resources are named by the user (db_instance_identifier...): their id
-- is a column kind of its own, written on INSERT and never provisional.
ALTER TABLE infra.resource_column DROP CONSTRAINT resource_column_kind_check;
ALTER TABLE infra.resource_column ADD CONSTRAINT resource_column_kind_check
    CHECK (kind IN ('row_key', 'identity', 'name', 'desired', 'replace', 'cloud', 'write_only'));
COMMENT ON COLUMN infra.resource_column.kind IS 'row_key (the row''s own key), identity (the AWS id), name (the id, chosen by the user), desired (changed in place), replace (a change replaces the resource), cloud (assigned by AWS, read-only), write_only (used for the call, never stored)';

-- For a type AWS cannot rename (a DB subnet group, a parameter group): a
-- changed name is refused at the statement, before COMMIT, with what to do
-- instead. Argument: the name column and what AWS calls the type.
CREATE FUNCTION infra.refuse_rename() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF to_jsonb(NEW) -> TG_ARGV[0] IS DISTINCT FROM to_jsonb(OLD) -> TG_ARGV[0]
       AND NOT infra.is_engine() THEN
        RAISE EXCEPTION 'a % cannot be renamed (% is its id)', TG_ARGV[1], TG_ARGV[0]
            USING ERRCODE = '428C9',
                  DETAIL = format('AWS has no call that renames a %s.', TG_ARGV[1]),
                  HINT = 'INSERT a row with the new name and DELETE this one.';
    END IF;
    RETURN NEW;
END
$$;

-- The write-only columns of a resource table, from the description the
-- engine wrote at start-up (resource_column is not readable by users).
CREATE FUNCTION infra.write_only_columns(tbl text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT coalesce(array_agg(column_name ORDER BY column_name), '{}')
      FROM infra.resource_column WHERE table_name = tbl AND kind = 'write_only'
$$;

-- A secret (a database's master password, an instance's user data) never
-- rests: before the row is stored, its write-only values move out of it
-- into a transaction-local setting, `infra.secrets`, that the commit path
-- reads (JSON: "schema.table:<row key>" → {column: value}). So the value
-- never reaches a table (the row, infra.change, the journal), the
-- write-ahead log, a replica or a backup, and it goes with the transaction.
-- Not SECURITY DEFINER and without a SET clause: a function-level SET
-- would make set_config's transaction-local value end with the function.
CREATE FUNCTION infra.keep_secret() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n       pg_catalog.jsonb := pg_catalog.to_jsonb(NEW);
    col     text;
    moved   pg_catalog.jsonb := '{}';
    cleared pg_catalog.jsonb := '{}';
    key     text;
    held    pg_catalog.jsonb;
BEGIN
    FOREACH col IN ARRAY infra.write_only_columns(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME) LOOP
        IF n -> col IS NOT NULL AND n -> col <> 'null'::pg_catalog.jsonb THEN
            moved := moved || pg_catalog.jsonb_build_object(col, n -> col);
            cleared := cleared || pg_catalog.jsonb_build_object(col, NULL);
        END IF;
    END LOOP;
    IF moved = '{}' THEN
        RETURN NEW;
    END IF;
    key := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ':' || (n ->> 'id');
    held := coalesce(nullif(pg_catalog.current_setting('infra.secrets', true), ''), '{}')::pg_catalog.jsonb;
    held := held || pg_catalog.jsonb_build_object(key, coalesce(held -> key, '{}') || moved);
    PERFORM pg_catalog.set_config('infra.secrets', held::text, true);
    NEW := pg_catalog.jsonb_populate_record(NEW, cleared);
    RETURN NEW;
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
END
$$;

-- Every table managed so far (the ones carrying the guard) gets it too:
-- aws.instance's user_data no longer rests in the row until COMMIT.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_guard' AND NOT tgisinternal
              ORDER BY 1 LOOP
        EXECUTE format('CREATE TRIGGER infrasql_keep_secret BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.keep_secret()', t);
    END LOOP;
END
$$;
