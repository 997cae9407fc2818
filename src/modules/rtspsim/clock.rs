//! The loop schedule of a simulated camera: which frame goes out when, and with which media timestamp, forever.
//!
//! A file of N frames is played as an endless stream. Loop `k` shifts every decode and
//! presentation timestamp by `k × loop_duration`, where `loop_duration` is the distance from
//! the first frame's decode time to one frame duration past the last one. So the first frame
//! of a new loop lands exactly one frame duration after the last frame of the previous loop:
//! RTP time never jumps and never goes backwards across the wrap.

use std::time::Duration;
use thiserror::Error;

/// Media clock rate of H.264 over RTP (RFC 6184 section 8.2.1).
pub const CLOCK_RATE: u64 = 90_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClockError {
    #[error("the file has no video frames")]
    NoFrames,
    #[error("decode timestamps go backwards at frame {index} ({prev} then {next})")]
    NonMonotonicDts { index: usize, prev: i64, next: i64 },
    #[error("frame duration is zero and cannot be derived from the timestamps")]
    NoFrameDuration,
}

/// One frame's timestamps as stored in the file, in 90 kHz units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTimes {
    pub dts: i64,
    pub pts: i64,
}

/// The position of the `n`-th frame of the endless stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Index of the frame in the file.
    pub index: usize,
    /// How many times the file has wrapped before this frame.
    pub loop_no: u64,
    /// Decode time on the endless timeline, 90 kHz, 0 for the first frame: when to send it.
    pub send_at: u64,
    /// Presentation time on the endless timeline, 90 kHz: its RTP timestamp before the per-client offset.
    pub pts: u64,
}

/// The endless timeline of one file.
#[derive(Clone, Debug)]
pub struct LoopClock {
    /// Per frame, decode and presentation time relative to the first frame's decode time
    /// (presentation can only lead decode, so `pts` may exceed `dts` but never undercut 0).
    times: Vec<(u64, u64)>,
    loop_duration: u64,
    frame_duration: u64,
}

impl LoopClock {
    /// `frame_duration` is the nominal duration of one frame (90 kHz); 0 means "derive it
    /// from the median decode-time step", for files whose container does not state it.
    pub fn new(frames: &[FrameTimes], frame_duration: u32) -> Result<Self, ClockError> {
        let first = frames.first().ok_or(ClockError::NoFrames)?;
        for (i, w) in frames.windows(2).enumerate() {
            if w[1].dts < w[0].dts {
                return Err(ClockError::NonMonotonicDts { index: i + 1, prev: w[0].dts, next: w[1].dts });
            }
        }
        let frame_duration = if frame_duration > 0 { u64::from(frame_duration) } else { median_step(frames)? };
        // A pts before the first dts would be a broken file; clamp so timestamps stay unsigned.
        let base = frames.iter().map(|f| f.dts.min(f.pts)).min().unwrap_or(first.dts).min(first.dts);
        let times: Vec<(u64, u64)> = frames.iter().map(|f| ((f.dts - base) as u64, (f.pts - base) as u64)).collect();
        let last_dts = times.last().map(|t| t.0).unwrap_or(0);
        let first_dts = times[0].0;
        let loop_duration = last_dts - first_dts + frame_duration;
        Ok(LoopClock { times, loop_duration, frame_duration })
    }

    pub fn frame_count(&self) -> usize {
        self.times.len()
    }

    /// Length of one pass over the file in 90 kHz units.
    pub fn loop_duration(&self) -> u64 {
        self.loop_duration
    }

    pub fn frame_duration(&self) -> u64 {
        self.frame_duration
    }

    /// Frames per second implied by the frame duration.
    pub fn fps(&self) -> f64 {
        CLOCK_RATE as f64 / self.frame_duration as f64
    }

    /// Where the `n`-th frame (counting from 0, across loops) sits on the endless timeline.
    pub fn frame(&self, n: u64) -> Scheduled {
        let count = self.times.len() as u64;
        let (loop_no, index) = (n / count, (n % count) as usize);
        let shift = loop_no * self.loop_duration;
        let (dts, pts) = self.times[index];
        let first_dts = self.times[0].0;
        Scheduled { index, loop_no, send_at: dts - first_dts + shift, pts: pts + shift }
    }
}

