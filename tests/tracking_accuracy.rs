//! The tracker and line crossing on 30 s of real footage (vtest.mkv, frames 100–400) against hand-checked ground truth (issue 7).
//!
//! `tests/fixtures/tracking/vtest-tracks.json` labels every person at every 10th frame
//! (31 key frames, 9 people, ids kept through occlusions and re-entries) and the 21
//! crossings of two lines; `vtest-detections.json` holds the built-in detector's people on
//! every frame, so this runs in well under a second without the model.
//!
//! The tracker sees the frames at 10 fps with detections on every 5th frame (2 a second, as
//! the published topologies sample), on every 5th but shifted so that the key frames fall
//! between samples (the scored boxes are then predictions), and on every frame; for each
//! accuracy preset. At each key frame its boxes are matched to the labelled people (CLEAR
//! MOT, IoU ≥ 0.5) and the table of misses, false positives, identity switches, MOTA and
//! sequenceIds per person is printed:
//!
//! `cargo test --test tracking_accuracy -- --nocapture` (`TRACKING_LOG=1` adds who was
//! matched to whom at each key frame, the misses and the false positives).
//!
//! `cargo test --release --test tracking_accuracy -- --ignored sweep --nocapture` scores
//! variations of the presets over every sampling phase (for tuning);
//! `cargo test --release --test tracking_accuracy -- --ignored regenerate` reruns the
//! detector to rewrite the detections fixture.

#[path = "common/detector.rs"]
mod kit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use vela::analytics::assign::{assign, Candidate, Method};
use vela::analytics::geometry::Margin;
use vela::analytics::line_crossing::{Direction, LineCrossings, LineSettings};
use vela::analytics::{BBox, Detection, FrameSize, IdGen, Pts, TrackedEntity, TrackedFrame, Tracker, TrackerSettings, TICKS_PER_SECOND};
use vela::modules::detector::{Detector, DetectorConfig, DEFAULT_MODEL};
use vela::topology::nodes::cognitive_services_vision::Focus;
use vela::topology::nodes::common::NamedLine;
use vela::topology::nodes::object_tracking::Accuracy;

/// The labelled span of config/media/vtest.mkv (768×576, 10 fps), in decoded frames.
const FIRST: u32 = 100;
const LAST: u32 = 400;
const FPS: u32 = 10;
/// Frames between two labelled key frames.
const KEY_EVERY: u32 = 10;

// ---------------------------------------------------------------------------------------
// Ground truth and detections

/// One labelled person: a box at some key frames, the same id all along.
struct Person {
    id: u32,
    boxes: BTreeMap<u32, BBox>,
}

impl Person {
    /// The labelled box, or the linear interpolation between two labelled boxes 10 frames
    /// apart; `None` where the person is not labelled (hidden, outside the picture).
    fn at(&self, frame: u32) -> Option<BBox> {
        if let Some(b) = self.boxes.get(&frame) {
            return Some(*b);
        }
        let (&f0, b0) = self.boxes.range(..frame).next_back()?;
        let (&f1, b1) = self.boxes.range(frame..).next()?;
        if f1 - f0 != KEY_EVERY {
            return None;
        }
        let s = f64::from(frame - f0) / f64::from(f1 - f0);
        let mix = |a: f64, b: f64| a + (b - a) * s;
        Some(BBox::new(mix(b0.l, b1.l), mix(b0.t, b1.t), mix(b0.w, b1.w), mix(b0.h, b1.h)))
    }
}

/// Person `id`'s feet went from one side of the line at key frame `from` to the other at `to`.
struct LabelledCrossing {
    id: u32,
    from: u32,
    to: u32,
    direction: Direction,
}

struct LabelledLine {
    line: NamedLine,
    crossings: Vec<LabelledCrossing>,
}

struct Truth {
    people: Vec<Person>,
    /// People visible but not required (tiny, mostly hidden, mostly outside), per key frame.
    ignore: Vec<(u32, BBox)>,
    lines: Vec<LabelledLine>,
}

