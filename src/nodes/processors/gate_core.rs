//! The signal gate's timing as a pure state machine: events open activations, media inside them flows, with GOP-aligned pre-roll.
//!
//! Semantics (SPEC §1.3, D-LVA-SG/D-AVA-SG), on one time axis (wall-clock nanoseconds
//! of the media; an event's `eventTime` when it has one, else the media time at which
//! it arrived):
//! 1. The first event of an activation is not acted on at once: the gate waits
//!    `activationEvaluationWindow` (measured on media time from the event's arrival),
//!    because an event with an *earlier* time may still arrive and must then define
//!    the start. Events with earlier times that arrive after the window are late and
//!    ignored, also once that activation has closed (else they would record its
//!    stretch of media again).
//! 2. The clip starts at the earliest event's time + `activationSignalOffset`
//!    (negative = pre-roll from the look-back buffer), rounded down to a keyframe.
//! 3. Each event restarts the minimum timer: the clip ends at the latest event's time
//!    + `minimumActivationTime`, but never after first event + `maximumActivationTime`.
//! 4. An event beyond that cap does not extend the activation; once it has closed,
//!    such an event starts a new one (a new clip).
//! 5. An event that arrives after its activation closed but whose time that activation
//!    covered (it was delayed on its way, e.g. by an aggregation window upstream) adds
//!    nothing when the closed clip already reaches its time + minimum: it is ignored. When
//!    it reaches further, the new clip starts where the closed one ended (on the keyframe
//!    at or before it), so media is never recorded twice beyond that one GOP.
//!
//! Example (offset −5 s, min 20 s, max 40 s): an event at 100 s gives [95, 120];
//! events at 100 and 105 give [95, 125]; events every 5 s give [95, 140]; events at
//! 100 and 130 give [95, 120] and [125, 150].

use std::collections::VecDeque;

/// Nanoseconds since the Unix epoch, on the media's wall clock.
pub type Nanos = i64;

pub const SECOND: Nanos = 1_000_000_000;

/// What the core needs of a media sample.
pub trait Timed {
    fn time(&self) -> Nanos;
    fn is_keyframe(&self) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateTiming {
    pub evaluation_window: Nanos,
    pub signal_offset: Nanos,
    pub minimum_activation: Nanos,
    pub maximum_activation: Nanos,
    /// How much older than "now" an event's time may be and still reach into the
    /// look-back buffer (objectCounter's triggers carry the inference's time).
    pub event_lateness: Nanos,
}

impl GateTiming {
    /// Media kept while the gate is closed: enough for the pre-roll of an event that
    /// arrives `event_lateness` late and is then evaluated for the window.
    pub fn lookback(&self) -> Nanos {
        (-self.signal_offset).max(0) + self.evaluation_window + self.event_lateness
    }
}

/// What the gate tells its sinks.
#[derive(Debug, PartialEq)]
pub enum GateOutput<F> {
    /// A clip begins; `start` is the time of its first (key)frame.
    Start {
        activation: u64,
        start: Nanos,
    },
    Frame(F),
    /// The clip ended; `end` is the activation's end time (frames before it were sent).
    End {
        activation: u64,
        end: Nanos,
    },
}

#[derive(Debug)]
enum State {
    Closed,
    /// Waiting `evaluation_window` after the first event's arrival.
    Evaluating {
        decide_at: Nanos,
        earliest: Nanos,
        latest: Nanos,
    },
    /// Sending media until `end`. `sent_up_to` is the time of the last frame sent.
    Open {
        activation: u64,
        first: Nanos,
        end: Nanos,
        started: bool,
        start: Nanos,
    },
}

pub struct GateCore<F> {
    timing: GateTiming,
    buffer: VecDeque<F>,
    state: State,
    /// Events beyond the current activation's cap, replayed when it closes.
    pending: Vec<Nanos>,
    /// The first event's time of the latest activation (decided, whether open or closed):
    /// events before it are late.
    floor: Nanos,
    /// Where the last closed activation ended (rule 5).
    last_end: Nanos,
    next_activation: u64,
    now: Nanos,
    late_events: u64,
}

impl<F: Timed + Clone> GateCore<F> {
    pub fn new(timing: GateTiming) -> Self {
        GateCore {
            timing,
            buffer: VecDeque::new(),
            state: State::Closed,
            pending: Vec::new(),
            floor: Nanos::MIN,
            last_end: Nanos::MIN,
            next_activation: 1,
            now: i64::MIN,
            late_events: 0,
        }
    }

