-- Stopping an apply under way: `SELECT infra.cancel_apply(id)` from another
-- session, and the defaults of the settings that steer a COMMIT's wait.

ALTER TABLE infra.apply ADD COLUMN cancel_requested_at timestamptz;
COMMENT ON COLUMN infra.apply.cancel_requested_at IS 'When infra.cancel_apply() asked the running apply to stop; the apply polls it, stops, undoes what it did and its COMMIT fails with 57014';

-- The apply's own role (the session user that ran the COMMIT) or a
-- superuser may cancel it. The apply reads the mark within half a second.
-- Returns true if the apply was running and is now asked to stop, false if
-- it had already ended.
CREATE FUNCTION infra.cancel_apply(apply_id text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    a record;
BEGIN
    SELECT x.status, x.username INTO a FROM infra.apply x WHERE x.apply_id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('apply %s does not exist', $1),
            HINT = 'The ids of running applies are in infra.apply (status running) and in the COMMIT''s first NOTICE.';
    END IF;
    IF a.username <> session_user
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('permission denied to cancel apply %s', $1),
            DETAIL = format('The apply belongs to role %s; only that role or a superuser may cancel it.', a.username);
    END IF;
    IF a.status <> 'running' THEN
        RETURN false;
    END IF;
    UPDATE infra.apply x SET cancel_requested_at = now()
    WHERE x.apply_id = $1 AND x.cancel_requested_at IS NULL;
    RETURN true;
END
$$;
COMMENT ON FUNCTION infra.cancel_apply(text) IS 'Stop a running apply (its own role or a superuser): what it did is undone and its COMMIT fails with 57014';

DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.wait = ready', current_database());
    EXECUTE format('ALTER DATABASE %I SET infra.apply_timeout = ''0''', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'infrasql: cannot set the infra.* defaults on this database: %', SQLERRM;
END
$$;
