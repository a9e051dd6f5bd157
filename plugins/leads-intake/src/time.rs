//! RFC 3339 times from the WASI wall clock, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as RFC 3339 UTC with milliseconds (the engine's format, which sorts as text).
pub fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// True for `YYYY-MM-DD` with plausible numbers.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s[..4].parse::<u32>().is_ok()
        && s[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && s[8..].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

/// A filter bound on `created_at` from a date or date-time: a date alone means the start of
/// the day (`from`) or its end (`to`). Date-times are compared as given (use UTC `Z`).
pub fn bound(s: &str, end_of_day: bool) -> Option<String> {
    if is_date(s) {
        return Some(if end_of_day {
            format!("{s}T23:59:59.999Z")
        } else {
            format!("{s}T00:00:00.000Z")
        });
    }
    (s.len() > 10 && is_date(&s[..10]) && s.as_bytes()[10] == b'T').then(|| s.to_string())
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// An RFC 3339 date-time (`2026-05-23T12:18:22.181Z`, `2026-05-23T14:18:22+02:00`) in the
/// engine's form: UTC with milliseconds, so stored values sort and compare as text.
pub fn normalize(s: &str) -> Option<String> {
    if s.len() < 20 || !s.is_ascii() || !is_date(&s[..10]) {
        return None;
    }
    let b = s.as_bytes();
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&s[..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (h, mi, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let ms = format!("{:0<3}", &frac[..n.min(3)]);
        millis = digits(&ms)?;
        rest = &frac[n..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let (oh, om) = (digits(&o[1..3])?, digits(&o[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if o.starts_with('-') { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    // Day 31 of a 30-day month would roll over: refuse it rather than move the date.
    if civil_from_days(days) != (y, mo as u32, d as u32) {
        return None;
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_minutes * 60;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_rfc3339() {
        assert_eq!(
            normalize("2026-05-23T12:18:22.181Z").as_deref(),
            Some("2026-05-23T12:18:22.181Z")
        );
        assert_eq!(
            normalize("2026-05-23T12:18:22Z").as_deref(),
            Some("2026-05-23T12:18:22.000Z")
        );
        assert_eq!(
            normalize("2026-01-01T01:30:00.5+02:00").as_deref(),
            Some("2025-12-31T23:30:00.500Z")
        );
        assert_eq!(
            normalize("2024-02-28T23:00:00.123456-01:30").as_deref(),
            Some("2024-02-29T00:30:00.123Z")
        );
        for bad in [
            "2026-05-23",
            "2026-05-23 12:18:22Z",
            "2026-02-30T00:00:00Z",
            "2026-05-23T25:00:00Z",
            "2026-05-23T12:18:22",
            "2026-05-23T12:18:22.Z",
            "2026-05-23T12:18:22+0200",
            "yesterday at noon, roughly",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
        assert!(normalize(&now()).is_some());
    }
}
