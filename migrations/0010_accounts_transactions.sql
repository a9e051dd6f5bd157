-- Indexes behind the trading-account and transaction filters (transactions by account, by
-- occurrence time) and the admin trader stats (new traders by creation time).

CREATE INDEX transactions_account_idx ON transactions (tenant_id, account_id);
CREATE INDEX transactions_occurred_idx ON transactions (tenant_id, occurred_at);
CREATE INDEX traders_created_idx ON traders (tenant_id, created_at);
