//! `/v1/public/*`: customer sign-up, login, logout, `me`, the conversation with the broker and
//! crypto deposit requests.

use std::collections::HashMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chains;
use super::notifications::notify;
use super::views::{
    PortalTrader, PortalTransaction, TRANSACTION_COLUMNS, not_approved, portal_ids, to_json,
};
use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::session::{self, PORTAL_COOKIE, SessionSpec, Subject};
use crate::auth::{Actor, ClientInfo, password};
use crate::customers::model::{
    CUSTOMER_COLUMNS, CustomerRow, CustomerView, MESSAGE_COLUMNS, MessageRow, MessageView,
    clean_body, insert_message, record_login, view_json,
};
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::{Validator, is_country};
use crate::identity::{check_rate_limit, load_tenant, record_failure};
use crate::mail::{self, Mail};
use crate::traders::model::{TraderView, load as load_trader, view_json as trader_json};
use crate::util::{new_id, now};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    country: Option<String>,
    tenant_slug: Option<String>,
}

fn with_portal_cookie(st: &AppState, status: StatusCode, body: Value, cookie: &str) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            PORTAL_COOKIE,
            cookie,
            st.settings.session_ttl_hours * 3600,
            st.settings.cookie_secure,
        ),
    );
    resp
}

async fn tenant_by_slug(st: &AppState, slug: &str) -> ApiResult<Option<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(st.db.pool())
            .await?,
    )
}

