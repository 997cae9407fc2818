//! Zones: which tracks are inside a named polygon (with hysteresis), their entries, exits and dwell time, and per-zone person counts and distances.
//!
//! # Inside or outside
//!
//! A track's tested point is its box's focus point (see
//! [`BBox::focus`](super::geometry::BBox::focus)). Its *depth* is the signed distance in
//! pixels from the zone's boundary, positive inside. Like a line, a zone has a band of
//! ±margin around its boundary: a track is counted **inside once its depth exceeds the
//! margin** ("greater than `threshold` pixels inside the zone", as Spatial Analysis put
//! it) and **outside once its depth is below −margin**, for `confirm_updates`
//! consecutive updates; inside the band its state does not change. A person standing on
//! the edge therefore enters and exits once, not on every frame of jitter.
//!
//! * A track first seen inside **enters** with no side; a track first seen outside, or in
//!   the band, has not entered anything.
//! * An entry or exit seen happening names the **side**: the polygon edge the focus point
//!   last crossed, numbered from 1 (edge 1 joins the first and second corners).
//! * A track inside that **ends** (the tracker gave up on it, or it was not seen for
//!   `forget_after`) **exits** with no side: it disappeared in the zone.
//! * A track that is lost for a while (hidden, not shown by the tracker) keeps its state
//!   until it ends, so people hidden behind something are still counted.
//!
//! # Dwell time
//!
//! On every exit, the time from the entry to the exit (media time; for a track that
//! ended, up to when it was last seen) and the number of updates it was seen inside
//! (the entering one included, the exiting one not).
//!
//! # Person count and distance
//!
//! [`PersonCount`] reports how many tracks are inside; [`PersonDistance`] measures the
//! distances between the people inside that this frame shows (see [`DistanceRuler`]).
//! Both report on a [`Cadence`]: on change (`trigger: event`, with an initial report on
//! the first update) or periodically (`trigger: interval`), and `outputFrequency` = X keeps
//! one report in X (Spatial Analysis' definition); for intervals the base period is one
//! second, so X is also the period in seconds.

use super::geometry::{BBox, FrameSize, Margin, Polygon, Pt};
use super::tracker::{TrackedEntity, TrackedFrame};
use super::{seconds, Pts, TICKS_PER_SECOND};
use crate::topology::nodes::cognitive_services_vision::{Focus, Trigger};
use crate::topology::nodes::common::NamedPolygon;
use std::collections::HashMap;
use std::sync::Arc;

/// How one zone decides who is inside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZoneSettings {
    pub focus: Focus,
    pub margin: Margin,
    /// Consecutive updates beyond the margin before the state changes (at least 1).
    pub confirm_updates: u32,
    /// A track not seen for this long ends (and exits if it was inside).
    pub forget_after: Pts,
}

impl Default for ZoneSettings {
    fn default() -> Self {
        ZoneSettings { focus: Focus::Footprint, margin: Margin::Pixels(16.0), confirm_updates: 1, forget_after: 10 * TICKS_PER_SECOND }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneStatus {
    Enter,
    Exit,
}

impl ZoneStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ZoneStatus::Enter => "Enter",
            ZoneStatus::Exit => "Exit",
        }
    }
}

/// How long a track stayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dwell {
    pub entered: Pts,
    pub duration: Pts,
    /// Updates in which it was seen inside.
    pub frames: u64,
}

impl Dwell {
    pub fn millis(&self) -> f64 {
        seconds(0, self.duration) * 1000.0
    }
}

/// A track entering or leaving a zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub pts: Pts,
    pub sequence_id: Arc<str>,
    /// The entity's inference in this frame; empty when the track ended unseen.
    pub entity_inference_id: String,
    pub status: ZoneStatus,
    /// 0-based index of the edge crossed (reported 1-based); `None` when not seen crossing.
    pub side: Option<usize>,
    /// On exits.
    pub dwell: Option<Dwell>,
}

