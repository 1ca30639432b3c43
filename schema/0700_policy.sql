-- Policies as SQL (issue #11). A policy is a query that returns offending
-- rows; COMMIT runs every policy inside the client's transaction, before
-- any AWS call (src/engine/commit/policy.rs). The policies themselves are
-- read on the engine's own connection, so a transaction is judged by the
-- policies committed before it, never by its own edits of this table.
CREATE TABLE infra.policy (
    name     text PRIMARY KEY CHECK (name <> ''),
    query    text NOT NULL,
    message  text NOT NULL,
    severity text NOT NULL DEFAULT 'deny' CHECK (severity IN ('deny', 'warn'))
);
COMMENT ON TABLE infra.policy IS 'Policies as SQL: each query returns the rows that break the policy; COMMIT refuses (deny) or warns about (warn) changes that do';
COMMENT ON COLUMN infra.policy.name IS 'The policy''s name, shown in its error or notice';
COMMENT ON COLUMN infra.policy.query IS 'A SELECT returning the offending rows; it must have a column resource_id naming the resource (its AWS id, e.g. security_group_rule_id). It sees the transaction''s rows, including infra.plan';
COMMENT ON COLUMN infra.policy.message IS 'What the policy asks for, shown to the user';
COMMENT ON COLUMN infra.policy.severity IS 'deny: refuse a COMMIT that creates, changes or deletes an offending resource; warn: a NOTICE';
-- Until roles exist every user may write policies.
GRANT SELECT, INSERT, UPDATE, DELETE ON infra.policy TO PUBLIC;

-- Every current violation of every policy, across the whole inventory.
-- SECURITY INVOKER: a policy query runs with the rights of whoever reads the
-- view. A policy whose query fails does not break the view: it shows as one
-- row with the error and no resource.
CREATE FUNCTION infra.policy_violations()
RETURNS TABLE (policy text, severity text, message text, resource_id text, offending jsonb, error text)
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM infra.policy ORDER BY name LOOP
        BEGIN
            RETURN QUERY EXECUTE format(
                E'SELECT %L::text, %L::text, %L::text, q.resource_id::text, to_jsonb(q), NULL::text FROM (%s\n) AS q',
                p.name, p.severity, p.message, rtrim(p.query, E'; \t\n\r'));
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT p.name, p.severity, p.message, NULL::text, NULL::jsonb, SQLERRM;
        END;
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION infra.policy_violations() TO PUBLIC;

CREATE VIEW infra.policy_violation AS SELECT * FROM infra.policy_violations();
COMMENT ON VIEW infra.policy_violation IS 'Every current violation of every policy across the whole inventory (a compliance dashboard)';
COMMENT ON COLUMN infra.policy_violation.policy IS 'The policy''s name';
COMMENT ON COLUMN infra.policy_violation.severity IS 'deny or warn';
COMMENT ON COLUMN infra.policy_violation.message IS 'The policy''s message';
COMMENT ON COLUMN infra.policy_violation.resource_id IS 'The offending resource (the query''s resource_id column); NULL when the query failed';
COMMENT ON COLUMN infra.policy_violation.offending IS 'The offending row as the policy''s query returned it';
COMMENT ON COLUMN infra.policy_violation.error IS 'Why the policy''s query failed; NULL when it ran';
GRANT SELECT ON infra.policy_violation TO PUBLIC;
