//! A symbol as stored and shown, the request body of create and update, and the one validation
//! both go through: an update is merged into the current symbol and the result is checked whole,
//! so no combination of partial updates can leave, say, `min_lot` above `max_lot`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::http::patch::Patch;
use crate::http::validate::Validator;

pub const CATEGORIES: &[&str] = &[
    "fx",
    "metals",
    "indices",
    "crypto",
    "energies",
    "commodities",
    "stocks",
];

pub const COLUMNS: &str = "id, symbol, display_name, category, base_currency, quote_currency, contract_size, pip_size, markup_pips, commission_per_lot, swap_long, swap_short, min_lot, max_lot, lot_step, max_leverage, margin_percent, is_active, sort_order, badge, created_at, updated_at";

#[derive(sqlx::FromRow, Serialize, Clone, Debug, Default)]
pub struct SymbolRow {
    pub id: String,
    pub symbol: String,
    pub display_name: Option<String>,
    pub category: String,
    pub base_currency: Option<String>,
    pub quote_currency: Option<String>,
    pub contract_size: String,
    pub pip_size: String,
    pub markup_pips: String,
    pub commission_per_lot: String,
    pub swap_long: String,
    pub swap_short: String,
    pub min_lot: String,
    pub max_lot: String,
    pub lot_step: String,
    pub max_leverage: i64,
    pub margin_percent: Option<String>,
    #[serde(serialize_with = "as_bool")]
    pub is_active: i64,
    pub sort_order: i64,
    pub badge: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn as_bool<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

/// Create and update bodies (the reference's field names). Every field may be absent; `null`
/// clears the optional ones.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SymbolBody {
    #[serde(default)]
    pub symbol: Patch<String>,
    #[serde(default)]
    pub display_name: Patch<String>,
    #[serde(default)]
    pub category: Patch<String>,
    #[serde(default)]
    pub base_currency: Patch<String>,
    #[serde(default)]
    pub quote_currency: Patch<String>,
    #[serde(default)]
    pub contract_size: Patch<String>,
    #[serde(default)]
    pub pip_size: Patch<String>,
    #[serde(default)]
    pub markup_pips: Patch<String>,
    #[serde(default)]
    pub commission_per_lot: Patch<String>,
    #[serde(default)]
    pub swap_long: Patch<String>,
    #[serde(default)]
    pub swap_short: Patch<String>,
    #[serde(default)]
    pub min_lot: Patch<String>,
    #[serde(default)]
    pub max_lot: Patch<String>,
    #[serde(default)]
    pub lot_step: Patch<String>,
    #[serde(default)]
    pub max_leverage: Patch<i64>,
    #[serde(default)]
    pub margin_percent: Patch<String>,
    #[serde(default)]
    pub is_active: Patch<bool>,
    #[serde(default)]
    pub sort_order: Patch<i64>,
    #[serde(default)]
    pub badge: Patch<String>,
}

/// The terms a new symbol starts with when the body leaves them out.
pub fn blank() -> SymbolRow {
    SymbolRow {
        markup_pips: "0".into(),
        commission_per_lot: "0".into(),
        swap_long: "0".into(),
        swap_short: "0".into(),
        min_lot: "0.01".into(),
        max_lot: "100".into(),
        lot_step: "0.01".into(),
        max_leverage: 100,
        is_active: 1,
        ..SymbolRow::default()
    }
}

/// Required fields cannot be cleared: `null` on them is a field error.
fn required(v: &mut Validator, field: &str, p: Patch<String>, cur: &mut String) {
    match p {
        Patch::Missing => {}
        Patch::Null => v.fail(field, "cannot be null"),
        Patch::Value(s) => *cur = s.trim().to_string(),
    }
}

fn optional(p: Patch<String>, cur: &mut Option<String>) {
    *cur = p
        .apply(cur.take())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
}

