//! The routes of installed feature plugins in the engine's OpenAPI document: each becomes an
//! operation tagged after its first path segment (`/v1/sales/leads` → `sales`), with the
//! plugin, its version and the roles in its description.

use serde_json::{Value, json};

use super::Installed;
use super::manifest::RouteSpec;

/// `getSalesLeadsId` for `GET /v1/sales/leads/{id}`, the reference's naming.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in path.trim_start_matches("/v1/").split('/') {
        let word = seg.trim_start_matches('{').trim_end_matches('}');
        for part in word.split(['-', '_']) {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                id.extend(first.to_uppercase());
                id.push_str(chars.as_str());
            }
        }
    }
    id
}

fn operation(p: &Installed, r: &RouteSpec) -> Value {
    let tag = r
        .path
        .trim_start_matches("/v1/")
        .split('/')
        .next()
        .unwrap_or("plugins")
        .to_string();
    let mut roles: Vec<&str> = r.roles.iter().map(|x| x.as_str()).collect();
    if r.partners {
        roles.push("partner (HTTP Basic)");
    }
    let params: Vec<Value> = crate::http::openapi::path_params(&r.path)
        .into_iter()
        .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let mut security = vec![json!({"session": []}), json!({"apiKey": []})];
    if r.partners {
        security.push(json!({"partnerBasic": []}));
    }
    let success = match r.method.as_str() {
        "POST" => "201",
        "DELETE" => "204",
        _ => "200",
    };
    json!({
        "operationId": operation_id(&r.method, &r.path),
        "tags": [tag],
        "summary": r.summary,
        "description": format!(
            "Served by plugin {} {} (enabled per tenant with the feature flag `{}`). Roles: {}.",
            p.manifest.name,
            p.manifest.version,
            super::flag_name(&p.manifest.name),
            if roles.is_empty() { "every team role".to_string() } else { roles.join(", ") }
        ),
        "parameters": params,
        "security": security,
        "responses": {
            success: {"description": "Success"},
            "default": {"description": "Problem (RFC 9457)", "content": {"application/problem+json": {}}},
        },
    })
}

/// Adds every route of the installed feature plugins to an OpenAPI document (as JSON).
pub fn add_routes(doc: &mut Value, installed: &[std::sync::Arc<Installed>]) {
    for p in installed {
        for r in &p.manifest.routes {
            let method = r.method.to_ascii_lowercase();
            let path_item = &mut doc["paths"][r.path.as_str()];
            if path_item.get(&method).is_none() {
                path_item[method.as_str()] = operation(p, r);
            }
        }
    }
    if installed
        .iter()
        .any(|p| p.manifest.routes.iter().any(|r| r.partners))
    {
        doc["components"]["securitySchemes"]["partnerBasic"] =
            json!({"type": "http", "scheme": "basic"});
    }
}

#[cfg(test)]
mod tests {
    use super::operation_id;

    #[test]
    fn ids_follow_the_reference() {
        assert_eq!(
            operation_id("GET", "/v1/sales/leads/{id}"),
            "getSalesLeadsId"
        );
        assert_eq!(
            operation_id("POST", "/v1/leads/{lead_id}/documents"),
            "postLeadsLeadIdDocuments"
        );
    }
}
