//! HTTP byte ranges (RFC 9110 §14): which part of a body of known length a request asks for.

use std::ops::Range;

/// What to send for a request's `Range` (and `If-Range`) headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// 200 with the whole body.
    Full,
    /// 206 with these bytes (end exclusive).
    Partial(Range<u64>),
    /// 416: the range starts at or past the end.
    Unsatisfiable,
}

/// Resolves a `Range` header against a body of `len` bytes.
///
/// One range is served; a header that is not `bytes=`, is malformed, or asks for several
/// ranges is ignored (the whole body is sent), which RFC 9110 allows and every client
/// handles, instead of multipart responses nobody here needs. `if_range` is the request's
/// `If-Range`: unless it equals `etag`, the range is ignored too, so a resumed download
/// never splices bytes of two different bodies.
pub fn resolve(range: Option<&str>, if_range: Option<&str>, etag: &str, len: u64) -> Ranged {
    let Some(range) = range else { return Ranged::Full };
    if if_range.is_some_and(|v| v.trim() != etag) {
        return Ranged::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else { return Ranged::Full };
    if spec.contains(',') {
        return Ranged::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ranged::Full };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(last) {
            Some(0) => Ranged::Unsatisfiable,
            Some(n) if len > 0 => Ranged::Partial(len.saturating_sub(n)..len),
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Full,
        },
        // bytes=A-
        (false, true) => match num(first) {
            Some(a) if a < len => Ranged::Partial(a..len),
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Full,
        },
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if a > b => Ranged::Full,
            (Some(a), Some(_)) if a >= len => Ranged::Unsatisfiable,
            (Some(a), Some(b)) => Ranged::Partial(a..b.min(len - 1) + 1),
            _ => Ranged::Full,
        },
        (true, true) => Ranged::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "\"abc\"";

    fn r(h: &str, len: u64) -> Ranged {
        resolve(Some(h), None, E, len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(resolve(None, None, E, 100), Ranged::Full);
        assert_eq!(r("bytes=0-0", 100), Ranged::Partial(0..1));
        assert_eq!(r("bytes=10-19", 100), Ranged::Partial(10..20));
        assert_eq!(r("bytes=10-", 100), Ranged::Partial(10..100));
        assert_eq!(r("bytes=90-1000", 100), Ranged::Partial(90..100));
        assert_eq!(r("bytes=-10", 100), Ranged::Partial(90..100));
        assert_eq!(r("bytes=-1000", 100), Ranged::Partial(0..100));
        assert_eq!(r(" bytes= 5 - 6 ", 100), Ranged::Partial(5..7));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(r("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=100-200", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn ignored_ranges() {
        for h in ["items=0-1", "bytes=5-4", "bytes=0-1,3-4", "bytes=a-b", "bytes=-", "bytes=1", "bytes=+1-2", "bytes=18446744073709551616-"]
        {
            assert_eq!(r(h, 100), Ranged::Full, "{h}");
        }
        assert_eq!(resolve(Some("bytes=1-2"), Some("\"other\""), E, 100), Ranged::Full);
        assert_eq!(resolve(Some("bytes=1-2"), Some("Wed, 21 Oct 2015 07:28:00 GMT"), E, 100), Ranged::Full);
        assert_eq!(resolve(Some("bytes=1-2"), Some(E), E, 100), Ranged::Partial(1..3));
    }
}
