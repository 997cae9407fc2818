//! H.264 decoding for analytics (openh264) and the shared grayscale downscale that motion
//! detection consumes.
//!
//! [`Decoder`] takes AVCC access units as the demuxers and the RTSP source produce them
//! ([`VideoSample`]: 4-byte lengths plus an avcC in its [`VideoParams`](crate::runtime::packet::VideoParams)),
//! converts them to Annex B (the avcC's SPS/PPS in front of every keyframe that does not
//! carry its own) and hands out decoded pictures with their presentation time.
//!
//! - **Flushing.** The decoder runs with [`Flush::NoFlush`]: openh264-rs' default flushes after
//!   every decode and loses most frames of streams with B-frames (FIELD-NOTES). NoFlush holds
//!   frames back, so presentation times wait in a small queue and the smallest pending one is
//!   given to each picture that comes out (pictures leave in presentation order).
//!   [`Decoder::flush`] drains the held-back pictures at the end of a stream.
//! - **No hold-back when the stream cannot reorder.** NoFlush costs one frame of latency
//!   (40 ms at 25 fps, 100 ms at 10 fps) even on streams without B-frames, where nothing is
//!   gained by it. When the SPS says pictures are never reordered (VUI
//!   `max_num_reorder_frames` = 0, or Baseline) each access unit is flushed at once; if the
//!   presentation times then go backwards anyway (a VUI that lies), the decoder returns to
//!   holding back for the rest of the stream.
//! - **Robustness.** Nothing here panics on bad input. A decode error, damaged AVCC framing or
//!   a loss reported by the caller ([`Decoder::note_loss`]) hands out the good pictures still
//!   held back (those before the failing access unit), drops the openh264 instance and every
//!   access unit until the next keyframe, where a fresh instance is primed with the parameter
//!   sets; [`DecodeStats`] counts it all. A new avcC (another resolution or other SPS/PPS)
//!   drains the old instance and starts a new one at the next keyframe, so pictures after the
//!   change have the new size. An in-band SPS that differs from the current one drains the old
//!   instance too and starts a fresh one with that access unit (openh264 alone would drop its
//!   held-back picture at a resolution change).
//! - **Pictures are borrowed.** [`Frame`] points into openh264's buffers (no copy of the
//!   planes); take what you need in the callback, typically [`Frame::gray`].
//!
//! # Threading (design note)
//!
//! Decoding is CPU-bound (a core decodes roughly three 1080p30 streams) and blocking, so it
//! must not run on an actor's arbiter thread. The plan: one [`Decoder`] per source that needs
//! pixels, owned by a dedicated blocking thread (`std::thread` or `tokio::task::spawn_blocking`
//! running a loop), fed through a bounded channel of [`VideoSample`]s and sending back
//! [`GrayFrame`]s (already downscaled, so no large picture crosses threads). When the channel
//! is full the feeding side drops samples up to the next keyframe and marks the next one it
//! sends, and the thread calls [`Decoder::note_loss`] before decoding it, so a slow decoder
//! sheds load instead of queueing latency. No pool: openh264 instances are cheap and
//! hold a stream's reference pictures, so sharing them across sources gains nothing.

use std::collections::VecDeque;

use openh264::decoder::{DecodeOptions, DecodedYUV, Decoder as OhDecoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use thiserror::Error;

use super::h264::{self, nal_type, AvcDecoderConfig, H264Error};
use crate::runtime::packet::VideoSample;

/// Pending presentation times beyond which the oldest are forgotten (openh264 holds at most
/// its reorder depth, 16 pictures; more means it swallowed access units without output).
const MAX_PENDING: usize = 32;

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("invalid avcC: {0}")]
    Config(H264Error),
    #[error("damaged access unit: {0}")]
    Bitstream(H264Error),
    #[error("openh264: {0}")]
    Decoder(String),
}

