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
/// EnEntryFlags: entering the market; out (1) and close-by (3) leave it, in/out (2) reverses.
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

/// One leg of a position: from the deals that opened it to those that closed it. A netting
/// position reversed by one deal (entry `in/out`) is two legs: the one the deal closed, and the
/// opposite one it opened with the rest of its volume.
#[derive(Default)]
struct Leg {
    login: i64,
    symbol: String,
    entry_side: Option<Side>,
    exit_side: Option<Side>,
    /// Volumes in 1/100,000,000 lot (MT5's `VolumeExt` unit).
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
    /// The reversal deal that closed this leg.
    reversed_by: Option<i64>,
}

impl Leg {
    fn enter(&mut self, side: Side, volume: i128, price: &Dec, time: i64) {
        self.entry_side = Some(side);
        self.entry_volume += volume;
        self.entry_price_volume = sum(self.entry_price_volume, price.mul_int(volume));
        self.entry_time = Some(self.entry_time.map_or(time, |t| t.min(time)));
        self.first_time = Some(self.first_time.map_or(time, |t| t.min(time)));
    }

    fn exit(&mut self, side: Side, volume: i128, price: &Dec, time: i64) {
        self.exit_side = Some(side);
        self.exit_volume += volume;
        self.exit_price_volume = sum(self.exit_price_volume, price.mul_int(volume));
        self.close_time = Some(self.close_time.map_or(time, |t| t.max(time)));
        self.first_time = Some(self.first_time.map_or(time, |t| t.min(time)));
    }

    fn charge(&mut self, d: &Value) -> Result<(), String> {
        self.profit = sum(self.profit, dec(d, "Profit")?);
        self.commission = sum(self.commission, dec(d, "Commission")?);
        self.swap = sum(self.swap, dec(d, "Storage")?);
        Ok(())
    }
}

/// EnEntryFlags.
const ENTRY_INOUT: i64 = 2;
/// Units of `VolumeExt` in one unit of `Volume`.
const EXT_PER_VOLUME: i128 = 10_000;

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

/// A volume field in 1/100,000,000 lot: `<field>Ext` when the server sends it (builds since
/// 2019 do), otherwise `<field>` (1/10,000 lot) scaled up.
fn volume_ext(d: &Value, field: &str) -> i128 {
    match int(d, &format!("{field}Ext")) {
        Some(ext) if ext != 0 => i128::from(ext),
        _ => i128::from(int(d, field).unwrap_or(0)) * EXT_PER_VOLUME,
    }
}

