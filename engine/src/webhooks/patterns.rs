//! Event patterns of a subscription: an exact event name (`deposit.settled`), a prefix wildcard
//! (`deposit.*`, matching every name under `deposit.` at any depth) or `*` (everything).

/// Why a pattern is not acceptable, or `None` when it is.
pub fn problem(p: &str) -> Option<&'static str> {
    if p == "*" {
        return None;
    }
    if p.is_empty() || p.len() > 100 {
        return Some("each pattern is 1-100 characters");
    }
    let stem = p.strip_suffix(".*").unwrap_or(p);
    let ok = stem.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    if ok {
        None
    } else {
        Some("patterns are event names like deposit.settled, a prefix like deposit.*, or *")
    }
}

pub fn matches(pattern: &str, event: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        // `deposit.*` keeps its dot, so it cannot match `deposits.x` or `deposit` itself.
        Some(prefix) => event.starts_with(prefix) && event.len() > prefix.len(),
        None => pattern == event,
    }
}

pub fn any_matches(patterns: &[String], event: &str) -> bool {
    patterns.iter().any(|p| matches(p, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_all() {
        assert!(matches("deposit.settled", "deposit.settled"));
        assert!(!matches("deposit.settled", "deposit.settled.x"));
        assert!(matches("deposit.*", "deposit.settled"));
        assert!(matches("deposit.*", "deposit.a.b"));
        assert!(!matches("deposit.*", "deposits.settled"));
        assert!(!matches("deposit.*", "deposit"));
        assert!(matches("*", "anything.at_all"));
    }

    #[test]
    fn pattern_shapes() {
        for ok in ["*", "trader.created", "trader.*", "a.b_c.*", "x1"] {
            assert!(problem(ok).is_none(), "{ok}");
        }
        for bad in [
            "",
            "Trader.created",
            "trader.",
            ".x",
            "a..b",
            "a.*.b",
            "a*",
            "**",
            "a b",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }
}