    /// Events ignored because they arrived after the evaluation window with a time
    /// before their activation's first event (while it was open or after it closed).
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// An event with its time (`eventTime`, or the arrival time when it has none).
    /// `now` is the media time at which it arrived (the latest frame's time).
    pub fn on_event(&mut self, time: Nanos, now: Nanos) -> Vec<GateOutput<F>> {
        self.now = self.now.max(now);
        let t = self.timing;
        // Earlier than the latest decided activation's first event: that activation's
        // window is over, so the event is late whether it is still open or has closed.
        // (Events earlier than an activation still being evaluated do count: rule 1.)
        if time < self.floor {
            self.late_events += 1;
            return Vec::new();
        }
        // Covered by the closed activation (rule 5).
        if !matches!(self.state, State::Open { .. }) && time + t.minimum_activation <= self.last_end {
            self.late_events += 1;
            return Vec::new();
        }
        match &mut self.state {
            State::Closed => {
                self.state = State::Evaluating { decide_at: self.now + t.evaluation_window, earliest: time, latest: time };
                self.advance()
            }
            State::Evaluating { earliest, latest, .. } => {
                *earliest = (*earliest).min(time);
                *latest = (*latest).max(time);
                self.advance()
            }
            State::Open { first, end, .. } => {
                let cap = *first + t.maximum_activation;
                // `time >= first`: the floor is this activation's first event.
                if time <= cap {
                    *end = (*end).max((time + t.minimum_activation).min(cap));
                } else {
                    self.pending.push(time);
                }
                Vec::new()
            }
        }
    }

    /// A media sample, in time order.
    pub fn on_frame(&mut self, f: F) -> Vec<GateOutput<F>> {
        self.now = self.now.max(f.time());
        let mut out = Vec::new();
        match &mut self.state {
            State::Open { activation, end, started: true, .. } if f.time() < *end => {
                out.push(GateOutput::Frame(f.clone()));
                let _ = activation;
            }
            _ => {}
        }
        self.buffer.push_back(f);
        out.extend(self.advance());
        self.trim();
        out
    }

    /// Deactivation: ends an open activation with what was sent so far.
    pub fn flush(&mut self) -> Vec<GateOutput<F>> {
        let mut out = Vec::new();
        if let State::Open { activation, started: true, .. } = self.state {
            out.push(GateOutput::End { activation, end: self.now });
        }
        self.state = State::Closed;
        self.pending.clear();
        out
    }

