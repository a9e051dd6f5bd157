//! The partner Leads API (`GET /v1/leads`, `POST /v1/leads`) in its own response shape
//! (`{"success": true, "result": {"leads": [...], "count": N}}`). Partners (HTTP Basic
//! credentials issued by the tenant) see and extend only the leads they submitted; team members
//! see all of the tenant's.

use lumire_plugin_sdk::storage::{self, Op};
use lumire_plugin_sdk::transaction;
use lumire_plugin_sdk::{Problem, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::sales::leads::SalesLead;
use crate::sales::{self, put_write};
use crate::{lead, time};

/// Partner leads (the `sales_leads` document of the same id is the sales team's view).
pub const COLLECTION: &str = "leads";

/// Reads a partner lead the caller may see: a partner only its own; `None` otherwise.
pub fn visible_lead(req: &Request, id: &str) -> Result<Option<Value>, Problem> {
    Ok(visible_lead_versioned(req, id)?.map(|(lead, _)| lead))
}

/// [`visible_lead`] with the document's revision, for a change that must not overwrite a
/// concurrent one.
pub fn visible_lead_versioned(req: &Request, id: &str) -> Result<Option<(Value, u64)>, Problem> {
    let Some((lead, revision)) = transaction::get::<Value>(COLLECTION, id)? else {
        return Ok(None);
    };
    match req.partner_id() {
        Some(p) if lead.get("partner_id").and_then(Value::as_str) != Some(p) => Ok(None),
        _ => Ok(Some((lead, revision))),
    }
}

/// The lead as the API shows it: document metadata without the storage key.
fn view(mut lead: Value) -> Value {
    if let Some(docs) = lead.get_mut("documents").and_then(Value::as_array_mut) {
        for d in docs {
            if let Some(o) = d.as_object_mut() {
                o.remove("key");
            }
        }
    }
    lead
}

fn int_param(req: &Request, name: &str, default: u32, min: u32, max: u32) -> Result<u32, Problem> {
    match req.query(name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                Problem::field(name, &format!("must be an integer from {min} to {max}"))
            }),
    }
}

/// The partner API's list shape, written straight from the leads (no copy of them).
#[derive(Serialize)]
struct Listed {
    success: bool,
    result: ListedLeads,
}

#[derive(Serialize)]
struct ListedLeads {
    leads: Vec<Value>,
    count: u64,
}

fn ok_list(leads: Vec<Value>, count: u64) -> Response {
    let leads: Vec<Value> = leads.into_iter().map(view).collect();
    Response::json(
        200,
        &Listed {
            success: true,
            result: ListedLeads { leads, count },
        },
    )
}

pub fn list(req: &Request) -> Result<Response, Problem> {
    let page_size = int_param(req, "page_size", 20, 1, 500)?;
    let page_index = int_param(req, "page_index", 0, 0, 100_000)?;
    if let Some(id) = req.query("id") {
        let leads: Vec<Value> = visible_lead(req, id)?.into_iter().collect();
        let count = leads.len() as u64;
        return Ok(ok_list(leads, count));
    }
    let mut q = storage::query(COLLECTION)
        .order_by("id", true)
        .limit(page_size)
        .skip(page_size.saturating_mul(page_index));
    if let Some(p) = req.partner_id() {
        q = q.filter("partner_id", Op::Eq, p);
    }
    if let Some(s) = req.query("status") {
        if !lead::STATUSES.contains(&s) {
            return Err(Problem::field(
                "status",
                &format!("must be one of {}", lead::STATUSES.join(", ")),
            ));
        }
        q = q.filter("status", Op::Eq, s);
    }
    if let Some(s) = req.query("application_status") {
        if !lead::APPLICATION_STATUSES.contains(&s) {
            return Err(Problem::field(
                "application_status",
                &format!("must be one of {}", lead::APPLICATION_STATUSES.join(", ")),
            ));
        }
        q = q.filter("lead_application_status", Op::Eq, s);
    }
    if let Some(d) = req.query("date_from") {
        let from = time::bound(d, false).ok_or_else(|| {
            Problem::field("date_from", "must be an ISO date (2018-07-04) or date-time")
        })?;
        q = q.filter("created_at", Op::Gte, &from);
    }
    if let Some(d) = req.query("date_to") {
        let to = time::bound(d, true).ok_or_else(|| {
            Problem::field("date_to", "must be an ISO date (2018-07-04) or date-time")
        })?;
        q = q.filter("created_at", Op::Lte, &to);
    }
    let count = storage::count(COLLECTION, q.filters())?;
    let (leads, _) = q.fetch::<Value>()?;
    Ok(ok_list(leads, count))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The sales team's view of a partner lead: same id, status `new`, source `partner_api`.
fn sales_lead(doc: &Value, partner: Option<&str>, now: &str) -> Result<SalesLead, Problem> {
    let id = doc["id"].as_str().unwrap_or_default().to_string();
    let who = &doc["stakeholder"];
    let mut lead = SalesLead::new(id, text(&who["email"]).unwrap_or_default(), now);
    lead.first_name = text(&who["first_name"]);
    lead.last_name = text(&who["last_name"]);
    lead.phone = text(&who["phone"]);
    // The partner API's address country is free text: kept when it is an ISO code.
    lead.country = text(&who["address"]["country"]).and_then(|c| sales::country(&c));
    lead.source = Some("partner_api".into());
    lead.partner_id = partner.map(str::to_string);
    let mut meta = Map::new();
    if let Some(c) = text(&doc["company"]["name"]) {
        meta.insert("companyName".into(), json!(c));
    }
    if let Some(a) = doc["loan"].get("requested_amount").filter(|v| !v.is_null()) {
        meta.insert("requestedAmount".into(), a.clone());
    }
    lead.metadata = meta;
    lead.enter_default_pipeline()?;
    Ok(lead)
}

pub fn create(req: &Request) -> Result<Response, Problem> {
    let body: Value = req.json()?;
    let enforce = match req.query("enforce_mandatories") {
        Some("false") => false,
        Some("true") | None => body
            .get("enforce_mandatories")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        Some(_) => {
            return Err(Problem::field(
                "enforce_mandatories",
                "must be true or false",
            ));
        }
    };
    let input = lead::validate(&body, enforce)?;
    let id = storage::new_id("lead");
    let now = time::now();
    let partner = req.partner_id();
    let mut doc = lead::build(
        &id,
        &input,
        &now,
        || storage::new_id("loan"),
        || storage::new_id("app"),
    );
    doc["partner_id"] = json!(partner);
    doc["documents"] = json!([]);
    let sales = sales_lead(&doc, partner, &now)?;
    // Both views of the lead commit together.
    storage::batch(&[
        put_write(COLLECTION, &id, &doc)?,
        put_write(sales::LEADS, &id, &sales)?,
    ])?;
    sales::emit(
        "lead.created",
        "lead",
        &id,
        &json!({"id": id, "status": doc["status"], "source": "partner_api", "partnerId": partner}),
    );
    Ok(Response::json(201, &json!([{"id": id}])))
}
