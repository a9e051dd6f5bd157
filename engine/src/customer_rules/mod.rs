//! Customer rules: decide on a portal customer when it signs up (`customer.created`) or changes
//! (`customer.updated`, or `trader.updated` of its linked trader). A rule has a condition
//! (structured or Rhai, over `customer`, `trader` and `event`), an action (approve, reject,
//! assign, tag) and a priority; for each event the first matching rule decides. Rules run from
//! the events outbox in the workflow worker, off the async threads; each decision is recorded
//! on the customer (`ruleDecision`) with the rule that made it, and in an audit entry naming
//! the rule and its version.

mod handlers;
mod runner;

pub use runner::on_event;

use crate::auth::roles::KYC;
use crate::http::api::{Api, Op};

pub const TRIGGERS: &[&str] = &["signup", "update", "any"];
pub const ACTIONS: &[&str] = &["approve", "reject", "assign", "tag"];
/// What a condition can read.
pub const VARS: &[&str] = &["customer", "trader", "event"];

pub fn routes(api: &mut Api) {
    api.add(
        Op::post("/v1/customers/rules", "postCustomersRules", "customers")
            .summary("Create a customer rule. trigger: signup, update, any; condition: structured comparisons on customer.*, trader.*, event.* or a Rhai expression (compiled on save); action: approve, reject (reason), assign (userId), tag (tagId); the first matching rule by ascending priority decides.")
            .staff(KYC)
            .body(r#"{"name":"Auto-approve EU signups","trigger":"signup","condition":{"customer.country":{"in":["DE","FR","IT"]}},"action":"approve","priority":10,"isActive":true}"#),
        handlers::create,
    );
    api.add(
        Op::get(
            "/v1/customers/rules/list",
            "getCustomersRulesList",
            "customers",
        )
        .summary("List customer rules in evaluation order (ascending priority).")
        .staff(KYC),
        handlers::list,
    );
    api.add(
        Op::patch("/v1/customers/rules/{id}", "patchCustomersRulesId", "customers")
            .summary("Update a customer rule (partial); every change makes a new version.")
            .staff(KYC)
            .body(r#"{"condition":"customer.country == \"DE\" && trader.kycStatus == \"approved\"","priority":5}"#),
        handlers::update,
    );
    api.add(
        Op::delete(
            "/v1/customers/rules/{id}",
            "deleteCustomersRulesId",
            "customers",
        )
        .summary("Delete a customer rule (soft: past decisions keep naming it).")
        .staff(KYC),
        handlers::delete,
    );
}
