//! Partner credentials: HTTP Basic username/password pairs a tenant admin issues to an outside
//! partner (a lead vendor, an introducing broker) and revokes. A partner authenticates only on
//! plugin routes whose manifest admits the pseudo-role `partner` (the partner Leads API); the
//! plugin sees an actor of kind `partner` whose id is the credential's, and scopes what it
//! shows to it. Every other route answers 403 to valid partner credentials (authenticated, but
//! not allowed there) and 401 to wrong or revoked ones.

mod auth;
mod handlers;

pub use auth::partner_actor;

/// Registers the partner credential with the access guard (`auth::credentials`); called when
/// the application is assembled.
pub fn register() {
    fn authenticate<'a>(
        st: &'a crate::app::AppState,
        headers: &'a axum::http::HeaderMap,
        ip: Option<String>,
    ) -> crate::auth::credentials::ActorFuture<'a> {
        Box::pin(partner_actor(st, headers, ip))
    }
    crate::auth::credentials::register_partner(authenticate);
}

use crate::auth::roles::ADMINS;
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get(
            "/v1/partner-credentials",
            "getPartnerCredentials",
            "partners",
        )
        .summary("List the tenant's partner credentials (never their passwords), newest first.")
        .staff(ADMINS),
        handlers::list,
    );
    api.add(
        Op::post("/v1/partner-credentials", "postPartnerCredentials", "partners")
            .summary("Issue HTTP Basic credentials to a partner. The answer carries the password once; only its hash is kept.")
            .staff(ADMINS)
            .body(r#"{"name":"Acme Leads Pty"}"#),
        handlers::create,
    );
    api.add(
        Op::post(
            "/v1/partner-credentials/{id}/revoke",
            "postPartnerCredentialsIdRevoke",
            "partners",
        )
        .summary("Revoke a partner's credentials; they stop working at once.")
        .action()
        .staff(ADMINS),
        handlers::revoke,
    );
}
