//! FX rates: a global pool and per-tenant pools, both kept as history. Conversion uses the rate
//! in force at a given time, the tenant's own rate first, then the global one, then the inverse
//! of the opposite pair, and always reports which rate it used.

mod routes;

pub use routes::routes;

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::http::error::ApiError;

pub const GLOBAL: &str = "global";

/// The rate used for a conversion, so every aggregate can say how it was computed.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateUsed {
    pub base: String,
    pub quote: String,
    pub rate: Decimal,
    pub pool: String,
    pub rate_id: Option<String>,
    pub fetched_at: Option<String>,
    pub inverted: bool,
}

/// Decimal places kept for converted amounts before rounding to the currency; rounding is
/// half-even ("banker's") and the residual stays with the house.
const RATE_SCALE: u32 = 10;

async fn newest<'e, E>(
    exec: E,
    pool: &str,
    base: &str,
    quote: &str,
    at: &str,
) -> Result<Option<(String, String, String)>, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT id, rate, fetched_at FROM fx_rates WHERE pool = $1 AND base = $2 AND quote = $3 AND fetched_at <= $4
         ORDER BY fetched_at DESC, id DESC LIMIT 1",
    )
    .bind(pool)
    .bind(base)
    .bind(quote)
    .bind(at)
    .fetch_optional(exec)
    .await?;
    Ok(row)
}

/// The rate from `base` to `quote` in force at `at` for a tenant.
pub async fn rate_at(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    base: &str,
    quote: &str,
    at: &str,
) -> Result<Option<RateUsed>, ApiError> {
    if base == quote {
        return Ok(Some(RateUsed {
            base: base.into(),
            quote: quote.into(),
            rate: Decimal::ONE,
            pool: "identity".into(),
            rate_id: None,
            fetched_at: None,
            inverted: false,
        }));
    }
    for (b, q, inverted) in [(base, quote, false), (quote, base, true)] {
        for p in [tenant_id, GLOBAL] {
            if let Some((id, rate, fetched_at)) = newest(pool, p, b, q, at).await? {
                let r = Decimal::from_str(&rate).map_err(ApiError::internal)?;
                if r.is_zero() {
                    continue;
                }
                let rate = if inverted {
                    (Decimal::ONE / r).round_dp(RATE_SCALE)
                } else {
                    r
                };
                return Ok(Some(RateUsed {
                    base: base.into(),
                    quote: quote.into(),
                    rate,
                    pool: if p == GLOBAL {
                        GLOBAL.into()
                    } else {
                        "tenant".into()
                    },
                    rate_id: Some(id),
                    fetched_at: Some(fetched_at),
                    inverted,
                }));
            }
        }
    }
    Ok(None)
}

/// Converts an amount, rounding half-even to the target currency's precision; `None` when the
/// product is beyond `Decimal`'s range (it cannot be with the bounds rates and amounts have,
/// but the arithmetic is checked all the same).
pub fn convert(amount: Decimal, rate: &RateUsed) -> Option<Decimal> {
    amount.checked_mul(rate.rate).map(|v| {
        v.round_dp_with_strategy(
            crate::ledger::currency::precision(&rate.quote),
            rust_decimal::RoundingStrategy::MidpointNearestEven,
        )
    })
}

/// The bounds of a rate: above 10^-12 and below 10^9, at most 12 decimal places.
pub const MAX_RATE_SCALE: u32 = 12;

/// The fixed mid-2026 starting table for the global pool (USD against the majors, both ways).
pub const DEFAULT_RATES: &[(&str, &str, &str)] = &[
    ("USD", "EUR", "0.9200"),
    ("EUR", "USD", "1.0870"),
    ("USD", "GBP", "0.7850"),
    ("GBP", "USD", "1.2739"),
    ("USD", "JPY", "156.40"),
    ("JPY", "USD", "0.006394"),
    ("USD", "CHF", "0.8950"),
    ("CHF", "USD", "1.1173"),
    ("USD", "CAD", "1.3650"),
    ("CAD", "USD", "0.7326"),
    ("USD", "AUD", "1.5050"),
    ("AUD", "USD", "0.6645"),
    ("USD", "NZD", "1.6400"),
    ("NZD", "USD", "0.6098"),
];
