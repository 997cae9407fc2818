//! Line crossing: tracked objects whose focus point crosses a named segment, with direction, hysteresis and cumulative counters.
//!
//! # Direction
//!
//! A line is directed, from its first point (`from`) to its second (`to`). Sides are
//! as seen on the screen (image coordinates, y down), by someone standing at `from`
//! and looking towards `to`. A crossing from the **left** side to the **right** side is
//! **`clockwise`**; from right to left, **`counterclockwise`**: seen from `from`, the
//! object's bearing turns clockwise, like a clock hand sweeping across the line. Spatial
//! Analysis calls the same two directions `CrossRight` and `CrossLeft`.
//!
//! ```text
//!   A line drawn left to right:             The published default [[0.5,0.1],[0.5,0.9]]
//!                                           (drawn top to bottom):
//!            left                                       from
//!   from ●───────────────► to                  right     ●     left
//!            right                                       │
//!      moving down   = clockwise              ◄──────────┼────────── clockwise
//!      moving up     = counterclockwise       ───────────┼─────────► counterclockwise
//!                                                        ▼
//!                                                        to
//! ```
//!
//! # When a crossing counts
//!
//! The tested point of an object is its box's *focus* point (`center` for the
//! LineCrossingProcessor, which tracks any kind of object; Spatial Analysis' `focus`
//! setting otherwise, see [`BBox::focus`](super::geometry::BBox::focus)).
//!
//! * **Hysteresis.** The point must be more than the margin (pixels) away from the line
//!   for `confirm_updates` consecutive updates before its side counts; inside the band
//!   ±margin the last counted side stays. A crossing is the counted side changing, so an
//!   object wobbling on the line counts once, when it finally leaves the band on the
//!   other side.
//! * **The segment, not the infinite line.** When the side changes, the crossing counts
//!   only if the object's latest passage over the line's extension (between two
//!   consecutive updates) fell between `from` and `to`, ends included. Walking around an
//!   end of the line changes the side without a count.
//! * An object first seen inside the band has no side until it leaves it, and an object's
//!   first side is never a crossing: it was not seen coming from the other side.
//! * A track that disappears and reappears on the other side (hidden while crossing)
//!   counts, if the straight step between its last and new position crossed the segment.
//!
//! Counters (total, clockwise, counterclockwise) are per line and cumulative from the
//! moment the core was made (pipeline activation).
//!
//! The state of a track is dropped when the tracker reports its end, or when it has not
//! been seen for `forget_after` (for sequence ids from elsewhere, whose ends are unknown).

use super::geometry::{FrameSize, Margin, Pt, Segment};
use super::ids::IdGen;
use super::tracker::{TrackedEntity, TrackedFrame};
use super::{Pts, TICKS_PER_SECOND};
use crate::topology::nodes::cognitive_services_vision::Focus;
use crate::topology::nodes::common::NamedLine;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the left of `from → to` to its right.
    Clockwise,
    /// From the right of `from → to` to its left.
    Counterclockwise,
}

impl Direction {
    /// As the LineCrossingProcessor writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Clockwise => "clockwise",
            Direction::Counterclockwise => "counterclockwise",
        }
    }

    /// As Spatial Analysis' `personLineEvent` writes it.
    pub fn status(&self) -> &'static str {
        match self {
            Direction::Clockwise => "CrossRight",
            Direction::Counterclockwise => "CrossLeft",
        }
    }
}

/// Crossings of one line since activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub total: u64,
    pub clockwise: u64,
    pub counterclockwise: u64,
}

/// How one line decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineSettings {
    pub focus: Focus,
    pub margin: Margin,
    /// Consecutive updates beyond the margin before a side counts (at least 1).
    pub confirm_updates: u32,
    /// A track not seen for this long is forgotten.
    pub forget_after: Pts,
}

impl LineSettings {
    /// The LineCrossingProcessor's (it has no settings beyond the lines): the box centre,
    /// 16 px (Spatial Analysis' default line threshold), one update.
    pub fn processor() -> Self {
        LineSettings { focus: Focus::Center, margin: Margin::Pixels(16.0), confirm_updates: 1, forget_after: 10 * TICKS_PER_SECOND }
    }
}

