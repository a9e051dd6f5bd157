//! `GET/POST /v1/sales/leads`, `GET/PATCH /v1/sales/leads/{id}`: the sales team's leads, with
//! a status that moves along legal transitions and an optional pipeline stage.

use lumire_plugin_sdk::storage::{self, Op};
use lumire_plugin_sdk::transaction::{self, Expect, Transaction};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::input::{Body, Field};
use super::{LEADS, filter_param, list_params, page, path_id};

pub const STATUSES: &[&str] = &["new", "contacted", "qualified", "converted", "lost"];

/// Where a lead may go from `from` by PATCH. `converted` is reached only through
/// `POST /v1/sales/leads/{id}/convert` and is final; a lost lead is reopened as `new`.
pub fn can_move(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            ("new", "contacted" | "qualified" | "lost")
                | ("contacted", "qualified" | "lost")
                | ("qualified", "contacted" | "lost")
                | ("lost", "new")
        )
}

const METADATA_MAX_BYTES: usize = 16 * 1024;

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SalesLead {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub source: Option<String>,
    pub assigned_to_id: Option<String>,
    pub score: i64,
    pub metadata: Map<String, Value>,
    pub status: String,
    pub pipeline_id: Option<String>,
    pub pipeline_stage_id: Option<String>,
    /// Set by `convert`.
    pub trader_id: Option<String>,
    pub converted_at: Option<String>,
    /// The partner credential that submitted the lead through the partner API.
    pub partner_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl SalesLead {
    /// A new lead in status `new`, in no pipeline yet.
    pub fn new(id: String, email: String, now: &str) -> SalesLead {
        SalesLead {
            id,
            email,
            phone: None,
            first_name: None,
            last_name: None,
            country: None,
            source: None,
            assigned_to_id: None,
            score: 0,
            metadata: Map::new(),
            status: "new".into(),
            pipeline_id: None,
            pipeline_stage_id: None,
            trader_id: None,
            converted_at: None,
            partner_id: None,
            created_at: now.into(),
            updated_at: now.into(),
        }
    }

    /// Puts the lead in the first stage of the default pipeline, when there is one.
    pub fn enter_default_pipeline(&mut self) -> Result<(), Problem> {
        if let Some((pipeline, stage)) = super::pipelines::default_first_stage()? {
            self.pipeline_id = Some(pipeline);
            self.pipeline_stage_id = Some(stage);
        }
        Ok(())
    }
}

/// The lead with this id and its revision, or a 404: a [`SalesLead`] to change, or a
/// [`StoredLead`] to answer.
pub fn load<T: DeserializeOwned>(id: &str) -> Result<(T, u64), Problem> {
    transaction::get::<T>(LEADS, id)?.ok_or_else(|| Problem::not_found("lead"))
}

pub fn list(req: &Request) -> Result<Response, Problem> {
    let p = list_params(req)?;
    let mut q = storage::query(LEADS).order_by("id", true);
    if let Some(s) = filter_param(req, "status") {
        if !STATUSES.contains(&s) {
            return Err(Problem::field(
                "status",
                &format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
        q = q.filter("status", Op::Eq, s);
    }
    for f in ["assignedToId", "pipelineStageId", "source"] {
        if let Some(v) = filter_param(req, f) {
            q = q.filter(f, Op::Eq, v);
        }
    }
    page::<StoredLead>(q, p)
}

/// A stored lead is its API representation: every write stores a [`SalesLead`], and reads
/// answer it as stored ([`RawValue`]: checked to be JSON, not parsed into fields and written
/// again). A change to `SalesLead`'s fields must rewrite the stored leads, or read them as
/// `SalesLead` again.
type StoredLead = Box<RawValue>;

/// `lead` serialised once, to store and to answer with the same text.
fn stored(lead: &SalesLead) -> Result<StoredLead, Problem> {
    serde_json::value::to_raw_value(lead)
        .map_err(|e| Problem::internal(&format!("lead {}: {e}", lead.id)))
}

pub fn get(req: &Request) -> Result<Response, Problem> {
    let (lead, _) = transaction::get_text(LEADS, path_id(req, "id"))?
        .ok_or_else(|| Problem::not_found("lead"))?;
    Ok(Response::json_text(200, lead))
}

const FIELDS: &[&str] = &[
    "email",
    "phone",
    "firstName",
    "lastName",
    "country",
    "source",
    "assignedToId",
    "score",
    "metadata",
];

/// The fields POST and PATCH share, applied to `lead`.
fn apply_common(b: &mut Body, lead: &mut SalesLead) {
    b.text("phone", 32).apply(&mut lead.phone);
    b.text("firstName", 100).apply(&mut lead.first_name);
    b.text("lastName", 100).apply(&mut lead.last_name);
    b.country("country").apply(&mut lead.country);
    b.text("source", 64).apply(&mut lead.source);
    b.text("assignedToId", 128).apply(&mut lead.assigned_to_id);
    let score = b.int("score", 0, 100);
    if let Field::Set(s) = b.not_null("score", score) {
        lead.score = s;
    }
    match b.object("metadata", METADATA_MAX_BYTES) {
        Field::Set(m) => lead.metadata = m,
        Field::Null => lead.metadata = Map::new(),
        Field::Absent => {}
    }
}

pub fn create(req: &Request) -> Result<Response, Problem> {
    let mut b = Body::parse(req, FIELDS)?;
    let email = b.email("email");
    let email = b.required("email", email);
    let now = crate::time::now();
    let mut lead = SalesLead::new(storage::new_id("lead"), email.unwrap_or_default(), &now);
    apply_common(&mut b, &mut lead);
    b.finish()?;
    lead.enter_default_pipeline()?;
    let text = stored(&lead)?;
    storage::put(LEADS, &lead.id, &text)?;
    super::emit(
        "lead.created",
        "lead",
        &lead.id,
        &json!({"id": lead.id, "status": lead.status, "source": lead.source}),
    );
    Ok(Response::json(201, &text))
}

pub fn update(req: &Request) -> Result<Response, Problem> {
    let (mut lead, revision) = load::<SalesLead>(path_id(req, "id"))?;
    let before = lead.status.clone();
    let mut fields = FIELDS.to_vec();
    fields.extend(["status", "pipelineStageId"]);
    let mut b = Body::parse(req, &fields)?;
    let email = b.email("email");
    if let Field::Set(e) = b.not_null("email", email) {
        lead.email = e;
    }
    apply_common(&mut b, &mut lead);
    let status = b.one_of("status", STATUSES);
    let status = b.not_null("status", status).set();
    match b.text("pipelineStageId", 128) {
        Field::Set(stage) => match super::pipelines::stage_pipeline(&stage)? {
            Some(pipeline) => {
                lead.pipeline_id = Some(pipeline);
                lead.pipeline_stage_id = Some(stage);
            }
            None => b.fail(
                "pipelineStageId",
                "is not a stage of a pipeline of this tenant",
            ),
        },
        Field::Null => {
            lead.pipeline_id = None;
            lead.pipeline_stage_id = None;
        }
        Field::Absent => {}
    }
    b.finish()?;
    if let Some(to) = status {
        if !can_move(&lead.status, &to) {
            let hint = if to == "converted" {
                " (convert it with POST /v1/sales/leads/{id}/convert)"
            } else {
                ""
            };
            let mut p = Problem::conflict(
                "illegal_status_change",
                &format!("A lead cannot move from {} to {to}{hint}.", lead.status),
            );
            p.errors = vec![(
                "status".into(),
                format!("cannot change from {}", lead.status),
            )];
            return Err(p);
        }
        lead.status = to;
    }
    lead.updated_at = crate::time::now();
    // Only over the revision read above: a concurrent change (a conversion, another PATCH)
    // is never overwritten; this request answers 409 instead.
    let text = stored(&lead)?;
    Transaction::new()
        .put(LEADS, &lead.id, &text, Expect::Revision(revision))
        .commit()?;
    let mut payload = json!({"id": lead.id, "status": lead.status});
    if before != lead.status {
        payload["previousStatus"] = json!(before);
    }
    super::emit("lead.updated", "lead", &lead.id, &payload);
    Ok(Response::json(200, &text))
}

#[cfg(test)]
mod tests {
    use super::can_move;

    #[test]
    fn transitions() {
        assert!(can_move("new", "contacted"));
        assert!(can_move("contacted", "qualified"));
        assert!(can_move("qualified", "lost"));
        assert!(can_move("lost", "new"));
        assert!(can_move("new", "new"));
        assert!(!can_move("new", "converted"));
        assert!(!can_move("converted", "new"));
        assert!(!can_move("lost", "qualified"));
        assert!(!can_move("contacted", "new"));
    }
}
