use lumire_engine::scripting::run_workflows_once;
use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn tag(m: &Member, name: &str) -> String {
    let (s, t) = m.post("/v1/tags", json!({"name": name})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn trader(m: &Member, email: &str, country: &str) -> String {
    let (s, t) = m
        .post(
            "/v1/traders",
            json!({"email": email, "country": country, "firstName": "Ada"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn workflow(m: &Member, body: Value) -> String {
    let (s, w) = m.post("/v1/workflows", body).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    w["id"].as_str().unwrap().to_string()
}

async fn tag_names(m: &Member, trader_id: &str) -> Vec<String> {
    let (s, b) = m.get(&format!("/v1/customers/{trader_id}/tags")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn drain(app: &TestApp) {
    for _ in 0..20 {
        if run_workflows_once(&app.state)
            .await
            .expect("workflow round")
            == 0
        {
            return;
        }
    }
}

async fn runs(m: &Member, wf: &str) -> Vec<Value> {
    let (s, b) = m.get(&format!("/v1/workflows/{wf}/runs")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn trader_created_through_the_api_fires_a_workflow_end_to_end() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let vip = tag(&owner, "German lead").await;
    let wf = workflow(
        &owner,
        json!({
            "name": "Welcome DE", "triggerType": "trader.created", "isActive": true,
            "condition": {"trader.country": "DE"},
            "actions": [
                {"type": "add_tag", "tagId": vip},
                {"type": "set_trader_field", "field": "metadata.welcomed", "value": true},
                {"type": "add_segment", "segment": "dach"},
                {"type": "send_email", "subject": "Willkommen {{firstName}}", "body": "Hallo {{firstName}}", "template": "welcome_de"},
                {"type": "emit_event", "name": "custom.welcomed", "payload": {"channel": "mail"}}
            ]
        }),
    )
    .await;
    let de = trader(&owner, "de@x.example", "DE").await;
    let fr = trader(&owner, "fr@x.example", "FR").await;
    // Two engine processes' workers racing over the same events still run each workflow once.
    let (a, b) = tokio::join!(
        run_workflows_once(&app.state),
        run_workflows_once(&app.state)
    );
    a.expect("worker a");
    b.expect("worker b");
    drain(&app).await;

    assert_eq!(tag_names(&owner, &de).await, ["German lead"]);
    assert!(tag_names(&owner, &fr).await.is_empty());
    let (_, t) = owner.get(&format!("/v1/traders/{de}")).await;
    assert_eq!(t["metadata"]["welcomed"], true, "{t}");
    assert!(
        t["segments"].as_array().unwrap().contains(&json!("dach")),
        "{t}"
    );
    let (subject, body) = app.last_mail("de@x.example").await.expect("welcome mail");
    assert_eq!(
        (subject.as_str(), body.as_str()),
        ("Willkommen Ada", "Hallo Ada")
    );
    assert!(app.last_mail("fr@x.example").await.is_none());

    let list = runs(&owner, &wf).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let ok = list
        .iter()
        .find(|r| r["status"] == "succeeded")
        .expect("a succeeded run");
    assert_eq!(ok["workflowVersion"], 1);
    assert_eq!(ok["input"]["trader"]["id"], de.as_str());
    assert_eq!(ok["decision"], true);
    assert_eq!(ok["actions"].as_array().unwrap().len(), 5);
    assert!(
        list.iter()
            .any(|r| r["status"] == "skipped" && r["decision"] == false)
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'custom.welcomed' AND chain_depth = 1",
            &owner.tenant_id
        )
        .await,
        1
    );
    // The audit trail names the workflow, its version and the run.
    let (label, after): (String, String) = sqlx::query_as(
        "SELECT actor_label, after_json FROM audit_log WHERE tenant_id = $1 AND actor_type = 'workflow' AND action = 'trader.tag_applied'",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(label.contains(&wf) && label.contains("v1"), "{label}");
    assert!(after.contains(ok["id"].as_str().unwrap()), "{after}");

    // Each event triggers each workflow once: another round does nothing.
    assert_eq!(run_workflows_once(&app.state).await.unwrap(), 0);
    assert_eq!(runs(&owner, &wf).await.len(), 2);
}

#[tokio::test]
async fn hostile_scripts_fail_their_run_and_others_keep_going() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let mut hostile = Vec::new();
    for (name, script) in [
        ("loop", "loop { }"),
        ("recursion", "fn f(n) { f(n + 1) } f(0)"),
        ("string", r#"let s = "x"; loop { s += s; }"#),
        ("array", "let a = [1]; loop { a += a; }"),
        ("missing fn", "no_such_function(event)"),
        ("not bool", r#""yes""#),
    ] {
        hostile.push((
            name,
            workflow(
                &owner,
                json!({"name": name, "triggerType": "trader.created", "isActive": true, "condition": script, "actions": []}),
            )
            .await,
        ));
    }
    let t = tag(&other, "ok").await;
    let good = workflow(
        &other,
        json!({"name": "good", "triggerType": "trader.created", "isActive": true, "condition": "trader.country == \"FR\"", "actions": [{"type": "add_tag", "tagId": t}]}),
    )
    .await;
    trader(&owner, "a@x.example", "DE").await;
    let fr = trader(&other, "b@x.example", "FR").await;
    drain(&app).await;
    for (name, wf) in hostile {
        let list = runs(&owner, &wf).await;
        assert_eq!(list.len(), 1, "{name}");
        assert_eq!(list[0]["status"], "failed", "{name}: {:?}", list[0]);
        let err = list[0]["error"].as_str().unwrap();
        let want = match name {
            "loop" => "limit",
            "missing fn" | "not bool" => "runtime",
            _ => "limit",
        };
        assert!(
            err.contains(want) || (name == "loop" && err.contains("timeout")),
            "{name}: {err}"
        );
    }
    assert_eq!(runs(&other, &good).await[0]["status"], "succeeded");
    assert_eq!(tag_names(&other, &fr).await, ["ok"]);
}

#[tokio::test]
async fn scripts_can_return_actions_and_chains_stop() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = tag(&owner, "scripted").await;
    let script = format!(
        "if trader.country == \"FR\" {{ [#{{type: \"add_tag\", tagId: \"{t}\"}}] }} else {{ false }}"
    );
    let wf = workflow(
        &owner,
        json!({"name": "scripted", "triggerType": "trader.created", "isActive": true, "condition": script}),
    )
    .await;
    // A workflow that re-triggers itself stops after a few hops.
    let ping = workflow(
        &owner,
        json!({"name": "ping", "triggerType": "custom.ping", "isActive": true, "actions": [{"type": "emit_event", "name": "custom.ping"}]}),
    )
    .await;
    workflow(
        &owner,
        json!({"name": "start", "triggerType": "trader.created", "isActive": true, "actions": [{"type": "emit_event", "name": "custom.ping"}]}),
    )
    .await;
    // Inactive workflows never run.
    let off = workflow(
        &owner,
        json!({"name": "off", "triggerType": "trader.created", "actions": [{"type": "add_tag", "tagId": t}]}),
    )
    .await;
    let fr = trader(&owner, "fr@x.example", "FR").await;
    drain(&app).await;
    assert_eq!(tag_names(&owner, &fr).await, ["scripted"]);
    let r = &runs(&owner, &wf).await[0];
    assert_eq!(r["decision"][0]["type"], "add_tag", "{r}");
    assert!(runs(&owner, &off).await.is_empty());
    let pings = runs(&owner, &ping).await;
    assert_eq!(
        pings.len(),
        lumire_engine::workflows::MAX_CHAIN_DEPTH as usize,
        "{pings:?}"
    );
    assert_eq!(pings[0]["status"], "failed");
    assert!(pings[0]["error"].as_str().unwrap().contains("chained"));
}

#[tokio::test]
async fn dry_run_says_what_it_would_do_without_doing_it() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = tag(&owner, "x").await;
    let de = trader(&owner, "de@x.example", "DE").await;
    drain(&app).await;
    let wf = workflow(
        &owner,
        json!({"name": "w", "triggerType": "deposit.settled", "isActive": true,
               "condition": {"payload.amount": {"gte": 1000}, "trader.country": "DE"},
               "actions": [{"type": "add_tag", "tagId": t}]}),
    )
    .await;
    let (s, out) = owner
        .post(
            &format!("/v1/workflows/{wf}/dry-run"),
            json!({"event": {"payload": {"traderId": de, "amount": 2500}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["wouldRun"], true, "{out}");
    assert_eq!(out["actions"][0]["type"], "add_tag");
    assert_eq!(out["input"]["trader"]["id"], de.as_str());
    let (_, out) = owner
        .post(
            &format!("/v1/workflows/{wf}/dry-run"),
            json!({"event": {"payload": {"traderId": de, "amount": 10}}}),
        )
        .await;
    assert_eq!(out["wouldRun"], false);
    assert!(tag_names(&owner, &de).await.is_empty());
    assert!(runs(&owner, &wf).await.is_empty());
    let (s, b) = owner
        .post(&format!("/v1/workflows/{wf}/dry-run"), json!({"evnt": {}}))
        .await;
    assert_field_error(s, &b, "evnt");
}

#[tokio::test]
async fn validation_auth_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;
    let other_tag = tag(&other, "theirs").await;
    for (field, body) in [
        ("name", json!({"triggerType": "trader.created"})),
        ("triggerType", json!({"name": "x"})),
        (
            "triggerType",
            json!({"name": "x", "triggerType": "Trader Created"}),
        ),
        (
            "condition.country",
            json!({"name": "x", "triggerType": "a.b", "condition": {"country": "DE"}}),
        ),
        (
            "actions[0].priority",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "create_ticket", "subject": "s", "body": "b", "priority": "asap"}]}),
        ),
        (
            "actions[0].type",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "explode"}]}),
        ),
        (
            "actions[0]",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "add_tag"}]}),
        ),
        (
            "actions[0].name",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "emit_event", "name": "trader.created"}]}),
        ),
        (
            "actions[0].field",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "set_trader_field", "field": "email", "value": "x"}]}),
        ),
        // Ids must be this tenant's.
        (
            "actions[0].tagId",
            json!({"name": "x", "triggerType": "a.b", "actions": [{"type": "add_tag", "tagId": other_tag}]}),
        ),
        ("trigger", json!({"name": "x", "trigger": "a.b"})),
    ] {
        let (s, b) = owner.post("/v1/workflows", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = owner
        .post(
            "/v1/workflows",
            json!({"name": "x", "triggerType": "a.b", "condition": "let a = 1;\nevent.name == "}),
        )
        .await;
    assert_field_error(s, &b, "condition");
    assert_eq!(b["errors"][0]["line"], 2, "{b}");
    assert!(b["errors"][0]["column"].is_u64(), "{b}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM workflows WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let wf = workflow(&owner, json!({"name": "W", "triggerType": "a.b"})).await;
    let (s, b) = owner
        .post("/v1/workflows", json!({"name": "w", "triggerType": "a.c"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "workflow_name_taken");

    let anon = app.anonymous();
    assert_eq!(anon.get("/v1/workflows").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon.post("/v1/workflows", json!({"name": "y", "triggerType": "a.b"}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.get(&format!("/v1/workflows/{wf}/runs")).await.0,
        StatusCode::UNAUTHORIZED
    );
    for (s, _) in [
        sales.get("/v1/workflows").await,
        sales
            .post("/v1/workflows", json!({"name": "y", "triggerType": "a.b"}))
            .await,
        sales.delete(&format!("/v1/workflows/{wf}")).await,
        sales.get(&format!("/v1/workflows/{wf}/runs")).await,
        sales
            .post(&format!("/v1/workflows/{wf}/dry-run"), json!({}))
            .await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    for (s, _) in [
        other.delete(&format!("/v1/workflows/{wf}")).await,
        other.get(&format!("/v1/workflows/{wf}/runs")).await,
        other
            .post(&format!("/v1/workflows/{wf}/dry-run"), json!({}))
            .await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (_, list) = other.get("/v1/workflows").await;
    assert_eq!(list["data"], json!([]));
    let (_, list) = owner.get("/v1/workflows?triggerType=a.b").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, _) = owner.delete(&format!("/v1/workflows/{wf}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.delete(&format!("/v1/workflows/{wf}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
