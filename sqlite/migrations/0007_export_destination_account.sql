-- The operator's AWS account a destination sends with
-- (odometer.ExportDestination.Account, docs/export-aws.md "AWS accounts and
-- grants"). Destinations made before it get '', which means the only
-- account granted to their namespace.
--
-- The endpoint column is no longer read or written (new rows get ''): where
-- requests go is the operator's to say, in the config file
-- (aws.accounts[].endpoint), never a destination's. Existing values are
-- left in place for the operator to look at, and are never used.
ALTER TABLE export_destinations ADD COLUMN account TEXT NOT NULL DEFAULT '';
