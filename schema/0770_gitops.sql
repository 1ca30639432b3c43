-- The GitOps agent (issue #12, src/gitops): what it needs beyond 0760.
--   - status `waiting`: a revision whose prune would remove more than the
--     stack's max_prune_share waits for `infra.stack_confirm(name)`;
--   - pending_revision: the revision the agent last tried (failed) or
--     holds back (waiting), so a failed stack is retried on a new commit
--     at once but not in a tight loop on the same one;
--   - infra.stack_drop: forget a stack that has no resources left;
--   - a stack scope on infra.drift_policy, for self_heal.

ALTER TABLE infra.stack_state DROP CONSTRAINT stack_state_status_check;
ALTER TABLE infra.stack_state ADD CONSTRAINT stack_state_status_check
    CHECK (status IN ('synced', 'out_of_sync', 'failed', 'waiting'));
ALTER TABLE infra.stack_state ADD COLUMN pending_revision text;
ALTER TABLE infra.stack_state ADD COLUMN confirmed_revision text;
COMMENT ON COLUMN infra.stack_state.status IS 'synced (declaration applied), out_of_sync (declaration or rows changed since), failed (see error) or waiting (a large prune waits for infra.stack_confirm)';
COMMENT ON COLUMN infra.stack_state.pending_revision IS 'The git commit the agent last tried and could not apply (failed), or holds back (waiting)';
COMMENT ON COLUMN infra.stack_state.confirmed_revision IS 'The pending commit infra.stack_confirm allowed to prune';

-- A finished run clears what was pending.
CREATE FUNCTION infra.stack_settled() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.status = 'synced' AND OLD.status IS DISTINCT FROM 'synced' THEN
        NEW.pending_revision := NULL;
        NEW.confirmed_revision := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER infrasql_settled BEFORE UPDATE ON infra.stack_state
    FOR EACH ROW EXECUTE FUNCTION infra.stack_settled();

-- The first failure backs off too (0760 set next_attempt_at only from the
-- second on, so the agent retried a new failing stack every round).
CREATE OR REPLACE FUNCTION infra.stack_failed(name text, error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    INSERT INTO infra.stack_state (name, status, error, failures, next_attempt_at)
    VALUES (name, 'failed', error, 1, now() + interval '30 seconds')
    ON CONFLICT (name) DO UPDATE SET status = 'failed', error = excluded.error,
        failures = infra.stack_state.failures + 1,
        next_attempt_at = now() + least(interval '1 hour', interval '30 seconds' * power(2, infra.stack_state.failures));
$$;

-- A failed apply of a known revision (the agent's): as stack_failed, and
-- the revision is remembered so the same commit is retried only after
-- the backoff.
CREATE FUNCTION infra.stack_failed(name text, error text, revision text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT infra.stack_failed(name, error);
    UPDATE infra.stack_state SET pending_revision = stack_failed.revision WHERE stack_state.name = stack_failed.name;
$$;
GRANT EXECUTE ON FUNCTION infra.stack_failed(text, text, text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_failed(text, text, text) IS 'Record that applying the stack at this git revision failed (the agent retries with backoff, or at once on a new revision)';

-- A revision whose prune is larger than the stack allows: nothing was
-- applied; it waits for a person.
CREATE FUNCTION infra.stack_wait(name text, revision text, error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    INSERT INTO infra.stack_state (name, status, error, pending_revision)
    VALUES (name, 'waiting', error, revision)
    ON CONFLICT (name) DO UPDATE SET status = 'waiting', error = excluded.error,
        pending_revision = excluded.pending_revision,
        confirmed_revision = CASE WHEN infra.stack_state.pending_revision = excluded.pending_revision
                                  THEN infra.stack_state.confirmed_revision END;
$$;
GRANT EXECUTE ON FUNCTION infra.stack_wait(text, text, text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_wait(text, text, text) IS 'Hold a stack''s git revision back: its prune needs infra.stack_confirm';

CREATE FUNCTION infra.stack_confirm(name text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    rev text;
BEGIN
    UPDATE infra.stack_state s SET confirmed_revision = s.pending_revision
    WHERE s.name = stack_confirm.name AND s.status = 'waiting'
    RETURNING s.pending_revision INTO rev;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stack % is not waiting for confirmation', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = '55000',
                  DETAIL = coalesce((SELECT format('Its status is %s.', status) FROM infra.stack_state s
                                     WHERE s.name = stack_confirm.name), 'There is no such stack.'),
                  HINT = 'SELECT name, status, error FROM infra.stack shows what each stack waits for.';
    END IF;
    RETURN rev;
END
$$;
GRANT EXECUTE ON FUNCTION infra.stack_confirm(text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_confirm(text) IS 'Let the git revision a stack waits on prune what it no longer declares; the agent applies it on its next round. Returns that revision';

-- Forget a stack. Its resources must be gone first (a stack run with no
-- declarations prunes them), so dropping never strands a resource.
CREATE FUNCTION infra.stack_drop(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM infra.stack_state s WHERE s.name = stack_drop.name) THEN
        RAISE EXCEPTION 'stack % does not exist', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = '42704';
    END IF;
    n := infra.stack_size(name);
    IF n > 0 THEN
        RAISE EXCEPTION 'stack % still has % resource(s)', name, n
            USING ERRCODE = '2BP01',
                  HINT = 'Delete them first: infrasql stack delete NAME, or delete = true in its stack.toml.';
    END IF;
    DELETE FROM infra.drift_policy p WHERE p.stack = stack_drop.name;
    DELETE FROM infra.stack_state s WHERE s.name = stack_drop.name;
END
$$;
GRANT EXECUTE ON FUNCTION infra.stack_drop(text) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_drop(text) IS 'Forget a stack with no resources left (refuses while any remain)';

-- Drift policy per stack: a row with `stack` set applies to that stack's
-- resources and wins over tag and table rows.
ALTER TABLE infra.drift_policy ADD COLUMN stack text NOT NULL DEFAULT '';
ALTER TABLE infra.drift_policy DROP CONSTRAINT drift_policy_pkey;
ALTER TABLE infra.drift_policy ADD PRIMARY KEY (table_name, stack, tag_key, tag_value);
COMMENT ON COLUMN infra.drift_policy.stack IS 'Only resources of this stack ('''' for any); wins over tag and table rows';

-- The agent's self_heal: revert (AWS is set back to the stack's rows) or
-- report (drift stays open, the stack shows drifted) on every table.
CREATE FUNCTION infra.stack_heal(name text, self_heal boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    INSERT INTO infra.drift_policy (table_name, stack, policy)
    SELECT DISTINCT table_name, stack_heal.name, CASE WHEN stack_heal.self_heal THEN 'revert' ELSE 'report' END
    FROM infra.resource_column
    ON CONFLICT (table_name, stack, tag_key, tag_value) DO UPDATE SET policy = excluded.policy
    WHERE infra.drift_policy.policy IS DISTINCT FROM excluded.policy;
$$;
GRANT EXECUTE ON FUNCTION infra.stack_heal(text, boolean) TO PUBLIC;
COMMENT ON FUNCTION infra.stack_heal(text, boolean) IS 'Set the drift policy of a stack''s resources: revert (self_heal) or report';

CREATE OR REPLACE VIEW infra.stack AS
    SELECT s.name, s.source, s.revision, s.author, s.applied_at,
           CASE WHEN s.status <> 'synced' THEN s.status
                WHEN infra.stack_drift(s.name) > 0 THEN 'drifted'
                ELSE 'synced' END AS status,
           s.error, infra.stack_size(s.name) AS resources, infra.stack_drift(s.name) AS open_drift,
           s.next_attempt_at, s.pending_revision
    FROM infra.stack_state s;
COMMENT ON COLUMN infra.stack.status IS 'synced: rows equal the declaration and AWS equals the rows; out_of_sync: the declaration or the rows changed since; drifted: open drift on its resources; failed: see error; waiting: a large prune waits for infra.stack_confirm';
COMMENT ON COLUMN infra.stack.pending_revision IS 'The git commit that failed or waits for confirmation';
