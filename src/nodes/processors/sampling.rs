//! Frame sampling: at most N frames per second of media time, exactly on average, shared by FrameRateFilterProcessor and the extensions' `samplingOptions`.
//!
//! The rule (SPEC §1.3 says only "never exceed this rate"): the first frame is taken; after
//! it, due times advance by exactly one period from the last *due* time (not from the
//! frame taken), so a 30 fps stream sampled at 2/s gives 2 frames in every second, not a
//! rate that drifts down with the frame interval. A frame is taken when its time reaches
//! the next due time, with [`TOLERANCE`] for timestamps rounded to the 90 kHz clock or to
//! whole milliseconds (a frame at 499.99 ms counts for the 500 ms slot). When frames were
//! missing for longer than a period (a pause, a reconnect, frames dropped upstream), the
//! schedule restarts at the next frame: no burst to catch up. Time going backwards (a
//! camera clock jump) restarts it too.

use crate::runtime::packet::{Frame, Nanos};
use crate::topology::nodes::common::SamplingOptions;

/// Slack for timestamp rounding: far below any frame interval (≤ 1000 fps).
pub const TOLERANCE: Nanos = 1_000_000;

#[derive(Clone, Debug)]
pub struct Sampler {
    period: Nanos,
    next_due: Option<Nanos>,
}

impl Sampler {
    /// `rate`: frames per second, > 0 (the topology compiler checks it). `None`: every frame.
    pub fn new(rate: Option<f64>) -> Self {
        let period = match rate {
            Some(r) if r > 0.0 && r.is_finite() => (1e9 / r).round().clamp(1.0, i64::MAX as f64) as Nanos,
            _ => 0,
        };
        Sampler { period, next_due: None }
    }

    /// Whether the frame at media time `t` is sampled.
    pub fn take(&mut self, t: Nanos) -> bool {
        if self.period == 0 {
            return true;
        }
        match self.next_due {
            Some(due) if t < due - TOLERANCE => {
                // Before its slot — unless time went back by more than a period.
                if t < due - self.period - TOLERANCE {
                    self.next_due = Some(t.saturating_add(self.period));
                    return true;
                }
                false
            }
            Some(due) => {
                let next = due.saturating_add(self.period);
                // Late by more than a period: frames were missing; restart at this frame.
                self.next_due = Some(if t >= next - TOLERANCE { t.saturating_add(self.period) } else { next });
                true
            }
            None => {
                self.next_due = Some(t.saturating_add(self.period));
                true
            }
        }
    }
}

/// An extension's `samplingOptions` over frames: the rate, then
/// `skipSamplesWithoutAnnotation` (only frames that carry upstream inferences).
#[derive(Clone, Debug)]
pub struct FrameSampling {
    sampler: Sampler,
    skip_without_annotation: bool,
}

impl FrameSampling {
    pub fn new(o: &SamplingOptions) -> Self {
        FrameSampling { sampler: Sampler::new(o.maximum_samples_per_second), skip_without_annotation: o.skip_samples_without_annotation }
    }

    /// Whether this frame is a sample.
    pub fn take(&mut self, f: &Frame) -> bool {
        self.sampler.take(f.picture.wall) && !(self.skip_without_annotation && f.inferences.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    /// Times of `n` frames at `fps` as a camera stamps them (90 kHz clock, in ns).
    fn frames(fps: f64, n: usize) -> Vec<Nanos> {
        (0..n).map(|i| ((i as f64 * 90_000.0 / fps).round() as i64) * 100_000 / 9).collect()
    }

    fn taken(rate: f64, times: &[Nanos]) -> Vec<usize> {
        let mut s = Sampler::new(Some(rate));
        times.iter().enumerate().filter(|(_, t)| s.take(**t)).map(|(i, _)| i).collect()
    }

    #[test]
    fn every_frame_without_a_rate() {
        let mut s = Sampler::new(None);
        assert!(frames(30.0, 100).into_iter().all(|t| s.take(t)));
    }

    #[test]
    fn thirty_fps_at_two_per_second_takes_every_fifteenth_frame_exactly() {
        let t = frames(30.0, 30 * 60);
        let k = taken(2.0, &t);
        assert_eq!(k.len(), 120, "two per second over 60 s");
        assert!(k.iter().enumerate().all(|(i, f)| *f == i * 15), "{:?}", &k[..10]);
    }

    #[test]
    fn rates_that_do_not_divide_the_frame_rate_hold_on_average_and_never_exceed() {
        for (fps, rate) in [(25.0, 2.0), (29.97, 5.0), (30.0, 7.0), (10.0, 3.0), (30.0, 0.5), (15.0, 0.2)] {
            let t = frames(fps, (fps * 120.0) as usize);
            let k = taken(rate, &t);
            let expected = rate * 120.0;
            assert!((k.len() as f64 - expected).abs() <= 1.0, "{fps} fps at {rate}/s: {} samples for {expected}", k.len());
            // In any one-second window, at most ceil(rate) + 1 boundary effect.
            for w in k.windows(2) {
                let gap = t[w[1]] - t[w[0]];
                assert!(gap as f64 >= 1e9 / rate - 1e9 / fps - TOLERANCE as f64, "{fps}/{rate}: samples {gap} ns apart");
            }
        }
    }

    #[test]
    fn a_rate_above_the_frame_rate_takes_every_frame() {
        let t = frames(10.0, 100);
        assert_eq!(taken(30.0, &t).len(), 100);
    }

    #[test]
    fn a_pause_restarts_the_schedule_without_a_burst() {
        let mut t = frames(30.0, 30);
        let resume = t[29] + 10 * S;
        t.extend(frames(30.0, 60).into_iter().map(|x| x + resume));
        let k = taken(2.0, &t);
        // 2 in the first second, then samples at the resume and every 15 frames after it.
        assert_eq!(k, vec![0, 15, 30, 45, 60, 75]);
    }

    #[test]
    fn time_going_back_restarts_at_once() {
        let mut s = Sampler::new(Some(1.0));
        assert!(s.take(100 * S));
        assert!(!s.take(100 * S + S / 2));
        assert!(s.take(50 * S), "a clock jump back by 50 s");
        assert!(!s.take(50 * S + S / 2));
        assert!(s.take(51 * S));
    }

    #[test]
    fn millisecond_rounding_does_not_skip_a_slot() {
        // 30 fps stamped in whole milliseconds: 0, 33, 67, 100, … 467, 500 → frame 15 at 500.
        let t: Vec<Nanos> = (0..60).map(|i| ((i as f64 * 1000.0 / 30.0).round() as i64) * 1_000_000).collect();
        assert_eq!(taken(2.0, &t), vec![0, 15, 30, 45]);
    }
}
