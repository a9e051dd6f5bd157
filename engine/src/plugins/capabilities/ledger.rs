//! `ledger`: balanced entries posted by a plugin for the calling tenant (capability `ledger`),
//! through the engine's ledger API (`ledger::post`), so every invariant of the ledger holds for
//! them too. A post commits together with the plugin's storage writes, or not at all; its
//! idempotency key (unique per tenant and plugin) makes a retry return the first entry.

use std::str::FromStr as _;

use rust_decimal::Decimal;

use super::super::bindings::ledger::{AccountRef, Entry, Error, Host};
use super::super::bindings::storage::Write;
use super::super::host::HostState;
use super::super::manifest::Manifest;
use super::super::storage::{Scope, apply};
use crate::db::{Db, Tx};
use crate::ledger::{self, AccountSpec, House, LedgerError, Line, NewEntry};
use crate::util::now;

/// Most lines in one plugin entry.
const MAX_LINES: usize = 20;

fn house(name: &str) -> Result<House, Error> {
    Ok(match name {
        "cash" => House::Cash,
        "fees" => House::Fees,
        "bonuses" => House::Bonuses,
        "commissions" => House::Commissions,
        "payouts" => House::Payouts,
        other => {
            return Err(Error::Invalid(format!(
                "unknown house account {other:?} (cash, fees, bonuses, commissions, payouts)"
            )));
        }
    })
}

fn valid_plugin_account(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn db_err(e: sqlx::Error) -> Error {
    tracing::warn!(error = %e, "plugin ledger call failed");
    Error::Unavailable("the database failed".into())
}

fn ledger_err(e: LedgerError) -> Error {
    match e {
        LedgerError::InsufficientFunds(a) => Error::InsufficientFunds(a),
        LedgerError::Db(d) => db_err(d),
        LedgerError::Concurrent(_) => {
            Error::Unavailable("the balance changed concurrently; retry".into())
        }
        other => Error::Invalid(other.to_string()),
    }
}

fn storage_err(e: super::super::bindings::storage::Error) -> Error {
    use super::super::bindings::storage::Error as S;
    match e {
        S::Denied => Error::Denied,
        S::Invalid(m) => Error::Invalid(format!("storage write: {m}")),
        S::TooLarge => Error::Invalid("storage write: document too large".into()),
        S::Unavailable(m) => Error::Unavailable(m),
    }
}

/// Resolves an account reference to the tenant's ledger account (opened on first use).
async fn account_id(
    tx: &mut Tx,
    tenant: &str,
    plugin: &str,
    account: &AccountRef,
    currency: &str,
) -> Result<String, Error> {
    let acc = match account {
        AccountRef::TraderWallet(trader_id) => {
            let live: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM traders WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(tenant)
            .bind(trader_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
            if live.is_none() {
                return Err(Error::Invalid(format!("no trader {trader_id}")));
            }
            ledger::trader_wallet(tx, tenant, trader_id, currency).await
        }
        AccountRef::House(name) => ledger::house_account(tx, tenant, house(name)?, currency).await,
        AccountRef::Plugin(name) => {
            if !valid_plugin_account(name) {
                return Err(Error::Invalid(
                    "plugin account names are 1-32 of [a-z0-9-]".into(),
                ));
            }
            let code = format!("plugin:{plugin}:{name}");
            ledger::open_account(
                tx,
                tenant,
                AccountSpec {
                    code: &code,
                    kind: "plugin",
                    owner_type: Some("plugin"),
                    owner_id: Some(plugin),
                    currency,
                    floor: None,
                },
            )
            .await
        }
    };
    acc.map(|a| a.id).map_err(ledger_err)
}

impl HostState {
    fn ledger_scope(&self) -> Result<(Db, String), Error> {
        if !self.call.manifest.capabilities.ledger {
            return Err(Error::Denied);
        }
        let tenant = self.call.tenant_id.clone().ok_or(Error::Denied)?;
        let db = self.call.db.clone().ok_or(Error::Denied)?;
        Ok((db, tenant))
    }
}

/// Posts `e` and applies `writes` inside `tx` for `manifest`'s plugin.
pub(super) async fn post_in(
    manifest: &Manifest,
    tx: &mut Tx,
    tenant: &str,
    e: &Entry,
    writes: &[Write],
) -> Result<String, Error> {
    let plugin = manifest.name.as_str();
    let key = e.idempotency_key.trim();
    if key.is_empty() || key.len() > 128 {
        return Err(Error::Invalid(
            "idempotency-key must be 1-128 characters".into(),
        ));
    }
    let kind_ok = !e.kind.is_empty()
        && e.kind.len() <= 32
        && e.kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b));
    if !kind_ok {
        return Err(Error::Invalid("kind must be 1-32 of [a-z0-9_-]".into()));
    }
    if e.lines.len() > MAX_LINES {
        return Err(Error::Invalid(format!("at most {MAX_LINES} lines")));
    }
    // Claim the key first: a concurrent or retried post with the same key waits on (or
    // hits) this row and then finds the first entry.
    let existing: Option<(String,)> = sqlx::query_as(
            "SELECT entry_id FROM plugin_ledger_keys WHERE tenant_id = $1 AND plugin = $2 AND idempotency_key = $3",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if let Some((id,)) = existing {
        return Ok(id);
    }
    let mut lines = Vec::with_capacity(e.lines.len());
    for l in &e.lines {
        let currency = l.currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::Invalid(format!(
                "currency {:?} is not an ISO 4217 code",
                l.currency
            )));
        }
        let amount = Decimal::from_str(l.amount.trim())
            .map_err(|_| Error::Invalid(format!("amount {:?} is not a decimal", l.amount)))?;
        let account_id = account_id(tx, tenant, plugin, &l.account, &currency).await?;
        lines.push(Line {
            account_id,
            currency,
            amount,
        });
    }
    let posted = ledger::post(
        tx,
        tenant,
        NewEntry {
            kind: format!("plugin:{plugin}:{}", e.kind),
            description: Some(e.description.chars().take(500).collect()),
            reference_type: Some(format!("plugin:{plugin}")),
            reference_id: Some(key.to_string()),
            created_by: Some(format!("plugin:{plugin}")),
            reverses_entry_id: None,
            lines,
        },
    )
    .await
    .map_err(ledger_err)?;
    sqlx::query(
        "INSERT INTO plugin_ledger_keys (tenant_id, plugin, idempotency_key, entry_id, created_at)
             VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(plugin)
    .bind(key)
    .bind(&posted.id)
    .bind(now())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let scope = Scope {
        tenant_id: tenant,
        manifest,
    };
    if !writes.is_empty() {
        if !manifest.capabilities.storage {
            return Err(Error::Denied);
        }
        apply(tx, &scope, writes).await.map_err(storage_err)?;
    }
    Ok(posted.id)
}

