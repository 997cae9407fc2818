//! Spatial Analysis operations run by Vela itself (CognitiveServicesVisionProcessor): person count, zone crossing and dwell time, line crossing and person distance, as SPEC inferences.
//!
//! [`SpatialAnalysis::new`] compiles a typed `SpatialOperation` into rules over tracked
//! people (entities tagged `person`, any case); [`SpatialAnalysis::update`] feeds one
//! [`TrackedFrame`] through them and returns the events of that frame. The event shapes
//! are the ones AVA published for these operations (an `event` inference whose `name` is
//! the Spatial Analysis event type, `relatedInferences` pointing at the person entities,
//! every property a string; numbers as AVA wrote them, "2.0", "20.807043"):
//!
//! | operation | event `name` | properties |
//! |---|---|---|
//! | person count | `personCountEvent` | `personCount` ("2.0"), `zone` |
//! | zone crossing, `eventType: zoneCrossing` | `personZoneEnterExitEvent` | `trackingId`, `status` (`Enter`/`Exit`), `zone`, `side` (when seen crossing an edge; 1 = first edge) |
//! | zone crossing, `eventType: zoneDwellTime` | `personZoneDwellTimeEvent` (on exit) | as above plus `dwellTime` (ms, "7132.0") and `dwellFrames` ("20") |
//! | line crossing | `personLineEvent` | `trackingId`, `status` (`CrossRight` = clockwise, `CrossLeft`), `zone` (the line's name) |
//! | person distance | `personDistanceEvent` | `personCount`, `averageDistance`, `minimumDistanceThreshold`, `maximumDistanceThreshold` ("Infinity" when unset), `eventName` (`TooClose`/`TooFar`/`Unknown`), `distanceViolationPersonCount`, `zone` |
//!
//! `trackingId` is the tracker's `sequenceId`; [`person_inference`] writes the person
//! entities with it as the `trackingId` extension, as Spatial Analysis did.
//!
//! Settings of an event configuration and their defaults (Spatial Analysis' documented
//! ones): `focus` footprint; `threshold` (the margin past a zone's edge or a line, see
//! [`Margin::from_threshold`]) 16 px, 48 px for `zoneCrossing`; `trigger` event;
//! `outputFrequency` 1. A zone or line listed without events gets one default event. The
//! advanced options (`debug`, `cameraConfiguration`, `detectorNodeConfiguration`,
//! `trackerNodeConfiguration`, calibration) configure Microsoft's container and are
//! ignored; `enableFaceMaskClassifier: true` and the custom operation are refused.

use super::geometry::{FrameSize, Margin};
use super::ids::IdGen;
use super::line_crossing::{Crossing, LineCrossings, LineSettings};
use super::tracker::{TrackedEntity, TrackedFrame};
use super::zones::{
    Cadence, CountReport, DistanceReport, DistanceRuler, PersonCount, PersonDistance, Transition, ZoneSettings, ZoneStatus, ZoneWatch,
};
use super::{Pts, TICKS_PER_SECOND};
use crate::topology::nodes::cognitive_services_vision::{
    Focus, OperationEvent, OperationOptions, SpatialOperation, Trigger, ZoneEventType,
};
use crate::topology::nodes::common::NamedPolygon;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Why an operation cannot run on Vela.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpatialError {
    #[error(
        "SpatialAnalysisCustomOperation passes its configuration to Microsoft's Spatial Analysis container, which Vela does not run; \
         use a typed operation (person count, zone crossing, line crossing, person distance)"
    )]
    CustomOperation,
    #[error("enableFaceMaskClassifier is not supported: Vela's detector has no face mask classifier")]
    FaceMaskClassifier,
    #[error("zone '{0}' needs at least 3 distinct corners")]
    Zone(String),
}

/// Tracks not seen for this long are forgotten (zones: they exit).
const FORGET_AFTER: Pts = 10 * TICKS_PER_SECOND;

/// Default margin of counts, dwell times, distances and lines (Spatial Analysis: 16 px).
const DEFAULT_THRESHOLD: f64 = 16.0;
/// Default margin of zone crossings (Spatial Analysis: 48 px).
const DEFAULT_CROSSING_THRESHOLD: f64 = 48.0;

