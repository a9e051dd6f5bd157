//! WebAssembly plugins, black-box: the registry (`GET /v1/plugins`), per-tenant enablement
//! through feature flags, the bundled leads-intake plugin (partner Leads API) and a hostile
//! plugin whose failures must stay contained.

use std::path::PathBuf;
use std::sync::OnceLock;

use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Builds the plugins once per test run (scripts/build-plugins) into a directory of this run
/// holding the bundled plugins and the test-only hostile one.
pub(crate) fn plugins_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("lumire-test-plugins-{}", std::process::id()));
        let status = std::process::Command::new(root.join("scripts/build-plugins"))
            .env("LUMIRE_PLUGINS_DIR", &dir)
            .env("LUMIRE_TEST_PLUGINS_DIR", &dir)
            .status()
            .expect("run scripts/build-plugins");
        assert!(status.success(), "scripts/build-plugins failed");
        dir
    })
    .clone()
}

pub(crate) fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("lumire-test-plugin-cache")
}

pub(crate) async fn spawn() -> TestApp {
    spawn_plugins_with(|s| {
        s.plugin_timeout_ms = 500;
        s.plugin_memory_mb = 32;
        s.plugin_max_response_bytes = 1024 * 1024;
    })
    .await
}

/// An engine loading the bundled and test plugins (with the shared compiled-plugin cache), then
/// `configure`d.
pub(crate) async fn spawn_plugins_with(
    configure: impl FnOnce(&mut lumire_engine::Settings),
) -> TestApp {
    let dir = plugins_dir();
    TestApp::spawn_with(move |s| {
        s.plugins_dir = dir;
        s.plugin_cache_dir = Some(cache_dir());
        configure(s);
    })
    .await
}

/// Owners of two new tenants that both enabled `plugin`.
pub(crate) async fn two_tenants_with(app: &TestApp, plugin: &str) -> (Member, Member) {
    let (a, b) = (app.register_owner().await, app.register_owner().await);
    enable(&a, plugin).await;
    enable(&b, plugin).await;
    (a, b)
}

