//! Bonus rules: storage, validation and the CRUD handlers.

use std::collections::HashMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::credit_lines::amount_field;
use crate::credit_lines::domain::to_json;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::{Validator, is_currency};
use crate::ledger;
use crate::util::{new_id, now};

pub const TRIGGERS: &[&str] = &["deposit"];
pub const KINDS: &[&str] = &["percent", "fixed"];
/// A percent rule pays at most ten times the deposit.
const MAX_PERCENT: u32 = 1000;

#[derive(sqlx::FromRow, Clone)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub trigger_kind: String,
    pub kind: String,
    pub value: String,
    pub max_bonus: Option<String>,
    pub min_deposit: Option<String>,
    pub currency: String,
    pub first_deposit_only: i64,
    pub active: i64,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const RULE_COLUMNS: &str = "id, name, description, trigger_kind, kind, value, max_bonus, min_deposit, currency, first_deposit_only, active, created_by, created_at, updated_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub trigger: String,
    pub kind: String,
    pub value: String,
    pub max_bonus: Option<String>,
    pub min_deposit: Option<String>,
    pub currency: String,
    pub first_deposit_only: bool,
    pub active: bool,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<RuleRow> for RuleView {
    fn from(r: RuleRow) -> Self {
        RuleView {
            first_deposit_only: r.first_deposit_only != 0,
            active: r.active != 0,
            id: r.id,
            name: r.name,
            description: r.description,
            trigger: r.trigger_kind,
            kind: r.kind,
            value: r.value,
            max_bonus: r.max_bonus,
            min_deposit: r.min_deposit,
            currency: r.currency,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A live (not deleted) rule of the tenant.
pub async fn load_rule<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<RuleRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM bonus_rules WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("bonus"))
}

/// The rules a deposit is evaluated against, oldest first.
pub async fn active_deposit_rules(tx: &mut Tx, tenant_id: &str) -> ApiResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM bonus_rules WHERE tenant_id = $1 AND deleted_at IS NULL AND active = 1 AND trigger_kind = 'deposit' ORDER BY id"
    ))
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// A percent value: a plain positive decimal up to `MAX_PERCENT`, at most 4 decimal places.
fn parse_percent(s: &str) -> Result<Decimal, String> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1
        && !s.starts_with('.')
        && !s.ends_with('.');
    let d = Decimal::from_str(s)
        .ok()
        .filter(|_| plain)
        .ok_or("must be a decimal string such as \"50\" (percent)")?;
    if d.normalize().scale() > 4 {
        return Err("has at most 4 decimal places".into());
    }
    if d <= Decimal::ZERO || d > Decimal::from(MAX_PERCENT) {
        return Err(format!("must be greater than 0 and at most {MAX_PERCENT}"));
    }
    Ok(d)
}

/// The checked fields of a rule, as they will be stored.
struct Checked {
    name: String,
    description: Option<String>,
    trigger: String,
    kind: String,
    value: String,
    max_bonus: Option<String>,
    min_deposit: Option<String>,
    currency: String,
    first_deposit_only: bool,
    active: bool,
}

