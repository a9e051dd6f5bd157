//! `POST /v1/sales/leads/{id}/convert`: the lead becomes a trader (through the host's
//! core-records interface, so the engine validates, audits and announces it as
//! `trader.created`), the lead keeps the trader's id and is `converted`, and `lead.converted`
//! is emitted.

use lumire_plugin_sdk::records::{self, NewTrader, Trader};
use lumire_plugin_sdk::storage;
use lumire_plugin_sdk::{Problem, Request, Response};
use serde_json::json;

use super::leads::{SalesLead, load};
use super::{LEADS, path_id};

/// A core-records failure as a problem.
pub fn records_problem(e: records::Error) -> Problem {
    match e {
        records::Error::Invalid(msg) => {
            // The host names the fields (`phone: too long; country: ...`) when it can.
            let errors = msg
                .split("; ")
                .map(|part| match part.split_once(": ") {
                    Some((f, m))
                        if !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                    {
                        (f.to_string(), m.to_string())
                    }
                    _ => ("lead".to_string(), part.to_string()),
                })
                .collect();
            Problem::fields(errors)
        }
        records::Error::NotFound => Problem::not_found("trader"),
        records::Error::Conflict(msg) => Problem::conflict("conflict", &msg),
        records::Error::Unavailable(msg) => {
            lumire_plugin_sdk::log::warn(&format!("core records unavailable: {msg}"));
            Problem::new(
                503,
                "unavailable",
                "The engine's records are unavailable; retry later.",
            )
        }
        records::Error::Denied => Problem::internal("core-records capability denied"),
    }
}

fn trader_json(t: &Trader) -> serde_json::Value {
    json!({
        "id": t.id,
        "email": t.email,
        "firstName": t.first_name,
        "lastName": t.last_name,
        "phone": t.phone,
        "country": t.country,
        "status": t.status,
        "createdAt": t.created_at,
    })
}

pub fn convert(req: &Request) -> Result<Response, Problem> {
    let mut lead: SalesLead = load(path_id(req, "id"))?;
    if lead.status == "converted" || lead.trader_id.is_some() {
        return Err(Problem::conflict(
            "already_converted",
            &format!(
                "The lead was converted already (trader {}).",
                lead.trader_id.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    if lead.status == "lost" {
        return Err(Problem::conflict(
            "illegal_status_change",
            "A lost lead cannot be converted; reopen it first (PATCH status new).",
        ));
    }
    let new = NewTrader {
        email: lead.email.clone(),
        first_name: lead.first_name.clone(),
        last_name: lead.last_name.clone(),
        phone: lead.phone.clone(),
        country: lead.country.clone(),
        source: Some(format!("lead:{}", lead.id)),
    };
    let trader = match records::create_trader(&new) {
        Ok(t) => t,
        Err(records::Error::Conflict(_)) => {
            let mut p = Problem::conflict(
                "email_taken",
                &format!("A trader with the e-mail address {} exists.", lead.email),
            );
            p.errors = vec![("email".into(), "is taken by a trader of this tenant".into())];
            return Err(p);
        }
        Err(e) => return Err(records_problem(e)),
    };
    let now = crate::time::now();
    lead.status = "converted".into();
    lead.trader_id = Some(trader.id.clone());
    lead.converted_at = Some(now.clone());
    lead.updated_at = now;
    storage::put(LEADS, &lead.id, &lead)?;
    super::emit(
        "lead.converted",
        "lead",
        &lead.id,
        &json!({"id": lead.id, "traderId": trader.id, "email": lead.email}),
    );
    Ok(Response::json(
        200,
        &json!({"lead": lead, "trader": trader_json(&trader)}),
    ))
}
