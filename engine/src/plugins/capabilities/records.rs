//! `records`: the calling tenant's traders, trading accounts and positions (capability
//! `core-records`). Reads and writes go through the engine's own domain functions, so a trader
//! a plugin creates is validated, audited and announced (`trader.created`) like any other.

use super::super::bindings::records::{Error, Host, NewTrader, Position, Trader, TradingAccount};
use super::super::host::HostState;
use crate::auth::Actor;
use crate::db::Db;
use crate::http::error::ApiError;
use crate::traders::handlers::{CreateBody, create_in};
use crate::traders::model::{TraderRow, load};

fn api_err(e: ApiError) -> Error {
    match e {
        ApiError::Validation(fields) => Error::Invalid(
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ApiError::NotFound(_) => Error::NotFound,
        ApiError::Conflict { detail, .. } => Error::Conflict(detail),
        dup @ ApiError::Duplicate { .. } => Error::Conflict(dup.to_string()),
        ApiError::BadRequest { detail, .. } => Error::Invalid(detail),
        other => {
            tracing::warn!(error = %other, "plugin core-records call failed");
            Error::Unavailable("the engine could not complete the call".into())
        }
    }
}

fn db_err(e: sqlx::Error) -> Error {
    api_err(ApiError::from(e))
}

pub(super) fn trader(r: TraderRow) -> Trader {
    Trader {
        id: r.id,
        email: r.email,
        first_name: r.first_name,
        last_name: r.last_name,
        phone: r.phone,
        country: r.country,
        status: r.status,
        created_at: r.created_at,
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    trader_id: String,
    account_number: String,
    platform: String,
    currency: String,
    balance: String,
    equity: String,
    status: String,
}

impl From<AccountRow> for TradingAccount {
    fn from(r: AccountRow) -> Self {
        TradingAccount {
            id: r.id,
            trader_id: r.trader_id,
            login: r.account_number,
            platform: r.platform,
            currency: r.currency,
            balance: r.balance,
            equity: r.equity,
            status: r.status,
        }
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, trader_id, account_number, platform, currency, balance, equity, status";

#[derive(sqlx::FromRow)]
struct PositionRow {
    id: String,
    account_id: String,
    symbol: String,
    side: String,
    volume: String,
    open_price: String,
    close_price: Option<String>,
    profit: Option<String>,
    commission: Option<String>,
    swap: Option<String>,
    opened_at: String,
    closed_at: Option<String>,
}

/// Most positions one `list-positions` call returns.
const MAX_POSITIONS: i64 = 1000;

impl HostState {
    /// The database and the tenant of this call, if the plugin was granted `core-records`.
    pub(super) fn records_scope(&self) -> Result<(Db, String), Error> {
        if !self.call.manifest.capabilities.core_records {
            return Err(Error::Denied);
        }
        let tenant = self.call.tenant_id.clone().ok_or(Error::Denied)?;
        let db = self.call.db.clone().ok_or(Error::Denied)?;
        Ok((db, tenant))
    }

    /// The actor a plugin's writes are audited as: the system, labelled with the plugin.
    pub fn plugin_actor(&self, tenant_id: &str) -> Actor {
        Actor::system(
            tenant_id,
            &format!(
                "plugin:{}@{}",
                self.call.manifest.name, self.call.manifest.version
            ),
        )
    }
}

/// The engine's create body for a plugin's new trader.
pub(super) fn create_body(t: NewTrader) -> CreateBody {
    CreateBody {
        email: Some(t.email),
        first_name: t.first_name,
        last_name: t.last_name,
        phone: t.phone,
        country: t.country,
        source: t.source,
        ..CreateBody::default()
    }
}

impl Host for HostState {
    async fn get_trader(&mut self, id: String) -> Result<Trader, Error> {
        let (db, tenant) = self.records_scope()?;
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        load(&mut *conn, &tenant, &id)
            .await
            .map(trader)
            .map_err(api_err)
    }

    async fn find_trader_by_email(&mut self, email: String) -> Result<Option<Trader>, Error> {
        let (db, tenant) = self.records_scope()?;
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        let id: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM traders WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
        )
        .bind(&tenant)
        .bind(email.trim().to_lowercase())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        match id {
            Some((id,)) => load(&mut *conn, &tenant, &id)
                .await
                .map(|r| Some(trader(r)))
                .map_err(api_err),
            None => Ok(None),
        }
    }

    async fn create_trader(&mut self, t: NewTrader) -> Result<Trader, Error> {
        let (db, tenant) = self.records_scope()?;
        let actor = self.plugin_actor(&tenant);
        let mut tx = self.begin_write(&db).await.map_err(db_err)?;
        let r = match create_in(&mut tx, &actor, create_body(t)).await {
            Ok(view) => load(&mut **tx, &tenant, &view.id).await,
            Err(e) => Err(e),
        };
        self.end_write(tx, r.is_ok()).await.map_err(db_err)?;
        r.map(trader).map_err(api_err)
    }

    async fn list_accounts(&mut self, trader_id: String) -> Result<Vec<TradingAccount>, Error> {
        let (db, tenant) = self.records_scope()?;
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        load(&mut *conn, &tenant, &trader_id)
            .await
            .map_err(api_err)?;
        let rows: Vec<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM trading_accounts
             WHERE tenant_id = $1 AND trader_id = $2 AND deleted_at IS NULL ORDER BY id"
        ))
        .bind(&tenant)
        .bind(&trader_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_account(&mut self, id: String) -> Result<TradingAccount, Error> {
        let (db, tenant) = self.records_scope()?;
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM trading_accounts
             WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(&tenant)
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        row.map(Into::into).ok_or(Error::NotFound)
    }

    async fn list_positions(
        &mut self,
        account_id: String,
        open: bool,
        closed_since: Option<String>,
    ) -> Result<Vec<Position>, Error> {
        let (db, tenant) = self.records_scope()?;
        self.get_account(account_id.clone()).await?;
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        // The limit is written into the statement so that PostgreSQL keeps one plan for it
        // (`SqlBuilder::limit`).
        let sql = if open {
            format!(
                "SELECT id, account_id, symbol, side, volume, open_price, close_price, profit, commission, swap, opened_at, closed_at
                 FROM positions WHERE tenant_id = $1 AND account_id = $2 AND closed_at IS NULL
                 ORDER BY opened_at, id LIMIT {MAX_POSITIONS}"
            )
        } else {
            format!(
                "SELECT id, account_id, symbol, side, volume, open_price, close_price, profit, commission, swap, opened_at, closed_at
                 FROM positions WHERE tenant_id = $1 AND account_id = $2 AND closed_at IS NOT NULL AND closed_at >= $3
                 ORDER BY closed_at, id LIMIT {MAX_POSITIONS}"
            )
        };
        let mut q = sqlx::query_as::<_, PositionRow>(&sql)
            .bind(&tenant)
            .bind(&account_id);
        if !open {
            q = q.bind(closed_since.unwrap_or_default());
        }
        let rows = q.fetch_all(&mut *conn).await.map_err(db_err)?;
        let zero = || "0".to_string();
        Ok(rows
            .into_iter()
            .map(|r| Position {
                id: r.id,
                account_id: r.account_id,
                symbol: r.symbol,
                side: r.side,
                volume: r.volume,
                open_price: r.open_price,
                close_price: r.close_price,
                profit: r.profit.unwrap_or_else(zero),
                commission: r.commission.unwrap_or_else(zero),
                swap: r.swap.unwrap_or_else(zero),
                opened_at: r.opened_at,
                closed_at: r.closed_at,
            })
            .collect())
    }
}
