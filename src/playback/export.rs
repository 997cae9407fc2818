//! MP4 export of a window as a virtual file: pieces of segment files (one init, then whole fragments with patched moofs) read on demand for any byte range.
//!
//! Nothing is remuxed: an export is the first file's ftyp+moov followed by every fragment
//! overlapping the window, byte for byte, except that each moof gets a new mfhd sequence
//! number (1..n across files) and a new tfdt (decode time since the first exported
//! fragment, from the index's wall-clock times, so files recorded apart play apart). Patches
//! keep every size, so the export's length is the sum of the pieces' lengths before a
//! single byte is read: `Content-Length` is exact and any byte range maps onto pieces
//! (patched moofs from memory, everything else read from the files in chunks). A file with
//! another init (new picture size or codec configuration) cannot follow in one track: the
//! export stops before it and says so.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest as _, Md5};
use thiserror::Error;

use crate::recording::{Nanos, Segment, Span};

use super::bmff::{self, BmffError, MoofPatch, TrackParams};
use super::hls;

/// Largest init segment or moof read into memory; ours are a few hundred bytes to a few KiB.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Why an export could not be planned.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("nothing is recorded in the window")]
    NoMedia,
    #[error("segment file {file} is damaged: {error}")]
    Damaged {
        file: String,
        #[source]
        error: BmffError,
    },
    #[error("cannot read segment file {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
}

/// A contiguous run of bytes of the virtual file, taken from one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the virtual file.
    pub at: u64,
    pub path: Arc<Path>,
    /// Where the bytes are in `path`, and how many.
    pub offset: u64,
    pub len: u64,
    /// Set for a fragment: its moof (the first bytes) is patched.
    pub patch: Option<MoofPatch>,
}

/// Where an export stopped early, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Wall-clock start of the first fragment left out.
    pub at: Nanos,
    pub file: String,
    pub reason: String,
}

/// An export, fully described before any media byte is read.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pieces: Arc<[Piece]>,
    /// Bytes of the virtual file.
    pub len: u64,
    /// Wall-clock span of the exported fragments (from the keyframe at or before the
    /// requested start to the end of the fragment containing the requested end).
    pub span: Span,
    pub fragments: usize,
    pub truncated: Option<Truncation>,
}

impl Plan {
    /// A strong validator: the same pieces with the same patches give the same bytes
    /// (segment files only ever grow past what the index vouches for).
    pub fn etag(&self) -> String {
        etag(&self.pieces)
    }
}

