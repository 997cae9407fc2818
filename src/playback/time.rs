//! Query times for the playback API: RFC 3339 parsing and formatting, and window validation with errors naming the parameter.

use std::time::{Duration, UNIX_EPOCH};

use thiserror::Error;

use crate::clock;
use crate::recording::{Nanos, Span};

const SECOND: Nanos = 1_000_000_000;
const HOUR: Nanos = 3600 * SECOND;

/// Longest window a playlist or an export may cover: AVA's limit for a playback window,
/// and what keeps one request from pinning (and a playlist from listing) days of media.
pub const MAX_MEDIA_WINDOW: Nanos = 24 * HOUR;

/// Longest window a ranges query may cover: a timeline zoomed out over a year of retention.
/// Ranges are merged spans from the index, so this stays cheap.
pub const MAX_RANGES_WINDOW: Nanos = 366 * 24 * HOUR;

/// What a window parameter got wrong; every message names the parameter and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("'{param}' is missing: give an RFC 3339 time such as 2024-05-01T12:00:00Z")]
    Missing { param: &'static str },
    #[error("'{param}' is not an RFC 3339 time: {value:?} (expected e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00.250+02:00)")]
    Malformed { param: &'static str, value: String },
    #[error("'{param}' is outside the supported years (1970 to 2262): {value:?}")]
    OutOfRange { param: &'static str, value: String },
    #[error("'start' ({start}) must be before 'end' ({end})")]
    Reversed { start: String, end: String },
    #[error("'start' ({start}) is not in the past (now is {now})")]
    Future { start: String, now: String },
    #[error("the window from 'start' to 'end' spans {span}, more than the maximum of {max}")]
    TooLong { span: String, max: String },
}

impl TimeError {
    /// The query parameter at fault, for the error response.
    pub fn param(&self) -> &'static str {
        match self {
            TimeError::Missing { param } | TimeError::Malformed { param, .. } | TimeError::OutOfRange { param, .. } => param,
            TimeError::Reversed { .. } | TimeError::TooLong { .. } => "end",
            TimeError::Future { .. } => "start",
        }
    }
}

/// Parses a query time. Forgives one thing clients get wrong: an unescaped `+` of a UTC
/// offset arrives as a space after form decoding (`…T12:00:00 02:00`), and is read as `+`.
pub fn parse_time(param: &'static str, value: &str) -> Result<Nanos, TimeError> {
    let trimmed = value.trim();
    let mut fixed = trimmed.to_owned();
    let b = trimmed.as_bytes();
    if b.len() >= 25 && b[b.len() - 6] == b' ' && b[b.len() - 3] == b':' {
        fixed.replace_range(b.len() - 6..b.len() - 5, "+");
    }
    let shown = || value.chars().take(64).collect::<String>();
    let t = clock::parse_rfc3339(&fixed).ok_or_else(|| TimeError::Malformed { param, value: shown() })?;
    let ns = t.duration_since(UNIX_EPOCH).map_err(|_| TimeError::OutOfRange { param, value: shown() })?.as_nanos();
    Nanos::try_from(ns).map_err(|_| TimeError::OutOfRange { param, value: shown() })
}

/// Formats a wall-clock time as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`),
/// which [`parse_time`] reads back. Sub-millisecond digits are truncated.
pub fn format_time(t: Nanos) -> String {
    clock::rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(u64::try_from(t).unwrap_or(0)))
}

/// [`format_time`] with every nanosecond (`2024-05-01T12:00:00.000000001Z`): for times a
/// client sends back to resume exactly where a page ended.
pub fn format_time_nanos(t: Nanos) -> String {
    let millis = format_time(t);
    format!("{}{:09}Z", &millis[..millis.len() - 4], t.max(0) % SECOND)
}

/// A duration for messages: `90 s`, `25 h`, `400 days`.
pub fn format_span(d: Nanos) -> String {
    let s = d / SECOND;
    if d < 120 * SECOND {
        format!("{:.3} s", d as f64 / SECOND as f64).replace(".000 s", " s")
    } else if d < 2 * HOUR {
        format!("{} min", s / 60)
    } else if d < 72 * HOUR {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86_400)
    }
}

/// Parses the optional `start`/`end` pair of a query: both or neither.
pub fn parse_window(start: Option<&str>, end: Option<&str>) -> Result<Option<(Nanos, Nanos)>, TimeError> {
    match (start, end) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(TimeError::Missing { param: "end" }),
        (None, Some(_)) => Err(TimeError::Missing { param: "start" }),
        (Some(s), Some(e)) => Ok(Some((parse_time("start", s)?, parse_time("end", e)?))),
    }
}

