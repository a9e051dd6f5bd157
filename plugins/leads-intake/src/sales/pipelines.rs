//! `GET/POST /v1/sales/pipelines`: pipelines with ordered stages. Slugs are unique per tenant
//! and at most one pipeline is the default (new leads start in its first stage).

use lumire_plugin_sdk::storage::{self, Op};
use lumire_plugin_sdk::transaction::{self, Expect, Transaction};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::input::Body;
use super::{PIPELINES, STAGES, filter_param, list_params, page};

const MAX_STAGES: usize = 50;

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub is_default: bool,
    /// Ordered by position.
    pub stages: Vec<Stage>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub id: String,
    pub name: String,
    pub position: i64,
    /// Chance of winning a lead in this stage, 0-100.
    pub probability: i64,
}

/// The `pipeline_stages` document: which pipeline a stage belongs to.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRef {
    pub id: String,
    pub pipeline_id: String,
}

/// Claims (`slug:<slug>`, `default`) that keep slugs unique and one default under concurrency.
pub const CLAIMS: &str = "pipeline_claims";
const DEFAULT_CLAIM: &str = "default";

fn slug_taken(slug: &str) -> Problem {
    let mut p = Problem::conflict(
        "slug_taken",
        &format!("A pipeline with the slug {slug:?} exists."),
    );
    p.errors = vec![("slug".into(), "is taken by another pipeline".into())];
    p
}

/// The pipeline of a stage id, if the stage exists.
pub fn stage_pipeline(stage_id: &str) -> Result<Option<String>, Problem> {
    Ok(storage::get::<StageRef>(STAGES, stage_id)?.map(|s| s.pipeline_id))
}

/// The default pipeline's id and first stage, when there is a default pipeline.
pub fn default_first_stage() -> Result<Option<(String, String)>, Problem> {
    let (found, _) = storage::query(PIPELINES)
        .filter("isDefault", Op::Eq, "true")
        .limit(1)
        .fetch::<Pipeline>()?;
    Ok(found
        .into_iter()
        .next()
        .and_then(|p| p.stages.first().map(|s| (p.id.clone(), s.id.clone()))))
}

pub fn list(req: &Request) -> Result<Response, Problem> {
    let p = list_params(req)?;
    let mut q = storage::query(PIPELINES).order_by("id", true);
    if let Some(slug) = filter_param(req, "slug") {
        q = q.filter("slug", Op::Eq, slug);
    }
    if let Some(d) = filter_param(req, "isDefault") {
        if d != "true" && d != "false" {
            return Err(Problem::field("isDefault", "must be true or false"));
        }
        q = q.filter("isDefault", Op::Eq, d);
    }
    page::<Pipeline>(q, p)
}

fn valid_slug(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn stages(b: &mut Body, items: Vec<Value>) -> Vec<Stage> {
    if items.is_empty() || items.len() > MAX_STAGES {
        b.fail("stages", &format!("must hold 1 to {MAX_STAGES} stages"));
        return Vec::new();
    }
    let mut out: Vec<Stage> = Vec::new();
    let mut positions: Vec<i64> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("stages[{i}].{f}");
        let Some(obj) = item.as_object() else {
            b.fail(&format!("stages[{i}]"), "must be an object");
            continue;
        };
        for k in obj.keys() {
            if !["name", "position", "probability"].contains(&k.as_str()) {
                b.fail(&at(k), "is not a known field");
            }
        }
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.trim().chars().count() <= 100 => {
                Some(s.trim().to_string())
            }
            Some(Value::String(_)) => {
                b.fail(&at("name"), "must be 1 to 100 characters");
                None
            }
            None | Some(Value::Null) => {
                b.fail(&at("name"), "is required");
                None
            }
            Some(_) => {
                b.fail(&at("name"), "must be a string");
                None
            }
        };
        let int = |b: &mut Body, f: &str, default: i64, max: i64| match obj.get(f) {
            None | Some(Value::Null) => Some(default),
            Some(v) => match v.as_i64().filter(|n| (0..=max).contains(n)) {
                Some(n) => Some(n),
                None => {
                    b.fail(&at(f), &format!("must be an integer from 0 to {max}"));
                    None
                }
            },
        };
        let position = int(b, "position", i as i64, 10_000);
        let probability = int(b, "probability", 0, 100);
        // Positions are checked across all stages, whatever else is wrong with them.
        if let Some(p) = position {
            if positions.contains(&p) {
                b.fail(&at("position"), "is used by another stage");
                continue;
            }
            positions.push(p);
        }
        if let (Some(name), Some(position), Some(probability)) = (name, position, probability) {
            out.push(Stage {
                id: storage::new_id("stage"),
                name,
                position,
                probability,
            });
        }
    }
    out.sort_by_key(|s| s.position);
    out
}

