//! Fragmented MP4 (ISO BMFF) writer for H.264: an init segment, then self-contained moof+mdat fragments.
//!
//! Recordings are written fragment by fragment so that a file cut by power loss still plays
//! up to its last complete fragment: the moov carries no sample tables, and each moof says
//! where its samples are relative to itself (default-base-is-moof) and when they decode
//! (tfdt). The same building blocks give HLS/DASH init and media segments.
//!
//! Timestamps are 90 kHz throughout (the RTP clock of H.264), so the track timescale is
//! 90000 and no rescaling error creeps in.

use std::io::Write;

use thiserror::Error;

use super::h264::{self, AvcDecoderConfig, H264Error};
use super::mkv::{EncodedFrame, H264Track};

/// Track timescale: the 90 kHz clock of every timestamp in the media core.
pub const TIMESCALE: u32 = 90_000;

/// Movie-level timescale (mvhd); only used for durations, which are zero in fragmented files.
const MOVIE_TIMESCALE: u32 = 1000;

const TRACK_ID: u32 = 1;

/// ISO/IEC 14496-12 sample flags: "depends on nothing" for sync samples, "depends on
/// others" plus is_non_sync_sample for the rest.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// What the init segment needs to describe an H.264 track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    /// AVCDecoderConfigurationRecord, written as the avcC box.
    pub avcc: Vec<u8>,
    /// Nominal frame duration: trex's default, and the last frame's duration when the
    /// caller cannot say when the next frame decodes.
    pub frame_duration_90k: u32,
}

impl VideoParams {
    /// Parameters of a demuxed file's track, for remuxing it.
    pub fn from_track(track: &H264Track) -> Self {
        Self { width: track.width, height: track.height, avcc: track.avcc.clone(), frame_duration_90k: track.frame_duration_90k }
    }

    /// Builds parameters from an avcC alone (picture size from its first SPS), as an RTSP source has them.
    pub fn from_avcc(avcc: Vec<u8>, frame_duration_90k: u32) -> Result<Self, Mp4Error> {
        let config = AvcDecoderConfig::parse(&avcc).map_err(Mp4Error::InvalidAvcc)?;
        let sps = config.sps.first().ok_or(Mp4Error::InvalidParams("the avcC has no SPS"))?;
        let info = h264::parse_sps(sps).map_err(Mp4Error::InvalidAvcc)?;
        Ok(Self { width: info.width, height: info.height, avcc, frame_duration_90k })
    }

    /// Checks what the boxes can represent; returns the NAL length size samples must use.
    fn validate(&self) -> Result<u8, Mp4Error> {
        if self.width == 0 || self.height == 0 || self.width > 0xffff || self.height > 0xffff {
            return Err(Mp4Error::InvalidParams("width and height must be 1..=65535"));
        }
        if self.frame_duration_90k == 0 {
            return Err(Mp4Error::InvalidParams("frame duration must be positive"));
        }
        let config = AvcDecoderConfig::parse(&self.avcc).map_err(Mp4Error::InvalidAvcc)?;
        Ok(config.nal_length_size)
    }
}

#[derive(Debug, Error)]
pub enum Mp4Error {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("an earlier write failed, so the output ends at an unknown point; start a new file")]
    Poisoned,
    #[error("invalid video parameters: {0}")]
    InvalidParams(&'static str),
    #[error("invalid avcC: {0}")]
    InvalidAvcc(#[source] H264Error),
    #[error("a fragment needs at least one frame")]
    EmptyFragment,
    #[error("the first fragment of a file must start with a keyframe")]
    FirstFragmentNotKeyframe,
    #[error("decode times must increase: frame {index} has dts {dts} after {previous}")]
    DtsNotIncreasing { index: usize, previous: i64, dts: i64 },
    #[error("frame {index} decodes at {dts}, before the file's base decode time {base}")]
    BeforeBaseDecodeTime { index: usize, dts: i64, base: i64 },
    #[error("frame {index}: {what} {value} does not fit its MP4 field")]
    OutOfRange { index: usize, what: &'static str, value: i128 },
    #[error("frame {index} is empty")]
    EmptySample { index: usize },
    #[error("frame {index} is not valid AVCC with {length_size}-byte lengths: {source}")]
    InvalidSample {
        index: usize,
        length_size: u8,
        #[source]
        source: H264Error,
    },
}

/// Where a keyframe landed, for seeking in a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeOffset {
    /// Index of the sample within its fragment.
    pub sample: u32,
    pub pts_90k: i64,
    /// Offset of the sample's data from the start of the output (or of the segment, for
    /// [`media_segment`]); a reader still needs the fragment's moof to decode from here.
    pub offset: u64,
}

/// What a recording index needs to know about one written fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    /// moof sequence number (1 for the first fragment of a file).
    pub sequence: u32,
    /// Offset of the moof from the start of the output.
    pub offset: u64,
    /// Bytes of moof plus mdat.
    pub len: u64,
    /// Decode time of the first frame, on the caller's timeline.
    pub start_90k: i64,
    /// Sum of the sample durations.
    pub duration_90k: u64,
    pub frames: u32,
    pub keyframe_offsets: Vec<KeyframeOffset>,
}

