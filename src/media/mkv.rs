//! Matroska/WebM demuxer for H.264: reads the first AVC video track into memory with 90 kHz timestamps.
//!
//! Scope is what cameras, recorders and ffmpeg write: the EBML header, one Segment, Info,
//! Tracks, Clusters of SimpleBlocks or BlockGroups (a Block without ReferenceBlock is a
//! keyframe), lacing, header-stripping content compression, and unknown-size Segments and
//! Clusters as live muxers write them. Everything else (SeekHead, Cues, Tags, Chapters,
//! Attachments, Void, CRC-32) is skipped. A file cut short by a crash or a copy in progress
//! yields every block that is complete; damaged structure is an error, never a panic.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use thiserror::Error;

use super::h264::{self, AvcDecoderConfig, H264Error};

/// Matroska's codec identifier for H.264 in AVCC framing.
pub const CODEC_ID_H264: &str = "V_MPEG4/ISO/AVC";

/// One H.264 video track, fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Track {
    /// Picture size after SPS frame cropping (what a decoder outputs).
    pub width: u32,
    pub height: u32,
    /// AVCDecoderConfigurationRecord: the track's CodecPrivate, or one built from in-band SPS/PPS.
    pub avcc: Vec<u8>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub nal_length_size: u8,
    /// Frames in decode (file) order.
    pub frames: Vec<EncodedFrame>,
    /// Nominal frame duration: the track's DefaultDuration, else the median frame interval.
    pub frame_duration_90k: u32,
}

/// One access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Presentation time in 90 kHz units on the file's timeline (Matroska time 0 is 0).
    pub pts_90k: i64,
    /// Decode time in 90 kHz units: equals `pts_90k` without B-frames.
    pub dts_90k: i64,
    pub keyframe: bool,
    /// AVCC: length-prefixed NAL units, as stored in the file.
    pub data: Bytes,
}

impl H264Track {
    /// RFC 6184 `profile-level-id` of the first SPS, for SDP.
    pub fn profile_level_id(&self) -> Option<String> {
        self.sps.first().and_then(|s| h264::profile_level_id(s))
    }

    /// RFC 6184 `sprop-parameter-sets`, for SDP.
    pub fn sprop_parameter_sets(&self) -> String {
        h264::sprop_parameter_sets(&self.sps, &self.pps)
    }

    /// Span from the first frame's presentation to the end of the last one.
    pub fn duration_90k(&self) -> i64 {
        let first = self.frames.iter().map(|f| f.pts_90k).min().unwrap_or(0);
        let last = self.frames.iter().map(|f| f.pts_90k).max().unwrap_or(0);
        last.saturating_sub(first).saturating_add(i64::from(self.frame_duration_90k))
    }
}

#[derive(Debug, Error)]
pub enum MkvError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a Matroska/WebM file: it does not start with an EBML header")]
    NotEbml,
    #[error("unsupported EBML document type {0:?} (expected matroska or webm)")]
    DocType(String),
    #[error("file ends inside {what} at byte {offset}")]
    Truncated { what: &'static str, offset: u64 },
    #[error("invalid {what} at byte {offset}")]
    Invalid { what: &'static str, offset: u64 },
    #[error("no Segment element after the EBML header")]
    NoSegment,
    #[error("no Tracks element before the end of the Segment")]
    NoTracks,
    #[error("no H.264 ({CODEC_ID_H264}) track; codecs present: {0:?}")]
    NoH264Track(Vec<String>),
    #[error("track {track}: invalid H.264 parameters: {source}")]
    CodecPrivate {
        track: u64,
        #[source]
        source: H264Error,
    },
    #[error("track {track} has neither CodecPrivate nor in-band SPS and PPS")]
    MissingParameterSets { track: u64 },
    #[error("track {track} uses unsupported content encoding: {what}")]
    UnsupportedEncoding { track: u64, what: &'static str },
    #[error("block at byte {offset}: {what}")]
    BadBlock { offset: u64, what: &'static str },
    #[error("cluster at byte {offset} has a block before its Timestamp")]
    MissingClusterTimestamp { offset: u64 },
    #[error("H.264 track {0} has no frames")]
    NoFrames(u64),
}

/// Reads the first H.264 track of a Matroska/WebM file held in memory.
pub fn read_h264_track(bytes: &[u8]) -> Result<H264Track, MkvError> {
    let demuxed = demux(bytes)?;
    let mut buf = Vec::with_capacity(demuxed.frames.iter().map(|f| f.payload.len() + demuxed.track.strip_prefix.len()).sum());
    let mut ranges = Vec::with_capacity(demuxed.frames.len());
    for f in &demuxed.frames {
        let start = buf.len();
        buf.extend_from_slice(&demuxed.track.strip_prefix);
        buf.extend_from_slice(&bytes[f.payload.clone()]);
        ranges.push(start..buf.len());
    }
    // One allocation for all frame data; each frame is a cheap slice of it.
    let all = Bytes::from(buf);
    finish(demuxed, |i, _| all.slice(ranges[i].clone()))
}

/// Like [`read_h264_track`], but frames share `data`'s allocation instead of copying.
pub fn read_h264_bytes(data: Bytes) -> Result<H264Track, MkvError> {
    let demuxed = demux(&data)?;
    if demuxed.track.strip_prefix.is_empty() {
        finish(demuxed, |_, range| data.slice(range))
    } else {
        read_h264_track(&data)
    }
}

/// Reads the first H.264 track of a Matroska/WebM file.
pub fn read_h264_file(path: &Path) -> Result<H264Track, MkvError> {
    let data = std::fs::read(path).map_err(|source| MkvError::Io { path: path.to_owned(), source })?;
    read_h264_bytes(Bytes::from(data))
}

/// Element IDs (with their length marker bits, as written).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const DEFAULT_DURATION: u32 = 0x23_E383;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const CONTENT_ENCODINGS: u32 = 0x6D80;
    pub const CONTENT_ENCODING: u32 = 0x6240;
    pub const CONTENT_ENCODING_SCOPE: u32 = 0x5032;
    pub const CONTENT_ENCODING_TYPE: u32 = 0x5033;
    pub const CONTENT_COMPRESSION: u32 = 0x5034;
    pub const CONTENT_COMP_ALGO: u32 = 0x4254;
    pub const CONTENT_COMP_SETTINGS: u32 = 0x4255;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const CLUSTER_TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const REFERENCE_BLOCK: u32 = 0xFB;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const ATTACHMENTS: u32 = 0x1941_A469;
    pub const CHAPTERS: u32 = 0x1043_A770;
    pub const TAGS: u32 = 0x1254_C367;
}

/// IDs that can only appear at the top two levels; one of them ends an unknown-size element.
fn ends_unknown_size(id: u32) -> bool {
    matches!(
        id,
        id::EBML | id::SEGMENT | id::SEEK_HEAD | id::INFO | id::TRACKS | id::CLUSTER | id::CUES | id::ATTACHMENTS | id::CHAPTERS | id::TAGS
    )
}

/// An element header: where its payload starts and, unless unknown-size, how long it is.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    offset: usize,
    data: usize,
    /// Declared payload size; `None` for unknown size (all value bits set).
    size: Option<u64>,
}

impl Header {
    /// End of the payload if the file holds all of it.
    fn end_within(&self, len: usize) -> Option<usize> {
        let end = (self.data as u64).checked_add(self.size?)?;
        (end <= len as u64).then_some(end as usize)
    }
}

fn invalid(what: &'static str, offset: usize) -> MkvError {
    MkvError::Invalid { what, offset: offset as u64 }
}

fn truncated(what: &'static str, offset: usize) -> MkvError {
    MkvError::Truncated { what, offset: offset as u64 }
}

/// Reads an element header at `pos`.
fn read_header(data: &[u8], pos: usize) -> Result<Header, MkvError> {
    let first = *data.get(pos).ok_or_else(|| truncated("an element header", pos))?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(invalid("element ID", pos));
    }
    let id_bytes = data.get(pos..pos + id_len).ok_or_else(|| truncated("an element ID", pos))?;
    let id = id_bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let size_pos = pos + id_len;
    let (size, size_len) = read_vint(data, size_pos, "element size")?;
    Ok(Header { id, offset: pos, data: size_pos + size_len, size })
}

