//! Currency precision: how many decimal places an amount in each currency may carry.

/// Minor-unit digits per ISO 4217 (and the usual precision of common crypto assets).
pub fn precision(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "HUF" | "XAF" | "XOF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        "USDT" | "USDC" => 6,
        "BTC" | "LTC" | "BCH" => 8,
        "ETH" => 18,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_precisions() {
        assert_eq!(super::precision("USD"), 2);
        assert_eq!(super::precision("JPY"), 0);
        assert_eq!(super::precision("KWD"), 3);
        assert_eq!(super::precision("BTC"), 8);
    }
}

/// Parses a strictly positive amount in `currency`: a plain decimal string (`"1250.50"`: no
/// exponent, sign or separators) with no more decimal places than the currency allows.
pub fn parse_amount(s: &str, currency: &str) -> Result<rust_decimal::Decimal, String> {
    use std::str::FromStr;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err("must be a decimal string such as \"1250.50\"".into());
    }
    if let Err(e) = crate::money::canonical(s) {
        return Err(e.message());
    }
    let scale = precision(currency);
    let d = rust_decimal::Decimal::from_str(s).map_err(|_| "is not a valid amount".to_string())?;
    if d.normalize().scale() > scale {
        return Err(format!(
            "{currency} amounts have at most {scale} decimal places"
        ));
    }
    if d <= rust_decimal::Decimal::ZERO {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod parse_tests {
    use super::parse_amount;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("10.50", "USD").unwrap().to_string(), "10.50");
        assert!(parse_amount("10.505", "USD").is_err());
        assert!(parse_amount("10.5", "JPY").is_err());
        assert!(parse_amount("1e3", "USD").is_err());
        assert!(parse_amount("-5", "USD").is_err());
        assert!(parse_amount("0", "USD").is_err());
        assert!(parse_amount("1.", "USD").is_err());
        assert!(parse_amount("0.00000001", "BTC").is_ok());
        assert!(parse_amount("00010", "USD").is_err());
        assert!(parse_amount("1000000000000000", "USD").is_err());
        assert!(parse_amount("999999999999999.99", "USD").is_ok());
    }
}
