//! The `sync` and `mt5-sync` scenarios: N trading accounts with P open positions each on a
//! connector's platform, one `POST /v1/integrations/sync`, and the throughput and memory it took.
//!
//! - `sync`: the native demo connector (`examples/native-connector`), which serves any number of
//!   accounts from memory, so the figures measure the engine's side of a sync: paging accounts,
//!   matching them, batched balance and position calls, and the writes.
//! - `mt5-sync`: the bundled MT5 connector (WebAssembly, `plugins/dist/mt5-connector.wasm`)
//!   against the MT5 Web API simulator of the test crate, run in a child process of its own
//!   (`--scenario mt5-sim`) so the memory figures are the engine's: the protocol's whole cost
//!   (handshake, JSON over HTTP, paging, deals read per login) on top of the engine's.

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

/// The simulator's first login; the CRM's accounts are numbered the same way.
pub const FIRST_LOGIN: u64 = 1_000_000;

/// `--scenario mt5-sim`: serves a simulator with `accounts` × `positions`, prints its URL, and
/// runs until its standard input closes.
pub async fn serve_simulator(accounts: usize, positions: usize) -> anyhow::Result<()> {
    use std::io::BufRead;
    let sim = lumire_tests::mt5_sim::Mt5Sim::start(MT5_MANAGER, MT5_PASSWORD).await;
    sim.with(|s| {
        s.add_group("real\\bench", "USD");
        s.seed_bulk(
            "real\\bench",
            FIRST_LOGIN,
            accounts as u64,
            positions as u64,
        );
    });
    println!("{}", sim.url);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
            line.clear();
        }
    })
    .await?;
    Ok(())
}

pub const MT5_MANAGER: u64 = 1000;
pub const MT5_PASSWORD: &str = "bench manager password";

/// Starts `--scenario mt5-sim` as a child process; the child and the simulator's URL.
pub fn spawn_simulator(
    accounts: usize,
    positions: usize,
) -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--scenario",
            "mt5-sim",
            "--accounts",
            &accounts.to_string(),
            "--positions",
            &positions.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let mut url = String::new();
    std::io::BufReader::new(stdout).read_line(&mut url)?;
    let url = url.trim().to_string();
    if !url.starts_with("http://") {
        let _ = child.kill();
        bail!("the simulator did not start: {url:?}");
    }
    Ok((child, url))
}

/// A plugins dir for the run holding only the MT5 connector, as `scripts/build-plugins` built it
/// into `plugins/dist` (or `LUMIRE_PLUGINS_DIR`).
pub fn plugins_dir(run_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let built = std::env::var("LUMIRE_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/dist"))
        .join("mt5-connector.wasm");
    let dir = run_dir.join("plugins");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&built, dir.join("mt5-connector.wasm")).with_context(|| {
        format!(
            "{} is missing: run ./scripts/build-plugins first",
            built.display()
        )
    })?;
    Ok(dir)
}

/// Which platform and connector configuration a sync run uses.
pub struct Target {
    pub platform: &'static str,
    pub config: serde_json::Value,
}

impl Target {
    pub fn native(accounts: usize, positions: usize) -> Target {
        Target {
            platform: "other",
            config: json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"password": "demo", "accounts": accounts.to_string(), "positions": positions.to_string()}}),
        }
    }
    pub fn mt5(url: &str) -> Target {
        Target {
            platform: "mt5",
            config: json!({"platform": "mt5", "endpoint": url, "credentials": {"login": MT5_MANAGER.to_string(), "password": MT5_PASSWORD}}),
        }
    }
}

pub async fn run(
    client: &reqwest::Client,
    base: &str,
    accounts: usize,
    concurrency: usize,
    target: &Target,
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
        let platform = target.platform;
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < accounts {
                let body = json!({"traderId": trader, "platform": platform, "accountNumber": (FIRST_LOGIN + i as u64).to_string(), "currency": "USD"});
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
        .json(&target.config)
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