/// A strong ETag for a list of pieces.
pub fn etag(pieces: &[Piece]) -> String {
    let mut h = Md5::new();
    for p in pieces {
        h.update(p.path.as_os_str().as_encoded_bytes());
        h.update([0]);
        for v in
            [p.offset, p.len, p.patch.and_then(|m| m.sequence).map_or(u64::MAX, u64::from), p.patch.map_or(u64::MAX, |m| m.decode_time)]
        {
            h.update(v.to_be_bytes());
        }
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Plans the export of `window` from `segments` (the catalog's, in time order).
///
/// `read_init(path, len)` reads the first `len` bytes of a segment file; the first file's
/// init becomes the export's, later files' inits are only compared with it.
pub fn plan(
    segments: &[Segment],
    window: Span,
    path_of: &dyn Fn(&Segment) -> PathBuf,
    read_init: &mut dyn FnMut(&Path, u64) -> io::Result<Vec<u8>>,
) -> Result<Plan, ExportError> {
    let all = hls::entries(segments);
    let selected = &all[hls::overlapping(&all, window)];
    let first = selected.first().ok_or(ExportError::NoMedia)?;
    let mut path: Arc<Path> = Arc::from(path_of(first.segment));
    let init = read_checked_init(&path, first.segment, read_init)
        .map_err(|source| ExportError::Io { file: first.segment.file.clone(), source })?;
    let params = bmff::track_params(&init).map_err(|error| ExportError::Damaged { file: first.segment.file.clone(), error })?;
    let timescale = params.timescale;
    let mut pieces = vec![Piece { at: 0, path: path.clone(), offset: 0, len: first.segment.init_len, patch: None }];
    let mut len = first.segment.init_len;
    let t0 = first.fragment.start;
    let mut next_decode_time = 0u64;
    let mut end = first.fragment.end();
    let mut truncated = None;
    for (n, e) in selected.iter().enumerate() {
        if n > 0 && selected[n - 1].segment.id != e.segment.id {
            let next: Arc<Path> = Arc::from(path_of(e.segment));
            if let Err(reason) = same_track(&next, e.segment, &params, read_init) {
                truncated = Some(Truncation { at: e.fragment.start, file: e.segment.file.clone(), reason });
                break;
            }
            path = next;
        }
        // Decode time from the wall clock, never overlapping the previous fragment.
        let decode_time = to_timescale(e.fragment.start.saturating_sub(t0), timescale).max(next_decode_time);
        let sequence = u32::try_from(n + 1).unwrap_or(u32::MAX);
        pieces.push(Piece {
            at: len,
            path: path.clone(),
            offset: e.fragment.offset,
            len: e.fragment.len,
            patch: Some(MoofPatch { sequence: Some(sequence), decode_time }),
        });
        len = len.checked_add(e.fragment.len).ok_or_else(|| ExportError::Damaged {
            file: e.segment.file.clone(),
            error: BmffError::Index("fragment lengths overflow".into()),
        })?;
        next_decode_time = decode_time.saturating_add(to_timescale(e.fragment.duration, timescale));
        end = e.fragment.end();
    }
    let fragments = pieces.len() - 1;
    Ok(Plan { pieces: pieces.into(), len, span: Span { start: t0, end }, fragments, truncated })
}

/// A segment file as playlists serve it: its own bytes, except that each fragment's decode
/// time (tfdt) is moved onto the wall clock: media time since the Unix epoch, in the
/// track's timescale, from the index's fragment start.
///
/// A file's decode times start at zero, so in a playlist the timeline would step back at
/// every new file. HLS allows that after `EXT-X-DISCONTINUITY`, but ffmpeg's HLS demuxer
/// drops the first GOP after each such step; on the wall clock files follow each other and
/// pauses are pauses, which every player handles. Sizes do not change, so the playlist's
/// byte ranges (file offsets) stay exact, and the virtual file has the file's layout.
pub fn segment_pieces(
    segment: &Segment,
    path: PathBuf,
    read_init: &mut dyn FnMut(&Path, u64) -> io::Result<Vec<u8>>,
) -> Result<Vec<Piece>, ExportError> {
    let path: Arc<Path> = Arc::from(path);
    let damaged = |what: String| ExportError::Damaged { file: segment.file.clone(), error: BmffError::Index(what) };
    let init = read_checked_init(&path, segment, read_init).map_err(|source| ExportError::Io { file: segment.file.clone(), source })?;
    let timescale = bmff::track_params(&init).map_err(|error| ExportError::Damaged { file: segment.file.clone(), error })?.timescale;
    let mut pieces = Vec::with_capacity(segment.fragments.len() + 1);
    let mut pos = 0u64;
    let mut next_decode_time = 0u64;
    let raw = |at: u64, len: u64| Piece { at, path: path.clone(), offset: at, len, patch: None };
    for f in &segment.fragments {
        if f.offset < pos.max(segment.init_len) {
            return Err(damaged(format!("fragment at {} overlaps the bytes before it", f.offset)));
        }
        if f.offset > pos {
            // Bytes the index does not describe (none in our files): served as they are.
            pieces.push(raw(pos, f.offset - pos));
        }
        let decode_time = to_timescale(f.start, timescale).max(next_decode_time);
        pieces.push(Piece {
            at: f.offset,
            path: path.clone(),
            offset: f.offset,
            len: f.len,
            patch: Some(MoofPatch { sequence: None, decode_time }),
        });
        next_decode_time = decode_time.saturating_add(to_timescale(f.duration, timescale));
        pos = f.offset.checked_add(f.len).ok_or_else(|| damaged(format!("fragment at {} has an impossible length", f.offset)))?;
    }
    if pos < segment.init_len {
        pieces.push(raw(pos, segment.init_len - pos));
    }
    Ok(pieces)
}

fn read_checked_init(path: &Path, segment: &Segment, read_init: &mut dyn FnMut(&Path, u64) -> io::Result<Vec<u8>>) -> io::Result<Vec<u8>> {
    if segment.init_len == 0 || segment.init_len > MAX_HEADER_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("indexed init length {} is implausible", segment.init_len)));
    }
    read_init(path, segment.init_len)
}