/// Merges `b` into `cur`; validation happens afterwards in [`validate`].
pub fn merge(v: &mut Validator, mut cur: SymbolRow, b: SymbolBody) -> SymbolRow {
    required(v, "symbol", b.symbol, &mut cur.symbol);
    cur.symbol = cur.symbol.to_uppercase();
    required(v, "category", b.category, &mut cur.category);
    for (field, p, slot) in [
        ("contract_size", b.contract_size, &mut cur.contract_size),
        ("pip_size", b.pip_size, &mut cur.pip_size),
        ("markup_pips", b.markup_pips, &mut cur.markup_pips),
        (
            "commission_per_lot",
            b.commission_per_lot,
            &mut cur.commission_per_lot,
        ),
        ("swap_long", b.swap_long, &mut cur.swap_long),
        ("swap_short", b.swap_short, &mut cur.swap_short),
        ("min_lot", b.min_lot, &mut cur.min_lot),
        ("max_lot", b.max_lot, &mut cur.max_lot),
        ("lot_step", b.lot_step, &mut cur.lot_step),
    ] {
        required(v, field, p, slot);
    }
    optional(b.display_name, &mut cur.display_name);
    optional(b.base_currency, &mut cur.base_currency);
    optional(b.quote_currency, &mut cur.quote_currency);
    optional(b.margin_percent, &mut cur.margin_percent);
    optional(b.badge, &mut cur.badge);
    cur.base_currency = cur.base_currency.map(|c| c.to_uppercase());
    cur.quote_currency = cur.quote_currency.map(|c| c.to_uppercase());
    match b.max_leverage {
        Patch::Null => v.fail("max_leverage", "cannot be null"),
        p => cur.max_leverage = p.value().copied().unwrap_or(cur.max_leverage),
    }
    match b.sort_order {
        Patch::Null => v.fail("sort_order", "cannot be null"),
        p => cur.sort_order = p.value().copied().unwrap_or(cur.sort_order),
    }
    match b.is_active {
        Patch::Null => v.fail("is_active", "cannot be null"),
        p => cur.is_active = p.value().map(|a| i64::from(*a)).unwrap_or(cur.is_active),
    }
    cur
}

/// Parses a decimal term, normalising it (`"1.50"` stays exact, `"1e3"` is refused).
fn decimal(
    v: &mut Validator,
    field: &str,
    s: &mut String,
    positive: bool,
    signed: bool,
) -> Option<Decimal> {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    let d = match s.parse::<Decimal>() {
        Ok(d) if plain && d.scale() <= 10 => d,
        _ => {
            v.fail(
                field,
                "must be a decimal number as a string, at most 10 decimal places",
            );
            return None;
        }
    };
    if positive && d <= Decimal::ZERO {
        v.fail(field, "must be greater than zero");
        return None;
    }
    if !signed && d < Decimal::ZERO {
        v.fail(field, "must not be negative");
        return None;
    }
    *s = d.normalize().to_string();
    Some(d)
}

pub fn validate(v: &mut Validator, s: &mut SymbolRow) {
    let symbol_ok = !s.symbol.is_empty()
        && s.symbol.len() <= 32
        && s.symbol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '#' | '/'));
    if s.symbol.is_empty() {
        v.fail("symbol", "is required");
    } else if !symbol_ok {
        v.fail("symbol", "must be 1-32 letters, digits or . _ - # /");
    }
    if s.category.is_empty() {
        v.fail("category", "is required");
    } else {
        v.one_of("category", Some(&s.category), CATEGORIES);
    }
    v.max_len("display_name", s.display_name.as_deref(), 100);
    v.max_len("badge", s.badge.as_deref(), 32);
    for (field, c) in [
        ("base_currency", &s.base_currency),
        ("quote_currency", &s.quote_currency),
    ] {
        if let Some(c) = c {
            v.check(
                (2..=10).contains(&c.len()) && c.chars().all(|x| x.is_ascii_alphanumeric()),
                field,
                "must be a currency or asset code (2-10 letters or digits)",
            );
        }
    }
    if s.contract_size.is_empty() {
        v.fail("contract_size", "is required");
    } else {
        decimal(v, "contract_size", &mut s.contract_size, true, false);
    }
    if s.pip_size.is_empty() {
        v.fail("pip_size", "is required");
    } else {
        decimal(v, "pip_size", &mut s.pip_size, true, false);
    }
    decimal(v, "markup_pips", &mut s.markup_pips, false, false);
    decimal(
        v,
        "commission_per_lot",
        &mut s.commission_per_lot,
        false,
        false,
    );
    decimal(v, "swap_long", &mut s.swap_long, false, true);
    decimal(v, "swap_short", &mut s.swap_short, false, true);
    let min = decimal(v, "min_lot", &mut s.min_lot, true, false);
    let max = decimal(v, "max_lot", &mut s.max_lot, true, false);
    let step = decimal(v, "lot_step", &mut s.lot_step, true, false);
    if let (Some(min), Some(max)) = (min, max) {
        v.check(min <= max, "max_lot", "must be at least min_lot");
    }
    if let (Some(min), Some(step)) = (min, step) {
        v.check(step <= min, "lot_step", "must not exceed min_lot");
    }
    v.check(
        (1..=5000).contains(&s.max_leverage),
        "max_leverage",
        "must be between 1 and 5000",
    );
    if let Some(m) = s.margin_percent.as_mut()
        && let Some(d) = decimal(v, "margin_percent", m, true, false)
    {
        v.check(
            d <= Decimal::ONE_HUNDRED,
            "margin_percent",
            "must be at most 100",
        );
    }
    v.check(
        (-1_000_000..=1_000_000).contains(&s.sort_order),
        "sort_order",
        "must be between -1000000 and 1000000",
    );
}