/// Positions closed at or after `since` (unix seconds, UTC), rebuilt from trade deals grouped
/// by `PositionID` and taken in deal order: open and close prices are the volume-weighted prices
/// of the entry and exit deals, profit, commission and swap the sums over the deals of the leg.
/// Deal times are the trade server's local time: `server_offset` (seconds east of UTC) is taken
/// off them. Volumes keep `VolumeExt` precision (1/100,000,000 lot).
///
/// A netting reversal (a deal with entry `in/out`) closes the position with the part of its
/// volume given by `VolumeClosed` (or the volume still open) and opens the opposite position
/// with the rest, at the deal's price: the closed leg is reported as its own closed position,
/// with id `<PositionID>-<reversal deal>` and the reversal's profit, commission and swap; the
/// new leg keeps the position's id.
///
/// A leg counts as closed when its exit deals cover the volume its entry deals opened. When the
/// entry deals are older than the deals given (outside the window read), the position is
/// reported closed unless its id is in `still_open`, with the exit deal's `PricePosition` as
/// open price and its first known deal's time as open time.
pub fn closed_positions(
    deals: &[Value],
    since: i64,
    still_open: &HashSet<i64>,
    server_offset: i64,
) -> Result<Vec<Position>, String> {
    let mut by_position: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for d in deals {
        if side_of(int(d, "Action").unwrap_or(-1)).is_none() {
            continue;
        }
        let Some(pid) = int(d, "PositionID").filter(|p| *p != 0) else {
            continue;
        };
        by_position.entry(pid).or_default().push(d);
    }
    let mut out = Vec::new();
    for (pid, mut list) in by_position {
        list.sort_by_key(|d| (int(d, "Time").unwrap_or(0), int(d, "Deal").unwrap_or(0)));
        let mut done: Vec<Leg> = Vec::new();
        let mut leg = Leg::default();
        for d in list {
            let deal = int(d, "Deal").unwrap_or_default();
            let side = side_of(int(d, "Action").unwrap_or(-1))
                .ok_or_else(|| format!("deal {deal}: not a trade"))?;
            let time =
                int(d, "Time").ok_or_else(|| format!("deal {deal}: no Time"))? - server_offset;
            let volume = volume_ext(d, "Volume");
            let price = dec(d, "Price")?;
            leg.login = int(d, "Login").unwrap_or_default();
            if leg.symbol.is_empty() {
                leg.symbol = text(d, "Symbol").unwrap_or_default();
            }
            leg.price_scale = leg.price_scale.max(price.scale());
            match int(d, "Entry") {
                Some(ENTRY_IN) => {
                    leg.charge(d)?;
                    leg.enter(side, volume, &price, time);
                }
                Some(ENTRY_INOUT) => {
                    let open = leg.entry_volume - leg.exit_volume;
                    let closed = match volume_ext(d, "VolumeClosed") {
                        v if v > 0 => v.min(volume),
                        _ if leg.entry_volume > 0 && open > 0 => open.min(volume),
                        _ => volume,
                    };
                    leg.charge(d)?;
                    leg.exit(side, closed, &price, time);
                    if leg.position_price.is_none() && !d["PricePosition"].is_null() {
                        leg.position_price = Some(dec(d, "PricePosition")?);
                    }
                    leg.reversed_by = Some(deal);
                    let rest = volume - closed;
                    let next = Leg {
                        login: leg.login,
                        symbol: leg.symbol.clone(),
                        price_scale: price.scale(),
                        ..Leg::default()
                    };
                    done.push(std::mem::replace(&mut leg, next));
                    if rest > 0 {
                        leg.enter(side, rest, &price, time);
                    }
                }
                _ => {
                    leg.charge(d)?;
                    leg.exit(side, volume, &price, time);
                    if leg.position_price.is_none() && !d["PricePosition"].is_null() {
                        leg.position_price = Some(dec(d, "PricePosition")?);
                    }
                }
            }
        }
        done.push(leg);
        for leg in done {
            if let Some(p) = closed_leg(pid, leg, since, still_open)? {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The closed position a leg makes, if it is closed at or after `since`.
fn closed_leg(
    pid: i64,
    a: Leg,
    since: i64,
    still_open: &HashSet<i64>,
) -> Result<Option<Position>, String> {
    let Some(closed_at) = a.close_time.filter(|t| *t >= since) else {
        return Ok(None);
    };
    let fully_closed = if a.reversed_by.is_some() {
        true
    } else if a.entry_volume > 0 {
        a.exit_volume >= a.entry_volume
    } else {
        !still_open.contains(&pid)
    };
    if !fully_closed {
        return Ok(None);
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
    let volume = if a.entry_volume > 0 && a.reversed_by.is_none() {
        a.entry_volume
    } else {
        a.exit_volume
    };
    let opened_at = a.entry_time.or(a.first_time).unwrap_or(closed_at);
    let id = match a.reversed_by {
        Some(deal) => format!("{pid}-{deal}"),
        None => pid.to_string(),
    };
    Ok(Some(Position {
        id,
        login: a.login.to_string(),
        symbol: a.symbol,
        side,
        volume: Dec::new(volume, 8).trimmed(2).to_string(),
        open_price: open_price.to_string(),
        close_price: Some(close_price.to_string()),
        profit: a.profit.unwrap_or_else(Dec::zero).to_string(),
        commission: a.commission.unwrap_or_else(Dec::zero).to_string(),
        swap: a.swap.unwrap_or_else(Dec::zero).to_string(),
        opened_at: rfc3339(opened_at),
        closed_at: Some(rfc3339(closed_at)),
    }))
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
        let out = closed_positions(&deals, 0, &HashSet::new(), 0).unwrap();
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
            closed_positions(&deals, 0, &HashSet::new(), 0)
                .unwrap()
                .is_empty(),
            "half closed"
        );
        let mut all = deals.clone();
        all.push(deal(
            3, 60, DEAL_BUY, 1, 3_000, 10_000, "1.18000", "200", "-0.5", "-2",
        ));
        let out = closed_positions(&all, 0, &HashSet::new(), 0).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].side, Side::Sell));
        assert_eq!(out[0].close_price.as_deref(), Some("1.18500"));
        assert_eq!(out[0].profit, "300");
        assert_eq!(out[0].volume, "2.00");
        // Closed before `since`: not reported.
        assert!(
            closed_positions(&all, 3_001, &HashSet::new(), 0)
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
        let out = closed_positions(std::slice::from_ref(&exit), 0, &HashSet::new(), 0).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].side, Side::Buy));
        assert_eq!(out[0].open_price, "1.29000");
        assert_eq!(out[0].opened_at, rfc3339(9_000));
        // The platform still holds it open (a partial close of an older position).
        let open: HashSet<i64> = [70].into_iter().collect();
        assert!(closed_positions(&[exit], 0, &open, 0).unwrap().is_empty());
    }

    #[test]
    fn volume_ext_keeps_eight_decimals() {
        let mut entry = deal(1, 80, DEAL_BUY, 0, 1_000, 1, "1.10000", "0", "0", "0");
        entry["VolumeExt"] = json!("12345678");
        let mut exit = deal(2, 80, DEAL_SELL, 1, 2_000, 1, "1.10100", "0.01", "0", "0");
        exit["VolumeExt"] = json!("12345678");
        let out = closed_positions(&[entry, exit], 0, &HashSet::new(), 0).unwrap();
        assert_eq!(out[0].volume, "0.12345678");
    }

    #[test]
    fn a_netting_reversal_closes_one_position_and_opens_the_opposite() {
        // Buy 1 lot; a sell of 3 lots reverses it (1 closes, 2 open short); buy 2 closes it.
        let mut rev = deal(
            2, 90, DEAL_SELL, 2, 2_000, 30_000, "1.10500", "50.00", "-3", "-1",
        );
        rev["VolumeClosed"] = json!("10000");
        let deals = vec![
            deal(1, 90, DEAL_BUY, 0, 1_000, 10_000, "1.10000", "0", "-1", "0"),
            rev,
            deal(
                3, 90, DEAL_BUY, 1, 3_000, 20_000, "1.10300", "40.00", "-2", "0",
            ),
        ];
        let out = closed_positions(&deals, 0, &HashSet::new(), 0).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        let first = &out[0];
        assert_eq!(first.id, "90-2");
        assert!(matches!(first.side, Side::Buy));
        assert_eq!(
            (
                first.volume.as_str(),
                first.open_price.as_str(),
                first.close_price.as_deref()
            ),
            ("1.00", "1.10000", Some("1.10500"))
        );
        assert_eq!(
            (first.profit.as_str(), first.commission.as_str()),
            ("50.00", "-4")
        );
        let second = &out[1];
        assert_eq!(second.id, "90");
        assert!(matches!(second.side, Side::Sell));
        assert_eq!(
            (
                second.volume.as_str(),
                second.open_price.as_str(),
                second.close_price.as_deref()
            ),
            ("2.00", "1.10500", Some("1.10300"))
        );
        assert_eq!(second.opened_at, rfc3339(2_000));
        assert_eq!(second.profit, "40.00");
        // Reversed, not yet closed: only the first leg.
        let out = closed_positions(&deals[..2], 0, &HashSet::new(), 0).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "90-2");
    }

    #[test]
    fn deal_times_are_the_servers_local_time() {
        let deals = vec![
            deal(1, 95, DEAL_BUY, 0, 10_000, 10_000, "1", "0", "0", "0"),
            deal(2, 95, DEAL_SELL, 1, 17_200, 10_000, "1", "0", "0", "0"),
        ];
        // A server at UTC+2: 17,200 local is 10,000 UTC.
        let out = closed_positions(&deals, 10_000, &HashSet::new(), 7_200).unwrap();
        assert_eq!(out[0].closed_at.as_deref(), Some(rfc3339(10_000).as_str()));
        assert_eq!(out[0].opened_at, rfc3339(2_800));
        assert!(
            closed_positions(&deals, 10_001, &HashSet::new(), 7_200)
                .unwrap()
                .is_empty()
        );
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