/// A tracked entity inside the zone in the current frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Present {
    pub sequence_id: Arc<str>,
    pub inference_id: String,
    pub bbox: BBox,
}

#[derive(Clone, Debug)]
struct Member {
    inside: Option<bool>,
    pending: Option<(bool, u32)>,
    /// Last point (pixels) and whether it was in the polygon (boundary included).
    last: (Pt, bool),
    /// Edge of the latest passage over the boundary since the state last changed.
    passage: Option<usize>,
    entered: Pts,
    frames_inside: u64,
    last_seen: Pts,
}

/// Who is inside one zone.
#[derive(Clone, Debug)]
pub struct ZoneWatch {
    name: Arc<str>,
    polygon: Polygon,
    px: Polygon,
    settings: ZoneSettings,
    margin_px: f64,
    frame: FrameSize,
    members: HashMap<Arc<str>, Member>,
    present: Vec<Present>,
    last_sweep: Option<Pts>,
}

impl ZoneWatch {
    /// `None` for a polygon of fewer than 3 corners (the topology compiler refuses those).
    pub fn new(zone: &NamedPolygon, settings: ZoneSettings, frame: FrameSize) -> Option<Self> {
        let polygon = Polygon::new(zone.points.iter().map(|&p| Pt::from(p)).collect())?;
        let settings = ZoneSettings { confirm_updates: settings.confirm_updates.max(1), ..settings };
        Some(ZoneWatch {
            name: zone.name.as_str().into(),
            px: polygon.to_px(&frame),
            polygon,
            margin_px: settings.margin.px(&frame),
            settings,
            frame,
            members: HashMap::new(),
            present: Vec::new(),
            last_sweep: None,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn set_frame_size(&mut self, frame: FrameSize) {
        self.frame = frame;
        self.px = self.polygon.to_px(&frame);
        self.margin_px = self.settings.margin.px(&frame);
    }

    /// Tracks inside, hidden ones included.
    pub fn count(&self) -> usize {
        self.members.values().filter(|m| m.inside == Some(true)).count()
    }

    /// Entities of the latest update that are inside.
    pub fn present(&self) -> &[Present] {
        &self.present
    }

    pub fn update(&mut self, frame: &TrackedFrame) -> Vec<Transition> {
        self.update_with(frame.pts, frame.entities.iter(), &frame.ended)
    }

    pub fn update_with<'a>(
        &mut self,
        pts: Pts,
        entities: impl IntoIterator<Item = &'a TrackedEntity>,
        ended: &[Arc<str>],
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        self.present.clear();
        for e in entities {
            if let Some(t) = self.observe(pts, e) {
                out.push(t);
            }
            if self.members.get(&e.sequence_id).is_some_and(|m| m.inside == Some(true)) {
                self.present.push(Present { sequence_id: e.sequence_id.clone(), inference_id: e.inference_id.clone(), bbox: e.bbox });
            }
        }
        for id in ended {
            if let Some(m) = self.members.remove(id) {
                out.extend(gone(pts, id.clone(), m));
            }
        }
        if super::sweep_due(&mut self.last_sweep, pts) {
            let keep = self.settings.forget_after;
            let stale: Vec<Arc<str>> = self.members.iter().filter(|(_, m)| pts - m.last_seen > keep).map(|(k, _)| k.clone()).collect();
            let mut exits: Vec<Transition> =
                stale.into_iter().filter_map(|id| self.members.remove(&id).and_then(|m| gone(pts, id, m))).collect();
            // HashMap order is arbitrary; events are not.
            exits.sort_by(|a, b| a.sequence_id.cmp(&b.sequence_id));
            out.extend(exits);
        }
        out
    }

    fn observe(&mut self, pts: Pts, e: &TrackedEntity) -> Option<Transition> {
        let p = self.frame.to_px(e.bbox.focus(self.settings.focus));
        let depth = self.px.depth(p);
        let within = depth >= 0.0;
        let m = self.members.entry(e.sequence_id.clone()).or_insert(Member {
            inside: None,
            pending: None,
            last: (p, within),
            passage: None,
            entered: pts,
            frames_inside: 0,
            last_seen: pts,
        });
        let (lp, was_within) = m.last;
        if was_within != within {
            m.passage = self.px.first_edge_crossed(lp, p).or(m.passage);
        }
        m.last = (p, within);
        m.last_seen = pts;
        let margin = self.margin_px;
        let candidate = if depth > margin {
            true
        } else if depth < -margin {
            false
        } else {
            m.pending = None;
            m.frames_inside += u64::from(m.inside == Some(true));
            return None;
        };
        if m.inside == Some(candidate) {
            m.pending = None;
            m.passage = None;
            m.frames_inside += u64::from(candidate);
            return None;
        }
        let n = match m.pending {
            Some((c, n)) if c == candidate => n + 1,
            _ => 1,
        };
        if n < self.settings.confirm_updates {
            m.pending = Some((candidate, n));
            m.frames_inside += u64::from(m.inside == Some(true));
            return None;
        }
        let before = m.inside;
        let side = if before.is_some() { m.passage } else { None };
        m.inside = Some(candidate);
        m.pending = None;
        m.passage = None;
        let (entity, seq) = (e.inference_id.clone(), e.sequence_id.clone());
        if candidate {
            m.entered = pts;
            m.frames_inside = 1;
            Some(Transition { pts, sequence_id: seq, entity_inference_id: entity, status: ZoneStatus::Enter, side, dwell: None })
        } else if before == Some(true) {
            let dwell = Dwell { entered: m.entered, duration: pts - m.entered, frames: m.frames_inside };
            Some(Transition { pts, sequence_id: seq, entity_inference_id: entity, status: ZoneStatus::Exit, side, dwell: Some(dwell) })
        } else {
            None
        }
    }
}

/// The exit of a track that disappeared, if it was inside.
fn gone(pts: Pts, id: Arc<str>, m: Member) -> Option<Transition> {
    (m.inside == Some(true)).then(|| Transition {
        pts,
        sequence_id: id,
        entity_inference_id: String::new(),
        status: ZoneStatus::Exit,
        side: None,
        dwell: Some(Dwell { entered: m.entered, duration: m.last_seen - m.entered, frames: m.frames_inside }),
    })
}

/// When a count or distance report goes out.
#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    trigger: Trigger,
    /// Event trigger: one report in `every`.
    every: u64,
    /// Interval trigger: the period.
    period: Pts,
    changes: u64,
    next_tick: Option<Pts>,
}

/// The interval trigger's base period; `outputFrequency` multiplies it.
pub const INTERVAL_BASE: Pts = TICKS_PER_SECOND;

impl Cadence {
    /// `output_frequency`: Spatial Analysis' "every Xth event is egressed" (absent or not
    /// positive: 1). For `interval`, X periods of [`INTERVAL_BASE`].
    pub fn new(trigger: Trigger, output_frequency: Option<f64>) -> Self {
        let f = output_frequency.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(1.0);
        Cadence {
            trigger,
            every: f.round().max(1.0) as u64,
            period: ((INTERVAL_BASE as f64 * f).round() as Pts).max(1),
            changes: 0,
            next_tick: None,
        }
    }

