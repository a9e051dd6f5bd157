//! Invoice and statement PDFs: real documents whose figures match the ledger.

use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The text shown by a PDF's content streams (our documents keep them uncompressed): the
/// literal strings of its text operators, in order, with PDF escapes undone.
fn pdf_text(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Hex strings (pdf-writer uses them for non-ASCII text); `<<` opens a dictionary.
        if bytes[i] == b'<' && bytes.get(i + 1) != Some(&b'<') && (i == 0 || bytes[i - 1] != b'<') {
            let end = bytes[i..]
                .iter()
                .position(|&b| b == b'>')
                .map(|p| i + p)
                .unwrap_or(bytes.len());
            let hex: Vec<u8> = bytes[i + 1..end]
                .iter()
                .copied()
                .filter(u8::is_ascii_hexdigit)
                .collect();
            let s: String = hex
                .chunks(2)
                .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
                .map(|b| b as char)
                .collect();
            out.push(s);
            i = end + 1;
        } else if bytes[i] == b'(' {
            let mut depth = 1;
            let mut s = Vec::new();
            i += 1;
            while i < bytes.len() && depth > 0 {
                match bytes[i] {
                    b'\\' if i + 1 < bytes.len() => {
                        i += 1;
                        s.push(bytes[i]);
                    }
                    b'(' => {
                        depth += 1;
                        s.push(b'(');
                    }
                    b')' => {
                        depth -= 1;
                        if depth > 0 {
                            s.push(b')');
                        }
                    }
                    c => s.push(c),
                }
                i += 1;
            }
            out.push(s.iter().map(|&b| b as char).collect());
        } else {
            i += 1;
        }
    }
    out
}

async fn pdf(m: &lumire_tests::Client, path: &str) -> (StatusCode, Vec<u8>, String) {
    let r = m.raw(reqwest::Method::GET, path, None, &[]).await;
    let s = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (s, r.bytes().await.unwrap().to_vec(), ct)
}

