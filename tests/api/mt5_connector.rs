//! The MT5 connectors against the MT5 Web API simulator (`lumire_tests::mt5_sim`): connection
//! tests, sync of accounts, balances and positions, paging, and balance pushes that never
//! double. Both paths serve platform `mt5` with the same protocol code (`plugins/mt5-webapi`):
//! the bundled WebAssembly component (`plugins/mt5-connector`) and the trusted native library
//! (`examples/mt5-native-connector`, loaded through libloading); the sync, push and session
//! tests run on each.

use std::time::Duration;

use lumire_tests::mt5_sim::{Mt5Sim, SimOptions, SimTls};
use lumire_tests::{Member, TestApp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::native_connectors::connectors_dir;
use crate::plugins::spawn_plugins_with;

const MANAGER: u64 = 1000;
const PASSWORD: &str = "Manager#1 pässword";
const GROUP: &str = "real\\usd";

/// Which connector serves `mt5`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// The bundled WebAssembly component.
    Wasm,
    /// The native library; the component is installed too, and the native one wins.
    Native,
}

async fn spawn() -> TestApp {
    spawn_on(Path::Wasm).await
}

async fn spawn_on(path: Path) -> TestApp {
    let native = (path == Path::Native).then(|| connectors_dir(&["lumire-mt5-native-connector"]));
    spawn_plugins_with(move |s| {
        s.plugin_http_allow_private = true;
        s.native_connectors_dir = native;
    })
    .await
}

/// Configures integration `mt5` for the owner's tenant; `extra` adds credential entries
/// (the connector reads its settings from there too).
async fn configure(owner: &Member, endpoint: &str, password: &str, extra: Value) {
    let mut credentials = json!({"login": MANAGER.to_string(), "password": password});
    if let (Some(c), Some(e)) = (credentials.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let (s, b) = owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "mt5", "label": "MT5 sim", "endpoint": endpoint, "credentials": credentials}),
        )
        .await;
    assert!(s.is_success(), "configure: {s} {b}");
}

async fn test_connection(owner: &Member) -> Value {
    let (s, r) = owner
        .post("/v1/integrations/configs/mt5/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

/// A trader with trading accounts on `mt5` with these logins; their ids.
async fn crm_accounts(owner: &Member, logins: &[u64]) -> Vec<String> {
    let (_, t) = owner
        .post(
            "/v1/traders",
            json!({"email": format!("mt5-{}@client.example", ulid::Ulid::new())}),
        )
        .await;
    let mut ids = Vec::new();
    for login in logins {
        let (s, a) = owner
            .post("/v1/accounts", json!({"traderId": t["id"], "platform": "mt5", "accountNumber": login.to_string(), "currency": "USD"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn test_connection_proves_both_sides_and_names_failures() {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    let app = spawn().await;
    let owner = app.register_owner().await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;

    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("connected to the MT5 Web API"),
        "{r}"
    );
    sim.with(|s| {
        assert_eq!(
            (
                s.hits("/api/auth/start"),
                s.hits("/api/auth/answer"),
                s.hits("/api/test/access")
            ),
            (1, 1, 1)
        );
    });

    // A wrong password: the server refuses the answer to its random with a bare 403, as real
    // servers do. That is also what a handshake split over two connections gets, so the
    // connector makes it once more before it blames the password.
    configure(&owner, &sim.url, "not the password", json!({})).await;
    let starts = sim.with(|s| s.hits("/api/auth/start"));
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    let m = r["message"].as_str().unwrap();
    assert!(
        m.starts_with("unauthorized")
            && m.contains("refused manager 1000's password")
            && m.contains("twice"),
        "{r}"
    );
    assert_eq!(sim.with(|s| s.hits("/api/auth/start")) - starts, 2);

    // A server that does not know the password (it answers our random wrongly): refused, and
    // nothing but the handshake is sent to it.
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    sim.with(|s| s.wrong_server_answer = true);
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("cli_rand_answer is wrong"),
        "{r}"
    );
    sim.with(|s| {
        assert_eq!(
            s.hits("/api/test/access"),
            1,
            "no request after a failed server check"
        );
        s.wrong_server_answer = false;
    });

    // An error retcode is reported with its code; a transient one is retried away.
    sim.with(|s| s.fail("/api/test/access", "3 Invalid parameters", 1));
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("3 Invalid parameters"),
        "{r}"
    );
    sim.with(|s| s.fail("/api/test/access", "12 Too frequent requests", 2));
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], true, "retried twice: {r}");

    // Slow answers hit the configured timeout, and are retried a bounded number of times.
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"timeout_ms": "1000", "retries": "1", "backoff_ms": "10"}),
    )
    .await;
    sim.with(|s| s.delay("/api/test/access", Duration::from_millis(2_500), 2));
    let before = sim.with(|s| s.hits("/api/test/access"));
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    let m = r["message"].as_str().unwrap();
    assert!(
        m.starts_with("unavailable") && m.contains("within 1000 ms"),
        "{r}"
    );
    assert_eq!(sim.with(|s| s.hits("/api/test/access")) - before, 2);

    // Nothing listens there.
    configure(&owner, "http://127.0.0.1:9", PASSWORD, json!({})).await;
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("unavailable"),
        "{r}"
    );
    let (_, l) = owner.get("/v1/integrations/configs").await;
    let cfg = &l["data"][0];
    assert_eq!(cfg["lastTestOk"], false, "{l}");
    assert!(
        cfg["lastTestError"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{l}"
    );
}