/// What happened, with the data of its event.
#[derive(Clone, Debug, PartialEq)]
pub enum SpatialEventKind {
    PersonCount(CountReport),
    ZoneEnterExit { zone: Arc<str>, transition: Transition },
    ZoneDwellTime { zone: Arc<str>, transition: Transition },
    PersonLine(Crossing),
    PersonDistance(DistanceReport),
}

/// One event of a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct SpatialEvent {
    pub pts: Pts,
    pub inference_id: String,
    pub kind: SpatialEventKind,
}

impl SpatialEvent {
    /// The Spatial Analysis event type (the inference's `event.name`).
    pub fn name(&self) -> &'static str {
        match self.kind {
            SpatialEventKind::PersonCount(_) => "personCountEvent",
            SpatialEventKind::ZoneEnterExit { .. } => "personZoneEnterExitEvent",
            SpatialEventKind::ZoneDwellTime { .. } => "personZoneDwellTimeEvent",
            SpatialEventKind::PersonLine(_) => "personLineEvent",
            SpatialEventKind::PersonDistance(_) => "personDistanceEvent",
        }
    }

    /// `{type: "event", inferenceId, relatedInferences?, event: {name, properties}}`.
    pub fn to_inference(&self) -> Value {
        let mut props = Map::new();
        let mut put = |k: &str, v: String| {
            props.insert(k.into(), Value::String(v));
        };
        let related: Vec<String> = match &self.kind {
            SpatialEventKind::PersonCount(r) => {
                put("personCount", number(r.count as f64));
                put("zone", r.zone.to_string());
                r.related.clone()
            }
            SpatialEventKind::ZoneEnterExit { zone, transition: t } | SpatialEventKind::ZoneDwellTime { zone, transition: t } => {
                put("trackingId", t.sequence_id.to_string());
                put("status", t.status.as_str().into());
                put("zone", zone.to_string());
                if let Some(side) = t.side {
                    put("side", (side + 1).to_string());
                }
                if let (SpatialEventKind::ZoneDwellTime { .. }, Some(d)) = (&self.kind, t.dwell) {
                    put("dwellTime", number(d.millis()));
                    put("dwellFrames", d.frames.to_string());
                }
                vec![t.entity_inference_id.clone()]
            }
            SpatialEventKind::PersonLine(c) => {
                put("trackingId", c.sequence_id.to_string());
                put("status", c.direction.status().into());
                put("zone", c.line_name.to_string());
                vec![c.entity_inference_id.clone()]
            }
            SpatialEventKind::PersonDistance(r) => {
                put("personCount", number(r.person_count as f64));
                put("averageDistance", number(r.average_distance));
                put("minimumDistanceThreshold", number(r.minimum_distance_threshold.unwrap_or(0.0)));
                put("maximumDistanceThreshold", number(r.maximum_distance_threshold.unwrap_or(f64::INFINITY)));
                put("eventName", r.verdict.as_str().into());
                put("distanceViolationPersonCount", number(r.violation_count as f64));
                put("zone", r.zone.to_string());
                r.related.clone()
            }
        };
        let mut o = Map::new();
        o.insert("type".into(), "event".into());
        o.insert("inferenceId".into(), self.inference_id.clone().into());
        let related: Vec<String> = related.into_iter().filter(|r| !r.is_empty()).collect();
        if !related.is_empty() {
            o.insert("relatedInferences".into(), json!(related));
        }
        o.insert("event".into(), json!({ "name": self.name(), "properties": Value::Object(props) }));
        Value::Object(o)
    }
}

/// A number as AVA wrote Spatial Analysis' numeric properties: "2.0", "20.807043", "Infinity".
fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let f = v as f32;
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// A person entity as Spatial Analysis' operations output it: the tracker's entity
/// inference plus `extensions.trackingId` (the `sequenceId` the events name).
pub fn person_inference(e: &TrackedEntity) -> Value {
    let mut v = e.to_inference();
    if let Some(o) = v.as_object_mut() {
        o.insert("extensions".into(), json!({ "trackingId": &*e.sequence_id }));
    }
    v
}

fn is_person(e: &TrackedEntity) -> bool {
    e.tag.eq_ignore_ascii_case("person")
}

