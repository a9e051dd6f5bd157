-- Revisions of plugin documents (lumire:plugin@0.3.0 `transaction`): 1 when a document is created,
-- one more on every write. A write that expects a revision applies only while the document is
-- still at it (optimistic concurrency: two plugins or two requests never overwrite each other's
-- change unnoticed).
ALTER TABLE plugin_documents ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
