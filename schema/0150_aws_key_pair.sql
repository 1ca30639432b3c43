-- aws.key_pair: see providers/aws/src/ec2/key_pair.rs for column kinds.
-- Key pairs are imported from the user's public key; infrasql never holds a
-- private key.
CREATE TABLE aws.key_pair (
    key_pair_id         text PRIMARY KEY DEFAULT infra.provisional_id('key'),
    region              text NOT NULL DEFAULT infra.default_region(),
    key_name            text NOT NULL CHECK (length(key_name) BETWEEN 1 AND 255),
    public_key_material text NOT NULL CHECK (length(btrim(public_key_material)) > 0),
    tags                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    key_fingerprint     text,
    key_type            text,
    create_time         timestamptz,
    synced_at           timestamptz,
    UNIQUE (region, key_name)
);
SELECT infra.manage('aws.key_pair');