/// How a fragment's frames map onto the track's decode timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentTiming {
    /// The caller's decode time that becomes track time zero (tfdt counts from it).
    pub base_dts_90k: i64,
    /// Decode time of the frame after this fragment, when known: it fixes the last frame's
    /// duration exactly. Otherwise the nominal frame duration is used.
    pub next_dts_90k: Option<i64>,
    pub default_duration_90k: u32,
}

/// A built moof+mdat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSegment {
    pub bytes: Vec<u8>,
    pub duration_90k: u64,
    /// Keyframe offsets relative to the start of `bytes`.
    pub keyframe_offsets: Vec<KeyframeOffset>,
}

/// Builds ftyp + moov for one H.264 track with empty sample tables and mvex.
pub fn init_segment(params: &VideoParams) -> Result<Vec<u8>, Mp4Error> {
    params.validate()?;
    let mut b = Boxes::default();
    let ftyp = b.open(b"ftyp");
    // iso5 is the first brand that allows default-base-is-moof; players key on it.
    b.bytes(b"iso5");
    b.u32(512);
    for brand in [b"iso5", b"iso6", b"mp41"] {
        b.bytes(brand);
    }
    b.close(ftyp);

    let moov = b.open(b"moov");
    let mvhd = b.open_full(b"mvhd", 0, 0);
    b.u32(0); // creation_time
    b.u32(0); // modification_time
    b.u32(MOVIE_TIMESCALE);
    b.u32(0); // duration: unknown until the file ends, and fragments carry their own
    b.u32(0x0001_0000); // rate 1.0
    b.u16(0x0100); // volume 1.0
    b.zeros(10);
    b.matrix();
    b.zeros(24); // pre_defined
    b.u32(TRACK_ID + 1); // next_track_ID
    b.close(mvhd);

    let trak = b.open(b"trak");
    let tkhd = b.open_full(b"tkhd", 0, 0x000003); // enabled, in movie
    b.u32(0);
    b.u32(0);
    b.u32(TRACK_ID);
    b.u32(0); // reserved
    b.u32(0); // duration
    b.zeros(8);
    b.u16(0); // layer
    b.u16(0); // alternate_group
    b.u16(0); // volume: video
    b.u16(0);
    b.matrix();
    b.u32(params.width << 16); // 16.16 fixed point
    b.u32(params.height << 16);
    b.close(tkhd);

    let mdia = b.open(b"mdia");
    let mdhd = b.open_full(b"mdhd", 0, 0);
    b.u32(0);
    b.u32(0);
    b.u32(TIMESCALE);
    b.u32(0);
    b.u16(0x55c4); // language "und", packed ISO-639-2/T
    b.u16(0);
    b.close(mdhd);
    let hdlr = b.open_full(b"hdlr", 0, 0);
    b.u32(0);
    b.bytes(b"vide");
    b.zeros(12);
    b.bytes(b"VideoHandler\0");
    b.close(hdlr);

    let minf = b.open(b"minf");
    let vmhd = b.open_full(b"vmhd", 0, 1);
    b.zeros(8); // graphicsmode, opcolor
    b.close(vmhd);
    let dinf = b.open(b"dinf");
    let dref = b.open_full(b"dref", 0, 0);
    b.u32(1);
    let url = b.open_full(b"url ", 0, 1); // flag 1: media data is in this file
    b.close(url);
    b.close(dref);
    b.close(dinf);

    let stbl = b.open(b"stbl");
    let stsd = b.open_full(b"stsd", 0, 0);
    b.u32(1);
    let avc1 = b.open(b"avc1");
    b.zeros(6);
    b.u16(1); // data_reference_index
    b.zeros(16); // pre_defined, reserved
    b.u16(params.width as u16);
    b.u16(params.height as u16);
    b.u32(0x0048_0000); // 72 dpi
    b.u32(0x0048_0000);
    b.u32(0);
    b.u16(1); // frame_count
    b.zeros(32); // compressorname
    b.u16(0x0018); // depth
    b.u16(0xffff); // pre_defined = -1
    let avcc = b.open(b"avcC");
    b.bytes(&params.avcc);
    b.close(avcc);
    b.close(avc1);
    b.close(stsd);
    // Empty tables: in a fragmented file every sample is described by a moof.
    for table in [b"stts", b"stsc", b"stco"] {
        let t = b.open_full(table, 0, 0);
        b.u32(0);
        b.close(t);
    }
    let stsz = b.open_full(b"stsz", 0, 0);
    b.u32(0);
    b.u32(0);
    b.close(stsz);
    b.close(stbl);
    b.close(minf);
    b.close(mdia);
    b.close(trak);

    let mvex = b.open(b"mvex");
    let trex = b.open_full(b"trex", 0, 0);
    b.u32(TRACK_ID);
    b.u32(1); // default_sample_description_index
    b.u32(params.frame_duration_90k);
    b.u32(0); // default_sample_size
    b.u32(0); // default_sample_flags
    b.close(trex);
    b.close(mvex);
    b.close(moov);
    Ok(b.buf)
}

