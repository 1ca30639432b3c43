-- What BI tools and `\d+` show: a COMMENT on every infra table and column,
-- aws and infra on the database's default search_path, and infra.version().
-- The aws.* comments are not here: infrasql writes them at start-up from the
-- resource descriptions (src/engine/registry.rs), their one source. Columns
-- that 0500_recovery.sql commented keep its comments.

-- Grafana's and Metabase's table pickers list the search_path's schemas.
-- After public, so a user's own tables still win a name, and pg_catalog
-- still comes first (version() stays PostgreSQL's). A role's or a session's
-- own search_path overrides this one.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, aws, infra', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'infrasql cannot set the default search_path of database %', current_database()
        USING HINT = format('As its owner: ALTER DATABASE %I SET search_path = "$user", public, aws, infra', current_database());
END
$$;

-- Written by infrasql at start-up (src/store/mod.rs), so it names the binary
-- that last started on this database. server_version stays PostgreSQL's:
-- drivers parse it.
CREATE FUNCTION infra.version() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value FROM infra.setting WHERE key = 'version'), 'infrasql')
$$;
COMMENT ON FUNCTION infra.version() IS 'infrasql and its version, e.g. infrasql 0.1.0';

COMMENT ON SCHEMA aws IS 'Amazon Web Services resources, one table per type: change the rows, COMMIT applies the change to AWS';

COMMENT ON FUNCTION infra.sync(text, text) IS 'Sync now (all tables, or one table and/or region) and report; call it as infra.sync(...)';
COMMENT ON FUNCTION infra.default_region() IS 'The region new rows get when they name none';
COMMENT ON FUNCTION infra.provisional_id(text) IS 'A pending-<kind>-... id for a new row until AWS assigns the real one';
COMMENT ON FUNCTION infra.manage(regclass) IS 'Make a table a resource table: row key, guard, change capture, commit-path check';

COMMENT ON TABLE infra.schema_migrations IS 'The schema/*.sql files applied to this database, once each';
COMMENT ON COLUMN infra.schema_migrations.version IS 'The file name without .sql';
COMMENT ON COLUMN infra.schema_migrations.checksum IS 'Checksum of the file as applied: an applied file must not change';
COMMENT ON COLUMN infra.schema_migrations.applied_at IS 'When it was applied';

COMMENT ON COLUMN infra.node.node_id IS 'The process''s id';
COMMENT ON COLUMN infra.node.hostname IS 'The host it runs on';
COMMENT ON COLUMN infra.node.version IS 'Its infrasql version';
COMMENT ON COLUMN infra.node.listen IS 'The address it listens on';
COMMENT ON COLUMN infra.node.started_at IS 'When it started';

COMMENT ON COLUMN infra.setting.key IS 'The setting''s name (default_region, version)';
COMMENT ON COLUMN infra.setting.value IS 'Its value';

COMMENT ON TABLE infra.secret IS 'The engine''s secrets (the commit seal); readable only by the engine role';
COMMENT ON COLUMN infra.secret.key IS 'The secret''s name';
COMMENT ON COLUMN infra.secret.value IS 'The secret';

COMMENT ON COLUMN infra.resource_column.table_name IS 'The resource table, schema-qualified (aws.vpc)';
COMMENT ON COLUMN infra.resource_column.column_name IS 'The column';
COMMENT ON COLUMN infra.resource_column.kind IS 'row_key (the row''s own key), identity (the AWS id), desired (changed in place), replace (a change replaces the resource), cloud (assigned by AWS, read-only), write_only (used for the call, never stored)';
COMMENT ON COLUMN infra.resource_column.references_table IS 'The table whose AWS id this column holds, if any';
COMMENT ON COLUMN infra.resource_column.doc IS 'What the column means';

COMMENT ON TABLE infra.sealed IS 'Transactions that passed infrasql''s commit path';
COMMENT ON COLUMN infra.sealed.xid IS 'The transaction';
COMMENT ON COLUMN infra.sealed.sealed_at IS 'When infrasql sealed it, once the cloud matched';

COMMENT ON COLUMN infra.change.seq IS 'Order of the change';
COMMENT ON COLUMN infra.change.xid IS 'The transaction that made it';
COMMENT ON COLUMN infra.change.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.change.op IS 'I (insert), U (update) or D (delete)';
COMMENT ON COLUMN infra.change.old_row IS 'The row before (update, delete)';
COMMENT ON COLUMN infra.change.new_row IS 'The row after (insert, update)';

COMMENT ON TABLE infra.plan_step IS 'The plan previews of open transactions; read them through infra.plan';
COMMENT ON COLUMN infra.plan_step.xid IS 'The transaction planned';
COMMENT ON COLUMN infra.plan_step.step IS 'Step number, in the order the steps run';
COMMENT ON COLUMN infra.plan_step.action IS 'create, update, replace or delete';
COMMENT ON COLUMN infra.plan_step.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.plan_step.resource_id IS 'The AWS id (provisional for a create)';
COMMENT ON COLUMN infra.plan_step.name IS 'The resource''s name, if it has one';
COMMENT ON COLUMN infra.plan_step.region IS 'The AWS region';
COMMENT ON COLUMN infra.plan_step.changes IS 'Field → before and after';
COMMENT ON COLUMN infra.plan_step.depends_on IS 'Steps that must finish first';