pub(crate) async fn enable(owner: &Member, plugin: &str) {
    let (s, b) = owner
        .patch(
            "/v1/tenants/current",
            json!({"featureFlags": {format!("plugin.{plugin}"): true}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

pub(crate) fn lead_body(first: &str) -> Value {
    json!({
        "customer": {
            "first_name": first, "last_name": "Blah", "email": "ben@lumi.com.au",
            "phone": "0412312312", "date_of_birth": "1990-06-30",
            "address": {"street_number": 2, "street": "Sprint St", "street_type": "Street",
                        "suburb": "Bondi Junction", "postcode": 2022, "state": "NSW", "country": "Australia"},
            "credit_score": 500, "defaults": "1",
            "drivers_license_number": 12312312, "drivers_license_state": "NSW"
        },
        "company": {
            "name": "Bens Burgers", "defaults": 1, "months_in_business": 24,
            "accounting_software": "Xero", "business_description": "Restaurant",
            "industry": "Customer Service", "average_monthly_turnover": 50000, "abn": 115213748,
            "website": "www.examplewebsite.com.au", "number_of_employees": 27
        },
        "loan": {"notes": "Example note", "requested_amount": 15000, "installments": 52,
                 "reason_for_loan": ["inventory", "wages"]}
    })
}

pub(crate) fn plugin<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["data"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{name} not listed: {list}"))
}

#[tokio::test]
async fn plugins_are_listed_with_the_tenants_enablement() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let (s, _) = app.anonymous().get("/v1/plugins").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, list) = owner.get("/v1/plugins").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let leads = plugin(&list, "leads-intake");
    assert_eq!(leads["version"], "0.1.0");
    assert_eq!(leads["enabled"], false);
    assert_eq!(leads["featureFlag"], "plugin.leads-intake");
    assert!(
        leads["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("storage"))
    );
    let routes = leads["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["method"] == "GET" && r["path"] == "/v1/leads")
    );
    assert!(
        routes
            .iter()
            .any(|r| r["method"] == "POST" && r["roles"] == json!(["owner", "admin", "sales"]))
    );

    enable(&owner, "leads-intake").await;
    let (_, list) = owner.get("/v1/plugins").await;
    assert_eq!(plugin(&list, "leads-intake")["enabled"], true);
    assert_eq!(plugin(&list, "test-hostile")["enabled"], false);

    // Every team role may look at the list.
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get("/v1/plugins").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_that_has_not_enabled_the_plugin_gets_404() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner.get("/v1/leads").await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = owner.post("/v1/leads", lead_body("Ben")).await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");

    enable(&owner, "leads-intake").await;
    let (s, b) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"success": true, "result": {"leads": [], "count": 0}})
    );

    // Turning the flag off hides the routes again.
    let (s, _) = owner
        .patch(
            "/v1/tenants/current",
            json!({"featureFlags": {"plugin.leads-intake": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Unknown paths are still a plain 404.
    let (s, b) = owner.get("/v1/nothing-here").await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
}

/// Another engine process sharing the database changes the flags behind this one's back: the
/// cached flags apply until `plugin_flags_cache_ms` has passed, then the change does.
#[tokio::test]
async fn a_flag_changed_by_another_process_applies_within_the_cache_time() {
    let app = spawn_plugins_with(|s| s.plugin_flags_cache_ms = 200).await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;
    let (s, _) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK);

    sqlx::query("UPDATE tenants SET feature_flags = $2 WHERE id = $1")
        .bind(&owner.tenant_id)
        .bind(r#"{"plugin.leads-intake": false}"#)
        .execute(app.db.pool())
        .await
        .expect("flags changed");
    let started = std::time::Instant::now();
    loop {
        let (s, _) = owner.get("/v1/leads").await;
        if s == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the change never applied"
        );
        tokio::task::yield_now().await;
    }
    // Once seen, the change holds.
    let (s, _) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn leads_are_created_listed_and_filtered() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;

    let (s, created) = owner.post("/v1/leads", lead_body("Ben")).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created[0]["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("lead_"));

    let (s, b) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["success"], true);
    assert_eq!(b["result"]["count"], 1);
    let lead = &b["result"]["leads"][0];
    assert_eq!(lead["id"], id.as_str());
    assert_eq!(lead["status"], "WAITING_FOR_CALL");
    assert_eq!(lead["lead_application_status"], "IN_PROCESS");
    assert_eq!(lead["stakeholder"]["first_name"], "Ben");
    assert_eq!(lead["stakeholder"]["email"], "ben@lumi.com.au");
    assert_eq!(lead["stakeholder"]["birth_date"], "1990-06-30");
    assert_eq!(lead["stakeholder"]["drivers_license_state"], "NSW");
    assert_eq!(lead["company"]["name"], "Bens Burgers");
    assert_eq!(lead["company"]["abn"], "115213748");
    assert_eq!(lead["loan"]["requested_amount"], 15000);
    assert_eq!(lead["loan"]["installments"], 52);
    assert_eq!(
        lead["loan"]["reason_for_loan"],
        json!(["inventory", "wages"])
    );
    assert_eq!(lead["notes"], json!([]));
    assert!(lead["created_at"].as_str().unwrap().ends_with('Z'));

    // The mutation was audited by the engine and the plugin emitted its event.
    let audited = app
        .count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'plugin.post' AND resource_type = 'leads-intake'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(audited, 1);
    let events = app
        .count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'lead.created'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(events, 1);

    // Two more, then paging and filters.
    for name in ["Cat", "Dan"] {
        let (s, _) = owner.post("/v1/leads", lead_body(name)).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, b) = owner.get("/v1/leads?page_size=2&page_index=0").await;
    assert_eq!(b["result"]["count"], 3);
    let first: Vec<&str> = b["result"]["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["stakeholder"]["first_name"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["Dan", "Cat"], "newest first");
    let (_, b) = owner.get("/v1/leads?page_size=2&page_index=1").await;
    let second: Vec<&str> = b["result"]["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["stakeholder"]["first_name"].as_str().unwrap())
        .collect();
    assert_eq!(second, ["Ben"]);

    let (_, b) = owner.get(&format!("/v1/leads?id={id}")).await;
    assert_eq!(b["result"]["count"], 1);
    assert_eq!(b["result"]["leads"][0]["id"], id.as_str());
    let (_, b) = owner.get("/v1/leads?status=WAITING_FOR_CALL").await;
    assert_eq!(b["result"]["count"], 3);
    let (_, b) = owner.get("/v1/leads?status=FUNDED").await;
    assert_eq!(b["result"]["count"], 0);
    let (_, b) = owner.get("/v1/leads?application_status=IN_PROCESS").await;
    assert_eq!(b["result"]["count"], 3);
    let (_, b) = owner.get("/v1/leads?application_status=SUBMITTED").await;
    assert_eq!(b["result"]["count"], 0);
    let (_, b) = owner
        .get("/v1/leads?date_from=2000-01-01&date_to=2999-12-31")
        .await;
    assert_eq!(b["result"]["count"], 3);
    let (_, b) = owner.get("/v1/leads?date_to=2000-01-01").await;
    assert_eq!(b["result"]["count"], 0);

    let (s, b) = owner.get("/v1/leads?status=NOPE").await;
    assert_field_error(s, &b, "status");
    let (s, b) = owner.get("/v1/leads?page_size=0").await;
    assert_field_error(s, &b, "page_size");
    let (s, b) = owner.get("/v1/leads?date_from=yesterday").await;
    assert_field_error(s, &b, "date_from");
}

#[tokio::test]
async fn lead_validation_names_the_field_and_mandatories_can_be_skipped() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;

    let mut b = lead_body("Ben");
    b["customer"].as_object_mut().unwrap().remove("email");
    let (s, body) = owner.post("/v1/leads", b).await;
    assert_field_error(s, &body, "customer.email");

    let mut b = lead_body("Ben");
    b["customer"]["drivers_license_state"] = json!("XYZ");
    let (s, body) = owner.post("/v1/leads", b).await;
    assert_field_error(s, &body, "customer.drivers_license_state");

    let mut b = lead_body("Ben");
    b["loan"]["reason_for_loan"] = json!(["holiday"]);
    let (s, body) = owner.post("/v1/leads", b).await;
    assert_field_error(s, &body, "loan.reason_for_loan");

    let mut b = lead_body("Ben");
    b["loan"]["ammount"] = json!(5);
    let (s, body) = owner.post("/v1/leads", b).await;
    assert_field_error(s, &body, "loan.ammount");

    // Only first name and e-mail: refused unless mandatories are not enforced.
    let minimal = json!({"customer": {"first_name": "Min", "email": "min@example.com"}});
    let (s, body) = owner.post("/v1/leads", minimal.clone()).await;
    assert_field_error(s, &body, "company.abn");
    assert_field_error(s, &body, "loan.requested_amount");
    let (s, body) = owner
        .post("/v1/leads?enforce_mandatories=false", minimal.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let mut in_body = minimal;
    in_body["enforce_mandatories"] = json!(false);
    let (s, body) = owner.post("/v1/leads", in_body).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    let resp = owner
        .raw_request(reqwest::Method::POST, "/v1/leads")
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn idempotency_keys_and_api_key_scopes_apply_to_plugin_routes() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;

    // The engine's idempotency middleware runs before the guest: a replay creates nothing.
    let send = || {
        owner
            .raw_request(reqwest::Method::POST, "/v1/leads")
            .header("Idempotency-Key", "lead-once")
            .json(&lead_body("Once"))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send().await.expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let (_, list) = owner.get("/v1/leads").await;
    assert_eq!(list["result"]["count"], 1);

    // API keys need the plugin's scope.
    let (s, k) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "reader", "scopes": ["leads-intake:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let reader = owner.client.with_bearer(k["key"].as_str().expect("key"));
    let (s, b) = reader.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["count"], 1);
    let (s, b) = reader.post("/v1/leads", lead_body("Nope")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn two_tenants_see_only_their_own_leads() {
    let app = spawn().await;
    let (a, b) = two_tenants_with(&app, "leads-intake").await;

    let (_, ca) = a.post("/v1/leads", lead_body("Alice")).await;
    let a_id = ca[0]["id"].as_str().unwrap().to_string();
    let (_, cb) = b.post("/v1/leads", lead_body("Bob")).await;
    let b_id = cb[0]["id"].as_str().unwrap().to_string();

    let (_, la) = a.get("/v1/leads").await;
    assert_eq!(la["result"]["count"], 1);
    assert_eq!(la["result"]["leads"][0]["id"], a_id.as_str());
    let (_, lb) = b.get("/v1/leads").await;
    assert_eq!(lb["result"]["count"], 1);
    assert_eq!(lb["result"]["leads"][0]["id"], b_id.as_str());

    // Asking for the other tenant's lead by id finds nothing.
    let (s, x) = b.get(&format!("/v1/leads?id={a_id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(x["result"]["count"], 0);
    assert!(!x.to_string().contains("Alice"));
}

#[tokio::test]
async fn roles_come_from_the_manifest() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;

    let (s, b) = app.anonymous().get("/v1/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = app.anonymous().post("/v1/leads", lead_body("X")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let finance = app.member(&owner, &["finance"]).await;
    let (s, b) = finance.get("/v1/leads").await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = support.post("/v1/leads", lead_body("X")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    let sales = app.member(&owner, &["sales"]).await;
    let (s, _) = sales.post("/v1/leads", lead_body("X")).await;
    assert_eq!(s, StatusCode::CREATED);
}

fn names_the_plugin(body: &Value, export: &str) {
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("test-hostile") && detail.contains("0.1.0") && detail.contains(export),
        "detail should name plugin, version and export: {body}"
    );
}

#[tokio::test]
async fn a_hostile_plugin_is_contained_and_the_engine_keeps_serving() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "test-hostile").await;
    enable(&owner, "leads-intake").await;

    // An endless loop runs into the deadline while normal requests are served meanwhile.
    let looping = owner.get("/v1/hostile/loop");
    let normal = async {
        let (s1, _) = owner.get("/v1/hostile/ok").await;
        let (s2, _) = owner.post("/v1/leads", lead_body("Meanwhile")).await;
        let (s3, _) = owner.get("/v1/tenants/current").await;
        (s1, s2, s3)
    };
    let ((s, b), (s1, s2, s3)) = tokio::join!(looping, normal);
    assert_problem(s, &b, StatusCode::GATEWAY_TIMEOUT, "plugin_timeout");
    names_the_plugin(&b, "handle-http");
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::CREATED, StatusCode::OK)
    );

    let (s, b) = owner.get("/v1/hostile/trap").await;
    assert_problem(s, &b, StatusCode::BAD_GATEWAY, "plugin_trapped");
    names_the_plugin(&b, "handle-http");

    let (s, b) = owner.get("/v1/hostile/grow").await;
    assert_problem(s, &b, StatusCode::BAD_GATEWAY, "plugin_memory_exceeded");
    names_the_plugin(&b, "handle-http");

    let (s, b) = owner.get("/v1/hostile/big").await;
    assert_problem(s, &b, StatusCode::BAD_GATEWAY, "plugin_bad_response");
    names_the_plugin(&b, "handle-http");

    let (s, b) = owner.get("/v1/hostile/broken").await;
    assert_problem(s, &b, StatusCode::BAD_GATEWAY, "plugin_bad_response");

    // A capability it did not ask for is refused by the host.
    let (s, b) = owner.get("/v1/hostile/denied").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["denied"], true);
    assert_eq!(b["ledgerDenied"], true, "{b}");
    assert_eq!(b["httpDenied"], true, "{b}");
    assert_eq!(b["filesDenied"], true, "{b}");
    assert_eq!(b["commitWriteDenied"], true, "{b}");
    assert_eq!(b["commitPostDenied"], true, "{b}");
    assert_eq!(b["versionedGetDenied"], true, "{b}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin = 'test-hostile'", &owner.tenant_id).await,
        0
    );

    // And afterwards everything still works.
    let (s, _) = owner.get("/v1/hostile/ok").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = owner.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["result"]["count"], 1);
}

#[tokio::test]
async fn a_plugin_built_outside_the_repository_from_the_sdk_loads_and_runs() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "notes").await;
    let (s, note) = owner.post("/v1/notes", json!({"text": "hello"})).await;
    assert_eq!(s, StatusCode::CREATED, "{note}");
    assert_eq!(note["text"], "hello");
    let id = note["id"].as_str().unwrap();
    let (s, got) = owner.get(&format!("/v1/notes/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, note);
    let (s, b) = owner.get("/v1/notes/note_missing").await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Another tenant that enabled it does not see the note.
    let other = app.register_owner().await;
    enable(&other, "notes").await;
    let (s, _) = other.get(&format!("/v1/notes/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plugin_install_checks_the_component_and_refuses_clashes() {
    let built = plugins_dir();
    let dir = std::env::temp_dir().join(format!("lumire-install-{}", ulid::Ulid::new()));
    let settings = lumire_engine::Settings {
        plugins_dir: dir.join("plugins"),
        data_dir: dir.join("data"),
        plugin_cache_dir: Some(cache_dir()),
        ..Default::default()
    };

    let target = lumire_engine::plugins::install_cli(
        &settings,
        &built.join("leads-intake.wasm"),
        true,
        &mut Vec::new(),
    )
    .await
    .expect("installs");
    assert_eq!(target, settings.plugins_dir.join("leads-intake.wasm"));
    assert!(target.is_file());
    // Installing the same plugin again replaces it (an upgrade).
    lumire_engine::plugins::install_cli(
        &settings,
        &built.join("leads-intake.wasm"),
        true,
        &mut Vec::new(),
    )
    .await
    .expect("reinstalls");

    // Another file claiming the same name is refused.
    std::fs::copy(&target, settings.plugins_dir.join("copy.wasm")).unwrap();
    let err = lumire_engine::plugins::install_cli(
        &settings,
        &built.join("leads-intake.wasm"),
        true,
        &mut Vec::new(),
    )
    .await
    .expect_err("clash");
    assert!(err.to_string().contains("leads-intake"), "{err:#}");
    std::fs::remove_file(settings.plugins_dir.join("copy.wasm")).unwrap();

    // Something that is not a component never gets copied.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let err = lumire_engine::plugins::install_cli(&settings, &junk, true, &mut Vec::new())
        .await
        .expect_err("junk");
    assert!(format!("{err:#}").contains("compiling"), "{err:#}");
    assert!(!settings.plugins_dir.join("junk.wasm").exists());

    // Purging the data of a plugin that is still installed is refused; uninstalling removes
    // the component and its approval, once.
    let err = lumire_engine::plugins::uninstall::purge_cli(
        &settings,
        "leads-intake",
        true,
        &mut Vec::new(),
    )
    .await
    .expect_err("still installed");
    assert!(err.to_string().contains("uninstall"), "{err:#}");
    let removed = lumire_engine::plugins::uninstall::uninstall_cli(
        &settings,
        "leads-intake",
        true,
        &mut Vec::new(),
    )
    .await
    .expect("uninstalls");
    assert_eq!(removed, target);
    assert!(!target.exists());
    assert!(!target.with_extension("approval.json").exists());
    let err = lumire_engine::plugins::uninstall::uninstall_cli(
        &settings,
        "leads-intake",
        true,
        &mut Vec::new(),
    )
    .await
    .expect_err("gone");
    assert!(err.to_string().contains("no plugin named"), "{err:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn purging_a_plugin_deletes_its_data_and_keeps_its_ledger_entries() {
    let app = spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    for m in [&a, &b] {
        enable(m, "test-capabilities").await;
        enable(m, "leads-intake").await;
    }
    let (_, trader) = a
        .post("/v1/traders", json!({"email": "purge@example.com"}))
        .await;
    let tid = trader["id"].as_str().unwrap();
    let (s, _) = a
        .post(
            "/v1/captest/transfer",
            json!({"traderId": tid, "amount": "-10.00", "key": "purge-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut keys = Vec::new();
    for m in [&a, &b] {
        let resp = m
            .raw_request(reqwest::Method::POST, "/v1/captest/files")
            .header("content-type", "text/plain")
            .body("kept until purged")
            .send()
            .await
            .unwrap();
        let stored: serde_json::Value = resp.json().await.unwrap();
        keys.push(format!(
            "{}/plugins/test-capabilities/{}",
            m.tenant_id,
            stored["key"].as_str().unwrap()
        ));
        let (s, _) = m
            .post(
                "/v1/sales/leads",
                json!({"email": "other.plugin@example.com"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    for key in &keys {
        assert!(app.state.store.get(key).await.is_ok(), "{key}");
    }
    let entries = "SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND kind = 'plugin:test-capabilities:transfer'";
    assert_eq!(app.count(entries, &a.tenant_id).await, 1);

    let purged = lumire_engine::plugins::uninstall::purge(
        &app.db,
        app.state.store.as_ref(),
        "test-capabilities",
    )
    .await
    .expect("purges");
    assert_eq!(purged.documents, 1, "{purged:?}");
    assert!(purged.files >= 2, "{purged:?}");
    for key in &keys {
        assert!(app.state.store.get(key).await.is_err(), "{key} deleted");
    }
    let docs = |plugin: &str| {
        format!(
            "SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin = '{plugin}'"
        )
    };
    assert_eq!(app.count(&docs("test-capabilities"), &a.tenant_id).await, 0);
    // Another plugin's data and the money history stay.
    assert!(app.count(&docs("leads-intake"), &a.tenant_id).await > 0);
    assert!(app.count(&docs("leads-intake"), &b.tenant_id).await > 0);
    assert_eq!(app.count(entries, &a.tenant_id).await, 1);
    let (_, wallet) = a.get(&format!("/v1/captest/balance?trader={tid}")).await;
    assert_eq!(wallet["balance"], "10.00");
    // A name that could escape the plugin prefix is refused before anything is deleted.
    let err = lumire_engine::plugins::uninstall::purge(&app.db, app.state.store.as_ref(), "../x")
        .await
        .expect_err("bad name");
    assert!(err.to_string().contains("not a plugin name"), "{err:#}");
}

async fn deliveries(app: &TestApp, tenant: &str, plugin: &str, status: &str) -> i64 {
    app.count(
        &format!(
            "SELECT COUNT(*) FROM plugin_event_deliveries WHERE tenant_id = $1 AND plugin = '{plugin}' AND status = '{status}'"
        ),
        tenant,
    )
    .await
}

#[tokio::test]
async fn events_reach_only_subscribed_enabled_plugins_and_a_failing_one_fails_alone() {
    let app = spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    for p in ["leads-intake", "notes", "test-hostile"] {
        enable(&a, p).await;
    }
    enable(&b, "leads-intake").await;

    let (s, _) = a.post("/v1/leads", lead_body("Ann")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = b.post("/v1/leads", lead_body("Bea")).await;
    assert_eq!(s, StatusCode::CREATED);

    let attempted = lumire_engine::plugins::events::run_once(&app.state)
        .await
        .expect("deliver");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT plugin, status, COALESCE(last_error, '') FROM plugin_event_deliveries ORDER BY plugin",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(attempted, 2, "notes and test-hostile of tenant A: {rows:?}");

    // The notes plugin stored a note from the event, in tenant A only.
    let notes = "SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin = 'notes'";
    assert_eq!(app.count(notes, &a.tenant_id).await, 1);
    assert_eq!(app.count(notes, &b.tenant_id).await, 0);
    assert_eq!(
        deliveries(&app, &a.tenant_id, "notes", "succeeded").await,
        1
    );
    // Tenant B enabled neither subscriber: no deliveries at all.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM plugin_event_deliveries WHERE tenant_id = $1",
            &b.tenant_id
        )
        .await,
        0
    );

    // The looping plugin hit its deadline; its delivery waits for a retry, with the reason.
    assert_eq!(
        deliveries(&app, &a.tenant_id, "test-hostile", "pending").await,
        1
    );
    let err: String = sqlx::query_scalar(
        "SELECT last_error FROM plugin_event_deliveries WHERE tenant_id = $1 AND plugin = 'test-hostile'",
    )
    .bind(&a.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(
        err.contains("test-hostile") && err.contains("handle-event") && err.contains("deadline"),
        "{err}"
    );

    // Nothing is due now: a second round attempts nothing and delivers nothing twice.
    let again = lumire_engine::plugins::events::run_once(&app.state)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(app.count(notes, &a.tenant_id).await, 1);

    // A plugin disabled before its delivery is due is skipped.
    let (s, _) = a
        .patch(
            "/v1/tenants/current",
            json!({"featureFlags": {"plugin.test-hostile": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    sqlx::query("UPDATE plugin_event_deliveries SET next_attempt_at = '2000-01-01T00:00:00.000Z' WHERE tenant_id = $1 AND plugin = 'test-hostile'")
        .bind(&a.tenant_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    lumire_engine::plugins::events::run_once(&app.state)
        .await
        .unwrap();
    assert_eq!(
        deliveries(&app, &a.tenant_id, "test-hostile", "skipped").await,
        1
    );
}
