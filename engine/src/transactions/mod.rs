//! Transactions: records of money moving to or from a trader (deposits, withdrawals, bonuses,
//! fees, ...). List with filters, record one, and export the filtered list as CSV.

mod handlers;
pub mod model;

pub use model::{TransactionView, recent_for_trader};

use crate::auth::roles::{MONEY_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/transactions", "getTransactions", "transactions")
            .summary("List transactions, newest recorded first (cursor-paginated; filters: traderId, accountId, kind, status, currency, externalId, from/to on occurredAt).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/transactions", "postTransactions", "transactions")
            .summary("Record a transaction. kind (credit): deposit, transfer_in, bonus, rebate, profit, adjustment_credit; kind (debit): withdrawal, transfer_out, bonus_removal, commission, fee, loss, adjustment_debit. status: pending (default), completed, failed, cancelled, reversed. amount: positive decimal string. currency defaults to, and must match, the account's. externalId is unique per tenant. occurredAt defaults to now.")
            .staff(MONEY_WRITE)
            .body(r#"{"traderId":"01JD0000000000000000000000","accountId":"01JD0000000000000000000001","kind":"deposit","status":"completed","amount":"500.00","currency":"USD","reference":"PSP-884213","description":"Card deposit","externalId":"psp:884213","occurredAt":"2026-05-23T12:18:22.178Z","metadata":{}}"#),
        handlers::create,
    );
    api.add(
        Op::get(
            "/v1/transactions/export.csv",
            "getTransactionsExportCsv",
            "transactions",
        )
        .summary("Export filtered transactions as CSV (same filters as the list; max 10,000 rows, streamed).")
        .staff(STAFF)
        .csv(),
        handlers::export_csv,
    );
}
