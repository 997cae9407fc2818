//! Fragmenter: encoded samples in, complete MP4 fragments (one per GOP, at most 2 s) out, with decode times from wall time.
//!
//! Pure: no I/O. The file sink and the video store's segment writer both feed it and
//! write what it hands back with [`crate::media::mp4::Fmp4Writer`].
//!
//! Decode times come from the samples' wall clock, not their RTP timestamps: the wall
//! clock is what the recording's index and the clip boundaries are expressed in, and it
//! survives RTP timestamp resets on reconnects. Decode times must strictly increase in an
//! MP4, so equal or slightly backward wall times (camera clock quirks) are nudged one tick
//! past the previous frame.

use crate::media::mkv::EncodedFrame;
use crate::runtime::packet::{Nanos, VideoSample};

/// Longest fragment: bounds what a crash can lose when GOPs are long.
pub const MAX_FRAGMENT: Nanos = 2_000_000_000;

/// Frames of one fragment, ready for `Fmp4Writer::write_fragment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flush {
    /// Decode order; pts = dts (the wall clock gives presentation order).
    pub frames: Vec<EncodedFrame>,
    /// Decode time of the frame that follows, when known: makes the last frame's duration exact.
    pub next_dts_90k: Option<i64>,
    /// Wall time of the first frame.
    pub start_wall: Nanos,
}

impl Flush {
    /// The fragment starts a GOP (false when a GOP longer than [`MAX_FRAGMENT`] was split).
    pub fn starts_with_keyframe(&self) -> bool {
        self.frames.first().is_some_and(|f| f.keyframe)
    }
}

/// Groups samples into fragments on one decode timeline (one file).
#[derive(Debug, Default)]
pub struct Fragmenter {
    /// Wall time of the first sample: decode time zero.
    base_wall: Option<Nanos>,
    pending: Vec<EncodedFrame>,
    pending_start: Nanos,
    last_dts: Option<i64>,
    /// Decode-time step between the last two frames, to estimate the last frame's duration.
    last_step: Option<i64>,
}

/// Nanoseconds to 90 kHz ticks (floor), without overflow for any `Nanos`.
pub fn nanos_to_ticks(ns: Nanos) -> i64 {
    (i128::from(ns) * 9).div_euclid(100_000) as i64
}

