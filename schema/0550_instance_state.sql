-- aws.instance, complete: the running state the row asks for (state stays
-- AWS's), the root volume's size and type, EBS optimization and detailed
-- monitoring. Column comments come from the provider's description
-- (providers/aws/src/ec2/instance.rs), written at start-up. Existing rows
-- keep running (the default); the other columns start NULL and the next
-- sync fills them in from AWS, as it does for an import.
ALTER TABLE aws.instance
    ADD COLUMN desired_state text NOT NULL DEFAULT 'running'
        CHECK (desired_state IN ('running', 'stopped')),
    ADD COLUMN root_volume_size int
        CHECK (root_volume_size BETWEEN 1 AND 65536),
    ADD COLUMN root_volume_type text
        CHECK (root_volume_type IN ('gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard')),
    ADD COLUMN ebs_optimized boolean,
    ADD COLUMN monitoring boolean;

-- An instance stopped before the upgrade asks to stay stopped: otherwise
-- the next sync would record its state as drift on desired_state.
UPDATE aws.instance SET desired_state = 'stopped' WHERE state IN ('stopping', 'stopped');
