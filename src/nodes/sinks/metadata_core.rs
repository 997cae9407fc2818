//! Which inference events a video sink records with its video, and when: a pure core for the sink's metadata timing (pre-roll, late answers).
//!
//! Inferences arrive on their own schedule, not the media's: the one that makes
//! objectCounter open a gate arrives before the gate tells the sink a clip began, a clip's
//! pre-roll holds pictures analysed seconds earlier, and an extension's answer about a
//! clip's last pictures arrives after the clip closed. Entries are kept by the time of the
//! picture they describe, so the rule is about that time:
//!
//! * while the sink records (and has its video), everything is recorded;
//! * between recordings, an entry about a picture of the recording that just ended is
//!   recorded (a VideoSink keeps its video between clips; an AssetSink's video ends with
//!   its clip, so it has no last span);
//! * anything else is kept for a minute (at most 2000 entries); when a recording starts,
//!   those from its start on are recorded and the rest dropped.

use crate::runtime::packet::Nanos;
use serde_json::Value;
use std::collections::VecDeque;

/// An entry to record: picture time, source node, the inferences as published.
pub type Entry = (Nanos, String, Value);

#[derive(Default)]
pub struct MetadataTiming {
    pending: VecDeque<Entry>,
    /// The recording in progress, from its start: `Some` only while there is a video to
    /// record into.
    recording: Option<Nanos>,
    /// The span of the last recording that ended, while its video stays open.
    last: Option<(Nanos, Nanos)>,
}

impl MetadataTiming {
    /// Longer than any pre-roll (`activationSignalOffset` is at least -1 minute).
    pub const KEEP: Nanos = 60_000_000_000;
    pub const MAX_PENDING: usize = 2000;

    /// An event about the picture at `time`: what to record now.
    pub fn event(&mut self, time: Nanos, source: &str, inferences: Value) -> Vec<Entry> {
        let entry = (time, source.to_string(), inferences);
        if self.recording.is_some() {
            let mut out = self.take_pending();
            out.push(entry);
            return out;
        }
        if self.last.is_some_and(|(start, end)| (start..=end).contains(&time)) {
            return vec![entry];
        }
        self.pending.push_back(entry);
        while self.pending.len() > Self::MAX_PENDING || self.pending.front().is_some_and(|f| f.0 < time - Self::KEEP) {
            self.pending.pop_front();
        }
        Vec::new()
    }

    /// A recording from `start` has its video now: what waited for it.
    pub fn recording(&mut self, start: Nanos) -> Vec<Entry> {
        self.recording = Some(start);
        self.take_pending()
    }

    /// The recording ended at `end`; `video_stays` when later entries about it can still
    /// be recorded into its video.
    pub fn ended(&mut self, end: Nanos, video_stays: bool) {
        self.last = self.recording.take().filter(|_| video_stays).map(|start| (start, end.max(start)));
    }

    fn take_pending(&mut self) -> Vec<Entry> {
        let Some(start) = self.recording else { return Vec::new() };
        std::mem::take(&mut self.pending).into_iter().filter(|e| e.0 >= start).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: Nanos = 1_000_000_000;

    fn times(entries: &[Entry]) -> Vec<Nanos> {
        entries.iter().map(|e| e.0 / S).collect()
    }

    fn event(m: &mut MetadataTiming, t: Nanos) -> Vec<Nanos> {
        times(&m.event(t * S, "tracker", json!([])))
    }

    #[test]
    fn a_clip_gets_its_pre_roll_and_the_inference_that_opened_the_gate() {
        let mut m = MetadataTiming::default();
        for t in 90..=100 {
            assert!(event(&mut m, t).is_empty(), "no recording yet");
        }
        // The trigger came from the inference at 100; the gate opens with 5 s of pre-roll.
        assert_eq!(times(&m.recording(95 * S)), vec![95, 96, 97, 98, 99, 100]);
        assert_eq!(event(&mut m, 101), vec![101]);
    }

    #[test]
    fn late_answers_about_the_last_clip_are_recorded_others_wait() {
        let mut m = MetadataTiming::default();
        m.recording(10 * S);
        m.ended(20 * S, true);
        assert_eq!(event(&mut m, 19), vec![19], "an answer about the clip's last pictures");
        assert_eq!(event(&mut m, 20), vec![20]);
        assert!(event(&mut m, 21).is_empty(), "after the clip: kept for the next one");
        assert!(event(&mut m, 5).is_empty(), "before the clip's start");
        // The next clip takes what is at or after its start, and nothing older.
        assert_eq!(times(&m.recording(21 * S)), vec![21]);
    }

    #[test]
    fn an_asset_sinks_video_ends_with_its_clip() {
        let mut m = MetadataTiming::default();
        m.recording(10 * S);
        m.ended(20 * S, false);
        assert!(event(&mut m, 19).is_empty());
        assert!(m.recording(30 * S).is_empty(), "19 s is before the next clip");
    }

    #[test]
    fn waiting_entries_are_bounded_by_age_and_count() {
        let mut m = MetadataTiming::default();
        for t in 0..100 {
            event(&mut m, t);
        }
        assert_eq!(m.pending.len(), 61, "the last minute");
        assert_eq!(times(&m.recording(0)).first(), Some(&39));
        let mut m = MetadataTiming::default();
        for i in 0..3000 {
            m.event(i, "n", json!([]));
        }
        assert_eq!(m.pending.len(), MetadataTiming::MAX_PENDING);
        assert_eq!(m.pending.front().map(|e| e.0), Some(1000));
    }

    #[test]
    fn nothing_is_recorded_twice() {
        let mut m = MetadataTiming::default();
        event(&mut m, 1);
        assert_eq!(times(&m.recording(0)), vec![1]);
        assert!(m.recording(0).is_empty());
        assert_eq!(event(&mut m, 2), vec![2]);
        m.ended(3 * S, true);
        assert!(m.recording(0).is_empty());
    }
}