/// One counted crossing.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossing {
    pub pts: Pts,
    /// Index of the line, in the order given.
    pub line: usize,
    pub line_name: Arc<str>,
    pub sequence_id: Arc<str>,
    /// The crossing entity's inference in this frame (empty if it had none).
    pub entity_inference_id: String,
    pub direction: Direction,
    /// The line's counters including this crossing.
    pub counters: Counters,
    /// This event's own inference id.
    pub inference_id: String,
}

impl Crossing {
    /// SPEC §1.3 LineCrossingProcessor output: `{type: "event", subtype: "lineCrossing",
    /// inferenceId, relatedInferences: [entity], event: {name: <line>, properties:
    /// {direction, total, clockwiseTotal, counterclockwiseTotal}}}`, counters as strings.
    pub fn to_inference(&self) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), "event".into());
        o.insert("subtype".into(), "lineCrossing".into());
        o.insert("inferenceId".into(), self.inference_id.clone().into());
        if !self.entity_inference_id.is_empty() {
            o.insert("relatedInferences".into(), json!([self.entity_inference_id]));
        }
        o.insert(
            "event".into(),
            json!({
                "name": &*self.line_name,
                "properties": {
                    "direction": self.direction.as_str(),
                    "total": self.counters.total.to_string(),
                    "clockwiseTotal": self.counters.clockwise.to_string(),
                    "counterclockwiseTotal": self.counters.counterclockwise.to_string(),
                }
            }),
        );
        Value::Object(o)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

#[derive(Clone, Debug)]
struct TrackState {
    side: Option<Side>,
    pending: Option<(Side, u32)>,
    /// Last point (pixels) and its signed distance to the line.
    last: (Pt, f64),
    /// Where along the segment (0 = from, 1 = to) the latest passage over the line's
    /// extension happened, since the side last counted.
    passage: Option<f64>,
    last_seen: Pts,
}

#[derive(Clone, Debug)]
struct Line {
    name: Arc<str>,
    from: Pt,
    to: Pt,
    settings: LineSettings,
    px: Segment,
    margin_px: f64,
    counters: Counters,
    tracks: HashMap<Arc<str>, TrackState>,
}

impl Line {
    fn place(&mut self, frame: &FrameSize) {
        self.px = Segment::new(frame.to_px(self.from), frame.to_px(self.to));
        self.margin_px = self.settings.margin.px(frame);
    }

    /// The direction of a counted crossing by `e`, if this update makes one.
    fn observe(&mut self, pts: Pts, e: &TrackedEntity, frame: &FrameSize) -> Option<Direction> {
        let p = frame.to_px(e.bbox.focus(self.settings.focus));
        let d = self.px.signed_distance(p);
        let st = self.tracks.entry(e.sequence_id.clone()).or_insert(TrackState {
            side: None,
            pending: None,
            last: (p, d),
            passage: None,
            last_seen: pts,
        });
        let (lp, ld) = st.last;
        if (ld <= 0.0 && d > 0.0) || (ld >= 0.0 && d < 0.0) {
            let at = lp + (p - lp) * (ld / (ld - d));
            st.passage = Some(self.px.project(at));
        }
        st.last = (p, d);
        st.last_seen = pts;
        let m = self.margin_px;
        let candidate = if d > m {
            Side::Right
        } else if d < -m {
            Side::Left
        } else {
            st.pending = None;
            return None;
        };
        if st.side == Some(candidate) {
            st.pending = None;
            st.passage = None;
            return None;
        }
        let n = match st.pending {
            Some((s, n)) if s == candidate => n + 1,
            _ => 1,
        };
        if n < self.settings.confirm_updates {
            st.pending = Some((candidate, n));
            return None;
        }
        let crossed = st.side.is_some() && st.passage.is_some_and(|s| (0.0..=1.0).contains(&s));
        st.side = Some(candidate);
        st.pending = None;
        st.passage = None;
        crossed.then_some(match candidate {
            Side::Right => Direction::Clockwise,
            Side::Left => Direction::Counterclockwise,
        })
    }
}

/// The line-crossing state of one stream: all its lines and the tracks near them.
#[derive(Clone, Debug)]
pub struct LineCrossings {
    lines: Vec<Line>,
    frame: FrameSize,
    ids: IdGen,
    last_sweep: Option<Pts>,
}

