//! `--scenario plugins`: what running a feature as a WebAssembly plugin costs.
//!
//! - the same storage work through a plugin route and a native route, each with the same
//!   concurrency and credential (a session cookie):
//!   - read: `GET /v1/sales/leads/{id}` of leads-intake against `GET /v1/traders/{id}`. Both
//!     authenticate the session (two queries), then read one record by primary key and answer
//!     it as JSON;
//!   - list: `GET /v1/sales/leads?limit=20` against `GET /v1/traders?limit=20`. Both
//!     authenticate the session, then read the first page of 20 records, newest first, in one
//!     query and answer it with the next page's cursor;
//!   - write: `POST /v1/sales/leads` against `POST /v1/traders`, the same small body. Both
//!     write one record, its event and its audit entry; the native route also reads twice in
//!     its transaction (the e-mail uniqueness check, the stored row), the plugin reads the
//!     default pipeline once;
//! - the partner Leads API of the same plugin (`GET /v1/leads?id=`, `POST /v1/leads`, which
//!   writes two documents: the partner's lead and the sales team's), for reference;
//! - the time to instantiate a plugin and call a trivial export (`test-hostile`'s `ok` route,
//!   called in-process, sequentially);
//! - the cost of one host call (`hostcalls?n=` with and without 10,000 calls).
//!
//! The plugins come from `plugins/dist` and `plugins/dist-test` (`./scripts/build-plugins`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lumire_engine::plugins::bindings::types;
use serde_json::json;

use super::{Args, measure, report};

/// A directory holding the bundled and the test plugins the scenario needs.
pub fn plugins_dir(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = run_dir.join("plugins");
    std::fs::create_dir_all(&dir)?;
    for (from, name) in [
        ("plugins/dist", "leads-intake.wasm"),
        ("plugins/dist-test", "test-hostile.wasm"),
    ] {
        std::fs::copy(root.join(from).join(name), dir.join(name)).with_context(|| {
            format!("{from}/{name} is missing: run ./scripts/build-plugins first")
        })?;
    }
    Ok(dir)
}

fn lead(n: u64) -> serde_json::Value {
    json!({
        "customer": {"first_name": format!("Load{n}"), "email": format!("lead{n}@example.com"), "phone": "0412312312"},
        "company": {"name": "Bench Pty", "abn": 115213748},
        "loan": {"requested_amount": 15000, "installments": 52}
    })
}

