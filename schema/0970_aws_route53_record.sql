-- aws.route53_record: see providers/aws-route53/src/record.rs for column
-- kinds. record_id is synthetic: '<zone id>|<name>|<type>|<set id>', set
-- by the provider when the record is created. A record holds values with
-- a TTL, or an alias (to a load balancer row, or by DNS name and zone).
CREATE TABLE aws.route53_record (
    record_id                    text PRIMARY KEY DEFAULT infra.provisional_id('record'),
    region                       text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    hosted_zone_id               text NOT NULL
                                 REFERENCES aws.route53_zone (hosted_zone_id) ON UPDATE CASCADE,
    name                         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 1024),
    type                         text NOT NULL
                                 CHECK (type IN ('A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS', 'SRV', 'CAA',
                                                 'PTR', 'SPF', 'NAPTR', 'DS', 'SOA')),
    set_identifier               text CHECK (char_length(set_identifier) BETWEEN 1 AND 128),
    ttl                          bigint CHECK (ttl BETWEEN 0 AND 2147483647),
    records                      jsonb CHECK (jsonb_typeof(records) = 'array'),
    alias_lb_arn                 text,
    alias_dns_name               text,
    alias_hosted_zone_id         text,
    alias_evaluate_target_health boolean NOT NULL DEFAULT false,
    synced_at                    timestamptz,
    CONSTRAINT route53_record_values_or_alias CHECK (
        (records IS NOT NULL AND ttl IS NOT NULL
         AND alias_lb_arn IS NULL AND alias_dns_name IS NULL AND alias_hosted_zone_id IS NULL)
        OR (records IS NULL AND ttl IS NULL
            AND (alias_lb_arn IS NOT NULL
                 OR (alias_dns_name IS NOT NULL AND alias_hosted_zone_id IS NOT NULL)))
    )
);
CREATE UNIQUE INDEX route53_record_unique
    ON aws.route53_record (hosted_zone_id, name, type, coalesce(set_identifier, ''));
SELECT infra.manage('aws.route53_record');

-- alias_lb_arn references aws.lb (schema/0900, the load-balancing types)
-- where that table exists.
DO $$
BEGIN
    IF to_regclass('aws.lb') IS NOT NULL THEN
        ALTER TABLE aws.route53_record ADD CONSTRAINT route53_record_alias_lb_arn_fkey
            FOREIGN KEY (alias_lb_arn) REFERENCES aws.lb (lb_arn) ON UPDATE CASCADE;
        CREATE INDEX route53_record_alias_lb_arn ON aws.route53_record (alias_lb_arn);
    END IF;
END
$$;

CREATE FUNCTION infra.route53_record_normalise() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := infra.route53_fqdn(NEW.name);
    NEW.alias_dns_name := infra.route53_fqdn(NEW.alias_dns_name);
    RETURN NEW;
END
$$;
-- Named to fire before infrasql_guard (triggers fire in name order).
CREATE TRIGGER infrasql_fqdn BEFORE INSERT OR UPDATE ON aws.route53_record
    FOR EACH ROW EXECUTE FUNCTION infra.route53_record_normalise();
