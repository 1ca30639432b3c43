-- Local checks at the statement: what AWS would certainly refuse at COMMIT,
-- refused at INSERT/UPDATE instead, before any AWS call, with SQLSTATE 23514
-- (check_violation), the resource, the cause and a hint.
--
-- Single-row rules are CHECK constraints in each table's own file (CIDR
-- masks and families, port ranges of security group rules, one target per
-- route...). The checks here read other rows, so they are triggers: they
-- see the rows as they are when the statement runs, earlier rows of the
-- same statement included. Hence the one thing to know: in a transaction
-- that changes a parent too (a VPC's cidr_block), change the parent first.
--
-- The engine's own writes (sync, the write-back after the seal) report what
-- exists in AWS and are never checked.

-- Every IPv4 block of a VPC, so a subnet in a secondary block (associated
-- outside infrasql) is not refused. NULL until the next sync or write-back
-- reports them; the primary block alone is then used.
ALTER TABLE aws.vpc ADD COLUMN cidr_blocks cidr[];

-- "subnet "a"", or "subnet pending-subnet-..." for a row without a name.
CREATE FUNCTION infra.label(what text, name text, id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN name IS NULL THEN what || ' ' || id
                ELSE format('%s "%s" (%s)', what, name, id) END
$$;

-- A resource uses only resources of its own region. Arguments: the
-- referencing column, the referenced table, its id column.
CREATE FUNCTION infra.check_same_region() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    col    text := TG_ARGV[0];
    ref    text := to_jsonb(NEW) ->> TG_ARGV[0];
    region text;
    tbl    text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() OR ref IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND ref IS NOT DISTINCT FROM to_jsonb(OLD) ->> col
       AND NEW.region IS NOT DISTINCT FROM OLD.region THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT region FROM %s WHERE %I = $1', TG_ARGV[1], TG_ARGV[2])
        INTO region USING ref;
    IF region IS NOT NULL AND region <> NEW.region THEN
        RAISE EXCEPTION '% is in region %, but its % % is in region %',
                tbl || coalesce(' "' || (to_jsonb(NEW) ->> 'name') || '"', ''), NEW.region, col, ref, region
            USING ERRCODE = '23514',
                  DETAIL = 'AWS resources use only resources of their own region; AWS would answer that it does not exist.',
                  HINT = format('Set region to %L (region defaults to infra.default_region(), not to the region of what the row references).', region);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.subnet
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('vpc_id', 'aws.vpc', 'vpc_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.internet_gateway
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('vpc_id', 'aws.vpc', 'vpc_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.route_table
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('vpc_id', 'aws.vpc', 'vpc_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.route
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('route_table_id', 'aws.route_table', 'route_table_id');
CREATE TRIGGER infrasql_local_region_gateway BEFORE INSERT OR UPDATE ON aws.route
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('gateway_id', 'aws.internet_gateway', 'internet_gateway_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.route_table_association
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('route_table_id', 'aws.route_table', 'route_table_id');
CREATE TRIGGER infrasql_local_region_subnet BEFORE INSERT OR UPDATE ON aws.route_table_association
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('subnet_id', 'aws.subnet', 'subnet_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.security_group
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('vpc_id', 'aws.vpc', 'vpc_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.security_group_rule
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('group_id', 'aws.security_group', 'group_id');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('subnet_id', 'aws.subnet', 'subnet_id');
CREATE TRIGGER infrasql_local_region_group BEFORE INSERT OR UPDATE ON aws.instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region('security_group_id', 'aws.security_group', 'group_id');

-- A subnet: its zone in its region, its CIDR inside one of its VPC's blocks
-- and overlapping no other subnet row of the VPC.
CREATE FUNCTION infra.check_subnet() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    me     text := infra.label('subnet', NEW.name, NEW.subnet_id);
    v      record;
    blocks cidr[];
    other  record;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.vpc_id, NEW.cidr_block, NEW.availability_zone, NEW.region)
       IS NOT DISTINCT FROM (OLD.vpc_id, OLD.cidr_block, OLD.availability_zone, OLD.region) THEN
        RETURN NEW;
    END IF;
    -- AWS names every zone after its region: us-east-1a, us-west-2-lax-1a.
    IF NEW.availability_zone IS NOT NULL AND NOT starts_with(NEW.availability_zone, NEW.region) THEN
        RAISE EXCEPTION '%: availability zone % is not in region %', me, NEW.availability_zone, NEW.region
            USING ERRCODE = '23514',
                  DETAIL = 'A subnet''s availability zone is one of its region''s zones, whose names start with the region''s.',
                  HINT = format('Choose a zone of %s, or leave availability_zone NULL to let AWS choose.', NEW.region);
    END IF;
    SELECT vpc_id, name, cidr_block, cidr_blocks INTO v FROM aws.vpc WHERE vpc_id = NEW.vpc_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports it
    END IF;
    blocks := array_prepend(v.cidr_block, coalesce(v.cidr_blocks, '{}'));
    IF NOT EXISTS (SELECT 1 FROM unnest(blocks) b WHERE NEW.cidr_block <<= b) THEN
        RAISE EXCEPTION '%: % is outside %, whose CIDR blocks are %', me, NEW.cidr_block,
                infra.label('VPC', v.name, v.vpc_id), array_to_string(ARRAY(SELECT DISTINCT unnest(blocks)), ', ')
            USING ERRCODE = '23514',
                  DETAIL = 'AWS creates a subnet only inside one of its VPC''s CIDR blocks (InvalidSubnet.Range).',
                  HINT = format('Choose a cidr_block inside %s. If this transaction also changes the VPC''s cidr_block, change the VPC first.', v.cidr_block);
    END IF;
    SELECT subnet_id, name, cidr_block INTO other FROM aws.subnet
     WHERE vpc_id = NEW.vpc_id AND subnet_id <> NEW.subnet_id AND cidr_block && NEW.cidr_block
     ORDER BY subnet_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '%: % overlaps %, %, in %', me, NEW.cidr_block,
                infra.label('subnet', other.name, other.subnet_id), other.cidr_block, infra.label('VPC', v.name, v.vpc_id)
            USING ERRCODE = '23514',
                  DETAIL = 'Subnets of one VPC cannot overlap (InvalidSubnet.Conflict). Creates run before deletes, so deleting the other subnet in the same transaction does not free its range.',
                  HINT = 'Choose a range no other subnet of the VPC uses, or delete the other subnet and COMMIT first.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER infrasql_local_subnet BEFORE INSERT OR UPDATE ON aws.subnet
    FOR EACH ROW EXECUTE FUNCTION infra.check_subnet();

-- Two things in one VPC: an instance's subnet and security group, an
-- association's route table and subnet. Arguments: what the row is, and
-- for each of the two references its column, table, id column and what it
-- is called. A NULL reference (an instance's default subnet) is not checked.
CREATE FUNCTION infra.check_same_vpc() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n      jsonb := to_jsonb(NEW);
    a_id   text := n ->> TG_ARGV[1];
    b_id   text := n ->> TG_ARGV[5];
    a      record;
    b      record;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() OR a_id IS NULL OR b_id IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND a_id IS NOT DISTINCT FROM to_jsonb(OLD) ->> TG_ARGV[1]
       AND b_id IS NOT DISTINCT FROM to_jsonb(OLD) ->> TG_ARGV[5] THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT name, vpc_id FROM %s WHERE %I = $1', TG_ARGV[2], TG_ARGV[3]) INTO a USING a_id;
    EXECUTE format('SELECT name, vpc_id FROM %s WHERE %I = $1', TG_ARGV[6], TG_ARGV[7]) INTO b USING b_id;
    IF a.vpc_id IS NOT NULL AND b.vpc_id IS NOT NULL AND a.vpc_id <> b.vpc_id THEN
        RAISE EXCEPTION '%: % is in VPC %, but % is in VPC %',
                infra.label(TG_ARGV[0], n ->> 'name', n ->> TG_ARGV[9]),
                infra.label(TG_ARGV[4], a.name, a_id), a.vpc_id,
                infra.label(TG_ARGV[8], b.name, b_id), b.vpc_id
            USING ERRCODE = '23514',
                  DETAIL = format('AWS refuses a %s whose %s and %s belong to different VPCs.', TG_ARGV[0], TG_ARGV[4], TG_ARGV[8]),
                  HINT = format('Choose a %s of VPC %s.', TG_ARGV[8], a.vpc_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER infrasql_local_vpc BEFORE INSERT OR UPDATE ON aws.instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_vpc(
        'instance', 'subnet_id', 'aws.subnet', 'subnet_id', 'subnet',
        'security_group_id', 'aws.security_group', 'group_id', 'security group', 'instance_id');
CREATE TRIGGER infrasql_local_vpc BEFORE INSERT OR UPDATE ON aws.route_table_association
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_vpc(
        'route table association', 'subnet_id', 'aws.subnet', 'subnet_id', 'subnet',
        'route_table_id', 'aws.route_table', 'route_table_id', 'route table', 'route_table_association_id');

-- A security group rule that repeats another of its group and direction:
-- AWS answers InvalidPermission.Duplicate. Descriptions and tags do not count.
CREATE FUNCTION infra.check_rule() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    other record;
    me    text := 'security group rule ' || NEW.security_group_rule_id;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    -- The ports rule is also the table's CHECK (security_group_rule_ports);
    -- said here first, so the message says what is wrong and how to fix it.
    IF NEW.ip_protocol IN ('tcp', 'udp') AND NOT (
           NEW.from_port BETWEEN 0 AND 65535 AND NEW.to_port BETWEEN 0 AND 65535 AND NEW.from_port <= NEW.to_port) THEN
        RAISE EXCEPTION '%: % ports % to % are not a port range', me, NEW.ip_protocol, NEW.from_port, NEW.to_port
            USING ERRCODE = '23514',
                  DETAIL = 'A tcp or udp rule needs from_port and to_port, each 0 to 65535, from_port not above to_port.',
                  HINT = 'For one port set both to it; for all ports use 0 and 65535.';
    ELSIF NEW.ip_protocol IN ('icmp', 'icmpv6') AND NOT (
           NEW.from_port BETWEEN -1 AND 255 AND NEW.to_port BETWEEN -1 AND 255 AND (NEW.from_port <> -1 OR NEW.to_port = -1)) THEN
        RAISE EXCEPTION '%: % type % code % is not an ICMP type and code', me, NEW.ip_protocol, NEW.from_port, NEW.to_port
            USING ERRCODE = '23514',
                  DETAIL = 'For icmp and icmpv6, from_port is the ICMP type and to_port the code, each -1 (all) to 255; all types (-1) needs all codes (-1).',
                  HINT = 'Echo request is type 8 code 0 (from_port 8, to_port 0); all ICMP is -1 and -1.';
    ELSIF NEW.ip_protocol = '-1' AND (NEW.from_port IS NOT NULL OR NEW.to_port IS NOT NULL) THEN
        RAISE EXCEPTION '%: a rule for all traffic (ip_protocol -1) has no ports', me
            USING ERRCODE = '23514',
                  DETAIL = 'AWS applies a -1 rule to every protocol and port.',
                  HINT = 'Leave from_port and to_port NULL, or choose tcp or udp.';
    END IF;
    SELECT r.security_group_rule_id, g.group_name INTO other
      FROM aws.security_group_rule r LEFT JOIN aws.security_group g USING (group_id)
     WHERE r.group_id = NEW.group_id AND r.security_group_rule_id <> NEW.security_group_rule_id
       AND (r.is_egress, r.ip_protocol, r.from_port, r.to_port, r.cidr_ipv4, r.cidr_ipv6, r.prefix_list_id, r.referenced_group_id)
           IS NOT DISTINCT FROM
           (NEW.is_egress, NEW.ip_protocol, NEW.from_port, NEW.to_port, NEW.cidr_ipv4, NEW.cidr_ipv6, NEW.prefix_list_id, NEW.referenced_group_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'security group rule % repeats rule % of %',
                NEW.security_group_rule_id, other.security_group_rule_id,
                infra.label('security group', other.group_name, NEW.group_id)
            USING ERRCODE = '23514',
                  DETAIL = 'AWS refuses a rule with the same direction, protocol, ports and peer as another rule of the group (InvalidPermission.Duplicate); descriptions do not count. Creates run before deletes, so deleting the other rule in the same transaction does not help.',
                  HINT = 'Change the existing rule instead (its ports, CIDR and description change in place).';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER infrasql_local_rule BEFORE INSERT OR UPDATE ON aws.security_group_rule
    FOR EACH ROW EXECUTE FUNCTION infra.check_rule();