/// Whether a later file can continue the export's track; the reason when not.
fn same_track(
    path: &Path,
    segment: &Segment,
    params: &TrackParams,
    read_init: &mut dyn FnMut(&Path, u64) -> io::Result<Vec<u8>>,
) -> Result<(), String> {
    let init = read_checked_init(path, segment, read_init).map_err(|e| format!("its init segment cannot be read ({e})"))?;
    let other = bmff::track_params(&init).map_err(|e| format!("its init segment is damaged ({e})"))?;
    if other.timescale != params.timescale {
        return Err(format!("the track timescale changes ({} to {})", params.timescale, other.timescale));
    }
    if other.sample_description != params.sample_description {
        return Err(format!("the stream parameters change (now {} {}x{})", segment.codec, segment.width, segment.height));
    }
    Ok(())
}

/// Nanoseconds to track ticks, rounded to the nearest (negative clamps to 0).
fn to_timescale(ns: Nanos, timescale: u32) -> u64 {
    let ticks = (i128::from(ns.max(0)) * i128::from(timescale) + 500_000_000) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Reads the first `len` bytes of a file: an init segment.
pub fn read_prefix(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    File::open(path)?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads any range of a virtual file, chunk by chunk. Blocking: call it off the async
/// threads. Holds at most one open file and one patched moof.
#[derive(Debug)]
pub struct PieceReader {
    pieces: Arc<[Piece]>,
    pos: u64,
    end: u64,
    file: Option<(Arc<Path>, File)>,
    moof: Option<(usize, Bytes)>,
}

impl PieceReader {
    /// A reader of `range` (end exclusive, within the virtual file).
    pub fn new(pieces: Arc<[Piece]>, range: Range<u64>) -> Self {
        Self { pieces, pos: range.start, end: range.end, file: None, moof: None }
    }

    /// The next up to `max` bytes; `None` at the end of the range.
    pub fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let i = self.pieces.partition_point(|p| p.at + p.len <= self.pos);
        let piece = self.pieces.get(i).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the last piece"))?;
        let local = self.pos - piece.at;
        let want = (max.max(1) as u64).min(self.end - self.pos).min(piece.len - local);
        let chunk = match piece.patch {
            Some(patch) => {
                let moof = self.moof(i, &piece, patch)?;
                let moof_len = moof.len() as u64;
                if local < moof_len {
                    moof.slice(local as usize..(local + want).min(moof_len) as usize)
                } else {
                    self.read_file(&piece, local, want)?
                }
            }
            None => self.read_file(&piece, local, want)?,
        };
        self.pos += chunk.len() as u64;
        Ok(Some(chunk))
    }

    fn open(&mut self, path: &Arc<Path>) -> io::Result<&mut File> {
        if self.file.as_ref().is_none_or(|(p, _)| p != path) {
            let f = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.file = Some((path.clone(), f));
        }
        match &mut self.file {
            Some((_, f)) => Ok(f),
            None => Err(io::Error::other("no open file")),
        }
    }

    fn read_at(&mut self, path: &Arc<Path>, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let f = self.open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        f.read_exact(&mut buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: {len} bytes at {offset} are not there ({e}); the file is shorter than its index says", path.display()),
            )
        })?;
        Ok(buf)
    }

    fn read_file(&mut self, piece: &Piece, local: u64, want: u64) -> io::Result<Bytes> {
        self.read_at(&piece.path, piece.offset + local, want).map(Bytes::from)
    }

    /// The patched moof of piece `i`, read on first use.
    fn moof(&mut self, i: usize, piece: &Piece, patch: MoofPatch) -> io::Result<Bytes> {
        if let Some((at, m)) = &self.moof {
            if *at == i {
                return Ok(m.clone());
            }
        }
        let damaged = |what: String| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: fragment at {}: {what}", piece.path.display(), piece.offset))
        };
        let head = self.read_at(&piece.path, piece.offset, 16.min(piece.len))?;
        let (kind, _, size) = bmff::header(&head, 0).map_err(|e| damaged(e.to_string()))?;
        if &kind != b"moof" || size > piece.len || size > MAX_HEADER_BYTES {
            return Err(damaged(format!(
                "expected a moof of at most {} bytes, found {:?} of {size}",
                piece.len,
                String::from_utf8_lossy(&kind)
            )));
        }
        let mut moof = self.read_at(&piece.path, piece.offset, size)?;
        bmff::patch_moof(&mut moof, patch, piece.offset, piece.at).map_err(|e| damaged(e.to_string()))?;
        let moof = Bytes::from(moof);
        self.moof = Some((i, moof.clone()));
        Ok(moof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mkv::EncodedFrame;
    use crate::media::mp4::{Fmp4Writer, VideoParams};
    use crate::playback::bmff::tests::params;
    use crate::recording::Fragment;

    const SECOND: Nanos = 1_000_000_000;
    const T0: Nanos = 1_714_564_800 * SECOND;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vela-export-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a file of `gops` GOPs of 10 frames at 10 fps starting at wall time `start`,
    /// and returns its index entry.
    fn write(dir: &Path, id: u64, start: Nanos, gops: usize, p: &VideoParams) -> Segment {
        let file = format!("{id}.mp4");
        let mut w = Fmp4Writer::new(Vec::new(), p).unwrap();
        let init_len = w.position();
        let mut fragments = Vec::new();
        let base = 1_000_000i64 + id as i64 * 7;
        for g in 0..gops {
            let frames: Vec<EncodedFrame> = (0..10)
                .map(|i| {
                    let dts = base + (g * 10 + i) as i64 * 9000;
                    let mut data = vec![0, 0, 0, 9, if i == 0 { 0x65 } else { 0x41 }];
                    data.extend_from_slice(&[id as u8, g as u8, i as u8, 1, 2, 3, 4, 5]);
                    EncodedFrame { pts_90k: dts, dts_90k: dts, keyframe: i == 0, data: Bytes::from(data) }
                })
                .collect();
            let next = base + ((g + 1) * 10) as i64 * 9000;
            let info = w.write_fragment(&frames, Some(next)).unwrap();
            let ns = |ticks: i64| ticks * SECOND / 90_000;
            fragments.push(Fragment {
                offset: info.offset,
                len: info.len,
                start: start + ns(info.start_90k - base),
                duration: ns(info.duration_90k as i64),
                frames: info.frames,
            });
        }
        std::fs::write(dir.join(&file), w.finish().unwrap()).unwrap();
        Segment {
            video: "cam".into(),
            id,
            file,
            init_len,
            codec: "avc1.4d401f".into(),
            width: p.width,
            height: p.height,
            start,
            end: fragments.last().unwrap().end(),
            fragments,
            open: false,
        }
    }

    fn read_all(plan: &Plan, range: Range<u64>, chunk: usize) -> Vec<u8> {
        let mut r = PieceReader::new(plan.pieces.clone(), range);
        let mut out = Vec::new();
        while let Some(c) = r.read_chunk(chunk).unwrap() {
            assert!(!c.is_empty() && c.len() <= chunk);
            out.extend_from_slice(&c);
        }
        out
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// (sequence, tfdt) of each moof, and the mdat payloads, of a whole export.
    fn fragments_of(bytes: &[u8]) -> Vec<(u32, u64, Vec<u8>)> {
        let top = bmff::children(bytes, 0..bytes.len()).unwrap();
        assert_eq!(&top[0].kind, b"ftyp");
        assert_eq!(&top[1].kind, b"moov");
        top[2..]
            .chunks(2)
            .map(|pair| {
                assert_eq!((&pair[0].kind, &pair[1].kind), (b"moof", b"mdat"));
                let moof = &bytes[pair[0].start..pair[0].body.end];
                let mfhd = bmff::path(moof, &["moof", "mfhd"]).unwrap();
                let tfdt = bmff::path(moof, &["moof", "traf", "tfdt"]).unwrap();
                (
                    u32_at(moof, mfhd.start + 4),
                    u64::from_be_bytes(moof[tfdt.start + 4..tfdt.start + 12].try_into().unwrap()),
                    bytes[pair[1].body.clone()].to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn exports_span_files_with_renumbered_continuous_fragments() {
        let dir = scratch("span");
        let p = params();
        // 3 files of 4 GOPs (4 s each): contiguous, then a 10 s gap.
        let segs = vec![write(&dir, 1, T0, 4, &p), write(&dir, 2, T0 + 4 * SECOND, 4, &p), write(&dir, 3, T0 + 18 * SECOND, 4, &p)];
        let path_of = |s: &Segment| dir.join(&s.file);
        // From inside GOP 1 of file 1 to inside GOP 0 of file 3.
        let plan = plan(&segs, Span { start: T0 + 1_500_000_000, end: T0 + 18_500_000_000 }, &path_of, &mut read_prefix).unwrap();
        assert_eq!(plan.fragments, 3 + 4 + 1);
        assert_eq!(plan.span, Span { start: T0 + SECOND, end: T0 + 19 * SECOND });
        assert!(plan.truncated.is_none());
        let expected_len = segs[0].init_len + segs.iter().flat_map(|s| &s.fragments).skip(1).take(8).map(|f| f.len).sum::<u64>();
        assert_eq!(plan.len, expected_len);
        let bytes = read_all(&plan, 0..plan.len, 1000);
        assert_eq!(bytes.len() as u64, plan.len);
        assert_eq!(&bytes[..segs[0].init_len as usize], &std::fs::read(dir.join("1.mp4")).unwrap()[..segs[0].init_len as usize]);
        let frags = fragments_of(&bytes);
        let tfdts: Vec<u64> = frags.iter().map(|f| f.1).collect();
        // 1 s per GOP at 90 kHz; the gap of 10 s shows as a jump.
        assert_eq!(tfdts, vec![0, 90_000, 180_000, 270_000, 360_000, 450_000, 540_000, 1_530_000]);
        assert_eq!(frags.iter().map(|f| f.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<u32>>());
        // The media bytes are the files' own: file 2 GOP 3 is the 7th fragment.
        assert_eq!(frags[6].2[4..8], [0x65, 2, 3, 0]);
        // Any range reads the same bytes as the whole.
        for (a, b) in [(0, 1), (0, plan.len), (5, 700), (plan.len - 1, plan.len), (segs[0].init_len, segs[0].init_len + 3), (1234, 5678)] {
            let b = b.min(plan.len);
            assert_eq!(read_all(&plan, a..b, 333), bytes[a as usize..b as usize], "{a}..{b}");
        }
        for start in (0..plan.len).step_by(97) {
            assert_eq!(
                read_all(&plan, start..(start + 211).min(plan.len), 64),
                bytes[start as usize..(start + 211).min(plan.len) as usize]
            );
        }
        assert_eq!(plan.etag(), plan.etag());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_export_stops_where_the_stream_parameters_change() {
        let dir = scratch("params");
        let p = params();
        let mut other = p.clone();
        other.avcc[3] ^= 1; // another level: another avcC
        let segs = vec![write(&dir, 1, T0, 2, &p), write(&dir, 2, T0 + 2 * SECOND, 2, &other), write(&dir, 3, T0 + 4 * SECOND, 2, &p)];
        let path_of = |s: &Segment| dir.join(&s.file);
        let plan = plan(&segs, Span { start: T0, end: T0 + 6 * SECOND }, &path_of, &mut read_prefix).unwrap();
        assert_eq!(plan.fragments, 2);
        assert_eq!(plan.span, Span { start: T0, end: T0 + 2 * SECOND });
        let t = plan.truncated.clone().unwrap();
        assert_eq!((t.at, t.file.as_str()), (T0 + 2 * SECOND, "2.mp4"));
        assert!(t.reason.contains("stream parameters change"), "{}", t.reason);
        assert_eq!(fragments_of(&read_all(&plan, 0..plan.len, 4096)).len(), 2);
        // A missing later file also ends the export, at that file.
        std::fs::remove_file(dir.join("2.mp4")).unwrap();
        let plan2 = super::plan(&segs, Span { start: T0, end: T0 + 6 * SECOND }, &path_of, &mut read_prefix).unwrap();
        assert!(plan2.truncated.unwrap().reason.contains("cannot be read"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_to_export_and_unreadable_files_are_errors() {
        let dir = scratch("errors");
        let p = params();
        let segs = vec![write(&dir, 1, T0, 2, &p)];
        let path_of = |s: &Segment| dir.join(&s.file);
        assert!(matches!(
            plan(&segs, Span { start: T0 + 3 * SECOND, end: T0 + 4 * SECOND }, &path_of, &mut read_prefix),
            Err(ExportError::NoMedia)
        ));
        let plan1 = plan(&segs, Span { start: T0, end: T0 + 1 }, &path_of, &mut read_prefix).unwrap();
        assert_eq!(plan1.fragments, 1);
        // The file shrinks under the reader (a corrupted disk): an error, not a panic or short data.
        let f = std::fs::OpenOptions::new().write(true).open(dir.join("1.mp4")).unwrap();
        f.set_len(plan1.len - 10).unwrap();
        let mut r = PieceReader::new(plan1.pieces.clone(), 0..plan1.len);
        let mut result = Ok(Some(Bytes::new()));
        while let Ok(Some(_)) = result {
            result = r.read_chunk(1 << 20);
        }
        assert!(result.is_err());
        // A damaged first init.
        std::fs::write(dir.join("1.mp4"), vec![0u8; 4096]).unwrap();
        assert!(matches!(plan(&segs, Span { start: T0, end: T0 + 1 }, &path_of, &mut read_prefix), Err(ExportError::Damaged { .. })));
        std::fs::remove_file(dir.join("1.mp4")).unwrap();
        assert!(matches!(plan(&segs, Span { start: T0, end: T0 + 1 }, &path_of, &mut read_prefix), Err(ExportError::Io { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn segment_files_are_served_on_the_wall_clock_with_their_layout() {
        let dir = scratch("segment");
        let seg = write(&dir, 4, T0 + 1_500_000_000, 3, &params());
        let pieces: Arc<[Piece]> = segment_pieces(&seg, dir.join(&seg.file), &mut read_prefix).unwrap().into();
        let len = pieces.iter().map(|p| p.len).sum::<u64>();
        assert_eq!(len, seg.indexed_len());
        let plan = Plan { pieces, len, span: Span { start: seg.start, end: seg.end }, fragments: 3, truncated: None };
        let served = read_all(&plan, 0..len, 5000);
        let file = std::fs::read(dir.join(&seg.file)).unwrap();
        assert_eq!(served.len(), file.len());
        let frags = fragments_of(&served);
        let wall = |s: Nanos| (i128::from(s) * 90_000 / 1_000_000_000) as u64;
        assert_eq!(
            frags.iter().map(|f| f.1).collect::<Vec<_>>(),
            vec![wall(T0 + 1_500_000_000), wall(T0 + 2_500_000_000), wall(T0 + 3_500_000_000)]
        );
        // The file's own sequence numbers, and only tfdt bytes differ.
        assert_eq!(frags.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        let differing = served.iter().zip(&file).filter(|(a, b)| a != b).count();
        assert!(differing > 0 && differing <= 3 * 8, "{differing}");
        // An index whose fragments overlap is refused.
        let mut bad = seg.clone();
        bad.fragments[1].offset -= 1;
        assert!(matches!(segment_pieces(&bad, dir.join(&seg.file), &mut read_prefix), Err(ExportError::Damaged { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn decode_times_round_and_never_overlap() {
        assert_eq!(to_timescale(SECOND, 90_000), 90_000);
        assert_eq!(to_timescale(11_111, 90_000), 1);
        assert_eq!(to_timescale(-5, 90_000), 0);
        let dir = scratch("overlap");
        let p = params();
        // The second file's wall clock says it starts 0.5 s before the first ends.
        let segs = vec![write(&dir, 1, T0, 2, &p), write(&dir, 2, T0 + 1_500_000_000, 2, &p)];
        let path_of = |s: &Segment| dir.join(&s.file);
        let plan = plan(&segs, Span { start: T0, end: T0 + 10 * SECOND }, &path_of, &mut read_prefix).unwrap();
        let tfdts: Vec<u64> = fragments_of(&read_all(&plan, 0..plan.len, 4096)).iter().map(|f| f.1).collect();
        assert_eq!(tfdts, vec![0, 90_000, 180_000, 270_000]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
