//! Leads intake: the partner Leads API (`GET /v1/leads`, `POST /v1/leads`) as a LumireCRM
//! plugin, with its own response shape (`{"success": true, "result": {"leads": [...], "count": N}}`).
//! Leads live in the host's tenant-scoped document store (collection `leads`).

mod lead;
mod time;

use lumire_plugin_sdk::storage::{self, Op};
use lumire_plugin_sdk::{self as sdk, Plugin, Problem, Request, Response, manifest};
use serde_json::{Value, json};

struct LeadsIntake;

const READ: &[&str] = &["owner", "admin", "sales", "support"];
const WRITE: &[&str] = &["owner", "admin", "sales"];
const COLLECTION: &str = "leads";

impl Plugin for LeadsIntake {
    fn manifest() -> sdk::Manifest {
        manifest("leads-intake", env!("CARGO_PKG_VERSION"))
            .description("Partner Leads API: submit and list leads.")
            .route("GET", "/v1/leads", READ, "List leads (page_size, page_index, status, application_status, date_from, date_to, id)")
            .route("POST", "/v1/leads", WRITE, "Create a lead")
            .collection(COLLECTION, &["status", "lead_application_status", "created_at"])
            .capability(sdk::Capability::Events)
            .build()
    }

    fn handle(req: Request) -> Result<Response, Problem> {
        match (req.method(), req.route()) {
            ("GET", "/v1/leads") => list(&req),
            ("POST", "/v1/leads") => create(&req),
            _ => Err(Problem::not_found("route")),
        }
    }
}

sdk::export_plugin!(LeadsIntake);

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

fn list(req: &Request) -> Result<Response, Problem> {
    let page_size = int_param(req, "page_size", 20, 1, 500)?;
    let page_index = int_param(req, "page_index", 0, 0, 100_000)?;
    if let Some(id) = req.query("id") {
        let leads: Vec<Value> = storage::get::<Value>(COLLECTION, id)?.into_iter().collect();
        let count = leads.len();
        return Ok(ok_list(leads, count as u64));
    }
    let mut q = storage::query(COLLECTION)
        .order_by("id", true)
        .limit(page_size)
        .skip(page_size.saturating_mul(page_index));
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

fn ok_list(leads: Vec<Value>, count: u64) -> Response {
    Response::json(
        200,
        &json!({"success": true, "result": {"leads": leads, "count": count}}),
    )
}

fn create(req: &Request) -> Result<Response, Problem> {
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
    let doc = lead::build(
        &id,
        &input,
        &now,
        || storage::new_id("loan"),
        || storage::new_id("app"),
    );
    storage::put(COLLECTION, &id, &doc)?;
    if let Err(e) = sdk::events::emit(
        "lead.created",
        "lead",
        &id,
        &json!({"id": id, "status": doc["status"]}),
    ) {
        sdk::log::warn(&format!("lead.created not emitted: {e}"));
    }
    Ok(Response::json(201, &json!([{"id": id}])))
}
