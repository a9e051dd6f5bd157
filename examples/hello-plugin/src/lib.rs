//! The guide's example (docs/plugins.md): notes stored per tenant in the host's document store.

use lumire_plugin_sdk::{self as sdk, Plugin, Problem, Request, Response, manifest, storage};
use serde_json::json;

struct Notes;

impl Plugin for Notes {
    fn manifest() -> sdk::Manifest {
        manifest("notes", env!("CARGO_PKG_VERSION"))
            .route(
                "GET",
                "/v1/notes/{id}",
                &["owner", "admin", "support"],
                "Read a note",
            )
            .route("POST", "/v1/notes", &["owner", "admin"], "Write a note")
            .collection("notes", &["author"]) // also asks for the storage capability
            .event("lead.created") // from the leads-intake plugin, through the outbox
            .build()
    }

    fn handle(req: Request) -> Result<Response, Problem> {
        match (req.method(), req.route()) {
            ("GET", "/v1/notes/{id}") => {
                let id = req.param("id").unwrap_or_default();
                let note: serde_json::Value =
                    storage::get("notes", id)?.ok_or_else(|| Problem::not_found("note"))?;
                Ok(Response::json(200, &note))
            }
            ("POST", "/v1/notes") => {
                let body: serde_json::Value = req.json()?;
                let id = storage::new_id("note");
                let note = json!({"id": id, "author": req.actor_id(), "text": body["text"]});
                storage::put("notes", &id, &note)?;
                Ok(Response::json(201, &note))
            }
            _ => Err(Problem::not_found("route")),
        }
    }

    fn on_event(event: sdk::Event) -> Result<(), String> {
        if event.name == "lead.created" {
            let id = storage::new_id("note");
            let text = format!("New lead {}", event.resource_id);
            let note = json!({"id": id, "author": "system", "text": text});
            storage::put("notes", &id, &note).map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }
}

sdk::export_plugin!(Notes);
