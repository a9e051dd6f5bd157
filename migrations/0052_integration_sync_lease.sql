-- The scheduled sync: a process claims a configuration for one run with a lease, so several
-- engine processes sync each connector once per interval.
ALTER TABLE integration_configs ADD COLUMN sync_lease_until TEXT;
CREATE INDEX integration_configs_due_idx ON integration_configs (is_active, last_sync_at);
