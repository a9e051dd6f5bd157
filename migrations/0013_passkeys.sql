-- Passkeys (WebAuthn). The tables `passkeys` and `webauthn_challenges` come from 0001.

-- The authenticator's signature counter, kept beside the serialised credential so clone
-- detection is one conditional UPDATE that holds across engine processes.
ALTER TABLE passkeys ADD COLUMN sign_count BIGINT NOT NULL DEFAULT 0;
CREATE INDEX passkeys_user_idx ON passkeys (tenant_id, user_id);

CREATE INDEX webauthn_challenges_user_idx ON webauthn_challenges (tenant_id, user_id, kind);
CREATE INDEX webauthn_challenges_expiry_idx ON webauthn_challenges (tenant_id, expires_at);

-- Per-tenant HMAC key from which passkey login derives stable decoy credential ids for
-- e-mails that have no passkey, so the answer does not reveal which accounts exist.
CREATE TABLE webauthn_decoy_keys (
    tenant_id TEXT NOT NULL,
    hmac_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id)
);
