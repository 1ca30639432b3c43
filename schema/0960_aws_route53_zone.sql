-- aws.route53_zone: see providers/aws-route53/src/zone.rs for column kinds.
-- Route53 is global: region is always 'global'. Domain names are kept as
-- AWS answers them (lower case, final dot); what users write is
-- normalised to that form before the row is stored, so the row and the
-- listing agree.
CREATE FUNCTION infra.route53_fqdn(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN name IS NULL THEN NULL
                WHEN right(name, 1) = '.' THEN lower(name)
                ELSE lower(name) || '.' END
$$;
COMMENT ON FUNCTION infra.route53_fqdn(text) IS 'A domain name as Route53 answers it: lower case, with a final dot';

CREATE TABLE aws.route53_zone (
    hosted_zone_id text PRIMARY KEY DEFAULT infra.provisional_id('zone'),
    region         text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    name           text NOT NULL CHECK (char_length(name) BETWEEN 2 AND 1024),
    comment        text CHECK (char_length(comment) <= 256),
    private_zone   boolean NOT NULL DEFAULT false,
    vpc_id         text REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    vpc_region     text,
    tags           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    name_servers   jsonb,
    record_count   bigint,
    synced_at      timestamptz,
    CONSTRAINT route53_zone_private_has_vpc CHECK (private_zone = (vpc_id IS NOT NULL))
);
CREATE INDEX route53_zone_vpc_id ON aws.route53_zone (vpc_id);
SELECT infra.manage('aws.route53_zone');

CREATE FUNCTION infra.route53_zone_normalise() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := infra.route53_fqdn(NEW.name);
    IF NEW.vpc_id IS NOT NULL AND NEW.vpc_region IS NULL THEN
        NEW.vpc_region := (SELECT v.region FROM aws.vpc v WHERE v.vpc_id = NEW.vpc_id);
    END IF;
    RETURN NEW;
END
$$;
-- Named to fire before infrasql_guard (triggers fire in name order).
CREATE TRIGGER infrasql_fqdn BEFORE INSERT OR UPDATE ON aws.route53_zone
    FOR EACH ROW EXECUTE FUNCTION infra.route53_zone_normalise();