#[tokio::test]
async fn sync_brings_balances_equity_and_positions_with_commission_and_swap() {
    sync_brings_balances_and_positions(Path::Wasm).await;
}

#[tokio::test]
async fn the_native_connector_syncs_from_the_same_simulator() {
    sync_brings_balances_and_positions(Path::Native).await;
}

async fn sync_brings_balances_and_positions(path: Path) {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    let now = chrono::Utc::now().timestamp();
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(5001, GROUP, "Ada Lovelace", "1000.00", "50.00", "20.00");
        s.add_account(5002, GROUP, "Alan Turing", "250.00", "0.00", "0.00");
        s.add_account(5003, GROUP, "Not In The CRM", "1.00", "0.00", "0.00");
        s.add_position(
            5001,
            9001,
            "EURUSD",
            0,
            "1.00",
            "1.08500",
            "12.50",
            "-0.40",
            now - 3_600,
        );
        s.add_closed(
            5001,
            8001,
            "GBPUSD",
            1,
            "0.50",
            ("1.27000", now - 3 * 86_400),
            ("1.26500", now - 86_400),
            "25.00",
            "-3.50",
            "-1.20",
        );
    });
    let app = spawn_on(path).await;
    let owner = app.register_owner().await;
    let ids = crm_accounts(&owner, &[5001, 5002]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let r = test_connection(&owner).await;
    let kind = if path == Path::Native {
        "native"
    } else {
        "wasm"
    };
    assert_eq!(
        (r["ok"].as_bool(), r["connector"]["kind"].as_str()),
        (Some(true), Some(kind)),
        "{r}"
    );
    let handshakes = sim.with(|s| s.hits("/api/auth/start"));

    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let mt5 = &r["data"][0];
    assert_eq!(mt5["platform"], "mt5", "{r}");
    assert_eq!(mt5["errors"], json!([]), "{r}");
    assert_eq!(
        (
            mt5["accounts"].as_i64(),
            mt5["unmatched"].as_i64(),
            mt5["positions"].as_i64()
        ),
        (Some(2), Some(1), Some(2)),
        "{r}"
    );
    let (_, a) = owner.get(&format!("/v1/accounts/{}", ids[0])).await;
    assert_eq!(
        (a["balance"].as_str(), a["equity"].as_str()),
        (Some("1000.00"), Some("1062.10")),
        "equity = balance + credit + profit + swap: {a}"
    );
    let (_, a) = owner.get(&format!("/v1/accounts/{}", ids[1])).await;
    assert_eq!(a["balance"], "250.00", "{a}");

    let (_, p) = owner.get("/v1/integrations/positions?status=open").await;
    let open = &p["data"][0];
    assert_eq!(p["data"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        (
            open["externalId"].as_str(),
            open["accountId"].as_str(),
            open["side"].as_str(),
            open["volume"].as_str(),
            open["swap"].as_str()
        ),
        (
            Some("9001"),
            Some(ids[0].as_str()),
            Some("buy"),
            Some("1.00"),
            Some("-0.40")
        ),
        "{p}"
    );
    let (_, p) = owner.get("/v1/integrations/positions?status=closed").await;
    let closed = &p["data"][0];
    assert_eq!(
        (
            closed["externalId"].as_str(),
            closed["symbol"].as_str(),
            closed["side"].as_str(),
            closed["openPrice"].as_str(),
            closed["closePrice"].as_str(),
        ),
        (
            Some("8001"),
            Some("GBPUSD"),
            Some("sell"),
            Some("1.27000"),
            Some("1.26500")
        ),
        "{p}"
    );
    assert_eq!(
        (
            closed["profit"].as_str(),
            closed["commission"].as_str(),
            closed["swap"].as_str()
        ),
        (Some("25.00"), Some("-7.00"), Some("-1.20")),
        "commission of both deals: {p}"
    );

    // Again: updated in place, nothing doubled; one handshake per sync run (the native
    // connector keeps its session between runs too).
    let starts = sim.with(|s| s.hits("/api/auth/start")) - handshakes;
    let expected = if path == Path::Native { 0 } else { 1 };
    assert_eq!(starts, expected, "the session is reused within a run");
    let (_, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    let (_, p) = owner.get("/v1/integrations/positions").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2, "{p}");

    // A platform error during a sync is listed with its MT5 code; the rest of the sync goes on.
    sim.with(|s| s.fail("/api/user/account/get_batch", "3 Invalid parameters", 1));
    let (_, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    let errors = r["data"][0]["errors"].to_string();
    assert!(
        errors.contains("get-balances") && errors.contains("MT5 retcode 3 Invalid parameters"),
        "{r}"
    );
    // The open position again; the closed one closed before the last sync.
    assert_eq!(r["data"][0]["positions"], 1, "{r}");

    // Another tenant sees none of it.
    let other = app.register_owner().await;
    let (_, p) = other.get("/v1/integrations/positions").await;
    assert_eq!(p["data"], json!([]));
    let (s, _) = other.get(&format!("/v1/accounts/{}", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, r) = other.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"], json!([]), "{r}");
}

#[tokio::test]
async fn sync_pages_through_accounts_positions_and_deals() {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    let now = chrono::Utc::now().timestamp();
    let known: Vec<u64> = (7000..7030).collect();
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        // 620 accounts on the server (two pages of the engine's 500), 30 of them in the CRM.
        for login in 7000..7620 {
            s.add_account(login, GROUP, "Paged Trader", "100.00", "0.00", "0.00");
        }
        for login in &known {
            for k in 0..3 {
                s.add_position(
                    *login,
                    login * 10 + k,
                    "XAUUSD",
                    1,
                    "0.01",
                    "2000.50",
                    "1.00",
                    "0.00",
                    now - 600,
                );
            }
        }
        // 130 round trips on one login: 260 deals, three pages of `deal/get_page`.
        for k in 0..130 {
            let t = now - 10_000 + k * 10;
            s.add_closed(
                7000,
                500_000 + k as u64,
                "EURUSD",
                0,
                "0.10",
                ("1.10000", t),
                ("1.10100", t + 5),
                "10.00",
                "-0.70",
                "0.00",
            );
        }
    });
    let app = spawn().await;
    let owner = app.register_owner().await;
    crm_accounts(&owner, &known).await;
    // Seven logins per position request: the engine's batch of 30 takes five pages.
    configure(&owner, &sim.url, PASSWORD, json!({"positions_batch": "7"})).await;
    let (s, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let mt5 = &r["data"][0];
    assert_eq!(mt5["errors"], json!([]), "{r}");
    assert_eq!(
        (
            mt5["accounts"].as_i64(),
            mt5["unmatched"].as_i64(),
            mt5["positions"].as_i64()
        ),
        (Some(30), Some(590), Some(30 * 3 + 130)),
        "{r}"
    );
    sim.with(|s| {
        assert!(s.hits("/api/user/get_batch") >= 2, "accounts in pages");
        assert!(s.hits("/api/position/get_batch") >= 5, "positions in pages");
        assert!(
            s.hits("/api/deal/get_page") >= 30 + 2,
            "deals in pages of 100"
        );
        assert_eq!(s.hits("/api/auth/start"), 1);
    });
    let (_, p) = owner
        .get("/v1/integrations/positions?status=closed&limit=500")
        .await;
    assert_eq!(p["data"].as_array().unwrap().len(), 130);
    assert!(
        p["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["commission"] == "-1.40" && x["profit"] == "10.00"),
        "{p}"
    );
}

/// Settles a deposit of `amount` to the account; its id.
async fn settle_deposit(owner: &Member, trader: &str, account: &str, amount: &str) -> String {
    let (s, d) = owner
        .post("/v1/payments/deposits", json!({"traderId": trader, "accountId": account, "kind": "bank_wire", "amount": amount, "currency": "USD"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    let (s, d) = owner
        .post(
            "/v1/payments/deposits/settle",
            json!({"id": id, "feeAmount": "1.00"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    id
}

#[tokio::test]
async fn a_settled_deposit_reaches_mt5_once_even_when_the_push_is_retried() {
    deposit_reaches_mt5_once(Path::Wasm).await;
}

#[tokio::test]
async fn the_native_connector_pushes_a_deposit_once_despite_retries() {
    deposit_reaches_mt5_once(Path::Native).await;
}

async fn deposit_reaches_mt5_once(path: Path) {
    use lumire_engine::integrations::pushes;
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(6001, GROUP, "Grace Hopper", "0.00", "0.00", "0.00");
    });
    let app = spawn_on(path).await;
    let owner = app.register_owner().await;
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "pushed-mt5@client.example"}))
        .await;
    let trader = t["id"].as_str().unwrap().to_string();
    let (_, acc) = owner
        .post("/v1/accounts", json!({"traderId": trader, "platform": "mt5", "accountNumber": "6001", "currency": "USD"}))
        .await;
    let account = acc["id"].as_str().unwrap().to_string();
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"timeout_ms": "1000", "retries": "0"}),
    )
    .await;

    // The platform does the deposit but its answer is lost: the push fails as far as the engine
    // knows, and is retried.
    let dep = settle_deposit(&owner, &trader, &account, "100.00").await;
    sim.with(|s| s.delay("/api/trade/balance", Duration::from_millis(3_000), 1));
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner
        .get(&format!("/v1/integrations/pushes?referenceId={dep}"))
        .await;
    let push = &q["data"][0];
    assert_eq!(push["status"], "failed", "{q}");
    assert!(
        push["lastError"]
            .as_str()
            .unwrap()
            .contains("within 1000 ms"),
        "{q}"
    );
    assert_eq!(
        sim.with(|s| s.balance_deals(6001).len()),
        1,
        "it went through"
    );
    let id = push["id"].as_str().unwrap();
    let (s, _) = owner
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner
        .get(&format!("/v1/integrations/pushes?referenceId={dep}"))
        .await;
    let deals = sim.with(|s| s.balance_deals(6001));
    assert_eq!(deals.len(), 1, "credited once: {deals:?}");
    let (ticket, action, amount, comment) = &deals[0];
    assert_eq!((*action, *amount), (2, "99.00".parse::<Decimal>().unwrap()));
    assert!(
        comment.starts_with("lumire:") && comment.len() <= 31,
        "{comment}"
    );
    assert_eq!(q["data"][0]["status"], "pushed", "{q}");
    assert_eq!(q["data"][0]["dealId"], ticket.to_string(), "{q}");

    // The connector's own retry: the answer is lost once, the connector looks before trying
    // again and finds the deal.
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"timeout_ms": "1000", "retries": "2", "backoff_ms": "10"}),
    )
    .await;
    let dep2 = settle_deposit(&owner, &trader, &account, "50.00").await;
    sim.with(|s| s.delay("/api/trade/balance", Duration::from_millis(3_000), 1));
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner
        .get(&format!("/v1/integrations/pushes?referenceId={dep2}"))
        .await;
    assert_eq!(q["data"][0]["status"], "pushed", "{q}");
    assert_eq!(sim.with(|s| s.balance_deals(6001).len()), 2);
    assert_eq!(
        sim.with(|s| s.users[&6001].balance),
        "148.00".parse::<Decimal>().unwrap()
    );

    // A withdrawal larger than the MT5 balance: refused with the platform's code, not retried
    // into a double.
    let (_, w) = owner
        .post("/v1/payments/withdrawals", json!({"traderId": trader, "accountId": account, "kind": "bank_wire", "amount": "40.00", "currency": "USD"}))
        .await;
    sim.with(|s| s.users.get_mut(&6001).unwrap().balance = "10.00".parse().unwrap());
    let (s, b) = owner
        .post("/v1/payments/withdrawals/approve", json!({"id": w["id"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner
        .get(&format!(
            "/v1/integrations/pushes?referenceId={}",
            w["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(q["data"][0]["status"], "failed", "{q}");
    assert!(
        q["data"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("10019 Not enough money"),
        "{q}"
    );
    assert_eq!(sim.with(|s| s.balance_deals(6001).len()), 2);

    // The money is there again: the withdrawal goes through once.
    sim.with(|s| s.users.get_mut(&6001).unwrap().balance = "148.00".parse().unwrap());
    let id = q["data"][0]["id"].as_str().unwrap();
    owner
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let deals = sim.with(|s| s.balance_deals(6001));
    assert_eq!(deals.len(), 3);
    assert_eq!(deals[2].2, "-40.00".parse::<Decimal>().unwrap());
}

#[tokio::test]
async fn a_session_the_server_forgot_is_renewed() {
    session_is_renewed(Path::Wasm).await;
}

#[tokio::test]
async fn the_native_connector_renews_a_forgotten_session() {
    session_is_renewed(Path::Native).await;
}

async fn session_is_renewed(path: Path) {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(5101, GROUP, "Session Test", "10.00", "0.00", "0.00");
    });
    let app = spawn_on(path).await;
    let owner = app.register_owner().await;
    crm_accounts(&owner, &[5101]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    assert_eq!(r["data"][0]["accounts"], 1, "{r}");
    // The server no longer knows the session mid-run (restarted, or the connection was
    // replaced): HTTP 403 without a retcode. The connector authenticates again once and goes on.
    let starts = sim.with(|s| {
        s.http_fail("/api/user/account/get_batch", 403, 1);
        s.hits("/api/auth/start")
    });
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    assert_eq!(r["data"][0]["accounts"], 1, "{r}");
    // The component makes the run's handshake and one renewal; the native connector kept
    // its session from the last run and only renews.
    let expected = if path == Path::Native { 1 } else { 2 };
    assert_eq!(
        sim.with(|s| s.hits("/api/auth/start")) - starts,
        expected,
        "the run's handshake and one renewal"
    );
}

/// Configures `mt5` for `owner` with manager `login`.
async fn configure_manager(owner: &Member, endpoint: &str, login: u64, password: &str) {
    configure(
        owner,
        endpoint,
        password,
        json!({"login": login.to_string()}),
    )
    .await;
}

#[tokio::test]
async fn a_connection_test_on_a_fresh_endpoint_succeeds_every_time() {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    let app = spawn().await;
    let owner = app.register_owner().await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    for k in 0..12 {
        let r = test_connection(&owner).await;
        assert_eq!(r["ok"], true, "attempt {k}: {r}");
    }
    let log = sim.with(|s| s.requests());
    assert!(log.iter().all(|r| r.status == 200), "no refusal at all");
    assert!(
        log.iter().all(|r| r.keep_alive),
        "keep-alive asked every time"
    );
    // One connection per test, each carrying its own handshake and its command.
    assert_eq!(sim.with(|s| s.connections()), 12);
    for r in log.iter().filter(|r| r.path == "/api/test/access") {
        assert_eq!(r.manager, Some(MANAGER));
    }
}

#[tokio::test]
async fn two_tenants_on_one_server_never_share_a_session() {
    two_tenants_share_nothing(Path::Wasm).await;
}

#[tokio::test]
async fn the_native_connector_keeps_two_tenants_apart_on_one_server() {
    two_tenants_share_nothing(Path::Native).await;
}

/// Two tenants configured on one MT5 server with different managers, each seeing its own
/// groups, sync, test and push at the same time: each gets only its manager's accounts, and
/// the server's log shows every command on the connection of its own session.
async fn two_tenants_share_nothing(path: Path) {
    use lumire_engine::integrations::pushes;
    const ALPHA: u64 = 1100;
    const BETA: u64 = 1200;
    let sim = Mt5Sim::start_with(SimOptions::default()).await;
    sim.with(|s| {
        s.add_manager(ALPHA, "Alpha#pass", "real\\alpha*");
        s.add_manager(BETA, "Beta#pass", "real\\beta*");
        s.add_group("real\\alpha", "USD");
        s.add_group("real\\beta", "USD");
        for i in 0..5 {
            s.add_account(
                7100 + i,
                "real\\alpha",
                "Alpha Client",
                "100.00",
                "0.00",
                "0.00",
            );
            s.add_account(
                7200 + i,
                "real\\beta",
                "Beta Client",
                "200.00",
                "0.00",
                "0.00",
            );
        }
    });
    let app = spawn_on(path).await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    // Each tenant holds CRM accounts for its own logins and, as bait, for the other's.
    let a_own = crm_accounts(&a, &[7100, 7101, 7102, 7103, 7104]).await;
    let a_bait = crm_accounts(&a, &[7200]).await;
    let b_own = crm_accounts(&b, &[7200, 7201, 7202, 7203, 7204]).await;
    let b_bait = crm_accounts(&b, &[7100]).await;
    configure_manager(&a, &sim.url, ALPHA, "Alpha#pass").await;
    configure_manager(&b, &sim.url, BETA, "Beta#pass").await;
    let (_, t) = a.get(&format!("/v1/accounts/{}", a_own[0])).await;
    let a_trader = t["traderId"].as_str().unwrap().to_string();
    let (_, t) = b.get(&format!("/v1/accounts/{}", b_own[0])).await;
    let b_trader = t["traderId"].as_str().unwrap().to_string();

    for round in 0..3 {
        settle_deposit(&a, &a_trader, &a_own[0], "11.00").await;
        settle_deposit(&b, &b_trader, &b_own[0], "21.00").await;
        let (sa, sb, ta, tb, pushed) = tokio::join!(
            a.post("/v1/integrations/sync", json!({})),
            b.post("/v1/integrations/sync", json!({})),
            a.post("/v1/integrations/configs/mt5/test", json!({})),
            b.post("/v1/integrations/configs/mt5/test", json!({})),
            pushes::run_once(&app.state),
        );
        for (who, (s, r)) in [("alpha", sa), ("beta", sb)] {
            assert_eq!(s, StatusCode::OK, "round {round} {who}: {r}");
            let mt5 = &r["data"][0];
            assert_eq!(mt5["errors"], json!([]), "round {round} {who}: {r}");
            // Five accounts of its own matched; the bait login is invisible to its manager.
            assert_eq!(
                (mt5["accounts"].as_i64(), mt5["unmatched"].as_i64()),
                (Some(5), Some(0)),
                "round {round} {who}: {r}"
            );
        }
        for (who, (s, r)) in [("alpha", ta), ("beta", tb)] {
            assert_eq!(
                (s, r["ok"].as_bool()),
                (StatusCode::OK, Some(true)),
                "round {round} {who}: {r}"
            );
        }
        pushed.unwrap();
    }
    // Pushes left over by a sync that held the queue's lease go now.
    while pushes::run_once(&app.state).await.unwrap() > 0 {}

    // Each tenant's accounts carry its own server figures; the bait was never touched.
    let (_, acc) = a.get(&format!("/v1/accounts/{}", a_own[1])).await;
    assert_eq!(acc["balance"], "100.00", "{acc}");
    let (_, acc) = b.get(&format!("/v1/accounts/{}", b_own[1])).await;
    assert_eq!(acc["balance"], "200.00", "{acc}");
    for (m, id) in [(&a, &a_bait[0]), (&b, &b_bait[0])] {
        let (_, acc) = m.get(&format!("/v1/accounts/{id}")).await;
        assert!(
            acc["balance"] == "0" || acc["balance"] == "0.00",
            "another manager's account is never read: {acc}"
        );
    }
    // Each deposit reached its own tenant's login, once per settlement.
    sim.with(|s| {
        assert_eq!(
            s.balance_deals(7100).len(),
            3,
            "{:?}",
            s.balance_deals(7100)
        );
        assert_eq!(
            s.balance_deals(7200).len(),
            3,
            "{:?}",
            s.balance_deals(7200)
        );
        let log = s.requests();
        assert!(
            log.iter().all(|r| r.status == 200),
            "every command found its session: {:?}",
            log.iter().filter(|r| r.status != 200).collect::<Vec<_>>()
        );
        // A connection carries one manager's session and nothing else.
        let mut owner_of: std::collections::HashMap<u64, u64> = Default::default();
        for r in &log {
            let manager = match r.path.as_str() {
                "/api/auth/start" => r.param("login").and_then(|l| l.parse().ok()),
                _ => r.manager,
            };
            let Some(m) = manager else { continue };
            let first = *owner_of.entry(r.conn).or_insert(m);
            assert_eq!(
                first, m,
                "connection {} used by managers {first} and {m}",
                r.conn
            );
        }
        assert!(owner_of.values().any(|m| *m == ALPHA) && owner_of.values().any(|m| *m == BETA));
    });
}

#[tokio::test]
async fn a_dropped_connection_means_a_new_handshake() {
    dropped_connection(Path::Wasm).await;
}

#[tokio::test]
async fn the_native_connector_makes_a_new_handshake_after_a_dropped_connection() {
    dropped_connection(Path::Native).await;
}

async fn dropped_connection(path: Path) {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(5201, GROUP, "Dropped", "10.00", "0.00", "0.00");
    });
    let app = spawn_on(path).await;
    let owner = app.register_owner().await;
    crm_accounts(&owner, &[5201]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    // The server drops every connection (idle timeout, restart): the next run opens a new
    // connection and authenticates on it.
    sim.with(|s| s.drop_connections());
    let starts = sim.with(|s| s.hits("/api/auth/start"));
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    assert_eq!(r["data"][0]["accounts"], 1, "{r}");
    assert_eq!(sim.with(|s| s.hits("/api/auth/start")) - starts, 1);
}

#[tokio::test]
async fn a_refused_balance_operation_is_reported_and_not_retried_under_a_new_session() {
    use lumire_engine::integrations::pushes;
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(6101, GROUP, "No Rights", "0.00", "0.00", "0.00");
        // The manager may read but not move money: retcode 8 on trade/balance.
        s.deny_balance(MANAGER);
    });
    let app = spawn().await;
    let owner = app.register_owner().await;
    let ids = crm_accounts(&owner, &[6101]).await;
    let (_, acc) = owner.get(&format!("/v1/accounts/{}", ids[0])).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let dep = settle_deposit(&owner, acc["traderId"].as_str().unwrap(), &ids[0], "10.00").await;
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner
        .get(&format!("/v1/integrations/pushes?referenceId={dep}"))
        .await;
    assert_eq!(q["data"][0]["status"], "failed", "{q}");
    let e = q["data"][0]["lastError"].as_str().unwrap();
    assert!(
        e.contains("8 Not enough permissions") && e.starts_with("rejected"),
        "{q}"
    );
    sim.with(|s| {
        assert_eq!(s.hits("/api/auth/start"), 1, "no second handshake");
        assert_eq!(s.hits("/api/trade/balance"), 1, "not repeated");
        assert!(s.balance_deals(6101).is_empty());
    });
}

#[tokio::test]
async fn an_account_without_trades_since_the_server_started_gets_its_balance() {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(5301, GROUP, "Idle", "321.45", "10.00", "0.00");
        s.set_active(5301, false);
    });
    let app = spawn().await;
    let owner = app.register_owner().await;
    let ids = crm_accounts(&owner, &[5301]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    let (_, a) = owner.get(&format!("/v1/accounts/{}", ids[0])).await;
    assert_eq!(
        (a["balance"].as_str(), a["equity"].as_str()),
        (Some("321.45"), Some("331.45")),
        "{a}"
    );
    assert_eq!(sim.with(|s| s.hits("/api/user/account/get_batch")), 1);
}

#[tokio::test]
async fn self_signed_and_private_ca_servers_are_trusted_only_as_configured() {
    let sim = Mt5Sim::start_with(SimOptions {
        tls: Some(SimTls::SelfSigned),
        ..SimOptions::default()
    })
    .await;
    sim.with(|s| s.add_manager(MANAGER, PASSWORD, "*"));
    assert!(sim.url.starts_with("https://"), "{}", sim.url);
    let app = spawn().await;
    let owner = app.register_owner().await;

    // No trust given: the public roots do not know it.
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("unavailable"),
        "{r}"
    );
    // The certificate itself as the trust, then its pin.
    let ca = sim.ca_pem.clone().unwrap();
    let pin = sim.cert_sha256.clone().unwrap();
    configure(&owner, &sim.url, PASSWORD, json!({"tls_ca_cert": ca})).await;
    assert_eq!(test_connection(&owner).await["ok"], true);
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"tls_cert_sha256": pin.to_uppercase()}),
    )
    .await;
    assert_eq!(test_connection(&owner).await["ok"], true);
    // Another pin: refused, and the server's fingerprint is named.
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"tls_cert_sha256": "ab".repeat(32)}),
    )
    .await;
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["message"].as_str().unwrap().contains(&pin), "{r}");

    // A private CA: trusting the CA is enough.
    let private = Mt5Sim::start_with(SimOptions {
        tls: Some(SimTls::PrivateCa),
        ..SimOptions::default()
    })
    .await;
    private.with(|s| s.add_manager(MANAGER, PASSWORD, "*"));
    let other = app.register_owner().await;
    configure(
        &other,
        &private.url,
        PASSWORD,
        json!({"tls_ca_cert": private.ca_pem.clone().unwrap()}),
    )
    .await;
    assert_eq!(test_connection(&other).await["ok"], true);
    // The first server's certificate is no trust for the second.
    configure(&other, &private.url, PASSWORD, json!({"tls_ca_cert": ca})).await;
    assert_eq!(test_connection(&other).await["ok"], false);

    // Unreadable trust settings are refused when saved, naming the field; nothing changes.
    for (extra, field) in [
        (
            json!({"tls_ca_cert": "not a certificate"}),
            "credentials.tls_ca_cert",
        ),
        (
            json!({"tls_cert_sha256": "abc"}),
            "credentials.tls_cert_sha256",
        ),
    ] {
        let mut credentials = json!({"login": MANAGER.to_string(), "password": PASSWORD});
        credentials
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, b) = other
            .post(
                "/v1/integrations/configs",
                json!({"platform": "mt5", "label": "MT5", "endpoint": private.url, "credentials": credentials}),
            )
            .await;
        lumire_tests::assert_field_error(s, &b, field);
    }
    assert_eq!(
        test_connection(&other).await["ok"],
        false,
        "the last good configuration stays"
    );
}

