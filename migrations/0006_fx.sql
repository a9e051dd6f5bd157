-- FX rate history. Insert-only: every upsert appends a row, so an aggregate can convert each
-- movement with the rate in force when it happened. `pool` is the tenant id for a tenant's own
-- rates or 'global' for the shared pool; a tenant's rate overrides the global one for its pair.
CREATE TABLE fx_rates (
    pool TEXT NOT NULL,
    id TEXT NOT NULL,
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    rate TEXT NOT NULL,
    source TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    created_by TEXT,
    PRIMARY KEY (pool, id)
);
CREATE INDEX fx_rates_pair_idx ON fx_rates (pool, base, quote, fetched_at);
