//! Who is calling and what they may do: roles, the per-operation access rule, the resolved
//! `Actor`, sessions, passwords and the one middleware that enforces access.

pub mod authorize;
pub mod credentials;
pub mod password;
pub mod roles;
pub mod session;

pub use authorize::authorize;
pub use roles::{Access, Role};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::http::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// A team member with a session cookie.
    User,
    /// An integration with an API key.
    ApiKey,
    /// A client of the broker in the portal.
    Customer,
    /// The engine acting on a provider's signed notification (a Stripe webhook, ...);
    /// `label` names the provider.
    System,
    /// An outside partner with HTTP Basic credentials (`partners`); `label` is the credential
    /// id. Admitted only on plugin routes that name the pseudo-role `partner`.
    Partner,
}

/// The authenticated caller of a request, resolved once by [`authorize`].
#[derive(Clone, Debug)]
pub struct Actor {
    pub tenant_id: String,
    pub kind: ActorKind,
    /// The user acting (for API keys: the user who created the key).
    pub user_id: Option<String>,
    pub customer_id: Option<String>,
    pub trader_id: Option<String>,
    pub roles: Vec<Role>,
    pub session_id: Option<String>,
    pub api_key_id: Option<String>,
    pub impersonator_id: Option<String>,
    pub label: String,
    pub ip: Option<String>,
    /// For API keys: the scopes the key was granted.
    pub scopes: Option<Vec<String>>,
}

impl Actor {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The id that scopes idempotency keys and audit entries to this credential.
    pub fn credential_id(&self) -> &str {
        self.api_key_id
            .as_deref()
            .or(self.session_id.as_deref())
            .unwrap_or("")
    }

    pub fn actor_id(&self) -> Option<&str> {
        match self.kind {
            ActorKind::Customer => self.customer_id.as_deref(),
            ActorKind::ApiKey => self.api_key_id.as_deref(),
            ActorKind::User => self.user_id.as_deref(),
            ActorKind::System | ActorKind::Partner => Some(self.label.as_str()),
        }
    }

    pub fn actor_type(&self) -> &'static str {
        match self.kind {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Customer => "customer",
            ActorKind::System => "system",
            ActorKind::Partner => "partner",
        }
    }

    /// The engine itself acting inside `tenant_id` on behalf of `source` (e.g. `stripe`).
    pub fn system(tenant_id: &str, source: &str) -> Actor {
        Actor {
            tenant_id: tenant_id.to_string(),
            kind: ActorKind::System,
            user_id: None,
            customer_id: None,
            trader_id: None,
            roles: Vec::new(),
            session_id: None,
            api_key_id: None,
            impersonator_id: None,
            label: source.to_string(),
            ip: None,
            scopes: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(ApiError::Unauthorized("unauthenticated"))
    }
}

/// Client address and user agent, for sessions and audit entries.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(client_info(parts))
    }
}

pub fn client_info(parts: &Parts) -> ClientInfo {
    let ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    ClientInfo { ip, user_agent }
}
