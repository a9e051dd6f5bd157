//! `POST /v1/sales/leads/{id}/convert`: the lead becomes a trader (through the host's
//! core-records interface, so the engine validates, audits and announces it as
//! `trader.created`), the lead keeps the trader's id and is `converted`, and `lead.converted`
//! is emitted. The trader and the lead's change commit in one transaction (WIT 0.3.0
//! `transaction`): a failure leaves neither, and two conversions of one lead at once give one
//! trader and a 409.

use lumire_plugin_sdk::records::{self, NewTrader, Trader};
use lumire_plugin_sdk::transaction::{self, Error, Expect, Transaction, created_trader};
use lumire_plugin_sdk::{Problem, Request, Response, field_errors};
use serde_json::json;

use super::leads::{SalesLead, load};
use super::{LEADS, path_id};

/// A core-records failure as a problem.
pub fn records_problem(e: records::Error) -> Problem {
    match e {
        // The host names the fields (`phone: too long; country: ...`) when it can.
        records::Error::Invalid(msg) => Problem::fields(field_errors(&msg)),
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
    let (mut lead, revision) = load::<SalesLead>(path_id(req, "id"))?;
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
    let trader_id = transaction::new_trader_id();
    let now = crate::time::now();
    lead.status = "converted".into();
    lead.trader_id = Some(trader_id.clone());
    lead.converted_at = Some(now.clone());
    lead.updated_at = now;
    // The trader and the converted lead commit together, and only over the revision read
    // above: a concurrent conversion or edit makes this one a 409 with nothing written.
    let committed = Transaction::new()
        .create_trader(&trader_id, new)
        .put(LEADS, &lead.id, &lead, Expect::Revision(revision))
        .commit();
    let outcomes = match committed {
        Ok(o) => o,
        Err(Error::Conflict(_)) => {
            let mut p = Problem::conflict(
                "email_taken",
                &format!("A trader with the e-mail address {} exists.", lead.email),
            );
            p.errors = vec![("email".into(), "is taken by a trader of this tenant".into())];
            return Err(p);
        }
        Err(e) => return Err(e.into()),
    };
    let trader = created_trader(&outcomes)
        .ok_or_else(|| Problem::internal("the commit did not report the created trader"))?;
    super::emit(
        "lead.converted",
        "lead",
        &lead.id,
        &json!({"id": lead.id, "traderId": trader.id, "email": lead.email}),
    );
    Ok(Response::json(
        200,
        &json!({"lead": lead, "trader": trader_json(trader)}),
    ))
}