/// Builds one moof+mdat holding `frames` (decode order, AVCC with `nal_length_size`-byte lengths).
///
/// Nothing here requires a keyframe first: HLS partial segments and mid-GOP fragments are
/// legitimate. [`Fmp4Writer`] enforces it for the first fragment of a file.
pub fn media_segment(
    sequence: u32,
    frames: &[EncodedFrame],
    timing: &FragmentTiming,
    nal_length_size: u8,
) -> Result<MediaSegment, Mp4Error> {
    let layout = layout_fragment(frames, timing, nal_length_size)?;
    let mut bytes = Vec::with_capacity(layout.header_len(frames.len()) + layout.data_len as usize);
    write_moof_and_mdat_header(&mut bytes, sequence, frames, &layout)?;
    let data_start = bytes.len() as u64;
    for f in frames {
        bytes.extend_from_slice(&f.data);
    }
    let keyframe_offsets = layout.keyframes(frames, data_start);
    Ok(MediaSegment { bytes, duration_90k: layout.duration, keyframe_offsets })
}

/// Per-sample values of a fragment, checked against what the trun fields can hold.
struct Layout {
    tfdt: u64,
    durations: Vec<u32>,
    offsets: Vec<i32>,
    duration: u64,
    data_len: u64,
}

impl Layout {
    fn has_offsets(&self) -> bool {
        self.offsets.iter().any(|o| *o != 0)
    }

    fn header_len(&self, samples: usize) -> usize {
        let per_sample = if self.has_offsets() { 16 } else { 12 };
        // moof(8) mfhd(16) traf(8) tfhd(16) tfdt(20) trun(20 + samples) mdat header (8 or 16)
        8 + 16 + 8 + 16 + 20 + 20 + per_sample * samples + 16
    }

    fn keyframes(&self, frames: &[EncodedFrame], data_start: u64) -> Vec<KeyframeOffset> {
        let mut offset = data_start;
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if f.keyframe {
                out.push(KeyframeOffset { sample: i as u32, pts_90k: f.pts_90k, offset });
            }
            offset += f.data.len() as u64;
        }
        out
    }
}

