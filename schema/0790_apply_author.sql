-- Who wrote a change, when the client knows (issue #12: the GitOps agent
-- records each apply's git commit author): the transaction-local
-- infra.apply_author, checked by the engine at COMMIT like infra.apply_source.
ALTER TABLE infra.apply ADD COLUMN author text;
COMMENT ON COLUMN infra.apply.author IS 'Who wrote the change, when the client said so (infra.apply_author): the git commit''s author for the GitOps agent''s applies';

-- A default, so that SHOW answers before any SET.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.apply_author = %L', current_database(), '');
END
$$;