    /// Whether to report now. `changed`: the reported value differs from the last update's
    /// (always true on the first update).
    pub fn due(&mut self, pts: Pts, changed: bool) -> bool {
        match self.trigger {
            Trigger::Event => {
                if !changed {
                    return false;
                }
                self.changes += 1;
                (self.changes - 1) % self.every == 0
            }
            Trigger::Interval => match self.next_tick {
                Some(t) if pts < t && pts >= t - self.period => false,
                // First update, a tick reached, or time went backwards: report and restart.
                _ => {
                    let next = self.next_tick.filter(|&t| pts >= t).map_or(pts, |t| t + (pts - t) / self.period * self.period);
                    self.next_tick = Some(next + self.period);
                    true
                }
            },
        }
    }
}

/// A person count report.
#[derive(Clone, Debug, PartialEq)]
pub struct CountReport {
    pub pts: Pts,
    pub zone: Arc<str>,
    pub count: usize,
    /// Inference ids of the entities inside in this frame.
    pub related: Vec<String>,
}

/// Person count for one zone and one event configuration.
#[derive(Clone, Debug)]
pub struct PersonCount {
    pub watch: ZoneWatch,
    cadence: Cadence,
    last: Option<usize>,
}

impl PersonCount {
    pub fn new(watch: ZoneWatch, cadence: Cadence) -> Self {
        PersonCount { watch, cadence, last: None }
    }

