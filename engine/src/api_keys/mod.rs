//! API keys for integrations: create (the secret is shown once and stored as sha256 only),
//! list, revoke, rotate and delete. A key acts for the member who created it, with at most
//! that member's roles, and only within its scopes (`auth::authorize` enforces both).

mod handlers;
pub mod model;

pub use model::{cap_roles_of_creator, revoke_created_by};

use crate::auth::roles::ADMINS;
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/api-keys", "getApiKeys", "api-keys")
            .summary("List the tenant's API keys (never their secrets), newest first.")
            .staff(ADMINS),
        handlers::list,
    );
    api.add(
        Op::post("/v1/api-keys", "postApiKeys", "api-keys")
            .summary("Create an API key. The answer carries the key once (`key`); only its hash is kept. Scopes: `*`, `<tag>:read`, `<tag>:write`, `<tag>:*`.")
            .staff(ADMINS)
            .body(r#"{"name":"Back-office sync","scopes":["traders:read","accounts:write"],"expiresAt":"2027-05-23T12:18:22.177Z"}"#),
        handlers::create,
    );
    api.add(
        Op::delete("/v1/api-keys/{id}", "deleteApiKeysId", "api-keys")
            .summary("Delete an API key; it stops working at once.")
            .staff(ADMINS),
        handlers::delete,
    );
    api.add(
        Op::post(
            "/v1/api-keys/{id}/revoke",
            "postApiKeysIdRevoke",
            "api-keys",
        )
        .summary("Revoke an API key; it stays listed as revoked.")
        .action()
        .staff(ADMINS),
        handlers::revoke,
    );
    api.add(
        Op::post(
            "/v1/api-keys/{id}/rotate",
            "postApiKeysIdRotate",
            "api-keys",
        )
        .summary(
            "Issue a new secret for an API key (shown once); the old secret stops working at once.",
        )
        .action()
        .staff(ADMINS),
        handlers::rotate,
    );
}
