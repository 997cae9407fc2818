//! ObjectTrackingProcessor (AVA): follows the objects an upstream extension detects on sampled frames, and puts them, with stable ids, on every frame.
//!
//! The tracking itself is [`crate::analytics::tracker`]; this node only feeds it. Frames an
//! extension analysed ([`Frame::analysed`]) are detection updates (their entity inferences,
//! possibly none); the frames in between are prediction updates. Every frame goes on with
//! its entity detections replaced by the tracked entities (other inferences, such as motion
//! regions, stay), and frames with tracked entities publish an Inference event, so a hub sink
//! downstream sees every object on every frame, as SPEC describes the AVA processor.
//!
//! The HTTP and gRPC extensions let frames that were not sampled overtake a sampled one
//! whose answer is pending, so detections can arrive a little after later frames: the
//! tracker takes a timestamp that goes backwards as "no time passed".

use super::extension_core::inference_event;
use super::motion_core::pts_90khz;
use crate::analytics::{Detection, IdGen, Tracker, TrackerSettings};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::{Frame, Packet};
use crate::topology::nodes::object_tracking::ObjectTracking as Settings;
use std::sync::Arc;

pub struct ObjectTracking {
    tracker: Tracker,
}

impl ObjectTracking {
    pub fn new(settings: &Settings) -> Self {
        ObjectTracking { tracker: Tracker::new(TrackerSettings::for_accuracy(settings.accuracy), IdGen::from_entropy()) }
    }
}

/// An upstream entity that is a detection to track (not one tracked already upstream).
fn is_detection(v: &serde_json::Value) -> bool {
    v.get("sequenceId").is_none() && Detection::from_inference(v).is_some()
}

impl Node for ObjectTracking {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Packet::Frame(f) = p else {
            ctx.emit(p);
            return;
        };
        let wall = f.picture.wall;
        let pts = pts_90khz(wall);
        let detections: Option<Vec<Detection>> = f.analysed.then(|| f.inferences.iter().filter_map(Detection::from_inference).collect());
        let tracked = self.tracker.update(pts as i64, detections.as_deref());
        let entities: Vec<_> = tracked.entities.iter().map(|e| e.to_inference()).collect();
        if !entities.is_empty() {
            ctx.emit(Packet::Event(Arc::new(inference_event(ctx.env, pts, wall, &entities))));
        }
        let mut inferences: Vec<_> = f.inferences.iter().filter(|v| !is_detection(v)).cloned().collect();
        inferences.extend(entities);
        ctx.emit(Packet::Frame(Arc::new(Frame { picture: f.picture.clone(), inferences, analysed: f.analysed })));
    }
}
