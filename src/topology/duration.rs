//! ISO 8601 durations as the APIs use them: `PT1S`, `-PT5S`, `PT0.5S`, `P30D`, `P1W`.

use std::fmt;
use std::time::Duration;

/// A signed duration with nanosecond precision (the gate's offset may be negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedDuration {
    nanos: i64,
}

impl SignedDuration {
    pub const ZERO: SignedDuration = SignedDuration { nanos: 0 };

    pub const fn from_secs(s: i64) -> Self {
        SignedDuration { nanos: s * 1_000_000_000 }
    }

    pub const fn from_millis(ms: i64) -> Self {
        SignedDuration { nanos: ms * 1_000_000 }
    }

    pub const fn as_nanos(&self) -> i64 {
        self.nanos
    }

    pub fn as_secs_f64(&self) -> f64 {
        self.nanos as f64 / 1e9
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The magnitude as a std duration.
    pub fn abs(&self) -> Duration {
        Duration::from_nanos(self.nanos.unsigned_abs())
    }

    /// Parses an ISO 8601 duration. Years and months are refused: their length
    /// depends on the calendar, and no property of the APIs needs them.
    pub fn parse_iso8601(s: &str) -> Result<Self, String> {
        // The caller shows the value; the message says what is wrong with it.
        let bad = |why: &str| Err(format!("not an ISO 8601 duration ({why}); expected e.g. PT30S, -PT5S, PT1M30S or P1D"));
        let t = s.trim();
        let (neg, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let Some(rest) = rest.strip_prefix(['P', 'p']) else {
            return bad("it must start with P");
        };
        if rest.is_empty() {
            return bad("no components");
        }
        let mut total: i128 = 0;
        let mut in_time = false;
        let mut seen_any = false;
        let mut last_rank = 0u8;
        let mut num = String::new();
        let mut fraction_used = false;
        for c in rest.chars() {
            match c {
                '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
                'T' | 't' => {
                    if in_time || !num.is_empty() {
                        return bad("misplaced T");
                    }
                    in_time = true;
                }
                _ => {
                    let unit = c.to_ascii_uppercase();
                    let (rank, nanos_per): (u8, i128) = match (in_time, unit) {
                        (false, 'Y') => return bad("years are not supported, use days"),
                        (false, 'M') => return bad("months are not supported, use days"),
                        (false, 'W') => (1, 7 * 86_400_000_000_000),
                        (false, 'D') => (2, 86_400_000_000_000),
                        (true, 'H') => (3, 3_600_000_000_000),
                        (true, 'M') => (4, 60_000_000_000),
                        (true, 'S') => (5, 1_000_000_000),
                        _ => return bad(&format!("unexpected '{c}'")),
                    };
                    if num.is_empty() {
                        return bad(&format!("'{c}' has no number"));
                    }
                    if rank <= last_rank {
                        return bad("components out of order or repeated");
                    }
                    if fraction_used {
                        return bad("only the smallest component may have a fraction");
                    }
                    last_rank = rank;
                    let (int_part, frac_part) = match num.split_once('.') {
                        Some((i, f)) => (i, f),
                        None => (num.as_str(), ""),
                    };
                    if int_part.is_empty() || frac_part.contains('.') || (num.contains('.') && frac_part.is_empty()) {
                        return bad(&format!("bad number '{num}'"));
                    }
                    let int: i128 = int_part.parse().map_err(|_| "not an ISO 8601 duration (a number is too large)".to_string())?;
                    total = total
                        .checked_add(int.checked_mul(nanos_per).ok_or_else(|| "too long (more than 292 years)".to_string())?)
                        .ok_or_else(|| "too long (more than 292 years)".to_string())?;
                    if !frac_part.is_empty() {
                        fraction_used = true;
                        // Nine digits are enough for nanoseconds of a second; more precise
                        // digits of larger units are truncated.
                        let digits: String = frac_part.chars().take(18).collect();
                        let scale = 10i128.pow(digits.len() as u32);
                        let frac: i128 = digits.parse().map_err(|_| "not an ISO 8601 duration (bad fraction)".to_string())?;
                        total = total.checked_add(frac * nanos_per / scale).ok_or_else(|| "too long (more than 292 years)".to_string())?;
                    }
                    seen_any = true;
                    num.clear();
                }
            }
        }
        if !num.is_empty() {
            return bad("a number has no unit");
        }
        if !seen_any {
            return bad("no components");
        }
        if in_time && last_rank < 3 {
            return bad("T is not followed by hours, minutes or seconds");
        }
        if total > i64::MAX as i128 {
            return Err("too long (more than 292 years)".to_string());
        }
        let nanos = total as i64;
        Ok(SignedDuration { nanos: if neg { -nanos } else { nanos } })
    }
}

impl fmt::Display for SignedDuration {
    /// Canonical ISO 8601 (`-PT5S`, `PT1M30S`, `PT0.5S`, `P1D`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        let mut n = self.nanos.unsigned_abs();
        let day = 86_400_000_000_000u64;
        let days = n / day;
        n %= day;
        f.write_str("P")?;
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if n == 0 {
            return if days == 0 { f.write_str("T0S") } else { Ok(()) };
        }
        f.write_str("T")?;
        let (h, m) = (n / 3_600_000_000_000, (n / 60_000_000_000) % 60);
        let (s, sub) = ((n / 1_000_000_000) % 60, n % 1_000_000_000);
        if h > 0 {
            write!(f, "{h}H")?;
        }
        if m > 0 {
            write!(f, "{m}M")?;
        }
        if s > 0 || sub > 0 {
            if sub == 0 {
                write!(f, "{s}S")?;
            } else {
                let frac = format!("{sub:09}");
                write!(f, "{s}.{}S", frac.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for SignedDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> i64 {
        SignedDuration::parse_iso8601(s).unwrap().as_nanos()
    }

    #[test]
    fn parses_the_forms_found_in_published_topologies() {
        assert_eq!(p("PT1S"), 1_000_000_000);
        assert_eq!(p("PT0S"), 0);
        assert_eq!(p("-PT5S"), -5_000_000_000);
        assert_eq!(p("PT30S"), 30_000_000_000);
        assert_eq!(p("P30D"), 30 * 86_400_000_000_000);
    }

    #[test]
    fn parses_combinations_fractions_and_case() {
        assert_eq!(p("PT1M30S"), 90_000_000_000);
        assert_eq!(p("PT1H"), 3_600_000_000_000);
        assert_eq!(p("P1DT1H"), 90_000_000_000_000);
        assert_eq!(p("PT0.5S"), 500_000_000);
        assert_eq!(p("PT0,25S"), 250_000_000);
        assert_eq!(p("PT1.5M"), 90_000_000_000);
        assert_eq!(p("pt2s"), 2_000_000_000);
        assert_eq!(p("P1W"), 7 * 86_400_000_000_000);
        assert_eq!(p("+PT3S"), 3_000_000_000);
        assert_eq!(p(" PT3S "), 3_000_000_000);
    }

    #[test]
    fn refuses_malformed_and_calendar_durations() {
        for bad in [
            "",
            "P",
            "PT",
            "5S",
            "PT5",
            "T5S",
            "P1Y",
            "P1M",
            "PT5S5S",
            "PT1S1M",
            "PT.5S",
            "PT5.S",
            "PT1.5M2S",
            "P1DT",
            "--PT1S",
            "PTS",
            "P5H",
            "PT1D",
            "1 second",
            "PT99999999999999999999S",
        ] {
            assert!(SignedDuration::parse_iso8601(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for s in ["PT1S", "-PT5S", "PT0S", "PT1M30S", "P1D", "P1DT1H", "PT0.5S", "PT1H0.001S"] {
            let d = SignedDuration::parse_iso8601(s).unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(SignedDuration::parse_iso8601(&d.to_string()).unwrap(), d);
        }
        assert_eq!(SignedDuration::parse_iso8601("PT90S").unwrap().to_string(), "PT1M30S");
    }
}
