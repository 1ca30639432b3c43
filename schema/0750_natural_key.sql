-- Natural keys (issue #12): what names a resource within a stack, declared
-- by each resource description (`ResourceSchema::natural_key`) and written
-- here at start-up with the rest of the description.
ALTER TABLE infra.resource_column ADD COLUMN natural_key int;
COMMENT ON COLUMN infra.resource_column.natural_key IS 'The column''s 1-based place in the table''s natural key (what names a resource within a stack); NULL when it is not part of it';
