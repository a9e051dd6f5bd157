use lumire_engine::scripting::run_workflows_once;
use lumire_engine::webhooks::signing;
use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn trader(m: &Member, email: &str) -> String {
    let (s, t) = m
        .post(
            "/v1/traders",
            json!({"email": email, "firstName": "Ada", "lastName": "Lovelace", "country": "GB"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn ticket(m: &Member, body: Value) -> Value {
    let (s, t) = m.post("/v1/support/tickets", body).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

async fn events(app: &TestApp, tenant: &str, name: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = $2")
        .bind(tenant)
        .bind(name)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn drain(app: &TestApp) {
    for _ in 0..20 {
        if run_workflows_once(&app.state).await.expect("worker round") == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn a_ticket_is_opened_worked_replied_to_and_closed() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let agent = app.member(&owner, &["support"]).await;
    let t = trader(&owner, "ada@x.example").await;

    let created = ticket(
        &agent,
        json!({"subject": "  Withdrawal missing ", "body": "Sent on Monday, not arrived.", "priority": "high", "traderId": t}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["subject"], "Withdrawal missing");
    assert_eq!(created["status"], "open");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["traderId"], t.as_str());
    assert_eq!(created["source"], "team");
    assert_eq!(created["assignedToId"], Value::Null);
    assert_eq!(created["createdBy"]["type"], "user");
    assert_eq!(created["createdBy"]["id"], agent.user_id.as_str());
    assert_eq!(created["replyCount"], 0);
    // Priority defaults to normal.
    let plain = ticket(
        &owner,
        json!({"subject": "Question", "body": "How do I deposit?", "traderId": t}),
    )
    .await;
    assert_eq!(plain["priority"], "normal");

    // The thread: replies with their authors, oldest first.
    let (s, r) = agent
        .post(
            &format!("/v1/support/tickets/{id}/reply"),
            json!({"body": "We are looking into it."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["ticketId"], id.as_str());
    assert_eq!(r["author"]["type"], "user");
    assert_eq!(r["author"]["id"], agent.user_id.as_str());
    assert_eq!(r["author"]["label"], agent.email.as_str());
    let (s, _) = owner
        .post(
            &format!("/v1/support/tickets/{id}/reply"),
            json!({"body": "Escalated to finance."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, got) = owner.get(&format!("/v1/support/tickets/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["replyCount"], 2);
    assert!(got["lastReplyAt"].is_string());
    let replies = got["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["body"], "We are looking into it.");
    assert_eq!(replies[1]["author"]["id"], owner.user_id.as_str());

    // Assign, wait on the client, resolve.
    let (s, u) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"assignedToId": agent.user_id, "status": "pending", "priority": "urgent"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        (&u["status"], &u["priority"], &u["assignedToId"]),
        (&json!("pending"), &json!("urgent"), &json!(agent.user_id))
    );
    let (_, u) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(u["status"], "resolved");
    assert!(u["resolvedAt"].is_string(), "{u}");
    // resolved → pending is not a move the lifecycle has.
    let (s, b) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"status": "pending"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_transition");
    // Reopen clears resolvedAt; a request that changes nothing records nothing.
    let (_, u) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"status": "open"}),
        )
        .await;
    assert_eq!(u["status"], "open");
    assert_eq!(u["resolvedAt"], Value::Null);
    let updates = events(&app, &owner.tenant_id, "ticket.updated").await;
    let (s, same) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"status": "open"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(same["updatedAt"], u["updatedAt"]);
    assert_eq!(
        events(&app, &owner.tenant_id, "ticket.updated").await,
        updates
    );
    // Unassign with null, then close: closed is final.
    let (_, u) = agent
        .patch(
            &format!("/v1/support/tickets/{id}"),
            json!({"assignedToId": null, "status": "closed"}),
        )
        .await;
    assert_eq!(u["assignedToId"], Value::Null);
    assert_eq!(u["status"], "closed");
    assert!(u["closedAt"].is_string());
    for body in [
        json!({"status": "open"}),
        json!({"priority": "low"}),
        json!({"assignedToId": agent.user_id}),
    ] {
        let (s, b) = agent
            .patch(&format!("/v1/support/tickets/{id}"), body)
            .await;
        assert_problem(s, &b, StatusCode::CONFLICT, "ticket_closed");
    }
    let (s, b) = agent
        .post(
            &format!("/v1/support/tickets/{id}/reply"),
            json!({"body": "One more thing"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "ticket_closed");

    // Every change is an event and an audit entry, in its transaction.
    for (name, n) in [
        ("ticket.created", 2),
        ("ticket.replied", 2),
        ("ticket.updated", 4),
    ] {
        assert_eq!(events(&app, &owner.tenant_id, name).await, n, "{name}");
    }
    let (payload,): (String,) = sqlx::query_as(
        "SELECT payload FROM events WHERE tenant_id = $1 AND name = 'ticket.replied' ORDER BY id LIMIT 1",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["traderId"], t.as_str(), "{payload}");
    let (s, audit) = owner
        .get(&format!("/v1/audit?resourceType=ticket&resourceId={id}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "ticket.update").count(), 4);
    assert_eq!(actions.iter().filter(|a| **a == "ticket.reply").count(), 2);
    assert!(actions.contains(&"ticket.create"), "{actions:?}");
}

#[tokio::test]
async fn lists_filter_and_page() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let agent = app.member(&owner, &["support"]).await;
    let a = trader(&owner, "a@x.example").await;
    let b = trader(&owner, "b@x.example").await;
    let t1 = ticket(
        &owner,
        json!({"subject": "1", "body": "x", "priority": "low", "traderId": a}),
    )
    .await;
    let t2 = ticket(
        &owner,
        json!({"subject": "2", "body": "x", "priority": "urgent", "traderId": a}),
    )
    .await;
    let t3 = ticket(
        &owner,
        json!({"subject": "3", "body": "x", "priority": "urgent", "traderId": b}),
    )
    .await;
    let (id1, id2, id3) = (
        t1["id"].as_str().unwrap(),
        t2["id"].as_str().unwrap(),
        t3["id"].as_str().unwrap(),
    );
    let (s, _) = owner
        .patch(
            &format!("/v1/support/tickets/{id2}"),
            json!({"status": "pending", "assignedToId": agent.user_id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, all) = owner.get("/v1/support/tickets").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), [id3, id2, id1], "newest first");
    assert_eq!(all["next_cursor"], Value::Null);
    for (query, want) in [
        ("status=open", vec![id3, id1]),
        ("status=pending", vec![id2]),
        ("priority=urgent", vec![id3, id2]),
        (&format!("traderId={a}") as &str, vec![id2, id1]),
        (&format!("assignedToId={}", agent.user_id), vec![id2]),
        ("status=open&priority=urgent", vec![id3]),
        ("status=closed", vec![]),
    ] {
        let (s, list) = owner.get(&format!("/v1/support/tickets?{query}")).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(ids(&list), want, "{query}");
    }
    let (_, p1) = owner.get("/v1/support/tickets?limit=2").await;
    assert_eq!(ids(&p1), [id3, id2]);
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let (_, p2) = owner
        .get(&format!("/v1/support/tickets?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ids(&p2), [id1]);
    assert_eq!(p2["next_cursor"], Value::Null);
    for (query, field) in [
        ("status=done", "status"),
        ("priority=asap", "priority"),
        ("limit=0", "limit"),
        ("cursor=!!", "cursor"),
    ] {
        let (s, b) = owner.get(&format!("/v1/support/tickets?{query}")).await;
        assert_field_error(s, &b, field);
    }
}

#[tokio::test]
async fn validation_roles_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let compliance = app.member(&owner, &["compliance"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let t = trader(&owner, "ada@x.example").await;
    let theirs = trader(&other, "bob@x.example").await;
    let their_user = app.member(&other, &["support"]).await;

    for (field, body) in [
        ("subject", json!({"body": "x", "traderId": t})),
        (
            "subject",
            json!({"subject": "x".repeat(201), "body": "x", "traderId": t}),
        ),
        ("body", json!({"subject": "x", "body": "  ", "traderId": t})),
        (
            "priority",
            json!({"subject": "x", "body": "x", "priority": "asap", "traderId": t}),
        ),
        ("traderId", json!({"subject": "x", "body": "x"})),
        // Another tenant's trader is not this tenant's.
        (
            "traderId",
            json!({"subject": "x", "body": "x", "traderId": theirs}),
        ),
        (
            "traderId",
            json!({"subject": "x", "body": "x", "traderId": "nope"}),
        ),
        (
            "subjekt",
            json!({"subjekt": "x", "body": "x", "traderId": t}),
        ),
        (
            "assignedToId",
            json!({"subject": "x", "body": "x", "traderId": t, "assignedToId": owner.user_id}),
        ),
    ] {
        let (s, b) = owner.post("/v1/support/tickets", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM support_tickets WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let id = ticket(&owner, json!({"subject": "x", "body": "x", "traderId": t})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/support/tickets/{id}");
    let reply = format!("{path}/reply");
    for (field, body) in [
        ("status", json!({"status": "done"})),
        ("priority", json!({"priority": "asap"})),
        ("assignedToId", json!({"assignedToId": their_user.user_id})),
        ("assignedToId", json!({"assignedToId": "nobody"})),
        ("subject", json!({"subject": "renamed"})),
    ] {
        let (s, b) = owner.patch(&path, body).await;
        assert_field_error(s, &b, field);
    }
    for (field, body) in [
        ("body", json!({})),
        ("body", json!({"body": "x".repeat(20_001)})),
        ("bdy", json!({"bdy": "x"})),
    ] {
        let (s, b) = owner.post(&reply, body).await;
        assert_field_error(s, &b, field);
    }

    // 401 without a credential.
    let anon = app.anonymous();
    for (s, _) in [
        anon.get("/v1/support/tickets").await,
        anon.post("/v1/support/tickets", json!({})).await,
        anon.get(&path).await,
        anon.patch(&path, json!({"status": "closed"})).await,
        anon.post(&reply, json!({"body": "x"})).await,
        anon.get("/v1/support/settings").await,
        anon.post("/v1/support/settings/inbound-secret", json!({}))
            .await,
        anon.delete("/v1/support/settings/inbound-secret").await,
    ] {
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // 403: the desk works tickets, compliance reads them, other roles have no access.
    let (s, list) = compliance.get("/v1/support/tickets").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(compliance.get(&path).await.0, StatusCode::OK);
    for (s, b) in [
        compliance
            .post(
                "/v1/support/tickets",
                json!({"subject": "x", "body": "x", "traderId": t}),
            )
            .await,
        compliance.patch(&path, json!({"status": "closed"})).await,
        compliance.post(&reply, json!({"body": "x"})).await,
        dealer.get("/v1/support/tickets").await,
        dealer.get(&path).await,
        dealer
            .post(
                "/v1/support/tickets",
                json!({"subject": "x", "body": "x", "traderId": t}),
            )
            .await,
        dealer.patch(&path, json!({"status": "closed"})).await,
        dealer.post(&reply, json!({"body": "x"})).await,
        // Inbound secrets are for owners and admins.
        their_user.get("/v1/support/settings").await,
        their_user
            .post("/v1/support/settings/inbound-secret", json!({}))
            .await,
        their_user
            .delete("/v1/support/settings/inbound-secret")
            .await,
    ] {
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    }
    // 404 for another tenant's ticket, which is never shown or changed.
    for (s, b) in [
        other.get(&path).await,
        other.patch(&path, json!({"status": "closed"})).await,
        other.post(&reply, json!({"body": "x"})).await,
        owner.get("/v1/support/tickets/not-a-ulid").await,
    ] {
        assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = other.get("/v1/support/tickets").await;
    assert_eq!(list["data"], json!([]));
    let (_, list) = other
        .get(&format!("/v1/support/tickets?traderId={t}"))
        .await;
    assert_eq!(list["data"], json!([]));
    let (_, still) = owner.get(&path).await;
    assert_eq!(still["status"], "open");
    assert_eq!(still["replyCount"], 0);
}

/// Sends a signed inbound ticket; `secret: None` sends no signature, `age` shifts `t` back.
async fn inbound(
    app: &TestApp,
    slug: &str,
    body: &Value,
    secret: Option<&str>,
    age: i64,
) -> (StatusCode, Value) {
    let text = body.to_string();
    let mut req = app
        .client()
        .raw_request(
            reqwest::Method::POST,
            &format!("/v1/support/webhooks/inbound?tenant={slug}"),
        )
        .header("content-type", "application/json")
        .body(text.clone());
    if let Some(secret) = secret {
        let t = chrono::Utc::now().timestamp() - age;
        req = req.header(
            signing::SIGNATURE_HEADER,
            signing::header_value(secret, t, &text),
        );
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn rotate(m: &Member) -> String {
    let (s, b) = m
        .post("/v1/support/settings/inbound-secret", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["inboundWebhook"]["secret"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_broker_sends_signed_tickets_through_the_inbound_webhook() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let t = trader(&owner, "Ada@X.example").await;
    let ticket_body = json!({
        "externalId": "helpdesk-1", "subject": "Cannot log in", "body": "From the contact form.",
        "priority": "high", "email": "ada@x.example"
    });

    // Not configured yet.
    let (s, b) = inbound(&app, &owner.slug, &ticket_body, Some("whsec_guess"), 0).await;
    assert_problem(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "support_inbound_not_configured",
    );
    let (s, settings) = owner.get("/v1/support/settings").await;
    assert_eq!(s, StatusCode::OK, "{settings}");
    assert_eq!(settings["inboundWebhook"]["configured"], false);
    let secret = rotate(&owner).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_, settings) = owner.get("/v1/support/settings").await;
    assert_eq!(settings["inboundWebhook"]["configured"], true);
    assert!(
        settings["inboundWebhook"]["endpointUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/v1/support/webhooks/inbound?tenant={}",
                owner.slug
            )),
        "{settings}"
    );
    assert!(!settings.to_string().contains(&secret), "never shown again");

    // 401 unless signed with the tenant's secret, recently, over this very body.
    let other_secret = rotate(&other).await;
    for (secret, age) in [
        (None, 0),
        (Some("whsec_guess"), 0),
        (Some(other_secret.as_str()), 0),
        (Some(secret.as_str()), 600),
    ] {
        let (s, b) = inbound(&app, &owner.slug, &ticket_body, secret, age).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_signature");
    }
    let r = app
        .client()
        .raw_request(
            reqwest::Method::POST,
            &format!("/v1/support/webhooks/inbound?tenant={}", owner.slug),
        )
        .header("content-type", "application/json")
        .header(
            signing::SIGNATURE_HEADER,
            signing::header_value(&secret, chrono::Utc::now().timestamp(), "{}"),
        )
        .body(ticket_body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "signed another body");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM support_tickets WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );

    // Signed: a ticket about the trader with that e-mail.
    let (s, created) = inbound(&app, &owner.slug, &ticket_body, Some(&secret), 0).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["traderId"], t.as_str());
    assert_eq!(created["source"], "inbound");
    assert_eq!(created["externalId"], "helpdesk-1");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["createdBy"]["type"], "system");
    // A redelivery answers the same ticket and changes nothing.
    let (s, again) = inbound(&app, &owner.slug, &ticket_body, Some(&secret), 0).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["id"], created["id"]);
    assert_eq!(events(&app, &owner.tenant_id, "ticket.created").await, 1);
    let (_, list) = owner.get("/v1/support/tickets").await;
    assert_eq!(ids(&list), [created["id"].as_str().unwrap()]);
    let (label,): (String,) = sqlx::query_as(
        "SELECT actor_label FROM audit_log WHERE tenant_id = $1 AND action = 'ticket.create'",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(label, "support_inbound");
    // traderId works too.
    let (s, by_id) = inbound(
        &app,
        &owner.slug,
        &json!({"externalId": "helpdesk-2", "subject": "s", "body": "b", "traderId": t}),
        Some(&secret),
        0,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{by_id}");
    assert_eq!(by_id["priority"], "normal");

    // 400 naming the field, checked after the signature.
    let theirs = trader(&other, "bob@x.example").await;
    for (field, body) in [
        (
            "externalId",
            json!({"subject": "s", "body": "b", "traderId": t}),
        ),
        (
            "subject",
            json!({"externalId": "e", "body": "b", "traderId": t}),
        ),
        (
            "priority",
            json!({"externalId": "e", "subject": "s", "body": "b", "priority": "asap", "traderId": t}),
        ),
        (
            "traderId",
            json!({"externalId": "e", "subject": "s", "body": "b"}),
        ),
        (
            "traderId",
            json!({"externalId": "e", "subject": "s", "body": "b", "traderId": theirs}),
        ),
        (
            "email",
            json!({"externalId": "e", "subject": "s", "body": "b", "email": "bob@x.example"}),
        ),
        (
            "email",
            json!({"externalId": "e", "subject": "s", "body": "b", "email": "ada@x.example", "traderId": t}),
        ),
        (
            "tenantId",
            json!({"externalId": "e", "subject": "s", "body": "b", "traderId": t, "tenantId": other.tenant_id}),
        ),
    ] {
        let (s, b) = inbound(&app, &owner.slug, &body, Some(&secret), 0).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = inbound(&app, "no-such-broker", &ticket_body, Some(&secret), 0).await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let r = app
        .client()
        .raw_request(reqwest::Method::POST, "/v1/support/webhooks/inbound")
        .body("{}")
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert_field_error(s, &r.json().await.unwrap(), "tenant");

    // Rotation: the previous secret keeps working for a while; deleting ends both.
    let newer = rotate(&owner).await;
    assert_ne!(newer, secret);
    let (_, settings) = owner.get("/v1/support/settings").await;
    assert!(settings["inboundWebhook"]["previousSecretValidUntil"].is_string());
    for (n, s) in [(3, &secret), (4, &newer)] {
        let (status, b) = inbound(
            &app,
            &owner.slug,
            &json!({"externalId": format!("helpdesk-{n}"), "subject": "s", "body": "b", "traderId": t}),
            Some(s),
            0,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
    }
    let (s, _) = owner.delete("/v1/support/settings/inbound-secret").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = inbound(&app, &owner.slug, &ticket_body, Some(&newer), 0).await;
    assert_problem(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "support_inbound_not_configured",
    );
    // The audit trail says the secret changed, never what it is.
    let (s, audit) = owner.get("/v1/audit?resourceType=support_settings").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(audit["data"].as_array().unwrap().len(), 3, "{audit}");
    assert!(!audit.to_string().contains(&newer));
}

#[tokio::test]
async fn a_workflow_opens_a_ticket_for_a_new_trader() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let agent = app.member(&owner, &["support"]).await;
    let other = app.register_owner().await;
    let other_user = app.member(&other, &["support"]).await;
    for (field, action) in [
        (
            "actions[0].subject",
            json!({"type": "create_ticket", "subject": "", "body": "b"}),
        ),
        (
            "actions[0].priority",
            json!({"type": "create_ticket", "subject": "s", "body": "b", "priority": "asap"}),
        ),
        (
            "actions[0].assignedToId",
            json!({"type": "create_ticket", "subject": "s", "body": "b", "assignedToId": other_user.user_id}),
        ),
        (
            "actions[0]",
            json!({"type": "create_ticket", "subject": "s"}),
        ),
    ] {
        let (s, b) = owner
            .post(
                "/v1/workflows",
                json!({"name": "x", "triggerType": "trader.created", "actions": [action]}),
            )
            .await;
        assert_field_error(s, &b, field);
    }
    let (s, wf) = owner
        .post(
            "/v1/workflows",
            json!({
                "name": "Welcome call", "triggerType": "trader.created", "isActive": true,
                "condition": {"trader.country": "GB"},
                "actions": [{
                    "type": "create_ticket", "subject": "Welcome call for {{firstName}} {{lastName}}",
                    "body": "Call {{email}} within a day.", "priority": "high", "assignedToId": agent.user_id
                }]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{wf}");
    let wf_id = wf["id"].as_str().unwrap();

    // The dry run shows the ticket it would open, and opens none.
    let sample = trader(&owner, "sample@x.example").await;
    let (s, dry) = owner
        .post(
            &format!("/v1/workflows/{wf_id}/dry-run"),
            json!({"event": {"resourceType": "trader", "resourceId": sample}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry["wouldRun"], true, "{dry}");
    assert_eq!(dry["actions"][0]["type"], "create_ticket");
    assert_eq!(
        dry["actions"][0]["subject"],
        "Welcome call for Ada Lovelace"
    );
    assert_eq!(
        dry["actions"][0]["body"],
        "Call sample@x.example within a day."
    );
    let (_, none) = owner.get("/v1/support/tickets").await;
    assert_eq!(none["data"], json!([]));

    // A trader created through the API; the worker (the background loop's round) opens the ticket.
    let t = trader(&owner, "new@x.example").await;
    drain(&app).await;
    let (s, list) = agent
        .get(&format!("/v1/support/tickets?traderId={t}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let tickets = list["data"].as_array().unwrap();
    assert_eq!(tickets.len(), 1, "{list}");
    let tk = &tickets[0];
    assert_eq!(tk["subject"], "Welcome call for Ada Lovelace");
    assert_eq!(tk["body"], "Call new@x.example within a day.");
    assert_eq!(tk["priority"], "high");
    assert_eq!(tk["status"], "open");
    assert_eq!(tk["assignedToId"], agent.user_id.as_str());
    assert_eq!(tk["source"], "workflow");
    assert_eq!(tk["createdBy"]["type"], "workflow");
    assert_eq!(tk["createdBy"]["id"], wf_id);

    let (_, runs) = owner.get(&format!("/v1/workflows/{wf_id}/runs")).await;
    let run = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"]["trader"]["id"] == t.as_str())
        .expect("the new trader's run")
        .clone();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["actions"][0]["ticketId"], tk["id"]);
    // The event carries the chain depth; the audit entry names the workflow, version and run.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'ticket.created' AND chain_depth = 1",
            &owner.tenant_id
        )
        .await,
        2
    );
    let (label, after): (String, String) = sqlx::query_as(
        "SELECT actor_label, after_json FROM audit_log WHERE tenant_id = $1 AND actor_type = 'workflow' AND action = 'ticket.create' AND resource_id = $2",
    )
    .bind(&owner.tenant_id)
    .bind(tk["id"].as_str().unwrap())
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(label.contains(wf_id) && label.contains("v1"), "{label}");
    assert!(after.contains(run["id"].as_str().unwrap()), "{after}");

    // A ticket the workflow cannot open (the assignee left) fails the run and opens nothing.
    sqlx::query("UPDATE users SET status = 'deactivated' WHERE tenant_id = $1 AND id = $2")
        .bind(&owner.tenant_id)
        .bind(&agent.user_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let late = trader(&owner, "late@x.example").await;
    drain(&app).await;
    let (_, list) = owner
        .get(&format!("/v1/support/tickets?traderId={late}"))
        .await;
    assert_eq!(list["data"], json!([]));
    let (_, runs) = owner.get(&format!("/v1/workflows/{wf_id}/runs")).await;
    let failed = &runs["data"][0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("assignedToId"),
        "{failed}"
    );
}
