//! The segment filter: a small, validated JSON object compiled to parameterised SQL over the
//! tenant's live traders. Keys are ANDed; the values of one list key are ORed.
//!
//! ```json
//! {"country": ["DE", "FR"], "kycStatus": ["approved"], "status": ["active"],
//!  "segments": ["vip"], "tags": ["<tag id>"], "source": ["portal"],
//!  "assignedToId": ["<user id>"],
//!  "createdAfter": "2026-01-01T00:00:00.000Z", "createdBefore": "2026-07-01T00:00:00.000Z"}
//! ```

use serde_json::{Map, Value};

use crate::db::SqlBuilder;
use crate::http::error::FieldError;
use crate::http::validate::is_country;
use crate::traders::model::KYC_STATUSES;
use crate::util::parse_time;

pub const TRADER_STATUSES: &[&str] = &["active", "suspended"];
const LIST_KEYS: &[&str] = &[
    "country",
    "kycStatus",
    "status",
    "segments",
    "tags",
    "source",
    "assignedToId",
];
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentFilter {
    pub country: Vec<String>,
    pub kyc_status: Vec<String>,
    pub status: Vec<String>,
    pub segments: Vec<String>,
    pub tags: Vec<String>,
    pub source: Vec<String>,
    pub assigned_to_id: Vec<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

fn string_list(key: &str, v: &Value, errors: &mut Vec<FieldError>) -> Vec<String> {
    let field = format!("filter.{key}");
    let Some(items) = v.as_array() else {
        errors.push(FieldError::new(field, "must be an array of strings"));
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_VALUES {
        errors.push(FieldError::new(
            field,
            format!("must hold 1 to {MAX_VALUES} values"),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match item.as_str().map(str::trim) {
            Some(s) if !s.is_empty() && s.chars().count() <= 64 => {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
            _ => {
                errors.push(FieldError::new(
                    field,
                    "values must be strings of 1 to 64 characters",
                ));
                return Vec::new();
            }
        }
    }
    out
}

impl SegmentFilter {
    /// Parses and validates a filter; every problem names its key as `filter.<key>`.
    pub fn parse(v: &Value) -> Result<SegmentFilter, Vec<FieldError>> {
        let Some(obj) = v.as_object() else {
            return Err(vec![FieldError::new("filter", "must be an object")]);
        };
        let mut f = SegmentFilter::default();
        let mut errors = Vec::new();
        for (key, value) in obj {
            let field = format!("filter.{key}");
            if LIST_KEYS.contains(&key.as_str()) {
                let list = string_list(key, value, &mut errors);
                let allowed: Option<&[&str]> = match key.as_str() {
                    "kycStatus" => Some(KYC_STATUSES),
                    "status" => Some(TRADER_STATUSES),
                    _ => None,
                };
                if let Some(allowed) = allowed
                    && list.iter().any(|s| !allowed.contains(&s.as_str()))
                {
                    errors.push(FieldError::new(
                        &field,
                        format!("values must be among: {}", allowed.join(", ")),
                    ));
                }
                if key == "country" && list.iter().any(|c| !is_country(c)) {
                    errors.push(FieldError::new(
                        &field,
                        "values must be ISO 3166-1 alpha-2 codes such as GB",
                    ));
                }
                match key.as_str() {
                    "country" => f.country = list,
                    "kycStatus" => f.kyc_status = list,
                    "status" => f.status = list,
                    "segments" => f.segments = list,
                    "tags" => f.tags = list,
                    "source" => f.source = list,
                    _ => f.assigned_to_id = list,
                }
            } else if key == "createdAfter" || key == "createdBefore" {
                let t = value.as_str().filter(|s| parse_time(s).is_some());
                if t.is_none() {
                    errors.push(FieldError::new(&field, "must be an RFC 3339 time"));
                }
                let t = t.map(str::to_string);
                if key == "createdAfter" {
                    f.created_after = t;
                } else {
                    f.created_before = t;
                }
            } else {
                errors.push(FieldError::new(
                    &field,
                    "is not a filter key (country, kycStatus, status, segments, tags, source, assignedToId, createdAfter, createdBefore)",
                ));
            }
        }
        if let (Some(a), Some(b)) = (&f.created_after, &f.created_before)
            && parse_time(a) >= parse_time(b)
        {
            errors.push(FieldError::new(
                "filter.createdBefore",
                "must be later than createdAfter",
            ));
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(errors)
        }
    }

    /// The canonical JSON stored for the filter (only the keys in use).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (key, list) in [
            ("country", &self.country),
            ("kycStatus", &self.kyc_status),
            ("status", &self.status),
            ("segments", &self.segments),
            ("tags", &self.tags),
            ("source", &self.source),
            ("assignedToId", &self.assigned_to_id),
        ] {
            if !list.is_empty() {
                m.insert(key.into(), Value::from(list.clone()));
            }
        }
        if let Some(t) = &self.created_after {
            m.insert("createdAfter".into(), Value::from(t.clone()));
        }
        if let Some(t) = &self.created_before {
            m.insert("createdBefore".into(), Value::from(t.clone()));
        }
        Value::Object(m)
    }

    /// Appends the filter's conditions (each starting with ` AND `) to a query over `traders`
    /// that already restricts `traders.tenant_id`. Every value is a bound parameter.
    pub fn push_conditions(&self, b: &mut SqlBuilder) {
        for (column, list) in [
            ("traders.country", &self.country),
            ("traders.kyc_status", &self.kyc_status),
            ("traders.status", &self.status),
            ("traders.source", &self.source),
            ("traders.assigned_to_id", &self.assigned_to_id),
        ] {
            if !list.is_empty() {
                b.push(&format!(" AND {column} IN ("));
                push_list(b, list);
                b.push(")");
            }
        }
        if !self.segments.is_empty() {
            // Trader segments are a JSON array of strings; match the quoted element literally.
            b.push(" AND (");
            for (i, s) in self.segments.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                b.push("traders.segments LIKE ").text(format!(
                    "%{}%",
                    escape_like(&Value::from(s.as_str()).to_string())
                ));
                b.push(" ESCAPE '\\'");
            }
            b.push(")");
        }
        if !self.tags.is_empty() {
            b.push(
                " AND EXISTS (SELECT 1 FROM trader_tags tt WHERE tt.tenant_id = traders.tenant_id
                  AND tt.trader_id = traders.id AND tt.tag_id IN (",
            );
            push_list(b, &self.tags);
            b.push("))");
        }
        if let Some(t) = &self.created_after {
            b.push(" AND traders.created_at >= ")
                .text(normalise_time(t));
        }
        if let Some(t) = &self.created_before {
            b.push(" AND traders.created_at < ").text(normalise_time(t));
        }
    }
}

fn push_list(b: &mut SqlBuilder, list: &[String]) {
    for (i, v) in list.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.text(v.clone());
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Stored times are UTC with milliseconds; compare against the same form so text order holds
/// for inputs given with an offset or without milliseconds.
fn normalise_time(t: &str) -> String {
    parse_time(t)
        .map(crate::util::fmt_time)
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_validates_and_compiles() {
        let f =
            SegmentFilter::parse(&json!({"country": ["DE", "FR"], "segments": ["v_p"]})).unwrap();
        let mut b = SqlBuilder::new("SELECT id FROM traders WHERE traders.tenant_id = ");
        b.text("t");
        f.push_conditions(&mut b);
        assert!(
            b.sql().contains("traders.country IN ($2, $3)"),
            "{}",
            b.sql()
        );
        assert!(b.sql().contains("LIKE $4 ESCAPE"), "{}", b.sql());
        assert!(!b.sql().contains("DE"));
        let errs =
            SegmentFilter::parse(&json!({"colour": ["x"], "kycStatus": ["maybe"]})).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"filter.colour") && fields.contains(&"filter.kycStatus"));
        assert!(SegmentFilter::parse(&json!([])).is_err());
        assert!(SegmentFilter::parse(&json!({"country": []})).is_err());
        assert_eq!(escape_like("a%b_c"), "a\\%b\\_c");
    }
}