COMMENT ON COLUMN infra.plan.step IS 'Step number, in the order the steps run';
COMMENT ON COLUMN infra.plan.action IS 'create, update, replace or delete';
COMMENT ON COLUMN infra.plan."table" IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.plan.resource_id IS 'The AWS id (provisional for a create)';
COMMENT ON COLUMN infra.plan.name IS 'The resource''s name, if it has one';
COMMENT ON COLUMN infra.plan.region IS 'The AWS region';
COMMENT ON COLUMN infra.plan.changes IS 'Field → before and after (secrets shown as (secret))';
COMMENT ON COLUMN infra.plan.depends_on IS 'Steps that must finish first';

COMMENT ON COLUMN infra.apply.apply_id IS 'The apply''s id; resources it created carry it as the tag infrasql:apply-id';
COMMENT ON COLUMN infra.apply.started_at IS 'When the apply started';
COMMENT ON COLUMN infra.apply.finished_at IS 'When it reached its last status';
COMMENT ON COLUMN infra.apply.xid IS 'The client''s transaction';
COMMENT ON COLUMN infra.apply.username IS 'Who committed';
COMMENT ON COLUMN infra.apply.source IS 'commit (a user''s COMMIT) or sync (a drift revert)';
COMMENT ON COLUMN infra.apply.actions IS 'Number of steps planned';
COMMENT ON COLUMN infra.apply.error IS 'Why it failed, if it did';

COMMENT ON COLUMN infra.apply_action.apply_id IS 'The apply';
COMMENT ON COLUMN infra.apply_action.step IS 'The plan step';
COMMENT ON COLUMN infra.apply_action.action IS 'The AWS action (create, update, delete, replace-create, replace-delete)';
COMMENT ON COLUMN infra.apply_action.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.apply_action.resource_id IS 'The AWS id';
COMMENT ON COLUMN infra.apply_action.region IS 'The AWS region';
COMMENT ON COLUMN infra.apply_action.status IS 'Where the action stands: started, done, failed, undone, ...';
COMMENT ON COLUMN infra.apply_action.started_at IS 'When the call started';
COMMENT ON COLUMN infra.apply_action.finished_at IS 'When it finished';
COMMENT ON COLUMN infra.apply_action.before IS 'The resource before (secrets left out)';
COMMENT ON COLUMN infra.apply_action.after IS 'The resource after, as AWS reported it';
COMMENT ON COLUMN infra.apply_action.error IS 'AWS''s error code and message, if it failed';

COMMENT ON COLUMN infra.drift.drift_id IS 'The drift''s id';
COMMENT ON COLUMN infra.drift.detected_at IS 'When sync found it';
COMMENT ON COLUMN infra.drift.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.drift.resource_id IS 'The AWS id';
COMMENT ON COLUMN infra.drift.region IS 'The AWS region';
COMMENT ON COLUMN infra.drift.kind IS 'changed (a field differs), appeared (in AWS, not in the rows) or disappeared (in the rows, not in AWS)';
COMMENT ON COLUMN infra.drift.field IS 'The column that differs (changed only)';
COMMENT ON COLUMN infra.drift.known_value IS 'What the rows held';
COMMENT ON COLUMN infra.drift.actual_value IS 'What AWS reported';
COMMENT ON COLUMN infra.drift.resolution IS 'adopted (rows took AWS''s value), reverted (AWS was set back) or open';
COMMENT ON COLUMN infra.drift.resolved_at IS 'When it was resolved';

COMMENT ON COLUMN infra.drift_policy.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.drift_policy.tag_key IS 'Only resources with this tag ('''' for all)';
COMMENT ON COLUMN infra.drift_policy.tag_value IS 'The value that tag must have';
COMMENT ON COLUMN infra.drift_policy.policy IS 'adopt (rows take AWS''s values), revert (AWS is set back) or report (drift stays open)';

COMMENT ON COLUMN infra.sync_status.region IS 'The AWS region';
COMMENT ON COLUMN infra.sync_status.table_name IS 'The resource table, schema-qualified';
COMMENT ON COLUMN infra.sync_status.last_started IS 'When the last round started';
COMMENT ON COLUMN infra.sync_status.last_finished IS 'When it finished';
COMMENT ON COLUMN infra.sync_status.duration_ms IS 'How long it took, in milliseconds';
COMMENT ON COLUMN infra.sync_status.resources_seen IS 'Resources AWS listed';
COMMENT ON COLUMN infra.sync_status.api_calls IS 'AWS API calls it made';
COMMENT ON COLUMN infra.sync_status.last_error IS 'Why it failed, if it did';
