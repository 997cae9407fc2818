//! MotionDetectionProcessor: analyses the source's decoded frames on its own thread, emits motion events and passes frames with motion downstream.
//!
//! Decoding happens once per source (`runtime::frames`); this node receives the shared
//! pictures, already reduced to grayscale at the analysis size, and hands them to a
//! worker thread through a small bounded queue, so analysis never runs on the actor
//! thread. When the worker falls behind, frames are dropped (counted): analytics may lose
//! frames, recording never does (it does not pass here). Events carry the media time of
//! their first frame, so a signal gate places them on its timeline exactly. Frames in
//! which motion was seen go on, annotated with their regions, to the frames edges
//! (extensions); the others are blocked (SPEC §1.3).

use super::motion_core::{pts_90khz, MotionConfig, MotionDetector, MotionEvent};
use crate::runtime::events::EventClass;
use crate::runtime::node::{Feeder, Node, NodeCtx, NodeEnv};
use crate::runtime::packet::{Event, Frame, Packet};
use crate::topology::nodes::motion_detection::MotionDetection as Settings;
use crate::topology::Generation;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Frames waiting for the worker; beyond this they are dropped.
const QUEUE: usize = 16;

/// What one frame gave: an event to publish, the frame to pass on.
#[derive(Debug, Default)]
pub struct Outcome {
    pub event: Option<MotionEvent>,
    pub pass: Option<Frame>,
}

/// The node's logic without threads or actors: detector plus the pass-through rule.
pub struct MotionStage {
    detector: MotionDetector,
    /// AVA bodies carry `subtype` (see `MotionEvent::to_body`).
    ava: bool,
}

impl MotionStage {
    pub fn new(cfg: MotionConfig, ava: bool) -> Self {
        MotionStage { detector: MotionDetector::new(cfg), ava }
    }

    pub fn on_frame(&mut self, frame: &Frame) -> Outcome {
        let p = &frame.picture;
        let r = self.detector.push(p.gray.width, p.gray.height, &p.gray.data, p.wall);
        let pass = r.motion.then(|| {
            // The frame's own regions, whatever the aggregation window does with events.
            let own = MotionEvent { timestamp_ns: p.wall, regions: r.regions.clone() };
            let body = own.to_body(pts_90khz(p.wall), self.ava);
            let mut inferences = frame.inferences.clone();
            if let Some(list) = body["inferences"].as_array() {
                inferences.extend(list.iter().cloned());
            }
            // Motion regions are not an extension's analysis: a tracker downstream still waits for one.
            Frame { picture: p.clone(), inferences, analysed: frame.analysed }
        });
        Outcome { event: r.event, pass }
    }

    /// The event still aggregating, at the end of the stream.
    pub fn flush(&mut self) -> Option<MotionEvent> {
        self.detector.flush()
    }

    /// The `Analytics.Inference` event of a motion event.
    pub fn event(&self, ev: &MotionEvent, env: &NodeEnv) -> Event {
        let body = ev.to_body(pts_90khz(ev.timestamp_ns), self.ava);
        let time = UNIX_EPOCH + Duration::from_nanos(ev.timestamp_ns.max(0) as u64);
        let properties = env.events.envelope(&env.subject, EventClass::Analytics, "Inference", time);
        Event { time: Some(ev.timestamp_ns), body: Bytes::from(serde_json::to_vec(&body).expect("json")), properties }
    }
}