    /// Updates the zone (its transitions are returned too) and reports when due.
    pub fn update_with<'a>(
        &mut self,
        pts: Pts,
        entities: impl IntoIterator<Item = &'a TrackedEntity>,
        ended: &[Arc<str>],
    ) -> (Vec<Transition>, Option<CountReport>) {
        let transitions = self.watch.update_with(pts, entities, ended);
        let count = self.watch.count();
        let changed = self.last != Some(count);
        self.last = Some(count);
        let report = self.cadence.due(pts, changed).then(|| CountReport {
            pts,
            zone: self.watch.name.clone(),
            count,
            related: self.watch.present.iter().map(|p| p.inference_id.clone()).filter(|i| !i.is_empty()).collect(),
        });
        (transitions, report)
    }
}

/// Turns pixel distances into a unit people use, by the height of the people measured.
///
/// Spatial Analysis measured distances in feet on a calibrated ground plane. Without
/// calibration, Vela uses the people themselves as the ruler: the distance between two
/// focus points in pixels, divided by the mean pixel height of the two boxes, times
/// `person_height`. With the default 5.6 (feet, a typical adult) the published
/// thresholds (`minimumDistanceThreshold: 1.5`, `maximumDistanceThreshold: 14.5`) keep
/// their meaning; use 1.7 for metres. It is an approximation: accurate for people side by
/// side at similar depth, foreshortened for separations along the camera's line of sight
/// (those are compressed in the image by the camera's tilt).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceRuler {
    pub person_height: f64,
}

impl Default for DistanceRuler {
    fn default() -> Self {
        DistanceRuler { person_height: 5.6 }
    }
}

/// Which rule the people of a zone break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceVerdict {
    /// Some pair is closer than the minimum (takes precedence).
    TooClose,
    /// Some pair is farther apart than the maximum.
    TooFar,
    /// Fewer than two people, or no rule broken (Spatial Analysis' published sample says
    /// `Unknown` for an empty zone).
    Unknown,
}

impl DistanceVerdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            DistanceVerdict::TooClose => "TooClose",
            DistanceVerdict::TooFar => "TooFar",
            DistanceVerdict::Unknown => "Unknown",
        }
    }
}

/// A person distance report.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceReport {
    pub pts: Pts,
    pub zone: Arc<str>,
    /// People inside shown in this frame.
    pub person_count: usize,
    /// Mean distance over all pairs (0 with fewer than two people).
    pub average_distance: f64,
    pub minimum_distance_threshold: Option<f64>,
    pub maximum_distance_threshold: Option<f64>,
    pub verdict: DistanceVerdict,
    /// People in at least one pair breaking the verdict's rule.
    pub violation_count: usize,
    /// Inference ids of those people.
    pub related: Vec<String>,
}

/// Person distance for one zone and one event configuration.
#[derive(Clone, Debug)]
pub struct PersonDistance {
    pub watch: ZoneWatch,
    cadence: Cadence,
    min: Option<f64>,
    max: Option<f64>,
    ruler: DistanceRuler,
    last: Option<(usize, DistanceVerdict, usize)>,
}

impl PersonDistance {
    pub fn new(watch: ZoneWatch, cadence: Cadence, min: Option<f64>, max: Option<f64>, ruler: DistanceRuler) -> Self {
        PersonDistance { watch, cadence, min, max, ruler, last: None }
    }

