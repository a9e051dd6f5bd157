-- Replayed idempotent responses keep their content type (JSON or problem+json).
ALTER TABLE idempotency_keys ADD COLUMN content_type TEXT;