/// 90 kHz ticks to nanoseconds (floor), saturating.
pub fn ticks_to_nanos(ticks: i64) -> Nanos {
    (i128::from(ticks) * 100_000).div_euclid(9).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Fragmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the timeline has started (a keyframe was accepted).
    pub fn started(&self) -> bool {
        self.base_wall.is_some()
    }

    /// Wall time of decode time zero.
    pub fn base_wall(&self) -> Option<Nanos> {
        self.base_wall
    }

    /// Frames waiting for the end of their fragment.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The decode time a sample at `wall` gets now: from the wall clock, strictly after the previous frame.
    pub fn dts_for(&self, wall: Nanos) -> i64 {
        let dts = nanos_to_ticks(wall.saturating_sub(self.base_wall.unwrap_or(wall)));
        match self.last_dts {
            Some(last) if dts <= last => last + 1,
            _ => dts,
        }
    }

    /// Adds a sample; returns the fragment it completes, if any.
    ///
    /// The timeline starts at the first keyframe: samples before it cannot be decoded and
    /// are dropped (a file must start with a keyframe).
    pub fn push(&mut self, v: &VideoSample) -> Option<Flush> {
        if self.base_wall.is_none() {
            if !v.keyframe {
                return None;
            }
            self.base_wall = Some(v.wall);
        }
        let dts = self.dts_for(v.wall);
        let done = if (v.keyframe || v.wall.saturating_sub(self.pending_start) >= MAX_FRAGMENT) && !self.pending.is_empty() {
            Some(self.take(Some(dts)))
        } else {
            None
        };
        if self.pending.is_empty() {
            self.pending_start = v.wall;
        }
        self.last_step = self.last_dts.map(|last| dts - last);
        self.last_dts = Some(dts);
        self.pending.push(EncodedFrame { pts_90k: dts, dts_90k: dts, keyframe: v.keyframe, data: v.data.clone() });
        done
    }

    /// The pending frames as a fragment that ends the timeline (the last frame's duration
    /// is left to the writer's nominal one).
    pub fn finish(&mut self) -> Option<Flush> {
        (!self.pending.is_empty()).then(|| self.take(None))
    }

    /// The pending frames as a fragment, the last frame lasting until a sample at `wall`
    /// (which continues the stream in another file).
    pub fn finish_before(&mut self, wall: Nanos) -> Option<Flush> {
        let next = self.dts_for(wall);
        (!self.pending.is_empty()).then(|| self.take(Some(next)))
    }

    /// The pending frames as a fragment, the last frame lasting as long as the one before
    /// it (a better guess than a nominal rate when the stream stops or jumps).
    pub fn finish_estimated(&mut self) -> Option<Flush> {
        let next = match (self.last_dts, self.last_step) {
            (Some(last), Some(step)) if step > 0 => Some(last + step),
            _ => None,
        };
        (!self.pending.is_empty()).then(|| self.take(next))
    }

    fn take(&mut self, next_dts_90k: Option<i64>) -> Flush {
        Flush { frames: std::mem::take(&mut self.pending), next_dts_90k, start_wall: self.pending_start }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::packet::VideoParams;
    use bytes::Bytes;
    use std::sync::Arc;

    fn sample(wall_ms: i64, keyframe: bool) -> VideoSample {
        let params = Arc::new(VideoParams { width: 2, height: 2, avcc: Bytes::new(), codec: String::new() });
        VideoSample { pts_90k: wall_ms * 90, wall: wall_ms * 1_000_000, keyframe, data: Bytes::from_static(&[0, 0, 0, 1, 0x65]), params }
    }

    fn feed(f: &mut Fragmenter, samples: &[(i64, bool)]) -> Vec<Flush> {
        samples.iter().filter_map(|&(ms, k)| f.push(&sample(ms, k))).collect()
    }

    #[test]
    fn one_fragment_per_gop_with_the_next_keyframe_fixing_the_last_duration() {
        let mut f = Fragmenter::new();
        let out = feed(&mut f, &[(1000, true), (1100, false), (1200, true), (1300, false), (1400, true)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].frames.iter().map(|x| x.dts_90k).collect::<Vec<_>>(), vec![0, 9000]);
        assert_eq!(out[0].next_dts_90k, Some(18000));
        assert_eq!((out[0].start_wall, out[1].start_wall), (1_000_000_000, 1_200_000_000));
        assert!(out[0].starts_with_keyframe());
        let last = f.finish().unwrap();
        assert_eq!((last.frames.len(), last.next_dts_90k), (1, None));
        assert!(f.finish().is_none());
    }

    #[test]
    fn samples_before_the_first_keyframe_are_dropped() {
        let mut f = Fragmenter::new();
        assert!(feed(&mut f, &[(0, false), (40, false)]).is_empty());
        assert!(!f.started());
        feed(&mut f, &[(80, true), (120, false)]);
        assert_eq!(f.base_wall(), Some(80_000_000));
        let out = f.finish().unwrap();
        assert_eq!(out.frames.iter().map(|x| x.dts_90k).collect::<Vec<_>>(), vec![0, 3600]);
    }

    #[test]
    fn long_gops_are_split_every_two_seconds() {
        let mut f = Fragmenter::new();
        let samples: Vec<(i64, bool)> = (0..60).map(|i| (i * 100, i == 0)).collect(); // one 6 s GOP at 10 fps
        let out = feed(&mut f, &samples);
        assert_eq!(out.iter().map(|x| x.frames.len()).collect::<Vec<_>>(), vec![20, 20]);
        assert!(out[0].starts_with_keyframe() && !out[1].starts_with_keyframe());
        assert_eq!(out[1].start_wall, 2_000_000_000);
    }

    #[test]
    fn decode_times_strictly_increase_when_wall_times_do_not() {
        let mut f = Fragmenter::new();
        feed(&mut f, &[(1000, true), (1000, false), (990, false), (1100, false)]);
        let out = f.finish_before(1200 * 1_000_000).unwrap();
        assert_eq!(out.frames.iter().map(|x| x.dts_90k).collect::<Vec<_>>(), vec![0, 1, 2, 9000]);
        assert_eq!(out.next_dts_90k, Some(18000));
    }

    #[test]
    fn estimated_end_repeats_the_last_step() {
        let mut f = Fragmenter::new();
        feed(&mut f, &[(0, true), (100, false)]);
        assert_eq!(f.finish_estimated().unwrap().next_dts_90k, Some(18000));
        let mut single = Fragmenter::new();
        feed(&mut single, &[(0, true)]);
        assert_eq!(single.finish_estimated().unwrap().next_dts_90k, None);
    }

    #[test]
    fn tick_conversions_floor_and_never_overflow() {
        assert_eq!(nanos_to_ticks(1_000_000_000), 90_000);
        assert_eq!(ticks_to_nanos(90_000), 1_000_000_000);
        assert_eq!(ticks_to_nanos(1), 11_111);
        assert_eq!(ticks_to_nanos(i64::MAX), i64::MAX);
        assert_eq!(nanos_to_ticks(-1), -1);
        assert!(nanos_to_ticks(i64::MIN) < 0);
    }
}