async fn new_session(
    tx: &mut Tx,
    st: &AppState,
    tenant_id: &str,
    customer_id: &str,
    client: &ClientInfo,
) -> ApiResult<session::NewSession> {
    session::create(
        tx,
        SessionSpec {
            tenant_id,
            subject: Subject::Customer,
            subject_id: customer_id,
            ttl: Duration::hours(st.settings.session_ttl_hours),
            impersonator_id: None,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await
}

/// Creates a pending customer linked to the tenant's trader with the same e-mail (a new trader
/// with source "portal" when there is none) and starts a portal session.
pub async fn signup(
    State(st): State<AppState>,
    client: ClientInfo,
    ApiJson(b): ApiJson<SignupBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    let email = v.required("email", b.email.as_deref()).map(str::to_string);
    v.email("email", email.as_deref());
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    if let Some(p) = &pw {
        v.password("password", p);
    }
    let first = v
        .required("firstName", b.first_name.as_deref())
        .map(str::to_string);
    let last = v
        .required("lastName", b.last_name.as_deref())
        .map(str::to_string);
    v.max_len("firstName", first.as_deref(), 100);
    v.max_len("lastName", last.as_deref(), 100);
    let phone = b
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    v.max_len("phone", phone.as_deref(), 32);
    if let Some(c) = &b.country {
        v.check(
            is_country(c),
            "country",
            "must be an ISO 3166-1 alpha-2 code such as GB",
        );
    }
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    v.finish()?;
    let (email, pw, slug, first, last) = (
        email.unwrap_or_default(),
        pw.unwrap_or_default(),
        slug.unwrap_or_default(),
        first.unwrap_or_default(),
        last.unwrap_or_default(),
    );
    let email_lower = email.to_lowercase();
    let Some((tenant_id, broker)) = tenant_by_slug(&st, &slug).await? else {
        return Err(ApiError::field("tenantSlug", "no broker uses this slug"));
    };
    let hash = password::hash(pw).await?;

    let mut tx = st.db.begin().await?;
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM customers WHERE tenant_id = $1 AND email_lower = $2")
            .bind(&tenant_id)
            .bind(&email_lower)
            .fetch_optional(&mut *tx)
            .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(
            "customer_email_taken",
            "A portal account with this e-mail already exists; log in instead.",
        ));
    }
    let ts = now();
    let existing: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM traders WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
    )
    .bind(&tenant_id)
    .bind(&email_lower)
    .fetch_optional(&mut *tx)
    .await?;
    let trader_id = match existing {
        Some((id,)) => id,
        None => {
            let id = new_id();
            sqlx::query(
                "INSERT INTO traders (tenant_id, id, email, email_lower, phone, first_name, last_name, country, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'portal', $9, $9)",
            )
            .bind(&tenant_id)
            .bind(&id)
            .bind(&email)
            .bind(&email_lower)
            .bind(&phone)
            .bind(&first)
            .bind(&last)
            .bind(&b.country)
            .bind(&ts)
            .execute(&mut *tx)
            .await?;
            let view = TraderView::from(load_trader(&mut *tx, &tenant_id, &id).await?);
            events::emit(
                &mut tx,
                &tenant_id,
                "trader.created",
                "trader",
                &id,
                &trader_json(&view),
            )
            .await?;
            id
        }
    };
    let customer_id = new_id();
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, email, email_lower, password_hash, first_name, last_name, phone, country,
           status, trader_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)",
    )
    .bind(&tenant_id)
    .bind(&customer_id)
    .bind(&email)
    .bind(&email_lower)
    .bind(&hash)
    .bind(&first)
    .bind(&last)
    .bind(&phone)
    .bind(&b.country)
    .bind(&trader_id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let s = new_session(&mut tx, &st, &tenant_id, &customer_id, &client).await?;
    record_login(
        &mut *tx,
        &tenant_id,
        &customer_id,
        true,
        client.ip.as_deref(),
        client.user_agent.as_deref(),
    )
    .await?;
    sqlx::query("UPDATE customers SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&tenant_id)
        .bind(&customer_id)
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
    let view =
        CustomerView::from(crate::customers::load(&mut *tx, &tenant_id, &customer_id).await?);
    let after = view_json(&view);
    mail::enqueue(
        &mut tx,
        Mail {
            tenant_id: &tenant_id,
            to: &email,
            subject: &format!("{broker}: we received your application"),
            body: "Thank you for signing up. Your account is pending review; we will e-mail you once it is approved.\n",
            template: "customer_signup",
        },
    )
    .await?;
    events::emit(
        &mut tx,
        &tenant_id,
        "customer.created",
        "customer",
        &customer_id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "customer",
            actor_id: Some(&customer_id),
            label: Some(&email),
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "customer.signup",
        "customer",
        Some(&customer_id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(with_portal_cookie(
        &st,
        StatusCode::CREATED,
        json!({"customer": view, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginBody {
    email: Option<String>,
    password: Option<String>,
    tenant_slug: Option<String>,
}

/// Rate limited per tenant and e-mail like operator login. Every attempt against a known
/// customer is recorded in its login history; a rejected customer cannot log in.
pub async fn login(
    State(st): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(b): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    let email = v
        .required("email", b.email.as_deref())
        .map(|e| e.to_lowercase());
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    v.finish()?;
    let (email, pw, slug) = (
        email.unwrap_or_default(),
        pw.unwrap_or_default(),
        slug.unwrap_or_default(),
    );
    let scope_key = format!("portal-login:{slug}:{email}");
    check_rate_limit(&st, &scope_key, false).await?;

    let tenant = tenant_by_slug(&st, &slug).await?;
    let customer: Option<CustomerRow> =
        match &tenant {
            Some((tid, _)) => sqlx::query_as(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = $1 AND email_lower = $2"
            ))
            .bind(tid)
            .bind(&email)
            .fetch_optional(st.db.pool())
            .await?,
            None => None,
        };
    let ok = password::verify(pw, customer.as_ref().map(|c| c.password_hash.clone())).await?;
    let (Some((tenant_id, _)), Some(customer)) = (tenant, customer) else {
        record_failure(&st, &scope_key).await?;
        return Err(ApiError::Unauthorized("invalid_credentials"));
    };
    let (ip, ua) = (client.ip.as_deref(), client.user_agent.as_deref());
    if !ok {
        record_failure(&st, &scope_key).await?;
        record_login(st.db.pool(), &tenant_id, &customer.id, false, ip, ua).await?;
        return Err(ApiError::Unauthorized("invalid_credentials"));
    }
    if customer.status == "rejected" {
        record_login(st.db.pool(), &tenant_id, &customer.id, false, ip, ua).await?;
        return Err(ApiError::Forbidden(
            "This portal account was not approved by the broker.".into(),
        ));
    }
    sqlx::query("DELETE FROM auth_failures WHERE scope_key = $1")
        .bind(&scope_key)
        .execute(st.db.pool())
        .await?;

    let mut tx = st.db.begin().await?;
    // Session rotation: whatever portal session the browser held is revoked.
    if let Some(old) = session::read_cookie(&headers, PORTAL_COOKIE) {
        session::revoke_by_cookie(&mut tx, old).await?;
    }
    let s = new_session(&mut tx, &st, &tenant_id, &customer.id, &client).await?;
    record_login(&mut *tx, &tenant_id, &customer.id, true, ip, ua).await?;
    sqlx::query("UPDATE customers SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&tenant_id)
        .bind(&customer.id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "customer",
            actor_id: Some(&customer.id),
            label: Some(&customer.email),
            impersonator_id: None,
            ip,
        },
        "customer.login",
        "session",
        Some(&s.id),
        None,
        None,
    )
    .await?;
    let view =
        CustomerView::from(crate::customers::load(&mut *tx, &tenant_id, &customer.id).await?);
    tx.commit().await?;
    Ok(with_portal_cookie(
        &st,
        StatusCode::OK,
        json!({"customer": view, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    ))
}

pub async fn logout(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(cookie) = session::read_cookie(&headers, PORTAL_COOKIE) {
        let mut tx = st.db.begin().await?;
        if let Some((tenant_id, session_id)) = session::revoke_by_cookie(&mut tx, cookie).await? {
            audit::record(
                &mut tx,
                AuditActor {
                    tenant_id: &tenant_id,
                    actor_type: "customer",
                    actor_id: None,
                    label: None,
                    impersonator_id: None,
                    ip: None,
                },
                "customer.logout",
                "session",
                Some(&session_id),
                None,
                None,
            )
            .await?;
        }
        tx.commit().await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(PORTAL_COOKIE, st.settings.cookie_secure),
    );
    Ok(resp)
}

pub async fn me(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let (customer_id, trader_id) = portal_ids(&actor)?;
    let customer = crate::customers::load(st.db.pool(), &actor.tenant_id, customer_id).await?;
    // The trader record is shown only once the broker approved the customer (see approved_ids).
    let trader = if customer.status == "approved" {
        Some(PortalTrader::from(
            load_trader(st.db.pool(), &actor.tenant_id, trader_id).await?,
        ))
    } else {
        None
    };
    let tenant = load_tenant(st.db.pool(), &actor.tenant_id).await?;
    Ok(Json(json!({
        "customer": CustomerView::from(customer),
        "trader": trader,
        "tenant": {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.name,
            "branding": tenant.branding,
            "logoUrl": tenant.logo_url,
            "baseCurrency": tenant.base_currency,
        },
        "session": {"id": actor.session_id},
    })))
}

pub async fn list_messages(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<MessageView>>> {
    let (customer_id, _) = portal_ids(&actor)?;
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM customer_messages WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    b.push(" AND customer_id = ").text(customer_id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<MessageRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(MessageView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    body: Option<String>,
}

pub async fn post_message(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<MessageBody>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let (customer_id, _) = portal_ids(&actor)?;
    let mut v = Validator::new();
    let body = clean_body(&mut v, b.body.as_deref());
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let msg = insert_message(
        &mut tx,
        &actor.tenant_id,
        customer_id,
        "inbound",
        &body,
        None,
    )
    .await?;
    let after = to_json(&msg);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer_message.received",
        "customer_message",
        &msg.id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer_message.received",
        "customer_message",
        Some(&msg.id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(msg)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoDepositBody {
    chain: Option<String>,
    /// A decimal string (`"250.50"`); a JSON number is accepted too, as in the reference.
    amount: Option<Value>,
}

pub const DEPOSIT_NOTICE: &str = "Recorded as a pending deposit. No money moves and nothing is credited to your account until the broker's finance team confirms the payment on chain and settles it.";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CryptoDepositView {
    #[serde(flatten)]
    transaction: PortalTransaction,
    chain: String,
    notice: &'static str,
}

/// At most 6 decimal places (stablecoin precision) and below one trillion.
fn parse_amount(v: &mut Validator, raw: Option<&Value>) -> Option<Decimal> {
    let text = match raw {
        None | Some(Value::Null) => {
            v.fail("amount", "is required");
            return None;
        }
        Some(Value::String(s)) => {
            if let Err(e) = crate::money::canonical(s) {
                v.fail("amount", e.message());
                return None;
            }
            s.clone()
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            v.fail("amount", "must be a decimal string such as \"250.50\"");
            return None;
        }
    };
    match Decimal::from_str(&text) {
        Ok(d) if d <= Decimal::ZERO => {
            v.fail("amount", "must be greater than zero");
            None
        }
        Ok(d) if d.normalize().scale() > 6 => {
            v.fail("amount", "at most 6 decimal places");
            None
        }
        Ok(d) if d >= Decimal::from(1_000_000_000_000i64) => {
            v.fail("amount", "is too large");
            None
        }
        // Keep the scale the customer wrote ("250.50"), unless it only carries trailing zeros
        // beyond stablecoin precision.
        Ok(d) if d.scale() > 6 => Some(d.normalize()),
        Ok(d) => Some(d),
        Err(_) => {
            v.fail("amount", "must be a decimal string such as \"250.50\"");
            None
        }
    }
}

/// Records a pending crypto deposit for the customer's trader. It moves no money: finance
/// settles (or cancels) it once the payment is seen on chain.
pub async fn crypto_deposit(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CryptoDepositBody>,
) -> ApiResult<(StatusCode, Json<CryptoDepositView>)> {
    let (customer_id, trader_id) = portal_ids(&actor)?;
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
    let amount = parse_amount(&mut v, b.amount.as_ref());
    v.finish()?;
    let (Some(chain), Some(amount)) = (chain, amount) else {
        return Err(ApiError::internal("validated deposit fields missing"));
    };
    let mut tx = st.db.begin().await?;
    let customer = crate::customers::load(&mut *tx, &actor.tenant_id, customer_id).await?;
    if customer.status != "approved" {
        return Err(not_approved());
    }
    let trader = load_trader(&mut *tx, &actor.tenant_id, trader_id).await?;
    if trader.status != "active" {
        return Err(ApiError::conflict(
            "trader_suspended",
            "Your account is suspended; contact the broker.",
        ));
    }
    let id = new_id();
    let ts = now();
    let description = format!("{} deposit on {}", chain.currency, chain.code);
    sqlx::query(
        "INSERT INTO transactions (tenant_id, id, trader_id, account_id, kind, status, amount, currency, description,
           occurred_at, metadata, created_at)
         VALUES ($1, $2, $3, NULL, 'deposit', 'pending', $4, $5, $6, $7, $8, $7)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(trader_id)
    .bind(amount.to_string())
    .bind(chain.currency)
    .bind(&description)
    .bind(&ts)
    .bind(json!({"chain": chain.code, "channel": "portal", "customerId": customer_id}).to_string())
    .execute(&mut *tx)
    .await?;
    let transaction: PortalTransaction = sqlx::query_as(&format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(&actor.tenant_id)
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let view = CryptoDepositView {
        transaction,
        chain: chain.code.to_string(),
        notice: DEPOSIT_NOTICE,
    };
    let after = to_json(&view);
    notify(
        &mut tx,
        &actor.tenant_id,
        trader_id,
        "deposit.requested",
        "Deposit recorded",
        &format!(
            "Your {} {} deposit on {} is pending until the broker confirms it.",
            amount, chain.currency, chain.code
        ),
        &json!({"transactionId": id}),
    )
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "deposit.requested",
        "transaction",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "deposit.requested",
        "transaction",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}
