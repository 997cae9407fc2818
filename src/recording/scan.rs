//! Box walker for segment files: the init segment, then each complete moof+mdat with its timing, stopping at the first incomplete or unexpected box.
//!
//! Recovery uses it to find what a crash left: everything up to the end of the last
//! complete fragment is media the writer finished; anything after it is a partial write.
//! It reads box headers and moofs only (mdat payloads are skipped by seeking), so scanning
//! a long segment costs a few reads per fragment.

use std::io::{Read, Seek, SeekFrom};

/// The largest moov or moof accepted: ours are a few hundred bytes (moof: 12–16 bytes per
/// frame); anything bigger is not a file this store wrote.
const MAX_HEADER_BOX: u64 = 16 << 20;

/// trun sample flags: `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0001_0000;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a complete fragmented MP4 init segment: {0}")]
    NoInit(&'static str),
}

/// One complete moof+mdat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moof {
    pub offset: u64,
    /// moof + mdat bytes.
    pub len: u64,
    /// Decode time of the first sample (tfdt), 90 kHz on the file's timeline.
    pub tfdt: u64,
    /// Sum of the sample durations.
    pub duration: u64,
    pub frames: u32,
    /// The first sample is a sync sample: the fragment starts a GOP.
    pub keyframe: bool,
}

impl Moof {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// ftyp + moov bytes.
    pub init_len: u64,
    /// The avcC record from the sample description (empty when absent).
    pub avcc: Vec<u8>,
    /// Complete fragments in file order.
    pub moofs: Vec<Moof>,
    /// End of the last complete fragment (or of the init segment): what a reader can use.
    pub complete_len: u64,
    pub file_len: u64,
}

/// Walks a segment file of `file_len` bytes.
pub fn scan<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<Scan, ScanError> {
    let ftyp = header_at(r, 0, file_len)?.ok_or(ScanError::NoInit("no complete ftyp"))?;
    if &ftyp.kind != b"ftyp" {
        return Err(ScanError::NoInit("does not start with ftyp"));
    }
    let moov = header_at(r, ftyp.size, file_len)?.ok_or(ScanError::NoInit("no complete moov"))?;
    if &moov.kind != b"moov" || moov.size > MAX_HEADER_BOX {
        return Err(ScanError::NoInit("ftyp is not followed by a moov"));
    }
    let body = read_body(r, ftyp.size, &moov)?;
    let avcc = find_avcc(&body).unwrap_or_default();
    let init_len = ftyp.size + moov.size;
    let mut moofs = Vec::new();
    let mut pos = init_len;
    while let Some(m) = fragment_at(r, pos, file_len)? {
        pos = m.end();
        moofs.push(m);
    }
    Ok(Scan { init_len, avcc, moofs, complete_len: pos, file_len })
}

#[derive(Debug)]
struct BoxHeader {
    kind: [u8; 4],
    /// Whole box, header included.
    size: u64,
    header: u64,
}