/// Reads an EBML variable-size integer; `None` means "unknown" (all value bits set).
fn read_vint(data: &[u8], pos: usize, what: &'static str) -> Result<(Option<u64>, usize), MkvError> {
    let first = *data.get(pos).ok_or_else(|| truncated(what, pos))?;
    if first == 0 {
        return Err(invalid(what, pos));
    }
    let len = first.leading_zeros() as usize + 1;
    let bytes = data.get(pos..pos + len).ok_or_else(|| truncated(what, pos))?;
    let mut value = u64::from(first) & (0xff >> len);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Ok(((value != all_ones).then_some(value), len))
}

fn read_uint(payload: &[u8], offset: usize, what: &'static str) -> Result<u64, MkvError> {
    if payload.len() > 8 {
        return Err(invalid(what, offset));
    }
    Ok(payload.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn read_float(payload: &[u8], offset: usize, what: &'static str) -> Result<f64, MkvError> {
    match payload.len() {
        0 => Ok(0.0),
        4 => Ok(f64::from(f32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]))),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(payload);
            Ok(f64::from_be_bytes(b))
        }
        _ => Err(invalid(what, offset)),
    }
}

/// Iterates the children of a fully present master element payload `range`.
///
/// Children must have known sizes inside the parent: only Segments and Clusters are
/// written with unknown sizes in practice, and they are handled by their own loops.
fn children(data: &[u8], range: Range<usize>) -> impl Iterator<Item = Result<(Header, &[u8]), MkvError>> + '_ {
    let mut pos = range.start;
    let end = range.end;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= end {
            return None;
        }
        let item = read_header(&data[..end], pos).and_then(|h| {
            let child_end = h.end_within(end).ok_or_else(|| invalid("child element overflowing its parent", h.offset))?;
            pos = child_end;
            Ok((h, &data[h.data..child_end]))
        });
        failed = item.is_err();
        Some(item)
    })
}

#[derive(Debug, Default)]
struct TrackEntry {
    number: u64,
    codec_id: String,
    codec_private: Option<Vec<u8>>,
    default_duration_ns: Option<u64>,
    pixel_width: u32,
    pixel_height: u32,
    /// Bytes that header-stripping compression removed from every frame.
    strip_prefix: Vec<u8>,
    unsupported_encoding: Option<&'static str>,
}

/// A block of any track, before lacing is resolved.
#[derive(Debug)]
struct RawBlock {
    offset: usize,
    track: u64,
    /// Cluster timestamp plus the block's relative timestamp, in TimestampScale ticks.
    ticks: i64,
    keyframe: bool,
    lacing: u8,
    /// The block payload after the track number, timestamp and flags.
    payload: Range<usize>,
}

#[derive(Debug)]
struct FrameRef {
    ticks: i64,
    keyframe: bool,
    payload: Range<usize>,
}

struct Demuxed {
    timestamp_scale: u64,
    duration_ticks: Option<f64>,
    track: TrackEntry,
    frames: Vec<FrameRef>,
}

#[derive(Default)]
struct SegmentState {
    timestamp_scale: Option<u64>,
    duration_ticks: Option<f64>,
    tracks: Option<Vec<TrackEntry>>,
    blocks: Vec<RawBlock>,
}

