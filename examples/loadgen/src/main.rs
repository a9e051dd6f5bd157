//! Load generator: starts the engine in-process with a fresh database and a seeded tenant, then
//! drives the API from concurrent clients over loopback and prints throughput and p50/p99
//! latency:
//! - `traders`: `GET /v1/traders/{id}` and `POST /v1/traders`;
//! - `money`: settled deposits (create, approve, settle: three requests, each one transaction,
//!   the last posting to the ledger), all to one hot wallet, then spread over every seeded
//!   trader. One "op" is one deposit carried to settled.
//!
//! - `sync` (not part of `all`): `--accounts N` trading accounts with `--positions P` open
//!   positions each, synced once through the native demo connector; prints accounts/s,
//!   positions/s and memory (needs `cargo build --release -p lumire-native-connector-example`).
//!
//! - `mt5-sync` (not part of `all`): the same through the MT5 WebAssembly connector
//!   (`plugins/dist/mt5-connector.wasm`, built by `scripts/build-plugins`) against the MT5 Web
//!   API simulator, which runs in a child process (`--scenario mt5-sim`).
//!
//! - `plugins` (not part of `all`): a plugin route against a native route doing the same
//!   storage work, plugin instantiation per call and the cost of one host call (needs
//!   `./scripts/build-plugins`).
//!
//! Flags and variables: `lumire-loadgen --help` ([`USAGE`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod plugin_bench;
mod sync_bench;

use anyhow::{Context, bail};
use lumire_engine::{App, Settings};
use serde_json::json;

struct Args {
    db: String,
    scenario: String,
    seconds: u64,
    concurrency: usize,
    seed: usize,
    accounts: usize,
    positions: usize,
    /// `plugins`: interleaved rounds of the read, list and write phases (native, then plugin),
    /// so that drift of the machine lands on both sides; the median is reported.
    rounds: usize,
}

/// What `--help` prints.
const USAGE: &str = "usage: lumire-loadgen [--db sqlite|postgres] \
[--scenario traders|money|sync|mt5-sync|plugins|all] [--seconds N] [--rounds N] \
[--concurrency N] [--seed N] [--accounts N] [--positions N]
PostgreSQL: LUMIRE_LOADGEN_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
database is created for the run and dropped afterwards.
Engine settings (LUMIRE_*) apply to the engine the benchmark starts.
LUMIRE_LOADGEN_PHASE_MARKS=1 prints when each phase starts (CLOCK_MONOTONIC), for perf.";