/// Checks a requested window against `now` and a maximum span.
///
/// `start` must be before `end` and in the past; an `end` beyond now is clipped to now (a
/// client asking "until now" with a clock slightly ahead is not an error), and the clipped
/// window must not span more than `max`.
pub fn validate_window(start: Nanos, end: Nanos, now: Nanos, max: Nanos) -> Result<Span, TimeError> {
    if start >= end {
        return Err(TimeError::Reversed { start: format_time(start), end: format_time(end) });
    }
    if start >= now {
        return Err(TimeError::Future { start: format_time(start), now: format_time(now) });
    }
    let end = end.min(now);
    if end - start > max {
        return Err(TimeError::TooLong { span: format_span(end - start), max: format_span(max) });
    }
    Ok(Span { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Nanos = 1_714_564_800 * SECOND; // 2024-05-01T12:00:00Z

    #[test]
    fn nanosecond_times_round_trip() {
        for t in [T, T + 1, T + 999_999_999, T + 123_456_789] {
            let s = format_time_nanos(t);
            assert_eq!(parse_time("start", &s), Ok(t), "{s}");
        }
        assert_eq!(format_time_nanos(T + 1), "2024-05-01T12:00:00.000000001Z");
    }

    #[test]
    fn parses_utc_offsets_fractions_and_a_form_decoded_plus() {
        assert_eq!(parse_time("start", "2024-05-01T12:00:00Z"), Ok(T));
        assert_eq!(parse_time("start", "2024-05-01T14:00:00+02:00"), Ok(T));
        assert_eq!(parse_time("start", "2024-05-01T14:00:00 02:00"), Ok(T));
        assert_eq!(parse_time("start", "2024-05-01T11:30:00.25-00:30"), Ok(T + SECOND / 4));
        assert_eq!(parse_time("start", " 2024-05-01T12:00:00.000000001Z "), Ok(T + 1));
    }

    #[test]
    fn malformed_times_name_the_parameter() {
        for bad in ["", "now", "1714564800", "2024-05-01", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z", "2024-05-01T12:00:00+2"] {
            let e = parse_time("end", bad).unwrap_err();
            assert!(matches!(e, TimeError::Malformed { param: "end", .. }), "{bad}: {e:?}");
            assert!(e.to_string().starts_with("'end' is not an RFC 3339 time"), "{e}");
            assert_eq!(e.param(), "end");
        }
        // Before the epoch, and past what nanoseconds in an i64 hold.
        assert!(matches!(parse_time("start", "1969-12-31T23:59:59Z"), Err(TimeError::Malformed { .. })));
        assert!(matches!(parse_time("start", "2300-01-01T00:00:00Z"), Err(TimeError::OutOfRange { param: "start", .. })));
        // Non-ASCII where digits belong, also inside the offset.
        for bad in ["2024-05-01T12:00:00+0é00", "２０２４-05-01T12:00:00Z", "2024-05-01T12:00:00.5é"] {
            assert!(matches!(parse_time("start", bad), Err(TimeError::Malformed { .. })), "{bad}");
        }
        // A very long value is echoed shortened.
        let long = "x".repeat(10_000);
        assert!(parse_time("start", &long).unwrap_err().to_string().len() < 300);
    }

    #[test]
    fn formats_what_it_parses() {
        assert_eq!(format_time(T), "2024-05-01T12:00:00.000Z");
        assert_eq!(format_time(T + 1_234_567_891), "2024-05-01T12:00:01.234Z");
        assert_eq!(parse_time("start", &format_time(T + 1_234_000_000)), Ok(T + 1_234_000_000));
        assert_eq!(format_time(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn windows_are_ordered_past_and_bounded() {
        let now = T + 48 * HOUR;
        assert_eq!(validate_window(T, T + HOUR, now, MAX_MEDIA_WINDOW), Ok(Span { start: T, end: T + HOUR }));
        let e = validate_window(T + HOUR, T, now, MAX_MEDIA_WINDOW).unwrap_err();
        assert!(matches!(e, TimeError::Reversed { .. }), "{e:?}");
        assert!(matches!(validate_window(T, T, now, MAX_MEDIA_WINDOW), Err(TimeError::Reversed { .. })));
        let e = validate_window(now + 1, now + HOUR, now, MAX_MEDIA_WINDOW).unwrap_err();
        assert_eq!(e.param(), "start");
        assert!(e.to_string().contains("is not in the past"), "{e}");
        // An end in the future is clipped to now.
        assert_eq!(validate_window(now - HOUR, now + HOUR, now, MAX_MEDIA_WINDOW), Ok(Span { start: now - HOUR, end: now }));
        // Exactly the maximum is fine, a nanosecond more is not.
        assert!(validate_window(T, T + 24 * HOUR, now, MAX_MEDIA_WINDOW).is_ok());
        let e = validate_window(T, T + 24 * HOUR + 1, now, MAX_MEDIA_WINDOW).unwrap_err();
        assert_eq!(e.to_string(), "the window from 'start' to 'end' spans 24 h, more than the maximum of 24 h");
        assert!(validate_window(T - 300 * 24 * HOUR, T, now, MAX_RANGES_WINDOW).is_ok());
    }

    #[test]
    fn windows_come_in_pairs() {
        assert_eq!(parse_window(None, None), Ok(None));
        assert_eq!(parse_window(Some("2024-05-01T12:00:00Z"), None), Err(TimeError::Missing { param: "end" }));
        assert_eq!(parse_window(None, Some("2024-05-01T12:00:00Z")), Err(TimeError::Missing { param: "start" }));
        assert_eq!(parse_window(Some("2024-05-01T12:00:00Z"), Some("2024-05-01T13:00:00Z")), Ok(Some((T, T + HOUR))));
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(format_span(2 * SECOND), "2 s");
        assert_eq!(format_span(2_500_000_000), "2.500 s");
        assert_eq!(format_span(10 * 60 * SECOND), "10 min");
        assert_eq!(format_span(25 * HOUR), "25 h");
        assert_eq!(format_span(400 * 24 * HOUR), "400 days");
    }
}
