//! Trading group records: create, read, update, delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::util::{new_id, now};

const COLUMNS: &str = "g.id, g.name, g.slug, g.description, g.markup_pips_override, g.max_leverage_override, g.commission_per_lot_override, g.swap_free, g.is_archived, g.created_at, g.updated_at, (SELECT COUNT(*) FROM trading_group_members m WHERE m.tenant_id = g.tenant_id AND m.group_id = g.id) AS member_count";

#[derive(sqlx::FromRow, Serialize, Clone, Default)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub markup_pips_override: Option<String>,
    pub max_leverage_override: Option<i64>,
    pub commission_per_lot_override: Option<String>,
    #[serde(serialize_with = "crate::util::int_as_bool")]
    pub swap_free: i64,
    #[serde(serialize_with = "crate::util::int_as_bool")]
    pub is_archived: i64,
    pub created_at: String,
    pub updated_at: String,
    pub member_count: i64,
}

fn to_json(g: &GroupRow) -> Value {
    serde_json::to_value(g).unwrap_or(Value::Null)
}

pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<GroupRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM trading_groups g WHERE g.tenant_id = $1 AND g.id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("trading group"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    slug: Patch<String>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    markup_pips_override: Patch<String>,
    #[serde(default)]
    max_leverage_override: Patch<i64>,
    #[serde(default)]
    commission_per_lot_override: Patch<String>,
    #[serde(default)]
    swap_free: Patch<bool>,
    #[serde(default)]
    is_archived: Patch<bool>,
}

/// A slug from a name: lower-case letters and digits joined by single dashes.
fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(64).collect()
}

fn non_negative(v: &mut Validator, field: &str, s: Option<String>) -> Option<String> {
    let s = s?;
    let s = s.trim();
    let plain = s.chars().all(|c| c.is_ascii_digit() || c == '.');
    match s.parse::<Decimal>() {
        Ok(d) if plain && d.scale() <= 10 => Some(d.normalize().to_string()),
        _ => {
            v.fail(field, "must be a non-negative decimal number as a string");
            None
        }
    }
}

/// Merges `b` into `cur` and validates the result as a whole.
fn merge(v: &mut Validator, mut cur: GroupRow, b: GroupBody) -> GroupRow {
    match b.name {
        Patch::Null => v.fail("name", "cannot be null"),
        Patch::Value(n) => cur.name = n.trim().to_string(),
        Patch::Missing => {}
    }
    match b.slug {
        Patch::Null => v.fail("slug", "cannot be null"),
        Patch::Value(s) => cur.slug = s.trim().to_string(),
        Patch::Missing => {}
    }
    if cur.slug.is_empty() {
        cur.slug = slugify(&cur.name);
    }
    cur.description = b
        .description
        .apply(cur.description.take())
        .filter(|d| !d.trim().is_empty());
    cur.markup_pips_override = non_negative(
        v,
        "markup_pips_override",
        b.markup_pips_override
            .apply(cur.markup_pips_override.take()),
    );
    cur.commission_per_lot_override = non_negative(
        v,
        "commission_per_lot_override",
        b.commission_per_lot_override
            .apply(cur.commission_per_lot_override.take()),
    );
    cur.max_leverage_override = b.max_leverage_override.apply(cur.max_leverage_override);
    for (field, p, slot) in [
        ("swap_free", b.swap_free, &mut cur.swap_free),
        ("is_archived", b.is_archived, &mut cur.is_archived),
    ] {
        match p {
            Patch::Null => v.fail(field, "cannot be null"),
            Patch::Value(x) => *slot = i64::from(x),
            Patch::Missing => {}
        }
    }
    if cur.name.is_empty() {
        v.fail("name", "is required");
    }
    v.max_len("name", Some(&cur.name), 100);
    v.max_len("description", cur.description.as_deref(), 500);
    v.check(
        !cur.slug.is_empty()
            && cur.slug.len() <= 64
            && cur
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "slug",
        "must be 1-64 lower-case letters, digits or dashes",
    );
    if let Some(l) = cur.max_leverage_override {
        v.check(
            (1..=5000).contains(&l),
            "max_leverage_override",
            "must be between 1 and 5000",
        );
    }
    cur
}