pub async fn run(
    args: &Args,
    state: &lumire_engine::app::AppState,
    client: &reqwest::Client,
    base: &str,
    tenant_id: &str,
    trader_ids: &Arc<Vec<String>>,
) -> anyhow::Result<()> {
    let r = client
        .patch(format!("{base}/v1/tenants/current"))
        .json(&json!({"featureFlags": {"plugin.leads-intake": true, "plugin.test-hostile": true}}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "enabling the plugins failed");
    // A sales lead and a partner lead per seeded trader to read back.
    let (mut sales_ids, mut lead_ids) = (Vec::new(), Vec::new());
    for n in 0..trader_ids.len().min(1000) as u64 {
        let r = client
            .post(format!("{base}/v1/sales/leads"))
            .json(&json!({"email": format!("seed{n}@example.com"), "firstName": "Seed"}))
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        sales_ids.push(v["id"].as_str().context("sales lead id")?.to_string());
        let r = client
            .post(format!("{base}/v1/leads"))
            .json(&lead(n))
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        lead_ids.push(v[0]["id"].as_str().context("lead id")?.to_string());
    }
    let (sales_ids, lead_ids) = (Arc::new(sales_ids), Arc::new(lead_ids));
    super::refresh_statistics(&state.db).await?;
    let read = |ids: &Arc<Vec<String>>, path: &'static str| {
        let (base, ids) = (base.to_string(), ids.clone());
        expect(client, 200, move |n| {
            let url = format!("{base}{path}{}", ids[n as usize % ids.len()]);
            (url, None)
        })
    };
    // Both writes take the same body: a new e-mail and a first name.
    let write = |path: &'static str| {
        let base = base.to_string();
        let run = ulid_like();
        expect(client, 201, move |n| {
            let body =
                json!({"email": format!("bench-{run}-{n}@example.com"), "firstName": "Load"});
            (format!("{base}{path}"), Some(body))
        })
    };

    let ratio = |p: &super::Outcome, n: &super::Outcome| {
        p.latencies_us.len() as f64 / n.latencies_us.len().max(1) as f64 * 100.0
    };
    let cpu = |o: &super::Outcome| o.cpu_us / o.latencies_us.len().max(1) as f64;
    let cost =
        |p: &super::Outcome, n: &super::Outcome| cpu(n) / cpu(p).max(f64::MIN_POSITIVE) * 100.0;
    // Reads, lists and writes run in `--rounds` interleaved rounds: the machine's drift (another
    // process, the page cache, frequency, the tables growing) lands on both sides, and the
    // median round is reported.
    let trivial = expect(client, 200, {
        let base = base.to_string();
        move |_| (format!("{base}/v1/hostile/ok"), None)
    });
    let page = |path: &'static str| {
        let base = base.to_string();
        expect(client, 200, move |_| {
            (format!("{base}{path}?limit=20"), None)
        })
    };
    let (mut read_ratios, mut read_costs) = (Vec::new(), Vec::new());
    let (mut list_ratios, mut list_costs) = (Vec::new(), Vec::new());
    let (mut write_ratios, mut write_costs) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        let native_read = measure(args, read(trader_ids, "/v1/traders/")).await;
        report("native read (trader)", &native_read, args.seconds);
        let plugin_read = measure(args, read(&sales_ids, "/v1/sales/leads/")).await;
        report("plugin read (lead)", &plugin_read, args.seconds);
        // The plugin machinery alone: a route of the test plugin that answers without storage.
        let plugin_trivial = measure(args, trivial.clone()).await;
        report("plugin route, no storage", &plugin_trivial, args.seconds);
        read_ratios.push(ratio(&plugin_read, &native_read));
        read_costs.push(cost(&plugin_read, &native_read));
        let native_list = measure(args, page("/v1/traders")).await;
        report("native list (20 traders)", &native_list, args.seconds);
        let plugin_list = measure(args, page("/v1/sales/leads")).await;
        report("plugin list (20 leads)", &plugin_list, args.seconds);
        list_ratios.push(ratio(&plugin_list, &native_list));
        list_costs.push(cost(&plugin_list, &native_list));
        let native_write = measure(args, write("/v1/traders")).await;
        report("native write (trader)", &native_write, args.seconds);
        let plugin_write = measure(args, write("/v1/sales/leads")).await;
        report("plugin write (lead)", &plugin_write, args.seconds);
        write_ratios.push(ratio(&plugin_write, &native_write));
        write_costs.push(cost(&plugin_write, &native_write));
    }
    println!(
        "plugin/native throughput: read {:.1}% (median of {} rounds: {}), list {:.1}% (rounds: {}), write {:.1}% (rounds: {}); plugin/native by CPU per request (native cpu/req / plugin cpu/req): read {:.1}%, list {:.1}%, write {:.1}%",
        median(&mut read_ratios.clone()),
        args.rounds,
        percents(&read_ratios),
        median(&mut list_ratios.clone()),
        percents(&list_ratios),
        median(&mut write_ratios.clone()),
        percents(&write_ratios),
        median(&mut read_costs.clone()),
        median(&mut list_costs.clone()),
        median(&mut write_costs.clone()),
    );
    // The spread a single median hides: a change of a point or two is only real when it moves
    // this range, not the median alone.
    println!(
        "middle half of the rounds (quartiles): read {} (by CPU {}), list {} (by CPU {}), write {} (by CPU {})",
        quartiles(&read_ratios),
        quartiles(&read_costs),
        quartiles(&list_ratios),
        quartiles(&list_costs),
        quartiles(&write_ratios),
        quartiles(&write_costs),
    );
    let partner_read = measure(args, read(&lead_ids, "/v1/leads?id=")).await;
    report("partner API read", &partner_read, args.seconds);
    let partner_write = measure(
        args,
        expect(client, 201, {
            let base = base.to_string();
            move |n| (format!("{base}/v1/leads"), Some(lead(n + 1_000_000)))
        }),
    )
    .await;
    report("partner API write", &partner_write, args.seconds);

    // Instantiation and a trivial call, in-process and sequential.
    let hostile = state
        .plugins
        .named("test-hostile")
        .context("test-hostile installed")?
        .clone();
    let request = |route: &str, query: Vec<(String, String)>| types::HttpRequest {
        tenant_id: tenant_id.to_string(),
        actor: types::Actor {
            kind: "user".into(),
            id: "bench".into(),
            roles: vec!["owner".into()],
        },
        request_id: "bench".into(),
        method: "GET".into(),
        path: route.to_string(),
        route: route.to_string(),
        path_params: Vec::new(),
        query,
        headers: Vec::new(),
        body: Vec::new(),
    };
    let calls = 2000;
    let started = Instant::now();
    for _ in 0..calls {
        let _served = state
            .plugins
            .handle_http(&hostile, tenant_id, request("/v1/hostile/ok", Vec::new()))
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
    }
    let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!("instantiate + trivial call: {per_call:.1} us per call ({calls} sequential calls)");

    // The same read as the HTTP phases without HTTP, authentication or concurrency: the sales
    // lead through the plugin (instance, guest, host call, SQL) against the trader's row.
    let leads = state
        .plugins
        .named("leads-intake")
        .context("leads-intake installed")?
        .clone();
    let plugin_read = |n: usize| {
        let id = &sales_ids[n % sales_ids.len()];
        let mut req = request("/v1/sales/leads/{id}", Vec::new());
        req.path = format!("/v1/sales/leads/{id}");
        req.path_params = vec![("id".into(), id.clone())];
        let (plugins, leads) = (state.plugins.clone(), leads.clone());
        async move {
            let served = plugins
                .handle_http(&leads, tenant_id, req)
                .await
                .map_err(|f| anyhow::anyhow!("{f}"))?;
            anyhow::ensure!(served.response.status == 200, "lead read failed");
            Ok(())
        }
    };
    let native_read = |n: usize| {
        let id = trader_ids[n % trader_ids.len()].clone();
        let db = state.db.clone();
        async move {
            let row = lumire_engine::traders::model::load(db.pool(), tenant_id, &id).await?;
            let view = lumire_engine::traders::model::TraderView::from(row);
            std::hint::black_box(serde_json::to_vec(&view)?);
            anyhow::Ok(())
        }
    };
    // Two passes, the first untimed: the write phases left every pooled connection's page
    // cache cold, and whichever loop ran first would pay for warming it.
    let (mut plugin_us, mut native_us) = (0.0, 0.0);
    for _pass in 0..2 {
        plugin_us = mean_us(calls, &plugin_read).await?;
        native_us = mean_us(calls, &native_read).await?;
    }
    println!(
        "one read without HTTP ({calls} sequential, after a warm-up pass): plugin {plugin_us:.1} us, native {native_us:.1} us"
    );

    let host_calls = 10_000u32;
    let timed = |n: u32| {
        let req = request("/v1/hostile/hostcalls", vec![("n".into(), n.to_string())]);
        let plugins = state.plugins.clone();
        let hostile = hostile.clone();
        let tenant = tenant_id.to_string();
        async move {
            let t = Instant::now();
            let _served = plugins
                .handle_http(&hostile, &tenant, req)
                .await
                .map_err(|f| anyhow::anyhow!("{f}"))?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64())
        }
    };
    let mut with = f64::MAX;
    let mut without = f64::MAX;
    for _ in 0..5 {
        with = with.min(timed(host_calls).await?);
        without = without.min(timed(0).await?);
    }
    println!(
        "one host call (storage.new-id): {:.2} us (best of 5: {host_calls} calls in {:.1} ms, none in {:.1} ms)",
        (with - without) * 1e6 / host_calls as f64,
        with * 1e3,
        without * 1e3
    );
    Ok(())
}

