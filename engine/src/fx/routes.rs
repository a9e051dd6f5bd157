//! The fx operations and the admin fx-rates operations.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{DEFAULT_RATES, GLOBAL};
use crate::app::AppState;
use crate::audit;
use crate::auth::roles::{ADMINS, STAFF};
use crate::auth::{Actor, Role};
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::api::{Api, Op};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::{Validator, is_currency};
use crate::util::{new_id, now};

use axum::Json;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/fx/rates", "getFxRates", "fx")
            .summary("FX rate history, newest first (filters: base, quote, tenant_only=true to hide the global pool).")
            .staff(STAFF),
        history,
    );
    api.add(
        Op::get("/v1/fx/rates/latest", "getFxRatesLatest", "fx")
            .summary("The freshest rate per pair; the tenant's own rates override the global pool.")
            .staff(STAFF),
        latest,
    );
    api.add(
        Op::post("/v1/fx/rates/upsert", "postFxRatesUpsert", "fx")
            .summary("Append rates to the tenant's pool (default) or, for platform operators, the global pool (global=true).")
            .action()
            .staff(ADMINS_AND_OPERATORS)
            .body(r#"{"rates":[{"base":"EUR","quote":"USD","rate":"1.0842","source":"manual"}],"global":false}"#),
        upsert,
    );
    api.add(
        Op::post("/v1/fx/rates/seed-defaults", "postFxRatesSeedDefaults", "fx")
            .summary("Seed the global pool with the fixed starting table; pairs that already have a global rate are left alone.")
            .action()
            .staff(ADMINS_AND_OPERATORS),
        seed_defaults,
    );
    api.add(
        Op::get(
            "/v1/fx/tenant/base-currency",
            "getFxTenantBaseCurrency",
            "fx",
        )
        .summary("The tenant's base currency for aggregates.")
        .staff(STAFF),
        get_base,
    );
    api.add(
        Op::patch(
            "/v1/fx/tenant/base-currency",
            "patchFxTenantBaseCurrency",
            "fx",
        )
        .summary(
            "Set the tenant's base currency (changes the unit of every base-currency aggregate).",
        )
        .staff(ADMINS)
        .body(r#"{"base_currency":"EUR"}"#),
        set_base,
    );
    api.add(
        Op::get("/v1/admin/fx-rates", "getAdminFxRates", "admin")
            .summary("Current global FX rates (the freshest per pair).")
            .staff(STAFF),
        admin_list,
    );
    api.add(
        Op::post("/v1/admin/fx-rates", "postAdminFxRates", "admin")
            .summary("Set a global FX rate (platform operators): same as upsert with global=true.")
            .staff(&[Role::PlatformOperator])
            .body(r#"{"base":"EUR","quote":"USD","rate":"1.0842","source":"manual"}"#),
        admin_set,
    );
}

const ADMINS_AND_OPERATORS: &[Role] = &[Role::Owner, Role::Admin, Role::PlatformOperator];

#[derive(sqlx::FromRow)]
struct Row {
    pool: String,
    id: String,
    base: String,
    quote: String,
    rate: String,
    source: String,
    fetched_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateView {
    id: String,
    base: String,
    quote: String,
    rate: String,
    source: String,
    fetched_at: String,
    scope: &'static str,
}

impl From<Row> for RateView {
    fn from(r: Row) -> Self {
        RateView {
            scope: if r.pool == GLOBAL { "global" } else { "tenant" },
            id: r.id,
            base: r.base,
            quote: r.quote,
            rate: r.rate,
            source: r.source,
            fetched_at: r.fetched_at,
        }
    }
}

async fn history(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<RateView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(
        "SELECT pool, id, base, quote, rate, source, fetched_at FROM fx_rates WHERE (pool = ",
    );
    b.text(&actor.tenant_id);
    if q.get("tenant_only").map(String::as_str) != Some("true") {
        b.push(" OR pool = ").text(GLOBAL);
    }
    b.push(")");
    for f in ["base", "quote"] {
        if let Some(v) = q.get(f).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {f} = ")).text(v.to_uppercase());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<Row> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(RateView::from),
    ))
}

/// Freshest row per pair within the given pools; earlier pools win ties between pools.
async fn latest_rows(pool: &sqlx::AnyPool, pools: &[&str]) -> ApiResult<Vec<Row>> {
    let mut out: Vec<Row> = Vec::new();
    for p in pools {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT pool, id, base, quote, rate, source, fetched_at FROM fx_rates WHERE pool = $1 ORDER BY fetched_at DESC, id DESC",
        )
        .bind(p)
        .fetch_all(pool)
        .await?;
        for r in rows {
            if !out.iter().any(|o| o.base == r.base && o.quote == r.quote) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.base.as_str(), a.quote.as_str()).cmp(&(b.base.as_str(), b.quote.as_str()))
    });
    Ok(out)
}

