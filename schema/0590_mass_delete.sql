-- The mass-delete guard (issue #11): a COMMIT that deletes more than
-- infra.max_deletes resources is refused before any AWS call unless the
-- session sets infra.allow_mass_delete = on. Defaults, so that SHOW answers
-- before any SET; unset means 10 and off.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET infra.max_deletes = 10', current_database());
    EXECUTE format('ALTER DATABASE %I SET infra.allow_mass_delete = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'infrasql: cannot set the infra.* defaults on this database: %', SQLERRM;
END
$$;
