//! The `sync` scenario: N trading accounts with P open positions each on a connector's platform,
//! one `POST /v1/integrations/sync`, and the throughput and memory it took. The connector is the
//! native demo connector (`examples/native-connector`), which serves any number of accounts from
//! memory, so the figures measure the engine's side of a sync: paging accounts, matching them,
//! batched balance and position calls, and the writes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

/// Copies the demo connector next to the data dir and returns the directory to load it from.
pub fn connector_dir(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let built = exe.parent().context("exe dir")?.join(format!(
        "{}lumire_native_connector_example{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if !built.exists() {
        bail!(
            "{} is missing: cargo build --release -p lumire-native-connector-example",
            built.display()
        );
    }
    let dir = data_dir.join("connectors");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&built, dir.join(built.file_name().context("file name")?))?;
    Ok(dir)
}

/// Resident and peak memory of this process (engine and load generator together), in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn run(
    client: &reqwest::Client,
    base: &str,
    accounts: usize,
    positions: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let r = client
        .post(format!("{base}/v1/traders"))
        .json(&json!({"email": "sync-bench@example.com"}))
        .send()
        .await?;
    let trader: serde_json::Value = r.json().await?;
    let trader = trader["id"].as_str().context("trader id")?.to_string();
    // The CRM side: N accounts on the platform, created concurrently.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, base, trader) = (client.clone(), base.to_string(), trader.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < accounts {
                let body = json!({"traderId": trader, "platform": "other", "accountNumber": (1_000_000 + i).to_string(), "currency": "USD"});
                let r = client.post(format!("{base}/v1/accounts")).json(&body).send().await?;
                if r.status().as_u16() != 201 {
                    bail!("account create: {}", r.text().await?);
                }
                i += concurrency;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "created {accounts} trading accounts in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let r = client
        .post(format!("{base}/v1/integrations/configs"))
        .json(&json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"password": "demo", "accounts": accounts.to_string(), "positions": positions.to_string()}}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("configure: {}", r.text().await?);
    }
    let (rss_before, _) = memory_mib();
    let started = Instant::now();
    let r = client
        .post(format!("{base}/v1/integrations/sync"))
        .json(&json!({}))
        .send()
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let summary: serde_json::Value = r.json().await?;
    let (rss_after, peak) = memory_mib();
    let s = &summary["data"][0];
    let synced_accounts = s["accounts"].as_f64().unwrap_or(0.0);
    let synced_positions = s["positions"].as_f64().unwrap_or(0.0);
    println!(
        "sync: accounts={synced_accounts} positions={synced_positions} errors={} seconds={elapsed:.2} accounts/s={:.0} positions/s={:.0}",
        s["errors"].as_array().map_or(0, Vec::len),
        synced_accounts / elapsed,
        synced_positions / elapsed,
    );
    println!(
        "memory (engine and load generator in one process): rss before={rss_before:.0} MiB after={rss_after:.0} MiB peak={peak:.0} MiB"
    );
    Ok(())
}