pub struct MotionDetection {
    settings: Settings,
    queue: Option<SyncSender<Arc<Frame>>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl MotionDetection {
    pub fn new(settings: Settings) -> Self {
        MotionDetection { settings, queue: None, worker: None }
    }
}

impl Node for MotionDetection {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let (tx, rx) = sync_channel::<Arc<Frame>>(QUEUE);
        let cfg = MotionConfig {
            sensitivity: self.settings.sensitivity,
            output_motion_region: self.settings.output_motion_region,
            aggregation_window: self.settings.event_aggregation_window.as_nanos(),
        };
        let feeder = ctx.feeder();
        let env = ctx.env.clone();
        let name = format!("motion-{}", ctx.env.name());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let stage = MotionStage::new(cfg, env.subject.generation == Generation::Ava);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(rx, stage, &feeder, &env)));
            if result.is_err() {
                feeder.failed("the motion worker panicked".into());
            }
        });
        match spawned {
            Ok(h) => {
                self.queue = Some(tx);
                self.worker = Some(h);
            }
            Err(e) => ctx.fail(format!("cannot start the motion worker: {e}")),
        }
    }

    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Packet::Frame(f) = p else { return };
        let Some(q) = &self.queue else { return };
        match q.try_send(f) {
            Ok(()) => {}
            // Motion on the frames that remain still works: the background model adapts.
            Err(TrySendError::Full(_)) => {
                ctx.env.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => ctx.fail("the motion worker stopped"),
        }
    }

    fn stop(&mut self, _ctx: &mut NodeCtx<'_>) {
        // Closing the queue ends the worker after it has drained what it holds.
        self.queue = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

impl Drop for MotionDetection {
    fn drop(&mut self) {
        // A rebuilt node must not leave its predecessor's thread behind: closing the
        // queue ends it (without waiting here, on the actor thread).
        self.queue = None;
    }
}

/// The worker: analyse, publish, pass on.
fn work(rx: std::sync::mpsc::Receiver<Arc<Frame>>, mut stage: MotionStage, feeder: &Feeder, env: &NodeEnv) {
    for f in rx {
        let out = stage.on_frame(&f);
        if let Some(ev) = out.event {
            feeder.produced(Packet::Event(Arc::new(stage.event(&ev, env))));
        }
        if let Some(frame) = out.pass {
            feeder.produced(Packet::Frame(Arc::new(frame)));
        }
        if !feeder.is_connected() {
            return;
        }
    }
    if let Some(ev) = stage.flush() {
        feeder.produced(Packet::Event(Arc::new(stage.event(&ev, env))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::decode::GrayFrame;
    use crate::runtime::packet::Picture;
    use crate::topology::nodes::motion_detection::Sensitivity;

    const SECOND: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SECOND;

    /// A textured 256×192 scene, with a bright 16×48 block at `x` when given.
    fn frame(i: i64, block_x: Option<usize>, upstream: Vec<serde_json::Value>) -> Frame {
        let (w, h) = (256, 192);
        let mut data: Vec<u8> = (0..w * h).map(|k| (60 + ((k % w) / 4 * 7 + (k / w) / 4 * 13) % 70) as u8).collect();
        if let Some(x) = block_x {
            for y in 80..128 {
                data[y * w + x..y * w + x + 16].fill(220);
            }
        }
        let wall = T0 + i * SECOND / 10;
        let picture = Arc::new(Picture {
            pts_90k: i * 9000,
            wall,
            width: 1280,
            height: 960,
            gray: GrayFrame { width: w, height: h, data },
            color: None,
            prepared: Default::default(),
        });
        Frame { picture, inferences: upstream, analysed: false }
    }

    fn stage() -> MotionStage {
        MotionStage::new(MotionConfig { sensitivity: Sensitivity::Medium, output_motion_region: true, aggregation_window: 0 }, true)
    }

    #[test]
    fn still_frames_are_blocked_and_frames_with_motion_pass_with_their_regions() {
        let mut s = stage();
        for i in 0..40 {
            let out = s.on_frame(&frame(i, None, vec![]));
            assert!(out.pass.is_none() && out.event.is_none(), "still frame {i} must be blocked");
        }
        let mut passed = 0;
        for i in 40..60 {
            let x = 40 + 4 * (i - 40) as usize;
            let f = frame(i, Some(x), vec![serde_json::json!({"type": "entity", "from": "upstream"})]);
            let out = s.on_frame(&f);
            let Some(p) = out.pass else { continue };
            passed += 1;
            // The same shared picture, not a copy; upstream inferences kept, motion added.
            assert!(Arc::ptr_eq(&p.picture, &f.picture));
            assert_eq!(p.inferences[0]["from"], "upstream");
            let m = &p.inferences[1];
            assert_eq!((m["type"].as_str(), m["subtype"].as_str()), (Some("motion"), Some("motionDetection")));
            let l = m["motion"]["box"]["l"].as_f64().unwrap();
            let bx = x as f64 / 256.0;
            assert!((bx - 0.1..=bx + 0.1).contains(&l), "box at {l}, block at {bx}");
            assert!(out.event.is_some(), "per-frame events without aggregation");
        }
        assert!(passed >= 15, "{passed} of 20 moving frames passed");
    }

    #[test]
    fn event_time_is_the_frame_wall_time() {
        let mut s = stage();
        for i in 0..40 {
            s.on_frame(&frame(i, None, vec![]));
        }
        let ev = (40..60).find_map(|i| s.on_frame(&frame(i, Some(40 + 4 * (i - 40) as usize), vec![])).event).expect("an event");
        assert_eq!((ev.timestamp_ns - T0) % (SECOND / 10), 0);
        let body = ev.to_body(pts_90khz(ev.timestamp_ns), true);
        assert_eq!(body["timestamp"].as_u64(), Some(pts_90khz(ev.timestamp_ns)));
    }
}
