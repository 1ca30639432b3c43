-- aws.acm_certificate: see providers/aws-acm/src/certificate.rs for column
-- kinds. Everything but the tags is fixed at the request; a DNS-validated
-- certificate waits (PENDING_VALIDATION) for the records listed in
-- domain_validation_records, which the user adds as aws.route53_record rows.
CREATE TABLE aws.acm_certificate (
    certificate_arn           text PRIMARY KEY DEFAULT infra.provisional_id('acm'),
    region                    text NOT NULL DEFAULT infra.default_region(),
    domain_name               text NOT NULL CHECK (char_length(domain_name) BETWEEN 1 AND 253),
    subject_alternative_names jsonb NOT NULL DEFAULT '[]'
                              CHECK (jsonb_typeof(subject_alternative_names) = 'array'),
    validation_method         text NOT NULL DEFAULT 'DNS'
                              CHECK (validation_method IN ('DNS', 'EMAIL')),
    key_algorithm             text NOT NULL DEFAULT 'RSA_2048'
                              CHECK (key_algorithm IN ('RSA_1024', 'RSA_2048', 'RSA_3072', 'RSA_4096',
                                                       'EC_prime256v1', 'EC_secp384r1', 'EC_secp521r1')),
    tags                      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    status                    text,
    domain_validation_records jsonb,
    not_before                timestamptz,
    not_after                 timestamptz,
    type                      text,
    in_use_by                 jsonb,
    synced_at                 timestamptz
);
SELECT infra.manage('aws.acm_certificate');
