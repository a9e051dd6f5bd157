-- Plugin storage compares a collection's indexed fields as `COALESCE(idxN, '')` (a field a
-- document lacks reads as the empty string, and both databases order it the same way): filters,
-- orderings and cursors all use that expression. An index on the bare column serves none of them,
-- so a filtered or field-ordered page walked every document of the collection. These indexes are
-- on the expression itself; both SQLite and PostgreSQL use them (docs/plugins.md, "Storage").
DROP INDEX plugin_documents_idx1;
DROP INDEX plugin_documents_idx2;
DROP INDEX plugin_documents_idx3;
DROP INDEX plugin_documents_idx4;
CREATE INDEX plugin_documents_idx1 ON plugin_documents (tenant_id, plugin, collection, (COALESCE(idx1, '')), id);
CREATE INDEX plugin_documents_idx2 ON plugin_documents (tenant_id, plugin, collection, (COALESCE(idx2, '')), id);
CREATE INDEX plugin_documents_idx3 ON plugin_documents (tenant_id, plugin, collection, (COALESCE(idx3, '')), id);
CREATE INDEX plugin_documents_idx4 ON plugin_documents (tenant_id, plugin, collection, (COALESCE(idx4, '')), id);