/// Counters of a [`Decoder`]'s life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Pictures handed out.
    pub decoded: u64,
    /// Access units that failed (decoder errors or damaged AVCC framing).
    pub errors: u64,
    /// Times decoding restarted at a keyframe after an error or a reported loss.
    pub resyncs: u64,
    /// Access units dropped while waiting for a keyframe (stream start, after errors, losses
    /// or parameter changes).
    pub skipped_until_keyframe: u64,
}

/// A decoded picture (I420), borrowed from the decoder for the duration of the callback.
pub struct Frame<'a> {
    /// Presentation time of the access unit this picture came from (caller's units, 90 kHz in Vela).
    pub pts: i64,
    pub width: usize,
    pub height: usize,
    /// Luma: `height` rows of `y_stride` bytes (the first `width` of each are the picture).
    pub y: &'a [u8],
    pub y_stride: usize,
    /// Chroma, each `(height + 1) / 2` rows of `uv_stride` bytes and `(width + 1) / 2` pixels.
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub uv_stride: usize,
}

impl Frame<'_> {
    /// Row `r` of the luma plane, without the stride padding.
    pub fn y_row(&self, r: usize) -> &[u8] {
        &self.y[r * self.y_stride..r * self.y_stride + self.width]
    }

    /// The luma plane without padding (`width * height` bytes).
    pub fn y_packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for r in 0..self.height {
            out.extend_from_slice(self.y_row(r));
        }
        out
    }

    /// The whole picture, planes packed without stride padding (for nodes that send images).
    pub fn i420(&self) -> I420 {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut data = Vec::with_capacity(self.width * self.height + 2 * cw * ch);
        for r in 0..self.height {
            data.extend_from_slice(self.y_row(r));
        }
        for plane in [self.u, self.v] {
            for r in 0..ch {
                data.extend_from_slice(&plane[r * self.uv_stride..r * self.uv_stride + cw]);
            }
        }
        I420 { width: self.width, height: self.height, data }
    }

    /// The luma plane box-downscaled to fit `max_width` x `max_height` (see [`downscale_gray`]).
    pub fn gray(&self, max_width: usize, max_height: usize) -> GrayFrame {
        downscale_gray(self.y, self.y_stride, self.width, self.height, max_width, max_height)
    }
}

/// The parameters the current openh264 instance was (or will be) primed with.
struct Params {
    avcc: Vec<u8>,
    length_size: u8,
    /// SPS and PPS as Annex B, put in front of keyframes that carry none.
    prefix: Vec<u8>,
}

/// Pictures to hand out when draining the decoder.
#[derive(Clone, Copy)]
enum Drain {
    All,
    /// Only those before this pts: later ones may come from the access unit that failed.
    Before(i64),
}

