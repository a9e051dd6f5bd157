//! Money in the API: decimal strings (`"1250.50"`) parsed into `rust_decimal::Decimal`, never
//! floating point, always beside a currency code. Domain rules only: the HTTP layer turns a
//! [`MoneyError`] into a field error (`http::validate::Validator::money`).

use std::str::FromStr;

use rust_decimal::Decimal;

/// Enough for fiat cents and crypto satoshis; more digits would be noise from a float somewhere.
pub const MAX_SCALE: u32 = 8;

/// Digits an amount's integer part may have: every amount the API takes is below 10^15 units
/// of its currency (a quadrillion), in any currency. Sums of such amounts stay far inside
/// `Decimal`'s range (about 7.9 × 10^28), and the ledger adds with checked arithmetic anyway.
pub const MAX_INTEGER_DIGITS: usize = 15;

/// Whether a decimal string is in the canonical form the API takes: `-?digits(.digits)?`, no
/// leading zeros (`0.5` yes, `00.5` and `010` no), no sign on zero's behalf, at most
/// [`MAX_INTEGER_DIGITS`] integer digits. The error says what is wrong.
pub fn canonical(s: &str) -> Result<(), MoneyError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(MoneyError::NotDecimal);
    }
    if int.len() > 1 && int.starts_with('0') {
        return Err(MoneyError::NotCanonical);
    }
    if int.len() > MAX_INTEGER_DIGITS {
        return Err(MoneyError::TooLarge);
    }
    Ok(())
}

/// Why a money string was refused, phrased for a field error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    NotDecimal,
    NotCanonical,
    TooPrecise,
    TooLarge,
    NotPositive,
}

impl MoneyError {
    pub fn message(self) -> String {
        match self {
            MoneyError::NotDecimal => {
                "must be a decimal string such as \"1250.50\" (no exponent, no thousands separator)"
                    .into()
            }
            MoneyError::NotCanonical => {
                "must be written without leading zeros (\"10.50\", not \"010.50\")".into()
            }
            MoneyError::TooPrecise => format!("at most {MAX_SCALE} decimal places"),
            MoneyError::TooLarge => {
                format!(
                    "must be below 10^{MAX_INTEGER_DIGITS} (at most {MAX_INTEGER_DIGITS} integer digits)"
                )
            }
            MoneyError::NotPositive => "must be greater than zero".into(),
        }
    }
}

/// Parses a signed decimal string. Only `-?digits(.digits)?` is accepted: `Decimal::from_str`
/// alone would also take forms such as `1_000` that no client should send as money.
pub fn parse(s: &str) -> Result<Decimal, MoneyError> {
    canonical(s)?;
    let frac = s.split_once('.').map(|(_, f)| f);
    if frac.is_some_and(|f| f.len() > MAX_SCALE as usize) {
        return Err(MoneyError::TooPrecise);
    }
    Decimal::from_str(s).map_err(|_| MoneyError::NotDecimal)
}

/// Parses an amount that must be strictly positive (direction is carried by the kind).
pub fn parse_positive(s: &str) -> Result<Decimal, MoneyError> {
    let d = parse(s)?;
    if d <= Decimal::ZERO {
        return Err(MoneyError::NotPositive);
    }
    Ok(d)
}

/// The stored and returned form: the value with the scale the client sent (`"10.50"` stays
/// `"10.50"`), and no negative zero.
pub fn to_text(d: Decimal) -> String {
    if d.is_zero() {
        let mut z = Decimal::ZERO;
        let _ = z.set_scale(d.scale());
        return z.to_string();
    }
    d.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_decimals_only() {
        assert_eq!(parse("1250.50").map(to_text), Ok("1250.50".into()));
        assert_eq!(parse("-3").map(to_text), Ok("-3".into()));
        assert_eq!(parse("-0.00").map(to_text), Ok("0.00".into()));
        // Leading zeros are not silently dropped: the client meant something else.
        assert_eq!(parse("007.5"), Err(MoneyError::NotCanonical));
        for bad in [
            "", "-", ".5", "5.", "1e5", "1_000", "1,000.00", "+5", " 5", "abc", "NaN", "1.2.3",
        ] {
            assert_eq!(parse(bad), Err(MoneyError::NotDecimal), "{bad:?}");
        }
        assert_eq!(parse("0.123456789"), Err(MoneyError::TooPrecise));
        assert_eq!(
            parse("99999999999999999999999999999999"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn positive_amounts() {
        assert!(parse_positive("0.01").is_ok());
        assert_eq!(parse_positive("0"), Err(MoneyError::NotPositive));
        assert_eq!(parse_positive("-1"), Err(MoneyError::NotPositive));
    }

    #[test]
    fn only_canonical_bounded_decimals() {
        assert!(parse("1250.50").is_ok() && parse("0.5").is_ok() && parse("-0.5").is_ok());
        assert_eq!(parse(" 10"), Err(MoneyError::NotDecimal));
        assert_eq!(parse("00010"), Err(MoneyError::NotCanonical));
        assert_eq!(parse("-01"), Err(MoneyError::NotCanonical));
        assert_eq!(parse("1e3"), Err(MoneyError::NotDecimal));
        assert!(parse("999999999999999.99").is_ok());
        assert_eq!(parse("1000000000000000"), Err(MoneyError::TooLarge));
        assert_eq!(
            parse("79228162514264337593543950335"),
            Err(MoneyError::TooLarge)
        );
    }
}
