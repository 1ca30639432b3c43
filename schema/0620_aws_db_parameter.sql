-- aws.db_parameter: see providers/aws/src/rds/db_parameter.rs for column
-- kinds. One row per parameter the user set in a DB parameter group (the
-- group's defaults are not rows); DELETE resets it to the default. The
-- rows of a deleted group go with it (ON DELETE CASCADE): the plan resets
-- them first, and a reset in a group already gone is done.
CREATE TABLE aws.db_parameter (
    parameter_id            text NOT NULL UNIQUE DEFAULT infra.provisional_id('dbparam'),
    region                  text NOT NULL DEFAULT infra.default_region(),
    db_parameter_group_name text NOT NULL
                            REFERENCES aws.db_parameter_group (db_parameter_group_name)
                            ON UPDATE CASCADE ON DELETE CASCADE,
    parameter_name          text NOT NULL CHECK (parameter_name ~ '^[^/]{1,255}$'),
    parameter_value         text NOT NULL,
    apply_method            text NOT NULL DEFAULT 'immediate'
                            CHECK (apply_method IN ('immediate', 'pending-reboot')),
    synced_at               timestamptz,
    CONSTRAINT db_parameter_unique UNIQUE (db_parameter_group_name, parameter_name)
);
SELECT infra.manage('aws.db_parameter');
CREATE TRIGGER infrasql_local_region BEFORE INSERT OR UPDATE ON aws.db_parameter
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region(
        'db_parameter_group_name', 'aws.db_parameter_group', 'db_parameter_group_name');