/// The arguments, or `None` when help was asked for.
fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut a = Args {
        db: "sqlite".into(),
        scenario: "all".into(),
        seconds: 10,
        concurrency: 16,
        seed: 1000,
        accounts: 10_000,
        positions: 10,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let val = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--db" => a.db = val,
            "--scenario" => a.scenario = val,
            "--seconds" => a.seconds = val.parse()?,
            "--concurrency" => a.concurrency = val.parse()?,
            "--seed" => a.seed = val.parse()?,
            "--accounts" => a.accounts = val.parse()?,
            "--positions" => a.positions = val.parse()?,
            "--rounds" => a.rounds = val.parse::<usize>()?.max(1),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    if args.scenario == "mt5-sim" {
        return sync_bench::serve_simulator(args.accounts, args.positions).await;
    }
    let run_id = ulid::Ulid::new().to_string().to_lowercase();
    let dir = std::env::temp_dir().join(format!("lumire-loadgen-{run_id}"));
    // The engine's own settings (`lumire.toml`, `LUMIRE_*`: `LUMIRE_PLUGIN_PERFMAP=true` to name
    // guest code in `perf report`, `LUMIRE_PLUGIN_KEEP_RESIDENT_KIB` to compare memory reset
    // policies, ...), with what the benchmark itself decides put over them.
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        run_jobs: false,
        db_max_connections: 16,
        ..Settings::load()?
    };
    let pg = match args.db.as_str() {
        "sqlite" => {
            settings.database_url = format!("sqlite://{}/lumire.db", dir.display());
            None
        }
        "postgres" => {
            let admin = std::env::var("LUMIRE_LOADGEN_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("lumire_loadgen_{run_id}");
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await?;
            pool.close().await;
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin)
                .to_string();
            settings.database_url = format!("{base}/{name}");
            Some((admin, name))
        }
        other => bail!("--db must be sqlite or postgres, not {other}"),
    };
    let mut simulator = None;
    let target = match args.scenario.as_str() {
        "sync" => {
            settings.native_connectors_dir = Some(sync_bench::connector_dir(&dir)?);
            Some(sync_bench::Target::native(args.accounts, args.positions))
        }
        "mt5-sync" => {
            settings.plugins_dir = sync_bench::plugins_dir(&dir)?;
            settings.plugin_http_allow_private = true;
            let (child, url) = sync_bench::spawn_simulator(args.accounts, args.positions)?;
            simulator = Some(child);
            Some(sync_bench::Target::mt5(&url))
        }
        _ => None,
    };
    if target.is_some() {
        // The benchmark runs the sync itself.
        settings.sync_interval_secs = 0;
    }
    if args.scenario == "plugins" {
        settings.plugins_dir = plugin_bench::plugins_dir(&dir)?;
    }
    let result = run(&args, settings, target.as_ref()).await;
    if let Some(mut child) = simulator {
        // Closing its standard input stops it.
        drop(child.stdin.take());
        let _ = child.wait();
    }
    if let Some((admin, name)) = pg {
        let pool = sqlx::AnyPool::connect(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    args: &Args,
    settings: Settings,
    target: Option<&sync_bench::Target>,
) -> anyhow::Result<()> {
    let app = App::build(settings).await?;
    let state = app.state().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let slug = format!("load-{}", ulid::Ulid::new().to_string().to_lowercase());
    let r = client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": format!("owner@{slug}.example"), "password": "load generator password", "tenantSlug": slug, "tenantName": "Load"}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("register failed: {}", r.text().await?);
    }
    let mut ids = Vec::with_capacity(args.seed);
    for i in 0..args.seed {
        let r = client
            .post(format!("{base}/v1/traders"))
            .json(&json!({"email": format!("seed{i}@example.com"), "firstName": "Seed", "country": "GB"}))
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        ids.push(v["id"].as_str().context("seeded trader id")?.to_string());
    }
    let ids = Arc::new(ids);
    refresh_statistics(&state.db).await?;
    println!(
        "lumire-loadgen: db={} scenario={} concurrency={} seconds={} seeded_traders={}",
        args.db, args.scenario, args.concurrency, args.seconds, args.seed
    );
    if args.scenario == "traders" || args.scenario == "all" {
        traders(args, &client, &base, &ids).await;
    }
    if args.scenario == "plugins" {
        let tenant: serde_json::Value = client
            .get(format!("{base}/v1/tenants/current"))
            .send()
            .await?
            .json()
            .await?;
        let tenant_id = tenant["id"].as_str().context("tenant id")?.to_string();
        plugin_bench::run(args, &state, &client, &base, &tenant_id, &ids).await?;
    }
    if let Some(target) = target {
        sync_bench::run(&client, &base, args.accounts, args.concurrency, target).await?;
    }
    if args.scenario == "money" || args.scenario == "all" {
        let hot = Arc::new(vec![ids[0].clone()]);
        let o = measure(args, deposit_cycle(&client, &base, hot)).await;
        report("settled deposit (hot)", &o, args.seconds);
        let o = measure(args, deposit_cycle(&client, &base, ids.clone())).await;
        report("settled deposit (many)", &o, args.seconds);
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

/// Gathers PostgreSQL's planner statistics, as autovacuum does in a running system about a
/// minute after a bulk insert. The phases start seconds after the seeding: without statistics
/// PostgreSQL looked up a trader by primary key through the partial e-mail index, filtering out
/// every other trader of the tenant (0.5 ms a read with 2,000 traders). SQLite has no automatic
/// equivalent, so nothing is run there (the engine's SQLite databases have no statistics either).
pub async fn refresh_statistics(db: &lumire_engine::db::Db) -> anyhow::Result<()> {
    if db.kind() == lumire_engine::db::DbKind::Postgres {
        sqlx::query("ANALYZE").execute(db.pool()).await?;
    }
    Ok(())
}

/// One deposit carried from creation to settled, to the trader `n` picks.
fn deposit_cycle(
    client: &reqwest::Client,
    base: &str,
    ids: Arc<Vec<String>>,
) -> impl Fn(
    u64,
)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, reqwest::Error>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let (client, base) = (client.clone(), base.to_string());
    move |n| {
        let (client, base) = (client.clone(), base.clone());
        let trader = ids[n as usize % ids.len()].clone();
        Box::pin(async move {
            let r = client
                .post(format!("{base}/v1/payments/deposits"))
                .json(&json!({"traderId": trader, "kind": "bank_wire", "amount": "100.00", "currency": "USD"}))
                .send()
                .await?;
            if r.status().as_u16() != 201 {
                return Ok(false);
            }
            let d: serde_json::Value = r.json().await?;
            let id = d["id"].as_str().unwrap_or_default().to_string();
            let r = client
                .post(format!("{base}/v1/payments/deposits/approve"))
                .json(&json!({"id": id}))
                .send()
                .await?;
            if r.status().as_u16() != 200 {
                return Ok(false);
            }
            let r = client
                .post(format!("{base}/v1/payments/deposits/settle"))
                .json(&json!({"id": id, "feeAmount": "1.50"}))
                .send()
                .await?;
            Ok(r.status().as_u16() == 200)
        })
    }
}

async fn traders(args: &Args, client: &reqwest::Client, base: &str, ids: &Arc<Vec<String>>) {
    let get = measure(args, {
        let (client, base, ids) = (client.clone(), base.to_string(), ids.clone());
        move |n| {
            let url = format!("{base}/v1/traders/{}", ids[n as usize % ids.len()]);
            let client = client.clone();
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 200)
            }
        }
    })
    .await;
    report("GET /v1/traders/{id}", &get, args.seconds);
    let post = measure(args, {
        let (client, base) = (client.clone(), base.to_string());
        let run = ulid::Ulid::new().to_string().to_lowercase();
        move |n| {
            let url = format!("{base}/v1/traders");
            let body = json!({"email": format!("load-{run}-{n}@example.com"), "firstName": "Load"});
            let client = client.clone();
            async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 201)
            }
        }
    })
    .await;
    report("POST /v1/traders", &post, args.seconds);
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    /// CPU time (user + system) of this whole process, server and clients, during the run,
    /// in microseconds: unlike throughput, barely moved by other processes on a busy machine.
    cpu_us: f64,
}

