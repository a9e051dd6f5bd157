//! Bonuses: deposit-triggered rules (percent or fixed, capped, with a minimum deposit, optionally
//! first deposit only) that issue bonus credit automatically when a deposit settles, inside the
//! settlement's transaction, and claw it back when the deposit is reversed. Bonus money is
//! credit on the trader's bonus credit line (see `credit_lines`), never withdrawable cash.
//! Rules are `/v1/bonuses`; what they paid is the issuance log.

mod issue;
mod reports;
mod rules;

use crate::auth::roles::{MONEY_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub use issue::{IssuanceView, on_deposit_reversed, on_deposit_settled, register_hooks};

const RULE_EXAMPLE: &str = r#"{"name":"Welcome 50%","description":"First deposit bonus","trigger":"deposit","kind":"percent","value":"50","maxBonus":"500.00","minDeposit":"100.00","currency":"USD","firstDepositOnly":true,"active":true}"#;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/bonuses", "getBonuses", "bonuses")
            .summary("List bonus rules (filters active, currency, kind, trigger).")
            .staff(STAFF),
        rules::list,
    );
    api.add(
        Op::post("/v1/bonuses", "postBonuses", "bonuses")
            .summary("Create a deposit-triggered bonus rule: percent (rounded down to the currency's precision) or fixed, capped by maxBonus, applying from minDeposit.")
            .staff(MONEY_WRITE)
            .body(RULE_EXAMPLE),
        rules::create,
    );
    api.add(
        Op::get(
            "/v1/bonuses/issuance-log",
            "getBonusesIssuanceLog",
            "bonuses",
        )
        .summary("List auto-issued bonus credit-line entries (paginated; filters ruleId, traderId, depositId, status, currency, source, from, to).")
        .staff(STAFF),
        reports::issuance_log,
    );
    api.add(
        Op::get("/v1/bonuses/stats", "getBonusesStats", "bonuses")
            .summary("Bonus counts and totals (issued, clawed back, shortfall, net) per currency and per rule (from, to).")
            .staff(STAFF),
        reports::stats,
    );
    api.add(
        Op::post(
            "/v1/bonuses/replay/{depositId}",
            "postBonusesReplayDepositId",
            "bonuses",
        )
        .summary("Re-evaluate every eligible bonus rule against an existing settled deposit. Idempotent — duplicate grants are detected and skipped.")
        .action()
        .staff(MONEY_WRITE),
        reports::replay,
    );
    api.add(
        Op::get("/v1/bonuses/{id}", "getBonusesId", "bonuses")
            .summary("Get a bonus rule.")
            .staff(STAFF),
        rules::get,
    );
    api.add(
        Op::patch("/v1/bonuses/{id}", "patchBonusesId", "bonuses")
            .summary("Update a bonus rule (partial; null clears description, maxBonus, minDeposit). Past issuances are unchanged.")
            .staff(MONEY_WRITE)
            .body(r#"{"value":"25","maxBonus":null,"active":false}"#),
        rules::update,
    );
    api.add(
        Op::delete("/v1/bonuses/{id}", "deleteBonusesId", "bonuses")
            .summary("Delete a bonus rule (soft: it stops issuing; its issuances stay).")
            .staff(MONEY_WRITE),
        rules::delete,
    );
}
