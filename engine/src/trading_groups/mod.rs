//! Trading groups: pricing and leverage profiles (markup, leverage and commission overrides,
//! swap-free) that customers belong to. A customer is in at most one group at a time: adding it
//! to another group moves it. Request and response fields use the reference's snake_case names.

mod groups;
mod members;

use crate::auth::roles::{DEALING, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/trading-groups", "getTradingGroups", "trading-groups")
            .summary("List trading groups (archived ones only with includeArchived=true).")
            .staff(STAFF),
        groups::list,
    );
    api.add(
        Op::post("/v1/trading-groups", "postTradingGroups", "trading-groups")
            .summary("Create a trading group.")
            .staff(DEALING)
            .body(r#"{"name":"VIP raw spread","slug":"vip-raw","description":"Raw spreads, 7 USD commission","markup_pips_override":"0","max_leverage_override":200,"commission_per_lot_override":"7","swap_free":false,"is_archived":false}"#),
        groups::create,
    );
    api.add(
        Op::get(
            "/v1/trading-groups/{id}",
            "getTradingGroupsId",
            "trading-groups",
        )
        .summary("Fetch one trading group (with its member count).")
        .staff(STAFF),
        groups::get,
    );
    api.add(
        Op::patch(
            "/v1/trading-groups/{id}",
            "patchTradingGroupsId",
            "trading-groups",
        )
        .summary("Update a trading group (partial; null clears an override).")
        .staff(DEALING)
        .body(r#"{"max_leverage_override":100,"is_archived":true}"#),
        groups::update,
    );
    api.add(
        Op::delete(
            "/v1/trading-groups/{id}",
            "deleteTradingGroupsId",
            "trading-groups",
        )
        .summary("Delete a trading group (cascades memberships).")
        .staff(DEALING),
        groups::delete,
    );
    api.add(
        Op::get(
            "/v1/trading-groups/{id}/members",
            "getTradingGroupsIdMembers",
            "trading-groups",
        )
        .summary("List customers in a trading group.")
        .staff(STAFF),
        members::list,
    );
    api.add(
        Op::post("/v1/trading-groups/{id}/members", "postTradingGroupsIdMembers", "trading-groups")
            .summary("Add customers (1-500 ids) to a trading group; a customer in another group moves here. Idempotent.")
            .action()
            .staff(DEALING)
            .body(r#"{"customer_ids":["01J0000000000000000000000"]}"#),
        members::add,
    );
    api.add(
        Op::delete(
            "/v1/trading-groups/{id}/members/{customerId}",
            "deleteTradingGroupsIdMembersCustomerId",
            "trading-groups",
        )
        .summary("Remove a customer from a trading group.")
        .staff(DEALING),
        members::remove,
    );
}
