//! Printable payment documents: the invoice of a settled deposit and a trader's monthly
//! statement, both laid out by [`crate::pdf`] with the tenant's name and brand colour.

pub mod invoice;
pub mod statement;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;

/// The tenant's display name and brand colour (`branding.primaryColor`).
pub struct Brand {
    pub name: String,
    pub color: Option<String>,
}

pub async fn brand<'e, E>(exec: E, tenant_id: &str) -> ApiResult<Brand>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT name, branding FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(exec)
            .await?;
    let (name, branding) = row.unwrap_or_default();
    let branding = crate::util::parse_json(&branding);
    let color = ["primaryColor", "primary_color", "color"]
        .iter()
        .find_map(|k| branding[*k].as_str().map(str::to_string));
    Ok(Brand { name, color })
}

/// The client's name as printed: first and last name, else the e-mail address.
pub fn client_name(first: Option<&str>, last: Option<&str>, email: &str) -> String {
    let name = [first, last]
        .iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        email.to_string()
    } else {
        name
    }
}

/// The first 10 characters of an RFC 3339 time (its date).
pub fn date_of(t: &str) -> String {
    t.chars().take(10).collect()
}

pub fn pdf_response(bytes: Vec<u8>, filename: &str) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    r
}