#[derive(Clone, Debug)]
enum Rule {
    Count(PersonCount),
    Crossing { watch: ZoneWatch, dwell: bool },
    Distance(PersonDistance),
    Lines(LineCrossings),
}

/// The rules of one operation, for one stream.
#[derive(Clone, Debug)]
pub struct SpatialAnalysis {
    rules: Vec<Rule>,
    ids: IdGen,
}

fn zone_settings(e: &OperationEvent, default_threshold: f64) -> ZoneSettings {
    ZoneSettings {
        focus: e.focus.unwrap_or(Focus::Footprint),
        margin: Margin::from_threshold(e.threshold.unwrap_or(default_threshold)),
        confirm_updates: 1,
        forget_after: FORGET_AFTER,
    }
}

fn default_event() -> OperationEvent {
    OperationEvent {
        trigger: None,
        output_frequency: None,
        threshold: None,
        focus: None,
        event_type: None,
        minimum_distance_threshold: None,
        maximum_distance_threshold: None,
    }
}

/// The zone's events, or one default event when it lists none.
fn events_or_default(events: &[OperationEvent]) -> Vec<OperationEvent> {
    if events.is_empty() {
        vec![default_event()]
    } else {
        events.to_vec()
    }
}

fn watch(zone: &NamedPolygon, s: ZoneSettings, frame: FrameSize) -> Result<ZoneWatch, SpatialError> {
    ZoneWatch::new(zone, s, frame).ok_or_else(|| SpatialError::Zone(zone.name.clone()))
}

fn check_options(o: &OperationOptions) -> Result<(), SpatialError> {
    if o.enable_face_mask_classifier {
        return Err(SpatialError::FaceMaskClassifier);
    }
    Ok(())
}

impl SpatialAnalysis {
    /// `frame`: the pixel size of the video, for the pixel thresholds.
    pub fn new(op: &SpatialOperation, frame: FrameSize, ids: IdGen) -> Result<Self, SpatialError> {
        let mut rules = Vec::new();
        match op {
            SpatialOperation::Custom { .. } => return Err(SpatialError::CustomOperation),
            SpatialOperation::PersonCount { options, zones } => {
                check_options(options)?;
                for z in zones {
                    for e in events_or_default(&z.events) {
                        let w = watch(&z.zone, zone_settings(&e, DEFAULT_THRESHOLD), frame)?;
                        let cadence = Cadence::new(e.trigger.unwrap_or(Trigger::Event), e.output_frequency);
                        rules.push(Rule::Count(PersonCount::new(w, cadence)));
                    }
                }
            }
            SpatialOperation::PersonZoneCrossing { options, zones } => {
                check_options(options)?;
                for z in zones {
                    for e in events_or_default(&z.events) {
                        let dwell = e.event_type == Some(ZoneEventType::ZoneDwellTime);
                        let default = if dwell { DEFAULT_THRESHOLD } else { DEFAULT_CROSSING_THRESHOLD };
                        rules.push(Rule::Crossing { watch: watch(&z.zone, zone_settings(&e, default), frame)?, dwell });
                    }
                }
            }
            SpatialOperation::PersonDistance { options, zones } => {
                check_options(options)?;
                for z in zones {
                    for e in events_or_default(&z.events) {
                        let w = watch(&z.zone, zone_settings(&e, DEFAULT_THRESHOLD), frame)?;
                        let cadence = Cadence::new(e.trigger.unwrap_or(Trigger::Event), e.output_frequency);
                        let (min, max) = (e.minimum_distance_threshold, e.maximum_distance_threshold);
                        rules.push(Rule::Distance(PersonDistance::new(w, cadence, min, max, DistanceRuler::default())));
                    }
                }
            }
            SpatialOperation::PersonLineCrossing { options, lines } => {
                check_options(options)?;
                let lines = lines.iter().flat_map(|l| {
                    events_or_default(&l.events).into_iter().map(|e| {
                        let s = LineSettings {
                            focus: e.focus.unwrap_or(Focus::Footprint),
                            margin: Margin::from_threshold(e.threshold.unwrap_or(DEFAULT_THRESHOLD)),
                            confirm_updates: 1,
                            forget_after: FORGET_AFTER,
                        };
                        (l.line.clone(), s)
                    })
                });
                // Event ids come from the engine's own stream; the lines' stays unused.
                rules.push(Rule::Lines(LineCrossings::new(lines, frame, IdGen::seeded(0))));
            }
        }
        Ok(SpatialAnalysis { rules, ids })
    }

