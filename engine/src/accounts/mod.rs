//! Trading accounts: a trader's accounts on the broker's trading platforms (MT4/5, cTrader,
//! ...). List, create/link, read, update (with a small status state machine) and soft-delete.

mod handlers;
pub mod model;

pub use model::{AccountRow, AccountView, load};

use crate::auth::roles::{ACCOUNT_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/accounts", "getAccounts", "accounts")
            .summary("List trading accounts (cursor-paginated; filters: traderId, platform, status, currency, isDemo, accountNumber, externalId).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/accounts", "postAccounts", "accounts")
            .summary("Create / link a trading account for a trader. platform: mt4, mt5, ctrader, dxtrade, match_trader, tradelocker, other; balance and equity are decimal strings (default \"0\"); leverage 1-10000 (default 100).")
            .staff(ACCOUNT_WRITE)
            .body(r#"{"traderId":"01JD0000000000000000000000","platform":"mt5","externalId":"mt5-live-01:501234","accountNumber":"501234","currency":"USD","balance":"1250.50","equity":"1249.80","leverage":100,"isDemo":false,"metadata":{}}"#),
        handlers::create,
    );
    api.add(
        Op::get("/v1/accounts/{id}", "getAccountsId", "accounts")
            .summary("Get a trading account by id.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/accounts/{id}", "patchAccountsId", "accounts")
            .summary("Update a trading account (partial). status: active <-> disabled, either -> archived; archived accounts cannot change (409). traderId and currency cannot change once the account has transactions (409).")
            .staff(ACCOUNT_WRITE)
            .body(r#"{"balance":"1300.00","equity":"1310.25","status":"disabled"}"#),
        handlers::update,
    );
    api.add(
        Op::delete("/v1/accounts/{id}", "deleteAccountsId", "accounts")
            .summary("Soft-delete a trading account (its transactions stay on record).")
            .staff(ACCOUNT_WRITE),
        handlers::delete,
    );
}
