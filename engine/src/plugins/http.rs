//! The HTTP side of plugins: `GET /v1/plugins`, and the fallback of the `/v1` router that
//! serves plugin routes. Before a guest sees a request the engine has authenticated the caller,
//! resolved the tenant, checked the tenant enabled the plugin (else 404) and the route's roles
//! (else 403), and applied idempotency; after a mutating call it writes an audit entry.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde_json::{Value, json};

use super::bindings::types;
use super::registry::Installed;
use super::runtime::Failure;
use crate::app::AppState;
use crate::auth::Actor;
use crate::auth::authorize::authenticate_staff;
use crate::auth::roles::STAFF;
use crate::http::error::{ApiError, ApiResult};

/// Request headers passed to a plugin (names in lower case).
const PASSED_HEADERS: &[&str] = &["content-type", "accept", "accept-language", "user-agent"];
/// Response headers a plugin may set.
const ALLOWED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-disposition",
    "cache-control",
    "location",
    "etag",
    "last-modified",
];

async fn tenant_flags(st: &AppState, tenant_id: &str) -> ApiResult<Value> {
    let raw: Option<String> = sqlx::query_scalar("SELECT feature_flags FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(st.db.pool())
        .await?;
    Ok(raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_else(|| json!({})))
}

pub(crate) fn enabled(flags: &Value, plugin: &str) -> bool {
    flags.get(super::flag_name(plugin)).and_then(Value::as_bool) == Some(true)
}

pub async fn list(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let flags = tenant_flags(&st, &actor.tenant_id).await?;
    let data: Vec<Value> = st
        .plugins
        .installed()
        .iter()
        .map(|p| {
            let m = &p.manifest;
            json!({
                "name": m.name,
                "version": m.version,
                "world": p.world(),
                "contract": format!("lumire:plugin@{}", p.contract),
                "description": m.description,
                "capabilities": m.capabilities.names(),
                "routes": m.routes,
                "events": m.events,
                "jobs": m.jobs,
                "configSchema": m.config_schema,
                "featureFlag": super::flag_name(&m.name),
                "enabled": enabled(&flags, &m.name),
                "sha256": p.sha256,
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": null})))
}

/// What the gate resolved for the handler.
#[derive(Clone)]
struct Matched {
    plugin: Arc<Installed>,
    route: String,
    params: Vec<(String, String)>,
}

/// The service the `/v1` router falls back to: the gate, idempotency, then the plugin.
pub fn fallback(state: AppState) -> Router {
    Router::new()
        .fallback(call)
        .layer(from_fn_with_state(
            state.clone(),
            crate::http::idempotency::middleware,
        ))
        .layer(from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

async fn gate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    match admit(&st, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Paths served under another name: the partner Leads API uploads documents at
/// `/lead/{lead_id}/documents`, which plugins serve as `/v1/leads/{lead_id}/documents`.
pub fn alias(path: &str) -> String {
    match path.strip_prefix("/lead/") {
        Some(rest) if rest.ends_with("/documents") => format!("/v1/leads/{rest}"),
        _ => path.to_string(),
    }
}

async fn admit(st: &AppState, req: &mut Request) -> Result<(), ApiError> {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = alias(req.uri().path());
    let (plugin, route, params) = match st.plugins.route(&method, &path) {
        Some((p, m)) => (p.clone(), m.route.clone(), m.params),
        None => return Err(ApiError::NotFound("route")),
    };
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let partner = crate::auth::credentials::partner(st, req.headers(), ip.clone()).await?;
    let actor = match partner {
        Some(p) if route.partners => p,
        Some(_) => {
            return Err(ApiError::Forbidden(
                "Partner credentials do not allow this operation.".into(),
            ));
        }
        None => {
            authenticate_staff(st, req.headers(), req.method(), ip, &plugin.manifest.name).await?
        }
    };
    // A tenant that has not enabled the plugin does not see its routes at all. Cached for
    // `plugin_flags_cache_ms`: the native routes need no such read.
    let flags = st
        .plugins
        .enablement
        .flags(&st.db, &actor.tenant_id)
        .await?;
    if !enabled(&flags, &plugin.manifest.name) {
        return Err(ApiError::NotFound("route"));
    }
    let allowed = if route.roles.is_empty() {
        STAFF
    } else {
        route.roles.as_slice()
    };
    let is_partner = actor.kind == crate::auth::ActorKind::Partner;
    if !is_partner && !actor.roles.iter().any(|r| allowed.contains(r)) {
        return Err(ApiError::Forbidden(
            "Your role does not allow this operation.".into(),
        ));
    }
    let span = tracing::Span::current();
    span.record("tenant_id", actor.tenant_id.as_str());
    span.record("actor", actor.label.as_str());
    req.extensions_mut().insert(actor);
    req.extensions_mut().insert(Matched {
        plugin,
        route: route.path,
        params,
    });
    Ok(())
}

fn plugin_error(p: &Installed, export: &str, f: Failure) -> ApiError {
    let (status, code) = match f {
        Failure::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "plugin_timeout"),
        Failure::Memory(_) => (StatusCode::BAD_GATEWAY, "plugin_memory_exceeded"),
        Failure::Trap(_) => (StatusCode::BAD_GATEWAY, "plugin_trapped"),
        Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable"),
        Failure::BadResponse(_) => (StatusCode::BAD_GATEWAY, "plugin_bad_response"),
    };
    let detail = format!(
        "Plugin {} {} failed in {export}: {f}.",
        p.manifest.name, p.manifest.version
    );
    tracing::warn!(plugin = %p.manifest.name, version = %p.manifest.version, export, "{detail}");
    ApiError::Plugin {
        status,
        code,
        detail,
    }
}

#[axum::debug_handler]
#[tracing::instrument(name = "plugin_call", skip_all, fields(plugin = %m.plugin.manifest.name, route = %m.route, tenant_id = %actor.tenant_id))]
async fn call(
    State(st): State<AppState>,
    actor: Actor,
    Extension(m): Extension<Matched>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, st.settings.plugin_max_request_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = PASSED_HEADERS
        .iter()
        .filter_map(|h| {
            let v = parts.headers.get(*h)?.to_str().ok()?;
            Some((h.to_string(), v.to_string()))
        })
        .collect();
    let request = types::HttpRequest {
        tenant_id: actor.tenant_id.clone(),
        actor: types::Actor {
            kind: actor.actor_type().to_string(),
            id: actor.actor_id().unwrap_or_default().to_string(),
            roles: actor.roles.iter().map(|r| r.as_str().to_string()).collect(),
        },
        request_id: crate::http::request_id::current(),
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        route: m.route.clone(),
        path_params: m.params.clone(),
        query,
        headers,
        body: body.to_vec(),
    };
    let plugin = &m.plugin;
    let served = st
        .plugins
        .handle_http(plugin, &actor.tenant_id, request)
        .await
        .map_err(|f| plugin_error(plugin, "handle-http", f))?;
    let resp = into_response(served.response, st.settings.plugin_max_response_bytes);
    let mutating = parts.method != Method::GET && parts.method != Method::HEAD;
    // The call's writes commit with its events and the audit entry, in one transaction, when the
    // guest answered a success; an error answer (or a broken one) rolls them back, so a failed
    // request leaves nothing behind but its audit entry.
    let success = matches!(&resp, Ok(r) if r.status().as_u16() < 400);
    let (tx, events) = if success {
        (served.tx, served.events)
    } else {
        drop(served.tx);
        (None, Vec::new())
    };
    if tx.is_some() || !events.is_empty() || (mutating && resp.is_ok()) {
        let mut tx = match tx {
            Some(tx) => tx,
            None => st.db.begin().await?,
        };
        super::host::write_events(&mut tx, &actor.tenant_id, &events).await?;
        if let (true, Ok(resp)) = (mutating, &resp) {
            crate::audit::record(
                &mut tx,
                &actor,
                &format!("plugin.{}", parts.method.as_str().to_ascii_lowercase()),
                &plugin.manifest.name,
                None,
                None,
                Some(&json!({
                    "path": parts.uri.path(),
                    "route": m.route,
                    "status": resp.status().as_u16(),
                    "version": plugin.manifest.version,
                })),
            )
            .await?;
        }
        tx.commit().await?;
    }
    resp.map_err(|f| plugin_error(plugin, "handle-http", f))
}

fn into_response(raw: types::HttpResponse, max_bytes: usize) -> Result<Response, Failure> {
    let status = StatusCode::from_u16(raw.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| Failure::BadResponse(format!("status {} is not valid", raw.status)))?;
    if raw.body.len() > max_bytes {
        return Err(Failure::BadResponse(format!(
            "a body of {} bytes exceeds the limit of {max_bytes}",
            raw.body.len()
        )));
    }
    let mut resp = Response::new(Body::from(raw.body));
    *resp.status_mut() = status;
    let mut typed = false;
    for (name, value) in raw.headers {
        let lname = name.to_ascii_lowercase();
        if !ALLOWED_RESPONSE_HEADERS.contains(&lname.as_str()) {
            continue;
        }
        let n = HeaderName::from_bytes(lname.as_bytes())
            .map_err(|_| Failure::BadResponse(format!("header {name:?}")))?;
        let v = HeaderValue::from_str(&value)
            .map_err(|_| Failure::BadResponse(format!("value of header {name}")))?;
        typed |= lname == "content-type";
        resp.headers_mut().insert(n, v);
    }
    if !typed {
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(resp)
}