impl LineCrossings {
    pub fn new(lines: impl IntoIterator<Item = (NamedLine, LineSettings)>, frame: FrameSize, ids: IdGen) -> Self {
        let lines = lines
            .into_iter()
            .map(|(l, s)| {
                let mut line = Line {
                    name: l.name.as_str().into(),
                    from: l.from.into(),
                    to: l.to.into(),
                    settings: LineSettings { confirm_updates: s.confirm_updates.max(1), ..s },
                    px: Segment::new(Pt::default(), Pt::default()),
                    margin_px: 0.0,
                    counters: Counters::default(),
                    tracks: HashMap::new(),
                };
                line.place(&frame);
                line
            })
            .collect();
        LineCrossings { lines, frame, ids, last_sweep: None }
    }

    /// A LineCrossingProcessor's lines, with [`LineSettings::processor`].
    pub fn for_processor(lines: &[NamedLine], frame: FrameSize, ids: IdGen) -> Self {
        Self::new(lines.iter().map(|l| (l.clone(), LineSettings::processor())), frame, ids)
    }

    /// For when the video's frame size changes: pixel margins follow it.
    pub fn set_frame_size(&mut self, frame: FrameSize) {
        self.frame = frame;
        for l in &mut self.lines {
            l.place(&frame);
        }
    }

