//! Compact binary encoding of the index's records and keys: varints and deltas, so a 30 s segment of 2 s GOPs takes about 200 bytes.
//!
//! A segment record stores what cannot be derived: the file name follows from the id, the
//! end from the last fragment, and each fragment's offset and start are deltas from the end
//! of the one before (zero in a normal recording). Records start with a format version so
//! a later layout can be read beside this one.

use super::{Fragment, Nanos, Segment, Span};

/// Why a stored record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt index record: {0}")]
pub struct Corrupt(pub &'static str);

const SEGMENT_V1: u8 = 1;
const FLAG_OPEN: u8 = 1;

/// Key prefixes: everything lives in one sled tree so that one batch changes a segment,
/// its video's totals and its spans atomically.
const VIDEO: u8 = b'V';
const META: u8 = b'M';
const SEGMENT: u8 = b'S';
const SPAN: u8 = b'P';

pub fn video_key(name: &str) -> Vec<u8> {
    let mut k = vec![VIDEO];
    k.extend_from_slice(name.as_bytes());
    k
}

/// All video keys.
pub fn video_prefix() -> [u8; 1] {
    [VIDEO]
}

pub fn meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(name.as_bytes());
    k
}

/// `S name NUL`: video names have no control characters, so NUL ends the name.
pub fn segment_prefix(name: &str) -> Vec<u8> {
    let mut k = vec![SEGMENT];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

pub fn segment_key(name: &str, id: u64) -> Vec<u8> {
    let mut k = segment_prefix(name);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The id at the end of a segment key.
pub fn segment_key_id(key: &[u8]) -> Result<u64, Corrupt> {
    let tail = key.len().checked_sub(8).ok_or(Corrupt("segment key too short"))?;
    Ok(u64::from_be_bytes(key[tail..].try_into().map_err(|_| Corrupt("segment key"))?))
}

pub fn span_prefix(name: &str) -> Vec<u8> {
    let mut k = vec![SPAN];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// Span keys sort by start, negative starts included (sign bit flipped).
pub fn span_key(name: &str, start: Nanos) -> Vec<u8> {
    let mut k = span_prefix(name);
    k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// A span from its key and value.
pub fn decode_span(key: &[u8], value: &[u8]) -> Result<Span, Corrupt> {
    let tail = key.len().checked_sub(8).ok_or(Corrupt("span key too short"))?;
    let start = (u64::from_be_bytes(key[tail..].try_into().map_err(|_| Corrupt("span key"))?) ^ (1 << 63)) as i64;
    let end = i64::from_be_bytes(value.try_into().map_err(|_| Corrupt("span value"))?);
    if end <= start {
        return Err(Corrupt("span ends before it starts"));
    }
    Ok(Span { start, end })
}

pub fn encode_span_end(end: Nanos) -> [u8; 8] {
    end.to_be_bytes()
}

/// A video's running totals, kept beside its segments so listing needs no scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Bytes the index vouches for (init + indexed fragments of every segment).
    pub bytes: u64,
    pub segments: u64,
    /// Longest wall-clock span of any segment so far: how far before a window's start a
    /// segment overlapping it can begin (segments are keyed by start).
    pub max_segment: Nanos,
}

pub fn encode_meta(m: &Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_u(&mut out, m.bytes);
    put_u(&mut out, m.segments);
    put_i(&mut out, m.max_segment);
    out
}

pub fn decode_meta(b: &[u8]) -> Result<Meta, Corrupt> {
    let mut r = Reader { b, pos: 0 };
    Ok(Meta { bytes: r.u()?, segments: r.u()?, max_segment: r.i()? })
}

/// Segment start for an id: ids are start times in ms.
pub fn id_start(id: u64) -> Nanos {
    (id as i64).saturating_mul(1_000_000)
}

pub fn encode_segment(seg: &Segment) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + seg.codec.len() + 12 * seg.fragments.len());
    out.push(SEGMENT_V1);
    out.push(if seg.open { FLAG_OPEN } else { 0 });
    put_i(&mut out, seg.start.wrapping_sub(id_start(seg.id)));
    put_u(&mut out, seg.init_len);
    put_u(&mut out, u64::from(seg.width));
    put_u(&mut out, u64::from(seg.height));
    put_u(&mut out, seg.codec.len() as u64);
    out.extend_from_slice(seg.codec.as_bytes());
    put_u(&mut out, seg.fragments.len() as u64);
    let (mut offset, mut time) = (seg.init_len, seg.start);
    for f in &seg.fragments {
        put_i(&mut out, f.offset.wrapping_sub(offset) as i64);
        put_u(&mut out, f.len);
        put_i(&mut out, f.start.wrapping_sub(time));
        put_i(&mut out, f.duration);
        put_u(&mut out, u64::from(f.frames));
        offset = f.offset.wrapping_add(f.len);
        time = f.end();
    }
    out
}

/// Reads a segment record; `file` and `end` are derived.
pub fn decode_segment(video: &str, id: u64, b: &[u8]) -> Result<Segment, Corrupt> {
    let mut r = Reader { b, pos: 0 };
    if r.byte()? != SEGMENT_V1 {
        return Err(Corrupt("unknown segment record version"));
    }
    let open = r.byte()? & FLAG_OPEN != 0;
    let start = id_start(id).wrapping_add(r.i()?);
    let init_len = r.u()?;
    let width = u32::try_from(r.u()?).map_err(|_| Corrupt("width"))?;
    let height = u32::try_from(r.u()?).map_err(|_| Corrupt("height"))?;
    let codec_len = usize::try_from(r.u()?).map_err(|_| Corrupt("codec length"))?;
    let codec = String::from_utf8(r.take(codec_len)?.to_vec()).map_err(|_| Corrupt("codec is not UTF-8"))?;
    let n = usize::try_from(r.u()?).map_err(|_| Corrupt("fragment count"))?;
    // Each fragment takes at least 5 bytes: a count beyond that is corruption, not a reason to allocate.
    if n > b.len() / 5 {
        return Err(Corrupt("fragment count exceeds the record"));
    }
    let mut fragments = Vec::with_capacity(n);
    let (mut offset, mut time) = (init_len, start);
    for _ in 0..n {
        let f = Fragment {
            offset: offset.wrapping_add(r.i()? as u64),
            len: r.u()?,
            start: time.wrapping_add(r.i()?),
            duration: r.i()?,
            frames: u32::try_from(r.u()?).map_err(|_| Corrupt("frame count"))?,
        };
        offset = f.offset.checked_add(f.len).ok_or(Corrupt("fragment beyond 2^64 bytes"))?;
        time = f.start.checked_add(f.duration).ok_or(Corrupt("fragment beyond the time range"))?;
        fragments.push(f);
    }
    if r.pos != b.len() {
        return Err(Corrupt("trailing bytes after a segment record"));
    }
    let end = fragments.last().map_or(start, Fragment::end);
    Ok(Segment {
        video: video.to_string(),
        id,
        file: super::names::segment_file_name(id),
        init_len,
        codec,
        width,
        height,
        start,
        end,
        fragments,
        open,
    })
}

fn put_u(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag, so small negative deltas stay small.
fn put_i(out: &mut Vec<u8>, v: i64) {
    put_u(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Corrupt> {
        let v = *self.b.get(self.pos).ok_or(Corrupt("record ends early"))?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Corrupt> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len()).ok_or(Corrupt("record ends early"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(Corrupt("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint longer than 10 bytes"))
    }

    fn i(&mut self) -> Result<i64, Corrupt> {
        let u = self.u()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn segment(id: u64, fragments: usize) -> Segment {
        let start = id_start(id) + 123_456;
        let mut offset = 900;
        let mut t = start;
        let fragments = (0..fragments)
            .map(|i| {
                let f = Fragment { offset, len: 150_000 + i as u64 * 77, start: t, duration: 2_000_000_000 - i as i64, frames: 20 };
                offset += f.len;
                t = f.end();
                f
            })
            .collect::<Vec<_>>();
        Segment {
            video: "cam".into(),
            id,
            file: crate::recording::names::segment_file_name(id),
            init_len: 900,
            codec: "avc1.4d401f".into(),
            width: 768,
            height: 576,
            start,
            end: fragments.last().map_or(start, |f| f.end()),
            fragments,
            open: true,
        }
    }

    #[test]
    fn a_thirty_second_segment_is_small_and_round_trips() {
        let seg = segment(1_795_334_462_345, 15);
        let bytes = encode_segment(&seg);
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert_eq!(decode_segment("cam", seg.id, &bytes).unwrap(), seg);
    }

    #[test]
    fn keys_sort_by_time_within_a_video_and_never_across() {
        assert!(span_key("a", -5) < span_key("a", 0) && span_key("a", 0) < span_key("a", 7));
        assert!(segment_key("a", u64::MAX) < segment_key("a b", 0));
        assert_eq!(segment_key_id(&segment_key("a", 42)).unwrap(), 42);
        let k = span_key("a", -9);
        assert_eq!(decode_span(&k, &encode_span_end(3)).unwrap(), Span { start: -9, end: 3 });
        assert!(decode_span(&k, &encode_span_end(-9)).is_err());
        assert_eq!(decode_meta(&encode_meta(&Meta { bytes: 7, segments: 2, max_segment: 31 })).unwrap().max_segment, 31);
    }

    proptest! {
        #[test]
        fn any_segment_round_trips(
            id in 0u64..9_000_000_000_000,
            off in -5i64..5,
            frags in proptest::collection::vec((0u64..3, 1u64..1 << 40, -3i64..3, 0i64..1 << 40, any::<u32>()), 0..20),
            open in any::<bool>(),
        ) {
            let mut seg = segment(id, 0);
            seg.open = open;
            seg.start = id_start(id) + off;
            let (mut offset, mut t) = (seg.init_len, seg.start);
            for (skip, len, gap, duration, frames) in frags {
                let f = Fragment { offset: offset + skip, len, start: t + gap, duration, frames };
                offset = f.offset + f.len;
                t = f.end();
                seg.fragments.push(f);
            }
            seg.end = seg.fragments.last().map_or(seg.start, |f| f.end());
            prop_assert_eq!(decode_segment("cam", id, &encode_segment(&seg)).unwrap(), seg);
        }

        #[test]
        fn garbage_is_refused_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_segment("cam", 1, &b);
            let _ = decode_meta(&b);
            let _ = decode_span(&b, &b);
        }
    }
}
