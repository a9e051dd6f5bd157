//! HTTP plumbing shared by every feature: errors, JSON bodies, pagination, validation, request
//! ids, metrics, CSV streaming, the operation registry and the OpenAPI document.

pub mod api;
pub mod csv_export;
pub mod error;
pub mod hardening;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod patch;
pub mod request_id;
pub mod validate;

use axum::Router;
use axum::middleware::from_fn;
use axum::middleware::from_fn_with_state;

use crate::app::AppState;

/// Adds the layers every request passes through and the problem+json fallback.
pub fn finish_router(router: Router<AppState>, state: AppState) -> Router {
    router
        .route_layer(from_fn_with_state(state.clone(), metrics::middleware))
        // Unknown routes fall through to the installed plugins (404 when none serves them).
        .fallback_service(crate::plugins::http::fallback(state.clone()))
        .layer(from_fn(hardening::middleware))
        .layer(from_fn(request_id::middleware))
        .with_state(state)
}