fn bbox(v: &Value) -> BBox {
    let b: Vec<f64> = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    BBox::new(b[0], b[1], b[2], b[3])
}

fn point(v: &Value) -> [f64; 2] {
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

/// The fixture's direction words in the documented convention (docs/analytics.md,
/// "Direction"): stand at the line's first point `a` looking at `b`; a crossing from your
/// left to your right is clockwise.
///
/// * `middle` is drawn from top to bottom. Looking down the screen, your right hand points
///   to the screen's left, so walking right-to-left on screen goes from your left to your
///   right: clockwise.
/// * `lower-right` is drawn from left to right (rising a little). Your left is above the
///   line, so walking top-to-bottom goes from your left to your right: clockwise.
fn direction(line: &NamedLine, words: &str) -> Direction {
    let ([ax, ay], [bx, by]) = (line.from, line.to);
    match line.name.as_str() {
        "middle" => assert!(by > ay && (bx - ax).abs() < 1e-9, "middle is drawn downwards"),
        "lower-right" => assert!(bx > ax && (by - ay).abs() < bx - ax, "lower-right is drawn rightwards"),
        name => panic!("no direction mapping for line {name}"),
    }
    match (line.name.as_str(), words) {
        ("middle", "right-to-left") | ("lower-right", "top-to-bottom") => Direction::Clockwise,
        ("middle", "left-to-right") | ("lower-right", "bottom-to-top") => Direction::Counterclockwise,
        (name, words) => panic!("line {name}: no direction {words}"),
    }
}

fn truth() -> &'static Truth {
    static TRUTH: OnceLock<Truth> = OnceLock::new();
    TRUTH.get_or_init(|| {
        let doc = read_json("tests/fixtures/tracking/vtest-tracks.json");
        assert_eq!((doc["start_frame"].as_u64(), doc["end_frame"].as_u64()), (Some(FIRST.into()), Some(LAST.into())));
        assert_eq!(doc["labelled_every"].as_u64(), Some(KEY_EVERY.into()));
        let frame = |v: &Value| v["frame"].as_u64().unwrap() as u32;
        let people = doc["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| Person {
                id: t["id"].as_u64().unwrap() as u32,
                boxes: t["boxes"].as_array().unwrap().iter().map(|b| (frame(b), bbox(&b["box"]))).collect(),
            })
            .collect();
        let ignore = doc["ignore"].as_array().unwrap().iter().map(|i| (frame(i), bbox(&i["box"]))).collect();
        let lines = doc["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let line = NamedLine { name: l["name"].as_str().unwrap().into(), from: point(&l["a"]), to: point(&l["b"]) };
                let crossings = l["crossings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| LabelledCrossing {
                        id: c["id"].as_u64().unwrap() as u32,
                        from: c["from_frame"].as_u64().unwrap() as u32,
                        to: c["to_frame"].as_u64().unwrap() as u32,
                        direction: direction(&line, c["direction"].as_str().unwrap()),
                    })
                    .collect();
                LabelledLine { line, crossings }
            })
            .collect();
        Truth { people, ignore, lines }
    })
}

/// Per frame from `FIRST`, the detector's people (tests/fixtures/tracking/vtest-detections.json).
fn detections() -> &'static [Vec<Detection>] {
    static DETECTIONS: OnceLock<Vec<Vec<Detection>>> = OnceLock::new();
    DETECTIONS.get_or_init(|| {
        let doc = read_json("tests/fixtures/tracking/vtest-detections.json");
        let frames = doc["frames"].as_array().unwrap();
        assert_eq!(frames.len(), (LAST - FIRST + 1) as usize, "one entry per frame {FIRST}..={LAST}");
        frames
            .iter()
            .zip(FIRST..)
            .map(|(f, n)| {
                assert_eq!(f["frame"].as_u64(), Some(n.into()));
                let people = f["people"].as_array().unwrap();
                people
                    .iter()
                    .map(|p| {
                        let v: Vec<f64> = p.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
                        Detection::new("person", v[0], BBox::new(v[1], v[2], v[3], v[4]))
                    })
                    .collect()
            })
            .collect()
    })
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(kit::root().join(rel)).unwrap()).unwrap()
}

