//! Handlers of the saved-segment operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::filter::SegmentFilter;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::traders::model::{TRADER_COLUMNS, TraderRow, TraderView};
use crate::util::{new_id, now, parse_json};

#[derive(sqlx::FromRow, Clone)]
struct SegmentRow {
    id: String,
    name: String,
    description: Option<String>,
    filter: String,
    created_at: String,
    updated_at: String,
}

const SEGMENT_COLUMNS: &str = "id, name, description, filter, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentView {
    id: String,
    name: String,
    description: Option<String>,
    filter: Value,
    created_at: String,
    updated_at: String,
}

impl From<SegmentRow> for SegmentView {
    fn from(r: SegmentRow) -> Self {
        SegmentView {
            filter: parse_json(&r.filter),
            id: r.id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<SegmentRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<SegmentRow> = sqlx::query_as(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("segment"))
}

/// Parses the filter and checks that the tag ids it names are tags of this tenant.
async fn checked_filter(tx: &mut Tx, tenant_id: &str, raw: &Value) -> ApiResult<SegmentFilter> {
    let f = SegmentFilter::parse(raw).map_err(ApiError::Validation)?;
    for tag in &f.tags {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT id FROM tags WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(tag)
                .fetch_optional(&mut **tx)
                .await?;
        if found.is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "filter.tags",
                format!("{tag} is not a tag of this tenant"),
            )]));
        }
    }
    Ok(f)
}

async fn name_taken(tx: &mut Tx, tenant_id: &str, name: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM segments WHERE tenant_id = $1 AND name_lower = $2 AND id <> $3",
    )
    .bind(tenant_id)
    .bind(name.to_lowercase())
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

fn taken() -> ApiError {
    ApiError::conflict(
        "segment_name_taken",
        "A segment with this name already exists.",
    )
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<SegmentView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(v) = q.get("q").filter(|v| !v.trim().is_empty()) {
        b.push(" AND name_lower LIKE ")
            .text(format!("%{}%", v.trim().to_lowercase()));
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<SegmentRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(SegmentView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    filter: Option<Value>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    v.max_len("description", b.description.as_deref(), 500);
    if b.filter.is_none() {
        v.fail("filter", "is required ({} matches every trader)");
    }
    v.finish()?;
    let name = name.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let filter = checked_filter(
        &mut tx,
        &actor.tenant_id,
        b.filter.as_ref().unwrap_or(&Value::Null),
    )
    .await?;
    if name_taken(&mut tx, &actor.tenant_id, &name, "").await? {
        return Err(taken());
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO segments (tenant_id, id, name, name_lower, description, filter, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&b.description)
    .bind(filter.to_json().to_string())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = SegmentView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "segment.created",
        "segment",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "segment.create",
        "segment",
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
) -> ApiResult<Json<SegmentView>> {
    Ok(Json(SegmentView::from(
        load(st.db.pool(), &actor.tenant_id, &id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    filter: Patch<Value>,
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<SegmentView>> {
    let mut v = Validator::new();
    let name = match &b.name {
        Patch::Null => {
            v.fail("name", "cannot be null");
            None
        }
        Patch::Value(n) => v.required("name", Some(n)).map(str::to_string),
        Patch::Missing => None,
    };
    v.max_len("name", name.as_deref(), 100);
    v.max_len(
        "description",
        b.description.value().map(String::as_str),
        500,
    );
    if matches!(b.filter, Patch::Null) {
        v.fail("filter", "cannot be null; use {} to match every trader");
    }
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let before = to_json(&SegmentView::from(cur.clone()));
    let filter = match &b.filter {
        Patch::Value(f) => checked_filter(&mut tx, &actor.tenant_id, f)
            .await?
            .to_json()
            .to_string(),
        _ => cur.filter.clone(),
    };
    let name = name.unwrap_or_else(|| cur.name.clone());
    if name.to_lowercase() != cur.name.to_lowercase()
        && name_taken(&mut tx, &actor.tenant_id, &name, &id).await?
    {
        return Err(taken());
    }
    sqlx::query(
        "UPDATE segments SET name = $3, name_lower = $4, description = $5, filter = $6, updated_at = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(b.description.apply(cur.description))
    .bind(filter)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = SegmentView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "segment.updated",
        "segment",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "segment.update",
        "segment",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Segments are saved filters with no history of their own, so deletion is a hard delete.
pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let before = to_json(&SegmentView::from(
        load(&mut *tx, &actor.tenant_id, &id).await?,
    ));
    let done = sqlx::query("DELETE FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    // A delete that lost the race to another is a 404, like any delete of a deleted record.
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("segment"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "segment.deleted",
        "segment",
        &id,
        &json!({"id": id}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "segment.delete",
        "segment",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub const DEFAULT_PREVIEW: i64 = 10;
pub const MAX_PREVIEW: i64 = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    segment_id: String,
    total: i64,
    limit: i64,
    data: Vec<TraderView>,
}

/// Evaluates the saved filter over the tenant's live traders: the total count and the first
/// `limit` (default 10, at most 100) matches, newest first.
pub async fn preview(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Preview>> {
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => DEFAULT_PREVIEW,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_PREVIEW).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PREVIEW}"),
                ));
            }
        },
    };
    let seg = load(st.db.pool(), &actor.tenant_id, &id).await?;
    // A stored filter was validated on save; re-parsing keeps preview on the same rules.
    let filter = SegmentFilter::parse(&parse_json(&seg.filter)).map_err(ApiError::Validation)?;
    let base = |select: &str| {
        let mut b = SqlBuilder::new(&format!(
            "SELECT {select} FROM traders WHERE traders.tenant_id = "
        ));
        b.text(&actor.tenant_id);
        b.push(" AND traders.deleted_at IS NULL");
        filter.push_conditions(&mut b);
        b
    };
    let total: i64 = base("COUNT(*)")
        .query_scalar()
        .fetch_one(st.db.pool())
        .await?;
    let mut b = base(TRADER_COLUMNS);
    b.push(" ORDER BY traders.id DESC").limit(limit);
    let rows: Vec<TraderRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Preview {
        segment_id: seg.id,
        total,
        limit,
        data: rows.into_iter().map(TraderView::from).collect(),
    }))
}
