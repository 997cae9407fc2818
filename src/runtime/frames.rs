//! Decoded frames for the analytics branches: one decoder per source, on its own thread, shared by every node downstream that needs pixels.
//!
//! A source whose plan has `frames` edges (to a motion detector, an extension…) gets a
//! [`FrameTap`]: its encoded samples are copied into a bounded queue read by a decoder
//! thread, which reduces each picture once (grayscale at the analysis size) and sends the
//! same [`Picture`] to every consumer. Instances without such edges never decode.
//!
//! Load shedding: when the decoder falls behind, samples are dropped at the queue (the
//! recording branches, which get the encoded samples directly, lose nothing) and the
//! decoder resyncs at the next keyframe; a consumer whose mailbox is full misses that
//! frame. Both are counted in the source's [`NodeStats`] and reported as
//! `Diagnostics.DataDropped`; decode errors as `Diagnostics.MediaFormatError` — each at
//! most once per [`REPORT_EVERY`], with running totals, so a broken camera cannot flood
//! the hub.

use super::events::EventClass;
use super::node::{NodeEnv, NodeStats};
use super::packet::{Frame, Packet, Picture, VideoSample};
use crate::media::decode::{DecodeStats, Decoder};
use crate::nodes::processors::motion_core::ANALYSIS;
use actix::Recipient;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples waiting for the decoder; beyond this they are dropped (about half a second
/// at 30 fps: more would only add latency to the analytics).
const QUEUE: usize = 16;
/// Diagnostics of one kind from one source at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

enum Work {
    Sample(Arc<VideoSample>),
    /// Samples were dropped (or the source restarted) before the next one.
    Loss,
}

/// The decoding side of a source (see the module doc).
pub struct FrameTap {
    queue: Option<SyncSender<Work>>,
    /// The next sample must be preceded by a `Loss`.
    lost: bool,
    stop: Arc<AtomicBool>,
    worker: Option<std::thread::JoinHandle<()>>,
    stats: Arc<NodeStats>,
}

impl FrameTap {
    /// Starts the decoder thread that feeds `consumers` (the source's `frames` outputs).
    pub fn start(consumers: Vec<Recipient<Packet>>, env: NodeEnv) -> std::io::Result<FrameTap> {
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = env.stats.clone();
        let worker = {
            let stop = stop.clone();
            std::thread::Builder::new().name(format!("decode-{}", env.name())).spawn(move || {
                let mut w = Worker::new(consumers, env);
                // A panic in the decoder must not take the process down; analytics stop for
                // this source, recording goes on, and the failure is reported.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run(rx, &stop))).is_err() {
                    w.env.events.emit(
                        &w.env.subject,
                        EventClass::Diagnostics,
                        "RuntimeError",
                        json!({"code": "DecoderFailed", "message": "the video decoder failed; analytics of this source stopped"}),
                    );
                }
            })?
        };
        Ok(FrameTap { queue: Some(tx), lost: false, stop, worker: Some(worker), stats })
    }

    /// Queues a sample for decoding, or drops it when the decoder is behind.
    pub fn feed(&mut self, sample: &Arc<VideoSample>) {
        let Some(q) = &self.queue else { return };
        if self.lost && q.try_send(Work::Loss).is_ok() {
            self.lost = false;
        }
        if self.lost {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match q.try_send(Work::Sample(sample.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.lost = true;
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.queue = None,
        }
    }

    /// The stream is interrupted (the source reconnects): decode from the next keyframe.
    pub fn interrupted(&mut self) {
        self.lost = true;
    }

    /// Ends the decoder thread without decoding what is still queued, and waits for it,
    /// so that no thread of an instance outlives its deactivation.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.queue = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FrameTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.queue = None;
    }
}

/// Rate-limited diagnostics with running totals.
struct Reporter {
    last: Option<Instant>,
    reported: u64,
}

impl Reporter {
    fn due(&mut self, total: u64) -> bool {
        if total == self.reported || self.last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return false;
        }
        self.last = Some(Instant::now());
        self.reported = total;
        true
    }
}

struct Worker {
    consumers: Vec<Recipient<Packet>>,
    env: NodeEnv,
    decoder: Decoder,
    seen: DecodeStats,
    errors: Reporter,
    drops: Reporter,
    last_message: String,
}

impl Worker {
    fn new(consumers: Vec<Recipient<Packet>>, env: NodeEnv) -> Self {
        let r = || Reporter { last: None, reported: 0 };
        Worker {
            consumers,
            env,
            decoder: Decoder::new(),
            seen: DecodeStats::default(),
            errors: r(),
            drops: r(),
            last_message: String::new(),
        }
    }

    fn run(&mut self, rx: Receiver<Work>, stop: &AtomicBool) {
        // pts → wall time of the samples inside the decoder (it holds frames back).
        let mut walls: std::collections::VecDeque<(i64, i64)> = std::collections::VecDeque::new();
        for w in rx {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let mut pictures = Vec::new();
            // The callback borrows openh264's planes: reduce there, send after.
            let color = self.env.color;
            let reduce =
                |f: &crate::media::decode::Frame<'_>| (f.pts, f.width, f.height, f.gray(ANALYSIS.0, ANALYSIS.1), color.then(|| f.i420()));
            match w {
                Work::Sample(s) => {
                    walls.push_back((s.pts_90k, s.wall));
                    if let Err(e) = self.decoder.decode_sample(&s, |f| pictures.push(reduce(f))) {
                        self.last_message = e.to_string();
                    }
                }
                Work::Loss => self.decoder.note_loss(|f| pictures.push(reduce(f))),
            }
            for (pts, width, height, gray, color) in pictures {
                while walls.front().is_some_and(|(p, _)| *p < pts) {
                    walls.pop_front();
                }
                let Some(&(_, wall)) = walls.front().filter(|(p, _)| *p == pts) else { continue };
                let picture = Arc::new(Picture { pts_90k: pts, wall, width, height, gray, color, prepared: Default::default() });
                self.send(Frame { picture, inferences: Vec::new(), analysed: false });
            }
            self.account();
        }
    }

    fn send(&self, frame: Frame) {
        let p = Packet::Frame(Arc::new(frame));
        for c in &self.consumers {
            if c.try_send(p.clone()).is_err() {
                self.env.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Publishes the decoder's counters and reports what went wrong since last time.
    fn account(&mut self) {
        let s = self.decoder.stats();
        let st = &self.env.stats;
        st.decoded.fetch_add(s.decoded - self.seen.decoded, Ordering::Relaxed);
        st.decode_errors.fetch_add(s.errors - self.seen.errors, Ordering::Relaxed);
        st.resyncs.fetch_add(s.resyncs - self.seen.resyncs, Ordering::Relaxed);
        self.seen = s;
        let errors = st.decode_errors.load(Ordering::Relaxed);
        if errors > 0 && self.errors.due(errors) {
            tracing::warn!(instance = %self.env.subject.instance, node = self.env.name(), errors, resyncs = s.resyncs, last = %self.last_message, "video decode errors");
            self.env.events.emit(
                &self.env.subject,
                EventClass::Diagnostics,
                "MediaFormatError",
                json!({"code": "VideoDecodeError", "message": self.last_message, "errors": errors, "resyncs": st.resyncs.load(Ordering::Relaxed)}),
            );
        }
        let dropped = st.dropped.load(Ordering::Relaxed);
        if dropped > 0 && self.drops.due(dropped) {
            self.env.events.emit(
                &self.env.subject,
                EventClass::Diagnostics,
                "DataDropped",
                json!({"dataType": "video", "reason": "analytics behind", "dropped": dropped}),
            );
        }
    }
}