type Pending =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, reqwest::Error>> + Send>>;

/// One request per call: `request(n)` gives the URL and, for a POST, the JSON body; the call
/// succeeds when the answer has status `want`.
fn expect(
    client: &reqwest::Client,
    want: u16,
    request: impl Fn(u64) -> (String, Option<serde_json::Value>) + Clone + Send + Sync + 'static,
) -> impl Fn(u64) -> Pending + Clone + Send + Sync + 'static {
    let client = client.clone();
    move |n| {
        let (url, body) = request(n);
        let req = match body {
            Some(b) => client.post(url).json(&b),
            None => client.get(url),
        };
        Box::pin(async move { req.send().await.map(|r| r.status().as_u16() == want) })
    }
}

/// The mean time of `calls` sequential calls of `f`, in microseconds.
async fn mean_us<F, Fut>(calls: usize, f: &F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    for n in 0..calls {
        f(n).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / calls as f64)
}

fn percents(values: &[f64]) -> String {
    values
        .iter()
        .map(|r| format!("{r:.1}%"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first and third quartiles of `values` (nearest rank), as `q1-q3%`.
fn quartiles(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: usize| {
        sorted
            .get(sorted.len() * q / 4)
            .copied()
            .unwrap_or_default()
    };
    format!("{:.1}-{:.1}%", at(1), at(3))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ulid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
