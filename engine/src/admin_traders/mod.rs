//! Admin views over traders: tenant-wide stats for the list header, the enriched detail view,
//! and bulk KYC decisions and segment changes (all-or-nothing, one transaction each).

mod handlers;
pub mod kyc;

use crate::auth::roles::{CLIENT_WRITE, KYC, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/admin/traders/stats", "getAdminTradersStats", "admin-traders")
            .summary("Tenant-wide trader stats for the list-page header: total, active, suspended, byKycStatus, newLast7Days, newLast30Days, withTradingAccounts (soft-deleted traders excluded).")
            .staff(STAFF),
        handlers::stats,
    );
    api.add(
        Op::get(
            "/v1/admin/traders/{id}/full",
            "getAdminTradersIdFull",
            "admin-traders",
        )
        .summary("Enriched trader detail: trader + trading accounts + 50 most recent transactions + 50 most recent audit entries on the trader and its accounts (audit only for owner, admin, compliance).")
        .staff(STAFF),
        handlers::full,
    );
    api.add(
        Op::post(
            "/v1/admin/traders/bulk-approve-kyc",
            "postAdminTradersBulkApproveKyc",
            "admin-traders",
        )
        .summary("Approve KYC for up to 500 traders at once. All or nothing: an unknown id is 404, a trader whose KYC is not pending (or already approved) is 409 illegal_kyc_transition; already approved traders are left unchanged.")
        .action()
        .staff(KYC)
        .body(r#"{"traderIds":["01JD0000000000000000000000","01JD0000000000000000000001"],"reason":"Documents verified"}"#),
        handlers::bulk_approve_kyc,
    );
    api.add(
        Op::post(
            "/v1/admin/traders/bulk-reject-kyc",
            "postAdminTradersBulkRejectKyc",
            "admin-traders",
        )
        .summary("Reject KYC for up to 500 traders at once (reason required). All or nothing: an unknown id is 404, a trader whose KYC is not pending (or already rejected) is 409 illegal_kyc_transition; already rejected traders are left unchanged.")
        .action()
        .staff(KYC)
        .body(r#"{"traderIds":["01JD0000000000000000000000"],"reason":"Proof of address older than 3 months"}"#),
        handlers::bulk_reject_kyc,
    );
    api.add(
        Op::post(
            "/v1/admin/traders/bulk-segments",
            "postAdminTradersBulkSegments",
            "admin-traders",
        )
        .summary("Add/remove segments across up to 500 traders (all or nothing; an unknown id is 404).")
        .action()
        .staff(CLIENT_WRITE)
        .body(r#"{"traderIds":["01JD0000000000000000000000","01JD0000000000000000000001"],"add":["vip"],"remove":["new"]}"#),
        handlers::bulk_segments,
    );
}