fn layout_fragment(frames: &[EncodedFrame], timing: &FragmentTiming, nal_length_size: u8) -> Result<Layout, Mp4Error> {
    let first = frames.first().ok_or(Mp4Error::EmptyFragment)?;
    if first.dts_90k < timing.base_dts_90k {
        return Err(Mp4Error::BeforeBaseDecodeTime { index: 0, dts: first.dts_90k, base: timing.base_dts_90k });
    }
    let tfdt = (i128::from(first.dts_90k) - i128::from(timing.base_dts_90k)) as u64;
    let mut durations = Vec::with_capacity(frames.len());
    let mut offsets = Vec::with_capacity(frames.len());
    let mut data_len = 0u64;
    for (index, f) in frames.iter().enumerate() {
        if f.data.is_empty() {
            return Err(Mp4Error::EmptySample { index });
        }
        if u32::try_from(f.data.len()).is_err() {
            return Err(Mp4Error::OutOfRange { index, what: "sample size", value: f.data.len() as i128 });
        }
        // A sample that is not AVCC (Annex B handed over by mistake, a cut buffer) would
        // make the whole fragment undecodable; refuse it here where the cause is known.
        if let Some(Err(source)) = h264::avcc_nals(&f.data, nal_length_size).find(Result::is_err) {
            return Err(Mp4Error::InvalidSample { index, length_size: nal_length_size, source });
        }
        let next_dts = match frames.get(index + 1) {
            Some(next) => Some(next.dts_90k),
            None => timing.next_dts_90k,
        };
        let duration = match next_dts {
            Some(next) if next <= f.dts_90k => {
                return Err(Mp4Error::DtsNotIncreasing { index: index + 1, previous: f.dts_90k, dts: next });
            }
            Some(next) => i128::from(next) - i128::from(f.dts_90k),
            None => i128::from(timing.default_duration_90k),
        };
        durations.push(u32::try_from(duration).map_err(|_| Mp4Error::OutOfRange { index, what: "frame duration", value: duration })?);
        let offset = i128::from(f.pts_90k) - i128::from(f.dts_90k);
        offsets.push(i32::try_from(offset).map_err(|_| Mp4Error::OutOfRange { index, what: "composition offset", value: offset })?);
        data_len += f.data.len() as u64;
    }
    let duration = durations.iter().map(|d| u64::from(*d)).sum();
    Ok(Layout { tfdt, durations, offsets, duration, data_len })
}