    /// Moves through the states as far as the current media time allows.
    fn advance(&mut self) -> Vec<GateOutput<F>> {
        let t = self.timing;
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Closed => {
                    if self.pending.is_empty() {
                        return out;
                    }
                    // Replay events that arrived beyond the previous activation's cap.
                    let pending = std::mem::take(&mut self.pending);
                    let (earliest, latest) = (*pending.iter().min().expect("non-empty"), *pending.iter().max().expect("non-empty"));
                    self.state = State::Evaluating { decide_at: self.now, earliest, latest };
                }
                State::Evaluating { decide_at, earliest, latest } => {
                    if self.now < decide_at {
                        return out;
                    }
                    let cap = earliest + t.maximum_activation;
                    let end = (earliest + t.minimum_activation).max((latest + t.minimum_activation).min(cap)).min(cap);
                    let activation = self.next_activation;
                    self.next_activation += 1;
                    self.floor = self.floor.max(earliest);
                    // Not before the end of the closed activation that covered it (rule 5).
                    let start =
                        if earliest < self.last_end { (earliest + t.signal_offset).max(self.last_end) } else { earliest + t.signal_offset };
                    self.state = State::Open { activation, first: earliest, end, started: false, start };
                }
                State::Open { activation, end, started: false, start, first } => {
                    // Start at the keyframe at or before the clip start; until media
                    // has reached the start, that keyframe may still be coming.
                    if self.buffer.back().is_none_or(|f| f.time() < start) {
                        return out;
                    }
                    let kf = self
                        .buffer
                        .iter()
                        .rposition(|f| f.is_keyframe() && f.time() <= start)
                        .or_else(|| self.buffer.iter().position(|f| f.is_keyframe()));
                    let Some(kf) = kf else {
                        return out; // no keyframe yet: wait for one
                    };
                    let first_time = self.buffer[kf].time();
                    if first_time >= end {
                        // The whole clip predates what is buffered or falls between
                        // keyframes: nothing to record for this activation.
                        self.last_end = self.last_end.max(end);
                        self.state = State::Closed;
                        continue;
                    }
                    out.push(GateOutput::Start { activation, start: first_time });
                    for f in self.buffer.iter().skip(kf).filter(|f| f.time() < end) {
                        out.push(GateOutput::Frame(f.clone()));
                    }
                    self.state = State::Open { activation, end, started: true, start, first };
                }
                State::Open { activation, end, started: true, .. } => {
                    if self.now < end {
                        return out;
                    }
                    out.push(GateOutput::End { activation, end });
                    self.last_end = self.last_end.max(end);
                    self.state = State::Closed;
                }
            }
        }
    }

    /// Drops media older than the look-back, keeping whole GOPs.
    fn trim(&mut self) {
        let keep_from = match self.state {
            State::Closed => self.now - self.timing.lookback(),
            State::Evaluating { earliest, .. } => (earliest + self.timing.signal_offset).min(self.now - self.timing.lookback()),
            State::Open { .. } => self.now - self.timing.lookback(),
        };
        // The last keyframe at or before keep_from; everything before it can go.
        if let Some(kf) = self.buffer.iter().rposition(|f| f.is_keyframe() && f.time() <= keep_from) {
            self.buffer.drain(..kf);
        }
    }

    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct F {
        t: Nanos,
        key: bool,
    }

    impl Timed for F {
        fn time(&self) -> Nanos {
            self.t
        }
        fn is_keyframe(&self) -> bool {
            self.key
        }
    }

    const MS: Nanos = 1_000_000;

    fn timing(window: i64, offset: i64, min: i64, max: i64) -> GateTiming {
        GateTiming {
            evaluation_window: window * SECOND,
            signal_offset: offset * SECOND,
            minimum_activation: min * SECOND,
            maximum_activation: max * SECOND,
            event_lateness: 5 * SECOND,
        }
    }

    /// Runs 10 fps media with a keyframe every `gop` frames from 0 to `until` seconds,
    /// delivering each event (time, arrival) when media reaches its arrival time.
    /// Returns the clips as (start, end, first frame time, last frame time, frames).
    fn run(t: GateTiming, gop: i64, until: i64, mut events: Vec<(f64, f64)>) -> Vec<(f64, f64, f64, f64, usize)> {
        events.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let mut g = GateCore::new(t);
        let mut out = Vec::new();
        let mut ev = events.into_iter().peekable();
        for i in 0..(until * 10) {
            let now = i * 100 * MS;
            while let Some(&(time, arrival)) = ev.peek() {
                if (arrival * 1e9) as i64 > now {
                    break;
                }
                out.extend(g.on_event((time * 1e9) as i64, now));
                ev.next();
            }
            out.extend(g.on_frame(F { t: now, key: i % gop == 0 }));
        }
        out.extend(g.flush());
        clips(out)
    }

    fn clips(out: Vec<GateOutput<F>>) -> Vec<(f64, f64, f64, f64, usize)> {
        let s = |n: Nanos| n as f64 / 1e9;
        let mut clips = Vec::new();
        let mut cur: Option<(Nanos, Vec<Nanos>)> = None;
        for o in out {
            match o {
                GateOutput::Start { start, .. } => cur = Some((start, vec![])),
                GateOutput::Frame(f) => cur.as_mut().expect("frame inside a clip").1.push(f.t),
                GateOutput::End { end, .. } => {
                    let (start, frames) = cur.take().expect("end after start");
                    assert!(frames.windows(2).all(|w| w[1] > w[0]), "frames in order without repeats");
                    clips.push((s(start), s(end), s(frames[0]), s(*frames.last().unwrap()), frames.len()));
                }
            }
        }
        clips
    }

    // The SPEC's worked examples: offset −5 s, min 20 s, max 40 s, window 1 s; one
    // keyframe a second so that GOP alignment is exact on whole seconds.
    fn spec() -> GateTiming {
        timing(1, -5, 20, 40)
    }

    #[test]
    fn one_event_records_from_offset_to_minimum() {
        assert_eq!(run(spec(), 10, 200, vec![(100.0, 100.0)]), [(95.0, 120.0, 95.0, 119.9, 250)]);
    }

    #[test]
    fn a_second_event_restarts_the_minimum_timer() {
        assert_eq!(run(spec(), 10, 200, vec![(100.0, 100.0), (105.0, 105.0)]), [(95.0, 125.0, 95.0, 124.9, 300)]);
    }

    #[test]
    fn events_every_five_seconds_stop_at_the_maximum() {
        let events: Vec<_> = (0..20).map(|k| (100.0 + 5.0 * k as f64, 100.0 + 5.0 * k as f64)).collect();
        let c = run(spec(), 10, 250, events);
        // [95, 140] caps the first activation. The event at 145 opens a second one,
        // capped at 145 + 40 = 185; the events at 190 and 195 lie beyond that cap and
        // open a third when the second closes.
        assert_eq!(c, [(95.0, 140.0, 95.0, 139.9, 450), (140.0, 185.0, 140.0, 184.9, 450), (185.0, 215.0, 185.0, 214.9, 300)]);
    }

    #[test]
    fn an_event_after_the_minimum_expired_starts_a_new_clip() {
        assert_eq!(
            run(spec(), 10, 200, vec![(100.0, 100.0), (130.0, 130.0)]),
            [(95.0, 120.0, 95.0, 119.9, 250), (125.0, 150.0, 125.0, 149.9, 250)]
        );
    }

    #[test]
    fn pre_roll_is_rounded_down_to_a_keyframe() {
        // GOP of 2 s: the keyframe at or before 95.5 is 94.
        let c = run(spec(), 20, 200, vec![(100.5, 100.5)]);
        assert_eq!(c, [(94.0, 120.5, 94.0, 120.4, 265)]);
    }

    #[test]
    fn an_earlier_event_within_the_window_moves_the_start() {
        // E2 (time 100) arrives first; E1 (time 98) arrives 0.5 s later, inside the 1 s window.
        let c = run(spec(), 10, 200, vec![(100.0, 100.0), (98.0, 100.5)]);
        assert_eq!(c[0].0, 93.0);
        assert_eq!(c[0].1, 120.0, "the latest event (100) + min");
    }

    #[test]
    fn an_earlier_event_after_the_window_is_late_and_ignored() {
        let mut g: GateCore<F> = GateCore::new(spec());
        let mut out = Vec::new();
        for i in 0..2000 {
            let now = i * 100 * MS;
            if now == 100 * SECOND {
                out.extend(g.on_event(100 * SECOND, now));
            }
            if now == 102 * SECOND {
                out.extend(g.on_event(98 * SECOND, now));
            }
            out.extend(g.on_frame(F { t: now, key: i % 10 == 0 }));
        }
        assert_eq!(g.late_events(), 1);
        assert_eq!(clips(out), [(95.0, 120.0, 95.0, 119.9, 250)]);
    }

    #[test]
    fn an_earlier_event_after_the_activation_closed_is_late_too() {
        // The activation of the event at 100 closes at 120; an event with time 98 arriving
        // at 121 is as late as it would have been at 102, and must not record [110, 118]
        // (what the 11 s look-back still holds of [93, 118]) a second time.
        let mut g: GateCore<F> = GateCore::new(spec());
        let mut out = Vec::new();
        for i in 0..2000 {
            let now = i * 100 * MS;
            if now == 100 * SECOND {
                out.extend(g.on_event(100 * SECOND, now));
            }
            if now == 121 * SECOND {
                out.extend(g.on_event(98 * SECOND, now));
            }
            out.extend(g.on_frame(F { t: now, key: i % 10 == 0 }));
        }
        assert_eq!(g.late_events(), 1);
        assert_eq!(clips(out), [(95.0, 120.0, 95.0, 119.9, 250)]);
    }

    #[test]
    fn an_earlier_event_than_a_closed_activation_within_a_new_window_is_late() {
        // The activation of 100 closed at 120. An event at 130 opens a new one; an event
        // with time 99 arriving inside its window precedes both first events: it is late
        // for the first activation, so it cannot pull the second back over its media.
        let c = run(spec(), 10, 200, vec![(100.0, 100.0), (130.0, 130.0), (99.0, 130.5)]);
        assert_eq!(c, [(95.0, 120.0, 95.0, 119.9, 250), (125.0, 150.0, 125.0, 149.9, 250)]);
    }

    #[test]
    fn event_time_in_the_past_reaches_into_the_buffer() {
        // objectCounter's trigger carries the inference time, 2 s before it arrives.
        assert_eq!(run(spec(), 10, 200, vec![(100.0, 102.0)]), [(95.0, 120.0, 95.0, 119.9, 250)]);
    }

    #[test]
    fn positive_offset_starts_after_the_event() {
        let c = run(timing(0, 3, 10, 30), 10, 200, vec![(100.0, 100.0)]);
        assert_eq!(c, [(103.0, 110.0, 103.0, 109.9, 70)]);
    }

    #[test]
    fn zero_window_and_offset_start_at_the_event() {
        let c = run(timing(0, 0, 30, 30), 10, 200, vec![(100.0, 100.0)]);
        assert_eq!(c, [(100.0, 130.0, 100.0, 129.9, 300)]);
    }

    #[test]
    fn deactivation_ends_an_open_clip() {
        let c = run(spec(), 10, 110, vec![(100.0, 100.0)]);
        assert_eq!(c, [(95.0, 109.9, 95.0, 109.9, 150)]);
    }

    #[test]
    fn no_keyframe_in_the_window_waits_for_the_next_one() {
        // GOP of 30 s: keyframes at 0, 30, 60, 90, 120; the start 95 rounds down to 90.
        let c = run(spec(), 300, 200, vec![(100.0, 100.0)]);
        assert_eq!(c, [(90.0, 120.0, 90.0, 119.9, 300)]);
    }

    #[test]
    fn a_delayed_event_inside_a_closed_clip_is_ignored_when_the_clip_covers_it() {
        // A second event stamped 100 (another detector's, aggregated) reaches the gate at
        // 122, after the clip [95, 120] closed: 100 + 20 ≤ 120, nothing to add.
        let c = run(spec(), 10, 200, vec![(100.0, 100.0), (100.0, 122.0)]);
        assert_eq!(c, [(95.0, 120.0, 95.0, 119.9, 250)]);
    }

    #[test]
    fn a_delayed_event_reaching_past_a_closed_clip_continues_it_without_recording_twice() {
        // Stamped 110 (would have extended the clip to 130), it arrives at 121, after
        // [95, 120] closed: a new clip from 120 (not 105) to 130.
        let c = run(spec(), 10, 200, vec![(100.0, 100.0), (110.0, 121.0)]);
        assert_eq!(c, [(95.0, 120.0, 95.0, 119.9, 250), (120.0, 130.0, 120.0, 129.9, 100)]);
    }

    #[test]
    fn the_buffer_stays_bounded_while_closed() {
        let mut g: GateCore<F> = GateCore::new(spec());
        for i in 0..10_000 {
            g.on_frame(F { t: i * 100 * MS, key: i % 10 == 0 });
        }
        // lookback = 5 + 1 + 5 = 11 s, plus at most one GOP.
        assert!(g.buffered() <= 120, "{}", g.buffered());
    }

    #[test]
    fn every_combination_of_settings_yields_ordered_clips_within_bounds() {
        // Property: for many timings and trigger patterns, each clip starts on a
        // keyframe no later than its first event + offset, ends no later than first
        // event + max, and clips never reorder media.
        for window in [0, 1, 5] {
            for offset in [-30, -5, 0, 5] {
                for (min, max) in [(10, 10), (10, 30), (20, 40), (30, 60)] {
                    for pattern in
                        [vec![100.0], vec![100.0, 104.0], vec![100.0, 112.0, 180.0], (0..30).map(|k| 60.0 + 3.0 * k as f64).collect()]
                    {
                        let events: Vec<_> = pattern.iter().map(|&t| (t, t)).collect();
                        let c = run(timing(window, offset, min, max), 10, 300, events);
                        assert!(!c.is_empty(), "no clip for w{window} o{offset} min{min} max{max} {pattern:?}");
                        let first_event = pattern[0];
                        assert!(c[0].2 <= first_event + offset as f64 + 1e-9, "{c:?}");
                        assert!(c[0].1 <= first_event + max as f64 + 1e-9, "{c:?}");
                        for w in c.windows(2) {
                            assert!(w[1].2 >= w[0].2, "clips in order {c:?}");
                        }
                    }
                }
            }
        }
    }
}
