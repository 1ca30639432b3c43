-- Apply history (issue #11): who committed and from where, the plan's
-- summary, where the change came from, AWS's request ids and each action's
-- duration. Changes to infra.policy are journaled like any other change.

ALTER TABLE infra.apply
    ADD COLUMN client_addr      inet,
    ADD COLUMN application_name text,
    ADD COLUMN creates          int,
    ADD COLUMN updates          int,
    ADD COLUMN replaces         int,
    ADD COLUMN deletes          int;
COMMENT ON COLUMN infra.apply.client_addr IS 'The client''s address as infrasql saw the connection (the database itself only sees infrasql); NULL for the sync loop, and for infra.policy changes';
COMMENT ON COLUMN infra.apply.application_name IS 'The client''s application_name (set at connect or by SET); NULL for the sync loop';
COMMENT ON COLUMN infra.apply.creates IS 'Resources the plan creates (NULL for applies recorded before 0720)';
COMMENT ON COLUMN infra.apply.updates IS 'Resources the plan updates in place';
COMMENT ON COLUMN infra.apply.replaces IS 'Resources the plan replaces (one per replace, whatever its halves)';
COMMENT ON COLUMN infra.apply.deletes IS 'Resources the plan deletes';

-- The sync loop's drift reverts were `sync`; the name now says what they do.
UPDATE infra.apply SET source = 'sync-revert' WHERE source = 'sync';
COMMENT ON COLUMN infra.apply.source IS
    'Where the change came from: commit (a user''s COMMIT), sync-revert (the sync loop putting back drift under a revert policy), '
    'migration <file>, revert <apply id> or stack <name>[@<git commit>] (the client set infra.apply_source in its transaction)';

ALTER TABLE infra.apply_action
    ADD COLUMN request_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN duration    interval GENERATED ALWAYS AS (finished_at - started_at) STORED;
COMMENT ON COLUMN infra.apply_action.request_ids IS 'AWS''s request ids of the calls the action (and its undo) made, retries included; not the readiness polls';
COMMENT ON COLUMN infra.apply_action.duration IS 'How long the action took (finished_at - started_at)';

-- Retention (`infrasql serve --history-retention`) deletes settled applies
-- by age.
CREATE INDEX apply_settled_finished ON infra.apply (finished_at)
    WHERE status IN ('succeeded', 'failed', 'recovered');

-- Default, so that SHOW answers before any SET. Empty means `commit`.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.apply_source = ''''', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'infrasql: cannot set the infra.* defaults on this database: %', SQLERRM;
END
$$;

-- The source a transaction declared, checked as the engine checks it at
-- COMMIT (src/engine/settings.rs): a value that is none of these fails
-- closed, never silently becomes `commit`.
CREATE FUNCTION infra.apply_source() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
    v text := coalesce(current_setting('infra.apply_source', true), '');
BEGIN
    IF v = '' THEN
        RETURN 'commit';
    ELSIF v ~ '^migration .*\S' OR v ~ '^revert apply-[0-9a-f]+$'
          OR v ~ '^stack [A-Za-z0-9][A-Za-z0-9._-]*(@[0-9a-fA-F]+)?$' THEN
        RETURN v;
    END IF;
    RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = format('invalid value for parameter "infra.apply_source": "%s"', v),
        DETAIL = 'Nothing was applied.',
        HINT = 'infra.apply_source takes ''migration <file name>'', ''revert apply-<id>'', ''stack <name>[@<git commit>]'' or an empty string (a plain commit).';
END
$$;
COMMENT ON FUNCTION infra.apply_source() IS 'The transaction''s infra.apply_source as infra.apply.source records it (empty is commit); 22023 for a value that is not a source';

-- Changes to infra.policy, journaled in the client's own transaction: they
-- commit or roll back with the change. One apply per transaction (its id in
-- a transaction-local setting), one action per changed policy.
CREATE FUNCTION infra.journal_policy() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    id     text := nullif(current_setting('infrasql.policy_apply', true), '');
    act    text := CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END;
    before jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    after  jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    n      int;
BEGIN
    IF before IS NOT DISTINCT FROM after THEN
        RETURN NULL;
    END IF;
    -- The setting is only a hint: an apply of another transaction (a
    -- setting the client forged) is never written to.
    IF id IS NULL OR NOT EXISTS (SELECT 1 FROM infra.apply a
                                 WHERE a.apply_id = id AND a.xid = pg_current_xact_id()) THEN
        id := 'apply-' || left(replace(gen_random_uuid()::text, '-', ''), 16);
        INSERT INTO infra.apply (apply_id, status, finished_at, xid, username, source, actions,
                                 application_name, creates, updates, replaces, deletes)
        VALUES (id, 'succeeded', now(), pg_current_xact_id(), session_user, infra.apply_source(), 0,
                current_setting('application_name', true), 0, 0, 0, 0);
        PERFORM set_config('infrasql.policy_apply', id, true);
    END IF;
    UPDATE infra.apply a SET actions = a.actions + 1,
        creates = a.creates + (act = 'create')::int,
        updates = a.updates + (act = 'update')::int,
        deletes = a.deletes + (act = 'delete')::int
    WHERE a.apply_id = id RETURNING a.actions INTO n;
    INSERT INTO infra.apply_action (apply_id, step, action, table_name, resource_id, region, status,
                                    finished_at, before, after)
    VALUES (id, n, act, 'infra.policy', coalesce(after, before) ->> 'name', '-', 'done', now(), before, after);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION infra.journal_policy() IS 'Journals a change to infra.policy in infra.apply / infra.apply_action, in the changing transaction';
CREATE TRIGGER infrasql_journal AFTER INSERT OR UPDATE OR DELETE ON infra.policy
    FOR EACH ROW EXECUTE FUNCTION infra.journal_policy();
