//! `GET/POST /v1/sales/activities`: notes, calls, e-mails, meetings and tasks about a lead, a
//! trader or both.

use lumire_plugin_sdk::records;
use lumire_plugin_sdk::storage::{self, Op};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::input::Body;
use super::{ACTIVITIES, LEADS, filter_param, list_params, page};
use crate::sales::leads::SalesLead;

pub const KINDS: &[&str] = &["note", "call", "email", "meeting", "task"];

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: String,
    pub lead_id: Option<String>,
    pub trader_id: Option<String>,
    pub kind: String,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub occurred_at: String,
    /// The user (or API key) that recorded it.
    pub created_by_id: String,
    pub created_at: String,
}

/// Newest first by `occurredAt`; filters `leadId`, `traderId`, `kind`.
pub fn list(req: &Request) -> Result<Response, Problem> {
    let p = list_params(req)?;
    let mut q = storage::query(ACTIVITIES).order_by("occurredAt", true);
    for f in ["leadId", "traderId"] {
        if let Some(v) = filter_param(req, f) {
            q = q.filter(f, Op::Eq, v);
        }
    }
    if let Some(k) = filter_param(req, "kind") {
        if !KINDS.contains(&k) {
            return Err(Problem::field(
                "kind",
                &format!("must be one of {}", KINDS.join(", ")),
            ));
        }
        q = q.filter("kind", Op::Eq, k);
    }
    page::<Activity>(q, p)
}

pub fn create(req: &Request) -> Result<Response, Problem> {
    let mut b = Body::parse(
        req,
        &[
            "leadId",
            "traderId",
            "kind",
            "subject",
            "body",
            "occurredAt",
        ],
    )?;
    let lead_id = b.text("leadId", 128).set();
    let mut trader_id = b.text("traderId", 128).set();
    let kind = b.one_of("kind", KINDS);
    let kind = b.required("kind", kind);
    let subject = b.text("subject", 200).set();
    let body = b.text("body", 10_000).set();
    let occurred_at = b.time("occurredAt").set();
    if lead_id.is_none() && trader_id.is_none() {
        b.fail("leadId", "leadId or traderId is required");
    }
    if let Some(id) = &trader_id {
        match records::trader(id) {
            Ok(_) => {}
            Err(records::Error::NotFound | records::Error::Invalid(_)) => {
                b.fail("traderId", "is not a trader of this tenant")
            }
            Err(e) => return Err(super::convert::records_problem(e)),
        }
    }
    if let Some(id) = &lead_id {
        match storage::get::<SalesLead>(LEADS, id)? {
            // A converted lead's activities also belong to its trader.
            Some(lead) => {
                if trader_id.is_none() {
                    trader_id = lead.trader_id;
                }
            }
            None => b.fail("leadId", "is not a lead of this tenant"),
        }
    }
    b.finish()?;
    let now = crate::time::now();
    let activity = Activity {
        id: storage::new_id("activity"),
        lead_id,
        trader_id,
        kind: kind.unwrap_or_default(),
        subject,
        body,
        occurred_at: occurred_at.unwrap_or_else(|| now.clone()),
        created_by_id: req.actor_id().to_string(),
        created_at: now,
    };
    storage::put(ACTIVITIES, &activity.id, &activity)?;
    super::emit(
        "activity.created",
        "activity",
        &activity.id,
        &json!({"id": activity.id, "kind": activity.kind, "leadId": activity.lead_id, "traderId": activity.trader_id}),
    );
    Ok(Response::json(201, &activity))
}
