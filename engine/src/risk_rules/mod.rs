//! Risk rules: route trading accounts to the A-book or B-book. Each rule has a condition (the
//! structured form or a Rhai expression, compiled to the same Rhai expression on save), a
//! routing and a priority; rules are tried in ascending priority and the first match wins; no
//! match falls to the tenant's default routing (`a_book` when the tenant's feature flag
//! `riskDefaultABook` is true, else `b_book`). `classify-accounts` evaluates every active account and persists the decision and
//! the rule that made it; `stats` reports the breakdown of the latest run.

mod classify;
mod handlers;

pub use classify::{FIELDS, RiskContext, matches};

use crate::auth::roles::Role::{self, *};
use crate::http::api::{Api, Op};

/// Who edits routing: the dealing desk and the admins.
const RISK_WRITE: &[Role] = &[Owner, Admin, Dealer];
/// Who may see the rules and their effect.
const RISK_READ: &[Role] = &[Owner, Admin, Dealer, Compliance, Finance];

pub const ROUTINGS: &[&str] = &["a_book", "b_book", "hybrid"];

const RULE_EXAMPLE: &str = r#"{"name":"Large German accounts to A-book","match":{"trader_country":"DE","account_balance":{"gte":10000},"is_demo":false},"routing":"a_book","priority":10,"isActive":true}"#;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/risk-rules", "getRiskRules", "risk-rules")
            .summary("List risk rules in evaluation order (ascending priority; first match wins).")
            .staff(RISK_READ),
        handlers::list,
    );
    api.add(
        Op::post("/v1/risk-rules", "postRiskRules", "risk-rules")
            .summary("Create a risk rule. match: structured field comparisons ({field: value} or {field: {eq|ne|gt|gte|lt|lte|in|not_in: value}}, any/all lists) or a Rhai expression string; compiled on save (a syntax error is a 400 with line and column). routing: a_book, b_book, hybrid.")
            .staff(RISK_WRITE)
            .body(RULE_EXAMPLE),
        handlers::create,
    );
    api.add(
        Op::patch("/v1/risk-rules/{id}", "patchRiskRulesId", "risk-rules")
            .summary("Update a risk rule (partial); every change makes a new version.")
            .staff(RISK_WRITE)
            .body(r#"{"match":"account_balance >= 25000 && !is_demo","priority":5}"#),
        handlers::update,
    );
    api.add(
        Op::delete("/v1/risk-rules/{id}", "deleteRiskRulesId", "risk-rules")
            .summary("Delete a risk rule (soft: past decisions keep naming it).")
            .staff(RISK_WRITE),
        handlers::delete,
    );
    api.add(
        Op::post("/v1/risk-rules/{id}/dry-run", "postRiskRulesIdDryRun", "risk-rules")
            .summary("Dry-run a rule against a hypothetical context — returns whether it would fire and which routing it would emit.")
            .action()
            .staff(RISK_READ)
            .body(r#"{"trader_country":"DE","account_balance":15000,"account_leverage":100,"deposit_total_lifetime":20000,"position_volume":2.5,"position_symbol":"EURUSD","position_profit":-120.5,"is_demo":false}"#),
        handlers::dry_run,
    );
    api.add(
        Op::post(
            "/v1/risk-rules/classify-accounts",
            "postRiskRulesClassifyAccounts",
            "risk-rules",
        )
        .summary("Re-evaluate every active trading account and persist the routing decision.")
        .action()
        .staff(RISK_WRITE),
        classify::classify_accounts,
    );
    api.add(
        Op::get("/v1/risk-rules/stats", "getRiskRulesStats", "risk-rules")
            .summary("Routing breakdown across the tenants trading accounts (after the most recent classify run).")
            .staff(RISK_READ),
        classify::stats,
    );
}
