//! Just enough ISO BMFF parsing for export: walk boxes, read an init segment's track parameters, and patch a moof in place.

use std::ops::Range;

use thiserror::Error;

/// Why a box structure could not be read or patched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BmffError {
    #[error("box at byte {at} is cut short or has an impossible size")]
    BadBox { at: usize },
    #[error("no {0} box")]
    Missing(&'static str),
    #[error("{0} box too short")]
    Short(&'static str),
    #[error("expected a {expected} box, found {found:?}")]
    Unexpected { expected: &'static str, found: String },
    #[error("decode time {0} does not fit a version 0 tfdt")]
    TfdtOverflow(u64),
    #[error("the fragment's base data offset points before its moof")]
    BaseBeforeMoof,
    #[error("the index does not match the file: {0}")]
    Index(String),
}

/// A box inside a buffer: its type and where its header and body are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRef {
    pub kind: [u8; 4],
    pub start: usize,
    pub body: Range<usize>,
}

/// Reads a box header at `at`: (type, header length, total size).
pub fn header(buf: &[u8], at: usize) -> Result<([u8; 4], usize, u64), BmffError> {
    let bad = BmffError::BadBox { at };
    let h = buf.get(at..at + 8).ok_or(bad.clone())?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let kind = [h[4], h[5], h[6], h[7]];
    let (header, size) = match size32 {
        1 => {
            let l = buf.get(at + 8..at + 16).ok_or(bad.clone())?;
            (16, u64::from_be_bytes(l.try_into().map_err(|_| bad.clone())?))
        }
        // Size 0 ("to the end of the file") only makes sense for a top-level mdat.
        0 => (8, (buf.len() - at) as u64),
        n => (8, u64::from(n)),
    };
    if size < header as u64 {
        return Err(bad);
    }
    Ok((kind, header, size))
}

/// The boxes directly inside `buf[range]`.
pub fn children(buf: &[u8], range: Range<usize>) -> Result<Vec<BoxRef>, BmffError> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let (kind, header, size) = header(&buf[..range.end], at)?;
        let end = usize::try_from(size).ok().and_then(|s| at.checked_add(s)).filter(|e| *e <= range.end).ok_or(BmffError::BadBox { at })?;
        out.push(BoxRef { kind, start: at, body: at + header..end });
        at = end;
    }
    Ok(out)
}

/// The body of the first box of type `kind` directly inside `buf[range]`.
pub fn child(buf: &[u8], range: Range<usize>, kind: &'static str) -> Result<Range<usize>, BmffError> {
    children(buf, range)?.into_iter().find(|b| b.kind == kind.as_bytes()).map(|b| b.body).ok_or(BmffError::Missing(kind))
}

/// Follows a path of box types from the top of `buf`.
pub fn path(buf: &[u8], kinds: &[&'static str]) -> Result<Range<usize>, BmffError> {
    kinds.iter().try_fold(0..buf.len(), |range, kind| child(buf, range, kind))
}

fn u32_at(buf: &[u8], at: usize, what: &'static str) -> Result<u32, BmffError> {
    buf.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok_or(BmffError::Short(what))
}

/// What must match between two files for one export (or one HLS init) to play both: the
/// track's timescale and its sample description (codec, avcC, picture size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackParams {
    pub timescale: u32,
    /// The stsd body.
    pub sample_description: Vec<u8>,
}

/// Reads an init segment (ftyp + moov of a single-track fragmented file).
pub fn track_params(init: &[u8]) -> Result<TrackParams, BmffError> {
    let top = children(init, 0..init.len())?;
    match top.first() {
        Some(b) if &b.kind == b"ftyp" => {}
        Some(b) => return Err(BmffError::Unexpected { expected: "ftyp", found: String::from_utf8_lossy(&b.kind).into_owned() }),
        None => return Err(BmffError::Missing("ftyp")),
    }
    let mdhd = path(init, &["moov", "trak", "mdia", "mdhd"])?;
    let version = *init.get(mdhd.start).ok_or(BmffError::Short("mdhd"))?;
    // version, flags; creation and modification times (4 or 8 bytes each); timescale.
    let at = mdhd.start + if version == 1 { 4 + 16 } else { 4 + 8 };
    let timescale = u32_at(&init[..mdhd.end], at, "mdhd")?;
    if timescale == 0 {
        return Err(BmffError::Short("mdhd (timescale 0)"));
    }
    let stsd = path(init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"])?;
    Ok(TrackParams { timescale, sample_description: init[stsd].to_vec() })
}

/// New values for one moof of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoofPatch {
    /// New mfhd sequence number; `None` keeps the file's.
    pub sequence: Option<u32>,
    /// tfdt of the (first) track fragment, in the track's timescale.
    pub decode_time: u64,
}

