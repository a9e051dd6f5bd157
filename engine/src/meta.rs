//! Health, version, changelog, metrics, the OpenAPI document, the offline explorer at `/docs`
//! and the generated request examples.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::http::api::{Api, Op};
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::API_VERSION;

mod examples;

const CHANGELOG: &str = include_str!("../../docs/api-changelog.json");
const EXPLORER_HTML: &str = include_str!("meta/explorer.html");

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/health", "getHealth", "health")
            .summary("Liveness probe: 200 while the process is up and the database answers."),
        health,
    );
    api.add(
        Op::get("/v1/_meta/version", "getMetaVersion", "meta")
            .summary("The public API contract version and its latest changelog entry."),
        version,
    );
    api.add(
        Op::get("/v1/_meta/changelog", "getMetaChangelog", "meta")
            .summary("The /v1 contract changelog, newest first."),
        changelog,
    );
    api.add(
        Op::get("/v1/docs/examples", "getDocsExamples", "docs")
            .summary("curl, fetch, httpx, PHP curl and Go net/http snippets for every operation."),
        all_examples,
    );
    api.add(
        Op::get(
            "/v1/docs/examples/{operationId}",
            "getDocsExamplesOperationId",
            "docs",
        )
        .summary("Snippets for one operation."),
        one_example,
    );
    api.add(Op::get("/openapi.json", "getOpenapi", "meta"), openapi);
    api.add(Op::get("/docs", "getDocs", "meta"), explorer);
    api.add(
        Op::get("/metrics", "getMetrics", "meta").summary(
            "Prometheus metrics, to `Authorization: Bearer <LUMIRE_METRICS_TOKEN>`; not served without that setting.",
        ),
        metrics,
    );
}

async fn health(State(st): State<AppState>) -> ApiResult<axum::Json<Value>> {
    sqlx::query("SELECT 1").execute(st.db.pool()).await?;
    Ok(axum::Json(json!({"status": "ok"})))
}

fn changelog_entries() -> Vec<Value> {
    serde_json::from_str(CHANGELOG).unwrap_or_default()
}

async fn version() -> axum::Json<Value> {
    let latest = changelog_entries().into_iter().next();
    axum::Json(json!({
        "version": API_VERSION,
        "engine": env!("CARGO_PKG_VERSION"),
        "latest": latest,
    }))
}

async fn changelog() -> axum::Json<Value> {
    axum::Json(json!({ "data": changelog_entries() }))
}

fn doc(st: &AppState) -> Value {
    st.openapi.get().cloned().unwrap_or(Value::Null)
}

async fn openapi(State(st): State<AppState>) -> axum::Json<Value> {
    axum::Json(doc(&st))
}

async fn explorer() -> Html<&'static str> {
    Html(EXPLORER_HTML)
}

async fn metrics(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let Some(token) = st.settings.metrics_token.as_deref() else {
        return ApiError::NotFound("route").into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let same = given.len() == token.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            token.as_bytes(),
        ));
    if !same {
        return ApiError::Unauthorized("metrics_token_required").into_response();
    }
    let mut resp = st.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn all_examples(State(st): State<AppState>) -> axum::Json<Value> {
    let base = st.settings.public_url.clone();
    axum::Json(json!({ "data": examples::for_document(&doc(&st), &base) }))
}

async fn one_example(
    State(st): State<AppState>,
    Path(operation_id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let base = st.settings.public_url.clone();
    examples::for_document(&doc(&st), &base)
        .into_iter()
        .find(|e| e["operationId"] == operation_id.as_str())
        .map(axum::Json)
        .ok_or(ApiError::NotFound("operation"))
}
