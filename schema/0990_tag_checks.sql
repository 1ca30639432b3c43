-- Tags AWS would refuse, refused at the statement instead (issue #14, the
-- catalogue of bad input in docs/bad_input.md): a key AWS reserves
-- (`aws:...`, any case), an empty key, a key over 128 characters, a value
-- over 256, a value that is a JSON object or array (AWS keeps text; it
-- would come back as other text and be drift for ever), and for EC2 types
-- a `name` over 256 characters (it is the `Name` tag's value).
--
-- Only a user's writes are checked, and only the tags they change: rows
-- the sync imports keep the `aws:cloudformation:*` tags CloudFormation put
-- on them, and an UPDATE of another column (or of other tags) of such a
-- row leaves them as they are. Adding, changing or removing an `aws:` tag
-- is refused: AWS allows none of the three.
--
-- SQLSTATEs (src/engine/errors.rs): 42501 for a reserved key (the user may
-- not write it, whatever its value), 22001 for a key, value or name that is
-- too long, 22023 for an empty key or a value that is not text.

CREATE FUNCTION infra.check_tags() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n      jsonb := to_jsonb(NEW);
    o      jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END;
    me     text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME
                   || coalesce(' "' || (n ->> 'name') || '"', '');
    before jsonb := coalesce(o -> 'tags', '{}');
    k      text;
    v      jsonb;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    IF TG_ARGV[0] = 'name' AND char_length(n ->> 'name') > 256
       AND (o IS NULL OR n ->> 'name' IS DISTINCT FROM o ->> 'name') THEN
        RAISE EXCEPTION '%: name is % characters long; AWS allows 256', me, char_length(n ->> 'name')
            USING ERRCODE = '22001',
                  DETAIL = 'An EC2 resource''s name is its Name tag, whose value AWS limits to 256 characters.',
                  HINT = 'Choose a name of at most 256 characters.';
    END IF;
    -- A non-object is the table's own CHECK's to report.
    IF jsonb_typeof(n -> 'tags') IS DISTINCT FROM 'object' OR n -> 'tags' = before THEN
        RETURN NEW;
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(n -> 'tags') e ORDER BY e.key LOOP
        CONTINUE WHEN before -> k IS NOT DISTINCT FROM v;
        IF lower(k) LIKE 'aws:%' THEN
            RAISE EXCEPTION '%: tag key "%" is reserved by AWS', me, k
                USING ERRCODE = '42501',
                      DETAIL = 'AWS keeps tag keys that start with "aws:" for its own services (CloudFormation, Auto Scaling, ...); no one may add, change or remove them.',
                      HINT = 'Choose a key without the "aws:" prefix. Tags AWS put on a resource stay as sync imported them.';
        END IF;
        IF k = '' THEN
            RAISE EXCEPTION '%: a tag key is empty', me
                USING ERRCODE = '22023',
                      DETAIL = 'AWS tag keys are 1 to 128 characters long.',
                      HINT = 'Give the tag a key.';
        END IF;
        IF char_length(k) > 128 THEN
            RAISE EXCEPTION '%: tag key "%..." is % characters long; AWS allows 128', me, left(k, 32), char_length(k)
                USING ERRCODE = '22001',
                      DETAIL = 'AWS tag keys are 1 to 128 characters long.',
                      HINT = 'Choose a shorter key.';
        END IF;
        IF jsonb_typeof(v) IN ('object', 'array') THEN
            RAISE EXCEPTION '%: the value of tag "%" is a JSON %, not text', me, k, jsonb_typeof(v)
                USING ERRCODE = '22023',
                      DETAIL = 'AWS keeps tag values as text; an object or array would come back as other text.',
                      HINT = format('Write the value as a JSON string: {"%s": "..."}.', k);
        END IF;
        IF char_length(coalesce(v #>> '{}', '')) > 256 THEN
            RAISE EXCEPTION '%: the value of tag "%" is % characters long; AWS allows 256', me, k, char_length(v #>> '{}')
                USING ERRCODE = '22001',
                      DETAIL = 'AWS tag values are at most 256 characters long.',
                      HINT = 'Shorten the value.';
        END IF;
    END LOOP;
    FOR k IN SELECT e.key FROM jsonb_each(before) e WHERE lower(e.key) LIKE 'aws:%' ORDER BY e.key LOOP
        IF NOT (n -> 'tags') ? k THEN
            RAISE EXCEPTION '%: tag key "%" is reserved by AWS and cannot be removed', me, k
                USING ERRCODE = '42501',
                      DETAIL = 'AWS keeps tag keys that start with "aws:" for its own services; no one may add, change or remove them.',
                      HINT = format('Keep the tag: SET tags = tags || jsonb_build_object(%L, %L) restores it.', k, before ->> k);
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;

-- Every managed table with a tags column gets the check; EC2's also check
-- `name` (their Name tag).
CREATE FUNCTION infra.add_tag_check(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ec2 text[] := ARRAY['aws.vpc', 'aws.subnet', 'aws.internet_gateway', 'aws.route_table',
                        'aws.security_group', 'aws.security_group_rule', 'aws.elastic_ip',
                        'aws.instance'];
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = tbl AND attname = 'tags' AND NOT attisdropped) THEN
        EXECUTE format('CREATE TRIGGER infrasql_local_tags BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.check_tags(%L)',
                       tbl, CASE WHEN tbl::text = ANY (ec2) THEN 'name' ELSE '' END);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION infra.manage(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM infra.stable_key(tbl);
    EXECUTE format('CREATE TRIGGER infrasql_guard BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.guard()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_keep_secret BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION infra.keep_secret()', tbl);
    EXECUTE format('CREATE TRIGGER infrasql_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    PERFORM infra.add_stack(tbl);
    -- The role grants and scope policy of 0980.
    PERFORM infra.grant_resource(tbl);
    PERFORM infra.add_tag_check(tbl);
END
$$;

-- The tables managed so far.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'infrasql_guard' AND NOT tgisinternal ORDER BY 1 LOOP
        PERFORM infra.add_tag_check(t);
    END LOOP;
END
$$;

-- A security group rule's referenced_group_id is not a foreign key (the
-- group may be in another account), but a provisional id stands for a row
-- of this database: one that no security group row has is a typo AWS would
-- answer with InvalidGroup.NotFound at COMMIT. Refused at the statement.
CREATE FUNCTION infra.check_referenced_group() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF infra.is_engine() OR infra.is_sealed() OR NEW.referenced_group_id IS NULL
       OR NOT starts_with(NEW.referenced_group_id, 'pending-') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.referenced_group_id IS NOT DISTINCT FROM OLD.referenced_group_id THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aws.security_group WHERE group_id = NEW.referenced_group_id) THEN
        RAISE EXCEPTION 'security group rule %: referenced_group_id % is a provisional id that no security group row has',
                NEW.security_group_rule_id, NEW.referenced_group_id
            USING ERRCODE = '23503',
                  DETAIL = 'A pending-... id stands for a security group this transaction creates; AWS would answer InvalidGroup.NotFound.',
                  HINT = 'Use the group_id of a row of aws.security_group: a new group''s provisional id, or an existing group''s sg-... id.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER infrasql_local_referenced_group BEFORE INSERT OR UPDATE ON aws.security_group_rule
    FOR EACH ROW EXECUTE FUNCTION infra.check_referenced_group();