#[tokio::test]
async fn the_native_connector_trusts_a_private_ca() {
    let sim = Mt5Sim::start_with(SimOptions {
        tls: Some(SimTls::PrivateCa),
        ..SimOptions::default()
    })
    .await;
    sim.with(|s| s.add_manager(MANAGER, PASSWORD, "*"));
    let app = spawn_on(Path::Native).await;
    let owner = app.register_owner().await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    assert_eq!(test_connection(&owner).await["ok"], false);
    configure(
        &owner,
        &sim.url,
        PASSWORD,
        json!({"tls_ca_cert": sim.ca_pem.clone().unwrap()}),
    )
    .await;
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], true, "{r}");
}

#[tokio::test]
async fn times_are_converted_from_a_server_at_utc_plus_two() {
    server_time_zone(120).await;
}

#[tokio::test]
async fn times_are_converted_from_a_server_at_utc_minus_five() {
    server_time_zone(-300).await;
}

/// A closed position just after the last sync is reported by the next one with its UTC
/// times, whichever side of UTC the server's clock is.
async fn server_time_zone(minutes: i32) {
    let sim = Mt5Sim::start_with(SimOptions {
        server_tz_minutes: minutes,
        ..SimOptions::default()
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    sim.with(|s| {
        s.add_manager(MANAGER, PASSWORD, "*");
        s.add_group(GROUP, "USD");
        s.add_account(5401, GROUP, "Zoned", "100.00", "0.00", "0.00");
        s.add_closed(
            5401,
            8401,
            "EURUSD",
            0,
            "0.10",
            ("1.10000", now - 7_200),
            ("1.10100", now - 3_600),
            "10.00",
            "-0.50",
            "0.00",
        );
        s.add_position(
            5401,
            9401,
            "EURUSD",
            1,
            "0.20",
            "1.10000",
            "1.00",
            "0.00",
            now - 600,
        );
    });
    let app = spawn().await;
    let owner = app.register_owner().await;
    crm_accounts(&owner, &[5401]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    let rfc = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (_, p) = owner.get("/v1/integrations/positions?status=closed").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1, "{p}");
    assert!(
        p["data"][0]["closedAt"]
            .as_str()
            .unwrap()
            .starts_with(&rfc(now - 3_600)),
        "{p}"
    );
    assert!(
        p["data"][0]["openedAt"]
            .as_str()
            .unwrap()
            .starts_with(&rfc(now - 7_200)),
        "{p}"
    );
    let (_, p) = owner.get("/v1/integrations/positions?status=open").await;
    assert!(
        p["data"][0]["openedAt"]
            .as_str()
            .unwrap()
            .starts_with(&rfc(now - 600)),
        "{p}"
    );

    // Closed two seconds after the sync: the next sync's window starts at the last sync.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let closed_at = chrono::Utc::now().timestamp() + 1;
    sim.with(|s| {
        s.add_closed(
            5401,
            8402,
            "GBPUSD",
            1,
            "0.30",
            ("1.27000", closed_at - 60),
            ("1.26900", closed_at),
            "30.00",
            "-1.00",
            "0.00",
        )
    });
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    let (_, p) = owner.get("/v1/integrations/positions?status=closed").await;
    let list = p["data"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{p}");
    let new = list
        .iter()
        .find(|x| x["externalId"] == "8402")
        .expect("reported");
    assert!(
        new["closedAt"]
            .as_str()
            .unwrap()
            .starts_with(&rfc(closed_at)),
        "{p}"
    );
}

#[tokio::test]
async fn closed_positions_keep_volume_ext_and_a_netting_reversal_is_two_positions() {
    let sim = Mt5Sim::start(MANAGER, PASSWORD).await;
    let now = chrono::Utc::now().timestamp();
    let reversal = sim.with(|s| {
        s.add_group(GROUP, "USD");
        s.add_account(5501, GROUP, "Netting", "1000.00", "0.00", "0.00");
        s.add_closed(
            5501,
            8501,
            "BTCUSD",
            0,
            "0.12345678",
            ("60000.00", now - 7_200),
            ("60100.00", now - 7_000),
            "12.35",
            "0.00",
            "0.00",
        );
        // Buy 1 lot, sell 3 (closes 1, opens 2 short), buy 2 back.
        s.add_deal_in(
            5501,
            8600,
            "EURUSD",
            0,
            "1.00",
            ("1.10000", now - 3_000),
            "-1.00",
        );
        let rev = s.add_netting_reversal(
            5501,
            8600,
            "EURUSD",
            "3.00",
            ("1.10500", now - 2_000),
            "50.00",
            "-3.00",
        );
        s.add_deal_out(
            5501,
            8600,
            "EURUSD",
            "2.00",
            ("1.10300", now - 1_000),
            "40.00",
            "-2.00",
            "0.00",
        );
        rev
    });
    let app = spawn().await;
    let owner = app.register_owner().await;
    crm_accounts(&owner, &[5501]).await;
    configure(&owner, &sim.url, PASSWORD, json!({})).await;
    let (_, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["errors"], json!([]), "{r}");
    let (_, p) = owner.get("/v1/integrations/positions?status=closed").await;
    let list = p["data"].as_array().unwrap();
    let by_id = |id: &str| list.iter().find(|x| x["externalId"] == id).cloned();
    let btc = by_id("8501").expect("btc");
    assert_eq!(btc["volume"], "0.12345678", "{p}");
    let first = by_id(&format!("8600-{reversal}")).expect("the leg the reversal closed");
    assert_eq!(
        (
            first["side"].as_str(),
            first["volume"].as_str(),
            first["openPrice"].as_str(),
            first["closePrice"].as_str(),
            first["profit"].as_str()
        ),
        (
            Some("buy"),
            Some("1.00"),
            Some("1.10000"),
            Some("1.10500"),
            Some("50.00")
        ),
        "{p}"
    );
    let second = by_id("8600").expect("the opposite leg");
    assert_eq!(
        (
            second["side"].as_str(),
            second["volume"].as_str(),
            second["openPrice"].as_str(),
            second["closePrice"].as_str(),
            second["profit"].as_str()
        ),
        (
            Some("sell"),
            Some("2.00"),
            Some("1.10500"),
            Some("1.10300"),
            Some("40.00")
        ),
        "{p}"
    );
    assert_eq!(list.len(), 3, "{p}");
}