pub fn create(req: &Request) -> Result<Response, Problem> {
    let mut b = Body::parse(req, &["slug", "name", "isDefault", "stages"])?;
    let slug = b.text("slug", 64);
    let slug = b.required("slug", slug);
    if let Some(s) = &slug
        && !valid_slug(s)
    {
        b.fail(
            "slug",
            "must be at most 64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
        );
    }
    let name = b.text("name", 100);
    let name = b.required("name", name);
    let is_default = b.bool("isDefault").set().unwrap_or(false);
    let items = b.array("stages");
    let stages = match b.required("stages", items) {
        Some(items) => stages(&mut b, items),
        None => Vec::new(),
    };
    b.finish()?;
    let (Some(slug), Some(name)) = (slug, name) else {
        return Err(Problem::internal(
            "pipeline input passed validation incomplete",
        ));
    };

    if storage::count(PIPELINES, &[storage::filter("slug", Op::Eq, &slug)])? > 0 {
        return Err(slug_taken(&slug));
    }
    let now = crate::time::now();
    let pipeline = Pipeline {
        id: storage::new_id("pipeline"),
        slug,
        name,
        is_default,
        stages,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    // Claims make the rules hold under concurrency: the slug's claim is create-only, and the
    // default's claim moves only from the revision read here, so two requests at once cannot
    // both take one slug or both become the default.
    let mut tx = Transaction::new()
        .put(PIPELINES, &pipeline.id, &pipeline, Expect::Absent)
        .put(
            CLAIMS,
            &format!("slug:{}", pipeline.slug),
            &json!({"pipelineId": pipeline.id}),
            Expect::Absent,
        );
    for s in &pipeline.stages {
        let stage = StageRef {
            id: s.id.clone(),
            pipeline_id: pipeline.id.clone(),
        };
        tx = tx.put(STAGES, &s.id, &stage, Expect::Absent);
    }
    if is_default {
        let claim = transaction::get::<Value>(CLAIMS, DEFAULT_CLAIM)?;
        let expect = claim.map_or(Expect::Absent, |(_, r)| Expect::Revision(r));
        tx = tx.put(
            CLAIMS,
            DEFAULT_CLAIM,
            &json!({"pipelineId": pipeline.id}),
            expect,
        );
        // The previous default stops being it in the same transaction.
        let (previous, _) = storage::query(PIPELINES)
            .filter("isDefault", Op::Eq, "true")
            .limit(500)
            .fetch::<Pipeline>()?;
        for mut old in previous {
            old.is_default = false;
            old.updated_at = now.clone();
            tx = tx.put(PIPELINES, &old.id.clone(), &old, Expect::Any);
        }
    }
    match tx.commit() {
        Ok(_) => {}
        Err(transaction::Error::Stale(f)) if f.step == 1 => return Err(slug_taken(&pipeline.slug)),
        Err(e) => return Err(e.into()),
    }
    super::emit(
        "pipeline.created",
        "pipeline",
        &pipeline.id,
        &json!({"id": pipeline.id, "slug": pipeline.slug, "isDefault": pipeline.is_default}),
    );
    Ok(Response::json(201, &pipeline))
}

#[cfg(test)]
mod tests {
    use super::valid_slug;

    #[test]
    fn slugs() {
        assert!(valid_slug("default"));
        assert!(valid_slug("b2b-2026"));
        assert!(!valid_slug("-x"));
        assert!(!valid_slug("Upper"));
        assert!(!valid_slug(""));
    }
}
