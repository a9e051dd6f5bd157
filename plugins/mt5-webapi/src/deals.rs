//! What the connector reads from MT5 deals: closed positions (MT5 keeps no record of a closed
//! position, only the deals that opened and closed it) and balance operations it pushed before
//! (recognised by their comment).

use std::collections::{BTreeMap, HashSet};

use crate::model::{Position, Side};
use md5::{Digest, Md5};
use serde_json::Value;

use crate::dec::Dec;
use crate::time::rfc3339;
use crate::wire::{dec, int, text};

/// EnDealAction values the connector uses.
pub const DEAL_BUY: i64 = 0;
pub const DEAL_SELL: i64 = 1;
pub const DEAL_BALANCE: i64 = 2;
pub const DEAL_CREDIT: i64 = 3;
/// EnEntryFlags: entering the market; the others (out, reversal, close by) leave it.
const ENTRY_IN: i64 = 0;

/// MT5 keeps at most 31 characters of a deal comment (32 with the terminating zero).
pub const COMMENT_MAX: usize = 31;

/// The deal comment that carries an idempotency key. Keys are longer than a comment may be, so
/// the comment holds a digest of the key: `lumire:` and 20 hex digits (80 bits) of its MD5,
/// 27 characters. Two different keys sharing a comment on one account is not a practical risk.
pub fn comment_for(idempotency_key: &str) -> String {
    let digest = hex::encode(Md5::digest(idempotency_key.as_bytes()));
    let mut comment = format!("lumire:{}", &digest[..20]);
    comment.truncate(COMMENT_MAX);
    comment
}

/// The ticket of an earlier deal on `login` that carries `comment` with the same action, if
/// one is among `deals`.
pub fn find_pushed(deals: &[Value], login: i64, action: i64, comment: &str) -> Option<String> {
    deals
        .iter()
        .find(|d| {
            int(d, "Login") == Some(login)
                && int(d, "Action") == Some(action)
                && text(d, "Comment").as_deref() == Some(comment)
        })
        .and_then(|d| int(d, "Deal"))
        .map(|t| t.to_string())
}

#[derive(Default)]
struct Acc {
    login: i64,
    symbol: String,
    entry_side: Option<Side>,
    exit_side: Option<Side>,
    entry_volume: i128,
    exit_volume: i128,
    entry_price_volume: Option<Dec>,
    exit_price_volume: Option<Dec>,
    position_price: Option<Dec>,
    price_scale: u32,
    profit: Option<Dec>,
    commission: Option<Dec>,
    swap: Option<Dec>,
    first_time: Option<i64>,
    entry_time: Option<i64>,
    close_time: Option<i64>,
}

fn side_of(action: i64) -> Option<Side> {
    match action {
        DEAL_BUY => Some(Side::Buy),
        DEAL_SELL => Some(Side::Sell),
        _ => None,
    }
}

fn sum(a: Option<Dec>, b: Dec) -> Option<Dec> {
    Some(a.map_or(b, |a| a.add(&b)))
}

/// Volume in MT5's 1/10000-lot units, whatever precision the deal was sent with.
fn volume_units(d: &Value) -> i128 {
    match int(d, "VolumeExt") {
        Some(ext) if ext != 0 => i128::from(ext) / 10_000,
        _ => i128::from(int(d, "Volume").unwrap_or(0)),
    }
}

