//! Names on disk: which video names are allowed (they become directory names) and segment file names from segment ids.

use super::{Nanos, StoreError};
use crate::clock;
use std::time::{Duration, UNIX_EPOCH};

/// Longest video name (SPEC's asset name rule: `^[^<>%&:\\/?*+.']{1,260}$`).
pub const MAX_VIDEO_NAME: usize = 260;

/// Characters SPEC's asset name rule refuses in literal text; with them go path separators.
/// A dot is allowed except first (no `.`, `..` or hidden directories): AVA's `videoName`
/// allows dots and `${System.PreciseDateTime}` renders one into asset names.
const FORBIDDEN: &[char] = &['<', '>', '%', '&', ':', '\\', '/', '?', '*', '+', '\''];

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
            "video name {name:?} contains {c:?}; names may not contain control characters or any of < > % & : \\ / ? * + '"
        )));
    }
    if name.starts_with('.') {
        return Err(StoreError::Invalid(format!("video name {name:?} starts with '.'")));
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
    format!("{}.{:03}Z.mp4", clock::basic(UNIX_EPOCH + Duration::from_millis(ms)), ms % 1000)
}

/// The id of a file named by [`segment_file_name`]; `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let s = name.strip_suffix("Z.mp4")?;
    let b = s.as_bytes();
    if b.len() != 19 || b[8] != b'T' || b[15] != b'.' || !s.bytes().enumerate().all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit()) {
        return None;
    }
    // The same instant in RFC 3339, for the one date parser the project has.
    let rfc = format!("{}-{}-{}T{}:{}:{}.{}Z", &s[0..4], &s[4..6], &s[6..8], &s[9..11], &s[11..13], &s[13..15], &s[16..19]);
    let t = clock::parse_rfc3339(&rfc)?;
    let id = u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    // Only names this module writes: 31 February and leap seconds are refused by the round trip.
    (segment_file_name(id) == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_pass_and_paths_do_not() {
        for ok in ["camera-001", "Lobby cam", "a", "étage_2", "cam.1", "clip-20261122T080102.345Z", &"x".repeat(260)] {
            validate_video_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "../x", "a/b", "a\\b", "..", "a\nb", "a\0b", ".hidden", "c:", "50%", " lead", &"x".repeat(261)] {
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
