-- A VPC and a subnet in it, applied by dbmate in one transaction (its default).
-- migrate:up
INSERT INTO aws.vpc (name, cidr_block) VALUES ('dbmate-vpc', '10.7.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  VALUES ('dbmate-subnet', (SELECT vpc_id FROM aws.vpc WHERE name = 'dbmate-vpc'), '10.7.1.0/24', 'us-east-1a');

-- migrate:down
DELETE FROM aws.subnet WHERE name = 'dbmate-subnet';
DELETE FROM aws.vpc WHERE name = 'dbmate-vpc';