/// Positions closed at or after `since` (unix seconds), rebuilt from trade deals grouped by
/// `PositionID`: open and close prices are the volume-weighted prices of the entry and exit
/// deals, profit, commission and swap the sums over every deal of the position in `deals`.
///
/// A position counts as closed when its exit deals cover the volume its entry deals opened.
/// When the entry deals are older than the deals given (outside the window read), the position
/// is reported closed unless its id is in `still_open`, with the exit deal's `PricePosition`
/// as open price and its first known deal's time as open time.
pub fn closed_positions(
    deals: &[Value],
    since: i64,
    still_open: &HashSet<i64>,
) -> Result<Vec<Position>, String> {
    let mut by_position: BTreeMap<i64, Acc> = BTreeMap::new();
    for d in deals {
        let action = int(d, "Action").unwrap_or(-1);
        let Some(side) = side_of(action) else {
            continue;
        };
        let Some(pid) = int(d, "PositionID").filter(|p| *p != 0) else {
            continue;
        };
        let deal = int(d, "Deal").unwrap_or_default();
        let time = int(d, "Time").ok_or_else(|| format!("deal {deal}: no Time"))?;
        let volume = volume_units(d);
        let price = dec(d, "Price")?;
        let a = by_position.entry(pid).or_default();
        a.login = int(d, "Login").unwrap_or_default();
        if a.symbol.is_empty() {
            a.symbol = text(d, "Symbol").unwrap_or_default();
        }
        a.price_scale = a.price_scale.max(price.scale());
        a.profit = sum(a.profit, dec(d, "Profit")?);
        a.commission = sum(a.commission, dec(d, "Commission")?);
        a.swap = sum(a.swap, dec(d, "Storage")?);
        a.first_time = Some(a.first_time.map_or(time, |t| t.min(time)));
        if int(d, "Entry") == Some(ENTRY_IN) {
            a.entry_side = Some(side);
            a.entry_volume += volume;
            a.entry_price_volume = sum(a.entry_price_volume, price.mul_int(volume));
            a.entry_time = Some(a.entry_time.map_or(time, |t| t.min(time)));
        } else {
            a.exit_side = Some(side);
            a.exit_volume += volume;
            a.exit_price_volume = sum(a.exit_price_volume, price.mul_int(volume));
            a.close_time = Some(a.close_time.map_or(time, |t| t.max(time)));
            if a.position_price.is_none() && !d["PricePosition"].is_null() {
                a.position_price = Some(dec(d, "PricePosition")?);
            }
        }
    }
    let mut out = Vec::new();
    for (pid, a) in by_position {
        let Some(closed_at) = a.close_time.filter(|t| *t >= since) else {
            continue;
        };
        let fully_closed = if a.entry_volume > 0 {
            a.exit_volume >= a.entry_volume
        } else {
            !still_open.contains(&pid)
        };
        if !fully_closed {
            continue;
        }
        let side = match (a.entry_side, a.exit_side) {
            (Some(s), _) => s,
            (None, Some(Side::Buy)) => Side::Sell,
            (None, _) => Side::Buy,
        };
        let open_price = match a.entry_price_volume {
            Some(pv) if a.entry_volume > 0 => pv.div_int(a.entry_volume, a.price_scale),
            _ => a.position_price,
        }
        .ok_or_else(|| format!("position {pid}: no open price in its deals"))?;
        let close_price = a
            .exit_price_volume
            .and_then(|pv| pv.div_int(a.exit_volume, a.price_scale))
            .ok_or_else(|| format!("position {pid}: no close price in its deals"))?;
        let volume = if a.entry_volume > 0 {
            a.entry_volume
        } else {
            a.exit_volume
        };
        let opened_at = a.entry_time.or(a.first_time).unwrap_or(closed_at);
        out.push(Position {
            id: pid.to_string(),
            login: a.login.to_string(),
            symbol: a.symbol,
            side,
            volume: Dec::new(volume, 4).trimmed(2).to_string(),
            open_price: open_price.to_string(),
            close_price: Some(close_price.to_string()),
            profit: a.profit.unwrap_or_else(Dec::zero).to_string(),
            commission: a.commission.unwrap_or_else(Dec::zero).to_string(),
            swap: a.swap.unwrap_or_else(Dec::zero).to_string(),
            opened_at: rfc3339(opened_at),
            closed_at: Some(rfc3339(closed_at)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::too_many_arguments)]
    fn deal(
        deal: i64,
        pid: i64,
        action: i64,
        entry: i64,
        time: i64,
        volume: i64,
        price: &str,
        profit: &str,
        commission: &str,
        swap: &str,
    ) -> Value {
        json!({"Deal": deal.to_string(), "Login": "1001", "PositionID": pid.to_string(), "Action": action.to_string(),
               "Entry": entry.to_string(), "Time": time.to_string(), "Symbol": "EURUSD", "Volume": volume.to_string(),
               "Price": price, "Profit": profit, "Commission": commission, "Storage": swap, "Comment": ""})
    }

    #[test]
    fn a_round_trip_becomes_one_closed_position() {
        let deals = vec![
            deal(
                1, 50, DEAL_BUY, 0, 1_000, 10_000, "1.08500", "0.00", "-3.50", "0.00",
            ),
            deal(
                2, 50, DEAL_SELL, 1, 5_000, 10_000, "1.08700", "20.00", "-3.50", "-1.20",
            ),
            // Still open: entered, not left.
            deal(
                3, 51, DEAL_SELL, 0, 2_000, 20_000, "1.09000", "0", "-7.00", "0",
            ),
            // A balance operation is no position.
            json!({"Deal": "4", "Login": "1001", "Action": "2", "Time": "3000", "Profit": "100", "Comment": "x"}),
        ];
        let out = closed_positions(&deals, 0, &HashSet::new()).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(p.id, "50");
        assert!(matches!(p.side, Side::Buy));
        assert_eq!(
            (
                p.volume.as_str(),
                p.open_price.as_str(),
                p.close_price.as_deref()
            ),
            ("1.00", "1.08500", Some("1.08700"))
        );
        assert_eq!(
            (p.profit.as_str(), p.commission.as_str(), p.swap.as_str()),
            ("20.00", "-7.00", "-1.20")
        );
        assert_eq!(p.opened_at, rfc3339(1_000));
        assert_eq!(p.closed_at.as_deref(), Some(rfc3339(5_000).as_str()));
    }

    #[test]
    fn partial_closes_and_windows() {
        let deals = vec![
            deal(
                1, 60, DEAL_SELL, 0, 1_000, 20_000, "1.20000", "0", "-1", "0",
            ),
            deal(
                2, 60, DEAL_BUY, 1, 2_000, 10_000, "1.19000", "100", "-0.5", "0",
            ),
        ];
        assert!(
            closed_positions(&deals, 0, &HashSet::new())
                .unwrap()
                .is_empty(),
            "half closed"
        );
        let mut all = deals.clone();
        all.push(deal(
            3, 60, DEAL_BUY, 1, 3_000, 10_000, "1.18000", "200", "-0.5", "-2",
        ));
        let out = closed_positions(&all, 0, &HashSet::new()).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].side, Side::Sell));
        assert_eq!(out[0].close_price.as_deref(), Some("1.18500"));
        assert_eq!(out[0].profit, "300");
        assert_eq!(out[0].volume, "2.00");
        // Closed before `since`: not reported.
        assert!(
            closed_positions(&all, 3_001, &HashSet::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn exits_whose_entry_is_outside_the_window() {
        let mut exit = deal(
            9, 70, DEAL_SELL, 1, 9_000, 5_000, "1.30000", "15", "-1", "-0.1",
        );
        exit["PricePosition"] = json!("1.29000");
        let out = closed_positions(std::slice::from_ref(&exit), 0, &HashSet::new()).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].side, Side::Buy));
        assert_eq!(out[0].open_price, "1.29000");
        assert_eq!(out[0].opened_at, rfc3339(9_000));
        // The platform still holds it open (a partial close of an older position).
        let open: HashSet<i64> = [70].into_iter().collect();
        assert!(closed_positions(&[exit], 0, &open).unwrap().is_empty());
    }

    #[test]
    fn comments_carry_the_key() {
        let c = comment_for("lumire:deposit:01JABCDEFGHJKMNPQRSTVWXYZ0");
        assert!(c.len() <= COMMENT_MAX, "{c}");
        assert!(c.starts_with("lumire:"));
        assert_eq!(c, comment_for("lumire:deposit:01JABCDEFGHJKMNPQRSTVWXYZ0"));
        assert_ne!(c, comment_for("lumire:deposit:01JABCDEFGHJKMNPQRSTVWXYZ1"));
        let deals = vec![
            json!({"Deal": "7", "Login": "1001", "Action": "3", "Comment": c}),
            json!({"Deal": "8", "Login": "1001", "Action": "2", "Comment": c}),
        ];
        assert_eq!(
            find_pushed(&deals, 1001, DEAL_BALANCE, &c).as_deref(),
            Some("8")
        );
        assert_eq!(
            find_pushed(&deals, 1001, DEAL_CREDIT, &c).as_deref(),
            Some("7")
        );
        assert_eq!(find_pushed(&deals, 1002, DEAL_BALANCE, &c), None);
        assert_eq!(find_pushed(&deals, 1001, DEAL_BALANCE, "other"), None);
    }
}
