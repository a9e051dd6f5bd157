//! Just enough exact decimal arithmetic for a connector: sums of money and volume-weighted
//! average prices, without floating point and without a crate the WebAssembly build would carry.

/// `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    mantissa: i128,
    scale: u32,
}

const MAX_SCALE: u32 = 18;

impl Dec {
    pub fn new(mantissa: i128, scale: u32) -> Dec {
        Dec { mantissa, scale }
    }

    pub fn zero() -> Dec {
        Dec::new(0, 0)
    }

    /// Reads `-12.50`, `1000`, `+3.`, `1e-3` is refused (MT5 never sends exponents for money;
    /// a JSON float that would need one is refused rather than guessed).
    pub fn parse(s: &str) -> Option<Dec> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || frac_part.len() > MAX_SCALE as usize
            || int_part.len() > 20
        {
            return None;
        }
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        Some(Dec::new(
            if neg { -mantissa } else { mantissa },
            frac_part.len() as u32,
        ))
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    fn rescale(&self, scale: u32) -> i128 {
        self.mantissa * 10i128.pow(scale - self.scale)
    }

    pub fn add(&self, other: &Dec) -> Dec {
        let scale = self.scale.max(other.scale);
        Dec::new(self.rescale(scale) + other.rescale(scale), scale)
    }

    /// Multiplied by an integer (a volume in MT5's units).
    pub fn mul_int(&self, n: i128) -> Dec {
        Dec::new(self.mantissa * n, self.scale)
    }

    /// Divided by an integer, rounded half away from zero to `scale` places.
    pub fn div_int(&self, n: i128, scale: u32) -> Option<Dec> {
        if n == 0 {
            return None;
        }
        let scale = scale.max(self.scale).min(MAX_SCALE);
        // One extra digit for rounding.
        let num = self.rescale(scale) * 10;
        let q = num / n;
        let rounded = if q % 10 >= 5 {
            q / 10 + 1
        } else if q % 10 <= -5 {
            q / 10 - 1
        } else {
            q / 10
        };
        Some(Dec::new(rounded, scale))
    }

    /// Drops trailing fractional zeros, keeping at least `min_scale` places.
    pub fn trimmed(mut self, min_scale: u32) -> Dec {
        while self.scale > min_scale && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        if self.scale < min_scale {
            self.mantissa = self.rescale(min_scale);
            self.scale = min_scale;
        }
        self
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }
}

impl std::fmt::Display for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let abs = self.mantissa.unsigned_abs().to_string();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let scale = self.scale as usize;
        let padded = format!("{abs:0>width$}", width = scale + 1);
        let (i, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{i}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn parse_and_print() {
        for s in [
            "0",
            "-12.50",
            "1000.00",
            "0.00001",
            "-0.40",
            "123456789.123456",
        ] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("+3.").to_string(), "3");
        assert_eq!(d(".5").to_string(), "0.5");
        for bad in ["", "-", ".", "1e3", "1.2.3", "abc", "12,5"] {
            assert!(Dec::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sums_keep_the_widest_scale() {
        assert_eq!(d("-3.50").add(&d("-3.5")).to_string(), "-7.00");
        assert_eq!(d("1").add(&d("0.001")).to_string(), "1.001");
        assert!(d("2.5").add(&d("-2.50")).is_zero());
    }

    #[test]
    fn weighted_average() {
        // (1.10000 * 1 + 1.10010 * 3) / 4 = 1.100075 -> 1.10008 at 5 places
        let sum = d("1.10000").mul_int(1).add(&d("1.10010").mul_int(3));
        assert_eq!(sum.div_int(4, 5).unwrap().to_string(), "1.10008");
        assert_eq!(d("-1.5").div_int(2, 1).unwrap().to_string(), "-0.8");
        assert!(d("1").div_int(0, 2).is_none());
    }

    #[test]
    fn trimming() {
        assert_eq!(Dec::new(15000, 4).trimmed(2).to_string(), "1.50");
        assert_eq!(Dec::new(1, 0).trimmed(2).to_string(), "1.00");
        assert_eq!(Dec::new(1_234_000, 8).trimmed(2).to_string(), "0.01234");
    }
}
