//! Credit lines: broker money lent to a trader, up to a limit, in one currency. The money lives
//! in the ledger (see `domain`): each line has its own account whose balance is what is
//! outstanding; grants come from `house:credit` (bonus lines: `house:bonuses`) and revokes go
//! back there. Credit is not cash: it never reaches the trader's wallet, so it cannot be
//! withdrawn. Bonus lines are opened by the engine for auto-issued bonuses (see `bonuses`).

pub mod domain;
mod handlers;
pub mod model;

use crate::auth::roles::{MONEY_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub use handlers::amount_field;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/credit-lines", "getCreditLines", "credit-lines")
            .summary("List credit lines (tenant-scoped, paginated; filters traderId, customerId, currency, kind, includeDeleted).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/credit-lines", "postCreditLines", "credit-lines")
            .summary("Open a credit line for a trader (traderId, or customerId resolved to its linked trader) with a currency and a limit. One live line per trader and currency.")
            .staff(MONEY_WRITE)
            .body(r#"{"traderId":"01J...","currency":"USD","limit":"5000.00","terms":"Trading credit, not withdrawable; revocable at any time.","metadata":{}}"#),
        handlers::create,
    );
    api.add(
        Op::get("/v1/credit-lines/{id}", "getCreditLinesId", "credit-lines")
            .summary("Get a credit line with its outstanding and available amounts.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::delete(
            "/v1/credit-lines/{id}",
            "deleteCreditLinesId",
            "credit-lines",
        )
        .summary(
            "Soft-delete a credit line; only when nothing is outstanding (409 credit_outstanding).",
        )
        .staff(MONEY_WRITE),
        handlers::delete,
    );
    api.add(
        Op::get(
            "/v1/credit-lines/{id}/entries",
            "getCreditLinesIdEntries",
            "credit-lines",
        )
        .summary("Grants and revokes of a line, newest first, each with its ledger entry id (filters kind, source).")
        .staff(STAFF),
        handlers::entries,
    );
    api.add(
        Op::post(
            "/v1/credit-lines/{id}/grant",
            "postCreditLinesIdGrant",
            "credit-lines",
        )
        .summary("Grant credit: moves the amount from the house credit account to the line (409 credit_limit_exceeded above the limit).")
        .staff(MONEY_WRITE)
        .body(r#"{"amount":"500.00","reason":"trading credit for promotion"}"#),
        handlers::grant,
    );
    api.add(
        Op::post(
            "/v1/credit-lines/{id}/revoke",
            "postCreditLinesIdRevoke",
            "credit-lines",
        )
        .summary("Revoke credit: moves the amount back to the house (409 revoke_exceeds_outstanding above what is outstanding).")
        .staff(MONEY_WRITE)
        .body(r#"{"amount":"200.00","reason":"promotion ended"}"#),
        handlers::revoke,
    );
}