/// The header of the box at `pos`, if the whole box lies within the file.
fn header_at<R: Read + Seek>(r: &mut R, pos: u64, file_len: u64) -> Result<Option<BoxHeader>, ScanError> {
    if pos.checked_add(8).is_none_or(|e| e > file_len) {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    let kind = [h[4], h[5], h[6], h[7]];
    let mut header = 8;
    if size == 1 {
        if pos + 16 > file_len {
            return Ok(None);
        }
        let mut big = [0u8; 8];
        r.read_exact(&mut big)?;
        size = u64::from_be_bytes(big);
        header = 16;
    }
    // Size 0 ("to the end of the file") is never written here; after a crash it is what a
    // zero-filled tail looks like.
    if size < header || pos.checked_add(size).is_none_or(|e| e > file_len) {
        return Ok(None);
    }
    Ok(Some(BoxHeader { kind, size, header }))
}

fn read_body<R: Read + Seek>(r: &mut R, pos: u64, h: &BoxHeader) -> Result<Vec<u8>, ScanError> {
    r.seek(SeekFrom::Start(pos + h.header))?;
    let mut body = vec![0u8; (h.size - h.header) as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// The moof+mdat at `pos`, when both are complete and the moof describes exactly the mdat.
fn fragment_at<R: Read + Seek>(r: &mut R, pos: u64, file_len: u64) -> Result<Option<Moof>, ScanError> {
    let Some(moof) = header_at(r, pos, file_len)? else { return Ok(None) };
    if &moof.kind != b"moof" || moof.size > MAX_HEADER_BOX {
        return Ok(None);
    }
    let mdat_at = pos + moof.size;
    let Some(mdat) = header_at(r, mdat_at, file_len)? else { return Ok(None) };
    if &mdat.kind != b"mdat" {
        return Ok(None);
    }
    let body = read_body(r, pos, &moof)?;
    let Some(t) = parse_moof(&body) else { return Ok(None) };
    // default-base-is-moof: the data offset counts from the moof; the samples must fill the mdat.
    if t.data_offset != moof.size + mdat.header || t.data_len != mdat.size - mdat.header {
        return Ok(None);
    }
    Ok(Some(Moof { offset: pos, len: moof.size + mdat.size, tfdt: t.tfdt, duration: t.duration, frames: t.frames, keyframe: t.keyframe }))
}

struct Timing {
    tfdt: u64,
    duration: u64,
    frames: u32,
    keyframe: bool,
    data_offset: u64,
    data_len: u64,
}

/// Children of a box body: (fourcc, payload).
fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes(b[0..4].try_into().ok()?) as usize;
        if size < 8 || size > b.len() {
            return None;
        }
        let kind: [u8; 4] = b[4..8].try_into().ok()?;
        let payload = &b[8..size];
        b = &b[size..];
        Some((kind, payload))
    })
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b).find(|(k, _)| k == kind).map(|(_, p)| p)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads mfhd/traf(tfhd, tfdt, trun) of a moof body.
fn parse_moof(moof: &[u8]) -> Option<Timing> {
    let traf = child(moof, b"traf")?;
    let tfhd = child(traf, b"tfhd")?;
    let tf_flags = be32(tfhd, 0)? & 0x00ff_ffff;
    // Optional tfhd fields in order: base_data_offset (0x1), sample_description_index (0x2),
    // default duration (0x8), size (0x10), flags (0x20).
    let mut at = 8;
    if tf_flags & 0x01 != 0 {
        return None; // an explicit base offset is not what this store writes
    }
    if tf_flags & 0x02 != 0 {
        at += 4;
    }
    let default_duration = if tf_flags & 0x08 != 0 {
        let d = be32(tfhd, at)?;
        at += 4;
        Some(d)
    } else {
        None
    };
    if tf_flags & 0x10 != 0 {
        at += 4;
    }
    let default_flags = if tf_flags & 0x20 != 0 { Some(be32(tfhd, at)?) } else { None };
    let tfdt_box = child(traf, b"tfdt")?;
    let tfdt = if tfdt_box.first()? == &1 { be64(tfdt_box, 4)? } else { u64::from(be32(tfdt_box, 4)?) };
    let trun = child(traf, b"trun")?;
    let flags = be32(trun, 0)? & 0x00ff_ffff;
    let count = be32(trun, 4)?;
    let mut at = 8;
    let data_offset = if flags & 0x01 != 0 {
        let o = be32(trun, at)? as i32;
        at += 4;
        u64::try_from(o).ok()?
    } else {
        return None;
    };
    let first_flags = if flags & 0x04 != 0 {
        let f = be32(trun, at)?;
        at += 4;
        Some(f)
    } else {
        None
    };
    let per = 4 * [0x100, 0x200, 0x400, 0x800].iter().filter(|f| flags & *f != 0).count();
    // Every sample entry must be present: a moof cut short is not a fragment.
    if trun.len() < at + per * count as usize || flags & 0x200 == 0 {
        return None;
    }
    let (mut duration, mut data_len, mut sample0_flags) = (0u64, 0u64, None);
    for i in 0..count as usize {
        let mut p = at + i * per;
        let d = if flags & 0x100 != 0 {
            let d = be32(trun, p)?;
            p += 4;
            d
        } else {
            default_duration?
        };
        duration += u64::from(d);
        data_len += u64::from(be32(trun, p)?);
        p += 4;
        if i == 0 && flags & 0x400 != 0 {
            sample0_flags = Some(be32(trun, p)?);
        }
    }
    let first = first_flags.or(sample0_flags).or(default_flags);
    Some(Timing { tfdt, duration, frames: count, keyframe: count > 0 && first.is_some_and(|f| f & NON_SYNC == 0), data_offset, data_len })
}