    pub fn set_frame_size(&mut self, frame: FrameSize) {
        for r in &mut self.rules {
            match r {
                Rule::Count(c) => c.watch.set_frame_size(frame),
                Rule::Crossing { watch, .. } => watch.set_frame_size(frame),
                Rule::Distance(d) => d.watch.set_frame_size(frame),
                Rule::Lines(l) => l.set_frame_size(frame),
            }
        }
    }

    /// The events of one frame, in the order of the operation's zones/lines and their events.
    pub fn update(&mut self, frame: &TrackedFrame) -> Vec<SpatialEvent> {
        let pts = frame.pts;
        let people = || frame.entities.iter().filter(|e| is_person(e));
        let mut kinds = Vec::new();
        for r in &mut self.rules {
            match r {
                Rule::Count(c) => kinds.extend(c.update_with(pts, people(), &frame.ended).1.map(SpatialEventKind::PersonCount)),
                Rule::Crossing { watch, dwell } => {
                    let zone = watch.name().clone();
                    for t in watch.update_with(pts, people(), &frame.ended) {
                        if !*dwell {
                            kinds.push(SpatialEventKind::ZoneEnterExit { zone: zone.clone(), transition: t });
                        } else if t.status == ZoneStatus::Exit {
                            kinds.push(SpatialEventKind::ZoneDwellTime { zone: zone.clone(), transition: t });
                        }
                    }
                }
                Rule::Distance(d) => kinds.extend(d.update_with(pts, people(), &frame.ended).1.map(SpatialEventKind::PersonDistance)),
                Rule::Lines(l) => kinds.extend(l.update_with(pts, people(), &frame.ended).into_iter().map(SpatialEventKind::PersonLine)),
            }
        }
        kinds.into_iter().map(|kind| SpatialEvent { pts, inference_id: self.ids.next_id(), kind }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::geometry::{BBox, Pt};
    use crate::topology::nodes::cognitive_services_vision::{LineEvents, ZoneEvents};
    use crate::topology::nodes::common::NamedLine;

    const FRAME: Pts = TICKS_PER_SECOND / 30;

    fn hd() -> FrameSize {
        FrameSize::new(1920, 1080)
    }

    fn entity(id: &str, tag: &str, x: f64, y: f64) -> TrackedEntity {
        TrackedEntity {
            sequence_id: id.into(),
            inference_id: format!("inf-{id}-{x:.3}"),
            tag: tag.into(),
            confidence: 0.9,
            bbox: BBox::from_center(Pt::new(x, y - 0.1), 0.06, 0.2),
            predicted: false,
        }
    }

    fn frame(k: i64, entities: Vec<TrackedEntity>) -> TrackedFrame {
        TrackedFrame::from_entities(k * FRAME, entities)
    }

    fn zone(name: &str, events: Vec<OperationEvent>) -> ZoneEvents {
        let points = vec![[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]];
        ZoneEvents { zone: NamedPolygon { name: name.into(), points }, events }
    }

    /// A published-style event: threshold and focus set, the rest absent.
    fn event(threshold: f64, focus: Focus) -> OperationEvent {
        OperationEvent { threshold: Some(threshold), focus: Some(focus), ..default_event() }
    }

    #[test]
    fn person_count_counts_people_only_in_the_published_shape() {
        let op = SpatialOperation::PersonCount {
            options: OperationOptions::default(),
            zones: vec![zone(
                "entireframe",
                vec![OperationEvent { trigger: Some(Trigger::Event), output_frequency: Some(1.0), ..event(16.0, Focus::BottomCenter) }],
            )],
        };
        let mut sa = SpatialAnalysis::new(&op, hd(), IdGen::seeded(1)).unwrap();
        let e0 = sa.update(&frame(0, vec![entity("a", "person", 0.5, 0.5), entity("c", "car", 0.4, 0.5)]));
        assert_eq!(e0.len(), 1);
        let v = e0[0].to_inference();
        assert_eq!(v["type"], "event");
        assert_eq!(v["inferenceId"].as_str().unwrap().len(), 32);
        assert_eq!(v["relatedInferences"], json!(["inf-a-0.500"]));
        assert_eq!(v["event"], json!({"name": "personCountEvent", "properties": {"personCount": "1.0", "zone": "entireframe"}}));
        assert!(sa.update(&frame(1, vec![entity("a", "person", 0.5, 0.5)])).is_empty(), "no change");
        let e2 = sa.update(&frame(2, vec![entity("a", "Person", 0.5, 0.5), entity("b", "person", 0.45, 0.6)]));
        assert_eq!(e2[0].to_inference()["event"]["properties"]["personCount"], "2.0");
    }

    #[test]
    fn zone_crossing_and_dwell_time_events() {
        let dwell = OperationEvent { event_type: Some(ZoneEventType::ZoneDwellTime), ..default_event() };
        let op = SpatialOperation::PersonZoneCrossing {
            options: OperationOptions::default(),
            zones: vec![zone("queue", vec![event(5.0, Focus::Footprint), dwell])],
        };
        let mut sa = SpatialAnalysis::new(&op, hd(), IdGen::seeded(1)).unwrap();
        let mut all = Vec::new();
        for k in 0..=60 {
            let x = 0.1 + 0.8 * k as f64 / 60.0;
            all.extend(sa.update(&frame(k, vec![entity("a", "person", x, 0.5)])));
        }
        let names: Vec<&str> = all.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["personZoneEnterExitEvent", "personZoneEnterExitEvent", "personZoneDwellTimeEvent"]);
        let enter = all[0].to_inference();
        assert_eq!(enter["event"]["properties"], json!({"trackingId": "a", "status": "Enter", "zone": "queue", "side": "4"}));
        assert_eq!(enter["relatedInferences"].as_array().unwrap().len(), 1);
        let exit = all[2].to_inference();
        let p = &exit["event"]["properties"];
        assert_eq!((&p["status"], &p["side"]), (&json!("Exit"), &json!("2")));
        let ms: f64 = p["dwellTime"].as_str().unwrap().parse().unwrap();
        let frames: u64 = p["dwellFrames"].as_str().unwrap().parse().unwrap();
        assert!((ms - frames as f64 * 1000.0 / 30.0).abs() < 1.0, "{ms} ms over {frames} frames");
    }

    #[test]
    fn person_line_events_use_spatial_analysis_statuses() {
        let line = NamedLine { name: "door".into(), from: [0.2, 0.5], to: [0.8, 0.5] };
        let op = SpatialOperation::PersonLineCrossing {
            options: OperationOptions::default(),
            lines: vec![LineEvents { line, events: vec![event(10.0, Focus::Footprint)] }],
        };
        let mut sa = SpatialAnalysis::new(&op, hd(), IdGen::seeded(1)).unwrap();
        let mut all = Vec::new();
        for k in 0..=20 {
            let y = 0.3 + 0.4 * k as f64 / 20.0;
            all.extend(sa.update(&frame(k, vec![entity("a", "person", 0.5, y), entity("car", "car", 0.4, y)])));
        }
        assert_eq!(all.len(), 1, "the car is not a person");
        let v = all[0].to_inference();
        assert_eq!(
            v["event"],
            json!({"name": "personLineEvent", "properties": {"trackingId": "a", "status": "CrossRight", "zone": "door"}})
        );
    }

    #[test]
    fn person_distance_events() {
        let e = OperationEvent {
            minimum_distance_threshold: Some(1.5),
            maximum_distance_threshold: Some(14.5),
            ..event(48.0, Focus::BottomCenter)
        };
        let op = SpatialOperation::PersonDistance { options: OperationOptions::default(), zones: vec![zone("lobby", vec![e])] };
        let mut sa = SpatialAnalysis::new(&op, hd(), IdGen::seeded(1)).unwrap();
        let e0 = sa.update(&frame(0, vec![]));
        assert_eq!(
            e0[0].to_inference()["event"]["properties"],
            json!({
                "personCount": "0.0", "averageDistance": "0.0", "minimumDistanceThreshold": "1.5", "maximumDistanceThreshold": "14.5",
                "eventName": "Unknown", "distanceViolationPersonCount": "0.0", "zone": "lobby"
            })
        );
        // Two people a foot apart (0.2 of the height is 5.6 ft): too close.
        let foot = 0.2 / 5.6 * 1080.0 / 1920.0;
        let e1 = sa.update(&frame(1, vec![entity("a", "person", 0.5, 0.5), entity("b", "person", 0.5 + foot, 0.5)]));
        let v = e1[0].to_inference();
        assert_eq!(v["event"]["properties"]["eventName"], "TooClose");
        assert_eq!(v["event"]["properties"]["distanceViolationPersonCount"], "2.0");
        assert_eq!(v["relatedInferences"].as_array().unwrap().len(), 2);
        let avg: f64 = v["event"]["properties"]["averageDistance"].as_str().unwrap().parse().unwrap();
        assert!((avg - 1.0).abs() < 1e-3, "{avg}");
    }

    #[test]
    fn unsupported_operations_are_refused_with_a_reason() {
        let custom = SpatialOperation::Custom { extension_configuration: json!({}) };
        let err = SpatialAnalysis::new(&custom, hd(), IdGen::seeded(1)).unwrap_err();
        assert_eq!(err, SpatialError::CustomOperation);
        assert!(err.to_string().contains("typed operation"));
        let masks = SpatialOperation::PersonCount {
            options: OperationOptions { enable_face_mask_classifier: true, ..Default::default() },
            zones: vec![zone("z", vec![])],
        };
        assert_eq!(SpatialAnalysis::new(&masks, hd(), IdGen::seeded(1)).unwrap_err(), SpatialError::FaceMaskClassifier);
        // The other advanced options are accepted (the published topologies set trackerNodeConfiguration).
        let tuned = SpatialOperation::PersonCount {
            options: OperationOptions { tracker_node_configuration: Some("{\"enable_speed\": true}".into()), ..Default::default() },
            zones: vec![zone("z", vec![])],
        };
        assert!(SpatialAnalysis::new(&tuned, hd(), IdGen::seeded(1)).is_ok());
    }

    #[test]
    fn zones_without_events_get_the_default_event() {
        let op = SpatialOperation::PersonZoneCrossing { options: OperationOptions::default(), zones: vec![zone("z", vec![])] };
        let mut sa = SpatialAnalysis::new(&op, hd(), IdGen::seeded(1)).unwrap();
        let e = sa.update(&frame(0, vec![entity("a", "person", 0.5, 0.5)]));
        assert_eq!(e.iter().map(|e| e.name()).collect::<Vec<_>>(), ["personZoneEnterExitEvent"]);
    }

    #[test]
    fn published_topologies_compile_into_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/ava-topologies/spatial-analysis");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut typed = 0;
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            // The published custom-operation topology is not valid JSON.
            let Ok(doc) = serde_json::from_str::<Value>(&text) else { continue };
            let plan = match crate::topology::check_topology(&doc, None) {
                Ok(p) => p,
                Err(e) => panic!("{}: {e:?}", entry.path().display()),
            };
            for node in &plan.nodes {
                let Some(crate::topology::NodeSettings::CognitiveServicesVision(s)) = &node.settings else { continue };
                let Some(op) = &s.operation else { continue };
                let r = SpatialAnalysis::new(op, hd(), IdGen::seeded(1));
                match op {
                    SpatialOperation::Custom { .. } => assert_eq!(r.unwrap_err(), SpatialError::CustomOperation),
                    _ => {
                        assert!(r.is_ok(), "{}: {:?}", entry.path().display(), r.err());
                        typed += 1;
                    }
                }
            }
        }
        assert_eq!(typed, 4, "person count, distance, line crossing and zone crossing");
    }

    #[test]
    fn numbers_are_written_like_ava_did() {
        assert_eq!(number(2.0), "2.0");
        assert_eq!(number(0.0), "0.0");
        assert_eq!(number(7132.0), "7132.0");
        assert_eq!(number(20.807043981552123), "20.807043");
        assert_eq!(number(f64::INFINITY), "Infinity");
        let e = TrackedEntity {
            sequence_id: "s".into(),
            inference_id: "i".into(),
            tag: "person".into(),
            confidence: 0.5,
            bbox: BBox::new(0.1, 0.2, 0.3, 0.4),
            predicted: true,
        };
        assert_eq!(person_inference(&e)["extensions"], json!({"trackingId": "s"}));
    }
}
