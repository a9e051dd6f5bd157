//! Exercises the host capabilities of `lumire:plugin@0.2.0` and `@0.3.0` for the engine's tests:
//! ledger posts with storage writes in the same transaction, balances, files, outbound HTTP to
//! an allowlisted host, `transaction` commits (`commit.rs`) and positions read through core
//! records.

mod commit;

use lumire_plugin_sdk::ledger::{self, Account};
use lumire_plugin_sdk::{
    self as sdk, Plugin, Problem, Request, Response, Router, files, http_client, manifest, records,
    storage,
};
use serde_json::{Value, json};

struct Capabilities;

const ANY: &[&str] = &[];

impl Plugin for Capabilities {
    fn manifest() -> sdk::Manifest {
        manifest("test-capabilities", env!("CARGO_PKG_VERSION"))
            .description("Exercises ledger, files and outbound HTTP (engine tests only).")
            .route("POST", "/v1/captest/transfer", ANY, "Posts a transfer")
            .route("GET", "/v1/captest/balance", ANY, "A balance")
            .route(
                "POST",
                "/v1/captest/files",
                ANY,
                "Stores and reads back a file",
            )
            .route("GET", "/v1/captest/fetch", ANY, "Fetches ?url=")
            .route(
                "POST",
                "/v1/captest/commit",
                ANY,
                "Commits the steps of the body",
            )
            .route("GET", "/v1/captest/doc", ANY, "A document and its revision")
            .route(
                "GET",
                "/v1/captest/positions",
                ANY,
                "An account's open and recently closed positions",
            )
            .collection("transfers", &["trader"])
            .collection("docs", &[])
            .capability(sdk::Capability::Ledger)
            .capability(sdk::Capability::CoreRecords)
            .capability(sdk::Capability::HttpOutbound(vec!["127.0.0.1".into()]))
            .build()
    }

    fn handle(req: Request) -> Result<Response, Problem> {
        Router::new()
            .post("/v1/captest/transfer", transfer)
            .get("/v1/captest/balance", balance)
            .post("/v1/captest/files", store_file)
            .get("/v1/captest/fetch", fetch)
            .post("/v1/captest/commit", commit::commit)
            .get("/v1/captest/doc", commit::document)
            .get("/v1/captest/positions", positions)
            .dispatch(&req)
    }
}

sdk::export_plugin!(Capabilities);

fn text<'a>(body: &'a Value, field: &str) -> Result<&'a str, Problem> {
    body[field]
        .as_str()
        .ok_or_else(|| Problem::field(field, "is required"))
}

fn ledger_problem(e: ledger::Error) -> Problem {
    match e {
        ledger::Error::InsufficientFunds(a) => Problem::new(409, "insufficient_funds", &a),
        ledger::Error::Invalid(m) => Problem::new(400, "invalid_entry", &m),
        ledger::Error::Denied => Problem::new(403, "denied", "ledger denied"),
        ledger::Error::Unavailable(m) => Problem::new(503, "unavailable", &m),
    }
}

/// Moves `amount` from the trader's wallet to the plugin's `pool` account (or back when
/// negative), recording a transfer document in the same transaction.
fn transfer(req: &Request) -> Result<Response, Problem> {
    let body: Value = req.json()?;
    let trader = text(&body, "traderId")?;
    let amount = text(&body, "amount")?;
    let key = text(&body, "key")?;
    let negated = match amount.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None => format!("-{amount}"),
    };
    let id = ledger::Entry::new("transfer", "test transfer", key)
        .line(Account::TraderWallet(trader.into()), "USD", &negated)
        .line(Account::Plugin("pool".into()), "USD", amount)
        .put(
            "transfers",
            key,
            &json!({"trader": trader, "amount": amount}),
        )
        .post()
        .map_err(ledger_problem)?;
    let transfers = storage::count("transfers", &[])?;
    Ok(Response::json(
        201,
        &json!({"entryId": id, "transfers": transfers}),
    ))
}

fn balance(req: &Request) -> Result<Response, Problem> {
    let account = match (req.query("trader"), req.query("house")) {
        (Some(t), _) => Account::TraderWallet(t.into()),
        (None, Some(h)) => Account::House(h.into()),
        (None, None) => Account::Plugin("pool".into()),
    };
    let b = ledger::balance(&account, "USD").map_err(ledger_problem)?;
    Ok(Response::json(200, &json!({"balance": b})))
}

fn store_file(req: &Request) -> Result<Response, Problem> {
    let stored = files::put("../../note.txt", "text/plain", req.body())
        .map_err(|e| Problem::new(400, "file_refused", &format!("{e:?}")))?;
    let back = files::get(&stored.key)
        .map_err(|e| Problem::new(500, "file_unreadable", &format!("{e:?}")))?
        .unwrap_or_default();
    Ok(Response::json(
        201,
        &json!({
            "key": stored.key, "size": stored.size, "sha256": stored.sha256,
            "roundTrip": back == req.body(),
        }),
    ))
}

fn fetch(req: &Request) -> Result<Response, Problem> {
    let url = req
        .query("url")
        .ok_or_else(|| Problem::field("url", "is required"))?;
    match http_client::request("GET", url).timeout_ms(2000).send() {
        Ok(r) => Ok(Response::json(
            200,
            &json!({"status": r.status, "body": String::from_utf8_lossy(&r.body)}),
        )),
        Err(http_client::Error::Denied(m)) => Err(Problem::new(403, "http_denied", &m)),
        Err(e) => Err(Problem::new(502, "http_failed", &format!("{e:?}"))),
    }
}

/// `?account=ID&since=TIME`: the account's open positions and those closed at or after `since`,
/// by symbol, read through core records.
fn positions(req: &Request) -> Result<Response, Problem> {
    let account = req.query("account").unwrap_or_default();
    let since = req.query("since").unwrap_or_default();
    let records_problem = |e: records::Error| match e {
        records::Error::NotFound => Problem::not_found("account"),
        other => Problem::new(503, "records_failed", &format!("{other:?}")),
    };
    let open = records::open_positions(account).map_err(records_problem)?;
    let closed = records::closed_positions(account, since).map_err(records_problem)?;
    let symbols =
        |ps: Vec<records::Position>| -> Vec<String> { ps.into_iter().map(|p| p.symbol).collect() };
    Ok(Response::json(
        200,
        &json!({"open": symbols(open), "closed": symbols(closed)}),
    ))
}
