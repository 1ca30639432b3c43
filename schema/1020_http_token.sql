-- Tokens for the HTTP listener (issue #16). `infrasql token create` makes
-- a random token on the client and sends only its SHA-256 here, so neither
-- the table, a backup nor the statement log ever holds a token that works.
-- A token stands for one of the database's group roles: the HTTP layer runs
-- a request's queries under SET LOCAL ROLE to it, so the grants and the
-- row-level security of schema/0980_roles.sql decide what a page shows.

CREATE TABLE infra.http_token (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('reader', 'admin')),
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    last_used_at timestamptz
);
REVOKE ALL ON infra.http_token FROM PUBLIC;
COMMENT ON TABLE infra.http_token IS 'Bearer tokens of the HTTP listener (infrasql token create): only their SHA-256 is kept';
COMMENT ON COLUMN infra.http_token.id IS 'The token''s number (infrasql token revoke ID)';
COMMENT ON COLUMN infra.http_token.kind IS 'reader or admin: the group role (infra.role_name) a request with the token runs as';
COMMENT ON COLUMN infra.http_token.token_hash IS 'SHA-256 of the token, hex; the token itself is shown once and kept nowhere';
COMMENT ON COLUMN infra.http_token.created_at IS 'When the token was made';
COMMENT ON COLUMN infra.http_token.created_by IS 'The login role that made it';
COMMENT ON COLUMN infra.http_token.last_used_at IS 'When a request last presented it (updated at most once a minute)';

-- SECURITY DEFINER: the engine owns the table; an admin writes it only
-- through these. session_user is the admin's login role even here.
CREATE FUNCTION infra.http_token_create(kind text, token_hash text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    new_id bigint;
BEGIN
    IF kind IS NULL OR kind NOT IN ('reader', 'admin') THEN
        RAISE EXCEPTION 'unknown token kind "%"', kind USING ERRCODE = '22023',
              HINT = 'Use reader or admin.';
    END IF;
    IF token_hash IS NULL OR token_hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'a token is stored as its SHA-256 in hex, not as itself' USING ERRCODE = '22023';
    END IF;
    INSERT INTO infra.http_token (kind, token_hash, created_by)
    VALUES (kind, token_hash, session_user) RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION infra.http_token_create(text, text) IS 'Record an HTTP token by its SHA-256 (infrasql token create); admins only';

CREATE FUNCTION infra.http_token_revoke(token_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    DELETE FROM infra.http_token WHERE id = token_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'HTTP token % does not exist', token_id USING ERRCODE = '42704',
              HINT = 'infrasql token list shows the tokens.';
    END IF;
END
$$;
COMMENT ON FUNCTION infra.http_token_revoke(bigint) IS 'Delete an HTTP token: requests with it are refused from now on (infrasql token revoke); admins only';

DO $$
DECLARE
    admin text := infra.role_name('admin');
BEGIN
    REVOKE EXECUTE ON FUNCTION infra.http_token_create(text, text), infra.http_token_revoke(bigint) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION infra.http_token_create(text, text), infra.http_token_revoke(bigint) TO %I', admin);
    -- Everything but the hash, for infrasql token list.
    EXECUTE format('GRANT SELECT (id, kind, created_at, created_by, last_used_at) ON infra.http_token TO %I', admin);
END
$$;