fn pts(frame: u32) -> Pts {
    Pts::from(frame - FIRST) * TICKS_PER_SECOND / Pts::from(FPS)
}

fn frame_of(pts: Pts) -> u32 {
    FIRST + (pts * Pts::from(FPS) / TICKS_PER_SECOND) as u32
}

fn is_key(frame: u32) -> bool {
    (frame - FIRST) % KEY_EVERY == 0
}

// ---------------------------------------------------------------------------------------
// Tracking

/// Which frames go to the detector: those with `(frame - 100) % every == phase`.
#[derive(Clone, Copy, PartialEq)]
struct Sampling {
    every: u32,
    phase: u32,
}

impl Sampling {
    /// Two samples a second, as the published topologies send (a frame rate filter at 2 fps).
    const TWICE_A_SECOND: Sampling = Sampling { every: 5, phase: 0 };
    /// The same, but the key frames fall between samples: the scored boxes are predictions.
    const TWICE_A_SECOND_SHIFTED: Sampling = Sampling { every: 5, phase: 2 };
    const EVERY_FRAME: Sampling = Sampling { every: 1, phase: 0 };

    fn label(&self) -> String {
        match (self.every, self.phase) {
            (1, _) => "every frame".into(),
            (n, 0) => format!("every {n}th"),
            (n, p) => format!("every {n}th, +{p}"),
        }
    }
}

fn track_with(sampling: Sampling, settings: TrackerSettings) -> Vec<TrackedFrame> {
    let mut tracker = Tracker::new(settings, IdGen::seeded(7));
    (FIRST..=LAST)
        .zip(detections())
        .map(|(frame, dets)| {
            let sampled = (frame - FIRST) % sampling.every == sampling.phase;
            tracker.update(pts(frame), sampled.then_some(&dets[..]))
        })
        .collect()
}

/// The tracker's output for every frame 100..=400.
fn track(sampling: Sampling, accuracy: Accuracy) -> Vec<TrackedFrame> {
    track_with(sampling, TrackerSettings::for_accuracy(accuracy))
}

/// CLEAR MOT over the key frames.
#[derive(Default)]
struct Score {
    gt: usize,
    misses: usize,
    false_positives: usize,
    matches: usize,
    iou_sum: f64,
    /// Per person: how often their matched sequenceId changed.
    switches: BTreeMap<u32, usize>,
    /// Per person: the sequenceIds matched to them.
    ids: BTreeMap<u32, BTreeSet<Arc<str>>>,
    /// Per sequenceId: how often it matched each person.
    people_of: HashMap<Arc<str>, BTreeMap<u32, usize>>,
    /// Who was matched to whom, misses and false positives, key frame by key frame.
    log: Vec<String>,
}

impl Score {
    fn id_switches(&self) -> usize {
        self.switches.values().sum()
    }

    fn worst_switches(&self) -> (u32, usize) {
        self.switches.iter().map(|(&p, &n)| (p, n)).max_by_key(|&(_, n)| n).unwrap_or_default()
    }

    fn mota(&self) -> f64 {
        1.0 - (self.misses + self.false_positives + self.id_switches()) as f64 / self.gt as f64
    }

    /// Mean IoU of the matches.
    fn motp(&self) -> f64 {
        self.iou_sum / self.matches as f64
    }

    /// The person a sequenceId was matched to most often.
    fn person_of(&self, id: &str) -> Option<u32> {
        self.people_of.get(id)?.iter().max_by_key(|(_, &n)| n).map(|(&p, _)| p)
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(4)]
}

