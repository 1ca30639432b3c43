-- Recovery that never loses a committed change, and settings that fail closed.

-- An apply whose undo failed is not finished: `undoing` is retried by
-- recovery with backoff until the cloud equals the rows again; `attention`
-- is an undo that needs a person (denied, invalid, or many failed tries) and
-- is still retried, slowly.
ALTER TABLE infra.apply DROP CONSTRAINT apply_status_check;
ALTER TABLE infra.apply ADD CONSTRAINT apply_status_check
    CHECK (status IN ('running', 'applied', 'succeeded', 'failed', 'recovered', 'undoing', 'attention'));
ALTER TABLE infra.apply
    ADD COLUMN attempts        int NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz;
COMMENT ON COLUMN infra.apply.status IS
    'running: calling AWS; applied: cloud matches, waiting for the COMMIT; succeeded: committed; '
    'failed: refused and undone; undoing: refused, and part of the undo is still being retried; '
    'attention: an undo that needs a person; recovered: the COMMIT or process was lost and recovery '
    'made the cloud equal the rows as committed';
COMMENT ON COLUMN infra.apply.attempts IS 'How many times recovery has tried to settle this apply';
COMMENT ON COLUMN infra.apply.next_attempt_at IS 'When recovery tries again (backoff)';
CREATE INDEX apply_unsettled ON infra.apply (started_at)
    WHERE status IN ('running', 'applied', 'undoing', 'attention');

-- `kept`: a delete AWS carried out whose COMMIT failed. A delete cannot be
-- taken back (an empty database is not the database), so recovery removes
-- the row instead of re-creating the resource.
ALTER TABLE infra.apply_action DROP CONSTRAINT apply_action_status_check;
ALTER TABLE infra.apply_action ADD CONSTRAINT apply_action_status_check
    CHECK (status IN ('started', 'done', 'failed', 'undone', 'undo_failed', 'kept'));

-- The wire turns `SET infra.x = <bad value>` into a call of this, so the
-- error is raised by the backend and the transaction state stays right.
CREATE FUNCTION infra.refuse_setting(code text, message text, hint text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, HINT = hint;
END
$$;

-- Defaults, so that SHOW answers before any SET. An external database the
-- engine role does not own keeps working without them: unset means off.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.dry_run = off', current_database());
    EXECUTE format('ALTER DATABASE %I SET infra.allow_replace = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'infrasql: cannot set the infra.* defaults on this database: %', SQLERRM;
END
$$;

-- An apply whose outcome is not settled yet: still calling AWS, undoing,
-- or applied while its COMMIT is in flight or failed and recovery has not
-- made the cloud equal the committed rows. The sync loop leaves the
-- resources of such applies alone, so a refused COMMIT never takes effect.
CREATE FUNCTION infra.unsettled(status text, x xid8) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT status IN ('running', 'undoing', 'attention')
        OR (status = 'applied' AND coalesce(pg_xact_status(x)::text, 'aborted') <> 'committed')
$$;

-- Once a person has fixed what an `attention` apply needs (permissions, a
-- dependency in the console), recovery tries again at once instead of at
-- its slowest pace. Returns the apply's status, or NULL if it has nothing
-- left to undo.
CREATE FUNCTION infra.retry_undo(apply_id text) RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    UPDATE infra.apply SET next_attempt_at = now()
    WHERE infra.apply.apply_id = $1 AND status IN ('undoing', 'attention')
    RETURNING status;
$$;

COMMENT ON FUNCTION infra.refuse_setting(text, text, text) IS 'Raises the error for a SET infra.* that infrasql refuses (the wire calls it in place of the SET)';
COMMENT ON FUNCTION infra.unsettled(text, xid8) IS 'Whether an apply is not settled yet: its resources belong to recovery, not to sync';
COMMENT ON FUNCTION infra.retry_undo(text) IS 'Retry the undo of an undoing or attention apply now, after a person fixed its cause';
