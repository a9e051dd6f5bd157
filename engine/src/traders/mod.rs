//! Traders: the CRM's records of a broker's clients. List, create, read, update, soft-delete,
//! segments, suspend and unsuspend.

pub mod handlers;
pub mod model;

pub use handlers::{change_segments, check_assignee};
pub use model::{TraderRow, TraderView, load};

use crate::auth::roles::{CLIENT_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/traders", "getTraders", "traders")
            .summary("List traders (filters: q, email, country, kycStatus, status, segment, source, assignedToId, createdFrom, createdTo).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/traders", "postTraders", "traders")
            .summary("Create a new trader in the current tenant.")
            .staff(CLIENT_WRITE)
            .body(r#"{"email":"client@example.com","phone":"+441234567890","firstName":"Ada","lastName":"Lovelace","country":"GB","dateOfBirth":"1990-12-10","segments":["vip"],"source":"website","assignedToId":null,"metadata":{},"addressLine1":"12 Analytical Row","city":"London","postalCode":"N1 9GU","referredByTraderId":null}"#),
        handlers::create,
    );
    api.add(
        Op::get("/v1/traders/{id}", "getTradersId", "traders")
            .summary("Get a trader by id.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/traders/{id}", "patchTradersId", "traders")
            .summary("Update trader fields (partial; null clears a field).")
            .staff(CLIENT_WRITE)
            .body(r#"{"phone":"+441234567891","kycStatus":"pending","addressLine2":"Flat 3","region":"Greater London","referredByTraderId":"01J0REFERRERTRADERID00000"}"#),
        handlers::update,
    );
    api.add(
        Op::delete("/v1/traders/{id}", "deleteTradersId", "traders")
            .summary("Soft-delete a trader.")
            .staff(CLIENT_WRITE),
        handlers::delete,
    );
    api.add(
        Op::patch(
            "/v1/traders/{id}/segments",
            "patchTradersIdSegments",
            "traders",
        )
        .summary("Add / remove segment tags on a trader.")
        .staff(CLIENT_WRITE)
        .body(r#"{"add":["vip"],"remove":["new"]}"#),
        handlers::segments,
    );
    api.add(
        Op::post(
            "/v1/traders/{id}/suspend",
            "postTradersIdSuspend",
            "traders",
        )
        .summary("Suspend a trader (blocks trading on the broker side).")
        .action()
        .staff(CLIENT_WRITE)
        .body(r#"{"reason":"chargeback under review"}"#),
        handlers::suspend,
    );
    api.add(
        Op::post(
            "/v1/traders/{id}/unsuspend",
            "postTradersIdUnsuspend",
            "traders",
        )
        .summary("Lift a trader suspension.")
        .action()
        .staff(CLIENT_WRITE),
        handlers::unsuspend,
    );
}
