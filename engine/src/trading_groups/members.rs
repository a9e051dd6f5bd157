//! Group membership. A customer is in at most one trading group: adding it to a group moves it
//! from any other (the unique index on `(tenant_id, customer_id)` holds this under concurrency).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::groups::load;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::now;

const MAX_IDS: usize = 500;

#[derive(sqlx::FromRow, Serialize)]
pub struct MemberView {
    pub customer_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: String,
    pub trader_id: String,
    pub added_at: String,
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<MemberView>>> {
    load(st.db.pool(), &actor.tenant_id, &id).await?;
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(
        "SELECT c.id AS customer_id, c.email, c.first_name, c.last_name, c.status, c.trader_id, m.added_at
         FROM trading_group_members m JOIN customers c ON c.tenant_id = m.tenant_id AND c.id = m.customer_id
         WHERE m.tenant_id = ",
    );
    b.text(&actor.tenant_id);
    b.push(" AND m.group_id = ").text(id);
    if let Some(after) = &page.after_id {
        b.push(" AND m.customer_id < ").text(after.clone());
    }
    b.push(" ORDER BY m.customer_id DESC").limit(page.fetch());
    let rows: Vec<MemberView> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.customer_id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    customer_ids: Option<Vec<String>>,
}

pub async fn add(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AddBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let mut ids = b.customer_ids.unwrap_or_default();
    ids.sort();
    ids.dedup();
    v.check(
        !ids.is_empty() && ids.len() <= MAX_IDS,
        "customer_ids",
        "must hold 1 to 500 customer ids",
    );
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let group = load(&mut *tx, &actor.tenant_id, &id).await?;
    if group.is_archived != 0 {
        return Err(ApiError::conflict(
            "group_archived",
            "An archived trading group takes no new members.",
        ));
    }
    let (mut added, mut moved, mut unchanged) = (Vec::new(), Vec::new(), 0);
    let ts = now();
    for (i, customer) in ids.iter().enumerate() {
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2")
                .bind(&actor.tenant_id)
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(ApiError::field(
                format!("customer_ids[{i}]"),
                "no such customer",
            ));
        }
        let current: Option<(String,)> = sqlx::query_as(
            "SELECT group_id FROM trading_group_members WHERE tenant_id = $1 AND customer_id = $2",
        )
        .bind(&actor.tenant_id)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            Some((g,)) if g == id => {
                unchanged += 1;
                continue;
            }
            Some((g,)) => {
                sqlx::query(
                    "DELETE FROM trading_group_members WHERE tenant_id = $1 AND customer_id = $2",
                )
                .bind(&actor.tenant_id)
                .bind(customer)
                .execute(&mut *tx)
                .await?;
                moved.push(json!({"customer_id": customer, "from_group_id": g}));
            }
            None => added.push(customer.clone()),
        }
        sqlx::query(
            "INSERT INTO trading_group_members (tenant_id, group_id, customer_id, added_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&actor.tenant_id)
        .bind(&id)
        .bind(customer)
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
    }
    let count: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM trading_group_members WHERE tenant_id = $1 AND group_id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let after = json!({"group_id": id, "added": added, "moved": moved, "unchanged": unchanged, "member_count": count.0});
    if !added.is_empty() || !moved.is_empty() {
        audit::record_change(
            &mut tx,
            &actor,
            audit::Change {
                event: "trading_group.members_added",
                action: "trading_group.add_members",
                resource_type: "trading_group",
                resource_id: &id,
                before: None,
                after: Some(&after),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}

pub async fn remove(
    State(st): State<AppState>,
    actor: Actor,
    Path((id, customer_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    load(&mut *tx, &actor.tenant_id, &id).await?;
    let done = sqlx::query(
        "DELETE FROM trading_group_members WHERE tenant_id = $1 AND group_id = $2 AND customer_id = $3",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&customer_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("member"));
    }
    let snapshot = json!({"group_id": id, "customer_id": customer_id});
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "trading_group.member_removed",
            action: "trading_group.remove_member",
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
