//! Customers, operator side: the client-portal accounts of the broker's clients. Review
//! (approve / reject), assignment, login history and the conversation with each customer.
//! A customer is linked to its trader (the CRM record) by e-mail, through `trader_id`.

mod handlers;
pub mod model;
pub mod notice;

pub use model::{CustomerRow, CustomerView, load};
pub use notice::{Decision, tell_decision};

use crate::auth::roles::{CLIENT_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/customers", "getCustomers", "customers")
            .summary("List portal customers (filters: status, assignedToId, traderId, q).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::get(
            "/v1/customers/messages/all",
            "getCustomersMessagesAll",
            "customers",
        )
        .summary("Messages of all customers, newest first (filters: direction, customerId).")
        .staff(STAFF),
        handlers::messages_all,
    );
    api.add(
        Op::get("/v1/customers/{id}", "getCustomersId", "customers")
            .summary("Get a portal customer by id.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::post(
            "/v1/customers/{id}/approve",
            "postCustomersIdApprove",
            "customers",
        )
        .summary("Approve a pending (or previously rejected) customer.")
        .action()
        .staff(CLIENT_WRITE),
        handlers::approve,
    );
    api.add(
        Op::post(
            "/v1/customers/{id}/reject",
            "postCustomersIdReject",
            "customers",
        )
        .summary("Reject a pending customer; ends its portal sessions.")
        .action()
        .staff(CLIENT_WRITE)
        .body(r#"{"reason":"Could not verify identity documents"}"#),
        handlers::reject,
    );
    api.add(
        Op::post(
            "/v1/customers/{id}/assign",
            "postCustomersIdAssign",
            "customers",
        )
        .summary("Assign the customer to a team member (userId null unassigns).")
        .action()
        .staff(CLIENT_WRITE)
        .body(r#"{"userId":"01J0USERID0000000000000000"}"#),
        handlers::assign,
    );
    api.add(
        Op::get(
            "/v1/customers/{id}/logins",
            "getCustomersIdLogins",
            "customers",
        )
        .summary("Portal login attempts of a customer, successful and failed, newest first.")
        .staff(STAFF),
        handlers::logins,
    );
    api.add(
        Op::post(
            "/v1/customers/{id}/reply",
            "postCustomersIdReply",
            "customers",
        )
        .summary(
            "Send a message to the customer (shown in the portal; e-mail notice without the text).",
        )
        .staff(CLIENT_WRITE)
        .body(r#"{"body":"Thanks, we have received your documents."}"#),
        handlers::reply,
    );
}
