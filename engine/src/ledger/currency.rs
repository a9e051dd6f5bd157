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