/// Rewrites a moof (the whole box, `moof.len()` bytes) in place without changing any size:
/// the mfhd sequence number (if given), each traf's tfdt (the first traf gets `decode_time`, later ones
/// keep their distance to it; version 0 and 1 keep their width), and an explicit tfhd
/// base data offset, which points into the original file, moved by `new_pos - old_pos`.
pub fn patch_moof(moof: &mut [u8], patch: MoofPatch, old_pos: u64, new_pos: u64) -> Result<(), BmffError> {
    let (kind, header, size) = header(moof, 0)?;
    if &kind != b"moof" {
        return Err(BmffError::Unexpected { expected: "moof", found: String::from_utf8_lossy(&kind).into_owned() });
    }
    if size != moof.len() as u64 {
        return Err(BmffError::BadBox { at: 0 });
    }
    let top = children(moof, header..moof.len())?;
    let mfhd = top.iter().find(|b| &b.kind == b"mfhd").ok_or(BmffError::Missing("mfhd"))?;
    let seq_at = mfhd.body.start + 4;
    if seq_at + 4 > mfhd.body.end {
        return Err(BmffError::Short("mfhd"));
    }
    if let Some(sequence) = patch.sequence {
        moof[seq_at..seq_at + 4].copy_from_slice(&sequence.to_be_bytes());
    }
    let mut first_tfdt: Option<u64> = None;
    let mut trafs = 0;
    for traf in top.iter().filter(|b| &b.kind == b"traf") {
        trafs += 1;
        for b in children(moof, traf.body.clone())? {
            if &b.kind == b"tfhd" {
                let flags = u32_at(moof, b.body.start, "tfhd")? & 0x00ff_ffff;
                if flags & 0x000001 != 0 {
                    // version/flags, track_ID, then base_data_offset.
                    let at = b.body.start + 8;
                    let old = moof.get(at..at + 8).filter(|_| at + 8 <= b.body.end).ok_or(BmffError::Short("tfhd"))?;
                    let old = u64::from_be_bytes(old.try_into().map_err(|_| BmffError::Short("tfhd"))?);
                    let new = old.checked_sub(old_pos).ok_or(BmffError::BaseBeforeMoof)? + new_pos;
                    moof[at..at + 8].copy_from_slice(&new.to_be_bytes());
                }
            } else if &b.kind == b"tfdt" {
                let version = *moof.get(b.body.start).ok_or(BmffError::Short("tfdt"))?;
                let at = b.body.start + 4;
                let width = if version == 1 { 8 } else { 4 };
                if at + width > b.body.end {
                    return Err(BmffError::Short("tfdt"));
                }
                let old = if version == 1 {
                    u64::from_be_bytes(moof[at..at + 8].try_into().map_err(|_| BmffError::Short("tfdt"))?)
                } else {
                    u64::from(u32_at(moof, at, "tfdt")?)
                };
                let base = *first_tfdt.get_or_insert(old);
                let new = patch.decode_time.saturating_add(old.saturating_sub(base));
                if version == 1 {
                    moof[at..at + 8].copy_from_slice(&new.to_be_bytes());
                } else {
                    let v = u32::try_from(new).map_err(|_| BmffError::TfdtOverflow(new))?;
                    moof[at..at + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    if trafs == 0 {
        return Err(BmffError::Missing("traf"));
    }
    if first_tfdt.is_none() {
        // Without a tfdt the decode time is implied by earlier fragments, which an export
        // does not keep.
        return Err(BmffError::Missing("tfdt"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::mkv::EncodedFrame;
    use crate::media::mp4::{init_segment, media_segment, FragmentTiming, VideoParams};
    use bytes::Bytes;

    /// vtest.mkv's avcC (768x576 Main).
    pub const VTEST_AVCC: &str = "014d401fffe10016674d401fd900c0126840000003004000000503c60c9201000568ebc24b20";

    pub fn params() -> VideoParams {
        let avcc = (0..VTEST_AVCC.len()).step_by(2).map(|i| u8::from_str_radix(&VTEST_AVCC[i..i + 2], 16).unwrap()).collect();
        VideoParams::from_avcc(avcc, 9000).unwrap()
    }

    fn frame(dts: i64, key: bool) -> EncodedFrame {
        EncodedFrame { pts_90k: dts, dts_90k: dts, keyframe: key, data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]) }
    }

    fn moof_of(segment: &[u8]) -> Vec<u8> {
        let (_, _, size) = header(segment, 0).unwrap();
        segment[..size as usize].to_vec()
    }

    #[test]
    fn reads_the_track_parameters_of_our_init_segments() {
        let p = params();
        let init = init_segment(&p).unwrap();
        let t = track_params(&init).unwrap();
        assert_eq!(t.timescale, 90_000);
        assert!(t.sample_description.windows(p.avcc.len()).any(|w| w == p.avcc.as_slice()));
        let mut other = p.clone();
        other.width = 640;
        assert_ne!(track_params(&init_segment(&other).unwrap()).unwrap(), t);
        // A different nominal frame duration (trex) does not matter.
        other = p.clone();
        other.frame_duration_90k = 3600;
        assert_eq!(track_params(&init_segment(&other).unwrap()).unwrap(), t);
        assert!(track_params(&init[..init.len() - 3]).is_err());
        assert!(track_params(&init[24..]).is_err());
        assert!(track_params(b"").is_err());
    }

    #[test]
    fn patches_sequence_and_decode_time_keeping_sizes() {
        let frames = [frame(9000, true), frame(12000, false)];
        let seg = media_segment(7, &frames, &FragmentTiming { base_dts_90k: 0, next_dts_90k: Some(15000), default_duration_90k: 3000 }, 4)
            .unwrap();
        let mut moof = moof_of(&seg.bytes);
        let before = moof.clone();
        patch_moof(&mut moof, MoofPatch { sequence: Some(1), decode_time: 123_456_789_012 }, 5000, 70).unwrap();
        assert_eq!(moof.len(), before.len());
        let mfhd = path(&moof, &["moof", "mfhd"]).unwrap();
        assert_eq!(u32_at(&moof, mfhd.start + 4, "").unwrap(), 1);
        let tfdt = path(&moof, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(moof[tfdt.start], 1);
        assert_eq!(u64::from_be_bytes(moof[tfdt.start + 4..tfdt.start + 12].try_into().unwrap()), 123_456_789_012);
        // Nothing else changed.
        let diff: Vec<usize> = (0..moof.len()).filter(|&i| moof[i] != before[i]).collect();
        assert!(
            diff.iter().all(|&i| (mfhd.start + 4..mfhd.start + 8).contains(&i) || (tfdt.start + 4..tfdt.start + 12).contains(&i)),
            "{diff:?}"
        );
    }

    /// A moof with a version 0 tfdt and an explicit base data offset, as other muxers write.
    fn foreign_moof(tfdt: u32, base: u64) -> Vec<u8> {
        let mut traf_body = Vec::new();
        let tfhd = [&24u32.to_be_bytes()[..], b"tfhd", &[0, 0, 0, 1], &1u32.to_be_bytes(), &base.to_be_bytes()].concat();
        let tfdt = [&16u32.to_be_bytes()[..], b"tfdt", &[0, 0, 0, 0], &tfdt.to_be_bytes()].concat();
        traf_body.extend_from_slice(&tfhd);
        traf_body.extend_from_slice(&tfdt);
        let traf = [&((8 + traf_body.len()) as u32).to_be_bytes()[..], b"traf", &traf_body].concat();
        let mfhd = [&16u32.to_be_bytes()[..], b"mfhd", &[0, 0, 0, 0], &9u32.to_be_bytes()].concat();
        let body = [mfhd, traf].concat();
        [&((8 + body.len()) as u32).to_be_bytes()[..], b"moof", &body].concat()
    }

    #[test]
    fn patches_version_0_tfdt_and_explicit_base_offsets() {
        let mut moof = foreign_moof(5, 10_000);
        patch_moof(&mut moof, MoofPatch { sequence: Some(3), decode_time: 77 }, 9_000, 100).unwrap();
        let tfhd = path(&moof, &["moof", "traf", "tfhd"]).unwrap();
        assert_eq!(u64::from_be_bytes(moof[tfhd.start + 8..tfhd.start + 16].try_into().unwrap()), 1_100);
        let tfdt = path(&moof, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(u32_at(&moof, tfdt.start + 4, "").unwrap(), 77);
        let mut moof = foreign_moof(5, 10_000);
        assert_eq!(
            patch_moof(&mut moof, MoofPatch { sequence: Some(3), decode_time: 1 << 33 }, 9_000, 100),
            Err(BmffError::TfdtOverflow(1 << 33))
        );
        let mut moof = foreign_moof(5, 10_000);
        assert_eq!(patch_moof(&mut moof, MoofPatch { sequence: Some(3), decode_time: 1 }, 20_000, 100), Err(BmffError::BaseBeforeMoof));
    }

    #[test]
    fn damaged_moofs_are_errors_not_panics() {
        let good = foreign_moof(5, 10_000);
        for cut in 0..good.len() {
            let mut m = good[..cut].to_vec();
            assert!(patch_moof(&mut m, MoofPatch { sequence: Some(1), decode_time: 0 }, 0, 0).is_err(), "cut at {cut}");
        }
        let mut m = good.clone();
        m[4..8].copy_from_slice(b"mdat");
        assert!(patch_moof(&mut m, MoofPatch { sequence: Some(1), decode_time: 0 }, 0, 0).is_err());
        // Every single-byte corruption of the sizes is caught or harmless.
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0xff;
            let _ = patch_moof(&mut m, MoofPatch { sequence: Some(1), decode_time: 0 }, 0, 0);
        }
    }
}
