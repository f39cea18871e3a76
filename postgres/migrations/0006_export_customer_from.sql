-- The first hour exported for a customer mapping (odometer.ExportCustomer.From,
-- docs/export-aws.md), a whole UTC hour; NULL when the mapping does not set
-- it, which means the hour it was created in. Mappings made before this
-- migration keep NULL, so they export as they did. Adding a nullable column
-- without a default rewrites no rows.
ALTER TABLE export_customers ADD COLUMN from_hour timestamptz;