/// Matches each key frame's tracked boxes to the labelled people at IoU ≥ 0.5: optimal
/// total IoU, except that a person keeps the sequenceId they had as long as it still
/// overlaps that much (CLEAR MOT), so a switch is counted only when the tracker's own
/// identity changed. A box left over on an `ignore` person (IoU ≥ 0.5, or its centre
/// inside, as tests/detector.rs scores) is neither a hit nor a false positive.
fn score(frames: &[TrackedFrame]) -> Score {
    let truth = truth();
    let mut s = Score::default();
    let mut previous: HashMap<u32, Arc<str>> = HashMap::new();
    for (frame, out) in (FIRST..=LAST).zip(frames).filter(|(f, _)| is_key(*f)) {
        let people: Vec<(u32, BBox)> = truth.people.iter().filter_map(|p| Some((p.id, *p.boxes.get(&frame)?))).collect();
        let mut candidates = Vec::new();
        for (row, (id, gt)) in people.iter().enumerate() {
            for (col, e) in out.entities.iter().enumerate() {
                let iou = gt.iou(&e.bbox);
                if iou >= 0.5 {
                    let kept = previous.get(id).is_some_and(|p| *p == e.sequence_id);
                    candidates.push(Candidate { row, col, gain: iou + if kept { 1.0 } else { 0.0 } });
                }
            }
        }
        let pairs = assign(people.len(), out.entities.len(), &candidates, Method::Optimal);
        s.gt += people.len();
        s.misses += people.len() - pairs.len();
        let mut row_log = format!("{frame}:");
        let mut used = vec![false; out.entities.len()];
        for (row, (id, gt)) in people.iter().enumerate() {
            let Some(&(_, col)) = pairs.iter().find(|&&(r, _)| r == row) else {
                row_log += &format!(" {id}=----");
                continue;
            };
            let e = &out.entities[col];
            used[col] = true;
            row_log += &format!(" {id}={}", short(&e.sequence_id));
            s.matches += 1;
            s.iou_sum += gt.iou(&e.bbox);
            if let Some(p) = previous.get(id).filter(|p| **p != e.sequence_id) {
                *s.switches.entry(*id).or_default() += 1;
                row_log += &format!(" (was {})", short(p));
            }
            previous.insert(*id, e.sequence_id.clone());
            s.ids.entry(*id).or_default().insert(e.sequence_id.clone());
            *s.people_of.entry(e.sequence_id.clone()).or_default().entry(*id).or_default() += 1;
        }
        let ignored = |b: &BBox| {
            let c = b.center();
            truth
                .ignore
                .iter()
                .filter(|(f, _)| *f == frame)
                .any(|(_, g)| b.iou(g) >= 0.5 || (c.x >= g.l && c.x <= g.right() && c.y >= g.t && c.y <= g.bottom()))
        };
        for (e, _) in out.entities.iter().zip(&used).filter(|(e, &u)| !u && !ignored(&e.bbox)) {
            s.false_positives += 1;
            let b = e.bbox;
            row_log +=
                &format!(" FP {} [{:.0},{:.0},{:.0},{:.0}]px", short(&e.sequence_id), b.l * 768.0, b.t * 576.0, b.w * 768.0, b.h * 576.0);
        }
        s.log.push(row_log);
    }
    for p in &truth.people {
        s.switches.entry(p.id).or_default();
        s.ids.entry(p.id).or_default();
    }
    s
}

fn per_person(values: impl Iterator<Item = usize>) -> String {
    values.map(|v| format!("{v:>2}")).collect()
}