async fn latest(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let rows = latest_rows(st.db.pool(), &[&actor.tenant_id, GLOBAL]).await?;
    Ok(Json(
        json!({"data": rows.into_iter().map(RateView::from).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    base: Option<String>,
    quote: Option<String>,
    rate: Option<Value>,
    source: Option<String>,
}

/// Accepts a rate as a decimal string, or as a JSON number taken by its printed form.
fn parse_rate(v: &mut Validator, field: &str, raw: Option<&Value>) -> Option<Decimal> {
    let text = match raw {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            v.fail(field, "is required (a positive decimal, e.g. \"1.0842\")");
            return None;
        }
    };
    let canonical = crate::money::canonical(&text).is_ok();
    match text.parse::<Decimal>() {
        Ok(d)
            if canonical
                && d > Decimal::ZERO
                && d < Decimal::from(1_000_000_000)
                && d.normalize().scale() <= super::MAX_RATE_SCALE =>
        {
            Some(d.normalize())
        }
        _ => {
            v.fail(
                field,
                "must be a positive decimal below 1000000000 with at most 12 decimal places",
            );
            None
        }
    }
}

fn check_rates(v: &mut Validator, rates: &[RateInput]) -> Vec<(String, String, Decimal, String)> {
    v.check(
        !rates.is_empty() && rates.len() <= 200,
        "rates",
        "1 to 200 rates",
    );
    let mut out = Vec::new();
    for (i, r) in rates.iter().enumerate() {
        let base = r.base.as_deref().unwrap_or_default().to_uppercase();
        let quote = r.quote.as_deref().unwrap_or_default().to_uppercase();
        v.check(
            is_currency(&base),
            &format!("rates[{i}].base"),
            "must be a currency code",
        );
        v.check(
            is_currency(&quote),
            &format!("rates[{i}].quote"),
            "must be a currency code",
        );
        v.check(
            base != quote,
            &format!("rates[{i}].quote"),
            "must differ from base",
        );
        let rate = parse_rate(v, &format!("rates[{i}].rate"), r.rate.as_ref());
        v.max_len(&format!("rates[{i}].source"), r.source.as_deref(), 64);
        if let Some(rate) = rate {
            out.push((
                base,
                quote,
                rate,
                r.source.clone().unwrap_or_else(|| "manual".into()),
            ));
        }
    }
    out
}

async fn insert(
    tx: &mut Tx,
    pool: &str,
    rates: &[(String, String, Decimal, String)],
    by: Option<&str>,
) -> ApiResult<Vec<Value>> {
    let ts = now();
    let mut out = Vec::new();
    for (base, quote, rate, source) in rates {
        let id = new_id();
        sqlx::query(
            "INSERT INTO fx_rates (pool, id, base, quote, rate, source, fetched_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(pool)
        .bind(&id)
        .bind(base)
        .bind(quote)
        .bind(rate.to_string())
        .bind(source)
        .bind(&ts)
        .bind(by)
        .execute(&mut **tx)
        .await?;
        out.push(json!({"id": id, "base": base, "quote": quote, "rate": rate.to_string(), "source": source, "fetchedAt": ts,
            "scope": if pool == GLOBAL { "global" } else { "tenant" }}));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    rates: Option<Vec<RateInput>>,
    global: Option<bool>,
}

async fn upsert(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<UpsertBody>,
) -> ApiResult<Json<Value>> {
    let global = b.global.unwrap_or(false);
    if global && !actor.has_role(Role::PlatformOperator) {
        return Err(ApiError::Forbidden(
            "Only platform operators write the global FX pool.".into(),
        ));
    }
    let mut v = Validator::new();
    let rates = check_rates(&mut v, b.rates.as_deref().unwrap_or_default());
    v.finish()?;
    let pool = if global {
        GLOBAL.to_string()
    } else {
        actor.tenant_id.clone()
    };
    let mut tx = st.db.begin().await?;
    let written = insert(&mut tx, &pool, &rates, actor.user_id.as_deref()).await?;
    let after = json!({"rates": written, "global": global});
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "fx.rates_updated",
        "fx_rates",
        &pool,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "fx.rates_upsert",
        "fx_rates",
        Some(&pool),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"data": written})))
}

async fn seed_defaults(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let mut tx = st.db.begin().await?;
    let mut missing = Vec::new();
    for (base, quote, rate) in DEFAULT_RATES {
        let have: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM fx_rates WHERE pool = $1 AND base = $2 AND quote = $3 LIMIT 1",
        )
        .bind(GLOBAL)
        .bind(base)
        .bind(quote)
        .fetch_optional(&mut *tx)
        .await?;
        if have.is_none() {
            let r: Decimal = rate.parse().map_err(ApiError::internal)?;
            missing.push((
                base.to_string(),
                quote.to_string(),
                r,
                "seed-defaults".to_string(),
            ));
        }
    }
    let written = insert(&mut tx, GLOBAL, &missing, actor.user_id.as_deref()).await?;
    audit::record(
        &mut tx,
        &actor,
        "fx.seed_defaults",
        "fx_rates",
        Some(GLOBAL),
        None,
        Some(&json!({"seeded": written.len()})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({"seeded": written.len(), "skipped": DEFAULT_RATES.len() - written.len(), "data": written}),
    ))
}