async fn trader(m: &Member) -> String {
    let (s, t) = m
        .post("/v1/traders", json!({"email": format!("{}@client.example", ulid::Ulid::new().to_string().to_lowercase()), "firstName": "Zoë", "lastName": "Lovelace"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn deposit(m: &Member, trader_id: &str, amount: &str, fee: Option<&str>) -> Value {
    let (s, d) = m
        .post("/v1/payments/deposits", json!({"traderId": trader_id, "kind": "bank_wire", "amount": amount, "currency": "USD", "externalId": format!("wire-{}", ulid::Ulid::new())}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap();
    if let Some(fee) = fee {
        let (s, _) = m
            .post("/v1/payments/deposits/approve", json!({"id": id}))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, d) = m
            .post(
                "/v1/payments/deposits/settle",
                json!({"id": id, "feeAmount": fee}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        return d;
    }
    d
}

#[tokio::test]
async fn invoice_of_a_settled_deposit() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, _) = owner
        .patch(
            "/v1/tenants/current",
            json!({"branding": {"primaryColor": "#0f766e"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let t = trader(&owner).await;
    let d = deposit(&owner, &t, "250.00", Some("7.25")).await;
    let id = d["id"].as_str().unwrap();
    let (s, bytes, ct) = pdf(&owner, &format!("/v1/payments/deposits/{id}/invoice.pdf")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/pdf");
    assert!(bytes.starts_with(b"%PDF-"));
    let text = pdf_text(&bytes);
    for want in [
        format!("INV-{id}"),
        "250.00 USD".into(),
        "7.25 USD".into(),
        "242.75 USD".into(),
        "Zo\u{eb} Lovelace".into(),
    ] {
        assert!(text.contains(&want), "{want} not in {text:?}");
    }
    // Tenant branding: the band is drawn in the brand colour.
    assert!(String::from_utf8_lossy(&bytes).contains("0.05882353 0.4627451 0.43137255 rg"));
    // A reversed deposit's invoice says so.
    let (s, _) = owner
        .post(
            "/v1/payments/deposits/reverse",
            json!({"id": id, "reason": "chargeback"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, bytes, _) = pdf(&owner, &format!("/v1/payments/deposits/{id}/invoice.pdf")).await;
    assert!(
        pdf_text(&bytes)
            .iter()
            .any(|s| s.starts_with("Reversed: chargeback"))
    );
}

#[tokio::test]
async fn invoice_access_and_state() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let pending = deposit(&owner, &t, "10.00", None).await;
    let (s, body, _) = pdf(
        &owner,
        &format!(
            "/v1/payments/deposits/{}/invoice.pdf",
            pending["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_problem(
        s,
        &serde_json::from_slice(&body).unwrap(),
        StatusCode::CONFLICT,
        "invalid_state",
    );
    let settled = deposit(&owner, &t, "10.00", Some("0")).await;
    let path = format!(
        "/v1/payments/deposits/{}/invoice.pdf",
        settled["id"].as_str().unwrap()
    );
    let (s, _, _) = pdf(&owner.anonymous(), &path).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let ib = app.member(&owner, &["ib"]).await;
    let (s, _, _) = pdf(&ib, &path).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let support = app.member(&owner, &["support"]).await;
    let (s, _, _) = pdf(&support, &path).await;
    assert_eq!(s, StatusCode::OK);
    let other = app.register_owner().await;
    let (s, body, _) = pdf(&other, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("10.00"));
}

#[tokio::test]
async fn statement_matches_the_ledger() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    deposit(&owner, &t, "1000.00", Some("10.00")).await;
    deposit(&owner, &t, "500.00", Some("0")).await;
    let (s, w) = owner
        .post(
            "/v1/payments/withdrawals",
            json!({"traderId": t, "kind": "bank_wire", "amount": "300.00", "currency": "USD"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (s, bytes, ct) = pdf(
        &owner,
        &format!("/v1/payments/traders/{t}/statement.pdf?month={month}"),
    )
    .await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/pdf"));
    // LUMIRE_KEEP_PDF=DIR keeps the document for a look with a PDF reader.
    if let Ok(dir) = std::env::var("LUMIRE_KEEP_PDF") {
        std::fs::write(format!("{dir}/statement.pdf"), &bytes).unwrap();
    }
    let text = pdf_text(&bytes);
    let (_, bal) = owner
        .get(&format!("/v1/payments/traders/{t}/balances"))
        .await;
    let usd = &bal["data"][0];
    assert_eq!(usd["available"], "1190.00", "{bal}");
    // Wallet: opening 0, +990, +500, -300 (held), closing equal to the ledger's available.
    let closing: Vec<usize> = text
        .iter()
        .enumerate()
        .filter(|(_, s)| *s == "Closing balance")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closing.len(), 2, "wallet and hold sections: {text:?}");
    let after = |i: usize| {
        text[i + 1..]
            .iter()
            .find(|s| s.ends_with(" USD"))
            .cloned()
            .unwrap()
    };
    assert_eq!(after(closing[0]), "1190.00 USD", "{text:?}");
    assert_eq!(
        after(closing[1]),
        "300.00 USD",
        "then the amount held: {text:?}"
    );
    for want in [
        "990.00 USD",
        "500.00 USD",
        "-300.00 USD",
        "Money in",
        "Opening balance",
    ] {
        assert!(text.iter().any(|s| s == want), "{want} not in {text:?}");
    }
    // A trader with nothing this month gets an empty statement; months before the tenant
    // existed are refused (tests/api/input_hardening.rs).
    let idle = trader(&owner).await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (s, bytes, _) = pdf(
        &owner,
        &format!("/v1/payments/traders/{idle}/statement.pdf?month={month}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        pdf_text(&bytes)
            .iter()
            .any(|s| s.starts_with("No balances"))
    );
}

#[tokio::test]
async fn statement_access_and_input() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let path = format!("/v1/payments/traders/{t}/statement.pdf");
    let (s, bytes, _) = pdf(&owner, &format!("{path}?month=2026-13")).await;
    assert_field_error(s, &serde_json::from_slice(&bytes).unwrap(), "month");
    let (s, _, _) = pdf(&owner.anonymous(), &path).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let ib = app.member(&owner, &["ib"]).await;
    let (s, _, _) = pdf(&ib, &path).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let other = app.register_owner().await;
    let (s, _, _) = pdf(&other, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Many movements flow onto further pages.
    for _ in 0..45 {
        deposit(&owner, &t, "1.00", Some("0")).await;
    }
    let (s, bytes, _) = pdf(&owner, &path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&bytes).contains("/Count 2"));
}