/// One stream's H.264 decoder. See the module documentation.
pub struct Decoder {
    inner: Option<OhDecoder>,
    params: Option<Params>,
    pending: VecDeque<i64>,
    /// Drop access units until a keyframe.
    need_keyframe: bool,
    /// The wait for a keyframe follows an error or loss (counts a resync when it ends).
    resyncing: bool,
    stats: DecodeStats,
    annexb: Vec<u8>,
    last_pts: i64,
    /// The SPS the current instance decodes with, to notice in-band changes.
    sps: Vec<u8>,
    /// Output each picture at once (see the module doc).
    immediate: bool,
    /// Presentation times went backwards on a stream announced without reordering.
    reorder_seen: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            inner: None,
            params: None,
            pending: VecDeque::new(),
            need_keyframe: true,
            resyncing: false,
            stats: DecodeStats::default(),
            annexb: Vec::new(),
            last_pts: 0,
            immediate: false,
            reorder_seen: false,
            sps: Vec::new(),
        }
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Sets the stream's AVCDecoderConfigurationRecord. The same record again is a no-op; a
    /// different one drains the current decoder into `on_frame` and restarts at the next keyframe.
    pub fn set_avcc(&mut self, avcc: &[u8], on_frame: impl FnMut(&Frame<'_>)) -> Result<(), DecodeError> {
        if self.params.as_ref().is_some_and(|p| p.avcc == avcc) {
            return Ok(());
        }
        let cfg = AvcDecoderConfig::parse(avcc).map_err(DecodeError::Config)?;
        let mut prefix = Vec::new();
        for ps in cfg.sps.iter().chain(cfg.pps.iter()) {
            prefix.extend_from_slice(&[0, 0, 0, 1]);
            prefix.extend_from_slice(ps);
        }
        let had = self.params.is_some();
        self.set_sps(cfg.sps.first().cloned().unwrap_or_default());
        self.params = Some(Params { avcc: avcc.to_vec(), length_size: cfg.nal_length_size, prefix });
        if had {
            self.flush(on_frame);
            self.inner = None;
            self.need_keyframe = true;
        }
        Ok(())
    }

    /// Tells the decoder that access units were lost (e.g. an RTP sequence gap): everything up
    /// to the next keyframe is dropped rather than decoded into smeared pictures. Pictures
    /// decoded before the loss and still held back go to `on_frame`.
    pub fn note_loss(&mut self, on_frame: impl FnMut(&Frame<'_>)) {
        self.fail(Drain::All, on_frame);
    }

    /// Decodes one [`VideoSample`] (its avcC, data, keyframe flag and 90 kHz pts).
    pub fn decode_sample(&mut self, sample: &VideoSample, mut on_frame: impl FnMut(&Frame<'_>)) -> Result<(), DecodeError> {
        self.set_avcc(&sample.params.avcc, &mut on_frame)?;
        self.decode(&sample.data, sample.pts_90k, sample.keyframe, on_frame)
    }

    /// Decodes one AVCC access unit (length size from the avcC; 4 before any avcC was set).
    /// Pictures that come out, possibly of earlier access units, go to `on_frame`. An error
    /// has already been counted and handled (resync at the next keyframe) when it is returned.
    pub fn decode(&mut self, au: &[u8], pts: i64, keyframe: bool, mut on_frame: impl FnMut(&Frame<'_>)) -> Result<(), DecodeError> {
        let length_size = self.params.as_ref().map_or(4, |p| p.length_size);
        // Scan the NAL units once: framing damage, IDR and in-band SPS.
        let mut has_idr = false;
        let mut sps: Option<&[u8]> = None;
        for nal in h264::avcc_nals(au, length_size) {
            match nal {
                Ok(nal) => match h264::nal_unit_type(nal) {
                    Some(nal_type::IDR) => has_idr = true,
                    Some(nal_type::SPS) => sps = sps.or(Some(nal)),
                    _ => {}
                },
                Err(e) => {
                    self.stats.errors += 1;
                    self.fail(Drain::All, &mut on_frame);
                    return Err(DecodeError::Bitstream(e));
                }
            }
        }
        let has_sps = sps.is_some();
        if let Some(sps) = sps.filter(|s| *s != self.sps.as_slice()) {
            // A new sequence in band: drain the pictures of the old one and start afresh
            // (openh264 would drop its held-back picture at a resolution change).
            self.flush(&mut on_frame);
            self.inner = None;
            self.set_sps(sps.to_vec());
        }
        let keyframe = keyframe || has_idr;
        if self.need_keyframe {
            if !keyframe {
                self.stats.skipped_until_keyframe += 1;
                return Ok(());
            }
            self.need_keyframe = false;
            if self.resyncing {
                self.resyncing = false;
                self.stats.resyncs += 1;
            }
        }
        self.annexb.clear();
        if keyframe && !has_sps {
            if let Some(p) = &self.params {
                self.annexb.extend_from_slice(&p.prefix);
            }
        }
        // Framing was checked above, so this cannot fail.
        let _ = h264::avcc_to_annexb_into(au, length_size, &mut self.annexb);

        if self.inner.is_none() {
            let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
            match OhDecoder::with_api_config(OpenH264API::from_source(), config) {
                Ok(d) => self.inner = Some(d),
                Err(e) => {
                    self.stats.errors += 1;
                    self.fail(Drain::All, &mut on_frame);
                    return Err(DecodeError::Decoder(e.to_string()));
                }
            }
        }
        // (Within one openh264 instance: a new one, after a loss or a reconnect, may start anywhere.)
        if self.immediate && !self.reorder_seen && self.inner.is_some() && self.pending.iter().chain([&self.last_pts]).any(|&p| p > pts) {
            // Not the order the SPS promised: hold pictures back from now on.
            self.reorder_seen = true;
        }
        let immediate = self.immediate && !self.reorder_seen;
        if immediate {
            // Nothing is held back in this mode, so a time still pending belongs to an access
            // unit that gave no picture (no slice left after a truncation, only parameter
            // sets, one openh264 swallowed). Kept, it would be given to the next picture and
            // every later one would carry its predecessor's time, for good.
            self.pending.clear();
        }
        self.pending.push_back(pts);
        if self.pending.len() > MAX_PENDING {
            pop_min(&mut self.pending);
        }
        let flush = if immediate { Flush::Flush } else { Flush::NoFlush };
        let Decoder { inner, pending, stats, annexb, last_pts, .. } = self;
        let Some(dec) = inner.as_mut() else { return Ok(()) };
        let result = match dec.decode_with_options(annexb, DecodeOptions::new().flush_after_decode(flush)) {
            Ok(Some(yuv)) => {
                emit(&yuv, pending, stats, last_pts, Drain::All, &mut on_frame);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(DecodeError::Decoder(e.to_string())),
        };
        if result.is_err() {
            self.stats.errors += 1;
            self.fail(Drain::Before(pts), &mut on_frame);
        }
        result
    }

    fn set_sps(&mut self, sps: Vec<u8>) {
        self.immediate = h264::parse_sps(&sps).is_ok_and(|s| !s.may_reorder());
        self.sps = sps;
    }

    /// Drains the pictures openh264 still holds (end of stream, or before a parameter change).
    pub fn flush(&mut self, on_frame: impl FnMut(&Frame<'_>)) {
        if !self.drain(Drain::All, on_frame) {
            self.stats.errors += 1;
        }
    }

    /// Hands out held-back pictures per `which`; false when openh264 failed to flush.
    fn drain(&mut self, which: Drain, mut on_frame: impl FnMut(&Frame<'_>)) -> bool {
        let Decoder { inner, pending, stats, last_pts, .. } = self;
        let mut ok = true;
        if let Some(dec) = inner.as_mut() {
            match dec.flush_remaining() {
                Ok(frames) => {
                    for yuv in &frames {
                        emit(yuv, pending, stats, last_pts, which, &mut on_frame);
                    }
                }
                Err(_) => ok = false,
            }
        }
        self.pending.clear();
        ok
    }

    /// After an error or a loss: keep the good held-back pictures, drop the instance and wait
    /// for a keyframe.
    fn fail(&mut self, which: Drain, on_frame: impl FnMut(&Frame<'_>)) {
        // A decoder that just failed may fail to flush too; that is part of the same error.
        let _ = self.drain(which, on_frame);
        self.inner = None;
        self.need_keyframe = true;
        self.resyncing = true;
    }
}

fn pop_min(q: &mut VecDeque<i64>) -> Option<i64> {
    let (i, _) = q.iter().enumerate().min_by_key(|(_, &p)| p)?;
    q.remove(i)
}

fn emit(
    yuv: &DecodedYUV<'_>,
    pending: &mut VecDeque<i64>,
    stats: &mut DecodeStats,
    last_pts: &mut i64,
    which: Drain,
    on_frame: &mut impl FnMut(&Frame<'_>),
) {
    let (width, height) = yuv.dimensions();
    let (y_stride, uv_stride, _) = yuv.strides();
    if width == 0 || height == 0 || yuv.y().len() < y_stride * (height - 1) + width {
        stats.errors += 1;
        return;
    }
    // Pictures leave in presentation order: the smallest pending pts is this one's.
    let pts = pop_min(pending).unwrap_or(*last_pts);
    if let Drain::Before(limit) = which {
        if pts >= limit {
            return;
        }
    }
    *last_pts = pts;
    stats.decoded += 1;
    on_frame(&Frame { pts, width, height, y: yuv.y(), y_stride, u: yuv.u(), v: yuv.v(), uv_stride });
}

/// Largest box edge [`downscale_gray`] uses (7680 px wide still comes down to 120).
pub const MAX_BOX_FACTOR: usize = 64;

/// A picture in I420 owned past the decoder's callback: Y (`width × height`), then U and V
/// (`⌈width/2⌉ × ⌈height/2⌉` each), no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl I420 {
    fn chroma(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn u(&self) -> &[u8] {
        let (cw, ch) = self.chroma();
        let y = self.width * self.height;
        &self.data[y..y + cw * ch]
    }

    pub fn v(&self) -> &[u8] {
        let (cw, ch) = self.chroma();
        let y = self.width * self.height;
        &self.data[y + cw * ch..y + 2 * cw * ch]
    }

    /// Stride of the U and V rows.
    pub fn uv_stride(&self) -> usize {
        self.width.div_ceil(2)
    }
}

/// A downscaled luma picture: what motion detection and other analytics consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayFrame {
    pub width: usize,
    pub height: usize,
    /// `width * height` bytes, row-major, no padding.
    pub data: Vec<u8>,
}

/// The integer box factor that makes `width` x `height` fit `max_width` x `max_height`
/// (at least 1; at most [`MAX_BOX_FACTOR`] and the smaller side, so the output keeps at least
/// one pixel; only absurd limits or aspect ratios hit these caps, and then the output exceeds
/// the maximum).
pub fn box_factor(width: usize, height: usize, max_width: usize, max_height: usize) -> usize {
    let fw = width.div_ceil(max_width.max(1));
    let fh = height.div_ceil(max_height.max(1));
    fw.max(fh).clamp(1, MAX_BOX_FACTOR).min(width.min(height).max(1))
}

/// Box-filter (area-average, rounded) downscale of a luma plane by one integer factor in both
/// directions, chosen by [`box_factor`]: the output is `width / f` x `height / f` (the last
/// `width % f` columns and `height % f` rows are dropped) and fits the maximum unless the
/// aspect ratio makes that impossible at one pixel. Factor 1 copies.
///
/// Vertical sums run over whole rows into a `u16` accumulator (vectorises); each output pixel
/// is then one horizontal sum and a multiply-shift by the exact reciprocal of `f * f`.
pub fn downscale_gray(y: &[u8], stride: usize, width: usize, height: usize, max_width: usize, max_height: usize) -> GrayFrame {
    if width == 0 || height == 0 || stride < width || y.len() < stride * (height - 1) + width {
        return GrayFrame { width: 0, height: 0, data: Vec::new() };
    }
    let f = box_factor(width, height, max_width, max_height);
    let (ow, oh) = (width / f, height / f);
    let mut data = Vec::with_capacity(ow * oh);
    if f == 1 {
        for r in 0..oh {
            data.extend_from_slice(&y[r * stride..r * stride + ow]);
        }
        return GrayFrame { width: ow, height: oh, data };
    }
    let used = ow * f;
    let n = (f * f) as u64;
    // floor(x / n) == (x * m) >> 40 when x * n < 2^40: x <= 256 n and n <= 4096 (f <= 64),
    // so this is exact; vertical sums of f <= 64 pixels fit the u16 accumulator.
    let m = (1u64 << 40).div_ceil(n);
    let half = (n / 2) as u32;
    let mut acc = vec![0u16; used];
    for orow in 0..oh {
        acc.fill(0);
        for r in orow * f..orow * f + f {
            let row = &y[r * stride..r * stride + used];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += u16::from(p);
            }
        }
        match f {
            2 => horizontal::<2>(&acc, half, m, &mut data),
            3 => horizontal::<3>(&acc, half, m, &mut data),
            4 => horizontal::<4>(&acc, half, m, &mut data),
            6 => horizontal::<6>(&acc, half, m, &mut data),
            8 => horizontal::<8>(&acc, half, m, &mut data),
            _ => data.extend(acc.chunks_exact(f).map(|c| {
                let s: u32 = c.iter().map(|&v| u32::from(v)).sum();
                ((u64::from(s + half) * m) >> 40) as u8
            })),
        }
    }
    GrayFrame { width: ow, height: oh, data }
}

/// Horizontal box sums of the common factors, with the width known to the compiler.
fn horizontal<const F: usize>(acc: &[u16], half: u32, m: u64, out: &mut Vec<u8>) {
    out.extend(acc.chunks_exact(F).map(|c| {
        let s: u32 = c.iter().map(|&v| u32::from(v)).sum();
        ((u64::from(s + half) * m) >> 40) as u8
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_factor_fits_limits() {
        assert_eq!(box_factor(1920, 1080, 320, 240), 6);
        assert_eq!(box_factor(768, 576, 320, 320), 3);
        assert_eq!(box_factor(640, 272, 320, 320), 2);
        assert_eq!(box_factor(200, 100, 320, 320), 1);
        assert_eq!(box_factor(2, 10_000, 320, 240), 2);
    }

    #[test]
    fn downscale_exact_values() {
        // 5x4 image with stride 6 (padding 99), factor 2 -> 2x2, last column dropped.
        #[rustfmt::skip]
        let img = [
            0, 1, 10, 20, 7, 99,
            2, 3, 30, 41, 7, 99,
            255, 255, 0, 0, 7, 99,
            255, 254, 0, 1, 7, 99,
        ];
        let g = downscale_gray(&img, 6, 5, 4, 3, 2);
        assert_eq!((g.width, g.height), (2, 2));
        // (0+1+2+3)/4 = 1.5 -> 2; (10+20+30+41)/4 = 25.25 -> 25; 1019/4 = 254.75 -> 255; 1/4 -> 0
        assert_eq!(g.data, vec![2, 25, 255, 0]);
    }

    #[test]
    fn downscale_matches_division_for_all_factors() {
        let (w, h) = (97usize, 61usize);
        let img: Vec<u8> = (0..w * h).map(|i| ((i * 7919 + i / 13) % 256) as u8).collect();
        for f in 1..=20 {
            let g = downscale_gray(&img, w, w, h, w / f, h);
            let f = box_factor(w, h, w / f, h);
            assert_eq!((g.width, g.height), (w / f, h / f));
            for oy in 0..g.height {
                for ox in 0..g.width {
                    let mut s = 0u32;
                    for yy in 0..f {
                        for xx in 0..f {
                            s += u32::from(img[(oy * f + yy) * w + ox * f + xx]);
                        }
                    }
                    let n = (f * f) as u32;
                    assert_eq!(u32::from(g.data[oy * g.width + ox]), (s + n / 2) / n, "f={f} at {ox},{oy}");
                }
            }
        }
        // Largest values at the largest factor: all 255 stays 255; the cap holds.
        let white = vec![255u8; 256 * 256];
        let g = downscale_gray(&white, 256, 256, 256, 1, 1);
        assert_eq!((g.width, g.height), (4, 4));
        assert!(g.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn downscale_bad_input_is_empty() {
        assert_eq!(downscale_gray(&[1, 2, 3], 4, 4, 2, 10, 10).width, 0);
        assert_eq!(downscale_gray(&[], 0, 0, 0, 10, 10).data.len(), 0);
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Decoder::new();
        let mut n = 0;
        assert!(d.set_avcc(&[1, 2, 3], |_| n += 1).is_err());
        assert!(d.decode(&[0, 0, 0, 9, 1, 2], 0, true, |_| n += 1).is_err());
        let _ = d.decode(&[0, 0, 0, 3, 0x65, 0xff, 0x00], 0, true, |_| n += 1);
        let _ = d.decode(&[0, 0, 0, 3, 0x41, 0xff, 0x00], 1, false, |_| n += 1);
        d.flush(|_| n += 1);
        assert_eq!(n, 0);
        assert!(d.stats().errors >= 1);
    }
}
