-- The proxy learns that a transaction changed a resource table from the
-- transaction itself, not from its statements' first keywords: `SELECT f()`
-- and writable CTEs write too. Each captured change raises one NOTICE with
-- a fixed text, which the proxy takes off the wire (the client never sees
-- it) and remembers until the transaction ends. A transaction without one
-- commits with no statement of infrasql's own in between.
--
-- Losing a marker cannot lose a change: the commit hook is then skipped,
-- the transaction is not sealed, and the deferred `infrasql_commit_path`
-- trigger refuses the COMMIT (IX100). The function's own SET of
-- client_min_messages keeps a client's `SET client_min_messages = warning`
-- (Rails sets it) from suppressing the marker; it is restored on return.
CREATE OR REPLACE FUNCTION infra.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET client_min_messages = notice AS $$
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE'
       AND infra.is_made_with_parent(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, (to_jsonb(OLD) ->> 'id')::bigint) THEN
        RETURN NULL;
    END IF;
    INSERT INTO infra.change (table_name, op, old_row, new_row)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, left(TG_OP, 1)::"char",
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RAISE NOTICE 'infrasql:change-captured';
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION infra.capture() IS 'Change capture: records a user''s row change in infra.change and tells the proxy the transaction changed a resource table (a NOTICE the proxy takes off the wire)';
