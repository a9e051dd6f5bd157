//! `POST /v1/leads/{lead_id}/documents` (the engine also routes the partner API's
//! `POST /lead/{lead_id}/documents` here): one multipart file, stored in the engine's object
//! storage, its metadata kept on the lead.

use lumire_plugin_sdk::files;
use lumire_plugin_sdk::storage;
use lumire_plugin_sdk::transaction::{Expect, Transaction};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde_json::{Value, json};

use crate::partner_api::{COLLECTION, visible_lead_versioned};
use crate::upload::{self, PART};

/// Documents one lead may hold (each upload adds a small entry to the lead's document).
const MAX_DOCUMENTS: usize = 100;

fn files_problem(e: files::Error) -> Problem {
    match e {
        files::Error::TooLarge => Problem::field(PART, "must be at most 10 MiB"),
        files::Error::Invalid(msg) => Problem::field(PART, &msg),
        files::Error::Unavailable(msg) => {
            lumire_plugin_sdk::log::warn(&format!("object storage unavailable: {msg}"));
            Problem::new(
                503,
                "unavailable",
                "The document store is unavailable; retry later.",
            )
        }
        files::Error::Denied => Problem::internal("files capability denied"),
    }
}

pub fn upload(req: &Request) -> Result<Response, Problem> {
    let lead_id = req.param("lead_id").unwrap_or_default();
    let (mut lead, revision) =
        visible_lead_versioned(req, lead_id)?.ok_or_else(|| Problem::not_found("lead"))?;
    let count = lead
        .get("documents")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if count >= MAX_DOCUMENTS {
        return Err(Problem::conflict(
            "too_many_documents",
            &format!("A lead holds at most {MAX_DOCUMENTS} documents."),
        ));
    }
    let file = upload::parse(req.header("content-type"), req.body())?;
    let stored =
        files::put(&file.filename, &file.content_type, &file.content).map_err(files_problem)?;
    let id = storage::new_id("file");
    let now = crate::time::now();
    let meta = json!({
        "id": id,
        "filename": file.filename,
        "size": stored.size,
        "content_type": stored.content_type,
        "sha256": stored.sha256,
        "key": stored.key,
        "created_at": now,
    });
    match lead.get_mut("documents").and_then(Value::as_array_mut) {
        Some(docs) => docs.push(meta),
        None => lead["documents"] = json!([meta]),
    }
    lead["updated_at"] = json!(now);
    // Two uploads to one lead at once: the second sees a stale revision and answers 409
    // rather than dropping the first one's metadata.
    Transaction::new()
        .put(COLLECTION, lead_id, &lead, Expect::Revision(revision))
        .commit()?;
    crate::sales::emit(
        "lead.document_uploaded",
        "lead",
        lead_id,
        &json!({"id": lead_id, "fileId": id, "filename": file.filename, "size": stored.size}),
    );
    Ok(Response::json(
        201,
        &json!({"success": true, "file": {"id": id, "filename": file.filename, "size": stored.size}}),
    ))
}
