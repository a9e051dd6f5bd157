//! Leads intake, a LumireCRM plugin:
//!
//! - the partner Leads API (`GET/POST /v1/leads`, `POST /v1/leads/{lead_id}/documents`, which
//!   the engine also serves as `POST /lead/{lead_id}/documents`) in its own response shape, for
//!   team members and for partners authenticated by the engine with HTTP Basic credentials
//!   (actor kind `partner`), who see only their own leads;
//! - the `sales` tag: leads, pipelines with stages, activities, and `convert`, which creates a
//!   trader through the host's core records. Partner leads appear there too.
//!
//! Data lives in the host's tenant-scoped document store; uploads in its object storage.

mod documents;
mod lead;
mod partner_api;
mod sales;
mod time;
mod upload;

use lumire_plugin_sdk::{self as sdk, Plugin, Problem, Request, Response, Router, manifest};

struct LeadsIntake;

/// The pseudo-role the engine gives partner credentials on routes that admit them.
const PARTNER: &str = "partner";
const READ: &[&str] = &["owner", "admin", "sales", "support"];
const WRITE: &[&str] = &["owner", "admin", "sales"];
const PARTNER_READ: &[&str] = &["owner", "admin", "sales", "support", PARTNER];
const PARTNER_WRITE: &[&str] = &["owner", "admin", "sales", PARTNER];

impl Plugin for LeadsIntake {
    fn manifest() -> sdk::Manifest {
        manifest("leads-intake", env!("CARGO_PKG_VERSION"))
            .description("Partner Leads API (leads, documents) and the sales tag (leads, pipelines, activities, convert).")
            .route("GET", "/v1/leads", PARTNER_READ, "List leads (page_size, page_index, status, application_status, date_from, date_to, id)")
            .route("POST", "/v1/leads", PARTNER_WRITE, "Create a lead")
            .route("POST", "/v1/leads/{lead_id}/documents", PARTNER_WRITE, "Upload a lead document (multipart/form-data, part `document`); also POST /lead/{lead_id}/documents")
            .route("GET", "/v1/sales/leads", READ, "List sales leads (limit, cursor; filters status, assignedToId, pipelineStageId, source)")
            .route("POST", "/v1/sales/leads", WRITE, "Create a sales lead")
            .route("GET", "/v1/sales/leads/{id}", READ, "Get a sales lead")
            .route("PATCH", "/v1/sales/leads/{id}", WRITE, "Update a sales lead (status: new -> contacted/qualified/lost, contacted <-> qualified, lost -> new)")
            .route("POST", "/v1/sales/leads/{id}/convert", WRITE, "Convert a lead to a trader")
            .route("GET", "/v1/sales/pipelines", READ, "List pipelines (limit, cursor; filters slug, isDefault)")
            .route("POST", "/v1/sales/pipelines", WRITE, "Create a pipeline with its stages")
            .route("GET", "/v1/sales/activities", READ, "List activities, newest occurredAt first (limit, cursor; filters leadId, traderId, kind)")
            .route("POST", "/v1/sales/activities", WRITE, "Record an activity about a lead and/or a trader")
            .collection(partner_api::COLLECTION, &["status", "lead_application_status", "created_at", "partner_id"])
            .collection(sales::LEADS, &["status", "assignedToId", "pipelineStageId", "source"])
            .collection(sales::PIPELINES, &["slug", "isDefault"])
            .collection(sales::STAGES, &["pipelineId"])
            .collection(sales::pipelines::CLAIMS, &[])
            .collection(sales::ACTIVITIES, &["leadId", "traderId", "kind", "occurredAt"])
            .capability(sdk::Capability::Events)
            .capability(sdk::Capability::CoreRecords)
            .build()
    }

    fn handle(req: Request) -> Result<Response, Problem> {
        Router::new()
            .get("/v1/leads", partner_api::list)
            .post("/v1/leads", partner_api::create)
            .post("/v1/leads/{lead_id}/documents", documents::upload)
            .get("/v1/sales/leads", sales::leads::list)
            .post("/v1/sales/leads", sales::leads::create)
            .get("/v1/sales/leads/{id}", sales::leads::get)
            .patch("/v1/sales/leads/{id}", sales::leads::update)
            .post("/v1/sales/leads/{id}/convert", sales::convert::convert)
            .get("/v1/sales/pipelines", sales::pipelines::list)
            .post("/v1/sales/pipelines", sales::pipelines::create)
            .get("/v1/sales/activities", sales::activities::list)
            .post("/v1/sales/activities", sales::activities::create)
            .dispatch(&req)
    }
}

sdk::export_plugin!(LeadsIntake);