/// CPU time this process has used so far (user + system), in microseconds, from
/// `/proc/self/stat` (Linux; 0 elsewhere).
fn process_cpu_us() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end with `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the `)`, in clock ticks.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 1e6 / 100.0
}

async fn measure<F, Fut>(args: &Args, f: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<bool, reqwest::Error>> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu_us();
    let start = Instant::now();
    if std::env::var_os("LUMIRE_LOADGEN_PHASE_MARKS").is_some() {
        // For `perf record -k CLOCK_MONOTONIC`: where each phase starts on the profile's clock
        // (on Linux an `Instant` is CLOCK_MONOTONIC), to cut the samples by phase.
        eprintln!("phase-start {start:?}");
    }
    let deadline = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (f, counter, errors) = (f.clone(), counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match f(n).await {
                    Ok(true) => lat.push(t.elapsed().as_micros() as u64),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(mut l) = t.await {
            all.append(&mut l);
        }
    }
    all.sort_unstable();
    Outcome {
        latencies_us: all,
        errors: errors.load(Ordering::Relaxed),
        cpu_us: process_cpu_us() - cpu_before,
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn report(name: &str, o: &Outcome, seconds: u64) {
    let n = o.latencies_us.len();
    println!(
        "{name:24} requests={n:7} errors={:4} rps={:9.1} p50={:7.2}ms p99={:7.2}ms cpu/req={:6.0}us",
        o.errors,
        n as f64 / seconds as f64,
        pct(&o.latencies_us, 0.50),
        pct(&o.latencies_us, 0.99),
        o.cpu_us / n.max(1) as f64,
    );
}
