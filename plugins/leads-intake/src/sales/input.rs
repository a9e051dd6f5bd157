//! Reading a JSON body field by field: unknown fields and every bad value are collected and
//! answered together as one 400 naming each field.

use lumire_plugin_sdk::{Problem, Request};
use serde_json::{Map, Value};

/// A field of a body: not sent, sent as `null`, or sent with a valid value.
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    /// The value, if one was sent.
    pub fn set(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    /// Applies a PATCH: absent keeps `target`, `null` clears it, a value replaces it.
    pub fn apply(self, target: &mut Option<T>) {
        match self {
            Field::Absent => {}
            Field::Null => *target = None,
            Field::Set(v) => *target = Some(v),
        }
    }
}

pub struct Body {
    map: Map<String, Value>,
    errors: Vec<(String, String)>,
}

impl Body {
    /// Parses the request's JSON object, refusing fields not in `known`.
    pub fn parse(req: &Request, known: &[&str]) -> Result<Body, Problem> {
        let value: Value = req.json()?;
        let Value::Object(map) = value else {
            return Err(Problem::field("body", "must be a JSON object"));
        };
        let errors = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| (k.clone(), "is not a known field".to_string()))
            .collect();
        Ok(Body { map, errors })
    }

    /// Records an error about `field` (reported by [`Body::finish`]).
    pub fn fail(&mut self, field: &str, message: &str) {
        self.errors.push((field.into(), message.into()));
    }

    fn get(&self, key: &str) -> Field<&Value> {
        match self.map.get(key) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => Field::Set(v),
        }
    }

    /// A string of 1 to `max` characters (trimmed).
    pub fn text(&mut self, key: &str, max: usize) -> Field<String> {
        match self.get(key) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(Value::String(s)) => {
                let s = s.trim();
                let n = s.chars().count();
                if n == 0 {
                    self.fail(key, "cannot be empty");
                    Field::Absent
                } else if n > max {
                    self.fail(key, &format!("must be at most {max} characters"));
                    Field::Absent
                } else {
                    Field::Set(s.to_string())
                }
            }
            Field::Set(_) => {
                self.fail(key, "must be a string");
                Field::Absent
            }
        }
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, key: &str, allowed: &[&str]) -> Field<String> {
        let f = self.text(key, 64);
        if let Field::Set(v) = &f
            && !allowed.contains(&v.as_str())
        {
            self.fail(key, &format!("must be one of {}", allowed.join(", ")));
            return Field::Absent;
        }
        f
    }

    /// An e-mail address (kept as sent, trimmed).
    pub fn email(&mut self, key: &str) -> Field<String> {
        let f = self.text(key, 254);
        if let Field::Set(v) = &f
            && !crate::sales::valid_email(v)
        {
            self.fail(key, "must be an e-mail address");
            return Field::Absent;
        }
        f
    }

    /// An ISO 3166-1 alpha-2 country code, upper-cased.
    pub fn country(&mut self, key: &str) -> Field<String> {
        match self.text(key, 2) {
            Field::Set(v) => match crate::sales::country(&v) {
                Some(c) => Field::Set(c),
                None => {
                    self.fail(
                        key,
                        "must be an ISO 3166-1 alpha-2 country code (DE, AU, ...)",
                    );
                    Field::Absent
                }
            },
            other => other,
        }
    }

    /// An integer from `min` to `max`.
    pub fn int(&mut self, key: &str, min: i64, max: i64) -> Field<i64> {
        match self.get(key) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(v) => match v.as_i64().filter(|n| (min..=max).contains(n)) {
                Some(n) => Field::Set(n),
                None => {
                    self.fail(key, &format!("must be an integer from {min} to {max}"));
                    Field::Absent
                }
            },
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, key: &str) -> Field<bool> {
        match self.get(key) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(Value::Bool(b)) => Field::Set(*b),
            Field::Set(_) => {
                self.fail(key, "must be true or false");
                Field::Absent
            }
        }
    }

    /// A JSON object of at most `max_bytes` as text.
    pub fn object(&mut self, key: &str, max_bytes: usize) -> Field<Map<String, Value>> {
        match self.get(key) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(Value::Object(m)) => {
                if Value::Object(m.clone()).to_string().len() > max_bytes {
                    self.fail(key, &format!("must be at most {max_bytes} bytes of JSON"));
                    Field::Absent
                } else {
                    Field::Set(m.clone())
                }
            }
            Field::Set(_) => {
                self.fail(key, "must be an object");
                Field::Absent
            }
        }
    }

    /// An array (its items are checked by the caller).
    pub fn array(&mut self, key: &str) -> Field<Vec<Value>> {
        match self.get(key) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(Value::Array(a)) => Field::Set(a.clone()),
            Field::Set(_) => {
                self.fail(key, "must be an array");
                Field::Absent
            }
        }
    }

    /// An RFC 3339 date-time, normalised to UTC with milliseconds.
    pub fn time(&mut self, key: &str) -> Field<String> {
        match self.text(key, 64) {
            Field::Set(v) => match crate::time::normalize(&v) {
                Some(t) => Field::Set(t),
                None => {
                    self.fail(
                        key,
                        "must be an RFC 3339 date-time (2026-05-23T12:18:22.181Z)",
                    );
                    Field::Absent
                }
            },
            other => other,
        }
    }

    /// Records "is required" unless `f` holds a value; gives the value.
    pub fn required<T>(&mut self, key: &str, f: Field<T>) -> Option<T> {
        match f {
            Field::Set(v) => Some(v),
            Field::Null => {
                self.fail(key, "is required");
                None
            }
            Field::Absent => {
                if !self.errors.iter().any(|(k, _)| k == key) {
                    self.fail(key, "is required");
                }
                None
            }
        }
    }

    /// Records "cannot be null" when `f` is `null`.
    pub fn not_null<T>(&mut self, key: &str, f: Field<T>) -> Field<T> {
        if matches!(f, Field::Null) {
            self.fail(key, "cannot be null");
            return Field::Absent;
        }
        f
    }

    /// The 400 naming every failed field, if any.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::fields(self.errors))
        }
    }
}
