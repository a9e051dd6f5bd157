//! The installation's operators acting above tenants (`/v1/platform/*`): only users holding the
//! `platform_operator` role, which a tenant can never hand out; the installation grants it with
//! `lumire operator grant`.

mod feature_flags;
pub mod operators;
mod tenants;

use crate::auth::roles::Role;
use crate::http::api::{Api, Op};

const OPERATORS: &[Role] = &[Role::PlatformOperator];

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/platform/tenants", "getPlatformTenants", "platform")
            .summary("Every tenant, newest first, with its counts (traders, trading accounts, team members, portal customers) and lastActivityAt (its newest audit entry). Filter: slug. Cursor-paginated.")
            .staff(OPERATORS),
        tenants::list,
    );
    api.add(
        Op::get(
            "/v1/platform/tenants/{id}",
            "getPlatformTenantsId",
            "platform",
        )
        .summary("One tenant with its counts, lastActivityAt and owners (id, email, displayName).")
        .staff(OPERATORS),
        tenants::get,
    );
    api.add(
        Op::post(
            "/v1/platform/tenants/{id}/feature-flags",
            "postPlatformTenantsIdFeatureFlags",
            "platform",
        )
        .summary("Merge flags into a tenant's feature flags on behalf of the broker (enabling a plugin, for one). The body is the flags to change: each set to true, false, or null to remove it. Answers the tenant; the change is audited in the tenant's log and the operator's.")
        .action()
        .staff(OPERATORS)
        .body(r#"{"plugin.leads-intake":true,"copyTrading":null}"#),
        feature_flags::merge,
    );
}