    /// Counters per line, in the order given.
    pub fn counters(&self) -> impl Iterator<Item = (&str, Counters)> + '_ {
        self.lines.iter().map(|l| (&*l.name, l.counters))
    }

    /// All the tracked entities of a frame.
    pub fn update(&mut self, frame: &TrackedFrame) -> Vec<Crossing> {
        self.update_with(frame.pts, frame.entities.iter(), &frame.ended)
    }

    /// Some of a frame's entities (e.g. only people), and the tracks that ended.
    pub fn update_with<'a>(
        &mut self,
        pts: Pts,
        entities: impl IntoIterator<Item = &'a TrackedEntity>,
        ended: &[Arc<str>],
    ) -> Vec<Crossing> {
        let mut out = Vec::new();
        let frame = self.frame;
        for e in entities {
            for (i, line) in self.lines.iter_mut().enumerate() {
                let Some(direction) = line.observe(pts, e, &frame) else { continue };
                let c = &mut line.counters;
                c.total += 1;
                match direction {
                    Direction::Clockwise => c.clockwise += 1,
                    Direction::Counterclockwise => c.counterclockwise += 1,
                }
                out.push(Crossing {
                    pts,
                    line: i,
                    line_name: line.name.clone(),
                    sequence_id: e.sequence_id.clone(),
                    entity_inference_id: e.inference_id.clone(),
                    direction,
                    counters: *c,
                    inference_id: self.ids.next_id(),
                });
            }
        }
        out.sort_by_key(|c| c.line);
        for line in &mut self.lines {
            for id in ended {
                line.tracks.remove(id);
            }
        }
        if super::sweep_due(&mut self.last_sweep, pts) {
            for line in &mut self.lines {
                let keep = line.settings.forget_after;
                line.tracks.retain(|_, s| pts - s.last_seen <= keep);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::geometry::BBox;
    use rand::{Rng, SeedableRng};

    const FRAME: Pts = TICKS_PER_SECOND / 30;

    fn line(name: &str, from: [f64; 2], to: [f64; 2]) -> NamedLine {
        NamedLine { name: name.into(), from, to }
    }

    /// A 0.04 × 0.04 box centred on the point (the processor tests the centre).
    fn at(id: &str, x: f64, y: f64) -> TrackedEntity {
        TrackedEntity {
            sequence_id: id.into(),
            inference_id: format!("inf-{id}-{x:.3}-{y:.3}"),
            tag: "person".into(),
            confidence: 0.9,
            bbox: BBox::from_center(Pt::new(x, y), 0.04, 0.04),
            predicted: false,
        }
    }

    fn hd() -> FrameSize {
        FrameSize::new(1920, 1080)
    }

    /// Runs one track along `path` (one point per frame) and returns the crossings.
    fn walk(lc: &mut LineCrossings, id: &str, path: &[(f64, f64)], start: Pts) -> Vec<Crossing> {
        let mut out = Vec::new();
        for (k, &(x, y)) in path.iter().enumerate() {
            let f = TrackedFrame::from_entities(start + k as Pts * FRAME, vec![at(id, x, y)]);
            out.extend(lc.update(&f));
        }
        out
    }

    fn straight(a: (f64, f64), b: (f64, f64), n: usize) -> Vec<(f64, f64)> {
        (0..=n).map(|k| (a.0 + (b.0 - a.0) * k as f64 / n as f64, a.1 + (b.1 - a.1) * k as f64 / n as f64)).collect()
    }

    #[test]
    fn direction_follows_the_documented_convention() {
        // Drawn left to right: moving down the screen crosses from left to right = clockwise.
        let mut lc = LineCrossings::for_processor(&[line("door", [0.2, 0.5], [0.8, 0.5])], hd(), IdGen::seeded(1));
        let down = walk(&mut lc, "a", &straight((0.5, 0.3), (0.5, 0.7), 20), 0);
        assert_eq!(down.len(), 1);
        assert_eq!((down[0].direction, down[0].direction.status()), (Direction::Clockwise, "CrossRight"));
        let up = walk(&mut lc, "b", &straight((0.4, 0.7), (0.4, 0.3), 20), 0);
        assert_eq!(up[0].direction, Direction::Counterclockwise);
        // The published default, drawn top to bottom: screen-right to screen-left is clockwise.
        let mut lc = LineCrossings::for_processor(&[line("LineCrossing1", [0.5, 0.1], [0.5, 0.9])], hd(), IdGen::seeded(1));
        let leftwards = walk(&mut lc, "a", &straight((0.8, 0.5), (0.2, 0.5), 30), 0);
        assert_eq!(leftwards.iter().map(|c| c.direction).collect::<Vec<_>>(), [Direction::Clockwise]);
        let rightwards = walk(&mut lc, "b", &straight((0.2, 0.6), (0.8, 0.6), 30), 0);
        assert_eq!(rightwards.iter().map(|c| c.direction).collect::<Vec<_>>(), [Direction::Counterclockwise]);
        // Reversing the line's points reverses the direction.
        let mut lc = LineCrossings::for_processor(&[line("rev", [0.5, 0.9], [0.5, 0.1])], hd(), IdGen::seeded(1));
        assert_eq!(walk(&mut lc, "a", &straight((0.8, 0.5), (0.2, 0.5), 30), 0)[0].direction, Direction::Counterclockwise);
    }

    #[test]
    fn passing_beyond_an_end_of_the_segment_does_not_count() {
        let mut lc = LineCrossings::for_processor(&[line("short", [0.4, 0.5], [0.6, 0.5])], hd(), IdGen::seeded(1));
        assert!(walk(&mut lc, "a", &straight((0.7, 0.3), (0.7, 0.7), 20), 0).is_empty(), "right of the end");
        assert!(walk(&mut lc, "b", &straight((0.3, 0.7), (0.35, 0.3), 20), 0).is_empty(), "left of the start");
        // Around the end and back through the segment: only the second passage counts.
        let mut path = straight((0.65, 0.3), (0.65, 0.7), 10);
        path.extend(straight((0.65, 0.7), (0.5, 0.7), 5));
        path.extend(straight((0.5, 0.7), (0.5, 0.3), 10));
        let c = walk(&mut lc, "c", &path, 0);
        assert_eq!(c.iter().map(|c| c.direction).collect::<Vec<_>>(), [Direction::Counterclockwise]);
        // Touching the end point exactly counts (ends included).
        let mut lc = LineCrossings::for_processor(&[line("short", [0.4, 0.5], [0.6, 0.5])], hd(), IdGen::seeded(1));
        assert_eq!(walk(&mut lc, "d", &straight((0.6, 0.3), (0.6, 0.7), 20), 0).len(), 1);
    }

    #[test]
    fn jitter_on_the_line_counts_once() {
        let mut lc = LineCrossings::for_processor(&[line("door", [0.2, 0.5], [0.8, 0.5])], hd(), IdGen::seeded(1));
        // 16 px margin at 1080 lines ≈ 0.0148. Walk to the line, wobble ±0.01 across it
        // for a second, then leave on the other side.
        let mut path = straight((0.5, 0.3), (0.5, 0.5), 10);
        path.extend((0..30).map(|k| (0.5, 0.5 + if k % 2 == 0 { 0.01 } else { -0.01 })));
        path.extend(straight((0.5, 0.5), (0.5, 0.7), 10));
        let c = walk(&mut lc, "a", &path, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].direction, Direction::Clockwise);
        // A wobble wider than the margin flips sides each update; asking for 3 updates
        // beyond the margin filters it out.
        let mut wide: Vec<(f64, f64)> = straight((0.5, 0.3), (0.5, 0.5), 10);
        wide.extend((0..30).map(|k| (0.5, 0.5 + if k % 2 == 0 { 0.03 } else { -0.03 })));
        wide.extend(straight((0.5, 0.5), (0.5, 0.7), 10));
        assert_eq!(walk(&mut lc, "b", &wide, 0).len(), 31, "no persistence: every swing is a crossing");
        let s = LineSettings { confirm_updates: 3, ..LineSettings::processor() };
        let mut lc = LineCrossings::new([(line("door", [0.2, 0.5], [0.8, 0.5]), s)], hd(), IdGen::seeded(1));
        let c = walk(&mut lc, "b", &wide, 0);
        assert_eq!(c.iter().map(|c| c.direction).collect::<Vec<_>>(), [Direction::Clockwise]);
    }

    #[test]
    fn counters_are_cumulative_per_line_and_events_have_the_spec_shape() {
        let lines = [line("a", [0.2, 0.5], [0.8, 0.5]), line("b", [0.5, 0.1], [0.5, 0.9])];
        let mut lc = LineCrossings::for_processor(&lines, hd(), IdGen::seeded(1));
        let mut all = Vec::new();
        all.extend(walk(&mut lc, "p1", &straight((0.3, 0.3), (0.3, 0.7), 20), 0)); // a: cw
        all.extend(walk(&mut lc, "p2", &straight((0.4, 0.7), (0.4, 0.3), 20), 0)); // a: ccw
        all.extend(walk(&mut lc, "p3", &straight((0.3, 0.3), (0.7, 0.7), 20), 0)); // both in one frame: a cw, b ccw
        let names: Vec<(&str, Direction, Counters)> = all.iter().map(|c| (&*c.line_name, c.direction, c.counters)).collect();
        assert_eq!(
            names,
            [
                ("a", Direction::Clockwise, Counters { total: 1, clockwise: 1, counterclockwise: 0 }),
                ("a", Direction::Counterclockwise, Counters { total: 2, clockwise: 1, counterclockwise: 1 }),
                ("a", Direction::Clockwise, Counters { total: 3, clockwise: 2, counterclockwise: 1 }),
                ("b", Direction::Counterclockwise, Counters { total: 1, clockwise: 0, counterclockwise: 1 }),
            ]
        );
        let totals: Vec<(&str, u64)> = lc.counters().map(|(n, c)| (n, c.total)).collect();
        assert_eq!(totals, [("a", 3), ("b", 1)]);
        let v = all[1].to_inference();
        assert_eq!(v["type"], "event");
        assert_eq!(v["subtype"], "lineCrossing");
        assert_eq!(v["inferenceId"].as_str().unwrap().len(), 32);
        assert_eq!(v["relatedInferences"], json!([all[1].entity_inference_id]));
        assert_eq!(v["event"]["name"], "a");
        assert_eq!(
            v["event"]["properties"],
            json!({"direction": "counterclockwise", "total": "2", "clockwiseTotal": "1", "counterclockwiseTotal": "1"})
        );
        assert!(all[1].entity_inference_id.starts_with("inf-p2-"), "the entity of the crossing frame");
    }

    #[test]
    fn first_sight_is_not_a_crossing_and_a_hidden_crossing_counts() {
        let mut lc = LineCrossings::for_processor(&[line("door", [0.2, 0.5], [0.8, 0.5])], hd(), IdGen::seeded(1));
        // Appears on the line, then walks down: it never was on the left.
        assert!(walk(&mut lc, "a", &straight((0.5, 0.5), (0.5, 0.7), 10), 0).is_empty());
        // Seen above, hidden while crossing, seen again below.
        let mut c = walk(&mut lc, "b", &straight((0.3, 0.2), (0.3, 0.4), 5), 0);
        c.extend(walk(&mut lc, "b", &straight((0.3, 0.6), (0.3, 0.8), 5), 20 * FRAME));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn ended_and_forgotten_tracks_start_over() {
        let mut lc = LineCrossings::for_processor(&[line("door", [0.2, 0.5], [0.8, 0.5])], hd(), IdGen::seeded(1));
        walk(&mut lc, "a", &straight((0.3, 0.2), (0.3, 0.4), 5), 0);
        // The tracker ends "a": its side is forgotten, so showing up below is a first sight.
        let end = TrackedFrame { pts: 6 * FRAME, entities: vec![], ended: vec!["a".into()] };
        lc.update(&end);
        assert!(walk(&mut lc, "a", &straight((0.3, 0.6), (0.3, 0.8), 5), 7 * FRAME).is_empty());
        // A track from elsewhere that is not seen for more than 10 s is forgotten too.
        walk(&mut lc, "x", &straight((0.4, 0.2), (0.4, 0.4), 5), 0);
        lc.update(&TrackedFrame::from_entities(11 * TICKS_PER_SECOND, vec![]));
        assert!(walk(&mut lc, "x", &straight((0.4, 0.6), (0.4, 0.8), 5), 12 * TICKS_PER_SECOND).is_empty());
        // Within 10 s, it is remembered.
        walk(&mut lc, "y", &straight((0.4, 0.2), (0.4, 0.4), 5), 20 * TICKS_PER_SECOND);
        lc.update(&TrackedFrame::from_entities(25 * TICKS_PER_SECOND, vec![]));
        assert_eq!(walk(&mut lc, "y", &straight((0.4, 0.6), (0.4, 0.8), 5), 26 * TICKS_PER_SECOND).len(), 1);
    }

    #[test]
    fn the_margin_is_in_pixels_of_the_frame() {
        // A ±0.01 wobble is 10.8 px at 1080 lines (inside 16 px) but 28.8 px at 2880.
        let mut path = straight((0.5, 0.3), (0.5, 0.5), 10);
        path.extend((0..10).map(|k| (0.5, 0.5 + if k % 2 == 0 { 0.01 } else { -0.01 })));
        let mut lc = LineCrossings::for_processor(&[line("door", [0.2, 0.5], [0.8, 0.5])], hd(), IdGen::seeded(1));
        assert_eq!(walk(&mut lc, "a", &path, 0).len(), 0);
        lc.set_frame_size(FrameSize::new(5120, 2880));
        assert_eq!(walk(&mut lc, "b", &path, 0).len(), 10, "every swing");
    }

    #[test]
    fn random_walks_keep_the_counters_consistent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let lines = [line("a", [0.1, 0.5], [0.9, 0.5]), line("b", [0.3, 0.1], [0.6, 0.9])];
        let mut lc = LineCrossings::for_processor(&lines, hd(), IdGen::seeded(1));
        let mut pos: Vec<(f64, f64)> = (0..30).map(|_| (rng.gen_range(0.0..1.0), rng.gen_range(0.0..1.0))).collect();
        let mut last = [0u64; 2];
        for k in 0..2000 {
            let mut entities = Vec::new();
            for (i, p) in pos.iter_mut().enumerate() {
                p.0 = (p.0 + rng.gen_range(-0.02..0.02)).clamp(0.0, 1.0);
                p.1 = (p.1 + rng.gen_range(-0.02..0.02)).clamp(0.0, 1.0);
                if rng.gen_bool(0.95) {
                    entities.push(at(&format!("t{i}"), p.0, p.1));
                }
            }
            for c in lc.update(&TrackedFrame::from_entities(k * FRAME, entities)) {
                assert_eq!(c.counters.total, c.counters.clockwise + c.counters.counterclockwise);
                assert_eq!(c.counters.total, last[c.line] + 1, "one at a time, never down");
                last[c.line] = c.counters.total;
            }
        }
        assert!(last.iter().all(|&n| n > 10), "{last:?}");
    }
}
