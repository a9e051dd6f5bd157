//! Building MT5 Web API requests and reading its answers into the connector's records.
//!
//! MT5 sends numbers either as JSON numbers or as strings (`"Login": "764636"`); both are read.
//! Money and prices are passed on as decimal strings, never through floating point arithmetic.

use crate::model::{Account, Balance, Position, Side};
use serde_json::Value;

use crate::dec::Dec;
use crate::time::rfc3339;

/// `path?k=v&...` with every value percent-encoded (group masks hold `\`, `*` and `!`).
pub fn path_with_query(path: &str, query: &[(&str, String)]) -> String {
    let mut out = String::from(path);
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A field as text: strings as they are, numbers in their JSON form.
pub fn text(v: &Value, field: &str) -> Option<String> {
    match &v[field] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A field as an integer (`"1020"` or `1020`).
pub fn int(v: &Value, field: &str) -> Option<i64> {
    match &v[field] {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A field as an exact decimal; an absent field is zero (MT5 omits nothing it has, but a
/// simulator or an older build may).
pub fn dec(v: &Value, field: &str) -> Result<Dec, String> {
    match &v[field] {
        Value::Null => Ok(Dec::zero()),
        Value::String(s) => Dec::parse(s).ok_or_else(|| format!("{field} is not a number: {s}")),
        Value::Number(n) => {
            Dec::parse(&n.to_string()).ok_or_else(|| format!("{field} is not a number: {n}"))
        }
        other => Err(format!("{field} is not a number: {other}")),
    }
}

/// The login list of `/api/user/logins`, as numbers, sorted and without repeats.
pub fn logins(answer: &Value) -> Result<Vec<u64>, String> {
    let list = answer
        .as_array()
        .ok_or("user/logins: the answer is not a list")?;
    let mut out = Vec::with_capacity(list.len());
    for l in list {
        let n = match l {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        out.push(n.ok_or_else(|| format!("user/logins: {l} is not a login"))?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// An MT5 user (`/api/user/get_batch`) as the connector's account, in its group's currency.
pub fn account(user: &Value, currency: &str) -> Result<Account, String> {
    let login = int(user, "Login").ok_or("a user without Login")?;
    let name = match (text(user, "FirstName"), text(user, "LastName")) {
        (Some(f), Some(l)) if !f.is_empty() || !l.is_empty() => {
            format!("{f} {l}").trim().to_string()
        }
        _ => text(user, "Name").unwrap_or_default(),
    };
    Ok(Account {
        login: login.to_string(),
        group: text(user, "Group").unwrap_or_default(),
        currency: currency.to_string(),
        leverage: int(user, "Leverage")
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0),
        name,
    })
}

/// The state of an account without trade activity since the server started, which
/// `user/account/get_batch` leaves out: balance and credit from its user record
/// (`user/get_batch`), equity their sum, no margin in use.
pub fn idle_balance(user: &Value, currency: &str) -> Result<Balance, String> {
    let login = int(user, "Login").ok_or("a user without Login")?;
    let balance = dec(user, "Balance")?;
    let credit = dec(user, "Credit")?;
    let equity = balance.add(&credit);
    Ok(Balance {
        login: login.to_string(),
        currency: currency.to_string(),
        balance: balance.to_string(),
        credit: credit.to_string(),
        equity: equity.to_string(),
        margin: "0.00".into(),
        free_margin: equity.to_string(),
    })
}

/// A trade account state (`/api/user/account/get_batch`).
pub fn balance(acc: &Value, currency: &str) -> Result<Balance, String> {
    let login = int(acc, "Login").ok_or("an account state without Login")?;
    let field = |f: &str| dec(acc, f).map(|d| d.to_string());
    Ok(Balance {
        login: login.to_string(),
        currency: currency.to_string(),
        balance: field("Balance")?,
        credit: field("Credit")?,
        equity: field("Equity")?,
        margin: field("Margin")?,
        free_margin: field("MarginFree")?,
    })
}

/// Lots from MT5's volume: `VolumeExt` (1/100000000 lot) when the server sends it, otherwise
/// `Volume` (1/10000 lot).
pub fn lots(v: &Value) -> Result<Dec, String> {
    match int(v, "VolumeExt") {
        Some(ext) if ext != 0 => Ok(Dec::new(i128::from(ext), 8).trimmed(2)),
        _ => {
            let vol = int(v, "Volume").ok_or("no Volume")?;
            Ok(Dec::new(i128::from(vol), 4).trimmed(2))
        }
    }
}

/// An open position (`/api/position/get_batch`). MT5 keeps commission on deals, not positions:
/// an open position's commission is reported as zero and becomes known when it closes. Its
/// times are the trade server's local time, `server_offset` seconds east of UTC.
pub fn open_position(p: &Value, server_offset: i64) -> Result<Position, String> {
    let id = int(p, "Position").ok_or("a position without Position")?;
    let login = int(p, "Login").ok_or("a position without Login")?;
    let side = match int(p, "Action") {
        Some(0) => Side::Buy,
        Some(1) => Side::Sell,
        other => return Err(format!("position {id}: unknown Action {other:?}")),
    };
    let opened = int(p, "TimeCreate").ok_or_else(|| format!("position {id}: no TimeCreate"))?;
    Ok(Position {
        id: id.to_string(),
        login: login.to_string(),
        symbol: text(p, "Symbol").unwrap_or_default(),
        side,
        volume: lots(p)
            .map_err(|e| format!("position {id}: {e}"))?
            .to_string(),
        open_price: dec(p, "PriceOpen")?.to_string(),
        close_price: None,
        profit: dec(p, "Profit")?.to_string(),
        commission: "0".into(),
        swap: dec(p, "Storage")?.to_string(),
        opened_at: rfc3339(opened - server_offset),
        closed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            path_with_query(
                "/api/user/logins",
                &[("group", "demo\\forex*,!real".into())]
            ),
            "/api/user/logins?group=demo%5Cforex%2A,%21real"
        );
        assert_eq!(
            path_with_query(
                "/api/trade/balance",
                &[("login", "1".into()), ("comment", "a b:c".into())]
            ),
            "/api/trade/balance?login=1&comment=a%20b%3Ac"
        );
    }

    #[test]
    fn reads_strings_and_numbers() {
        let v = json!({"Login": "764636", "Leverage": 100, "Balance": "1000.50", "Credit": 12.25});
        assert_eq!(int(&v, "Login"), Some(764_636));
        assert_eq!(int(&v, "Leverage"), Some(100));
        assert_eq!(dec(&v, "Balance").unwrap().to_string(), "1000.50");
        assert_eq!(dec(&v, "Credit").unwrap().to_string(), "12.25");
        assert_eq!(dec(&v, "Missing").unwrap().to_string(), "0");
        assert!(dec(&json!({"X": "abc"}), "X").is_err());
    }

    #[test]
    fn login_lists() {
        assert_eq!(
            logins(&json!(["104221", 104_200, "104221"])).unwrap(),
            vec![104_200, 104_221]
        );
        assert!(logins(&json!({"x": 1})).is_err());
        assert!(logins(&json!(["abc"])).is_err());
    }

    #[test]
    fn users_and_account_states() {
        let u = json!({"Login": "1001", "Group": "real\\usd", "FirstName": "Ada", "LastName": "Lovelace", "Leverage": "200"});
        let a = account(&u, "USD").unwrap();
        assert_eq!(
            (
                a.login.as_str(),
                a.group.as_str(),
                a.name.as_str(),
                a.leverage
            ),
            ("1001", "real\\usd", "Ada Lovelace", 200)
        );
        let s = json!({"Login": "1001", "Balance": "1000.00", "Credit": "50.00", "Equity": "1062.50", "Margin": "20.00", "MarginFree": "1042.50"});
        let b = balance(&s, "USD").unwrap();
        assert_eq!(
            (
                b.balance.as_str(),
                b.credit.as_str(),
                b.equity.as_str(),
                b.free_margin.as_str()
            ),
            ("1000.00", "50.00", "1062.50", "1042.50")
        );
    }

    #[test]
    fn open_positions() {
        let p = json!({"Position": "618", "Login": "1001", "Symbol": "EURUSD", "Action": "1",
            "TimeCreate": "1546345925", "PriceOpen": "1.08500", "Volume": "15000",
            "Profit": "-12.50", "Storage": "-0.40"});
        let pos = open_position(&p, 0).unwrap();
        assert_eq!(pos.id, "618");
        assert!(matches!(pos.side, Side::Sell));
        assert_eq!(pos.volume, "1.50");
        assert_eq!(pos.swap, "-0.40");
        assert_eq!(pos.opened_at, "2019-01-01T12:32:05.000Z");
        let ext = json!({"Position": 1, "Login": 1, "Action": 0, "TimeCreate": 0, "Volume": 10000, "VolumeExt": 1_234_000});
        assert_eq!(open_position(&ext, 0).unwrap().volume, "0.01234");
        assert!(
            open_position(
                &json!({"Position": 1, "Login": 1, "Action": 7, "TimeCreate": 0, "Volume": 1}),
                0
            )
            .is_err()
        );
    }
}
