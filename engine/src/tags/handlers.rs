//! Handlers of the tag operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::util::{new_id, now};

#[derive(sqlx::FromRow, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TagView {
    pub id: String,
    pub name: String,
    pub color: Option<String>,
    pub description: Option<String>,
    pub archived_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const TAG_COLUMNS: &str = "id, name, color, description, archived_at, created_at, updated_at";

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<TagView>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<TagView> = sqlx::query_as(&format!(
        "SELECT {TAG_COLUMNS} FROM tags WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("tag"))
}

fn is_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

fn check_fields(v: &mut Validator, name: Option<&str>, color: Option<&str>, desc: Option<&str>) {
    v.max_len("name", name, 64);
    if let Some(c) = color {
        v.check(is_color(c), "color", "must be a colour #rrggbb");
    }
    v.max_len("description", desc, 500);
}

async fn name_taken(tx: &mut Tx, tenant_id: &str, name: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM tags WHERE tenant_id = $1 AND name_lower = $2 AND id <> $3")
            .bind(tenant_id)
            .bind(name.to_lowercase())
            .bind(except)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some())
}

fn taken() -> ApiError {
    ApiError::conflict("tag_name_taken", "A tag with this name already exists.")
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TagView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {TAG_COLUMNS} FROM tags WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if q.get("includeArchived").map(String::as_str) != Some("true") {
        b.push(" AND archived_at IS NULL");
    }
    if let Some(v) = q.get("q").filter(|v| !v.trim().is_empty()) {
        b.push(" AND name_lower LIKE ")
            .text(format!("%{}%", v.trim().to_lowercase()));
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<TagView> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: Option<String>,
    color: Option<String>,
    description: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<TagView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    check_fields(
        &mut v,
        name.as_deref(),
        b.color.as_deref(),
        b.description.as_deref(),
    );
    v.finish()?;
    let name = name.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    if name_taken(&mut tx, &actor.tenant_id, &name, "").await? {
        return Err(taken());
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO tags (tenant_id, id, name, name_lower, color, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(b.color.map(|c| c.to_lowercase()))
    .bind(&b.description)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = load(&mut *tx, &actor.tenant_id, &id).await?;
    let after = to_json(&view);
    events::emit(&mut tx, &actor.tenant_id, "tag.created", "tag", &id, &after).await?;
    audit::record(
        &mut tx,
        &actor,
        "tag.create",
        "tag",
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
) -> ApiResult<Json<TagView>> {
    Ok(Json(load(st.db.pool(), &actor.tenant_id, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    color: Patch<String>,
    #[serde(default)]
    description: Patch<String>,
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<TagView>> {
    let mut v = Validator::new();
    let name = match &b.name {
        Patch::Null => {
            v.fail("name", "cannot be null");
            None
        }
        Patch::Value(n) => v.required("name", Some(n)).map(str::to_string),
        Patch::Missing => None,
    };
    check_fields(
        &mut v,
        name.as_deref(),
        b.color.value().map(String::as_str),
        b.description.value().map(String::as_str),
    );
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let name = name.unwrap_or_else(|| cur.name.clone());
    if name.to_lowercase() != cur.name.to_lowercase()
        && name_taken(&mut tx, &actor.tenant_id, &name, &id).await?
    {
        return Err(taken());
    }
    let before = to_json(&cur);
    sqlx::query(
        "UPDATE tags SET name = $3, name_lower = $4, color = $5, description = $6, updated_at = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(b.color.apply(cur.color).map(|c| c.to_lowercase()))
    .bind(b.description.apply(cur.description))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = load(&mut *tx, &actor.tenant_id, &id).await?;
    let after = to_json(&view);
    events::emit(&mut tx, &actor.tenant_id, "tag.updated", "tag", &id, &after).await?;
    audit::record(
        &mut tx,
        &actor,
        "tag.update",
        "tag",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn archive(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TagView>> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if cur.archived_at.is_some() {
        return Err(ApiError::conflict(
            "tag_already_archived",
            "The tag is already archived.",
        ));
    }
    let before = to_json(&cur);
    let ts = now();
    let done = sqlx::query(
        "UPDATE tags SET archived_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "tag_already_archived",
            "The tag is already archived.",
        ));
    }
    let view = load(&mut *tx, &actor.tenant_id, &id).await?;
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "tag.archived",
        "tag",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "tag.archive",
        "tag",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Resolves a customer id to its linked trader; otherwise the id must be a live trader's.
pub async fn resolve_trader(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    id: &str,
) -> ApiResult<String> {
    let customer: Option<(String,)> =
        sqlx::query_as("SELECT trader_id FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let trader_id = customer.map(|(t,)| t).unwrap_or_else(|| id.to_string());
    crate::traders::load(&mut *conn, tenant_id, &trader_id)
        .await
        .map(|t| t.id)
        .map_err(|_| ApiError::NotFound("customer"))
}

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedTag {
    #[sqlx(flatten)]
    #[serde(flatten)]
    tag: TagView,
    applied_at: String,
    applied_by: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedTags {
    trader_id: String,
    data: Vec<AppliedTag>,
}

async fn applied(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    trader_id: &str,
) -> ApiResult<AppliedTags> {
    let data: Vec<AppliedTag> = sqlx::query_as(
        "SELECT t.id, t.name, t.color, t.description, t.archived_at, t.created_at, t.updated_at,
                tt.created_at AS applied_at, tt.created_by AS applied_by
         FROM trader_tags tt JOIN tags t ON t.tenant_id = tt.tenant_id AND t.id = tt.tag_id
         WHERE tt.tenant_id = $1 AND tt.trader_id = $2
         ORDER BY t.name_lower",
    )
    .bind(tenant_id)
    .bind(trader_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(AppliedTags {
        trader_id: trader_id.to_string(),
        data,
    })
}

/// All tags on the client, archived ones included (they are history, marked by `archivedAt`).
pub async fn list_applied(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<AppliedTags>> {
    let mut conn = st.db.pool().acquire().await?;
    let trader_id = resolve_trader(&mut conn, &actor.tenant_id, &id).await?;
    Ok(Json(
        applied(&mut conn, &actor.tenant_id, &trader_id).await?,
    ))
}

pub async fn apply(
    State(st): State<AppState>,
    actor: Actor,
    Path((id, tag_id)): Path<(String, String)>,
) -> ApiResult<Json<AppliedTags>> {
    let mut tx = st.db.begin().await?;
    let trader_id = resolve_trader(&mut tx, &actor.tenant_id, &id).await?;
    let tag = load(&mut *tx, &actor.tenant_id, &tag_id).await?;
    if tag.archived_at.is_some() {
        return Err(ApiError::conflict(
            "tag_archived",
            "An archived tag cannot be applied.",
        ));
    }
    // ON CONFLICT keeps a repeated or concurrent apply a no-op instead of a duplicate error.
    let inserted = sqlx::query(
        "INSERT INTO trader_tags (tenant_id, trader_id, tag_id, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, trader_id, tag_id) DO NOTHING",
    )
    .bind(&actor.tenant_id)
    .bind(&trader_id)
    .bind(&tag_id)
    .bind(actor.actor_id())
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted > 0 {
        let payload = json!({"traderId": trader_id, "tagId": tag_id, "tagName": tag.name});
        events::emit(
            &mut tx,
            &actor.tenant_id,
            "trader.tag_applied",
            "trader",
            &trader_id,
            &payload,
        )
        .await?;
        audit::record(
            &mut tx,
            &actor,
            "trader.tag_applied",
            "trader",
            Some(&trader_id),
            None,
            Some(&payload),
        )
        .await?;
    }
    let out = applied(&mut tx, &actor.tenant_id, &trader_id).await?;
    tx.commit().await?;
    Ok(Json(out))
}

pub async fn remove(
    State(st): State<AppState>,
    actor: Actor,
    Path((id, tag_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let trader_id = resolve_trader(&mut tx, &actor.tenant_id, &id).await?;
    let tag = load(&mut *tx, &actor.tenant_id, &tag_id).await?;
    let removed = sqlx::query(
        "DELETE FROM trader_tags WHERE tenant_id = $1 AND trader_id = $2 AND tag_id = $3",
    )
    .bind(&actor.tenant_id)
    .bind(&trader_id)
    .bind(&tag_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if removed > 0 {
        let payload = json!({"traderId": trader_id, "tagId": tag_id, "tagName": tag.name});
        events::emit(
            &mut tx,
            &actor.tenant_id,
            "trader.tag_removed",
            "trader",
            &trader_id,
            &payload,
        )
        .await?;
        audit::record(
            &mut tx,
            &actor,
            "trader.tag_removed",
            "trader",
            Some(&trader_id),
            Some(&payload),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
