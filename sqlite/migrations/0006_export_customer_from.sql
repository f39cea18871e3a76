-- The first hour exported for a customer mapping (odometer.ExportCustomer.From,
-- docs/export-aws.md): microseconds since the Unix epoch, UTC, of a whole
-- hour; NULL when the mapping does not set it, which means the hour it was
-- created in. Mappings made before this migration keep NULL, so they export
-- as they did.
ALTER TABLE export_customers ADD COLUMN from_hour INTEGER;
