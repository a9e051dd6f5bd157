-- Plugin storage: one document table shared by every WebAssembly plugin (see docs/plugins.md).
-- The host scopes every statement to (tenant_id, plugin) from the call it serves; a plugin only
-- names the collection and the document id. Up to four fields of a collection, declared in the
-- plugin's manifest, are copied into idx1..idx4 on each write for filters and ordering.
CREATE TABLE plugin_documents (
    tenant_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    -- The JSON object, as text.
    body TEXT NOT NULL,
    idx1 TEXT,
    idx2 TEXT,
    idx3 TEXT,
    idx4 TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin, collection, id)
);

CREATE INDEX plugin_documents_idx1 ON plugin_documents (tenant_id, plugin, collection, idx1, id);
CREATE INDEX plugin_documents_idx2 ON plugin_documents (tenant_id, plugin, collection, idx2, id);
CREATE INDEX plugin_documents_idx3 ON plugin_documents (tenant_id, plugin, collection, idx3, id);
CREATE INDEX plugin_documents_idx4 ON plugin_documents (tenant_id, plugin, collection, idx4, id);
CREATE INDEX plugin_documents_created ON plugin_documents (tenant_id, plugin, collection, created_at, id);

-- Per-tenant configuration of a plugin (`config` capability). Secrets are encrypted with the
-- engine's secret key (SecretBox), as a JSON object of name -> ciphertext.
CREATE TABLE plugin_configs (
    tenant_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    secrets TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin)
);
