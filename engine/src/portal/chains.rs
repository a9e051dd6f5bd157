//! The blockchains the portal accepts for crypto deposits and withdrawal addresses, each with
//! the stablecoin it settles in and the shape of its addresses.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddressFormat {
    /// `0x` followed by 40 hex digits (EVM chains); stored lower-case, as EVM addresses are
    /// case-insensitive apart from the optional checksum casing.
    Evm,
    /// Base58check starting with `T`, 34 characters; case-sensitive.
    Tron,
}

#[derive(Clone, Copy, Debug)]
pub struct Chain {
    pub code: &'static str,
    pub currency: &'static str,
    pub format: AddressFormat,
}

pub const CHAINS: &[Chain] = &[
    Chain {
        code: "BSC",
        currency: "USDT",
        format: AddressFormat::Evm,
    },
    Chain {
        code: "ETH",
        currency: "USDT",
        format: AddressFormat::Evm,
    },
    Chain {
        code: "TRON",
        currency: "USDT",
        format: AddressFormat::Tron,
    },
    Chain {
        code: "POLYGON",
        currency: "USDT",
        format: AddressFormat::Evm,
    },
    Chain {
        code: "BASE",
        currency: "USDC",
        format: AddressFormat::Evm,
    },
];

/// Finds a chain by code, ignoring case.
pub fn find(code: &str) -> Option<Chain> {
    CHAINS
        .iter()
        .copied()
        .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
}

pub fn codes() -> Vec<&'static str> {
    CHAINS.iter().map(|c| c.code).collect()
}

/// The address in its stored form, or `None` when it does not fit the chain.
pub fn normalise_address(chain: Chain, address: &str) -> Option<String> {
    let a = address.trim();
    match chain.format {
        AddressFormat::Evm => {
            let hex = a.strip_prefix("0x").or_else(|| a.strip_prefix("0X"))?;
            (hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| format!("0x{}", hex.to_ascii_lowercase()))
        }
        AddressFormat::Tron => {
            const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
            (a.len() == 34 && a.starts_with('T') && a.chars().all(|c| BASE58.contains(c)))
                .then(|| a.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let bsc = find("bsc").unwrap();
        assert_eq!(
            normalise_address(bsc, "0xAbCdEf0123456789abcdef0123456789ABCDEF01").as_deref(),
            Some("0xabcdef0123456789abcdef0123456789abcdef01")
        );
        assert!(normalise_address(bsc, "0x123").is_none());
        let tron = find("TRON").unwrap();
        assert!(normalise_address(tron, "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8").is_some());
        assert!(normalise_address(tron, "TJRabPrwbZy45sbavfcjinPJC18kjpRTv0").is_none());
        assert!(find("DOGE").is_none());
    }
}