fn demux(data: &[u8]) -> Result<Demuxed, MkvError> {
    let ebml = read_header(data, 0).map_err(|_| MkvError::NotEbml)?;
    if ebml.id != id::EBML {
        return Err(MkvError::NotEbml);
    }
    let ebml_end = ebml.end_within(data.len()).ok_or_else(|| truncated("the EBML header", 0))?;
    let mut doc_type = String::from("matroska");
    for child in children(data, ebml.data..ebml_end) {
        let (h, payload) = child?;
        if h.id == id::DOC_TYPE {
            doc_type = String::from_utf8_lossy(payload).trim_end_matches('\0').to_owned();
        }
    }
    if doc_type != "matroska" && doc_type != "webm" {
        return Err(MkvError::DocType(doc_type));
    }

    // Void or other top-level elements may sit between the header and the Segment.
    let mut pos = ebml_end;
    let segment = loop {
        if pos >= data.len() {
            return Err(MkvError::NoSegment);
        }
        let h = read_header(data, pos)?;
        if h.id == id::SEGMENT {
            break h;
        }
        pos = h.end_within(data.len()).ok_or(MkvError::NoSegment)?;
    };
    // A Segment whose declared size runs past the end is a file cut short: read what is there.
    let segment_end = segment.end_within(data.len()).unwrap_or(data.len());
    let mut state = SegmentState::default();
    let mut pos = segment.data;
    while pos < segment_end {
        let h = match read_header(&data[..segment_end], pos) {
            Ok(h) => h,
            Err(MkvError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        };
        if segment.size.is_none() && (h.id == id::EBML || h.id == id::SEGMENT) {
            break; // A chained stream's next segment: this one is over.
        }
        match h.id {
            id::CLUSTER => match parse_cluster(data, &h, segment_end, &mut state.blocks)? {
                Some(next) => pos = next,
                None => break,
            },
            id::INFO | id::TRACKS => {
                let end = match h.size {
                    Some(_) => h.end_within(segment_end).ok_or_else(|| truncated("Info or Tracks", h.offset))?,
                    None => unknown_size_end(data, h.data, segment_end)?,
                };
                if h.id == id::INFO {
                    if state.timestamp_scale.is_none() {
                        parse_info(data, h.data..end, &mut state)?;
                    }
                } else if state.tracks.is_none() {
                    state.tracks = Some(parse_tracks(data, h.data..end)?);
                }
                pos = end;
            }
            _ => match h.size {
                Some(_) => match h.end_within(segment_end) {
                    Some(end) => pos = end,
                    None => break, // Cues or Tags cut short at the end of the file.
                },
                None => pos = unknown_size_end(data, h.data, segment_end)?,
            },
        }
    }
    select_track(data, state)
}

/// Finds where an unknown-size master element ends: at the next top-level ID or the end.
fn unknown_size_end(data: &[u8], mut pos: usize, limit: usize) -> Result<usize, MkvError> {
    while pos < limit {
        let h = match read_header(&data[..limit], pos) {
            Ok(h) => h,
            Err(MkvError::Truncated { .. }) => return Ok(limit),
            Err(e) => return Err(e),
        };
        if ends_unknown_size(h.id) {
            return Ok(pos);
        }
        pos = match h.size {
            Some(_) => h.end_within(limit).unwrap_or(limit),
            None => return Err(invalid("nested unknown-size element", h.offset)),
        };
    }
    Ok(limit)
}

fn parse_info(data: &[u8], range: Range<usize>, state: &mut SegmentState) -> Result<(), MkvError> {
    let mut scale = 1_000_000; // Matroska's default: millisecond ticks.
    for child in children(data, range) {
        let (h, payload) = child?;
        match h.id {
            id::TIMESTAMP_SCALE => {
                scale = read_uint(payload, h.offset, "TimestampScale")?;
                if scale == 0 {
                    return Err(invalid("TimestampScale of zero", h.offset));
                }
            }
            id::DURATION => state.duration_ticks = Some(read_float(payload, h.offset, "Duration")?),
            _ => {}
        }
    }
    state.timestamp_scale = Some(scale);
    Ok(())
}

fn parse_tracks(data: &[u8], range: Range<usize>) -> Result<Vec<TrackEntry>, MkvError> {
    let mut tracks = Vec::new();
    for child in children(data, range) {
        let (h, entry) = child?;
        if h.id != id::TRACK_ENTRY {
            continue;
        }
        let mut t = TrackEntry::default();
        for field in children(data, h.data..h.data + entry.len()) {
            let (f, payload) = field?;
            match f.id {
                id::TRACK_NUMBER => t.number = read_uint(payload, f.offset, "TrackNumber")?,
                id::CODEC_ID => t.codec_id = String::from_utf8_lossy(payload).trim_end_matches('\0').to_owned(),
                id::CODEC_PRIVATE => t.codec_private = Some(payload.to_vec()),
                id::DEFAULT_DURATION => t.default_duration_ns = Some(read_uint(payload, f.offset, "DefaultDuration")?),
                id::VIDEO => {
                    for v in children(data, f.data..f.data + payload.len()) {
                        let (v, vp) = v?;
                        let dim = || -> Result<u32, MkvError> {
                            u32::try_from(read_uint(vp, v.offset, "pixel size")?).map_err(|_| invalid("pixel size", v.offset))
                        };
                        match v.id {
                            id::PIXEL_WIDTH => t.pixel_width = dim()?,
                            id::PIXEL_HEIGHT => t.pixel_height = dim()?,
                            _ => {}
                        }
                    }
                }
                id::CONTENT_ENCODINGS => parse_content_encodings(data, f.data..f.data + payload.len(), &mut t)?,
                _ => {}
            }
        }
        tracks.push(t);
    }
    Ok(tracks)
}

const MAX_STRIPPED_HEADER: usize = 1024;

/// Reads ContentEncodings: header stripping (mkvmerge's old default) is applied on read;
/// zlib, bzip2, LZO and encryption would need codecs this crate does not carry.
fn parse_content_encodings(data: &[u8], range: Range<usize>, t: &mut TrackEntry) -> Result<(), MkvError> {
    for enc in children(data, range) {
        let (e, payload) = enc?;
        if e.id != id::CONTENT_ENCODING {
            continue;
        }
        let (mut scope, mut kind, mut algo, mut settings) = (1, 0, 0, Vec::new());
        for field in children(data, e.data..e.data + payload.len()) {
            let (f, fp) = field?;
            match f.id {
                id::CONTENT_ENCODING_SCOPE => scope = read_uint(fp, f.offset, "ContentEncodingScope")?,
                id::CONTENT_ENCODING_TYPE => kind = read_uint(fp, f.offset, "ContentEncodingType")?,
                id::CONTENT_COMPRESSION => {
                    for c in children(data, f.data..f.data + fp.len()) {
                        let (c, cp) = c?;
                        match c.id {
                            id::CONTENT_COMP_ALGO => algo = read_uint(cp, c.offset, "ContentCompAlgo")?,
                            id::CONTENT_COMP_SETTINGS => settings = cp.to_vec(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if scope & 1 == 0 {
            continue; // Applies to CodecPrivate or later encodings only, not to frames.
        }
        match (kind, algo) {
            // Real muxers strip a few bytes; a larger prefix would be copied into every frame,
            // which is how a corrupt file could ask for gigabytes.
            (0, 3) if t.strip_prefix.len() + settings.len() > MAX_STRIPPED_HEADER => {
                t.unsupported_encoding = Some("header stripping of more than 1 KiB")
            }
            (0, 3) => t.strip_prefix.extend_from_slice(&settings),
            (0, _) => t.unsupported_encoding = Some("compression other than header stripping"),
            _ => t.unsupported_encoding = Some("encryption"),
        }
    }
    Ok(())
}

/// Parses one Cluster; returns where the next element starts, or `None` when the file ends inside it.
fn parse_cluster(data: &[u8], cluster: &Header, segment_end: usize, blocks: &mut Vec<RawBlock>) -> Result<Option<usize>, MkvError> {
    let declared_end = cluster.end_within(segment_end);
    // A known size past the end of the file means the file was cut inside this cluster.
    let cut_short = cluster.size.is_some() && declared_end.is_none();
    let end = declared_end.unwrap_or(segment_end);
    let mut cluster_ts: Option<u64> = None;
    let mut pos = cluster.data;
    while pos < end {
        let h = match read_header(&data[..end], pos) {
            Ok(h) => h,
            Err(MkvError::Truncated { .. }) if cut_short || cluster.size.is_none() => return Ok(None),
            Err(e) => return Err(e),
        };
        if cluster.size.is_none() && ends_unknown_size(h.id) {
            return Ok(Some(pos));
        }
        let Some(child_end) = h.end_within(end) else {
            if cut_short || cluster.size.is_none() {
                return Ok(None); // The last block was being written when the file ended.
            }
            return Err(invalid("cluster child overflowing its cluster", h.offset));
        };
        let payload = h.data..child_end;
        match h.id {
            id::CLUSTER_TIMESTAMP => cluster_ts = Some(read_uint(&data[payload], h.offset, "cluster Timestamp")?),
            id::SIMPLE_BLOCK => {
                let base = cluster_ts.ok_or(MkvError::MissingClusterTimestamp { offset: cluster.offset as u64 })?;
                blocks.push(parse_block_header(data, payload, base)?);
            }
            id::BLOCK_GROUP => {
                let base = cluster_ts.ok_or(MkvError::MissingClusterTimestamp { offset: cluster.offset as u64 })?;
                let mut block = None;
                let mut referenced = false;
                for child in children(data, payload) {
                    let (c, cp) = child?;
                    match c.id {
                        id::BLOCK => block = Some(parse_block_header(data, c.data..c.data + cp.len(), base)?),
                        id::REFERENCE_BLOCK => referenced = true,
                        _ => {}
                    }
                }
                // Without a ReferenceBlock the frame depends on nothing: a keyframe.
                if let Some(mut b) = block {
                    b.keyframe = !referenced;
                    blocks.push(b);
                }
            }
            _ => {}
        }
        pos = child_end;
    }
    Ok(if cut_short { None } else { Some(end) })
}

/// Reads a Block/SimpleBlock header: track number, relative timestamp, flags.
fn parse_block_header(data: &[u8], range: Range<usize>, cluster_ts: u64) -> Result<RawBlock, MkvError> {
    let body = &data[range.clone()];
    let (track, n) = read_vint(body, 0, "block track number").map_err(|_| bad_block(range.start, "invalid track number"))?;
    let track = track.ok_or_else(|| bad_block(range.start, "reserved track number"))?;
    let rest = body.get(n..n + 3).ok_or_else(|| bad_block(range.start, "block shorter than its header"))?;
    let relative = i64::from(i16::from_be_bytes([rest[0], rest[1]]));
    let flags = rest[2];
    let ticks =
        i64::try_from(cluster_ts).ok().and_then(|t| t.checked_add(relative)).ok_or_else(|| bad_block(range.start, "timestamp overflow"))?;
    // The keyframe bit is SimpleBlock's; BlockGroups overwrite it from ReferenceBlock.
    Ok(RawBlock {
        offset: range.start,
        track,
        ticks,
        keyframe: flags & 0x80 != 0,
        lacing: (flags >> 1) & 0x03,
        payload: range.start + n + 3..range.end,
    })
}

fn bad_block(offset: usize, what: &'static str) -> MkvError {
    MkvError::BadBlock { offset: offset as u64, what }
}

/// Splits a laced block payload into its frames (Matroska 10.3: Xiph, fixed-size, EBML).
fn split_lacing(data: &[u8], block: &RawBlock) -> Result<Vec<Range<usize>>, MkvError> {
    let payload = block.payload.clone();
    if block.lacing == 0 {
        return Ok(vec![payload]);
    }
    let bad = |what| bad_block(block.offset, what);
    let body = &data[payload.clone()];
    let count = usize::from(*body.first().ok_or_else(|| bad("laced block without a frame count"))?) + 1;
    let mut pos = 1;
    let mut sizes = Vec::with_capacity(count);
    match block.lacing {
        1 => {
            for _ in 0..count - 1 {
                let mut size = 0usize;
                loop {
                    let b = *body.get(pos).ok_or_else(|| bad("Xiph lace sizes run past the block"))?;
                    pos += 1;
                    size += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        3 => {
            let (first, n) = read_vint(body, pos, "EBML lace size").map_err(|_| bad("invalid EBML lace size"))?;
            let mut size = first.ok_or_else(|| bad("invalid EBML lace size"))? as i64;
            pos += n;
            if count > 1 {
                sizes.push(usize::try_from(size).map_err(|_| bad("invalid EBML lace size"))?);
            }
            for _ in 1..count.saturating_sub(1) {
                let (raw, n) = read_vint(body, pos, "EBML lace size").map_err(|_| bad("invalid EBML lace size"))?;
                let raw = raw.ok_or_else(|| bad("invalid EBML lace size"))? as i64;
                pos += n;
                // Signed deltas are stored with a bias of half the range of an n-byte vint.
                let bias = (1i64 << (7 * n - 1)) - 1;
                size = size.checked_add(raw - bias).filter(|s| *s >= 0).ok_or_else(|| bad("negative EBML lace size"))?;
                sizes.push(size as usize);
            }
        }
        _ => {
            let total = body.len() - pos;
            if total % count != 0 {
                return Err(bad("fixed-size lacing does not divide the block"));
            }
            sizes.extend(std::iter::repeat_n(total / count, count - 1));
        }
    }
    let listed: usize = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)).ok_or_else(|| bad("lace sizes overflow"))?;
    let last = (body.len() - pos).checked_sub(listed).ok_or_else(|| bad("lace sizes exceed the block"))?;
    sizes.push(last);
    let mut start = payload.start + pos;
    Ok(sizes
        .into_iter()
        .map(|s| {
            let r = start..start + s;
            start += s;
            r
        })
        .collect())
}

/// Picks the first H.264 track and resolves its blocks (lacing included) into frames.
fn select_track(data: &[u8], state: SegmentState) -> Result<Demuxed, MkvError> {
    let tracks = state.tracks.ok_or(MkvError::NoTracks)?;
    let Some(index) = tracks.iter().position(|t| t.codec_id == CODEC_ID_H264) else {
        return Err(MkvError::NoH264Track(tracks.into_iter().map(|t| t.codec_id).collect()));
    };
    let track = tracks.into_iter().nth(index).ok_or(MkvError::NoTracks)?;
    if let Some(what) = track.unsupported_encoding {
        return Err(MkvError::UnsupportedEncoding { track: track.number, what });
    }
    let timestamp_scale = state.timestamp_scale.unwrap_or(1_000_000);
    // Laced frames share their block's timestamp; DefaultDuration spaces them out.
    let lace_step = track.default_duration_ns.map_or(0, |d| i64::try_from(d / timestamp_scale).unwrap_or(0));
    let mut frames = Vec::new();
    for block in state.blocks.iter().filter(|b| b.track == track.number) {
        for (i, payload) in split_lacing(data, block)?.into_iter().enumerate() {
            let ticks = block.ticks.saturating_add(lace_step.saturating_mul(i as i64));
            // Only the first frame of a laced keyframe block is known to be decodable alone.
            frames.push(FrameRef { ticks, keyframe: block.keyframe && i == 0, payload });
        }
    }
    Ok(Demuxed { timestamp_scale, duration_ticks: state.duration_ticks, frames, track })
}

/// Converts TimestampScale ticks to 90 kHz units, rounding to nearest; saturates for the
/// absurd values a corrupt TimestampScale can produce.
fn ticks_to_90k(ticks: i64, scale_ns: u64) -> i64 {
    let saturated = if ticks < 0 { i64::MIN } else { i64::MAX };
    let Some(num) = i128::from(ticks).checked_mul(i128::from(scale_ns)).and_then(|n| n.checked_mul(9)) else {
        return saturated;
    };
    i64::try_from((num + 50_000).div_euclid(100_000)).unwrap_or(saturated)
}

/// Decode times for frames in decode order: the sorted presentation times, shifted back by
/// the largest reordering so that no frame is decoded after it is presented.
///
/// Matroska stores presentation times only; this is how a demuxer recovers a valid DTS
/// sequence, and it is the identity for streams without B-frames.
fn derive_dts(pts: &[i64]) -> Vec<i64> {
    let mut sorted = pts.to_vec();
    sorted.sort_unstable();
    let shift = sorted.iter().zip(pts).map(|(s, p)| s.saturating_sub(*p)).max().unwrap_or(0).max(0);
    sorted.into_iter().map(|s| s.saturating_sub(shift)).collect()
}

/// Median of the positive intervals between consecutive presentation times.
fn median_interval(pts: &[i64]) -> Option<i64> {
    let mut sorted = pts.to_vec();
    sorted.sort_unstable();
    let mut deltas: Vec<i64> = sorted.windows(2).map(|w| w[1].saturating_sub(w[0])).filter(|d| *d > 0).collect();
    if deltas.is_empty() {
        return None;
    }
    let mid = deltas.len() / 2;
    Some(*deltas.select_nth_unstable(mid).1)
}

/// Collects the first SPS and PPS carried inside frames, for tracks without CodecPrivate.
fn in_band_parameter_sets(frames: &[EncodedFrame], length_size: u8) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    for frame in frames {
        for nal in h264::avcc_nals(&frame.data, length_size).map_while(Result::ok) {
            match h264::nal_unit_type(nal) {
                Some(h264::nal_type::SPS) if sps.is_empty() => sps.push(nal.to_vec()),
                Some(h264::nal_type::PPS) if pps.is_empty() => pps.push(nal.to_vec()),
                _ => {}
            }
        }
        if !sps.is_empty() && !pps.is_empty() {
            break;
        }
    }
    (sps, pps)
}

/// Nominal frame duration when a one-frame track says nothing about its rate (30 fps).
const FALLBACK_FRAME_DURATION_90K: i64 = 3000;

fn finish(d: Demuxed, mut slice: impl FnMut(usize, Range<usize>) -> Bytes) -> Result<H264Track, MkvError> {
    let track_number = d.track.number;
    if d.frames.is_empty() {
        return Err(MkvError::NoFrames(track_number));
    }
    let pts: Vec<i64> = d.frames.iter().map(|f| ticks_to_90k(f.ticks, d.timestamp_scale)).collect();
    let dts = derive_dts(&pts);
    let frames: Vec<EncodedFrame> = d
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| EncodedFrame { pts_90k: pts[i], dts_90k: dts[i], keyframe: f.keyframe, data: slice(i, f.payload.clone()) })
        .collect();

    let config_error = |source| MkvError::CodecPrivate { track: track_number, source };
    // Some live muxers write an empty CodecPrivate: treat it like a missing one.
    let private = d.track.codec_private.as_ref().filter(|p| !p.is_empty());
    let config = match private {
        Some(private) => AvcDecoderConfig::parse(private).map_err(config_error)?,
        None => {
            // Live muxers may leave parameter sets in-band; AVCC there is 4-byte framed by convention.
            let (sps, pps) = in_band_parameter_sets(&frames, 4);
            if sps.is_empty() || pps.is_empty() {
                return Err(MkvError::MissingParameterSets { track: track_number });
            }
            AvcDecoderConfig::from_parameter_sets(sps, pps, 4).map_err(config_error)?
        }
    };
    let avcc = match private {
        Some(private) => private.clone(),
        None => config.to_bytes().map_err(config_error)?,
    };
    // The SPS is what a decoder obeys, so it wins over the container's PixelWidth/Height
    // (they agree in well-formed files); the container covers SPS syntax we cannot parse.
    let (width, height) = match config.sps.first().map(|s| h264::parse_sps(s)) {
        Some(Ok(info)) => (info.width, info.height),
        _ => (d.track.pixel_width, d.track.pixel_height),
    };
    let frame_duration = d
        .track
        .default_duration_ns
        .filter(|ns| *ns > 0)
        .map(|ns| ticks_to_90k(i64::try_from(ns).unwrap_or(i64::MAX), 1))
        .or_else(|| median_interval(&pts))
        .or_else(|| d.duration_ticks.filter(|t| t.is_finite() && *t > 0.0).map(|t| ticks_to_90k(t.round() as i64, d.timestamp_scale)))
        .filter(|v| *v > 0)
        .unwrap_or(FALLBACK_FRAME_DURATION_90K);
    Ok(H264Track {
        width,
        height,
        avcc,
        sps: config.sps,
        pps: config.pps,
        nal_length_size: config.nal_length_size,
        frames,
        frame_duration_90k: u32::try_from(frame_duration).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes EBML the way muxers do, for structures the sample footage does not contain.
    fn el(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = id_bytes(id);
        out.push(0x01); // 8-byte size vint: simple and valid for any payload length here.
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(payload);
        out
    }

    fn id_bytes(id: u32) -> Vec<u8> {
        id.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect()
    }

    /// An element with unknown size (all value bits set in a one-byte vint).
    fn unknown(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = id_bytes(id);
        out.push(0xff);
        out.extend_from_slice(payload);
        out
    }

    fn uint(id: u32, v: u64) -> Vec<u8> {
        el(id, &v.to_be_bytes())
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    const VTEST_AVCC: &str = "014d401fffe10016674d401fd900c0126840000003004000000503c60c9201000568ebc24b20";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn ebml_header(doc_type: &str) -> Vec<u8> {
        el(id::EBML, &cat(&[uint(0x4286, 1), el(id::DOC_TYPE, doc_type.as_bytes())]))
    }

    fn info(scale: u64) -> Vec<u8> {
        el(id::INFO, &cat(&[uint(id::TIMESTAMP_SCALE, scale), el(id::DURATION, &1000.0f64.to_be_bytes())]))
    }

    fn track(number: u64, codec: &str, private: Option<&[u8]>, extra: &[u8]) -> Vec<u8> {
        let mut body = cat(&[uint(id::TRACK_NUMBER, number), uint(0x83, 1), el(id::CODEC_ID, codec.as_bytes())]);
        if let Some(p) = private {
            body.extend(el(id::CODEC_PRIVATE, p));
        }
        body.extend(el(id::VIDEO, &cat(&[uint(id::PIXEL_WIDTH, 768), uint(id::PIXEL_HEIGHT, 576)])));
        body.extend_from_slice(extra);
        el(id::TRACK_ENTRY, &body)
    }

    fn block_body(track: u8, rel: i16, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | track];
        out.extend_from_slice(&rel.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(data);
        out
    }

    fn simple(track: u8, rel: i16, key: bool, data: &[u8]) -> Vec<u8> {
        el(id::SIMPLE_BLOCK, &block_body(track, rel, if key { 0x80 } else { 0 }, data))
    }

    /// An AVCC frame: one 4-byte-length NAL of the given type and a marker byte.
    fn frame(nal_type: u8, marker: u8) -> Vec<u8> {
        vec![0, 0, 0, 2, nal_type, marker]
    }

    fn file(segment: &[u8]) -> Vec<u8> {
        cat(&[ebml_header("matroska"), el(id::SEGMENT, segment)])
    }

    fn tracks_with_audio() -> Vec<u8> {
        el(id::TRACKS, &cat(&[track(1, "A_AAC", None, &[]), track(2, CODEC_ID_H264, Some(&hex(VTEST_AVCC)), &[])]))
    }

    #[test]
    fn block_groups_references_and_skipped_elements() {
        let cluster = el(
            id::CLUSTER,
            &cat(&[
                el(0xBF, &[0; 4]), // CRC-32
                uint(id::CLUSTER_TIMESTAMP, 1000),
                el(id::BLOCK_GROUP, &el(id::BLOCK, &block_body(2, 0, 0, &frame(0x65, 1)))),
                simple(1, 0, true, b"audio"),
                el(id::BLOCK_GROUP, &cat(&[el(id::BLOCK, &block_body(2, 40, 0, &frame(0x41, 2))), uint(id::REFERENCE_BLOCK, 0xff)])),
                el(0xEC, &[0; 7]), // Void
                el(
                    id::BLOCK_GROUP,
                    &cat(&[uint(0x9B, 40), el(id::BLOCK, &block_body(2, 80, 0, &frame(0x41, 3))), uint(id::REFERENCE_BLOCK, 1)]),
                ),
            ]),
        );
        let data = file(&cat(&[
            el(id::SEEK_HEAD, &[0x4d, 0xbb, 0x80]),
            info(1_000_000),
            tracks_with_audio(),
            el(id::TAGS, b"ignored"),
            cluster,
            el(id::CUES, b"ignored"),
        ]));
        let t = read_h264_track(&data).unwrap();
        let got: Vec<(i64, bool, u8)> = t.frames.iter().map(|f| (f.pts_90k, f.keyframe, f.data[5])).collect();
        assert_eq!(got, vec![(90_000, true, 1), (93_600, false, 2), (97_200, false, 3)]);
        assert_eq!((t.width, t.height, t.frame_duration_90k, t.nal_length_size), (768, 576, 3600, 4));
        assert_eq!(t.avcc, hex(VTEST_AVCC));
        assert_eq!(t.sprop_parameter_sets(), "Z01AH9kAwBJoQAAAAwBAAAAFA8YMkg==,aOvCSyA=");
    }

    #[test]
    fn unknown_size_segment_and_clusters() {
        let cluster = |ts: u64, first: i16| {
            unknown(
                id::CLUSTER,
                &cat(&[
                    uint(id::CLUSTER_TIMESTAMP, ts),
                    simple(2, first, true, &frame(0x65, 0)),
                    simple(2, first + 100, false, &frame(0x41, 0)),
                ]),
            )
        };
        let data = cat(&[
            ebml_header("webm"),
            unknown(
                id::SEGMENT,
                &cat(&[info(1_000_000), tracks_with_audio(), cluster(0, 0), cluster(200, 0), el(id::CUES, b"x"), cluster(400, 0)]),
            ),
        ]);
        let t = read_h264_track(&data).unwrap();
        let pts: Vec<i64> = t.frames.iter().map(|f| f.pts_90k / 90).collect();
        assert_eq!(pts, vec![0, 100, 200, 300, 400, 500]);
        assert_eq!(t.frame_duration_90k, 9000);
    }

    #[test]
    fn timestamp_scale_and_negative_relative_times() {
        // 100 µs ticks; a B-frame-like order: presented 0, 3, 1, 2 frames later.
        let cluster = el(
            id::CLUSTER,
            &cat(&[
                uint(id::CLUSTER_TIMESTAMP, 1000),
                simple(2, -1000, true, &frame(0x65, 0)),
                simple(2, -700, false, &frame(0x41, 1)),
                simple(2, -900, false, &frame(0x01, 2)),
                simple(2, -800, false, &frame(0x01, 3)),
            ]),
        );
        let t = read_h264_track(&file(&cat(&[info(100_000), tracks_with_audio(), cluster]))).unwrap();
        let pts: Vec<i64> = t.frames.iter().map(|f| f.pts_90k).collect();
        let dts: Vec<i64> = t.frames.iter().map(|f| f.dts_90k).collect();
        assert_eq!(pts, vec![0, 2700, 900, 1800]);
        // Sorted pts shifted back by the largest reordering: one frame interval.
        assert_eq!(dts, vec![-900, 0, 900, 1800]);
        assert!(t.frames.iter().all(|f| f.dts_90k <= f.pts_90k));
    }

    #[test]
    fn lacing_and_default_duration() {
        let extra = uint(id::DEFAULT_DURATION, 40_000_000);
        let tracks = el(id::TRACKS, &track(1, CODEC_ID_H264, Some(&hex(VTEST_AVCC)), &extra));
        let (a, b, c) = (frame(0x65, 1), frame(0x41, 2), [0, 0, 0, 3, 0x41, 3, 3]);
        let xiph = cat(&[vec![2, a.len() as u8, b.len() as u8], a.clone(), b.clone(), c.to_vec()]);
        // EBML lacing: first size 6, then a signed delta of +1 (bias 63 in one byte).
        let ebml = cat(&[vec![2, 0x80 | 6, 0x80 | (63 + 1)], a.clone(), c.to_vec(), b.clone()]);
        let fixed = cat(&[vec![1], a.clone(), b.clone()]);
        let cluster = el(
            id::CLUSTER,
            &cat(&[
                uint(id::CLUSTER_TIMESTAMP, 0),
                el(id::SIMPLE_BLOCK, &block_body(1, 0, 0x80 | 0x02, &xiph)),
                el(id::SIMPLE_BLOCK, &block_body(1, 120, 0x06, &ebml)),
                el(id::SIMPLE_BLOCK, &block_body(1, 240, 0x04, &fixed)),
            ]),
        );
        let t = read_h264_track(&file(&cat(&[info(1_000_000), tracks, cluster]))).unwrap();
        let got: Vec<(i64, bool, usize)> = t.frames.iter().map(|f| (f.pts_90k / 90, f.keyframe, f.data.len())).collect();
        assert_eq!(
            got,
            vec![
                (0, true, 6),
                (40, false, 6),
                (80, false, 7),
                (120, false, 6),
                (160, false, 7),
                (200, false, 6),
                (240, false, 6),
                (280, false, 6)
            ]
        );
        assert_eq!(t.frame_duration_90k, 3600);
    }

    #[test]
    fn header_stripping_and_in_band_parameter_sets() {
        // mkvmerge-style header removal of the 4-byte length's leading zeros; no CodecPrivate,
        // so the parameter sets come from the first keyframe.
        let compression = el(id::CONTENT_COMPRESSION, &cat(&[uint(id::CONTENT_COMP_ALGO, 3), el(id::CONTENT_COMP_SETTINGS, &[0, 0])]));
        let encodings = el(id::CONTENT_ENCODINGS, &el(id::CONTENT_ENCODING, &compression));
        let tracks = el(id::TRACKS, &track(1, CODEC_ID_H264, None, &encodings));
        let sps = hex("674d401fd900c0126840000003004000000503c60c92");
        let pps = hex("68ebc24b20");
        let mut key = Vec::new();
        for nal in [&sps[..], &pps[..], &[0x65, 9][..]] {
            h264::push_length_prefixed(nal, 4, &mut key).unwrap();
        }
        let cluster = el(
            id::CLUSTER,
            &cat(&[uint(id::CLUSTER_TIMESTAMP, 0), simple(1, 0, true, &key[2..]), simple(1, 100, false, &frame(0x41, 1)[2..])]),
        );
        let data = file(&cat(&[info(1_000_000), tracks, cluster]));
        for t in [read_h264_track(&data).unwrap(), read_h264_bytes(Bytes::from(data.clone())).unwrap()] {
            assert_eq!(&t.frames[0].data[..], &key[..]);
            assert_eq!(&t.frames[1].data[..], &frame(0x41, 1)[..]);
            assert_eq!(t.sps, vec![sps.clone()]);
            assert_eq!(t.avcc, hex(VTEST_AVCC));
            assert_eq!((t.width, t.height), (768, 576));
        }
        let zlib = el(id::CONTENT_COMPRESSION, &uint(id::CONTENT_COMP_ALGO, 0));
        let tracks = el(id::TRACKS, &track(1, CODEC_ID_H264, None, &el(id::CONTENT_ENCODINGS, &el(id::CONTENT_ENCODING, &zlib))));
        let err = read_h264_track(&file(&cat(&[info(1_000_000), tracks]))).unwrap_err();
        assert!(matches!(err, MkvError::UnsupportedEncoding { track: 1, .. }), "{err}");
    }

    #[test]
    fn errors_are_specific() {
        assert!(matches!(read_h264_track(b""), Err(MkvError::NotEbml)));
        assert!(matches!(read_h264_track(b"RIFF....AVI "), Err(MkvError::NotEbml)));
        assert!(matches!(read_h264_track(&ebml_header("mp4")), Err(MkvError::DocType(d)) if d == "mp4"));
        assert!(matches!(read_h264_track(&ebml_header("matroska")), Err(MkvError::NoSegment)));
        assert!(matches!(read_h264_track(&file(&info(1_000_000))), Err(MkvError::NoTracks)));
        let audio_only = file(&el(id::TRACKS, &track(1, "A_OPUS", None, &[])));
        assert!(matches!(read_h264_track(&audio_only), Err(MkvError::NoH264Track(c)) if c == vec!["A_OPUS".to_string()]));
        let empty = file(&tracks_with_audio());
        assert!(matches!(read_h264_track(&empty), Err(MkvError::NoFrames(2))));
        let no_ts = file(&cat(&[tracks_with_audio(), el(id::CLUSTER, &simple(2, 0, true, &frame(0x65, 0)))]));
        assert!(matches!(read_h264_track(&no_ts), Err(MkvError::MissingClusterTimestamp { .. })));
        let bad_private = file(&cat(&[
            el(id::TRACKS, &track(1, CODEC_ID_H264, Some(&[1, 2]), &[])),
            el(id::CLUSTER, &cat(&[uint(id::CLUSTER_TIMESTAMP, 0), simple(1, 0, true, &frame(0x65, 0))])),
        ]));
        assert!(matches!(read_h264_track(&bad_private), Err(MkvError::CodecPrivate { track: 1, .. })));
        let missing = std::path::Path::new("/nonexistent/vela.mkv");
        assert!(matches!(read_h264_file(missing), Err(MkvError::Io { .. })));
    }

    fn bikes() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media/bikes.mkv")).unwrap()
    }

    #[test]
    fn file_cut_inside_a_cluster_yields_its_complete_blocks() {
        let data = bikes();
        let full = read_h264_track(&data).unwrap();
        let cut = read_h264_track(&data[..data.len() / 2]).unwrap();
        assert!(cut.frames.len() > 100 && cut.frames.len() < full.frames.len(), "{}", cut.frames.len());
        assert_eq!(cut.frames[..], full.frames[..cut.frames.len()]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A prefix of a real file never panics, and what it yields is a prefix of the frames.
        #[test]
        fn truncated_real_file(cut in 0usize..560_018) {
            let data = bikes();
            let full = read_h264_track(&data).unwrap();
            if let Ok(t) = read_h264_track(&data[..cut.min(data.len())]) {
                prop_assert!(t.frames.len() <= full.frames.len());
                prop_assert_eq!(&t.frames[..], &full.frames[..t.frames.len()]);
            }
        }

        /// Bit flips anywhere (headers most interesting) must give a result or an error, not a panic.
        #[test]
        fn bit_flipped_real_file(flips in proptest::collection::vec((0usize..4096, 0u8..8), 1..8), tail in any::<bool>()) {
            let mut data = bikes();
            let len = data.len();
            for (pos, bit) in flips {
                // Half the cases hit the first 4 KiB (EBML header, Info, Tracks, first cluster
                // header), the rest spread over the file.
                let at = if tail { pos * (len / 4096) } else { pos };
                data[at] ^= 1 << bit;
            }
            let _ = read_h264_track(&data);
        }

        /// Arbitrary bytes after a valid EBML header and Segment start.
        #[test]
        fn garbage_segment(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_h264_track(&file(&body));
            let _ = read_h264_track(&cat(&[ebml_header("matroska"), unknown(id::SEGMENT, &body)]));
        }
    }
}
