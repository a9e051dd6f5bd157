//! Every MT5 Web API answer carries `retcode`: a number and its description (`"0 Done"`,
//! `"13 Not found"`). `0` (MT_RET_OK) and `1` (MT_RET_OK_NONE) are success; everything else is
//! an error, named by its code in what the connector reports.

/// A parsed `retcode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retcode {
    pub code: u32,
    /// The whole text as the server sent it (`"13 Not found"`).
    pub text: String,
}

/// What a failed code means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    /// Worth another attempt after a pause (network, timeout, busy, too frequent, ...).
    Transient,
    /// The server does not accept this session or these credentials.
    Auth,
    NotFound,
    /// The request was refused for what it asks (parameters, rights, money, ...).
    Rejected,
}

impl Retcode {
    /// Reads `"<code> <description>"`; `None` when the text does not start with a number.
    pub fn parse(text: &str) -> Option<Retcode> {
        let t = text.trim();
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        let code = digits.parse().ok()?;
        Some(Retcode {
            code,
            text: t.to_string(),
        })
    }

    pub fn is_ok(&self) -> bool {
        self.code <= 1
    }

    pub fn class(&self) -> Class {
        match self.code {
            0 | 1 => Class::Ok,
            // MT_RET_ERR_NETWORK, _TIMEOUT, _CONNECTION, _NOSERVICE, _FREQUENT, _SHUTDOWN,
            // MT_RET_AUTH_SERVER_BUSY, MT_RET_REQUEST_TIMEOUT, MT_RET_REQUEST_CONNECTION.
            7 | 9 | 10 | 11 | 12 | 15 | 1018 | 10012 | 10031 => Class::Transient,
            // MT_RET_ERR_PERMISSIONS is a refusal of the command (`trade/balance` by a manager
            // without the right, say), not a lost session: a session the server no longer knows
            // gets HTTP 403 without a retcode. Authenticating again would not change the answer.
            // The authentication group (1000-1999).
            1000..=1999 => Class::Auth,
            13 => Class::NotFound,
            _ => Class::Rejected,
        }
    }
}

impl std::fmt::Display for Retcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MT5 retcode {}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_code_and_text() {
        let r = Retcode::parse("0 Done").unwrap();
        assert!(r.is_ok());
        assert_eq!(r.class(), Class::Ok);
        let r = Retcode::parse(" 13 Not found").unwrap();
        assert_eq!((r.code, r.class()), (13, Class::NotFound));
        assert_eq!(r.to_string(), "MT5 retcode 13 Not found");
        assert_eq!(Retcode::parse("1").map(|r| r.is_ok()), Some(true));
        assert!(Retcode::parse("Done").is_none());
        assert!(Retcode::parse("").is_none());
    }

    #[test]
    fn classes() {
        for (code, class) in [
            (3, Class::Rejected),
            (8, Class::Rejected),
            (9, Class::Transient),
            (12, Class::Transient),
            (1001, Class::Auth),
            (1002, Class::Auth),
            (1018, Class::Transient),
            (3006, Class::Rejected),
            (4005, Class::Rejected),
            (10019, Class::Rejected),
        ] {
            let r = Retcode::parse(&format!("{code} x")).unwrap();
            assert_eq!(r.class(), class, "{code}");
        }
    }
}
