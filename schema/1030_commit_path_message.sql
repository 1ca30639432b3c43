-- The commit-path refusal (IX100) says why it happened. Through infrasql it
-- is almost always an autocommit statement whose write the proxy could not
-- foresee: `SELECT f()` where f() writes a resource table is not wrapped
-- in infrasql's own transaction (a read must not pay for a COMMIT round
-- trip), so its implicit transaction reaches this trigger unsealed. The old
-- DETAIL blamed a direct connection, which misled. The proxy marks each of
-- its backend sessions with `infra.proxied = on` in the startup packet
-- (src/wire/frontend/packet.rs); a direct session lacks it. A session that
-- sets it itself changes only the wording here, never the refusal.
CREATE OR REPLACE FUNCTION infra.require_commit_path() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NULL;
    END IF;
    IF current_setting('infra.proxied', true) = 'on' THEN
        RAISE EXCEPTION 'changes to %.% must be committed through infrasql', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'IX100',
                  DETAIL = 'A statement outside a transaction block changed the table through a function or a rule, which infrasql cannot tell from a read before it runs; the change was refused, and nothing was applied to the cloud.',
                  HINT = 'Run the statement inside BEGIN ... COMMIT: infrasql applies every change a transaction block makes.';
    END IF;
    RAISE EXCEPTION 'changes to %.% must be committed through infrasql', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'IX100',
              DETAIL = 'This session is connected to the backend PostgreSQL directly, so the change was never applied to the cloud.',
              HINT = 'Connect through infrasql (default port 5433) and run the transaction again.';
END
$$;
