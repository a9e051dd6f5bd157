-- API keys, team invitations and uploads: the lookups their operations need, and who did what.
-- Portable between SQLite and PostgreSQL; tenant_id leads every index.

-- Revoking or capping a member's keys when they are removed or demoted.
CREATE INDEX api_keys_creator_idx ON api_keys (tenant_id, created_by);

-- One pending invitation per address; the user an accepted invitation became.
CREATE INDEX invitations_email_idx ON invitations (tenant_id, email_lower);
ALTER TABLE invitations ADD COLUMN accepted_user_id TEXT;

-- Serving an object by the key a record points at (the tenant logo), and who asked for the upload.
CREATE INDEX objects_key_idx ON objects (tenant_id, object_key);
ALTER TABLE objects ADD COLUMN created_by TEXT;