/// What the presets achieved when this test was written (docs/analytics.md, "Measured on
/// vtest.mkv"), less a margin of about 0.05: a small change in the tracker passes, a real
/// regression does not.
const MOTA_FLOORS: [(Sampling, Accuracy, f64); 9] = [
    (Sampling::TWICE_A_SECOND, Accuracy::Low, 0.70),
    (Sampling::TWICE_A_SECOND, Accuracy::Medium, 0.80),
    (Sampling::TWICE_A_SECOND, Accuracy::High, 0.80),
    (Sampling::TWICE_A_SECOND_SHIFTED, Accuracy::Low, 0.60),
    (Sampling::TWICE_A_SECOND_SHIFTED, Accuracy::Medium, 0.70),
    (Sampling::TWICE_A_SECOND_SHIFTED, Accuracy::High, 0.65),
    (Sampling::EVERY_FRAME, Accuracy::Low, 0.70),
    (Sampling::EVERY_FRAME, Accuracy::Medium, 0.75),
    (Sampling::EVERY_FRAME, Accuracy::High, 0.75),
];

/// Issue 7: "ID switches ≤ 2 per person track", for the default preset at the published
/// sampling and on every frame.
const MAX_SWITCHES_PER_PERSON: usize = 2;

#[test]
fn the_tracker_keeps_the_people_of_vtest_apart() {
    let people: Vec<u32> = truth().people.iter().map(|p| p.id).collect();
    println!("Tracker on vtest.mkv frames {FIRST}-{LAST}, scored at the {} key frames (IoU ≥ 0.5):", (LAST - FIRST) / KEY_EVERY + 1);
    println!(
        "{:<15} {:<8} {:>4} {:>4} {:>4} {:>5} {:>6} {:>5} | IDSW per person{} | sequenceIds per person",
        "detections",
        "accuracy",
        "GT",
        "FN",
        "FP",
        "IDSW",
        "MOTA",
        "MOTP",
        people.iter().map(|p| format!("{p:>2}")).collect::<String>(),
    );
    let mut failures = Vec::new();
    for (sampling, accuracy, floor) in MOTA_FLOORS {
        let s = score(&track(sampling, accuracy));
        println!(
            "{:<15} {:<8} {:>4} {:>4} {:>4} {:>5} {:>6.3} {:>5.3} |                {} | {}",
            sampling.label(),
            format!("{accuracy:?}").to_lowercase(),
            s.gt,
            s.misses,
            s.false_positives,
            s.id_switches(),
            s.mota(),
            s.motp(),
            per_person(s.switches.values().copied()),
            per_person(s.ids.values().map(BTreeSet::len)),
        );
        if std::env::var_os("TRACKING_LOG").is_some() {
            s.log.iter().for_each(|l| println!("    {l}"));
        }
        let what = format!("{} at {accuracy:?}", sampling.label());
        if s.mota() < floor {
            failures.push(format!("{what}: MOTA {:.3} < {floor}", s.mota()));
        }
        let (person, worst) = s.worst_switches();
        let bar = accuracy == Accuracy::Medium && [Sampling::TWICE_A_SECOND, Sampling::EVERY_FRAME].contains(&sampling);
        if bar && worst > MAX_SWITCHES_PER_PERSON {
            failures.push(format!("{what}: person {person} switched identity {worst} times"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------
// Line crossing

/// A crossing as counted.
#[derive(Clone, Debug)]
struct Counted {
    frame: u32,
    line: String,
    track: Arc<str>,
    direction: Direction,
}

/// Spatial Analysis' default line threshold.
const MARGIN_PX: f64 = 16.0;

/// The fixture's crossings are of the feet, so the lines test the bottom-centre of the box.
fn count_crossings(frames: &[TrackedFrame], margin_px: f64) -> Vec<Counted> {
    let settings = LineSettings {
        focus: Focus::BottomCenter,
        margin: Margin::Pixels(margin_px),
        confirm_updates: 1,
        forget_after: 10 * TICKS_PER_SECOND,
    };
    let lines = truth().lines.iter().map(|l| (l.line.clone(), settings));
    let mut lc = LineCrossings::new(lines, FrameSize::new(kit::W, kit::H), IdGen::seeded(3));
    frames
        .iter()
        .flat_map(|f| lc.update(f))
        .map(|c| Counted { frame: frame_of(c.pts), line: c.line_name.to_string(), track: c.sequence_id, direction: c.direction })
        .collect()
}

/// Per line and direction, how many crossings.
fn totals<'a>(it: impl Iterator<Item = (&'a str, Direction)>) -> BTreeMap<(String, &'static str), usize> {
    let mut m = BTreeMap::new();
    for (line, d) in it {
        *m.entry((line.to_owned(), d.as_str())).or_default() += 1;
    }
    m
}

/// The labelled tracks, interpolated between key frames, as a tracker with perfect
/// identities would report them.
fn labelled_frames() -> Vec<TrackedFrame> {
    (FIRST..=LAST)
        .map(|frame| {
            let entities = truth()
                .people
                .iter()
                .filter_map(|p| {
                    Some(TrackedEntity {
                        sequence_id: format!("person {}", p.id).into(),
                        inference_id: String::new(),
                        tag: "person".into(),
                        confidence: 1.0,
                        bbox: p.at(frame)?,
                        predicted: false,
                    })
                })
                .collect();
            TrackedFrame::from_entities(pts(frame), entities)
        })
        .collect()
}

/// The direction mapping and the line geometry, independently of the tracker: the
/// labelled people, with their labelled ids, cross exactly as labelled.
#[test]
fn the_labelled_tracks_cross_the_lines_as_labelled() {
    // The feet are at least 6 px from a line at both key frames of a labelled crossing,
    // so with a narrower band every crossing falls inside its labelled interval.
    let counted = count_crossings(&labelled_frames(), 5.0);
    for l in &truth().lines {
        let got: Vec<&Counted> = counted.iter().filter(|c| c.line == l.line.name).collect();
        assert_eq!(got.len(), l.crossings.len(), "line {}: {got:?}", l.line.name);
        for want in &l.crossings {
            let id = format!("person {}", want.id);
            assert!(
                got.iter().any(|c| *c.track == *id && c.direction == want.direction && c.frame > want.from && c.frame <= want.to),
                "line {}: person {} {:?} between frames {} and {} not counted; counted {got:?}",
                l.line.name,
                want.id,
                want.direction,
                want.from,
                want.to
            );
        }
    }
}

/// Where the tracker is known to miscount, and why. At frame 140 person 8 walks in from the
/// right edge in front of person 1, who is leaving there: the one sample of that half
/// second shows only 8, exactly where person 1's track expected her, so her track takes
/// his box. His own track starts a sample later, above the lower-right line he has just
/// crossed (not counted), and hers, extrapolated from his box, drifts down over the line
/// (counted top-to-bottom). Box overlap and motion cannot tell the two apart; appearance
/// could. When the tracker gets this right, this test fails: remove the entries.
const KNOWN_MISSED: [(&str, u32, u32); 1] = [("lower-right", 8, 140)];
const KNOWN_EXTRA: [(&str, Direction, u32); 1] = [("lower-right", Direction::Clockwise, 140)];

#[test]
fn tracked_people_cross_the_lines_as_labelled() {
    let frames = track(Sampling::TWICE_A_SECOND, Accuracy::Medium);
    let scored = score(&frames);
    let counted = count_crossings(&frames, MARGIN_PX);
    let mut taken = vec![false; counted.len()];
    let mut failures = Vec::new();
    println!("Line crossings of the tracked people (detections on every 5th frame, accuracy medium, feet, {MARGIN_PX} px band):");
    for l in &truth().lines {
        for want in &l.crossings {
            // Seen up to one key interval early or late.
            let found = (0..counted.len()).find(|&i| {
                let c = &counted[i];
                !taken[i]
                    && c.line == l.line.name
                    && c.direction == want.direction
                    && c.frame + KEY_EVERY > want.from
                    && c.frame <= want.to + KEY_EVERY
            });
            let known_missed = KNOWN_MISSED.contains(&(l.line.name.as_str(), want.id, want.from));
            let seen = match found {
                Some(i) => {
                    taken[i] = true;
                    let c = &counted[i];
                    let person = scored.person_of(&c.track).map_or("nobody".into(), |p| format!("person {p}"));
                    format!("counted at {} by track {} (mostly on {person})", c.frame, short(&c.track))
                }
                None => "NOT COUNTED".into(),
            };
            println!("  {:<12} person {} {:<16} {}-{}: {seen}", l.line.name, want.id, want.direction.as_str(), want.from, want.to);
            if found.is_some() == known_missed {
                failures.push(format!("{} person {} {}-{}: {seen}", l.line.name, want.id, want.from, want.to));
            }
        }
    }
    for (c, _) in counted.iter().zip(&taken).filter(|(_, &t)| !t) {
        println!("  {:<12} EXTRA {} at {} by track {}", c.line, c.direction.as_str(), c.frame, short(&c.track));
        let known =
            KNOWN_EXTRA.iter().any(|&(line, d, from)| c.line == line && c.direction == d && (from..=from + KEY_EVERY).contains(&c.frame));
        if !known {
            failures.push(format!(
                "{} {} counted at {} by track {}: nobody crossed",
                c.line,
                c.direction.as_str(),
                c.frame,
                short(&c.track)
            ));
        }
    }
    let extras = counted.len() - taken.iter().filter(|&&t| t).count();
    if extras != KNOWN_EXTRA.len() {
        failures.push(format!("{extras} crossings counted that nobody made, {} known", KNOWN_EXTRA.len()));
    }
    let labelled = totals(truth().lines.iter().flat_map(|l| l.crossings.iter().map(move |c| (l.line.name.as_str(), c.direction))));
    let got = totals(counted.iter().map(|c| (c.line.as_str(), c.direction)));
    println!("  per line and direction: counted {got:?}\n                          labelled {labelled:?}");
    // No jitter double counts: a person on the line is counted once.
    for (i, a) in counted.iter().enumerate() {
        if let Some(b) = counted[i + 1..].iter().find(|b| b.line == a.line && b.track == a.track && b.frame < a.frame + FPS) {
            failures.push(format!("track {} counted twice within a second on {}: {a:?} {b:?}", short(&a.track), a.line));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------
// Tools

/// Presets and variations of them over every sampling phase of every 1st, 2nd, 3rd and 5th
/// frame (11 runs): mean MOTA, identity switches in all, the most any person had in one
/// run and in how many runs someone had more than the bar. One run is one realisation of
/// a chaotic process (one decision at a crossing changes every later one); the sweep
/// shows whether a change helps on the whole. `SWEEP="medium;medium,acceleration=0.5"`
/// chooses the variants.
#[test]
#[ignore = "a tuning aid: prints, asserts nothing"]
fn sweep() {
    let specs = std::env::var("SWEEP").unwrap_or_else(|_| "low;medium;high".into());
    for spec in specs.split(';') {
        let mut parts = spec.split(',');
        let mut s = TrackerSettings::for_accuracy(match parts.next().unwrap() {
            "low" => Accuracy::Low,
            "medium" => Accuracy::Medium,
            "high" => Accuracy::High,
            other => panic!("{other}: a preset first"),
        });
        for kv in parts {
            let (k, v) = kv.split_once('=').unwrap();
            let v: f64 = v.parse().unwrap();
            match k {
                "uncertainty" => s.uncertainty = v,
                "buffer" => s.buffer = v,
                "first_iou" => s.first_iou = v,
                "second_iou" => s.second_iou = v,
                "low_confidence" => s.low_confidence = v,
                "high_confidence" => s.high_confidence = v,
                "max_misses" => s.max_misses = v as u32,
                "acceleration" => s.noise.acceleration = v,
                "measurement" => s.noise.measurement = v,
                _ => panic!("{k}: not a setting the sweep knows"),
            }
        }
        let (mut mota, mut runs, mut switches, mut worst, mut over) = (0.0, 0, 0, 0, 0);
        for every in [1, 2, 3, 5] {
            for phase in 0..every {
                let sc = score(&track_with(Sampling { every, phase }, s.clone()));
                mota += sc.mota();
                runs += 1;
                switches += sc.id_switches();
                worst = worst.max(sc.worst_switches().1);
                over += usize::from(sc.worst_switches().1 > MAX_SWITCHES_PER_PERSON);
            }
        }
        println!(
            "{spec:<40} mean MOTA {:.3}, {switches} identity switches, at most {worst} for one person, over the bar in {over}/{runs} runs",
            mota / f64::from(runs)
        );
    }
}

/// The built-in detector's people on every frame 100..=400, with their confidence, one
/// frame a line.
#[test]
#[ignore = "runs the detector on 301 frames; rewrites tests/fixtures/tracking/vtest-detections.json"]
fn regenerate() {
    assert!(kit::have_ffmpeg());
    let threshold = 0.1;
    let config = DetectorConfig { threshold, classes: vec!["person".into()], ..DetectorConfig::default() };
    let (nms_iou, max_detections) = (config.nms_iou, config.max_detections);
    let det = Detector::load(kit::model_path(), config).unwrap();
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(kit::root().join("config/media/vtest.mkv"))
        .args(["-vf", &format!("select=between(n\\,{FIRST}\\,{LAST})"), "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = ffmpeg.stdout.take().unwrap();
    let mut px = vec![0u8; (kit::W * kit::H * 3) as usize];
    let mut lines = Vec::new();
    for frame in FIRST..=LAST {
        pipe.read_exact(&mut px).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
        let img = image::RgbImage::from_raw(kit::W, kit::H, px.clone()).unwrap();
        let people: Vec<String> = det
            .detect(&img)
            .iter()
            .map(|d| format!("[{:.4},{:.4},{:.4},{:.4},{:.4}]", d.confidence, d.left, d.top, d.width, d.height))
            .collect();
        lines.push(format!("    {{\"frame\": {frame}, \"people\": [{}]}}", people.join(",")));
    }
    assert_eq!(pipe.read(&mut px).unwrap(), 0, "ffmpeg gave more frames than {FIRST}..={LAST}");
    assert!(ffmpeg.wait().unwrap().success());
    let about = format!(
        "Person detections of Vela's built-in detector ({DEFAULT_MODEL}, class person, score threshold {threshold}, NMS IoU \
         {nms_iou}, at most {max_detections} a frame) on every frame {FIRST}..={LAST} of config/media/vtest.mkv (frame numbers \
         count decoded frames from 0, as in vtest-tracks.json), so that tests/tracking_accuracy.rs runs the tracker on real \
         detections without the model. The threshold is below the tracker's low-confidence stage (ByteTrack's stage 2), so \
         that stage's lower bound can be studied too; most detections under 0.3 are clutter (cones, bollards, the blue sign). \
         Each person is [confidence, left, top, width, height], the box normalised to 768x576, most confident first. \
         Regenerate with: cargo test --release --test tracking_accuracy -- --ignored regenerate (about 45 s; the debug build \
         works too, at about half a second a frame)."
    );
    let mut out = String::from("{\n");
    out.push_str("  \"clip\": \"config/media/vtest.mkv\",\n  \"size\": [768, 576],\n  \"fps\": 10,\n");
    out.push_str(&format!("  \"about\": {},\n", Value::String(about)));
    out.push_str("  \"frames\": [\n");
    out.push_str(&lines.join(",\n"));
    out.push_str("\n  ]\n}\n");
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["frames"].as_array().unwrap().len(), (LAST - FIRST + 1) as usize);
    let path = kit::root().join("tests/fixtures/tracking/vtest-detections.json");
    std::fs::File::create(&path).unwrap().write_all(out.as_bytes()).unwrap();
}
