//! Trading-platform integrations: the tenant's connector configuration per platform (endpoint,
//! encrypted credentials, active flag) and the positions synced from the platforms. The
//! connectors themselves (MT5 and others) are plugins; connection tests and syncs go through them.

mod configs;
mod positions;
pub mod pushes;
pub mod sync;
mod testing;

use crate::auth::roles::{ADMINS, DEALING, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/integrations/configs", "getIntegrationsConfigs", "integrations")
            .summary("The tenant's connector configurations (credentials are never shown, only their key names).")
            .staff(DEALING),
        configs::list,
    );
    api.add(
        Op::post("/v1/integrations/configs", "postIntegrationsConfigs", "integrations")
            .summary("Create (201) or update (200) the (tenant, platform) connector config; omitted credentials are kept.")
            .staff(ADMINS)
            .body(r#"{"platform":"mt5","label":"MT5 live","endpoint":"https://mt5.broker.example:443","credentials":{"login":"1001","password":"manager password"},"isActive":true}"#),
        configs::upsert,
    );
    api.add(
        Op::post(
            "/v1/integrations/configs/{platform}/test",
            "postIntegrationsConfigsPlatformTest",
            "integrations",
        )
        .summary("Connect to the platform with the stored configuration through its connector; records and returns the outcome.")
        .action()
        .staff(ADMINS),
        testing::test,
    );
    api.add(
        Op::post("/v1/integrations/sync", "postIntegrationsSync", "integrations")
            .summary("Pull balances, equity and positions from every active connector for this tenant's known trading accounts.")
            .action()
            .staff(DEALING),
        sync::sync,
    );
    api.add(
        Op::get("/v1/integrations/pushes", "getIntegrationsPushes", "integrations")
            .summary("Balance operations pushed to the platforms (filters: status=pending|failed|pushed|dead, referenceId). Not in the reference: added by this engine.")
            .staff(DEALING),
        pushes::list,
    );
    api.add(
        Op::post("/v1/integrations/pushes/{id}/retry", "postIntegrationsPushesIdRetry", "integrations")
            .summary("Re-queue a failed or dead balance push for an attempt now. Not in the reference: added by this engine.")
            .action()
            .staff(ADMINS),
        pushes::retry,
    );
    api.add(
        Op::get("/v1/integrations/positions", "getIntegrationsPositions", "integrations")
            .summary("Positions synced from the platforms (filters: status=open|closed, traderId, accountId, symbol, platform).")
            .staff(STAFF),
        positions::list,
    );
}
