-- Stable row keys. ORMs (SQLAlchemy, Django, Hibernate, ActiveRecord) key
-- their identity map on the primary key and take a changed key for a deleted
-- row, so the AWS id, which is provisional until COMMIT, cannot be the
-- primary key. Every resource table gets `id bigint GENERATED ALWAYS AS
-- IDENTITY PRIMARY KEY`, a key that never changes; the AWS id column stays
-- UNIQUE NOT NULL with its provisional default, and foreign keys keep
-- following it ON UPDATE CASCADE, so users still join on console ids.
--
-- Tables managed before this file are converted here; a resource type whose
-- file runs later (an upgraded database applies new files after this one)
-- is converted by infra.manage(), so both orders end in the same shape.

-- Nobody changes a row key, the engine included: `UPDATE ... SET id =
-- DEFAULT` is the one write GENERATED ALWAYS lets through.
CREATE FUNCTION infra.keep_row_key() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'column "id" of %.% is the row''s key and cannot be changed', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = '428C9',
              HINT = 'The AWS id column names the resource; id only keeps the row''s identity.';
END
$$;

-- The conversion itself: the primary key becomes a UNIQUE constraint on the
-- same columns, and `id` becomes the primary key.
CREATE FUNCTION infra.add_row_key(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pk      record;
    fk      record;
    cols    text;
    refs    text[] := '{}';
BEGIN
    SELECT c.conname, c.conindid, c.conkey INTO pk
      FROM pg_constraint c WHERE c.conrelid = tbl AND c.contype = 'p';
    IF FOUND THEN
        -- Foreign keys hang on the primary key's index: take them down and
        -- put them back, unchanged, on the unique constraint that replaces it.
        FOR fk IN SELECT c.conrelid::regclass AS child, c.conname, pg_get_constraintdef(c.oid) AS def
                    FROM pg_constraint c
                   WHERE c.contype = 'f' AND c.confrelid = tbl AND c.conindid = pk.conindid
                   ORDER BY c.conrelid::regclass::text, c.conname LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.child, fk.conname);
            refs := refs || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.child, fk.conname, fk.def);
        END LOOP;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.i) INTO cols
          FROM unnest(pk.conkey) WITH ORDINALITY AS k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = k.attnum;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', tbl, pk.conname);
        -- SET NOT NULL: dropping a primary key need not keep its columns NOT NULL.
        EXECUTE (SELECT string_agg(format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', tbl, a.attname), '; ')
                   FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum = ANY (pk.conkey));
        EXECUTE format('ALTER TABLE %s ADD UNIQUE (%s)', tbl, cols);
    END IF;
    EXECUTE format('ALTER TABLE %s ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY', tbl);
    EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (id)', tbl);
    FOR i IN 1 .. coalesce(array_length(refs, 1), 0) LOOP
        EXECUTE refs[i];
    END LOOP;
END
$$;

-- Give one table the stable key. Idempotent: a table that already has it (a
-- file written in the new shape, or a second call) is left as it is.
CREATE FUNCTION infra.stable_key(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    has_id  boolean;
    ok      boolean;
BEGIN
    SELECT true,
           a.attidentity = 'a' AND EXISTS (
               SELECT 1 FROM pg_constraint c
               WHERE c.conrelid = tbl AND c.contype = 'p' AND c.conkey = ARRAY[a.attnum])
      INTO has_id, ok
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = 'id' AND NOT a.attisdropped;
    IF has_id AND NOT ok THEN
        RAISE EXCEPTION 'column "id" of % must be the row key (bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)', tbl;
    ELSIF NOT coalesce(has_id, false) THEN
        PERFORM infra.add_row_key(tbl);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'infrasql_row_key') THEN
        EXECUTE format('CREATE TRIGGER infrasql_row_key BEFORE UPDATE OF id ON %s FOR EACH ROW EXECUTE FUNCTION infra.keep_row_key()', tbl);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION infra.manage(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM infra.stable_key(tbl);
    EXECUTE format('CREATE TRIGGER infrasql_guard BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.guard()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO PUBLIC', tbl);
END
$$;

-- Every table managed so far: the ones carrying the capture trigger.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_capture' AND NOT tgisinternal
              ORDER BY 1 LOOP
        PERFORM infra.stable_key(t);
    END LOOP;
END
$$;

-- The description lists the key too (kind row_key), so the start-up check,
-- the docs and the column comments cover it.
ALTER TABLE infra.resource_column DROP CONSTRAINT resource_column_kind_check;
ALTER TABLE infra.resource_column ADD CONSTRAINT resource_column_kind_check
    CHECK (kind IN ('row_key', 'identity', 'desired', 'replace', 'cloud', 'write_only'));
