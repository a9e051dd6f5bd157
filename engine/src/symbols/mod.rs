//! Trading symbols: the instruments a broker offers, with their contract terms (contract size,
//! pip size, lot limits, leverage) and pricing (markup, commission, swaps), and a standard pack
//! to start from. Request and response fields use the reference's snake_case names.

mod defaults;
pub mod handlers;
pub mod model;

use crate::auth::roles::{DEALING, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/symbols", "getSymbols", "symbols")
            .summary("List trading symbols (filters: category, isActive, q on symbol or name).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/symbols", "postSymbols", "symbols")
            .summary("Create a symbol. Decimal terms are strings; min_lot <= max_lot, lot_step <= min_lot.")
            .staff(DEALING)
            .body(r#"{"symbol":"EURUSD","display_name":"Euro vs US Dollar","category":"fx","base_currency":"EUR","quote_currency":"USD","contract_size":"100000","pip_size":"0.0001","markup_pips":"0.2","commission_per_lot":"3.5","swap_long":"-6.1","swap_short":"1.2","min_lot":"0.01","max_lot":"50","lot_step":"0.01","max_leverage":500,"margin_percent":"0.2","is_active":true,"sort_order":10,"badge":"popular"}"#),
        handlers::create,
    );
    api.add(
        Op::post("/v1/symbols/seed-defaults", "postSymbolsSeedDefaults", "symbols")
            .summary("Add the standard pack (FX, metals, indices, crypto, energies) without touching symbols the tenant already has.")
            .action()
            .staff(DEALING),
        handlers::seed_defaults,
    );
    api.add(
        Op::get("/v1/symbols/{id}", "getSymbolsId", "symbols")
            .summary("Get a symbol.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/symbols/{id}", "patchSymbolsId", "symbols")
            .summary("Update a symbol (partial; the result is validated whole).")
            .staff(DEALING)
            .body(r#"{"markup_pips":"0.4","is_active":false}"#),
        handlers::update,
    );
    api.add(
        Op::delete("/v1/symbols/{id}", "deleteSymbolsId", "symbols")
            .summary("Delete a symbol.")
            .staff(DEALING),
        handlers::delete,
    );
}
