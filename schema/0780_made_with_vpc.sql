-- What AWS makes with a VPC and deletes with it: its main route table (with
-- its routes and associations) and its default security group (with its
-- rules). Sync imports them as rows that refer to the VPC, so without this a
-- DELETE of the VPC's row (or a stack's prune of it) failed on their foreign
-- keys, and deleting them first would ask AWS for calls it refuses
-- (DeleteRouteTable on a main table, DeleteSecurityGroup on `default`).
--
-- Deleting a VPC's row now deletes those rows first, marked so change
-- capture passes them over: the plan has the VPC's delete only, and
-- DeleteVpc takes them in AWS. If the COMMIT fails, they come back with
-- the rolled-back transaction.

CREATE TABLE infra.made_with_parent (
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    table_name text NOT NULL,
    row_id     bigint NOT NULL,
    PRIMARY KEY (xid, table_name, row_id)
);
REVOKE ALL ON infra.made_with_parent FROM PUBLIC;
COMMENT ON TABLE infra.made_with_parent IS 'Rows deleted with their VPC''s row because AWS deletes them with the VPC (main route table, default security group): change capture passes them over';
COMMENT ON COLUMN infra.made_with_parent.xid IS 'The transaction that deleted the VPC';
COMMENT ON COLUMN infra.made_with_parent.table_name IS 'The resource table';
COMMENT ON COLUMN infra.made_with_parent.row_id IS 'The deleted row''s id';

CREATE FUNCTION infra.is_made_with_parent(tbl text, rid bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM infra.made_with_parent
                   WHERE xid = pg_current_xact_id_if_assigned() AND table_name = tbl AND row_id = rid)
$$;

-- Delete the rows of `tbl` whose `col` is `val`, marked first.
CREATE FUNCTION infra.drop_made(tbl text, col text, val text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    EXECUTE format('INSERT INTO infra.made_with_parent (table_name, row_id)
                    SELECT %L, id FROM %s WHERE %I = $1 ON CONFLICT DO NOTHING', tbl, tbl, col)
        USING val;
    EXECUTE format('DELETE FROM %s WHERE %I = $1', tbl, col) USING val;
END
$$;
REVOKE EXECUTE ON FUNCTION infra.drop_made(text, text, text) FROM PUBLIC;

CREATE FUNCTION infra.drop_made_with_vpc() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT route_table_id FROM aws.route_table
             WHERE vpc_id = OLD.vpc_id AND is_main IS TRUE LOOP
        PERFORM infra.drop_made('aws.route', 'route_table_id', r.route_table_id);
        PERFORM infra.drop_made('aws.route_table_association', 'route_table_id', r.route_table_id);
        PERFORM infra.drop_made('aws.route_table', 'route_table_id', r.route_table_id);
    END LOOP;
    FOR r IN SELECT group_id FROM aws.security_group
             WHERE vpc_id = OLD.vpc_id AND group_name = 'default' LOOP
        PERFORM infra.drop_made('aws.security_group_rule', 'group_id', r.group_id);
        PERFORM infra.drop_made('aws.security_group', 'group_id', r.group_id);
    END LOOP;
    RETURN OLD;
END
$$;
CREATE TRIGGER infrasql_made_with_vpc BEFORE DELETE ON aws.vpc
    FOR EACH ROW EXECUTE FUNCTION infra.drop_made_with_vpc();

-- Change capture, passing over the rows deleted with their VPC.
CREATE OR REPLACE FUNCTION infra.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
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
    RETURN NULL;
END
$$;

-- Consumed at commit like the transaction's changes.
CREATE OR REPLACE FUNCTION infra.finish() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DELETE FROM infra.change WHERE xid = pg_current_xact_id();
    DELETE FROM infra.plan_step WHERE xid = pg_current_xact_id();
    DELETE FROM infra.plan_policy_result WHERE xid = pg_current_xact_id();
    DELETE FROM infra.made_with_parent WHERE xid = pg_current_xact_id();
$$;
