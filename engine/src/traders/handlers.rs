//! Handlers of the trader operations.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    KYC_STATUSES, TRADER_COLUMNS, TraderRow, TraderView, check_address, check_referrer,
    clean_segments, load, view_json,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::{Validator, is_country};
use crate::util::{new_id, now};

use axum::Json;

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TraderView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {TRADER_COLUMNS} FROM traders WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if q.get("includeDeleted").map(String::as_str) != Some("true") {
        b.push(" AND deleted_at IS NULL");
    }
    for (param, column) in [
        ("country", "country"),
        ("kycStatus", "kyc_status"),
        ("status", "status"),
        ("source", "source"),
        ("assignedToId", "assigned_to_id"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(v) = q.get("email").filter(|v| !v.is_empty()) {
        b.push(" AND email_lower = ").text(v.to_lowercase());
    }
    if let Some(v) = q.get("segment").filter(|v| !v.is_empty()) {
        // Segments are stored as a JSON array of strings; match the quoted element.
        b.push(" AND segments LIKE ")
            .text(format!("%{}%", json!(v)));
    }
    if let Some(v) = q.get("q").filter(|v| !v.trim().is_empty()) {
        let like = format!("%{}%", v.trim().to_lowercase());
        b.push(" AND (email_lower LIKE ").text(like.clone());
        b.push(" OR LOWER(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '')) LIKE ")
            .text(like.clone());
        b.push(" OR COALESCE(phone, '') LIKE ").text(like);
        b.push(")");
    }
    for (param, op) in [("createdFrom", ">="), ("createdTo", "<")] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            if crate::util::parse_time(v).is_none() {
                return Err(ApiError::field(param, "must be an RFC 3339 time"));
            }
            b.push(&format!(" AND created_at {op} ")).text(v.clone());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<TraderRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(TraderView::from),
    ))
}

/// A new trader: the body of `POST /v1/traders`, also built by the engine itself (plugins'
/// core-records interface).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub segments: Option<Vec<String>>,
    pub source: Option<String>,
    pub assigned_to_id: Option<String>,
    pub metadata: Option<Value>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub region: Option<String>,
    pub referred_by_trader_id: Option<String>,
}

fn check_common(
    v: &mut Validator,
    phone: Option<&str>,
    country: Option<&str>,
    dob: Option<&str>,
    metadata: Option<&Value>,
    segments: Option<&Vec<String>>,
) {
    v.max_len("phone", phone, 32);
    if let Some(c) = country {
        v.check(
            is_country(c),
            "country",
            "must be an ISO 3166-1 alpha-2 code such as GB",
        );
    }
    v.date_of_birth("dateOfBirth", dob);
    if let Some(m) = metadata {
        v.check(m.is_object(), "metadata", "must be an object");
    }
    if let Some(s) = segments {
        v.check(s.len() <= 50, "segments", "at most 50 segments");
        v.check(
            s.iter().all(|x| x.len() <= 64),
            "segments",
            "each segment at most 64 characters",
        );
    }
}

/// An assignee must be an active member of the same tenant.
pub async fn check_assignee(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
    field: &str,
) -> ApiResult<()> {
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND status = 'active'",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::field(field, "is not a member of this tenant"))
}