impl Host for HostState {
    async fn post(&mut self, e: Entry, writes: Vec<Write>) -> Result<String, Error> {
        let (db, tenant) = self.ledger_scope()?;
        let manifest = self.call.manifest.clone();
        let mut tx = self.begin_write(&db).await.map_err(db_err)?;
        let posted = post_in(&manifest, &mut tx, &tenant, &e, &writes).await;
        let ended = self.end_write(tx, posted.is_ok()).await;
        let id = posted?;
        match ended {
            Ok(()) => Ok(id),
            // Two posts with one key raced: the loser's insert of the key failed at commit
            // (or earlier); the winner's entry is the answer.
            Err(err) => {
                let winner: Option<(String,)> = sqlx::query_as(
                    "SELECT entry_id FROM plugin_ledger_keys WHERE tenant_id = $1 AND plugin = $2 AND idempotency_key = $3",
                )
                .bind(&tenant)
                .bind(&manifest.name)
                .bind(e.idempotency_key.trim())
                .fetch_optional(db.pool())
                .await
                .map_err(db_err)?;
                winner.map(|(id,)| id).ok_or_else(|| db_err(err))
            }
        }
    }

    async fn balance(&mut self, account: AccountRef, currency: String) -> Result<String, Error> {
        let (db, tenant) = self.ledger_scope()?;
        let currency = currency.trim().to_ascii_uppercase();
        let plugin = self.call.manifest.name.clone();
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        let code = match &account {
            AccountRef::House(name) => {
                return ledger::house_balance(&mut *conn, &tenant, house(name)?, &currency)
                    .await
                    .map(|d| d.to_string())
                    .map_err(ledger_err);
            }
            AccountRef::TraderWallet(t) => format!("trader:{t}:wallet"),
            AccountRef::Plugin(n) => format!("plugin:{plugin}:{n}"),
        };
        let b: Option<(String,)> = sqlx::query_as(
            "SELECT balance FROM ledger_accounts WHERE tenant_id = $1 AND code = $2 AND currency = $3",
        )
        .bind(&tenant)
        .bind(&code)
        .bind(&currency)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(b.map(|(s,)| s).unwrap_or_else(|| "0".into()))
    }
}
