//! Names on disk: which video names are allowed (they become directory names) and segment file names from segment ids.

use super::{Nanos, StoreError};

/// Longest video name (SPEC's asset name rule: `^[^<>%&:\\/?*+.']{1,260}$`).
pub const MAX_VIDEO_NAME: usize = 260;

/// Characters SPEC's asset name rule refuses; with them go path separators and `..`.
const FORBIDDEN: &[char] = &['<', '>', '%', '&', ':', '\\', '/', '?', '*', '+', '.', '\''];

/// Latest segment start a file name can carry (9999-12-31T23:59:59.999Z), in ms.
pub const MAX_ID: u64 = 253_402_300_799_999;

/// Checks a video name: SPEC's asset name rule, and no control characters (it becomes a
/// directory name and part of index keys, where NUL separates the name).
pub fn validate_video_name(name: &str) -> Result<(), StoreError> {
    let len = name.chars().count();
    if len == 0 || len > MAX_VIDEO_NAME {
        return Err(StoreError::Invalid(format!("video name must have 1 to {MAX_VIDEO_NAME} characters (has {len})")));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
        return Err(StoreError::Invalid(format!(
            "video name {name:?} contains {c:?}; names may not contain control characters or any of < > % & : \\ / ? * + . '"
        )));
    }
    if name.trim() != name {
        return Err(StoreError::Invalid(format!("video name {name:?} starts or ends with white space")));
    }
    Ok(())
}

/// The segment id (start in ms since the Unix epoch) for a wall time, if a file name can carry it.
pub fn id_for(wall: Nanos) -> Option<u64> {
    let ms = u64::try_from(wall.div_euclid(1_000_000)).ok()?;
    (ms <= MAX_ID).then_some(ms)
}

/// `20261122T080102.345Z.mp4`: the segment's start (its id, in ms), sortable and readable.
pub fn segment_file_name(id: u64) -> String {
    let ms = id.min(MAX_ID);
    let secs = (ms / 1000) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z.mp4", sod / 3600, sod / 60 % 60, sod % 60, ms % 1000)
}

/// The id of a file named by [`segment_file_name`]; `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let s = name.strip_suffix("Z.mp4")?;
    let b = s.as_bytes();
    if b.len() != 19 || b[8] != b'T' || b[15] != b'.' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, sec, ms) = (digits(9..11)?, digits(11..13)?, digits(13..15)?, digits(16..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let id = u64::try_from(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms).ok()?;
    // Only names this module writes: 31 February is refused by the round trip.
    (segment_file_name(id) == name).then_some(id)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_pass_and_paths_do_not() {
        for ok in ["camera-001", "Lobby cam", "a", "étage_2", &"x".repeat(260)] {
            validate_video_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "../x", "a/b", "a\\b", "..", "a.b", "a\nb", "a\0b", "c:", "50%", " lead", &"x".repeat(261)] {
            assert!(matches!(validate_video_name(bad), Err(StoreError::Invalid(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn file_names_round_trip_and_sort_by_time() {
        assert_eq!(segment_file_name(1_795_334_462_345), "20261122T080102.345Z.mp4");
        assert_eq!(segment_file_name(0), "19700101T000000.000Z.mp4");
        for id in [0, 1, 951_782_400_000, 1_795_334_462_345, 4_102_444_800_000, MAX_ID] {
            assert_eq!(parse_segment_file_name(&segment_file_name(id)), Some(id));
        }
        let ids = [5u64, 999, 1000, 86_400_000, 1_795_334_462_345];
        let names: Vec<String> = ids.iter().map(|&i| segment_file_name(i)).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        for bad in
            ["20261122T080102.345Z.mp4.tmp", "x.mp4", "20261131T080102.345Z.mp4", "20261122T250102.345Z.mp4", "2026112xT080102.345Z.mp4"]
        {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_exist_only_for_representable_times() {
        assert_eq!(id_for(1_500_999_999), Some(1500));
        assert_eq!(id_for(-1), None);
        assert_eq!(id_for(i64::MAX), Some(9_223_372_036_854)); // 2262: every Nanos has a name
    }
}