/// The avcC payload inside moov/trak/mdia/minf/stbl/stsd/avc1.
fn find_avcc(moov: &[u8]) -> Option<Vec<u8>> {
    let mut b = moov;
    for kind in [b"trak", b"mdia", b"minf", b"stbl", b"stsd"] {
        b = child(b, kind)?;
    }
    // stsd: version/flags and an entry count, then sample entries; avc1 has 78 bytes of
    // VisualSampleEntry fields before its child boxes.
    let avc1 = child(b.get(8..)?, b"avc1")?;
    child(avc1.get(78..)?, b"avcC").map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mkv::EncodedFrame;
    use crate::media::mp4::{Fmp4Writer, VideoParams};
    use bytes::Bytes;
    use std::io::Cursor;

    pub(crate) const VTEST_AVCC: &str = "014d401fffe10016674d401fd900c0126840000003004000000503c60c9201000568ebc24b20";

    pub(crate) fn avcc() -> Vec<u8> {
        (0..VTEST_AVCC.len()).step_by(2).map(|i| u8::from_str_radix(&VTEST_AVCC[i..i + 2], 16).unwrap()).collect()
    }

    fn frame(dts: i64, keyframe: bool, len: usize) -> EncodedFrame {
        let mut data = (len as u32 - 4).to_be_bytes().to_vec();
        data.push(if keyframe { 0x65 } else { 0x41 });
        data.resize(len, 0xab);
        EncodedFrame { pts_90k: dts, dts_90k: dts, keyframe, data: Bytes::from(data) }
    }

    /// A file of three fragments (the second a mid-GOP continuation) and its fragment infos.
    fn file() -> (Vec<u8>, Vec<crate::media::mp4::FragmentInfo>) {
        let mut w = Fmp4Writer::new(Vec::new(), &VideoParams::from_avcc(avcc(), 9000).unwrap()).unwrap();
        let a = w.write_fragment(&[frame(0, true, 300), frame(9000, false, 40)], Some(18000)).unwrap();
        let b = w.write_fragment(&[frame(18000, false, 50)], Some(27000)).unwrap();
        let c = w.write_fragment(&[frame(27000, true, 70), frame(36000, false, 20), frame(45000, false, 20)], None).unwrap();
        (w.finish().unwrap(), vec![a, b, c])
    }

    #[test]
    fn finds_every_fragment_with_its_timing() {
        let (bytes, infos) = file();
        let s = scan(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert_eq!(s.avcc, avcc());
        assert_eq!(s.init_len, infos[0].offset);
        assert_eq!(s.complete_len, bytes.len() as u64);
        let got: Vec<(u64, u64, u64, u64, u32, bool)> =
            s.moofs.iter().map(|m| (m.offset, m.len, m.tfdt, m.duration, m.frames, m.keyframe)).collect();
        let want: Vec<(u64, u64, u64, u64, u32, bool)> = infos
            .iter()
            .map(|i| {
                (
                    i.offset,
                    i.len,
                    i.start_90k as u64,
                    i.duration_90k,
                    i.frames,
                    !i.keyframe_offsets.is_empty() && i.keyframe_offsets[0].sample == 0,
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(want.iter().map(|w| w.5).collect::<Vec<_>>(), vec![true, false, true]);
    }

    #[test]
    fn a_file_cut_anywhere_yields_exactly_its_complete_fragments() {
        let (bytes, infos) = file();
        for cut in 0..=bytes.len() {
            let part = &bytes[..cut];
            match scan(&mut Cursor::new(part), cut as u64) {
                Err(ScanError::NoInit(_)) => assert!((cut as u64) < infos[0].offset, "init complete at cut {cut}"),
                Err(e) => panic!("cut {cut}: {e}"),
                Ok(s) => {
                    let complete = infos.iter().filter(|i| i.offset + i.len <= cut as u64).count();
                    assert_eq!(s.moofs.len(), complete, "cut {cut}");
                    assert_eq!(s.complete_len, s.moofs.last().map_or(s.init_len, Moof::end));
                }
            }
        }
    }

    #[test]
    fn a_zeroed_or_garbled_tail_ends_the_walk() {
        let (mut bytes, infos) = file();
        let last = &infos[2];
        bytes.truncate(last.offset as usize);
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        let s = scan(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert_eq!((s.moofs.len(), s.complete_len), (2, last.offset));
        // A moof whose trun disagrees with its mdat is not a fragment.
        let (mut bytes, infos) = file();
        let mdat_size_at = (infos[1].offset + infos[1].len - 8 - 50) as usize; // 8-byte header, 50-byte sample
        let size = u32::from_be_bytes(bytes[mdat_size_at..mdat_size_at + 4].try_into().unwrap());
        assert_eq!(&bytes[mdat_size_at + 4..mdat_size_at + 8], b"mdat");
        bytes[mdat_size_at..mdat_size_at + 4].copy_from_slice(&(size - 1).to_be_bytes());
        let s = scan(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert_eq!(s.moofs.len(), 1);
        assert!(scan(&mut Cursor::new(b"not an mp4 at all"), 17).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut with_init = file().0[..file().1[0].offset as usize].to_vec();
            with_init.extend_from_slice(&b);
            let _ = scan(&mut Cursor::new(&with_init), with_init.len() as u64);
            let _ = scan(&mut Cursor::new(&b), b.len() as u64);
        }
    }
}