fn median_step(frames: &[FrameTimes]) -> Result<u64, ClockError> {
    let mut steps: Vec<i64> = frames.windows(2).map(|w| w[1].dts - w[0].dts).filter(|&d| d > 0).collect();
    if steps.is_empty() {
        return Err(ClockError::NoFrameDuration);
    }
    steps.sort_unstable();
    Ok(steps[steps.len() / 2] as u64)
}

/// Wall-clock offset at which media time `ticks` (90 kHz) is due when playing at `speed`.
pub fn wall_offset(ticks: u64, speed: f64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / CLOCK_RATE as f64 / speed)
}

/// Media time (90 kHz) that has elapsed after `wall` of wall-clock time at `speed`.
pub fn media_elapsed(wall: Duration, speed: f64) -> u64 {
    (wall.as_secs_f64() * speed * CLOCK_RATE as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant_rate(n: usize, step: i64, start: i64) -> Vec<FrameTimes> {
        (0..n as i64).map(|i| FrameTimes { dts: start + i * step, pts: start + i * step }).collect()
    }

    #[test]
    fn timestamps_continue_across_the_loop() {
        // 10 fps, 5 frames, file starting at an arbitrary timestamp.
        let c = LoopClock::new(&constant_rate(5, 9000, 123_456), 9000).unwrap();
        assert_eq!(c.loop_duration(), 45_000);
        let pts: Vec<u64> = (0..12).map(|n| c.frame(n).pts).collect();
        for w in pts.windows(2) {
            assert_eq!(w[1] - w[0], 9000, "{pts:?}");
        }
        assert_eq!(c.frame(5), Scheduled { index: 0, loop_no: 1, send_at: 45_000, pts: 45_000 });
        assert_eq!(c.frame(11).index, 1);
    }

    #[test]
    fn frame_duration_derived_when_missing() {
        let c = LoopClock::new(&constant_rate(4, 3600, 0), 0).unwrap();
        assert_eq!(c.frame_duration(), 3600);
        assert_eq!(c.fps(), 25.0);
        assert_eq!(c.frame(4).pts, 4 * 3600);
    }

    #[test]
    fn b_frame_offsets_are_kept_and_loops_stay_monotonic_in_decode_order() {
        // I P B B with pts leading dts by two frames (typical reorder delay).
        let f = |dts: i64, pts: i64| FrameTimes { dts, pts };
        let frames = [f(0, 7200), f(3600, 18000), f(7200, 10800), f(10800, 14400)];
        let c = LoopClock::new(&frames, 3600).unwrap();
        assert_eq!(c.loop_duration(), 14400);
        let send: Vec<u64> = (0..8).map(|n| c.frame(n).send_at).collect();
        assert!(send.windows(2).all(|w| w[1] > w[0]), "{send:?}");
        // Presentation order across the wrap: the next loop's I frame follows the last displayed frame.
        assert_eq!(c.frame(4).pts, 7200 + 14400);
        assert_eq!(c.frame(1).pts + 3600, c.frame(4).pts);
    }

    #[test]
    fn single_frame_file_loops_at_frame_duration() {
        let c = LoopClock::new(&constant_rate(1, 0, 50), 3000).unwrap();
        assert_eq!((c.frame(0).pts, c.frame(1).pts, c.frame(2).pts), (0, 3000, 6000));
    }

    #[test]
    fn errors() {
        assert_eq!(LoopClock::new(&[], 3000).unwrap_err(), ClockError::NoFrames);
        let bad = [FrameTimes { dts: 10, pts: 10 }, FrameTimes { dts: 5, pts: 5 }];
        assert!(matches!(LoopClock::new(&bad, 3000), Err(ClockError::NonMonotonicDts { index: 1, .. })));
        assert_eq!(LoopClock::new(&constant_rate(1, 0, 0), 0).unwrap_err(), ClockError::NoFrameDuration);
    }

    #[test]
    fn pacing_conversions() {
        assert_eq!(wall_offset(90_000, 1.0), Duration::from_secs(1));
        assert_eq!(wall_offset(90_000, 4.0), Duration::from_millis(250));
        assert_eq!(media_elapsed(Duration::from_millis(250), 4.0), 90_000);
    }
}
