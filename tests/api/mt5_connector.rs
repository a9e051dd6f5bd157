//! The MT5 connectors against the MT5 Web API simulator (`lumire_tests::mt5_sim`): connection
//! tests, sync of accounts, balances and positions, paging, and balance pushes that never
//! double. Both paths serve platform `mt5` with the same protocol code (`plugins/mt5-webapi`):
//! the bundled WebAssembly component (`plugins/mt5-connector`) and the trusted native library
//! (`examples/mt5-native-connector`, loaded through libloading); the sync, push and session
//! tests run on each.

use std::time::Duration;

use lumire_tests::mt5_sim::Mt5Sim;
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

    // A wrong password: the server refuses the answer to its random, and the code is named.
    configure(&owner, &sim.url, "not the password", json!({})).await;
    let r = test_connection(&owner).await;
    assert_eq!(r["ok"], false, "{r}");
    let m = r["message"].as_str().unwrap();
    assert!(m.starts_with("unauthorized") && m.contains("1001"), "{r}");

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
        // As the real server: a session belongs to its connection only.
        s.cookie_sessions = false;
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
