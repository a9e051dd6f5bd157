//! The standard instrument pack of `POST /v1/symbols/seed-defaults`: FX majors and crosses,
//! metals, index CFDs, crypto and energies, with the contract sizes and pip sizes the market
//! uses (a standard FX lot is 100,000 units of the base currency; a pip is 0.0001, or 0.01 for
//! yen pairs; gold trades in lots of 100 troy ounces, silver 5,000; crude oil 1,000 barrels;
//! natural gas 10,000 MMBtu; index and crypto CFDs one unit of the index or coin per lot).

use super::model::{SymbolRow, blank};

struct Spec {
    symbol: &'static str,
    name: &'static str,
    category: &'static str,
    base: Option<&'static str>,
    quote: &'static str,
    contract: &'static str,
    pip: &'static str,
    leverage: i64,
}

const fn fx(symbol: &'static str, name: &'static str, pip: &'static str) -> Spec {
    Spec {
        symbol,
        name,
        category: "fx",
        base: None,
        quote: "",
        contract: "100000",
        pip,
        leverage: 100,
    }
}

/// `terms` is (contract size, pip size, default leverage).
const fn other(
    symbol: &'static str,
    name: &'static str,
    category: &'static str,
    base: Option<&'static str>,
    quote: &'static str,
    terms: (&'static str, &'static str, i64),
) -> Spec {
    let (contract, pip, leverage) = terms;
    Spec {
        symbol,
        name,
        category,
        base,
        quote,
        contract,
        pip,
        leverage,
    }
}

const PACK: &[Spec] = &[
    fx("EURUSD", "Euro vs US Dollar", "0.0001"),
    fx("GBPUSD", "British Pound vs US Dollar", "0.0001"),
    fx("USDJPY", "US Dollar vs Japanese Yen", "0.01"),
    fx("USDCHF", "US Dollar vs Swiss Franc", "0.0001"),
    fx("AUDUSD", "Australian Dollar vs US Dollar", "0.0001"),
    fx("USDCAD", "US Dollar vs Canadian Dollar", "0.0001"),
    fx("NZDUSD", "New Zealand Dollar vs US Dollar", "0.0001"),
    fx("EURGBP", "Euro vs British Pound", "0.0001"),
    fx("EURJPY", "Euro vs Japanese Yen", "0.01"),
    fx("GBPJPY", "British Pound vs Japanese Yen", "0.01"),
    fx("EURCHF", "Euro vs Swiss Franc", "0.0001"),
    fx("AUDJPY", "Australian Dollar vs Japanese Yen", "0.01"),
    other(
        "XAUUSD",
        "Gold vs US Dollar",
        "metals",
        Some("XAU"),
        "USD",
        ("100", "0.01", 50),
    ),
    other(
        "XAGUSD",
        "Silver vs US Dollar",
        "metals",
        Some("XAG"),
        "USD",
        ("5000", "0.001", 50),
    ),
    other(
        "XPTUSD",
        "Platinum vs US Dollar",
        "metals",
        Some("XPT"),
        "USD",
        ("100", "0.01", 20),
    ),
    other(
        "US30",
        "Dow Jones 30",
        "indices",
        None,
        "USD",
        ("1", "1", 50),
    ),
    other("US500", "S&P 500", "indices", None, "USD", ("1", "0.1", 50)),
    other(
        "NAS100",
        "Nasdaq 100",
        "indices",
        None,
        "USD",
        ("1", "0.1", 50),
    ),
    other("GER40", "DAX 40", "indices", None, "EUR", ("1", "0.1", 50)),
    other(
        "UK100",
        "FTSE 100",
        "indices",
        None,
        "GBP",
        ("1", "0.1", 50),
    ),
    other(
        "JPN225",
        "Nikkei 225",
        "indices",
        None,
        "JPY",
        ("1", "1", 50),
    ),
    other(
        "BTCUSD",
        "Bitcoin vs US Dollar",
        "crypto",
        Some("BTC"),
        "USD",
        ("1", "1", 10),
    ),
    other(
        "ETHUSD",
        "Ethereum vs US Dollar",
        "crypto",
        Some("ETH"),
        "USD",
        ("1", "0.1", 10),
    ),
    other(
        "LTCUSD",
        "Litecoin vs US Dollar",
        "crypto",
        Some("LTC"),
        "USD",
        ("1", "0.01", 5),
    ),
    other(
        "XRPUSD",
        "XRP vs US Dollar",
        "crypto",
        Some("XRP"),
        "USD",
        ("1", "0.0001", 5),
    ),
    other(
        "SOLUSD",
        "Solana vs US Dollar",
        "crypto",
        Some("SOL"),
        "USD",
        ("1", "0.01", 5),
    ),
    other(
        "USOIL",
        "WTI Crude Oil",
        "energies",
        None,
        "USD",
        ("1000", "0.01", 50),
    ),
    other(
        "UKOIL",
        "Brent Crude Oil",
        "energies",
        None,
        "USD",
        ("1000", "0.01", 50),
    ),
    other(
        "NGAS",
        "Natural Gas",
        "energies",
        None,
        "USD",
        ("10000", "0.001", 20),
    ),
];

pub fn pack() -> Vec<SymbolRow> {
    PACK.iter()
        .map(|p| {
            let (base, quote) = if p.category == "fx" {
                (
                    Some(p.symbol[..3].to_string()),
                    Some(p.symbol[3..].to_string()),
                )
            } else {
                (p.base.map(str::to_string), Some(p.quote.to_string()))
            };
            SymbolRow {
                symbol: p.symbol.into(),
                display_name: Some(p.name.into()),
                category: p.category.into(),
                base_currency: base,
                quote_currency: quote,
                contract_size: p.contract.into(),
                pip_size: p.pip.into(),
                max_leverage: p.leverage,
                ..blank()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validate::Validator;

    #[test]
    fn every_default_passes_the_same_validation_as_the_api() {
        let pack = pack();
        assert!(pack.len() >= 25);
        for mut s in pack {
            let mut v = Validator::new();
            super::super::model::validate(&mut v, &mut s);
            assert!(v.finish().is_ok(), "{}", s.symbol);
        }
        let jpy = pack_symbol("USDJPY");
        assert_eq!(
            (jpy.pip_size.as_str(), jpy.quote_currency.as_deref()),
            ("0.01", Some("JPY"))
        );
        assert_eq!(pack_symbol("XAUUSD").contract_size, "100");
    }

    fn pack_symbol(s: &str) -> SymbolRow {
        pack().into_iter().find(|x| x.symbol == s).unwrap()
    }
}
