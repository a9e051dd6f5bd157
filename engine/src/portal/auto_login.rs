//! Web-terminal auto-login: the portal hands the browser a short-lived, single-use token and the
//! terminal URL; the platform's web terminal redeems the token server-side ([`redeem`]) to open
//! the trading account without asking for its password.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::json;

use super::views::approved_ids;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::auth::session::split_credential;
use crate::db::Db;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::traders::model::load as load_trader;
use crate::util::{fmt_time, new_id, now, random_token, sha256_hex};

pub const TOKEN_TTL_SECS: i64 = 60;

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    platform: String,
    account_number: String,
    status: String,
    metadata: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoLogin {
    pub token: String,
    pub url: String,
    pub expires_at: String,
    pub account_id: String,
    pub platform: String,
    pub account_number: String,
}

/// Where the account's web terminal lives: `metadata.webTerminalUrl` of the trading account
/// when the platform connector set one, else `<public URL>/terminal/<platform>`.
fn terminal_base(st: &AppState, platform: &str, metadata: &str) -> String {
    let from_meta = serde_json::from_str::<serde_json::Value>(metadata)
        .ok()
        .and_then(|m| m["webTerminalUrl"].as_str().map(str::to_string))
        .filter(|u| {
            url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" || p.scheme() == "http")
        });
    from_meta.unwrap_or_else(|| {
        format!(
            "{}/terminal/{}",
            st.settings.public_url.trim_end_matches('/'),
            platform
        )
    })
}

pub async fn issue(
    State(st): State<AppState>,
    actor: Actor,
    Path(account_id): Path<String>,
) -> ApiResult<Json<AutoLogin>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let mut tx = st.db.begin().await?;
    let account: Option<AccountRow> = sqlx::query_as(
        "SELECT id, platform, account_number, status, metadata FROM trading_accounts
         WHERE tenant_id = $1 AND id = $2 AND trader_id = $3 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&account_id)
    .bind(trader_id)
    .fetch_optional(&mut *tx)
    .await?;
    let account = account.ok_or(ApiError::NotFound("account"))?;
    if load_trader(&mut *tx, &actor.tenant_id, trader_id)
        .await?
        .status
        != "active"
    {
        return Err(ApiError::conflict(
            "trader_suspended",
            "Your account is suspended; contact the broker.",
        ));
    }
    if account.status != "active" {
        return Err(ApiError::conflict(
            "account_not_active",
            format!("The trading account is {}.", account.status),
        ));
    }
    let secret = random_token();
    let id = new_id();
    let created = Utc::now();
    let expires_at = fmt_time(created + Duration::seconds(TOKEN_TTL_SECS));
    sqlx::query(
        "INSERT INTO platform_login_tokens (tenant_id, id, trader_id, account_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(trader_id)
    .bind(&account.id)
    .bind(sha256_hex(&secret))
    .bind(fmt_time(created))
    .bind(&expires_at)
    .execute(&mut *tx)
    .await?;
    let token = format!("{}.{}", actor.tenant_id, secret);
    let base = terminal_base(&st, &account.platform, &account.metadata);
    let mut url = url::Url::parse(&base).map_err(ApiError::internal)?;
    url.query_pairs_mut()
        .append_pair("account", &account.account_number)
        .append_pair("token", &token);
    // The token itself never reaches the event or audit log.
    let record = json!({"tokenId": id, "accountId": account.id, "expiresAt": expires_at});
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "account.auto_login_issued",
        "trading_account",
        &account.id,
        &record,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "account.auto_login_issued",
        "trading_account",
        Some(&account.id),
        None,
        Some(&record),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(AutoLogin {
        token,
        url: url.to_string(),
        expires_at,
        account_id: account.id,
        platform: account.platform,
        account_number: account.account_number,
    }))
}

/// What a redeemed token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub tenant_id: String,
    pub trader_id: String,
    pub account_id: String,
}

/// Consumes an auto-login token for the platform's web terminal. `None` when the token is
/// unknown, already used or expired; a token works once.
pub async fn redeem(db: &Db, token: &str) -> Result<Option<Redeemed>, ApiError> {
    let Some((tenant_id, secret)) = split_credential(token) else {
        return Ok(None);
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE platform_login_tokens SET used_at = $3
         WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING trader_id, account_id",
    )
    .bind(tenant_id)
    .bind(sha256_hex(secret))
    .bind(now())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(trader_id, account_id)| Redeemed {
        tenant_id: tenant_id.to_string(),
        trader_id,
        account_id,
    }))
}