async fn get_base(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let (c,): (String,) = sqlx::query_as("SELECT base_currency FROM tenants WHERE id = $1")
        .bind(&actor.tenant_id)
        .fetch_one(st.db.pool())
        .await?;
    Ok(Json(json!({"base_currency": c})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseBody {
    base_currency: Option<String>,
}

async fn set_base(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<BaseBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let c = v
        .required("base_currency", b.base_currency.as_deref())
        .map(str::to_uppercase);
    if let Some(c) = &c {
        v.check(
            is_currency(c),
            "base_currency",
            "must be a currency code such as USD",
        );
    }
    v.finish()?;
    let c = c.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let (before,): (String,) = sqlx::query_as("SELECT base_currency FROM tenants WHERE id = $1")
        .bind(&actor.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("UPDATE tenants SET base_currency = $2, updated_at = $3 WHERE id = $1")
        .bind(&actor.tenant_id)
        .bind(&c)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let after = json!({"base_currency": c});
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "tenant.base_currency_changed",
        "tenant",
        &actor.tenant_id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "fx.base_currency",
        "tenant",
        Some(&actor.tenant_id),
        Some(&json!({"base_currency": before})),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn admin_list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = latest_rows(st.db.pool(), &[GLOBAL]).await?;
    Ok(Json(
        json!({"data": rows.into_iter().map(RateView::from).collect::<Vec<_>>()}),
    ))
}

async fn admin_set(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<RateInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut v = Validator::new();
    let rates = check_rates(&mut v, std::slice::from_ref(&b));
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let written = insert(&mut tx, GLOBAL, &rates, actor.user_id.as_deref()).await?;
    let after = json!({"rates": written, "global": true});
    audit::record(
        &mut tx,
        &actor,
        "fx.rates_upsert",
        "fx_rates",
        Some(GLOBAL),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(written.into_iter().next().unwrap_or(Value::Null)),
    ))
}
