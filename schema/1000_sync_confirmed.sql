-- Issue #15: a steady sync round writes only the rows that changed, so a
-- row's synced_at now says when sync (or a COMMIT's write-back) last
-- *wrote* it. When a row was last *confirmed* equal to AWS is kept per
-- round instead: the time of each (table, region)'s last successful round,
-- plus the few rows a round could not compare (held by an open
-- transaction, owned by an apply in flight or by recovery, or gone from
-- the listing but still a row), which keep the time they had.
-- infra.resource_confirmed puts the two together per row.

ALTER TABLE infra.sync_status ADD COLUMN confirmed_at timestamptz;
COMMENT ON COLUMN infra.sync_status.confirmed_at IS 'When the last successful round of this pair compared its rows with AWS (the round''s transaction time, also the synced_at of the rows it wrote); a failed round leaves it. NULL until a round succeeds';

CREATE TABLE infra.sync_unconfirmed (
    table_name   text NOT NULL,
    row_id       bigint NOT NULL,
    region       text NOT NULL,
    confirmed_at timestamptz,
    PRIMARY KEY (table_name, row_id)
);
COMMENT ON TABLE infra.sync_unconfirmed IS 'Rows the last round of their (table, region) could not compare with AWS (held by an open transaction, owned by an apply in flight or recovery, or not listed), with the time they were last confirmed; empty in a steady state';
COMMENT ON COLUMN infra.sync_unconfirmed.table_name IS 'The resource table, schema-qualified (aws.vpc)';
COMMENT ON COLUMN infra.sync_unconfirmed.row_id IS 'The row''s own key (its id column)';
COMMENT ON COLUMN infra.sync_unconfirmed.region IS 'The row''s region: the pair whose rounds keep this entry';
COMMENT ON COLUMN infra.sync_unconfirmed.confirmed_at IS 'When the row was last confirmed equal to AWS before the rounds that left it alone; NULL if never';

-- One table's rows with their confirmed time. Dynamic SQL run as the
-- caller, so the table's grants and role-scope policies apply as to a
-- plain SELECT.
CREATE FUNCTION infra.confirmed_rows(tbl text)
RETURNS TABLE (row_id bigint, resource_id text, region text, synced_at timestamptz, confirmed_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    idc text := (SELECT c.column_name FROM infra.resource_column c
                  WHERE c.table_name = tbl AND c.kind IN ('identity', 'name')
                  ORDER BY c.kind = 'identity' DESC, c.column_name LIMIT 1);
BEGIN
    IF idc IS NULL THEN
        RETURN; -- not a resource table (any more)
    END IF;
    -- A row sync wrote after its pair's round (a COMMIT's write-back) was
    -- confirmed then: the later of the two.
    RETURN QUERY EXECUTE format(
        'SELECT t.id, t.%I::text, t.region, t.synced_at,
                greatest(t.synced_at, CASE WHEN u.row_id IS NULL THEN s.confirmed_at ELSE u.confirmed_at END)
           FROM %s t
           LEFT JOIN infra.sync_status s ON s.table_name = $1 AND s.region = t.region
           LEFT JOIN infra.sync_unconfirmed u ON u.table_name = $1 AND u.row_id = t.id',
        idc, tbl::regclass) USING tbl;
END
$$;
COMMENT ON FUNCTION infra.confirmed_rows(text) IS 'The rows of one resource table (aws.vpc) with when each was last confirmed equal to AWS; infra.resource_confirmed covers every table';

CREATE VIEW infra.resource_confirmed AS
SELECT t.table_name, r.row_id, r.resource_id, r.region, r.synced_at, r.confirmed_at
  FROM infra.resource_type t
 CROSS JOIN LATERAL infra.confirmed_rows(t.table_name) r;
COMMENT ON VIEW infra.resource_confirmed IS 'Every resource row and when it was last confirmed equal to AWS: the last successful sync round of its (table, region) that compared it, or a later write-back';
COMMENT ON COLUMN infra.resource_confirmed.table_name IS 'The resource table, schema-qualified (aws.vpc)';
COMMENT ON COLUMN infra.resource_confirmed.row_id IS 'The row''s own key (its id column)';
COMMENT ON COLUMN infra.resource_confirmed.resource_id IS 'The AWS id (or the name, for types the user names)';
COMMENT ON COLUMN infra.resource_confirmed.region IS 'The AWS region (global for global types)';
COMMENT ON COLUMN infra.resource_confirmed.synced_at IS 'When sync or a COMMIT last wrote the row (a round writes only rows that changed)';
COMMENT ON COLUMN infra.resource_confirmed.confirmed_at IS 'When the row was last confirmed equal to AWS; NULL if never (a row no round has compared yet)';
