//! Field validation that collects every problem of a request body before answering 400.

use super::error::{ApiError, FieldError};

#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// A date of birth: `YYYY-MM-DD`, from 1900-01-01 to today (UTC).
    pub fn date_of_birth(&mut self, field: &str, value: Option<&str>) {
        let Some(d) = value else { return };
        match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(date) if d.len() == 10 => {
                let earliest = chrono::NaiveDate::from_ymd_opt(1900, 1, 1);
                let today = chrono::Utc::now().date_naive();
                if earliest.is_some_and(|e| date < e) || date > today {
                    self.fail(field, "must be between 1900-01-01 and today");
                }
            }
            _ => self.fail(field, "must be a date YYYY-MM-DD"),
        }
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Adds a ready-made error (e.g. one pointing at a line of a script).
    pub fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.fail(field, message);
        }
    }

    pub fn required<'a>(&mut self, field: &str, v: Option<&'a str>) -> Option<&'a str> {
        match v.map(str::trim) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                self.fail(field, "is required");
                None
            }
        }
    }

    pub fn max_len(&mut self, field: &str, v: Option<&str>, max: usize) {
        if v.is_some_and(|s| s.chars().count() > max) {
            self.fail(field, format!("must be at most {max} characters"));
        }
    }

    pub fn email(&mut self, field: &str, v: Option<&str>) {
        if let Some(s) = v
            && !is_email(s)
        {
            self.fail(field, "must be an e-mail address");
        }
    }

    pub fn one_of(&mut self, field: &str, v: Option<&str>, allowed: &[&str]) {
        if let Some(s) = v
            && !allowed.contains(&s)
        {
            self.fail(field, format!("must be one of: {}", allowed.join(", ")));
        }
    }

    pub fn password(&mut self, field: &str, v: &str) {
        let n = v.chars().count();
        if n < 10 {
            self.fail(field, "must be at least 10 characters");
        } else if n > 256 {
            self.fail(field, "must be at most 256 characters");
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    if s.len() > 254 || s.chars().any(char::is_whitespace) {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    }
}

/// ISO 3166-1 alpha-2 shape check (two ASCII capital letters).
pub fn is_country(s: &str) -> bool {
    s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase())
}

/// ISO 4217 shape check (three ASCII capital letters), plus common crypto tickers up to 5.
pub fn is_currency(s: &str) -> bool {
    (3..=5).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Validates an optional money field, recording a field error; returns the canonical text.
pub fn money(
    v: &mut Validator,
    field: &str,
    value: Option<&str>,
    positive: bool,
) -> Option<String> {
    let s = value?;
    let parsed = if positive {
        crate::money::parse_positive(s)
    } else {
        crate::money::parse(s)
    };
    match parsed {
        Ok(d) => Some(crate::money::to_text(d)),
        Err(e) => {
            v.fail(field, e.message());
            None
        }
    }
}

pub fn currency(v: &mut Validator, field: &str, value: Option<&str>) {
    if let Some(c) = value {
        v.check(
            is_currency(c),
            field,
            "must be a currency code of 3-5 capital letters or digits, such as USD or USDT",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_email("a@b.co"));
        assert!(!is_email("a@b"));
        assert!(!is_email("ab.co"));
        assert!(!is_email("a b@c.de"));
    }
}
