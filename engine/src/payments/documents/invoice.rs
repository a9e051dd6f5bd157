//! `GET /v1/payments/deposits/{id}/invoice.pdf`: the invoice of a settled deposit (also of one
//! settled and later reversed, stamped as such). Figures come from the deposit's settlement,
//! which is the ledger entry it names.

use axum::extract::{Path, State};
use axum::response::Response;

use super::{Brand, brand, client_name, date_of, pdf_response};
use crate::app::AppState;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::payments::model::{DepositRow, load_deposit};
use crate::pdf::{Column, Document};
use crate::util::now;

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let d = load_deposit(st.db.pool(), &actor.tenant_id, &id).await?;
    if d.status != "settled" && d.status != "reversed" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "A {} deposit has no invoice; it is issued once the deposit settles.",
                d.status
            ),
        ));
    }
    let trader = crate::traders::load(st.db.pool(), &actor.tenant_id, &d.trader_id).await?;
    let (email, first, last, country) = (
        trader.email,
        trader.first_name,
        trader.last_name,
        trader.country,
    );
    let b = brand(st.db.pool(), &actor.tenant_id).await?;
    let bytes = render(
        &b,
        &d,
        &client_name(first.as_deref(), last.as_deref(), &email),
        &email,
        country.as_deref(),
    );
    Ok(pdf_response(bytes, &format!("invoice-{id}.pdf")))
}

fn render(b: &Brand, d: &DepositRow, name: &str, email: &str, country: Option<&str>) -> Vec<u8> {
    let number = format!("INV-{}", d.id);
    let issued = d.settled_at.as_deref().map(date_of).unwrap_or_default();
    let mut doc = Document::new("Invoice", &b.name, b.color.as_deref(), &number);
    doc.heading("Invoice");
    doc.fields(&[
        ("Invoice number", number.clone()),
        ("Issued", issued),
        ("Billed to", name.to_string()),
        ("E-mail", email.to_string()),
        ("Country", country.unwrap_or("-").to_string()),
        ("Client id", d.trader_id.clone()),
    ]);
    doc.heading("Payment");
    doc.fields(&[
        ("Method", d.kind.replace('_', " ")),
        (
            "Provider reference",
            d.external_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Settled", d.settled_at.clone().unwrap_or_default()),
        (
            "Ledger entry",
            d.ledger_entry_id.clone().unwrap_or_default(),
        ),
    ]);
    let cur = &d.currency;
    let money = |s: Option<&String>| format!("{} {cur}", s.map(String::as_str).unwrap_or("0"));
    let gross = d.settled_amount.as_ref().or(Some(&d.amount));
    let mut rows = vec![
        (
            vec!["Deposit requested".to_string(), money(Some(&d.amount))],
            false,
        ),
        (vec!["Received".to_string(), money(gross)], false),
        (
            vec!["Processing fee".to_string(), money(d.fee_amount.as_ref())],
            false,
        ),
        (
            vec![
                "Credited to the client's wallet".to_string(),
                money(d.net_amount.as_ref()),
            ],
            true,
        ),
    ];
    if d.status == "reversed" {
        rows.push((
            vec![
                format!("Reversed: {}", d.reversal_reason.as_deref().unwrap_or("")),
                format!("-{}", money(d.net_amount.as_ref())),
            ],
            true,
        ));
    }
    doc.table(
        &[
            Column::left("Description", 3.0),
            Column::right("Amount", 1.2),
        ],
        &rows,
    );
    if d.status == "reversed" {
        doc.paragraph(
            "This deposit was reversed after settlement; the amount above was taken back.",
        );
    }
    doc.paragraph(
        "Amounts are exact; the fee is what the payment provider charged on this deposit.",
    );
    doc.finish(&now())
}