fn check(v: &mut Validator, c: &Checked) {
    v.check(!c.name.trim().is_empty(), "name", "is required");
    v.max_len("name", Some(&c.name), 120);
    v.max_len("description", c.description.as_deref(), 1000);
    v.one_of("trigger", Some(&c.trigger), TRIGGERS);
    v.one_of("kind", Some(&c.kind), KINDS);
    let currency_ok = is_currency(&c.currency);
    v.check(
        currency_ok,
        "currency",
        "must be an ISO 4217 code such as USD",
    );
    let cur = if currency_ok {
        c.currency.as_str()
    } else {
        "USD"
    };
    if c.kind == "percent" {
        if let Err(msg) = parse_percent(&c.value) {
            v.fail("value", msg);
        }
    } else if c.kind == "fixed" {
        amount_field(v, "value", Some(&c.value), cur);
    }
    if let Some(m) = &c.max_bonus {
        amount_field(v, "maxBonus", Some(m), cur);
    }
    if let Some(m) = &c.min_deposit {
        amount_field(v, "minDeposit", Some(m), cur);
    }
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<RuleView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {RULE_COLUMNS} FROM bonus_rules WHERE deleted_at IS NULL AND tenant_id = "
    ));
    b.text(&actor.tenant_id);
    for (param, column) in [
        ("currency", "currency"),
        ("kind", "kind"),
        ("trigger", "trigger_kind"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    match q.get("active").map(String::as_str) {
        None | Some("") => {}
        Some("true") => {
            b.push(" AND active = 1");
        }
        Some("false") => {
            b.push(" AND active = 0");
        }
        Some(_) => return Err(ApiError::field("active", "must be true or false")),
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<RuleRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(RuleView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    trigger: Option<String>,
    kind: Option<String>,
    value: Option<String>,
    max_bonus: Option<String>,
    min_deposit: Option<String>,
    currency: Option<String>,
    first_deposit_only: Option<bool>,
    active: Option<bool>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    let kind = v.required("kind", b.kind.as_deref()).map(str::to_string);
    let value = v.required("value", b.value.as_deref()).map(str::to_string);
    let currency = v
        .required("currency", b.currency.as_deref())
        .map(str::to_string);
    let c = Checked {
        name: name.unwrap_or_else(|| "-".into()),
        description: b.description,
        trigger: b.trigger.unwrap_or_else(|| "deposit".into()),
        kind: kind.unwrap_or_else(|| "fixed".into()),
        value: value.unwrap_or_else(|| "1".into()),
        max_bonus: b.max_bonus,
        min_deposit: b.min_deposit,
        currency: currency.unwrap_or_else(|| "USD".into()),
        first_deposit_only: b.first_deposit_only.unwrap_or(false),
        active: b.active.unwrap_or(true),
    };
    check(&mut v, &c);
    v.finish()?;
    let id = new_id();
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "INSERT INTO bonus_rules (tenant_id, id, name, description, trigger_kind, kind, value, max_bonus, min_deposit, currency, first_deposit_only, active, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(c.name.trim())
    .bind(&c.description)
    .bind(&c.trigger)
    .bind(&c.kind)
    .bind(&c.value)
    .bind(&c.max_bonus)
    .bind(&c.min_deposit)
    .bind(&c.currency)
    .bind(i64::from(c.first_deposit_only))
    .bind(i64::from(c.active))
    .bind(actor.user_id.as_deref())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = RuleView::from(load_rule(&mut *tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "bonus.created",
        "bonus",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "bonus.create",
        "bonus",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleView>> {
    Ok(Json(
        load_rule(st.db.pool(), &actor.tenant_id, &id).await?.into(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBody {
    name: Option<String>,
    #[serde(default)]
    description: Patch<String>,
    trigger: Option<String>,
    kind: Option<String>,
    value: Option<String>,
    #[serde(default)]
    max_bonus: Patch<String>,
    #[serde(default)]
    min_deposit: Patch<String>,
    currency: Option<String>,
    first_deposit_only: Option<bool>,
    active: Option<bool>,
}

/// Partial update; `null` clears description, maxBonus or minDeposit. Past issuances keep the
/// amounts they were issued with.
pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<RuleView>> {
    let mut tx = st.db.begin().await?;
    let cur = load_rule(&mut *tx, &actor.tenant_id, &id).await?;
    let before_view = RuleView::from(cur.clone());
    let (read_active, read_at) = (cur.active, cur.updated_at.clone());
    let c = Checked {
        name: b.name.unwrap_or(cur.name),
        description: b.description.apply(cur.description),
        trigger: b.trigger.unwrap_or(cur.trigger_kind),
        kind: b.kind.unwrap_or(cur.kind),
        value: b.value.unwrap_or(cur.value),
        max_bonus: b.max_bonus.apply(cur.max_bonus),
        min_deposit: b.min_deposit.apply(cur.min_deposit),
        currency: b.currency.unwrap_or(cur.currency),
        first_deposit_only: b.first_deposit_only.unwrap_or(cur.first_deposit_only != 0),
        active: b.active.unwrap_or(cur.active != 0),
    };
    let mut v = Validator::new();
    check(&mut v, &c);
    v.finish()?;
    // Compare-and-set on the state read (active, last change): the row is written back whole,
    // so an edit or an activation made meanwhile would be undone; the later request gets 409.
    let done = sqlx::query(
        "UPDATE bonus_rules SET name = $3, description = $4, trigger_kind = $5, kind = $6, value = $7, max_bonus = $8, min_deposit = $9,
           currency = $10, first_deposit_only = $11, active = $12, updated_at = $13
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND active = $14 AND updated_at = $15",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(c.name.trim())
    .bind(&c.description)
    .bind(&c.trigger)
    .bind(&c.kind)
    .bind(&c.value)
    .bind(&c.max_bonus)
    .bind(&c.min_deposit)
    .bind(&c.currency)
    .bind(i64::from(c.first_deposit_only))
    .bind(i64::from(c.active))
    .bind(now())
    .bind(read_active)
    .bind(&read_at)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("bonus"));
    }
    let view = RuleView::from(load_rule(&mut *tx, &actor.tenant_id, &id).await?);
    let (before, after) = (to_json(&before_view), to_json(&view));
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "bonus.updated",
        "bonus",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "bonus.update",
        "bonus",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Soft delete: the rule stops issuing; its issuances and their stats stay.
pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = load_rule(&mut *tx, &actor.tenant_id, &id).await?;
    let before = to_json(&RuleView::from(cur));
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE bonus_rules SET deleted_at = $3, active = 0, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::NotFound("bonus"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "bonus.deleted",
        "bonus",
        &id,
        &before,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "bonus.delete",
        "bonus",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The decimal of a stored rule field.
pub fn stored(s: &str) -> ApiResult<Decimal> {
    Ok(ledger::dec(s)?)
}
