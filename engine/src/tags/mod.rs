//! Tags: tenant-defined labels (name, colour, description) applied to clients. Tags are stored
//! per trader (`trader_tags`); the `/v1/customers/{id}/tags` operations accept a customer id
//! (resolved to its linked trader) or a trader id. Archived tags keep their assignments but are
//! hidden from pickers and cannot be newly applied.

mod handlers;

use crate::auth::roles::{CLIENT_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/tags", "getTags", "tags")
            .summary(
                "List tag definitions (archived ones only with includeArchived=true; filter q).",
            )
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/tags", "postTags", "tags")
            .summary("Create a tag.")
            .staff(CLIENT_WRITE)
            .body(
                r##"{"name":"High value","color":"#f59e0b","description":"Deposited over 10k"}"##,
            ),
        handlers::create,
    );
    api.add(
        Op::get("/v1/tags/{id}", "getTagsId", "tags")
            .summary("Get a tag by id.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/tags/{id}", "patchTagsId", "tags")
            .summary("Update a tag (partial; null clears color or description).")
            .staff(CLIENT_WRITE)
            .body(r##"{"name":"VIP","color":"#10b981","description":null}"##),
        handlers::update,
    );
    api.add(
        Op::post("/v1/tags/{id}/archive", "postTagsIdArchive", "tags")
            .summary("Soft-archive a tag: keeps assignment history but hides it from pickers.")
            .action()
            .staff(CLIENT_WRITE),
        handlers::archive,
    );
    api.add(
        Op::get(
            "/v1/customers/{id}/tags",
            "getCustomersCustomerIdTags",
            "tags",
        )
        .summary("List tags currently on a customer (customer or trader id).")
        .staff(STAFF),
        handlers::list_applied,
    );
    api.add(
        Op::post(
            "/v1/customers/{id}/tags/{tagId}",
            "postCustomersCustomerIdTagsTagId",
            "tags",
        )
        .summary("Apply a tag to a customer (customer or trader id). Idempotent.")
        .action()
        .staff(CLIENT_WRITE),
        handlers::apply,
    );
    api.add(
        Op::delete(
            "/v1/customers/{id}/tags/{tagId}",
            "deleteCustomersCustomerIdTagsTagId",
            "tags",
        )
        .summary("Remove a tag from a customer (customer or trader id). Idempotent.")
        .staff(CLIENT_WRITE),
        handlers::remove,
    );
}