fn write_moof_and_mdat_header(out: &mut Vec<u8>, sequence: u32, frames: &[EncodedFrame], layout: &Layout) -> Result<(), Mp4Error> {
    let mut b = Boxes { buf: std::mem::take(out) };
    let start = b.buf.len();
    let moof = b.open(b"moof");
    let mfhd = b.open_full(b"mfhd", 0, 0);
    b.u32(sequence);
    b.close(mfhd);
    let traf = b.open(b"traf");
    let tfhd = b.open_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
    b.u32(TRACK_ID);
    b.close(tfhd);
    let tfdt = b.open_full(b"tfdt", 1, 0);
    b.u64(layout.tfdt);
    b.close(tfdt);
    // Composition offsets only when some frame is reordered; version 1 makes them signed.
    let with_offsets = layout.has_offsets();
    let version = u8::from(layout.offsets.iter().any(|o| *o < 0));
    let flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | if with_offsets { 0x000800 } else { 0 };
    let trun = b.open_full(b"trun", version, flags);
    b.u32(frames.len() as u32);
    let data_offset_at = b.buf.len();
    b.u32(0); // data_offset, patched below once the moof size is known
    for (i, f) in frames.iter().enumerate() {
        b.u32(layout.durations[i]);
        b.u32(f.data.len() as u32);
        b.u32(if f.keyframe { SYNC_SAMPLE_FLAGS } else { NON_SYNC_SAMPLE_FLAGS });
        if with_offsets {
            b.u32(layout.offsets[i] as u32);
        }
    }
    b.close(trun);
    b.close(traf);
    b.close(moof);
    let moof_len = b.buf.len() - start;
    let mdat_header = if layout.data_len + 8 > u64::from(u32::MAX) { 16 } else { 8 };
    let data_offset = moof_len + mdat_header;
    let data_offset =
        i32::try_from(data_offset).map_err(|_| Mp4Error::OutOfRange { index: 0, what: "moof size", value: data_offset as i128 })?;
    b.buf[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    if mdat_header == 8 {
        b.u32((layout.data_len + 8) as u32);
        b.bytes(b"mdat");
    } else {
        b.u32(1); // size 1: a 64-bit largesize follows the type
        b.bytes(b"mdat");
        b.u64(layout.data_len + 16);
    }
    *out = b.buf;
    Ok(())
}

/// Writes a fragmented MP4 file fragment by fragment.
///
/// Each call to [`Fmp4Writer::write_fragment`] issues one `write_all`, so an unbuffered
/// `File` is fine; the writer never seeks. After an I/O error the writer refuses further
/// fragments: the output would otherwise continue from an unknown point.
pub struct Fmp4Writer<W: Write> {
    out: W,
    params: VideoParams,
    nal_length_size: u8,
    position: u64,
    next_sequence: u32,
    base_dts_90k: Option<i64>,
    last_dts_90k: Option<i64>,
    poisoned: bool,
    buf: Vec<u8>,
}

impl<W: Write> Fmp4Writer<W> {
    /// Writes the init segment (ftyp + moov) to `out`.
    pub fn new(mut out: W, params: &VideoParams) -> Result<Self, Mp4Error> {
        let nal_length_size = params.validate()?;
        let init = init_segment(params)?;
        out.write_all(&init)?;
        Ok(Self {
            out,
            params: params.clone(),
            nal_length_size,
            position: init.len() as u64,
            next_sequence: 1,
            base_dts_90k: None,
            last_dts_90k: None,
            poisoned: false,
            buf: Vec::new(),
        })
    }

    /// Writes one moof+mdat with `frames` in decode order.
    ///
    /// `next_dts_90k` is the decode time of the frame that will follow (the first frame of
    /// the next fragment), when the caller already has it; it makes the last frame's
    /// duration exact instead of nominal. The first frame of the file sets the timeline:
    /// its decode time becomes track time zero.
    pub fn write_fragment(&mut self, frames: &[EncodedFrame], next_dts_90k: Option<i64>) -> Result<FragmentInfo, Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        let first = frames.first().ok_or(Mp4Error::EmptyFragment)?;
        if self.base_dts_90k.is_none() && !first.keyframe {
            return Err(Mp4Error::FirstFragmentNotKeyframe);
        }
        if let Some(previous) = self.last_dts_90k.filter(|p| first.dts_90k <= *p) {
            return Err(Mp4Error::DtsNotIncreasing { index: 0, previous, dts: first.dts_90k });
        }
        let base = self.base_dts_90k.unwrap_or(first.dts_90k);
        let timing = FragmentTiming { base_dts_90k: base, next_dts_90k, default_duration_90k: self.params.frame_duration_90k };
        let layout = layout_fragment(frames, &timing, self.nal_length_size)?;
        let sequence = self.next_sequence;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.reserve(layout.header_len(frames.len()) + layout.data_len as usize);
        write_moof_and_mdat_header(&mut buf, sequence, frames, &layout)?;
        let data_start = self.position + buf.len() as u64;
        for f in frames {
            buf.extend_from_slice(&f.data);
        }
        if let Err(e) = self.out.write_all(&buf) {
            self.poisoned = true;
            return Err(e.into());
        }
        let info = FragmentInfo {
            sequence,
            offset: self.position,
            len: buf.len() as u64,
            start_90k: first.dts_90k,
            duration_90k: layout.duration,
            frames: frames.len() as u32,
            keyframe_offsets: layout.keyframes(frames, data_start),
        };
        self.position += buf.len() as u64;
        self.buf = buf;
        self.base_dts_90k = Some(base);
        self.last_dts_90k = frames.last().map(|f| f.dts_90k);
        // 2^32 fragments of even 1 ms is 49 days; wrapping keeps a very long stream writable.
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        Ok(info)
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The output, e.g. to check its length or sync a file between fragments.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes and returns the output. No index is appended: the file is complete as it stands.
    pub fn finish(mut self) -> Result<W, Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Appends big-endian fields and size-prefixed boxes to a buffer.
#[derive(Default)]
struct Boxes {
    buf: Vec<u8>,
}

impl Boxes {
    fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        at
    }

    fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        at
    }

    /// Patches the size of the box opened at `at`; boxes built here stay far below 4 GiB.
    fn close(&mut self, at: usize) {
        let size = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// The identity transformation matrix of mvhd and tkhd.
    fn matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const VTEST_AVCC: &str = "014d401fffe10016674d401fd900c0126840000003004000000503c60c9201000568ebc24b20";

    fn params() -> VideoParams {
        let avcc = (0..VTEST_AVCC.len()).step_by(2).map(|i| u8::from_str_radix(&VTEST_AVCC[i..i + 2], 16).unwrap()).collect();
        VideoParams::from_avcc(avcc, 9000).unwrap()
    }

    fn frame(dts: i64, pts: i64, keyframe: bool, len: usize) -> EncodedFrame {
        let mut data = (len as u32 - 4).to_be_bytes().to_vec();
        data.push(if keyframe { 0x65 } else { 0x41 });
        data.resize(len, 0xab);
        EncodedFrame { pts_90k: pts, dts_90k: dts, keyframe, data: Bytes::from(data) }
    }

    /// A minimal box walker: (fourcc, payload) of each box in `data`.
    fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let mut size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            let mut header = 8;
            if size == 1 {
                size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
                header = 16;
            }
            out.push((String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned(), &data[pos + header..pos + size]));
            pos += size;
        }
        assert_eq!(pos, data.len(), "boxes do not tile the buffer");
        out
    }

    fn child<'a>(data: &'a [u8], path: &[&str]) -> &'a [u8] {
        let mut cur = data;
        for name in path {
            // Full boxes with children (stsd, dref) are not walked here.
            cur = boxes(cur).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in {path:?}")).1;
        }
        cur
    }

    fn u32_at(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn init_segment_layout() {
        let init = init_segment(&params()).unwrap();
        let top: Vec<String> = boxes(&init).into_iter().map(|(n, _)| n).collect();
        assert_eq!(top, vec!["ftyp", "moov"]);
        let tkhd = child(&init, &["moov", "trak", "tkhd"]);
        assert_eq!((u32_at(tkhd, 76) >> 16, u32_at(tkhd, 80) >> 16), (768, 576));
        assert_eq!(u32_at(child(&init, &["moov", "trak", "mdia", "mdhd"]), 12), TIMESCALE);
        let stsd = child(&init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"]);
        let avc1 = &stsd[8..];
        assert_eq!(&avc1[4..8], b"avc1");
        let avcc = &avc1[8 + 78..];
        assert_eq!(&avcc[4..8], b"avcC");
        assert_eq!(&avcc[8..], &params().avcc[..]);
        let trex = child(&init, &["moov", "mvex", "trex"]);
        assert_eq!((u32_at(trex, 4), u32_at(trex, 12)), (1, 9000));
    }

    #[test]
    fn fragment_layout_points_at_its_samples() {
        let frames = [frame(0, 0, true, 100), frame(9000, 9000, false, 30), frame(18000, 18000, false, 40)];
        let mut w = Fmp4Writer::new(Vec::new(), &params()).unwrap();
        let init_len = w.position();
        let info = w.write_fragment(&frames, Some(28000)).unwrap();
        let out = w.finish().unwrap();
        assert_eq!((info.sequence, info.offset, info.len, info.frames), (1, init_len, out.len() as u64 - init_len, 3));
        assert_eq!((info.start_90k, info.duration_90k), (0, 28000));
        let frag = &out[init_len as usize..];
        let top = boxes(frag);
        assert_eq!((top[0].0.as_str(), top[1].0.as_str()), ("moof", "mdat"));
        assert_eq!(u32_at(child(frag, &["moof", "mfhd"]), 4), 1);
        let tfhd = child(frag, &["moof", "traf", "tfhd"]);
        assert_eq!(u32_at(tfhd, 0), 0x02_0000);
        let tfdt = child(frag, &["moof", "traf", "tfdt"]);
        assert_eq!(tfdt[0], 1);
        let trun = child(frag, &["moof", "traf", "trun"]);
        assert_eq!((u32_at(trun, 0), u32_at(trun, 4)), (0x0701, 3)); // no composition offsets
        let data_offset = u32_at(trun, 8) as usize;
        assert_eq!(&frag[data_offset..data_offset + 100], &frames[0].data[..]);
        let samples: Vec<[u32; 3]> =
            (0..3).map(|i| [u32_at(trun, 12 + 12 * i), u32_at(trun, 16 + 12 * i), u32_at(trun, 20 + 12 * i)]).collect();
        assert_eq!(samples, vec![[9000, 100, SYNC_SAMPLE_FLAGS], [9000, 30, NON_SYNC_SAMPLE_FLAGS], [10000, 40, NON_SYNC_SAMPLE_FLAGS]]);
        let k = &info.keyframe_offsets;
        assert_eq!(k, &vec![KeyframeOffset { sample: 0, pts_90k: 0, offset: init_len + data_offset as u64 }]);
    }

    #[test]
    fn timeline_continues_across_fragments() {
        let mut w = Fmp4Writer::new(Vec::new(), &params()).unwrap();
        // Caller timestamps start far from zero, as RTP-derived ones do.
        let a = w.write_fragment(&[frame(900_000, 900_000, true, 10), frame(909_000, 909_000, false, 10)], None).unwrap();
        assert_eq!((a.start_90k, a.duration_90k), (900_000, 18000));
        // Mid-GOP fragment without a keyframe is allowed after the first.
        let b = w.write_fragment(&[frame(918_000, 918_000, false, 10)], None).unwrap();
        assert_eq!((b.sequence, b.offset, b.keyframe_offsets.len()), (2, a.offset + a.len, 0));
        let out = w.finish().unwrap();
        let frag = &out[b.offset as usize..];
        let tfdt = child(frag, &["moof", "traf", "tfdt"]);
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 18000);
    }

    #[test]
    fn reordered_frames_get_composition_offsets() {
        // I P B B in decode order; pts - dts = 2 frames for I, negative never.
        let frames =
            [frame(0, 7200, true, 10), frame(3600, 18000, false, 10), frame(7200, 10800, false, 10), frame(10800, 14400, false, 10)];
        let seg =
            media_segment(7, &frames, &FragmentTiming { base_dts_90k: 0, next_dts_90k: None, default_duration_90k: 3600 }, 4).unwrap();
        let trun = child(&seg.bytes, &["moof", "traf", "trun"]);
        assert_eq!(u32_at(trun, 0), 0x0f01);
        let offsets: Vec<u32> = (0..4).map(|i| u32_at(trun, 12 + 16 * i + 12)).collect();
        assert_eq!(offsets, vec![7200, 14400, 3600, 3600]);
        assert_eq!(seg.duration_90k, 4 * 3600);
        assert_eq!(u32_at(child(&seg.bytes, &["moof", "mfhd"]), 4), 7);
        // pts before dts needs signed offsets: trun version 1.
        let early = [frame(0, 0, true, 10), frame(3600, 0, false, 10)];
        let seg = media_segment(1, &early, &FragmentTiming { base_dts_90k: 0, next_dts_90k: None, default_duration_90k: 3600 }, 4).unwrap();
        let trun = child(&seg.bytes, &["moof", "traf", "trun"]);
        assert_eq!(trun[0], 1);
        assert_eq!(u32_at(trun, 12 + 16 + 12) as i32, -3600);
    }

    #[test]
    fn rejects_what_would_make_a_broken_file() {
        let p = params();
        let mut w = Fmp4Writer::new(Vec::new(), &p).unwrap();
        assert!(matches!(w.write_fragment(&[], None), Err(Mp4Error::EmptyFragment)));
        assert!(matches!(w.write_fragment(&[frame(0, 0, false, 10)], None), Err(Mp4Error::FirstFragmentNotKeyframe)));
        let dup = [frame(0, 0, true, 10), frame(0, 0, false, 10)];
        assert!(matches!(w.write_fragment(&dup, None), Err(Mp4Error::DtsNotIncreasing { index: 1, .. })));
        assert!(matches!(w.write_fragment(&[frame(0, 0, true, 10)], Some(0)), Err(Mp4Error::DtsNotIncreasing { .. })));
        let annexb = EncodedFrame { data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]), ..frame(0, 0, true, 10) };
        assert!(matches!(w.write_fragment(&[annexb], None), Err(Mp4Error::InvalidSample { index: 0, length_size: 4, .. })));
        let empty = EncodedFrame { data: Bytes::new(), ..frame(0, 0, true, 10) };
        assert!(matches!(w.write_fragment(&[empty], None), Err(Mp4Error::EmptySample { index: 0 })));
        let gap = [frame(0, 0, true, 10), frame(1 << 33, 1 << 33, false, 10)];
        assert!(matches!(w.write_fragment(&gap, None), Err(Mp4Error::OutOfRange { what: "frame duration", .. })));
        // Nothing was written by the failed calls: the output is still just the init segment.
        assert_eq!(w.position(), init_segment(&p).unwrap().len() as u64);
        w.write_fragment(&[frame(9000, 9000, true, 10)], None).unwrap();
        assert!(matches!(w.write_fragment(&[frame(9000, 9000, true, 10)], None), Err(Mp4Error::DtsNotIncreasing { index: 0, .. })));
        let bad = VideoParams { width: 70_000, ..p.clone() };
        assert!(matches!(init_segment(&bad), Err(Mp4Error::InvalidParams(_))));
        let bad = VideoParams { avcc: vec![1, 2, 3], ..p };
        assert!(matches!(Fmp4Writer::new(Vec::new(), &bad), Err(Mp4Error::InvalidAvcc(_))));
    }

    /// Fails every write after the first `ok` ones, as a full disk does.
    struct FailingWriter {
        ok: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.ok == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.ok -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_error_poisons_the_writer() {
        let mut w = Fmp4Writer::new(FailingWriter { ok: 1 }, &params()).unwrap();
        assert!(matches!(w.write_fragment(&[frame(0, 0, true, 10)], None), Err(Mp4Error::Io(_))));
        assert!(matches!(w.write_fragment(&[frame(0, 0, true, 10)], None), Err(Mp4Error::Poisoned)));
        assert!(matches!(w.finish(), Err(Mp4Error::Poisoned)));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Any increasing decode times with any reordering give a fragment whose trun
            /// describes exactly the bytes of its mdat.
            #[test]
            fn fragments_describe_their_samples(
                samples in proptest::collection::vec((1i64..20_000, -5i64..5, 5usize..200, any::<bool>()), 1..40),
                next in proptest::option::of(1i64..20_000),
            ) {
                let mut dts = 1_000_000;
                let frames: Vec<EncodedFrame> = samples.iter().enumerate().map(|(i, &(step, reorder, len, key))| {
                    dts += step;
                    frame(dts, dts + reorder * 3600, key || i == 0, len)
                }).collect();
                let last = frames.last().unwrap().dts_90k;
                let timing = FragmentTiming { base_dts_90k: 0, next_dts_90k: next.map(|n| last + n), default_duration_90k: 3000 };
                let seg = media_segment(3, &frames, &timing, 4).unwrap();
                let trun = child(&seg.bytes, &["moof", "traf", "trun"]);
                let per = if u32_at(trun, 0) & 0x800 != 0 { 16 } else { 12 };
                prop_assert_eq!(u32_at(trun, 4) as usize, frames.len());
                let mut at = u32_at(trun, 8) as usize;
                let mut total = 0u64;
                for (i, f) in frames.iter().enumerate() {
                    let size = u32_at(trun, 12 + per * i + 4) as usize;
                    prop_assert_eq!(&seg.bytes[at..at + size], &f.data[..]);
                    at += size;
                    total += u64::from(u32_at(trun, 12 + per * i));
                    if per == 16 {
                        prop_assert_eq!(i64::from(u32_at(trun, 12 + per * i + 12) as i32), f.pts_90k - f.dts_90k);
                    }
                }
                prop_assert_eq!(at, seg.bytes.len());
                prop_assert_eq!(total, seg.duration_90k);
                prop_assert_eq!(total as i64, frames.last().unwrap().dts_90k + next.unwrap_or(3000) - frames[0].dts_90k);
            }

            /// Arbitrary frames are accepted or refused, never a panic, and a refusal writes nothing.
            #[test]
            fn arbitrary_frames_never_panic(
                raw in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..12)), 0..8),
                next in proptest::option::of(any::<i64>()),
            ) {
                let frames: Vec<EncodedFrame> = raw.into_iter().map(|(dts, pts, keyframe, data)| EncodedFrame { pts_90k: pts, dts_90k: dts, keyframe, data: Bytes::from(data) }).collect();
                let mut w = Fmp4Writer::new(Vec::new(), &params()).unwrap();
                let before = w.position();
                if w.write_fragment(&frames, next).is_err() {
                    prop_assert_eq!(w.position(), before);
                    prop_assert_eq!(w.get_ref().len() as u64, before);
                }
                let _ = media_segment(1, &frames, &FragmentTiming { base_dts_90k: i64::MIN, next_dts_90k: next, default_duration_90k: 1 }, 2);
            }
        }
    }
}
