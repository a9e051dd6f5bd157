//! Conditions as tenants write them: a Rhai expression (a string, or `{"expr": "..."}`) or the
//! structured form of field comparisons, e.g.
//! `{"trader_country": "DE", "account_balance": {"gte": 10000}, "any": [{..}, {..}]}`.
//! The structured form is turned into a Rhai expression, so both go through the same
//! compile-and-evaluate path and behave the same.

use serde_json::{Map, Value};

use crate::http::error::FieldError;

const OPS: &[&str] = &["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"];

/// What a structured condition may name.
pub enum Fields<'a> {
    /// Plain variables (risk rules: `trader_country`, `account_balance`, ...).
    Flat(&'a [&'a str]),
    /// Dotted paths under these roots (workflows: `event.name`, `trader.country`, ...).
    Paths(&'a [&'a str]),
}

/// The Rhai source of a condition; errors name `field` (e.g. `match.account_balance`).
pub fn to_source(v: Option<&Value>, field: &str, fields: &Fields) -> Result<String, FieldError> {
    match v {
        None | Some(Value::Null) => Ok("true".into()),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(FieldError::new(field, "must not be empty"))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("expr") => match m.get("expr") {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(FieldError::new(
                format!("{field}.expr"),
                "must be a Rhai expression string",
            )),
        },
        Some(Value::Object(m)) => structured(m, field, fields),
        Some(_) => Err(FieldError::new(
            field,
            "must be a Rhai expression string or an object of field comparisons",
        )),
    }
}

fn structured(m: &Map<String, Value>, field: &str, fields: &Fields) -> Result<String, FieldError> {
    let mut parts = Vec::new();
    for (k, v) in m {
        let here = format!("{field}.{k}");
        if k == "any" || k == "all" {
            let Value::Array(items) = v else {
                return Err(FieldError::new(here, "must be an array of conditions"));
            };
            let mut subs = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Object(sub) = item else {
                    return Err(FieldError::new(format!("{here}[{i}]"), "must be an object"));
                };
                subs.push(structured(sub, &format!("{here}[{i}]"), fields)?);
            }
            let joiner = if k == "any" { " || " } else { " && " };
            if subs.is_empty() {
                parts.push(if k == "any" { "false" } else { "true" }.to_string());
            } else {
                parts.push(format!("({})", subs.join(joiner)));
            }
            continue;
        }
        let path = path_expr(k, fields).ok_or_else(|| FieldError::new(&here, unknown(fields)))?;
        match v {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(FieldError::new(
                        here,
                        "must compare with at least one operator",
                    ));
                }
                for (op, lit) in ops {
                    let at = format!("{here}.{op}");
                    parts.push(comparison(&path, op, lit, &at)?);
                }
            }
            lit => parts.push(comparison(&path, "eq", lit, &here)?),
        }
    }
    if parts.is_empty() {
        return Ok("true".into());
    }
    Ok(parts.join(" && "))
}

fn unknown(fields: &Fields) -> String {
    match fields {
        Fields::Flat(names) => format!(
            "is not a known field (one of: {}, any, all)",
            names.join(", ")
        ),
        Fields::Paths(roots) => format!(
            "is not a known field (a path under one of: {}; or any, all)",
            roots.join(", ")
        ),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_expr(k: &str, fields: &Fields) -> Option<String> {
    match fields {
        Fields::Flat(names) => names.contains(&k).then(|| k.to_string()),
        Fields::Paths(roots) => {
            let segs: Vec<&str> = k.split('.').collect();
            if !roots.contains(&segs[0]) || !segs.iter().all(|s| is_ident(s)) {
                return None;
            }
            // `?.` keeps a missing object (no trader on this event) from being an error.
            Some(segs.join("?."))
        }
    }
}

fn comparison(path: &str, op: &str, lit: &Value, at: &str) -> Result<String, FieldError> {
    let l = literal(lit).ok_or_else(|| {
        FieldError::new(
            at,
            "must be a string, number, boolean, null or array of them",
        )
    })?;
    let is_array = lit.is_array();
    Ok(match op {
        "eq" if !is_array => format!("({path} == {l})"),
        "ne" if !is_array => format!("({path} != {l})"),
        // A missing value never satisfies an ordering comparison (instead of failing the run).
        "gt" | "gte" | "lt" | "lte" if lit.is_number() || lit.is_string() => {
            let sym = match op {
                "gt" => ">",
                "gte" => ">=",
                "lt" => "<",
                _ => "<=",
            };
            format!("({path} != () && {path} {sym} {l})")
        }
        "in" if is_array => format!("({path} in {l})"),
        "not_in" if is_array => format!("!({path} in {l})"),
        "in" | "not_in" => return Err(FieldError::new(at, "must be an array")),
        "gt" | "gte" | "lt" | "lte" => {
            return Err(FieldError::new(at, "must be a number or string"));
        }
        "eq" | "ne" => return Err(FieldError::new(at, "must not be an array (use in)")),
        _ => {
            return Err(FieldError::new(
                at,
                format!("is not a known operator (one of: {})", OPS.join(", ")),
            ));
        }
    })
}

fn literal(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("()".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else {
                let f = n.as_f64().filter(|f| f.is_finite())?;
                let s = format!("{f}");
                Some(if s.contains('.') { s } else { format!("{s}.0") })
            }
        }
        Value::String(s) => Some(string_literal(s)),
        Value::Array(items) => {
            let lits: Option<Vec<String>> = items
                .iter()
                .map(|i| {
                    if i.is_array() || i.is_object() {
                        None
                    } else {
                        literal(i)
                    }
                })
                .collect();
            Some(format!("[{}]", lits?.join(", ")))
        }
        Value::Object(_) => None,
    }
}

/// A Rhai string literal that means exactly `s` (no interpolation: plain double quotes).
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RISK: Fields = Fields::Flat(&["trader_country", "account_balance", "is_demo"]);

    #[test]
    fn structured_becomes_an_expression() {
        let v = json!({"trader_country": {"in": ["DE", "AT"]}, "account_balance": {"gte": 1000}});
        let s = to_source(Some(&v), "match", &RISK).unwrap();
        assert_eq!(
            s,
            "(account_balance != () && account_balance >= 1000) && (trader_country in [\"DE\", \"AT\"])"
        );
        assert_eq!(to_source(Some(&json!({})), "match", &RISK).unwrap(), "true");
    }

    #[test]
    fn unknown_fields_and_operators_name_the_field() {
        let e = to_source(Some(&json!({"balance": 1})), "match", &RISK).unwrap_err();
        assert_eq!(e.field, "match.balance");
        let e = to_source(Some(&json!({"is_demo": {"like": 1}})), "match", &RISK).unwrap_err();
        assert_eq!(e.field, "match.is_demo.like");
    }

    #[test]
    fn strings_are_quoted_safely() {
        assert_eq!(string_literal("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn paths_use_safe_navigation() {
        let f = Fields::Paths(&["event", "trader"]);
        let s = to_source(Some(&json!({"trader.country": "DE"})), "condition", &f).unwrap();
        assert_eq!(s, "(trader?.country == \"DE\")");
    }
}
