//! Workflows: react to outbox events. A workflow has a trigger (an event name such as
//! `trader.created`), a condition (structured field comparisons or a Rhai expression, compiled
//! on save) and a list of actions. The worker (`run_workflows_once`, driven by the job loop)
//! evaluates the condition off the async threads and carries out the actions inside the tenant;
//! every run is recorded with its input, decision, actions, error and duration.

mod actions;
mod handlers;
mod runner;

pub use runner::{EventRow, MAX_CHAIN_DEPTH, event_json, run_workflows_once};

use crate::auth::roles::Role::{self, *};
use crate::http::api::{Api, Op};

const WF_WRITE: &[Role] = &[Owner, Admin];
const WF_READ: &[Role] = &[Owner, Admin, Compliance];

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/workflows", "getWorkflows", "workflows")
            .summary("List workflows (newest first; filter triggerType).")
            .staff(WF_READ),
        handlers::list,
    );
    api.add(
        Op::post("/v1/workflows", "postWorkflows", "workflows")
            .summary("Create a workflow. triggerType: an event name (trader.created, deposit.settled, kyc.approved, custom.*, ...). condition: structured comparisons on event.*, payload.*, trader.* or a Rhai expression (true → the actions; an array of actions → those). actions: add_tag, remove_tag, add_segment, remove_segment, assign, set_trader_field, emit_event, send_email, call_webhook, create_ticket (subject, body, priority, assignedToId: a support ticket about the event's trader).")
            .staff(WF_WRITE)
            .body(r#"{"name":"Welcome German traders","triggerType":"trader.created","condition":{"trader.country":"DE"},"actions":[{"type":"add_tag","tagId":"01JD0000000000000000000000"},{"type":"send_email","subject":"Willkommen {{firstName}}","body":"Hallo {{firstName}}, welcome aboard.","template":"welcome_de"}],"isActive":true}"#),
        handlers::create,
    );
    api.add(
        Op::delete("/v1/workflows/{id}", "deleteWorkflowsId", "workflows")
            .summary("Delete a workflow (soft: its runs stay on record).")
            .staff(WF_WRITE),
        handlers::delete,
    );
    api.add(
        Op::get("/v1/workflows/{id}/runs", "getWorkflowsIdRuns", "workflows")
            .summary("List a workflow's runs, newest first: input, decision, actions taken, error, duration.")
            .staff(WF_READ),
        handlers::runs,
    );
    api.add(
        Op::post("/v1/workflows/{id}/dry-run", "postWorkflowsIdDryRun", "workflows")
            .summary("Evaluate a workflow against a sample event and return what it would do, without doing it: the actions it would take (a create_ticket shows the ticket it would open, its subject and body filled in for the sample's trader), none of them carried out.")
            .action()
            .staff(WF_READ)
            .body(r#"{"event":{"name":"trader.created","resourceType":"trader","resourceId":"01JD0000000000000000000000","payload":{"country":"DE"}}}"#),
        handlers::dry_run,
    );
}
