//! Risk-rule benchmark: rule evaluations per second through the sandboxed Rhai engine beside
//! the same rule in plain Rust, and `classify-accounts` over 100,000 accounts end to end
//! (HTTP + SQLite). Run: `cargo run -p lumire-engine --example rules_bench [accounts]`.

use std::time::Instant;

use lumire_engine::risk_rules::{FIELDS, RiskContext, matches};
use lumire_engine::scripting::{condition, sandbox};
use lumire_engine::{App, Settings};
use serde_json::json;

const COUNTRIES: &[&str] = &["DE", "AT", "FR", "GB", "IT", "ES", "PL", "NL"];

fn context(i: usize) -> RiskContext {
    RiskContext {
        trader_country: COUNTRIES[i % COUNTRIES.len()].to_string(),
        account_balance: (i * 37 % 50_000) as f64,
        account_equity: (i * 37 % 50_000) as f64,
        account_leverage: 100,
        account_currency: "USD".into(),
        account_platform: "mt5".into(),
        deposit_total_lifetime: (i * 53 % 80_000) as f64,
        is_demo: i.is_multiple_of(10),
        ..RiskContext::default()
    }
}

/// The rule below, written by hand.
fn plain(c: &RiskContext) -> bool {
    (c.trader_country == "DE" || c.trader_country == "AT")
        && c.account_balance >= 10_000.0
        && !c.is_demo
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rule = json!({"trader_country": {"in": ["DE", "AT"]}, "account_balance": {"gte": 10000}, "is_demo": false});
    let src = condition::to_source(Some(&rule), "match", &condition::Fields::Flat(FIELDS))
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let ast = sandbox::compile(&src, FIELDS)?;
    let contexts: Vec<RiskContext> = (0..n).map(context).collect();

    let t = Instant::now();
    let mut hits = 0usize;
    for c in &contexts {
        if matches(&ast, c)? {
            hits += 1;
        }
    }
    let rhai = t.elapsed();
    let t = Instant::now();
    let mut plain_hits = 0usize;
    for c in &contexts {
        if std::hint::black_box(plain(std::hint::black_box(c))) {
            plain_hits += 1;
        }
    }
    let native = t.elapsed();
    assert_eq!(hits, plain_hits, "Rhai and plain Rust must agree");
    let per_s = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("rule: {src}");
    println!("accounts: {n}, matching: {hits}");
    println!(
        "rhai:  {:>12.0} evaluations/s ({:?} total)",
        per_s(rhai),
        rhai
    );
    println!(
        "plain: {:>12.0} evaluations/s ({:?} total)",
        per_s(native),
        native
    );
    println!(
        "ratio plain/rhai: {:.0}x",
        rhai.as_secs_f64() / native.as_secs_f64()
    );

    // End to end: classify-accounts over n accounts on SQLite.
    let dir = std::env::temp_dir().join(format!("lumire-bench-{}", ulid::Ulid::new()));
    let settings = Settings {
        database_url: format!("sqlite://{}/bench.db", dir.display()),
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".into(),
        run_jobs: false,
        ..Settings::default()
    };
    let app = App::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.state().db.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    let reg: serde_json::Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@bench.example", "password": "correct horse battery staple", "displayName": "Bench", "tenantSlug": "bench", "tenantName": "Bench"}))
        .send()
        .await?
        .json()
        .await?;
    let tenant = reg["tenant"]["id"].as_str().unwrap_or_default().to_string();
    let ts = "2026-01-01T00:00:00.000Z";
    let mut tx = db.begin().await?;
    for i in 0..n {
        let c = context(i);
        let (t, a) = (format!("T{i:08}"), format!("A{i:08}"));
        sqlx::query("INSERT INTO traders (tenant_id, id, email, email_lower, country, created_at, updated_at) VALUES ($1, $2, $3, $3, $4, $5, $5)")
            .bind(&tenant).bind(&t).bind(format!("t{i}@bench.example")).bind(&c.trader_country).bind(ts)
            .execute(&mut *tx).await?;
        sqlx::query("INSERT INTO trading_accounts (tenant_id, id, trader_id, platform, account_number, currency, balance, equity, is_demo, created_at, updated_at) VALUES ($1, $2, $3, 'mt5', $4, 'USD', $5, $5, $6, $7, $7)")
            .bind(&tenant).bind(&a).bind(&t).bind(i.to_string()).bind(c.account_balance.to_string()).bind(i64::from(c.is_demo)).bind(ts)
            .execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let r = http
        .post(format!("{base}/v1/risk-rules"))
        .json(&json!({"name": "bench", "match": rule, "routing": "a_book", "priority": 1}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "create rule: {}", r.text().await?);
    let t = Instant::now();
    let out: serde_json::Value = http
        .post(format!("{base}/v1/risk-rules/classify-accounts"))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let classify = t.elapsed();
    println!(
        "classify-accounts over {} accounts (SQLite, HTTP, persisted): {:?} ({} a_book, {} default)",
        out["accounts"], classify, out["byRouting"]["a_book"], out["defaultRouted"]
    );
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
