//! `/v1/traders/me*`: the logged-in customer's own trader record, accounts, money, positions,
//! notifications, referrals, timeline, profile, terms and withdrawal allowlist.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chains;
use super::notifications::{NOTIFICATION_COLUMNS, NotificationRow, NotificationView, notify};
use super::views::{
    ACCOUNT_COLUMNS, ALLOWLIST_COLUMNS, AllowlistEntry, AllowlistRow, POSITION_COLUMNS,
    PortalAccount, PortalPosition, PortalTrader, PortalTransaction, TRANSACTION_COLUMNS,
    approved_ids, to_json,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::customers::model::{
    CustomerView, LoginRow, LoginView, MESSAGE_COLUMNS, MessageRow, MessageView,
};
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::{Validator, is_country};
use crate::mail::{self, Mail};
use crate::traders::model::{TraderView, check_address, load as load_trader, view_json};
use crate::util::{fmt_time, new_id, now};

fn page_of(q: &HashMap<String, String>) -> ApiResult<PageRequest> {
    PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Starts `SELECT <columns> FROM <table> WHERE tenant_id = .. AND <owner> = ..`.
fn owned(columns: &str, table: &str, tenant_id: &str, owner: &str, id: &str) -> SqlBuilder {
    let mut b = SqlBuilder::new(&format!("SELECT {columns} FROM {table} WHERE tenant_id = "));
    b.text(tenant_id);
    b.push(&format!(" AND {owner} = ")).text(id);
    b
}

/// Adds the keyset cursor, order and limit, runs the query and builds the page.
async fn run_page<T>(
    st: &AppState,
    mut b: SqlBuilder,
    page: &PageRequest,
    id_of: impl Fn(&T) -> &str,
) -> ApiResult<Page<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<T> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Page::from_rows(rows, page, id_of))
}