    /// The distance between two people, in the ruler's unit.
    pub fn distance(&self, a: &BBox, b: &BBox) -> f64 {
        let f = &self.watch.frame;
        let focus = self.watch.settings.focus;
        let (pa, pb) = (f.to_px(a.focus(focus)), f.to_px(b.focus(focus)));
        let scale = (a.h + b.h) / 2.0 * f.height;
        if scale > 0.0 {
            pa.distance(pb) / scale * self.ruler.person_height
        } else {
            0.0
        }
    }

    /// Updates the zone (its transitions are returned too) and reports when due
    /// (`trigger: event`: when the number of people, the verdict or the number of
    /// violators changes).
    pub fn update_with<'a>(
        &mut self,
        pts: Pts,
        entities: impl IntoIterator<Item = &'a TrackedEntity>,
        ended: &[Arc<str>],
    ) -> (Vec<Transition>, Option<DistanceReport>) {
        let transitions = self.watch.update_with(pts, entities, ended);
        let people = self.watch.present();
        let n = people.len();
        let (mut sum, mut pairs) = (0.0, 0usize);
        let (mut close, mut far) = (vec![false; n], vec![false; n]);
        for i in 0..n {
            for j in i + 1..n {
                let d = self.distance(&people[i].bbox, &people[j].bbox);
                sum += d;
                pairs += 1;
                if self.min.is_some_and(|m| d < m) {
                    (close[i], close[j]) = (true, true);
                }
                if self.max.is_some_and(|m| d > m) {
                    (far[i], far[j]) = (true, true);
                }
            }
        }
        let (verdict, marks) = if close.contains(&true) {
            (DistanceVerdict::TooClose, close)
        } else if far.contains(&true) {
            (DistanceVerdict::TooFar, far)
        } else {
            (DistanceVerdict::Unknown, vec![false; n])
        };
        let violators: Vec<&Present> = people.iter().zip(&marks).filter(|(_, &m)| m).map(|(p, _)| p).collect();
        let state = (n, verdict, violators.len());
        let changed = self.last != Some(state);
        self.last = Some(state);
        if !self.cadence.due(pts, changed) {
            return (transitions, None);
        }
        let report = DistanceReport {
            pts,
            zone: self.watch.name.clone(),
            person_count: n,
            average_distance: if pairs > 0 { sum / pairs as f64 } else { 0.0 },
            minimum_distance_threshold: self.min,
            maximum_distance_threshold: self.max,
            verdict,
            violation_count: violators.len(),
            related: violators.iter().map(|p| p.inference_id.clone()).filter(|i| !i.is_empty()).collect(),
        };
        (transitions, Some(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const FRAME: Pts = TICKS_PER_SECOND / 30;

    fn zone(name: &str, pts: &[[f64; 2]]) -> NamedPolygon {
        NamedPolygon { name: name.into(), points: pts.to_vec() }
    }

    fn square() -> NamedPolygon {
        zone("queue", &[[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]])
    }

    fn hd() -> FrameSize {
        FrameSize::new(1920, 1080)
    }

    /// A person 0.2 high whose footprint is (x, y).
    fn person(id: &str, x: f64, y: f64) -> TrackedEntity {
        let h = 0.2;
        let bottom = y + crate::analytics::geometry::FOOTPRINT_RAISE * h;
        TrackedEntity {
            sequence_id: id.into(),
            inference_id: format!("inf-{id}-{x:.3}-{y:.3}"),
            tag: "person".into(),
            confidence: 0.9,
            bbox: BBox::new(x - 0.03, bottom - h, 0.06, h),
            predicted: false,
        }
    }

    fn watch(settings: ZoneSettings) -> ZoneWatch {
        ZoneWatch::new(&square(), settings, hd()).unwrap()
    }

    fn step(w: &mut ZoneWatch, k: i64, people: &[TrackedEntity]) -> Vec<Transition> {
        w.update(&TrackedFrame::from_entities(k * FRAME, people.to_vec()))
    }

    #[test]
    fn entering_and_leaving_name_the_side_and_the_dwell_time() {
        let mut w = watch(ZoneSettings::default());
        let mut events = Vec::new();
        // From the left, through edge 4 (the last corner back to the first), out through edge 2.
        for k in 0..=60 {
            let x = 0.1 + 0.8 * k as f64 / 60.0;
            events.extend(step(&mut w, k, &[person("a", x, 0.5)]));
            // Inside once 16 px (0.0083) past the left edge, until 16 px past the right one.
            assert_eq!(w.count(), usize::from((16..=45).contains(&k)), "x = {x}");
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let (enter, exit) = (&events[0], &events[1]);
        assert_eq!((enter.status, enter.side, enter.dwell), (ZoneStatus::Enter, Some(3), None));
        assert_eq!((exit.status, exit.side), (ZoneStatus::Exit, Some(1)));
        let dwell = exit.dwell.unwrap();
        assert_eq!(dwell.entered, enter.pts);
        assert_eq!(dwell.duration, exit.pts - enter.pts);
        assert_eq!(dwell.frames as i64, (exit.pts - enter.pts) / FRAME, "seen inside on every update in between");
        assert!(enter.entity_inference_id.starts_with("inf-a-"));
        assert!((dwell.millis() - seconds(enter.pts, exit.pts) * 1000.0).abs() < 1e-9);
    }

    #[test]
    fn jitter_at_the_edge_enters_once() {
        let mut w = watch(ZoneSettings::default());
        let mut events = Vec::new();
        // 16 px at 1920 wide ≈ 0.0083; wobble ±0.006 around the left edge for two seconds.
        for k in 0..60 {
            let x = 0.3 + if k % 2 == 0 { 0.006 } else { -0.006 };
            events.extend(step(&mut w, k, &[person("a", x, 0.5)]));
        }
        assert!(events.is_empty(), "never clearly inside: {events:?}");
        for k in 60..70 {
            events.extend(step(&mut w, k, &[person("a", 0.35, 0.5)]));
        }
        for k in 70..130 {
            let x = 0.3 + if k % 2 == 0 { 0.006 } else { -0.006 };
            events.extend(step(&mut w, k, &[person("a", x, 0.5)]));
        }
        assert_eq!(events.iter().map(|e| e.status).collect::<Vec<_>>(), [ZoneStatus::Enter], "still inside while on the edge");
        assert_eq!(w.count(), 1);
        // A wider wobble needs confirm_updates.
        let s = ZoneSettings { confirm_updates: 3, ..ZoneSettings::default() };
        let mut w = watch(s);
        let mut events = Vec::new();
        for k in 0..60 {
            let x = 0.3 + if k % 2 == 0 { 0.02 } else { -0.02 };
            events.extend(step(&mut w, k, &[person("b", x, 0.5)]));
        }
        assert!(events.is_empty());
    }

    #[test]
    fn appearing_inside_and_disappearing_inside_have_no_side() {
        let mut w = watch(ZoneSettings::default());
        let e = step(&mut w, 0, &[person("a", 0.5, 0.5)]);
        assert_eq!((e[0].status, e[0].side), (ZoneStatus::Enter, None));
        for k in 1..10 {
            assert!(step(&mut w, k, &[person("a", 0.5, 0.5)]).is_empty());
        }
        // Hidden (not shown) for a while: still inside, still counted.
        for k in 10..20 {
            assert!(step(&mut w, k, &[]).is_empty());
            assert_eq!(w.count(), 1);
            assert!(w.present().is_empty());
        }
        let end = w.update(&TrackedFrame { pts: 20 * FRAME, entities: vec![], ended: vec!["a".into()] });
        assert_eq!((end[0].status, end[0].side), (ZoneStatus::Exit, None));
        let d = end[0].dwell.unwrap();
        assert_eq!((d.entered, d.duration, d.frames), (0, 9 * FRAME, 10), "up to when it was last seen");
        assert_eq!(w.count(), 0);
        // First seen outside: nothing; a track from elsewhere unseen for 10 s exits by itself.
        assert!(step(&mut w, 30, &[person("b", 0.1, 0.1)]).is_empty());
        step(&mut w, 31, &[person("c", 0.5, 0.5)]);
        let later = w.update(&TrackedFrame::from_entities(31 * FRAME + 11 * TICKS_PER_SECOND, vec![]));
        assert_eq!(later.iter().map(|t| (&*t.sequence_id, t.status)).collect::<Vec<_>>(), [("c", ZoneStatus::Exit)]);
    }

    #[test]
    fn the_focus_point_decides() {
        // Box centre inside, feet below the zone.
        let p = TrackedEntity { bbox: BBox::new(0.47, 0.5, 0.06, 0.3), ..person("a", 0.0, 0.0) };
        for (focus, inside) in [(Focus::Center, 1), (Focus::BottomCenter, 0), (Focus::Footprint, 0)] {
            let mut w = watch(ZoneSettings { focus, ..ZoneSettings::default() });
            step(&mut w, 0, std::slice::from_ref(&p));
            assert_eq!(w.count(), inside, "{focus:?}");
        }
    }

    #[test]
    fn count_on_change_with_an_initial_report_and_output_frequency() {
        let mut c = PersonCount::new(watch(ZoneSettings::default()), Cadence::new(Trigger::Event, Some(1.0)));
        let mut reports = Vec::new();
        let script: [&[TrackedEntity]; 6] = [
            &[],
            &[person("a", 0.5, 0.5)],
            &[person("a", 0.5, 0.5)],
            &[person("a", 0.5, 0.5), person("b", 0.4, 0.4)],
            &[person("a", 0.5, 0.5), person("b", 0.4, 0.4), person("x", 0.1, 0.1)],
            &[person("a", 0.5, 0.5), person("b", 0.9, 0.9)],
        ];
        for (k, people) in script.iter().enumerate() {
            let (_, r) = c.update_with(k as Pts * FRAME, people.iter(), &[]);
            reports.extend(r.map(|r| (k, r.count, r.related.len())));
        }
        assert_eq!(reports, [(0, 0, 0), (1, 1, 1), (3, 2, 2), (5, 1, 1)]);
        // outputFrequency 2: every other report (the initial one is the first).
        let mut c = PersonCount::new(watch(ZoneSettings::default()), Cadence::new(Trigger::Event, Some(2.0)));
        let mut counts = Vec::new();
        for (k, people) in script.iter().enumerate() {
            counts.extend(c.update_with(k as Pts * FRAME, people.iter(), &[]).1.map(|r| r.count));
        }
        assert_eq!(counts, [0, 2]);
    }

    #[test]
    fn count_on_interval_reports_periodically_whatever_the_count() {
        let run = |freq: Option<f64>| {
            let mut c = PersonCount::new(watch(ZoneSettings::default()), Cadence::new(Trigger::Interval, freq));
            let mut at = Vec::new();
            for k in 0..(5 * 30) {
                let people = [person("a", 0.5, 0.5)];
                if c.update_with(k * FRAME, people.iter(), &[]).1.is_some() {
                    at.push(k);
                }
            }
            at
        };
        assert_eq!(run(None), [0, 30, 60, 90, 120], "every second");
        assert_eq!(run(Some(2.0)), [0, 60, 120], "every second report");
        assert_eq!(run(Some(0.5)), (0..10).map(|i| i * 15).collect::<Vec<_>>());
        // Gaps in the frames: the next report is on the first frame at or after the tick.
        let mut cad = Cadence::new(Trigger::Interval, None);
        let times: Vec<Pts> = [0, 50_000, 100_000, 300_000, 305_000, 360_000].into_iter().filter(|&t| cad.due(t, false)).collect();
        assert_eq!(times, [0, 100_000, 300_000, 360_000]);
    }

    #[test]
    fn distance_violations_are_reported_with_the_people_involved() {
        // Feet, by person height (5.6 ft = 0.2 of a 1080-line frame = 216 px).
        let cadence = Cadence::new(Trigger::Event, None);
        let mut d = PersonDistance::new(watch(ZoneSettings::default()), cadence, Some(6.0), Some(35.0), DistanceRuler::default());
        let one_ft = 0.2 / 5.6 * 1080.0 / 1920.0; // normalised x per foot
        let mut reports = Vec::new();
        let mut run = |k: Pts, people: &[TrackedEntity]| {
            let (_, r) = d.update_with(k * FRAME, people.iter(), &[]);
            reports.extend(r);
        };
        run(0, &[person("a", 0.40, 0.5)]);
        run(1, &[person("a", 0.40, 0.5), person("b", 0.40 + 10.0 * one_ft, 0.5)]);
        run(2, &[person("a", 0.40, 0.5), person("b", 0.40 + 3.0 * one_ft, 0.5), person("c", 0.6, 0.35)]);
        run(3, &[person("a", 0.40, 0.5), person("b", 0.40 + 3.0 * one_ft, 0.5), person("c", 0.6, 0.35)]);
        let summary: Vec<(usize, &str, usize)> = reports.iter().map(|r| (r.person_count, r.verdict.as_str(), r.violation_count)).collect();
        assert_eq!(summary, [(1, "Unknown", 0), (2, "Unknown", 0), (3, "TooClose", 2)], "no report while nothing changes");
        assert!((reports[1].average_distance - 10.0).abs() < 1e-6, "{}", reports[1].average_distance);
        assert_eq!(reports[2].related.len(), 2);
        assert!(reports[2].related.iter().all(|r| r.starts_with("inf-a-") || r.starts_with("inf-b-")));
        // Too far.
        let mut d = PersonDistance::new(
            watch(ZoneSettings::default()),
            Cadence::new(Trigger::Event, None),
            None,
            Some(5.0),
            DistanceRuler::default(),
        );
        let (_, r) = d.update_with(0, [person("a", 0.35, 0.5), person("b", 0.65, 0.5)].iter(), &[]);
        let r = r.unwrap();
        assert_eq!((r.verdict, r.violation_count), (DistanceVerdict::TooFar, 2));
        assert_eq!(r.minimum_distance_threshold, None);
    }

    #[test]
    fn random_walks_never_panic_and_enters_and_exits_alternate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let concave = zone("l", &[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]);
        let mut w = ZoneWatch::new(&concave, ZoneSettings::default(), hd()).unwrap();
        let mut pos: Vec<(f64, f64)> = (0..20).map(|_| (rng.gen_range(0.0..1.0), rng.gen_range(0.0..1.0))).collect();
        let mut inside: HashMap<Arc<str>, bool> = HashMap::new();
        let mut n = 0;
        for k in 0..3000 {
            let mut people = Vec::new();
            for (i, p) in pos.iter_mut().enumerate() {
                p.0 = (p.0 + rng.gen_range(-0.02..0.02)).clamp(0.0, 1.0);
                p.1 = (p.1 + rng.gen_range(-0.02..0.02)).clamp(0.0, 1.0);
                if rng.gen_bool(0.9) {
                    people.push(person(&format!("p{i}"), p.0, p.1));
                }
            }
            let ended: Vec<Arc<str>> = if rng.gen_bool(0.01) { vec![format!("p{}", rng.gen_range(0..20)).into()] } else { vec![] };
            for t in w.update(&TrackedFrame { pts: k * FRAME, entities: people, ended }) {
                let was = inside.insert(t.sequence_id.clone(), t.status == ZoneStatus::Enter).unwrap_or(false);
                assert_eq!(was, t.status == ZoneStatus::Exit, "{t:?}");
                if let Some(d) = t.dwell {
                    assert!(d.duration >= 0 && d.frames >= 1);
                }
                if let Some(s) = t.side {
                    assert!(s < 6);
                }
                n += 1;
            }
            assert_eq!(w.count(), inside.values().filter(|&&v| v).count());
        }
        assert!(n > 50, "{n}");
    }
}
