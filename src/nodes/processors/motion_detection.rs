//! MotionDetectionProcessor: decodes the camera's frames on its own thread and emits motion events from the motion core.
//!
//! Decoding never runs on the actor thread: samples go through a small bounded queue
//! to a worker thread that owns the openh264 decoder and the detector. When the worker
//! falls behind, samples are dropped (counted) and the decoder resyncs at the next
//! keyframe — analytics may lose frames, recording never does (it does not pass here).
//! Events carry the media time of their first frame, so a signal gate places them on
//! its timeline exactly.

use super::motion_core::{pts_90khz, MotionConfig, MotionDetector, ANALYSIS};
use crate::media::decode::Decoder;
use crate::runtime::events::EventClass;
use crate::runtime::node::{Feeder, Node, NodeCtx};
use crate::runtime::packet::{Event, Nanos, Packet, VideoSample};
use crate::topology::nodes::motion_detection::MotionDetection as Settings;
use crate::topology::Generation;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Samples waiting for the worker; beyond this they are dropped.
const QUEUE: usize = 16;

enum Work {
    Sample(Arc<VideoSample>),
    /// Samples were dropped before this one: the decoder must resync.
    Loss,
}

pub struct MotionDetection {
    settings: Settings,
    queue: Option<SyncSender<Work>>,
    lost: bool,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl MotionDetection {
    pub fn new(settings: Settings) -> Self {
        MotionDetection { settings, queue: None, lost: false, worker: None }
    }
}

impl Node for MotionDetection {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let (tx, rx) = sync_channel::<Work>(QUEUE);
        let cfg = MotionConfig {
            sensitivity: self.settings.sensitivity,
            output_motion_region: self.settings.output_motion_region,
            aggregation_window: self.settings.event_aggregation_window.as_nanos(),
        };
        let feeder = ctx.feeder();
        let env = ctx.env.clone();
        let name = format!("motion-{}", ctx.env.name());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(rx, cfg, &feeder, &env)));
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
        let Packet::Video(v) = p else { return };
        let Some(q) = &self.queue else { return };
        if self.lost && q.try_send(Work::Loss).is_ok() {
            self.lost = false;
        }
        match q.try_send(Work::Sample(v)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.lost = true;
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

/// The worker: decode, reduce, detect, publish.
fn work(rx: std::sync::mpsc::Receiver<Work>, cfg: MotionConfig, feeder: &Feeder, env: &crate::runtime::node::NodeEnv) {
    let mut decoder = Decoder::new();
    let mut detector = MotionDetector::new(cfg);
    // pts → wall time of the samples in the decoder (it holds one frame back).
    let mut walls: VecDeque<(i64, Nanos)> = VecDeque::new();
    let publish = |ev: super::motion_core::MotionEvent| {
        let ava = env.subject.generation == Generation::Ava;
        let body = ev.to_body(pts_90khz(ev.timestamp_ns), ava);
        let time = UNIX_EPOCH + Duration::from_nanos(ev.timestamp_ns.max(0) as u64);
        let properties = env.events.envelope(&env.subject, EventClass::Analytics, "Inference", time);
        let e = Event { time: Some(ev.timestamp_ns), body: Bytes::from(serde_json::to_vec(&body).expect("json")), properties };
        feeder.produced(Packet::Event(Arc::new(e)));
    };
    let mut analyse = |pts: i64, gray: crate::media::decode::GrayFrame, walls: &mut VecDeque<(i64, Nanos)>| {
        while walls.front().is_some_and(|(p, _)| *p < pts) {
            walls.pop_front();
        }
        let Some(wall) = walls.front().filter(|(p, _)| *p == pts).map(|(_, w)| *w) else { return };
        let r = detector.push(gray.width, gray.height, &gray.data, wall);
        if let Some(ev) = r.event {
            publish(ev);
        }
    };
    for w in rx {
        // The callback borrows the decoder's buffers: reduce there, analyse after.
        let mut grays = Vec::new();
        let reduce = |f: &crate::media::decode::Frame<'_>| (f.pts, f.gray(ANALYSIS.0, ANALYSIS.1));
        match w {
            Work::Sample(s) => {
                walls.push_back((s.pts_90k, s.wall));
                // Errors are counted by the decoder, which resyncs at the next keyframe.
                let _ = decoder.decode_sample(&s, |f| grays.push(reduce(f)));
            }
            Work::Loss => decoder.note_loss(|f| grays.push(reduce(f))),
        }
        for (pts, g) in grays {
            analyse(pts, g, &mut walls);
        }
        if !feeder.is_connected() {
            return;
        }
    }
    if let Some(ev) = detector.flush() {
        publish(ev);
    }
}
