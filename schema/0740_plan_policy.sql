-- What the policies say of the current transaction's plan, filled in by
-- infrasql together with infra.plan when a statement reads infra.plan
-- (src/engine/commit.rs, before_plan_read). The policies are the committed
-- ones, exactly as COMMIT will judge the transaction; `infrasql plan`
-- shows them and exits 1 on a deny.
CREATE TABLE infra.plan_policy_result (
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ord         int NOT NULL,
    policy      text NOT NULL,
    severity    text NOT NULL,
    message     text NOT NULL,
    resource_id text,
    offending   jsonb,
    error       text,
    PRIMARY KEY (xid, ord)
);
REVOKE ALL ON infra.plan_policy_result FROM PUBLIC;
COMMENT ON TABLE infra.plan_policy_result IS 'Storage of infra.plan_policy: the policy verdicts of each open transaction''s plan';
COMMENT ON COLUMN infra.plan_policy_result.xid IS 'The transaction whose plan was judged';
COMMENT ON COLUMN infra.plan_policy_result.ord IS 'Order of the verdict';
COMMENT ON COLUMN infra.plan_policy_result.policy IS 'The policy''s name';
COMMENT ON COLUMN infra.plan_policy_result.severity IS 'deny or warn';
COMMENT ON COLUMN infra.plan_policy_result.message IS 'The policy''s message';
COMMENT ON COLUMN infra.plan_policy_result.resource_id IS 'The offending resource; NULL when the policy''s query failed';
COMMENT ON COLUMN infra.plan_policy_result.offending IS 'The offending row as the policy''s query returned it';
COMMENT ON COLUMN infra.plan_policy_result.error IS 'Why the policy''s query failed (COMMIT would then be refused)';

CREATE VIEW infra.plan_policy AS
    SELECT policy, severity, message, resource_id, offending, error
    FROM infra.plan_policy_result
    WHERE xid = pg_current_xact_id_if_assigned()
    ORDER BY ord;
COMMENT ON VIEW infra.plan_policy IS 'What the committed policies say of the current transaction''s plan; filled in when infra.plan is read. A deny row, or a row with an error, means COMMIT would be refused';
COMMENT ON COLUMN infra.plan_policy.policy IS 'The policy''s name';
COMMENT ON COLUMN infra.plan_policy.severity IS 'deny (COMMIT would be refused) or warn (a NOTICE)';
COMMENT ON COLUMN infra.plan_policy.message IS 'The policy''s message';
COMMENT ON COLUMN infra.plan_policy.resource_id IS 'The offending resource this transaction touches; NULL when the query failed';
COMMENT ON COLUMN infra.plan_policy.offending IS 'The offending row as the policy''s query returned it';
COMMENT ON COLUMN infra.plan_policy.error IS 'Why the policy''s query failed; NULL when it ran';
GRANT SELECT ON infra.plan_policy TO PUBLIC;

CREATE FUNCTION infra.put_plan_policy(verdicts jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DELETE FROM infra.plan_policy_result WHERE xid = pg_current_xact_id();
    INSERT INTO infra.plan_policy_result (ord, policy, severity, message, resource_id, offending, error)
    SELECT e.ord::int, v.policy, v.severity, v.message, v.resource_id, v.offending, v.error
    FROM jsonb_array_elements(verdicts) WITH ORDINALITY AS e(item, ord),
         jsonb_to_record(e.item)
         AS v(policy text, severity text, message text, resource_id text, offending jsonb, error text);
$$;

-- The verdicts are consumed at commit like the plan preview.
CREATE OR REPLACE FUNCTION infra.finish() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DELETE FROM infra.change WHERE xid = pg_current_xact_id();
    DELETE FROM infra.plan_step WHERE xid = pg_current_xact_id();
    DELETE FROM infra.plan_policy_result WHERE xid = pg_current_xact_id();
$$;
