//! `GET /v1/platform/tenants` and `GET /v1/platform/tenants/{id}`: every tenant of the
//! installation with its size (traders, trading accounts, team members, portal customers) and
//! its most recent activity (the newest audit entry); the detail adds the owners.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;

use crate::app::AppState;
use crate::db::SqlBuilder;
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::{Page, PageRequest};
use crate::identity::{TENANT_COLUMNS, TenantRow, TenantView};

/// The counts and the last activity, as correlated subqueries on `tenants` (one query per page,
/// each subquery an index range of one tenant).
const STATS: &str = "(SELECT COUNT(*) FROM traders x WHERE x.tenant_id = tenants.id AND x.deleted_at IS NULL) AS traders,
  (SELECT COUNT(*) FROM trading_accounts x WHERE x.tenant_id = tenants.id AND x.deleted_at IS NULL) AS trading_accounts,
  (SELECT COUNT(*) FROM users x WHERE x.tenant_id = tenants.id AND x.deleted_at IS NULL) AS users,
  (SELECT COUNT(*) FROM customers x WHERE x.tenant_id = tenants.id) AS customers,
  (SELECT MAX(created_at) FROM audit_log x WHERE x.tenant_id = tenants.id) AS last_activity_at";

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    tenant: TenantRow,
    traders: i64,
    trading_accounts: i64,
    users: i64,
    customers: i64,
    last_activity_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    traders: i64,
    trading_accounts: i64,
    users: i64,
    customers: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSummary {
    #[serde(flatten)]
    tenant: TenantView,
    counts: Counts,
    /// The newest audit entry's time; `null` for a tenant nobody has acted in.
    last_activity_at: Option<String>,
}

impl From<Row> for TenantSummary {
    fn from(r: Row) -> Self {
        TenantSummary {
            tenant: TenantView::from(r.tenant),
            counts: Counts {
                traders: r.traders,
                trading_accounts: r.trading_accounts,
                users: r.users,
                customers: r.customers,
            },
            last_activity_at: r.last_activity_at,
        }
    }
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    id: String,
    email: String,
    display_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantDetail {
    #[serde(flatten)]
    summary: TenantSummary,
    owners: Vec<Owner>,
}

/// Newest tenants first; `slug` filters to one.
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TenantSummary>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {TENANT_COLUMNS}, {STATS} FROM tenants WHERE 1 = 1"
    ));
    if let Some(slug) = q.get("slug") {
        b.push(" AND slug = ").text(slug.clone());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<Row> = b.query_as().fetch_all(st.db.pool()).await?;
    let rows: Vec<TenantSummary> = rows.into_iter().map(TenantSummary::from).collect();
    Ok(Json(Page::from_rows(rows, &page, |r| &r.tenant.id)))
}

pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantDetail>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {TENANT_COLUMNS}, {STATS} FROM tenants WHERE id = $1"
    ))
    .bind(&id)
    .fetch_optional(st.db.pool())
    .await?;
    let summary = TenantSummary::from(row.ok_or(ApiError::NotFound("tenant"))?);
    // Roles are a JSON array of names; `"owner"` with its quotes matches that role only.
    let owners: Vec<Owner> = sqlx::query_as(
        "SELECT id, email, display_name FROM users
         WHERE tenant_id = $1 AND deleted_at IS NULL AND roles LIKE '%\"owner\"%' ORDER BY id",
    )
    .bind(&id)
    .fetch_all(st.db.pool())
    .await?;
    Ok(Json(TenantDetail { summary, owners }))
}
