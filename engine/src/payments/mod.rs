//! Payments: payment methods, deposits, withdrawals, reconciliation. Every money effect goes
//! through the ledger; these modules hold the workflow (state machines, approvals, dual control).

mod approval;
mod balances;
mod common;
mod deposits;
mod documents;
pub mod hooks;
mod methods;
mod model;
mod reconciliation;
mod settings;
mod stripe;
mod withdrawals;

use crate::auth::roles::{ADMINS, MONEY_WRITE, STAFF};
use crate::http::api::{Api, Op};

const SETTLE_EXAMPLE: &str = r#"{"id":"01J...","feeAmount":"2.50","netAmount":"97.50","settledAt":"2026-05-23T12:18:22.181Z","externalId":"psp-123","proofUrl":"https://example.com/proof.pdf","notes":"wire received"}"#;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/payments/methods", "getPaymentsMethods", "payments")
            .summary("List saved payment methods (filters: traderId, kind, currency).")
            .staff(STAFF),
        methods::list,
    );
    api.add(
        Op::post("/v1/payments/methods", "postPaymentsMethods", "payments")
            .summary("Save a payment method for a trader; isDefault replaces the trader's previous default.")
            .staff(MONEY_WRITE)
            .body(r#"{"traderId":"01J...","kind":"card","label":"Visa ending 4242","externalRef":"pm_123","currency":"USD","network":"visa","metadata":{},"isDefault":true}"#),
        methods::create,
    );
    api.add(
        Op::get("/v1/payments/deposits", "getPaymentsDeposits", "payments")
            .summary("List deposits (filters: traderId, accountId, status, kind, currency, reconciled, from, to).")
            .staff(STAFF),
        deposits::list,
    );
    api.add(
        Op::post("/v1/payments/deposits", "postPaymentsDeposits", "payments")
            .summary("Create a pending deposit. Money moves only when it settles.")
            .staff(MONEY_WRITE)
            .body(r#"{"traderId":"01J...","accountId":null,"paymentMethodId":null,"kind":"bank_wire","amount":"100.00","currency":"USD","externalId":"psp-123","metadata":{}}"#),
        deposits::create,
    );
    api.add(
        Op::post(
            "/v1/payments/deposits/approve",
            "postPaymentsDepositsApprove",
            "payments",
        )
        .summary("Approve a pending deposit.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","notes":"KYC ok"}"#),
        deposits::approve,
    );
    api.add(
        Op::post(
            "/v1/payments/deposits/bulk-approve",
            "postPaymentsDepositsBulkApprove",
            "payments",
        )
        .summary("Approve up to 50 pending deposits, all or nothing.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"ids":["01J..."],"notes":"batch"}"#),
        deposits::bulk_approve,
    );
    api.add(
        Op::post(
            "/v1/payments/deposits/reject",
            "postPaymentsDepositsReject",
            "payments",
        )
        .summary("Reject a pending or approved deposit.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","reason":"name mismatch"}"#),
        deposits::reject,
    );
    api.add(
        Op::post("/v1/payments/deposits/settle", "postPaymentsDepositsSettle", "payments")
            .summary("Settle an approved deposit: posts gross, fee and net to the ledger and records the transaction.")
            .action()
            .staff(MONEY_WRITE)
            .body(SETTLE_EXAMPLE),
        deposits::settle,
    );
    api.add(
        Op::post("/v1/admin/deposits/{id}/partial-settle", "postAdminDepositsIdPartialSettle", "admin")
            .summary("Settle an approved deposit for less than requested (a wire came in short); noted in providerPayload.")
            .action()
            .staff(MONEY_WRITE)
            .body(r#"{"settledAmount":"95.00","feeAmount":"0","notes":"bank charges deducted"}"#),
        deposits::partial_settle,
    );
    api.add(
        Op::post(
            "/v1/payments/deposits/reverse",
            "postPaymentsDepositsReverse",
            "payments",
        )
        .summary(
            "Reverse a settled deposit (chargeback, NSF, fraud) with a reversing ledger entry.",
        )
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","reason":"chargeback"}"#),
        deposits::reverse,
    );
    api.add(
        Op::post(
            "/v1/payments/deposits/reconcile",
            "postPaymentsDepositsReconcile",
            "payments",
        )
        .summary("Mark a settled deposit reconciled or un-reconciled against external statements.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","reconciled":true,"notes":"statement 2026-05"}"#),
        deposits::reconcile,
    );
    api.add(
        Op::get(
            "/v1/payments/deposits/export.csv",
            "getPaymentsDepositsExportCsv",
            "payments",
        )
        .summary("Export deposits as CSV (same filters as the list; max 10,000 rows, streamed).")
        .staff(STAFF)
        .csv(),
        deposits::export_csv,
    );
    api.add(
        Op::get("/v1/payments/withdrawals", "getPaymentsWithdrawals", "payments")
            .summary("List withdrawals (filters: traderId, accountId, status, kind, currency, reconciled, from, to).")
            .staff(STAFF),
        withdrawals::list,
    );
    api.add(
        Op::post("/v1/payments/withdrawals", "postPaymentsWithdrawals", "payments")
            .summary("Request a withdrawal: the amount is held from the trader's wallet at once (409 insufficient_funds otherwise).")
            .staff(MONEY_WRITE)
            .body(r#"{"traderId":"01J...","accountId":null,"paymentMethodId":null,"kind":"bank_wire","amount":"50.00","currency":"USD","destinationRef":"GB33BUKB20201555555555","metadata":{}}"#),
        withdrawals::create,
    );
    api.add(
        Op::post("/v1/payments/withdrawals/approve", "postPaymentsWithdrawalsApprove", "payments")
            .summary("Approve a withdrawal; above the dual-control threshold the first approval waits for a second, distinct approver.")
            .action()
            .staff(MONEY_WRITE)
            .body(r#"{"id":"01J...","notes":"checked"}"#),
        withdrawals::approve,
    );
    api.add(
        Op::post(
            "/v1/payments/withdrawals/bulk-approve",
            "postPaymentsWithdrawalsBulkApprove",
            "payments",
        )
        .summary("Approve up to 50 withdrawals, all or nothing.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"ids":["01J..."],"notes":"batch"}"#),
        withdrawals::bulk_approve,
    );
    api.add(
        Op::get(
            "/v1/payments/withdrawals/pending-dual-control",
            "getPaymentsWithdrawalsPendingDualControl",
            "payments",
        )
        .summary("Withdrawals waiting for a second approver.")
        .staff(STAFF),
        withdrawals::pending_dual_control,
    );
    api.add(
        Op::post(
            "/v1/payments/withdrawals/reject",
            "postPaymentsWithdrawalsReject",
            "payments",
        )
        .summary("Reject an unsettled withdrawal and release its hold.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","reason":"destination not verified"}"#),
        withdrawals::reject,
    );
    api.add(
        Op::post("/v1/payments/withdrawals/settle", "postPaymentsWithdrawalsSettle", "payments")
            .summary("Settle an approved withdrawal: pays the held amount out (net to the client, fee to the house).")
            .action()
            .staff(MONEY_WRITE)
            .body(SETTLE_EXAMPLE),
        withdrawals::settle,
    );
    api.add(
        Op::post(
            "/v1/payments/withdrawals/reconcile",
            "postPaymentsWithdrawalsReconcile",
            "payments",
        )
        .summary("Mark a settled withdrawal reconciled or un-reconciled.")
        .action()
        .staff(MONEY_WRITE)
        .body(r#"{"id":"01J...","reconciled":true,"notes":"statement 2026-05"}"#),
        withdrawals::reconcile,
    );
    api.add(
        Op::get(
            "/v1/payments/withdrawals/export.csv",
            "getPaymentsWithdrawalsExportCsv",
            "payments",
        )
        .summary("Export withdrawals as CSV (same filters as the list; max 10,000 rows, streamed).")
        .staff(STAFF)
        .csv(),
        withdrawals::export_csv,
    );
    api.add(
        Op::get("/v1/payments/reconciliation", "getPaymentsReconciliation", "payments")
            .summary("Settled deposits and withdrawals per currency with reconciled and unreconciled totals (from, to).")
            .staff(STAFF),
        reconciliation::view,
    );
    api.add(
        Op::get("/v1/payments/traders/{traderId}/balances", "getPaymentsTradersIdBalances", "payments")
            .summary("A trader's ledger balances per currency (available, held, total); ?at= for a past time. Not in the reference: added by this engine.")
            .staff(STAFF),
        balances::get,
    );
    api.add(
        Op::get(
            "/v1/payments/deposits/{id}/invoice.pdf",
            "getPaymentsDepositsIdInvoicePdf",
            "payments",
        )
        .summary("Invoice PDF for a settled (or settled then reversed) deposit, with the tenant's branding.")
        .staff(STAFF)
        .pdf(),
        documents::invoice::get,
    );
    api.add(
        Op::get(
            "/v1/payments/traders/{traderId}/statement.pdf",
            "getPaymentsTradersTraderIdStatementPdf",
            "payments",
        )
        .summary("Monthly statement PDF for a trader (?month=YYYY-MM, default the current month): opening balance, every ledger movement, closing balance per account and currency.")
        .staff(STAFF)
        .pdf(),
        documents::statement::get,
    );
    api.add(
        Op::get("/v1/payments/settings", "getPaymentsSettings", "payments")
            .summary("The tenant's payment policy (dual-control threshold). Not in the reference: added by this engine.")
            .staff(STAFF),
        settings::get,
    );
    api.add(
        Op::patch("/v1/payments/settings", "patchPaymentsSettings", "payments")
            .summary("Set the dual-control threshold (withdrawals at or above it need two distinct approvers; null turns it off) and the Stripe webhook signing secret (write-only; the previous one stays valid for 24 hours).")
            .staff(ADMINS)
            .body(r#"{"dualControlThreshold":"10000","stripeWebhookSecret":"whsec_..."}"#),
        settings::patch,
    );
    api.add(
        Op::post("/v1/payments/webhooks/stripe", "postPaymentsWebhooksStripe", "payments")
            .summary("Stripe webhook receiver (signature-verified): ?tenant=<slug>; settles, rejects or reverses the matching deposit; idempotent per Stripe event id.")
            .action(),
        stripe::receive,
    );
}