async fn slug_taken(tx: &mut Tx, tenant_id: &str, slug: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM trading_groups WHERE tenant_id = $1 AND slug = $2 AND id <> $3",
    )
    .bind(tenant_id)
    .bind(slug)
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

fn taken() -> ApiError {
    ApiError::conflict("slug_taken", "Another trading group has this slug.")
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<GroupRow>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM trading_groups g WHERE g.tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if q.get("includeArchived").map(String::as_str) != Some("true") {
        b.push(" AND g.is_archived = 0");
    }
    if let Some(after) = &page.after_id {
        b.push(" AND g.id < ").text(after.clone());
    }
    b.push(" ORDER BY g.id DESC").limit(page.fetch());
    let rows: Vec<GroupRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupRow>> {
    Ok(Json(load(st.db.pool(), &actor.tenant_id, &id).await?))
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<(StatusCode, Json<GroupRow>)> {
    let mut v = Validator::new();
    let g = merge(&mut v, GroupRow::default(), b);
    v.finish()?;
    let id = new_id();
    let ts = now();
    let mut tx = st.db.begin().await?;
    if slug_taken(&mut tx, &actor.tenant_id, &g.slug, "").await? {
        return Err(taken());
    }
    sqlx::query(
        "INSERT INTO trading_groups (tenant_id, id, name, slug, description, markup_pips_override, max_leverage_override,
           commission_per_lot_override, swap_free, is_archived, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&g.name)
    .bind(&g.slug)
    .bind(&g.description)
    .bind(&g.markup_pips_override)
    .bind(g.max_leverage_override)
    .bind(&g.commission_per_lot_override)
    .bind(g.swap_free)
    .bind(g.is_archived)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let view = load(&mut *tx, &actor.tenant_id, &id).await?;
    let after = to_json(&view);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "trading_group.created",
            action: "trading_group.create",
            resource_type: "trading_group",
            resource_id: &id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<Json<GroupRow>> {
    let mut tx = st.db.begin().await?;
    let before = load(&mut *tx, &actor.tenant_id, &id).await?;
    let mut v = Validator::new();
    let g = merge(&mut v, before.clone(), b);
    v.finish()?;
    if slug_taken(&mut tx, &actor.tenant_id, &g.slug, &id).await? {
        return Err(taken());
    }
    sqlx::query(
        "UPDATE trading_groups SET name = $3, slug = $4, description = $5, markup_pips_override = $6, max_leverage_override = $7,
           commission_per_lot_override = $8, swap_free = $9, is_archived = $10, updated_at = $11
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&g.name)
    .bind(&g.slug)
    .bind(&g.description)
    .bind(&g.markup_pips_override)
    .bind(g.max_leverage_override)
    .bind(&g.commission_per_lot_override)
    .bind(g.swap_free)
    .bind(g.is_archived)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = load(&mut *tx, &actor.tenant_id, &id).await?;
    let after = to_json(&view);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "trading_group.updated",
            action: "trading_group.update",
            resource_type: "trading_group",
            resource_id: &id,
            before: Some(&to_json(&before)),
            after: Some(&after),
        },
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
    let before = load(&mut *tx, &actor.tenant_id, &id).await?;
    sqlx::query("DELETE FROM trading_group_members WHERE tenant_id = $1 AND group_id = $2")
        .bind(&actor.tenant_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM trading_groups WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    // A delete that lost the race to another is a 404, like any delete of a deleted record.
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("trading group"));
    }
    let snapshot = to_json(&before);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "trading_group.deleted",
            action: "trading_group.delete",
            resource_type: "trading_group",
            resource_id: &id,
            before: Some(&snapshot),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