async fn email_taken(
    tx: &mut Tx,
    tenant_id: &str,
    email_lower: &str,
    except: &str,
) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM traders WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL AND id <> $3",
    )
    .bind(tenant_id)
    .bind(email_lower)
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<TraderView>)> {
    let mut tx = st.db.begin().await?;
    let view = create_in(&mut tx, &actor, b).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Validates and inserts a trader inside `tx`, with its `trader.created` event and audit entry.
pub async fn create_in(tx: &mut Tx, actor: &Actor, b: CreateBody) -> ApiResult<TraderView> {
    create_with_id(tx, actor, b, new_id()).await
}

/// [`create_in`] under an id the caller chose with [`new_id`] (a plugin's transaction refers
/// to the trader before it commits).
pub async fn create_with_id(
    tx: &mut Tx,
    actor: &Actor,
    b: CreateBody,
    id: String,
) -> ApiResult<TraderView> {
    let mut v = Validator::new();
    let email = v.required("email", b.email.as_deref()).map(str::to_string);
    v.email("email", email.as_deref());
    check_common(
        &mut v,
        b.phone.as_deref(),
        b.country.as_deref(),
        b.date_of_birth.as_deref(),
        b.metadata.as_ref(),
        b.segments.as_ref(),
    );
    v.max_len("firstName", b.first_name.as_deref(), 100);
    v.max_len("lastName", b.last_name.as_deref(), 100);
    v.max_len("source", b.source.as_deref(), 100);
    check_address(
        &mut v,
        b.address_line1.as_deref(),
        b.address_line2.as_deref(),
        b.city.as_deref(),
        b.postal_code.as_deref(),
        b.region.as_deref(),
    );
    v.finish()?;
    let email = email.unwrap_or_default();
    if let Some(a) = &b.assigned_to_id {
        check_assignee(tx, &actor.tenant_id, a, "assignedToId").await?;
    }
    if let Some(r) = &b.referred_by_trader_id {
        check_referrer(tx, &actor.tenant_id, r, &id).await?;
    }
    if email_taken(tx, &actor.tenant_id, &email.to_lowercase(), "").await? {
        return Err(ApiError::conflict(
            "trader_email_taken",
            "A trader with this email already exists.",
        ));
    }
    let ts = now();
    let segments = clean_segments(&b.segments.unwrap_or_default());
    sqlx::query(
        "INSERT INTO traders (tenant_id, id, email, email_lower, phone, first_name, last_name, country, date_of_birth,
           segments, source, assigned_to_id, metadata, created_at, updated_at,
           address_line1, address_line2, city, postal_code, region, referred_by_trader_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&email)
    .bind(email.to_lowercase())
    .bind(&b.phone)
    .bind(&b.first_name)
    .bind(&b.last_name)
    .bind(&b.country)
    .bind(&b.date_of_birth)
    .bind(serde_json::to_string(&segments).unwrap_or_else(|_| "[]".into()))
    .bind(&b.source)
    .bind(&b.assigned_to_id)
    .bind(b.metadata.unwrap_or_else(|| json!({})).to_string())
    .bind(&ts)
    .bind(&b.address_line1)
    .bind(&b.address_line2)
    .bind(&b.city)
    .bind(&b.postal_code)
    .bind(&b.region)
    .bind(&b.referred_by_trader_id)
    .execute(&mut **tx)
    .await?;
    let view = TraderView::from(load(&mut **tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        tx,
        &actor.tenant_id,
        "trader.created",
        "trader",
        &id,
        &after,
    )
    .await?;
    audit::record(
        tx,
        actor,
        "trader.create",
        "trader",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    Ok(view)
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TraderView>> {
    Ok(Json(TraderView::from(
        load(st.db.pool(), &actor.tenant_id, &id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBody {
    #[serde(default)]
    email: Patch<String>,
    #[serde(default)]
    phone: Patch<String>,
    #[serde(default)]
    first_name: Patch<String>,
    #[serde(default)]
    last_name: Patch<String>,
    #[serde(default)]
    country: Patch<String>,
    #[serde(default)]
    date_of_birth: Patch<String>,
    #[serde(default)]
    segments: Patch<Vec<String>>,
    #[serde(default)]
    source: Patch<String>,
    #[serde(default)]
    assigned_to_id: Patch<String>,
    #[serde(default)]
    metadata: Patch<Value>,
    #[serde(default)]
    kyc_status: Patch<String>,
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
    #[serde(default)]
    referred_by_trader_id: Patch<String>,
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<TraderView>> {
    let mut v = Validator::new();
    match &b.email {
        Patch::Null => v.fail("email", "cannot be null"),
        Patch::Value(e) => v.email("email", Some(e)),
        Patch::Missing => {}
    }
    if matches!(b.kyc_status, Patch::Null) {
        v.fail("kycStatus", "cannot be null");
    }
    if matches!(b.segments, Patch::Null) {
        v.fail("segments", "cannot be null; use []");
    }
    if matches!(b.metadata, Patch::Null) {
        v.fail("metadata", "cannot be null; use {}");
    }
    v.one_of(
        "kycStatus",
        b.kyc_status.value().map(String::as_str),
        KYC_STATUSES,
    );
    check_common(
        &mut v,
        b.phone.value().map(String::as_str),
        b.country.value().map(String::as_str),
        b.date_of_birth.value().map(String::as_str),
        b.metadata.value(),
        b.segments.value(),
    );
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
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let before = view_json(&TraderView::from(cur.clone()));
    // A client record may be (re)submitted for KYC here; approving and rejecting are decisions
    // for the KYC roles, through the KYC operations.
    if let Patch::Value(k) = &b.kyc_status {
        let submits =
            k == "pending" && (cur.kyc_status == "not_started" || cur.kyc_status == "rejected");
        if *k != cur.kyc_status && !submits {
            return Err(ApiError::conflict(
                "illegal_kyc_transition",
                format!(
                    "kycStatus cannot go from {} to {k} here; KYC decisions use the KYC operations.",
                    cur.kyc_status
                ),
            ));
        }
    }
    if let Patch::Value(a) = &b.assigned_to_id {
        check_assignee(&mut tx, &actor.tenant_id, a, "assignedToId").await?;
    }
    if let Patch::Value(r) = &b.referred_by_trader_id {
        check_referrer(&mut tx, &actor.tenant_id, r, &id).await?;
    }
    let email = b
        .email
        .apply(Some(cur.email.clone()))
        .unwrap_or(cur.email.clone());
    if email.to_lowercase() != cur.email.to_lowercase()
        && email_taken(&mut tx, &actor.tenant_id, &email.to_lowercase(), &id).await?
    {
        return Err(ApiError::conflict(
            "trader_email_taken",
            "A trader with this email already exists.",
        ));
    }
    let segments = match b.segments {
        Patch::Value(s) => {
            serde_json::to_string(&clean_segments(&s)).unwrap_or_else(|_| "[]".into())
        }
        _ => cur.segments.clone(),
    };
    let metadata = match b.metadata {
        Patch::Value(m) => m.to_string(),
        _ => cur.metadata.clone(),
    };
    // The row is written back whole, so the KYC status it carries must still be the one read:
    // a KYC decision made meanwhile is never undone by an edit (409 instead).
    let cur_kyc = cur.kyc_status.clone();
    let done = sqlx::query(
        "UPDATE traders SET email = $3, email_lower = $4, phone = $5, first_name = $6, last_name = $7, country = $8,
           date_of_birth = $9, segments = $10, source = $11, assigned_to_id = $12, metadata = $13, kyc_status = $14, updated_at = $15,
           address_line1 = $16, address_line2 = $17, city = $18, postal_code = $19, region = $20, referred_by_trader_id = $21
         WHERE tenant_id = $1 AND id = $2 AND kyc_status = $22 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&email)
    .bind(email.to_lowercase())
    .bind(b.phone.apply(cur.phone))
    .bind(b.first_name.apply(cur.first_name))
    .bind(b.last_name.apply(cur.last_name))
    .bind(b.country.apply(cur.country))
    .bind(b.date_of_birth.apply(cur.date_of_birth))
    .bind(segments)
    .bind(b.source.apply(cur.source))
    .bind(b.assigned_to_id.apply(cur.assigned_to_id))
    .bind(metadata)
    .bind(b.kyc_status.apply(Some(cur.kyc_status.clone())).unwrap_or(cur.kyc_status))
    .bind(now())
    .bind(b.address_line1.apply(cur.address_line1))
    .bind(b.address_line2.apply(cur.address_line2))
    .bind(b.city.apply(cur.city))
    .bind(b.postal_code.apply(cur.postal_code))
    .bind(b.region.apply(cur.region))
    .bind(b.referred_by_trader_id.apply(cur.referred_by_trader_id))
    .bind(&cur_kyc)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("trader"));
    }
    let view = TraderView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "trader.updated",
        "trader",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "trader.update",
        "trader",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let before = view_json(&TraderView::from(cur));
    let ts = now();
    let done = sqlx::query(
        "UPDATE traders SET deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("trader"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "trader.deleted",
        "trader",
        &id,
        &json!({"id": id, "deletedAt": ts}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "trader.delete",
        "trader",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentsBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// Adds and removes segment names on one trader, inside the caller's transaction.
pub async fn change_segments(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    add: &[String],
    remove: &[String],
) -> ApiResult<TraderView> {
    let cur = load(&mut **tx, &actor.tenant_id, id).await?;
    let before = view_json(&TraderView::from(cur.clone()));
    let mut list = crate::util::parse_string_list(&cur.segments);
    list.retain(|s| !remove.iter().any(|r| r.trim() == s));
    list.extend(add.iter().cloned());
    let list = clean_segments(&list);
    if list.len() > 50 {
        return Err(ApiError::field(
            "add",
            "a trader can have at most 50 segments",
        ));
    }
    sqlx::query(
        "UPDATE traders SET segments = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(id)
    .bind(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
    .bind(now())
    .execute(&mut **tx)
    .await?;
    let view = TraderView::from(load(&mut **tx, &actor.tenant_id, id).await?);
    let after = view_json(&view);
    events::emit(tx, &actor.tenant_id, "trader.updated", "trader", id, &after).await?;
    audit::record(
        tx,
        actor,
        "trader.segments",
        "trader",
        Some(id),
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(view)
}

pub async fn segments(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SegmentsBody>,
) -> ApiResult<Json<TraderView>> {
    let mut v = Validator::new();
    v.check(
        !(b.add.is_empty() && b.remove.is_empty()),
        "add",
        "add or remove at least one segment",
    );
    v.check(
        b.add.iter().all(|s| !s.trim().is_empty() && s.len() <= 64),
        "add",
        "segments are 1-64 characters",
    );
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let view = change_segments(&mut tx, &actor, &id, &b.add, &b.remove).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    reason: Option<String>,
}

pub async fn suspend(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SuspendBody>,
) -> ApiResult<Json<TraderView>> {
    let mut v = Validator::new();
    let reason = v
        .required("reason", b.reason.as_deref())
        .map(str::to_string);
    v.max_len("reason", reason.as_deref(), 500);
    v.finish()?;
    set_suspension(&st, &actor, &id, reason).await
}

pub async fn unsuspend(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TraderView>> {
    set_suspension(&st, &actor, &id, None).await
}

async fn set_suspension(
    st: &AppState,
    actor: &Actor,
    id: &str,
    reason: Option<String>,
) -> ApiResult<Json<TraderView>> {
    let suspend = reason.is_some();
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, id).await?;
    let (from, to, event, code) = if suspend {
        (
            "active",
            "suspended",
            "trader.suspended",
            "already_suspended",
        )
    } else {
        ("suspended", "active", "trader.unsuspended", "not_suspended")
    };
    if cur.status != from {
        return Err(ApiError::conflict(
            code,
            format!("The trader is {}.", cur.status),
        ));
    }
    let before = view_json(&TraderView::from(cur));
    let ts = now();
    // Compare-and-set on the status read above: of racing requests one moves the trader, the
    // others write nothing and get 409.
    let done = sqlx::query(
        "UPDATE traders SET status = $3, suspended_at = $4, suspension_reason = $5, updated_at = $6
         WHERE tenant_id = $1 AND id = $2 AND status = $7 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(id)
    .bind(to)
    .bind(suspend.then(|| ts.clone()))
    .bind(&reason)
    .bind(&ts)
    .bind(from)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("trader"));
    }
    let view = TraderView::from(load(&mut *tx, &actor.tenant_id, id).await?);
    let after = view_json(&view);
    events::emit(&mut tx, &actor.tenant_id, event, "trader", id, &after).await?;
    audit::record(
        &mut tx,
        actor,
        event,
        "trader",
        Some(id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}
