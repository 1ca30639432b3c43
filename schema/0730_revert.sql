-- infra.revert(apply_id): the SQL that undoes an apply (issue #11), and the
-- parts of the resource descriptions it needs besides infra.resource_column.
--
-- The script is SQL for the user to read and run, not an action: it goes
-- through the commit path like any other change (plan, policies, guard
-- rails), and `infrasql revert` shows its plan before `--yes` applies it.

-- One row per resource table, written at start-up from the description
-- (src/engine/registry.rs), like infra.resource_column.
CREATE TABLE infra.resource_type (
    table_name text PRIMARY KEY,
    display    text NOT NULL,
    holds_data text
);
COMMENT ON TABLE infra.resource_type IS 'Every resource table: what AWS calls it and whether it holds data (from the resource descriptions, written at start-up)';
COMMENT ON COLUMN infra.resource_type.table_name IS 'The resource table, schema-qualified (aws.vpc)';
COMMENT ON COLUMN infra.resource_type.display IS 'What AWS calls the type (VPC, DB instance)';
COMMENT ON COLUMN infra.resource_type.holds_data IS 'What a deleted resource of this type loses for good (its data), NULL when it holds none; a replace of it needs infra.allow_replace';

-- The sets of references kept in join tables (kind member_set), which
-- infra.resource_column leaves out because they are not columns of the
-- resource's own table.
CREATE TABLE infra.resource_set (
    table_name       text NOT NULL,
    column_name      text NOT NULL,
    join_table       text NOT NULL,
    owner_column     text NOT NULL,
    member_column    text NOT NULL,
    references_table text NOT NULL,
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE infra.resource_set IS 'Every set of references a resource keeps in a join table (from the resource descriptions, written at start-up)';
COMMENT ON COLUMN infra.resource_set.table_name IS 'The owning resource table, schema-qualified (aws.instance)';
COMMENT ON COLUMN infra.resource_set.column_name IS 'The set''s name as the plan and the journal show it (security_group_ids)';
COMMENT ON COLUMN infra.resource_set.join_table IS 'The join table, schema-qualified (aws.instance_security_group)';
COMMENT ON COLUMN infra.resource_set.owner_column IS 'The join table''s column holding the owner''s AWS id';
COMMENT ON COLUMN infra.resource_set.member_column IS 'The join table''s column holding a member''s AWS id';
COMMENT ON COLUMN infra.resource_set.references_table IS 'The members'' resource table, schema-qualified';

-- A guard a script carries at its top: it fails unless the session opted
-- in. Read with PostgreSQL's boolean spellings, as the engine reads
-- infra.allow_replace; unset or unreadable means off (fail closed).
CREATE FUNCTION infra.require_setting(setting text, message text, detail text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    v boolean;
BEGIN
    BEGIN
        v := coalesce(nullif(current_setting(setting, true), ''), 'off')::boolean;
    EXCEPTION WHEN invalid_text_representation THEN
        v := false;
    END;
    IF NOT v THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = message, DETAIL = detail,
            HINT = format('SET %s = on in this session, then run it again.', setting);
    END IF;
END
$$;
COMMENT ON FUNCTION infra.require_setting(text, text, text) IS 'Raise 55000 with the given message unless the session set the boolean setting on (the opt-in guard of a revert script)';

-- A jsonb value as the literal text of the table's column type, so the
-- script writes '{a,b}' for a text[] and '{"k": "v"}' for a jsonb alike,
-- and format's %L quotes it.
CREATE FUNCTION infra.revert_literal(tbl text, col text, v jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
    t text;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        RETURN 'NULL';
    END IF;
    EXECUTE format('SELECT (jsonb_populate_record(NULL::%s, $1)).%I::text', tbl, col)
        INTO t USING jsonb_build_object(col, v);
    -- Numbers and booleans read better bare; only what is surely one.
    IF jsonb_typeof(v) IN ('number', 'boolean') AND t ~ '^(-?[0-9]+(\.[0-9]+)?|true|false)$' THEN
        RETURN t;
    END IF;
    RETURN format('%L', t);
END
$$;
COMMENT ON FUNCTION infra.revert_literal(text, text, jsonb) IS 'A journaled value as a quoted SQL literal of its column''s type (used by infra.revert)';

-- A value with the ids of resources this revert creates again swapped for
-- their new provisional ids: a string, or each string of an array.
CREATE FUNCTION infra.revert_map_ids(v jsonb, ids jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN coalesce(ids -> (v #>> '{}'), v)
        WHEN 'array' THEN (SELECT coalesce(jsonb_agg(coalesce(ids -> (e #>> '{}'), e) ORDER BY n), '[]')
                             FROM jsonb_array_elements(v) WITH ORDINALITY AS x(e, n))
        ELSE v
    END
$$;
COMMENT ON FUNCTION infra.revert_map_ids(jsonb, jsonb) IS 'Swap old ids for the provisional ids of resources a revert creates again (used by infra.revert)';

-- The SQL that undoes a succeeded apply, its steps in reverse order:
-- - a create becomes a DELETE of the resource it made;
-- - a delete becomes an INSERT of the recorded user-writable columns
--   (name, desired, replace-on-change; never cloud-assigned ones, and
--   write-only ones were never recorded), with its set's join rows. The new
--   resource gets a new id: an identity-kind row is given a provisional id
--   in the script, so the rows this revert creates again that referenced
--   the old id (a subnet of a re-created VPC, a join row naming a
--   re-created group) name the new one. A name-kind id (RDS) comes back
--   as it was. Reverse order puts parents before children.
-- - an update, and the create half of a replace, become an UPDATE of the
--   columns that changed back to their old values (an UPDATE of a
--   replace-forcing column replaces the resource again), and join-row
--   DELETEs/INSERTs for a set that changed. The delete half of a replace
--   needs nothing of its own.
-- Refused (55000) unless the apply succeeded (`applied` with its
-- transaction committed counts), and when a later settled
-- apply touched one of its resources: undoing over it would undo that one
-- too, unannounced.
-- VOLATILE: each call draws new provisional ids.
CREATE FUNCTION infra.revert(apply_id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    a       record;
    later   record;
    s       record;
    c       record;
    m       record;
    ids     jsonb := '{}';
    body    text[] := '{}';
    lost    text[] := '{}';
    head    text[];
    sch     text;
    tbl     text;
    idc     text;
    label   text;
    cols    text[];
    vals    text[];
    sets    text[];
    v       jsonb;
    b       jsonb;
    n       jsonb;
    wo      text[];
BEGIN
    SELECT x.* INTO a FROM infra.apply x WHERE x.apply_id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('apply %s does not exist', $1),
            HINT = 'The ids are in infra.apply, and in the first NOTICE of the COMMIT that applied it.';
    END IF;
    -- `applied` whose transaction committed has succeeded: recovery only
    -- has not written it down yet (it does within seconds).
    IF a.status = 'applied' AND NOT infra.unsettled(a.status, a.xid) THEN
        a.status := 'succeeded';
    END IF;
    IF a.status <> 'succeeded' THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('apply %s cannot be reverted: its status is %s', $1, a.status),
            DETAIL = CASE a.status
                WHEN 'failed' THEN 'A failed apply was undone already; nothing of it stayed in AWS.'
                WHEN 'recovered' THEN 'Recovery already made AWS equal the rows as committed.'
                ELSE 'It is not settled yet: its changes may still be applied or undone.' END,
            HINT = 'Only a succeeded apply can be reverted.';
    END IF;

    SELECT la.apply_id, la.started_at, l.table_name, l.resource_id INTO later
      FROM infra.apply_action mine
      JOIN infra.apply_action l ON l.table_name = mine.table_name AND l.resource_id = mine.resource_id
      JOIN infra.apply la ON la.apply_id = l.apply_id
     WHERE mine.apply_id = a.apply_id AND la.apply_id <> a.apply_id
       AND la.started_at > a.started_at AND la.status IN ('succeeded', 'applied')
     ORDER BY la.started_at LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('apply %s cannot be reverted: the later apply %s changed %s %s too',
                             a.apply_id, later.apply_id, later.table_name, later.resource_id),
            DETAIL = format('Apply %s started at %s. Undoing %s would undo part of it as well.',
                            later.apply_id, later.started_at, a.apply_id),
            HINT = format('Revert %s first (SELECT infra.revert(%L)), or change the rows by hand.',
                          later.apply_id, later.apply_id);
    END IF;

    -- New provisional ids for the identity-kind resources the apply deleted.
    FOR s IN SELECT x.table_name, x.resource_id, t.display
               FROM infra.apply_action x
               JOIN infra.resource_column k ON k.table_name = x.table_name AND k.kind = 'identity'
               LEFT JOIN infra.resource_type t ON t.table_name = x.table_name
              WHERE x.apply_id = a.apply_id AND x.action = 'delete' AND x.status = 'done' LOOP
        ids := ids || jsonb_build_object(s.resource_id,
            'pending-' || split_part(s.table_name, '.', 2) || '-'
            || substr(replace(gen_random_uuid()::text, '-', ''), 1, 17));
    END LOOP;

    FOR s IN SELECT x.step, x.action, x.table_name, x.resource_id, x.before, x.after,
                    t.display, t.holds_data
               FROM infra.apply_action x
               LEFT JOIN infra.resource_type t ON t.table_name = x.table_name
              WHERE x.apply_id = a.apply_id AND x.status = 'done'
              ORDER BY x.step DESC LOOP
        sch := split_part(s.table_name, '.', 1);
        tbl := format('%I.%I', sch, split_part(s.table_name, '.', 2));
        SELECT k.column_name INTO idc FROM infra.resource_column k
         WHERE k.table_name = s.table_name AND k.kind IN ('identity', 'name');
        IF idc IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = '55000',
                MESSAGE = format('apply %s cannot be reverted: %s is not a resource table infrasql manages now', a.apply_id, s.table_name);
        END IF;
        b := coalesce(s.before, '{}');
        label := format('%s %s', coalesce(s.display, s.table_name),
                        coalesce(nullif(coalesce(s.before, s.after) ->> 'name', '') || ' (' || s.resource_id || ')',
                                 s.resource_id));
        -- A name is the user's text: a line break in it would end the
        -- comment and make the rest of the name a statement.
        label := regexp_replace(label, '[\r\n]+', ' ', 'g');
        IF s.action = 'create' THEN
            body := body || format('-- step %s created %s', s.step, label)
                         || format('DELETE FROM %s WHERE %I = %L;', tbl, idc, s.resource_id);
        ELSIF s.action = 'delete' THEN
            cols := '{}';
            vals := '{}';
            IF ids ? s.resource_id THEN
                cols := cols || quote_ident(idc);
                vals := vals || quote_literal(ids ->> s.resource_id);
            END IF;
            FOR c IN SELECT k.column_name, k.references_table IS NOT NULL AS refers
                       FROM infra.resource_column k
                      WHERE k.table_name = s.table_name AND k.kind IN ('name', 'desired', 'replace')
                      ORDER BY k.column_name = idc DESC, k.column_name LOOP
                CONTINUE WHEN NOT b ? c.column_name;
                v := b -> c.column_name;
                IF c.refers THEN
                    v := infra.revert_map_ids(v, ids);
                END IF;
                cols := cols || quote_ident(c.column_name);
                vals := vals || infra.revert_literal(tbl, c.column_name, v);
            END LOOP;
            body := body || format('-- step %s deleted %s; it comes back as a new resource%s', s.step, label,
                                   CASE WHEN ids ? s.resource_id THEN ' under a new id' ELSE ' with the same name' END)
                         || format('INSERT INTO %s (%s) VALUES (%s);', tbl,
                                   array_to_string(cols, ', '), array_to_string(vals, ', '));
            FOR m IN SELECT r.* FROM infra.resource_set r WHERE r.table_name = s.table_name
                      ORDER BY r.column_name LOOP
                v := infra.revert_map_ids(b -> m.column_name, ids);
                CONTINUE WHEN v IS NULL OR jsonb_typeof(v) <> 'array' OR v = '[]';
                body := body || format('INSERT INTO %I.%I (%I, %I) VALUES %s;',
                    split_part(m.join_table, '.', 1), split_part(m.join_table, '.', 2),
                    m.owner_column, m.member_column,
                    (SELECT string_agg(format('(%L, %L)', coalesce(ids ->> s.resource_id, s.resource_id), e), ', ' ORDER BY e)
                       FROM jsonb_array_elements_text(v) e));
            END LOOP;
            IF s.holds_data IS NOT NULL THEN
                lost := lost || format('--   %s comes back empty: %s does not come back%s.', label, s.holds_data,
                    CASE WHEN b ->> 'final_snapshot_identifier' IS NOT NULL
                         THEN format(' (its final snapshot %s may hold it)',
                                     regexp_replace(b ->> 'final_snapshot_identifier', '[\r\n]+', ' ', 'g'))
                         ELSE '' END);
            END IF;
            wo := infra.write_only_columns(s.table_name);
            IF wo <> '{}' THEN
                lost := lost || format('--   %s: %s %s write-only and never recorded; set %s in this transaction before COMMIT if it needs %s (UPDATE %s SET %s = ''...'' WHERE %I = %L).',
                    label, array_to_string(wo, ', '), CASE WHEN cardinality(wo) = 1 THEN 'is' ELSE 'are' END,
                    CASE WHEN cardinality(wo) = 1 THEN 'it' ELSE 'them' END,
                    CASE WHEN cardinality(wo) = 1 THEN 'it' ELSE 'them' END,
                    tbl, wo[1], idc, coalesce(ids ->> s.resource_id, s.resource_id));
            END IF;
        ELSIF s.action IN ('update', 'replace-create') THEN
            n := coalesce(s.after, '{}');
            cols := '{}';
            -- Only what both images hold: a column the cloud's answer does
            -- not report (a VPC's DNS attributes) cannot be compared. The
            -- after image is AWS's answer, so a value AWS normalised
            -- (an engine version) may read as changed and be set back.
            FOR c IN SELECT k.column_name, k.references_table IS NOT NULL AS refers
                       FROM infra.resource_column k
                      WHERE k.table_name = s.table_name AND k.kind IN ('name', 'desired', 'replace')
                      ORDER BY k.column_name LOOP
                CONTINUE WHEN NOT (b ? c.column_name AND n ? c.column_name)
                           OR b -> c.column_name = n -> c.column_name;
                v := b -> c.column_name;
                IF c.refers THEN
                    v := infra.revert_map_ids(v, ids);
                END IF;
                cols := cols || format('%I = %s', c.column_name, infra.revert_literal(tbl, c.column_name, v));
            END LOOP;
            sets := '{}';
            FOR m IN SELECT r.* FROM infra.resource_set r WHERE r.table_name = s.table_name
                      ORDER BY r.column_name LOOP
                CONTINUE WHEN jsonb_typeof(b -> m.column_name) IS DISTINCT FROM 'array'
                           OR jsonb_typeof(n -> m.column_name) IS DISTINCT FROM 'array';
                -- Members the apply added go; members it removed come back
                -- (under their new id if this revert creates them again).
                sets := sets || (SELECT array_agg(format('DELETE FROM %I.%I WHERE %I = %L AND %I = %L;',
                                     split_part(m.join_table, '.', 1), split_part(m.join_table, '.', 2),
                                     m.owner_column, s.resource_id, m.member_column, e) ORDER BY e)
                                   FROM jsonb_array_elements_text(n -> m.column_name) e
                                  WHERE NOT (b -> m.column_name) ? e);
                sets := sets || (SELECT array_agg(format('INSERT INTO %I.%I (%I, %I) VALUES (%L, %L);',
                                     split_part(m.join_table, '.', 1), split_part(m.join_table, '.', 2),
                                     m.owner_column, m.member_column, s.resource_id,
                                     coalesce(ids ->> e, e)) ORDER BY e)
                                   FROM jsonb_array_elements_text(b -> m.column_name) e
                                  WHERE NOT (n -> m.column_name) ? e);
            END LOOP;
            sets := array_remove(sets, NULL);
            IF cols <> '{}' OR sets <> '{}' THEN
                body := body || format('-- step %s %s %s', s.step,
                                       CASE s.action WHEN 'update' THEN 'updated' ELSE 'replaced' END, label);
                IF cols <> '{}' THEN
                    body := body || format('UPDATE %s SET %s WHERE %I = %L;', tbl,
                                           array_to_string(cols, ', '), idc, s.resource_id);
                END IF;
                body := body || sets;
            END IF;
        END IF;
    END LOOP;

    head := ARRAY[regexp_replace(format('-- Undoes apply %s (%s, %s by %s).', a.apply_id, a.source, a.started_at, a.username),
                                 '[\r\n]+', ' ', 'g'),
                  '-- Run it in one transaction: the source setting below is local to it.'];
    IF lost <> '{}' THEN
        head := head || '-- What does not come back:'::text || lost
                     || '-- So it runs only with SET infra.allow_replace = on (the opt-in a replace that destroys data needs).'::text;
    END IF;
    head := head || format('SELECT set_config(''infra.apply_source'', %L, true);', 'revert ' || a.apply_id);
    IF lost <> '{}' THEN
        head := head || format('SELECT infra.require_setting(''infra.allow_replace'', %L, %L);',
            format('reverting apply %s cannot bring back everything it deleted', a.apply_id),
            'A deleted resource comes back empty, and write-only values were never recorded (see the comments at the top of the script).');
    END IF;
    RETURN array_to_string(head || body, E'\n') || E'\n';
END
$$;
COMMENT ON FUNCTION infra.revert(text) IS 'The SQL that undoes a succeeded apply (deletes what it created, re-creates what it deleted, sets back what it updated); refused when a later apply changed the same resources';
GRANT EXECUTE ON FUNCTION infra.revert(text) TO PUBLIC;
