-- aws.instance.iam_instance_profile (issue #13): the IAM instance profile an
-- instance runs with, by name, changed in place. See
-- providers/aws/src/ec2/instance/profile.rs. A new nullable column: rows of
-- a database made by the previous version keep their values (NULL: none,
-- filled in by the next sync where AWS reports one).
ALTER TABLE aws.instance
    ADD COLUMN iam_instance_profile text
        REFERENCES aws.iam_instance_profile (instance_profile_name) ON UPDATE CASCADE;