pub async fn get_me(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<PortalTrader>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    Ok(Json(PortalTrader::from(
        load_trader(st.db.pool(), &actor.tenant_id, trader_id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptTermsBody {
    version: Option<String>,
}

/// Records which terms version the trader accepted and when (each acceptance is audited).
pub async fn accept_terms(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<AcceptTermsBody>,
) -> ApiResult<Json<PortalTrader>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let mut v = Validator::new();
    let version = v
        .required("version", b.version.as_deref())
        .map(str::to_string);
    v.max_len("version", version.as_deref(), 64);
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load_trader(&mut *tx, &actor.tenant_id, trader_id).await?;
    let before = view_json(&TraderView::from(cur));
    let ts = now();
    sqlx::query(
        "UPDATE traders SET terms_accepted_at = $3, terms_version = $4, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(trader_id)
    .bind(&ts)
    .bind(&version)
    .execute(&mut *tx)
    .await?;
    let row = load_trader(&mut *tx, &actor.tenant_id, trader_id).await?;
    let after = view_json(&TraderView::from(row.clone()));
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "trader.terms_accepted",
        "trader",
        trader_id,
        &json!({"traderId": trader_id, "version": version, "acceptedAt": ts}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "trader.terms_accepted",
        "trader",
        Some(trader_id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PortalTrader::from(row)))
}

pub async fn accounts(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PortalAccount>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut b = owned(
        ACCOUNT_COLUMNS,
        "trading_accounts",
        &actor.tenant_id,
        "trader_id",
        trader_id,
    );
    b.push(" AND deleted_at IS NULL");
    Ok(Json(
        run_page(&st, b, &page, |r: &PortalAccount| &r.id).await?,
    ))
}

pub async fn transactions(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PortalTransaction>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut b = owned(
        TRANSACTION_COLUMNS,
        "transactions",
        &actor.tenant_id,
        "trader_id",
        trader_id,
    );
    for name in ["kind", "status"] {
        if let Some(v) = param(&q, name) {
            b.push(&format!(" AND {name} = ")).text(v);
        }
    }
    Ok(Json(
        run_page(&st, b, &page, |r: &PortalTransaction| &r.id).await?,
    ))
}

/// Positions reported by the platform connectors (`status=open|closed` filters).
pub async fn positions(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PortalPosition>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut v = Validator::new();
    v.one_of("status", param(&q, "status"), &["open", "closed"]);
    v.finish()?;
    let mut b = owned(
        POSITION_COLUMNS,
        "positions",
        &actor.tenant_id,
        "trader_id",
        trader_id,
    );
    match param(&q, "status") {
        Some("open") => {
            b.push(" AND closed_at IS NULL");
        }
        Some("closed") => {
            b.push(" AND closed_at IS NOT NULL");
        }
        _ => {}
    }
    if let Some(a) = param(&q, "accountId") {
        b.push(" AND account_id = ").text(a);
    }
    Ok(Json(
        run_page(&st, b, &page, |r: &PortalPosition| &r.id).await?,
    ))
}

/// The trader's notification feed (`unread=true` keeps unread ones only).
pub async fn notifications(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<NotificationView>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut b = owned(
        NOTIFICATION_COLUMNS,
        "trader_notifications",
        &actor.tenant_id,
        "trader_id",
        trader_id,
    );
    if param(&q, "unread") == Some("true") {
        b.push(" AND read_at IS NULL");
    }
    let p = run_page(&st, b, &page, |r: &NotificationRow| &r.id).await?;
    Ok(Json(p.map(NotificationView::from)))
}

#[derive(sqlx::FromRow)]
struct ReferralRow {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    created_at: String,
}

/// Only a first name and last initial: referrals are other people, whose contact details and
/// status the referrer has no right to see.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferralView {
    id: String,
    first_name: Option<String>,
    last_initial: Option<String>,
    joined_at: String,
}

pub async fn referrals(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<ReferralView>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut b = owned(
        "id, first_name, last_name, created_at",
        "traders",
        &actor.tenant_id,
        "referred_by_trader_id",
        trader_id,
    );
    b.push(" AND deleted_at IS NULL");
    let p = run_page(&st, b, &page, |r: &ReferralRow| &r.id).await?;
    Ok(Json(p.map(|r| {
        ReferralView {
            id: r.id,
            first_name: r.first_name,
            last_initial: r
                .last_name
                .and_then(|l| l.trim().chars().next())
                .map(|c| c.to_uppercase().collect()),
            joined_at: r.created_at,
        }
    })))
}

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    id: String,
    /// `transaction`, `login` or `message`.
    #[serde(rename = "type")]
    entry_type: String,
    at: String,
    /// Transaction kind, login outcome (`succeeded` / `failed`) or message direction.
    kind: String,
    status: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    /// Transaction description, login IP address or message text.
    detail: Option<String>,
}

const TIMELINE_TYPES: &[&str] = &["transaction", "login", "message"];

/// Transactions, portal logins and messages merged, newest first (`type` narrows to one kind).
pub async fn timeline(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TimelineEntry>>> {
    let (customer_id, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let mut v = Validator::new();
    v.one_of("type", param(&q, "type"), TIMELINE_TYPES);
    v.finish()?;
    let wanted = |t: &str| param(&q, "type").is_none_or(|w| w == t);
    let mut b =
        SqlBuilder::new("SELECT id, entry_type, at, kind, status, amount, currency, detail FROM (");
    let mut first = true;
    let mut union = |b: &mut SqlBuilder| {
        if !first {
            b.push(" UNION ALL ");
        }
        first = false;
    };
    if wanted("transaction") {
        union(&mut b);
        b.push("SELECT id, 'transaction' AS entry_type, created_at AS at, kind, status, amount, currency, description AS detail
                FROM transactions WHERE tenant_id = ");
        b.text(&actor.tenant_id);
        b.push(" AND trader_id = ").text(trader_id);
    }
    if wanted("login") {
        union(&mut b);
        b.push(
            "SELECT id, 'login' AS entry_type, created_at AS at,
                CASE WHEN success = 1 THEN 'succeeded' ELSE 'failed' END AS kind,
                NULL AS status, NULL AS amount, NULL AS currency, ip AS detail
                FROM customer_logins WHERE tenant_id = ",
        );
        b.text(&actor.tenant_id);
        b.push(" AND customer_id = ").text(customer_id);
    }
    if wanted("message") {
        union(&mut b);
        b.push(
            "SELECT id, 'message' AS entry_type, created_at AS at, direction AS kind,
                NULL AS status, NULL AS amount, NULL AS currency, body AS detail
                FROM customer_messages WHERE tenant_id = ",
        );
        b.text(&actor.tenant_id);
        b.push(" AND customer_id = ").text(customer_id);
    }
    b.push(") merged WHERE 1 = 1");
    Ok(Json(
        run_page(&st, b, &page, |r: &TimelineEntry| &r.id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileBody {
    #[serde(default)]
    phone: Patch<String>,
    #[serde(default)]
    first_name: Patch<String>,
    #[serde(default)]
    last_name: Patch<String>,
    #[serde(default)]
    date_of_birth: Patch<String>,
    #[serde(default)]
    country: Patch<String>,
    #[serde(default)]
    address_line1: Patch<String>,
    #[serde(default)]
    address_line2: Patch<String>,
    #[serde(default)]
    city: Patch<String>,
    #[serde(default)]
    postal_code: Patch<String>,
    #[serde(default)]
    region: Patch<String>,
}

impl ProfileBody {
    fn is_empty(&self) -> bool {
        [
            &self.phone,
            &self.first_name,
            &self.last_name,
            &self.date_of_birth,
            &self.country,
            &self.address_line1,
            &self.address_line2,
            &self.city,
            &self.postal_code,
            &self.region,
        ]
        .iter()
        .all(|p| p.is_missing())
    }
}

/// Trims a patched value; an empty string clears the field like `null`.
fn trimmed(p: Patch<String>) -> Patch<String> {
    match p {
        Patch::Value(s) if s.trim().is_empty() => Patch::Null,
        Patch::Value(s) => Patch::Value(s.trim().to_string()),
        other => other,
    }
}

/// Self-service profile edit. Identity fields (name, date of birth, country) cannot be cleared,
/// and changing one sends an already started KYC back to `pending` for a new review.
pub async fn update_profile(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ProfileBody>,
) -> ApiResult<Json<PortalTrader>> {
    let (customer_id, trader_id) = approved_ids(&st, &actor).await?;
    if b.is_empty() {
        return Err(ApiError::field("body", "give at least one field to change"));
    }
    let b = ProfileBody {
        phone: trimmed(b.phone),
        first_name: trimmed(b.first_name),
        last_name: trimmed(b.last_name),
        date_of_birth: trimmed(b.date_of_birth),
        country: trimmed(b.country),
        address_line1: trimmed(b.address_line1),
        address_line2: trimmed(b.address_line2),
        city: trimmed(b.city),
        postal_code: trimmed(b.postal_code),
        region: trimmed(b.region),
    };
    let mut v = Validator::new();
    for (field, p) in [
        ("firstName", &b.first_name),
        ("lastName", &b.last_name),
        ("dateOfBirth", &b.date_of_birth),
        ("country", &b.country),
    ] {
        if matches!(p, Patch::Null) {
            v.fail(field, "cannot be cleared");
        }
    }
    v.max_len("firstName", b.first_name.value().map(String::as_str), 100);
    v.max_len("lastName", b.last_name.value().map(String::as_str), 100);
    v.max_len("phone", b.phone.value().map(String::as_str), 32);
    if let Some(c) = b.country.value() {
        v.check(
            is_country(c),
            "country",
            "must be an ISO 3166-1 alpha-2 code such as GB",
        );
    }
    v.date_of_birth("dateOfBirth", b.date_of_birth.value().map(String::as_str));
    check_address(
        &mut v,
        b.address_line1.value().map(String::as_str),
        b.address_line2.value().map(String::as_str),
        b.city.value().map(String::as_str),
        b.postal_code.value().map(String::as_str),
        b.region.value().map(String::as_str),
    );
    v.finish()?;

    let mut tx = st.db.begin().await?;
    let cur = load_trader(&mut *tx, &actor.tenant_id, trader_id).await?;
    let before = view_json(&TraderView::from(cur.clone()));
    let first_name = b.first_name.apply(cur.first_name.clone());
    let last_name = b.last_name.apply(cur.last_name.clone());
    let dob = b.date_of_birth.apply(cur.date_of_birth.clone());
    let country = b.country.apply(cur.country.clone());
    let phone = b.phone.apply(cur.phone.clone());
    let sensitive = first_name != cur.first_name
        || last_name != cur.last_name
        || dob != cur.date_of_birth
        || country != cur.country;
    // A KYC never started has nothing to re-check; any other outcome must be reviewed again.
    let retrigger = sensitive && cur.kyc_status != "not_started";
    let kyc_status = if retrigger {
        "pending".to_string()
    } else {
        cur.kyc_status.clone()
    };
    let ts = now();
    sqlx::query(
        "UPDATE traders SET phone = $3, first_name = $4, last_name = $5, date_of_birth = $6, country = $7,
           address_line1 = $8, address_line2 = $9, city = $10, postal_code = $11, region = $12,
           kyc_status = $13, updated_at = $14
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(trader_id)
    .bind(&phone)
    .bind(&first_name)
    .bind(&last_name)
    .bind(&dob)
    .bind(&country)
    .bind(b.address_line1.apply(cur.address_line1.clone()))
    .bind(b.address_line2.apply(cur.address_line2.clone()))
    .bind(b.city.apply(cur.city.clone()))
    .bind(b.postal_code.apply(cur.postal_code.clone()))
    .bind(b.region.apply(cur.region.clone()))
    .bind(&kyc_status)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    // The portal account mirrors the contact fields it was signed up with.
    sqlx::query(
        "UPDATE customers SET first_name = $3, last_name = $4, phone = $5, country = $6, updated_at = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(customer_id)
    .bind(&first_name)
    .bind(&last_name)
    .bind(&phone)
    .bind(&country)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let row = load_trader(&mut *tx, &actor.tenant_id, trader_id).await?;
    let after = view_json(&TraderView::from(row.clone()));
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "trader.updated",
        "trader",
        trader_id,
        &after,
    )
    .await?;
    if retrigger {
        events::emit(
            &mut tx,
            &actor.tenant_id,
            "trader.kyc_retriggered",
            "trader",
            trader_id,
            &json!({"traderId": trader_id, "previousKycStatus": cur.kyc_status, "kycStatus": "pending"}),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        &actor,
        "trader.profile_updated",
        "trader",
        Some(trader_id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PortalTrader::from(row)))
}

pub async fn allowlist(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<AllowlistEntry>>> {
    let (_, trader_id) = approved_ids(&st, &actor).await?;
    let page = page_of(&q)?;
    let b = owned(
        ALLOWLIST_COLUMNS,
        "withdrawal_allowlist",
        &actor.tenant_id,
        "trader_id",
        trader_id,
    );
    let p = run_page(&st, b, &page, |r: &AllowlistRow| &r.id).await?;
    Ok(Json(p.map(AllowlistEntry::from)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistBody {
    chain: Option<String>,
    address: Option<String>,
    label: Option<String>,
}

pub const ALLOWLIST_DELAY_HOURS: i64 = 24;
pub const MAX_ALLOWLIST: i64 = 20;

/// Adds a withdrawal address. It becomes usable 24 hours later, and the customer is told by
/// e-mail and in the portal, so a hijacked session cannot add an address and withdraw at once
/// without the owner hearing about it.
pub async fn add_allowlist(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<AllowlistBody>,
) -> ApiResult<(StatusCode, Json<AllowlistEntry>)> {
    let (customer_id, trader_id) = approved_ids(&st, &actor).await?;
    let mut v = Validator::new();
    let chain = match v.required("chain", b.chain.as_deref()) {
        Some(c) => {
            let found = chains::find(c);
            if found.is_none() {
                v.fail(
                    "chain",
                    format!("must be one of: {}", chains::codes().join(", ")),
                );
            }
            found
        }
        None => None,
    };
    let address = v.required("address", b.address.as_deref());
    let normalised = match (chain, address) {
        (Some(c), Some(a)) => {
            let n = chains::normalise_address(c, a);
            if n.is_none() {
                v.fail("address", format!("is not a valid {} address", c.code));
            }
            n
        }
        _ => None,
    };
    let label = b
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    v.max_len("label", label.as_deref(), 64);
    v.finish()?;
    let (Some(chain), Some(address)) = (chain, normalised) else {
        return Err(ApiError::internal("validated allowlist fields missing"));
    };
    let mut tx = st.db.begin().await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM withdrawal_allowlist WHERE tenant_id = $1 AND trader_id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(trader_id)
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_ALLOWLIST {
        return Err(ApiError::conflict(
            "allowlist_full",
            format!("At most {MAX_ALLOWLIST} withdrawal addresses can be saved."),
        ));
    }
    let dup: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM withdrawal_allowlist WHERE tenant_id = $1 AND trader_id = $2 AND chain = $3 AND address = $4",
    )
    .bind(&actor.tenant_id)
    .bind(trader_id)
    .bind(chain.code)
    .bind(&address)
    .fetch_optional(&mut *tx)
    .await?;
    if dup.is_some() {
        return Err(ApiError::conflict(
            "allowlist_address_exists",
            "This address is already on your allowlist.",
        ));
    }
    let id = new_id();
    let created = Utc::now();
    let active_from = fmt_time(created + Duration::hours(ALLOWLIST_DELAY_HOURS));
    sqlx::query(
        "INSERT INTO withdrawal_allowlist (tenant_id, id, trader_id, chain, address, label, active_from, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(trader_id)
    .bind(chain.code)
    .bind(&address)
    .bind(&label)
    .bind(&active_from)
    .bind(fmt_time(created))
    .execute(&mut *tx)
    .await?;
    let entry = AllowlistEntry::from(AllowlistRow {
        id: id.clone(),
        chain: chain.code.to_string(),
        address: address.clone(),
        label,
        active_from: active_from.clone(),
        created_at: fmt_time(created),
    });
    let after = to_json(&entry);
    let text = format!(
        "A {} withdrawal address ending in {} was added to your account. It can be used from {}. If this was not you, contact the broker immediately.",
        chain.code,
        &address[address.len().saturating_sub(6)..],
        active_from
    );
    notify(
        &mut tx,
        &actor.tenant_id,
        trader_id,
        "withdrawal_address.added",
        "New withdrawal address",
        &text,
        &json!({"allowlistId": id}),
    )
    .await?;
    let customer = crate::customers::load(&mut *tx, &actor.tenant_id, customer_id).await?;
    mail::enqueue(
        &mut tx,
        Mail {
            tenant_id: &actor.tenant_id,
            to: &customer.email,
            subject: "New withdrawal address added",
            body: &format!("{text}\n"),
            template: "withdrawal_address_added",
        },
    )
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "withdrawal_address.added",
        "withdrawal_address",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "withdrawal_address.added",
        "withdrawal_address",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

#[derive(sqlx::FromRow)]
struct TagNameRow {
    id: String,
    name: String,
    applied_at: String,
}

/// GDPR access request: everything the engine holds about the trader, as one JSON document.
pub async fn export(State(st): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let (customer_id, trader_id) = approved_ids(&st, &actor).await?;
    let t = actor.tenant_id.as_str();
    let pool = st.db.pool();
    let trader = load_trader(pool, t, trader_id).await?;
    let customer = crate::customers::load(pool, t, customer_id).await?;
    let all = |cols: &str, table: &str, owner: &str, id: &str| {
        let mut b = owned(cols, table, t, owner, id);
        b.push(" ORDER BY id");
        b
    };
    let accounts: Vec<PortalAccount> =
        all(ACCOUNT_COLUMNS, "trading_accounts", "trader_id", trader_id)
            .query_as()
            .fetch_all(pool)
            .await?;
    let transactions: Vec<PortalTransaction> =
        all(TRANSACTION_COLUMNS, "transactions", "trader_id", trader_id)
            .query_as()
            .fetch_all(pool)
            .await?;
    let positions: Vec<PortalPosition> = all(POSITION_COLUMNS, "positions", "trader_id", trader_id)
        .query_as()
        .fetch_all(pool)
        .await?;
    let logins: Vec<LoginRow> = all(
        "id, success, ip, user_agent, created_at",
        "customer_logins",
        "customer_id",
        customer_id,
    )
    .query_as()
    .fetch_all(pool)
    .await?;
    let messages: Vec<MessageRow> = all(
        MESSAGE_COLUMNS,
        "customer_messages",
        "customer_id",
        customer_id,
    )
    .query_as()
    .fetch_all(pool)
    .await?;
    let notifications: Vec<NotificationRow> = all(
        NOTIFICATION_COLUMNS,
        "trader_notifications",
        "trader_id",
        trader_id,
    )
    .query_as()
    .fetch_all(pool)
    .await?;
    let allowlist: Vec<AllowlistRow> = all(
        ALLOWLIST_COLUMNS,
        "withdrawal_allowlist",
        "trader_id",
        trader_id,
    )
    .query_as()
    .fetch_all(pool)
    .await?;
    let tags: Vec<TagNameRow> = sqlx::query_as(
        "SELECT t.id, t.name, tt.created_at AS applied_at FROM trader_tags tt
         JOIN tags t ON t.tenant_id = tt.tenant_id AND t.id = tt.tag_id
         WHERE tt.tenant_id = $1 AND tt.trader_id = $2 ORDER BY tt.created_at",
    )
    .bind(t)
    .bind(trader_id)
    .fetch_all(pool)
    .await?;
    let exported_at = now();
    let bundle = json!({
        "exportedAt": exported_at,
        "trader": TraderView::from(trader),
        "customer": CustomerView::from(customer),
        "tags": tags.into_iter().map(|r| json!({"id": r.id, "name": r.name, "appliedAt": r.applied_at})).collect::<Vec<Value>>(),
        "accounts": accounts,
        "transactions": transactions,
        "positions": positions,
        "logins": logins.into_iter().map(LoginView::from).collect::<Vec<_>>(),
        "messages": messages.into_iter().map(MessageView::from).collect::<Vec<_>>(),
        "notifications": notifications.into_iter().map(NotificationView::from).collect::<Vec<_>>(),
        "withdrawalAllowlist": allowlist.into_iter().map(AllowlistEntry::from).collect::<Vec<_>>(),
    });
    let mut tx = st.db.begin().await?;
    audit::record(
        &mut tx,
        &actor,
        "trader.data_exported",
        "trader",
        Some(trader_id),
        None,
        Some(&json!({"exportedAt": exported_at})),
    )
    .await?;
    tx.commit().await?;
    let mut resp = Json(bundle).into_response();
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"my-data.json\""),
    );
    Ok(resp)
}
