//! Credentials the access guard accepts beyond its own (sessions and API keys), each owned by
//! the feature that issues it and registered when the application is assembled: the guard
//! calls no feature by name.
//!
//! | credential | registered by | checked |
//! | --- | --- | --- |
//! | partner HTTP Basic (`<tenant>.<credential id>` and secret) | `partners::register` | on plugin routes that admit partners; elsewhere a request carrying it gets 403 instead of 401 |

use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use axum::http::HeaderMap;

use super::Actor;
use crate::app::AppState;
use crate::http::error::ApiResult;

/// What an authenticator returns: the actor its credential names, `None` when the request
/// carries no such credential, or an error (a wrong one: 401; too many failures: 429).
pub type ActorFuture<'a> = Pin<Box<dyn Future<Output = ApiResult<Option<Actor>>> + Send + 'a>>;

/// An authenticator: the application state, the request's headers and the client's address.
pub type Authenticator = for<'a> fn(&'a AppState, &'a HeaderMap, Option<String>) -> ActorFuture<'a>;

static PARTNER: RwLock<Option<Authenticator>> = RwLock::new(None);

/// Registers the partner credential's authenticator (the last registration wins).
pub fn register_partner(f: Authenticator) {
    *PARTNER.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
}

/// The partner a request's credential names, if a partner authenticator is registered and the
/// request carries one.
pub async fn partner(
    st: &AppState,
    headers: &HeaderMap,
    ip: Option<String>,
) -> ApiResult<Option<Actor>> {
    let f = *PARTNER.read().unwrap_or_else(|p| p.into_inner());
    match f {
        Some(f) => f(st, headers, ip).await,
        None => Ok(None),
    }
}
