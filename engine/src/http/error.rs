//! The one place where errors become RFC 9457 `application/problem+json` responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::request_id;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// Where in a submitted script the problem is (script syntax errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// A field error pointing into a script.
    pub fn at(
        field: impl Into<String>,
        message: impl Into<String>,
        line: Option<usize>,
        column: Option<usize>,
    ) -> Self {
        FieldError {
            line,
            column,
            ..FieldError::new(field, message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 403 with a code of its own naming why (`session_required`, ...).
    #[error("forbidden ({code}): {detail}")]
    ForbiddenBecause { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("bad request: {detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("conflict: {detail}")]
    Conflict { code: &'static str, detail: String },
    /// A unique constraint refused the write: 409 `duplicate`, naming the fields it covers.
    #[error("duplicate: {}", fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "))]
    Duplicate { fields: Vec<FieldError> },
    #[error("unprocessable: {detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    #[error("request body too large")]
    PayloadTooLarge,
    /// A plugin failed (trap, deadline, memory, broken response); the detail names the
    /// plugin, its version and the export.
    #[error("plugin failed: {detail}")]
    Plugin {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A compare-and-set that lost: another request changed the record (`what`, "trader")
    /// between this one's read and its write, so this one wrote nothing (409
    /// `concurrent_update`).
    pub fn lost_race(what: &str) -> Self {
        ApiError::conflict(
            "concurrent_update",
            format!("Another request changed this {what} first; nothing was changed."),
        )
    }

    /// Whether this is a lost compare-and-set ([`ApiError::lost_race`] or a state machine's),
    /// which a retry may get past, unlike a refused move.
    pub fn is_lost_race(&self) -> bool {
        matches!(
            self,
            ApiError::Conflict {
                code: "concurrent_update",
                ..
            }
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    /// A 400 that is not about one field (a bad signature, a missing configuration).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The problem's `detail`, as a client would read it.
    pub fn detail(&self) -> String {
        self.parts().3
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            ApiError::Validation(errs) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid request",
                errs.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::Unauthorized(code) => (
                StatusCode::UNAUTHORIZED,
                code,
                "Authentication required",
                "A valid session or API key is required.".into(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden", d.clone()),
            ApiError::ForbiddenBecause { code, detail } => {
                (StatusCode::FORBIDDEN, code, "Forbidden", detail.clone())
            }
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                format!("{what} not found"),
            ),
            ApiError::BadRequest { code, detail } => {
                (StatusCode::BAD_REQUEST, code, "Bad request", detail.clone())
            }
            ApiError::Conflict { code, detail } => {
                (StatusCode::CONFLICT, code, "Conflict", detail.clone())
            }
            ApiError::Duplicate { fields } => (
                StatusCode::CONFLICT,
                "duplicate",
                "Conflict",
                if fields.is_empty() {
                    "A record with the same unique values already exists.".into()
                } else {
                    format!(
                        "A record with the same {} already exists.",
                        fields
                            .iter()
                            .map(|f| f.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ),
            ApiError::Unprocessable { code, detail } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Unprocessable request",
                detail.clone(),
            ),
            ApiError::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                format!("Try again in {retry_after} seconds."),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "The request body exceeds the configured limit.".into(),
            ),
            ApiError::Plugin {
                status,
                code,
                detail,
            } => (*status, code, "Plugin failed", detail.clone()),
            ApiError::Db(_) | ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
                "An unexpected error occurred; quote the request id when reporting it.".into(),
            ),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Unique constraints are the database's answer to a duplicate (two requests racing
        // past a handler's own check, say): 409 naming the fields the constraint covers.
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            let columns = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail().map(pg_key_columns))
                .unwrap_or_else(|| sqlite_columns(db.message()));
            let fields = columns
                .iter()
                .filter(|c| c.as_str() != "tenant_id")
                .map(|c| FieldError::new(field_name(c), "is already taken by another record"))
                .collect();
            return ApiError::Duplicate { fields };
        }
        ApiError::Db(e)
    }
}

/// The ledger's errors as problems: the only place they meet HTTP.
impl From<crate::ledger::LedgerError> for ApiError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        match e {
            crate::ledger::LedgerError::InsufficientFunds(_) => ApiError::conflict(
                "insufficient_funds",
                "The balance does not cover this amount.",
            ),
            crate::ledger::LedgerError::AlreadyReversed => {
                ApiError::conflict("already_reversed", "This entry has already been reversed.")
            }
            crate::ledger::LedgerError::Concurrent(_) => ApiError::conflict(
                "concurrent_update",
                "The balance changed while this request ran; retry it.",
            ),
            crate::ledger::LedgerError::EntryNotFound => ApiError::NotFound("journal entry"),
            crate::ledger::LedgerError::UnknownAccount(_) => ApiError::NotFound("ledger account"),
            crate::ledger::LedgerError::Precision { .. } => {
                ApiError::field("amount", e.to_string())
            }
            crate::ledger::LedgerError::OutOfRange(_) => ApiError::Unprocessable {
                code: "amount_out_of_range",
                detail: format!(
                    "The amount, or the balance it would make, is beyond what the ledger keeps (below 10^{} per posting, 10^{} per balance); nothing was written.",
                    crate::money::MAX_INTEGER_DIGITS,
                    crate::ledger::MAX_BALANCE_DIGITS
                ),
            },
            crate::ledger::LedgerError::Db(d) => ApiError::from(d),
            other => ApiError::internal(other),
        }
    }
}

/// The columns of PostgreSQL's `Key (tenant_id, lower(email))=(...) already exists.`
fn pg_key_columns(detail: &str) -> Vec<String> {
    let Some(inside) = detail
        .strip_prefix("Key (")
        .and_then(|r| r.split(")=(").next())
    else {
        return Vec::new();
    };
    inside
        .split(", ")
        .map(|c| {
            // An expression index: `lower(email)` concerns `email`.
            let c = c.trim();
            match (c.find('('), c.rfind(')')) {
                (Some(a), Some(b)) if a < b => c[a + 1..b].to_string(),
                _ => c.to_string(),
            }
        })
        .collect()
}

/// The columns of SQLite's `UNIQUE constraint failed: traders.tenant_id, traders.email_lower`
/// (an expression index is named `index '<name>'` instead: no column then).
fn sqlite_columns(message: &str) -> Vec<String> {
    message
        .split_once("failed: ")
        .map(|(_, cols)| {
            cols.split(", ")
                .filter(|c| !c.starts_with("index "))
                .map(|c| c.rsplit('.').next().unwrap_or(c).trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The API's name of a column: camelCase, and `email_lower` is `email`.
fn field_name(column: &str) -> String {
    let column = column.strip_suffix("_lower").unwrap_or(column);
    let mut out = String::with_capacity(column.len());
    let mut upper = false;
    for ch in column.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        match &self {
            ApiError::Db(e) => tracing::error!(error = %e, "database error"),
            ApiError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => tracing::debug!(%code, %detail, "request refused"),
        }
        let errors = match &self {
            ApiError::Validation(errs) => Some(errs.as_slice()),
            ApiError::Duplicate { fields } if !fields.is_empty() => Some(fields.as_slice()),
            _ => None,
        };
        problem_response(status, code, title, &detail, errors, &self)
    }
}

fn problem_response(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    errors: Option<&[FieldError]>,
    err: &ApiError,
) -> Response {
    let body = Problem {
        kind: format!("https://lumirecrm.dev/problems/{}", code.replace('_', "-")),
        title,
        status: status.as_u16(),
        detail,
        code,
        errors,
        request_id: request_id::current(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = (status, json).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let ApiError::RateLimited { retry_after } = err
        && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_their_fields() {
        assert_eq!(
            pg_key_columns("Key (tenant_id, email_lower)=(t1, a@b.example) already exists."),
            vec!["tenant_id", "email_lower"]
        );
        assert_eq!(
            pg_key_columns("Key (tenant_id, lower(name))=(t1, vip) already exists."),
            vec!["tenant_id", "name"]
        );
        assert_eq!(
            sqlite_columns("UNIQUE constraint failed: traders.tenant_id, traders.email_lower"),
            vec!["tenant_id", "email_lower"]
        );
        assert!(sqlite_columns("UNIQUE constraint failed: index 'x'").is_empty());
        assert_eq!(field_name("email_lower"), "email");
        assert_eq!(field_name("account_number"), "accountNumber");
    }
}
