//! Live cameras: one paced, endlessly looping frame broadcast per file, started on the first PLAY and stopped when its last viewer leaves.
//!
//! All clients of a file watch the same live stream, as they would a real camera: a client
//! that joins later sees the current scene, not the start of the file. Each client adds its
//! own random RTP timestamp offset, SSRC and sequence numbers on top of the shared media
//! timeline. Stopping an unwatched camera keeps an idle server idle; the next viewer
//! restarts it from the beginning of the file.

use super::clock::{media_elapsed, wall_offset};
use super::library::Clip;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// Frames a client may fall behind before it skips ahead (to the next keyframe). Sized for
/// a few seconds at common frame rates so that a TCP client riding out a hiccup loses nothing.
const BROADCAST_CAPACITY: usize = 256;

/// If the pacing task wakes this late (suspended VM, starved runtime), it re-anchors its
/// clock instead of bursting every missed frame at once, as a real camera would.
const MAX_LATENESS: Duration = Duration::from_secs(1);

/// One frame as it goes out live.
#[derive(Debug)]
pub struct LiveFrame {
    /// Presentation time on the camera's endless 90 kHz timeline.
    pub pts: u64,
    pub keyframe: bool,
    pub payloads: Arc<[Bytes]>,
}

/// Maps wall-clock instants to the camera's media timeline (for RTCP sender reports).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    anchor: Instant,
    /// Decode-time position (90 kHz) at `anchor`.
    anchor_media: u64,
    /// Presentation time of the first frame (decode time 0).
    pts0: u64,
    speed: f64,
}

impl Timing {
    /// The presentation timestamp the camera is showing at `now`.
    pub fn pts_at(&self, now: Instant) -> u64 {
        self.anchor_media + media_elapsed(now.saturating_duration_since(self.anchor), self.speed) + self.pts0
    }

    fn due(&self, send_at: u64) -> Instant {
        self.anchor + wall_offset(send_at.saturating_sub(self.anchor_media), self.speed)
    }
}

/// A viewer's handle on a live camera.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<LiveFrame>>,
    /// The client's RTP time origin: no frame `rx` yields has an earlier pts (for streams
    /// without B-frames; with them a reordered frame may sit a few frames earlier, which
    /// receivers take as ordinary reordering).
    pub start_pts: u64,
    pub timing: Arc<Mutex<Timing>>,
}

struct Entry {
    generation: u64,
    clip: Arc<Clip>,
    tx: broadcast::Sender<Arc<LiveFrame>>,
    timing: Arc<Mutex<Timing>>,
    next_pts: Arc<AtomicU64>,
}

/// The running cameras by file name.
pub struct Cameras {
    speed: f64,
    entries: Mutex<HashMap<String, Entry>>,
    generation: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Cameras {
    pub fn new(speed: f64, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Cameras { speed, entries: Mutex::new(HashMap::new()), generation: AtomicU64::new(0), shutdown })
    }

    /// Joins the live stream of `clip`, starting its camera if nobody is watching.
    pub fn subscribe(self: &Arc<Self>, clip: &Arc<Clip>) -> Subscription {
        // Subscribing and the camera's "nobody left, stop" check both hold this lock, so a
        // new viewer can never attach to a camera that is about to exit.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match entries.get(&clip.name) {
            // A changed file gets a new camera; the old one serves its viewers until they leave.
            Some(e) if Arc::ptr_eq(&e.clip, clip) => false,
            _ => true,
        };
        if fresh {
            let entry = self.start(clip.clone());
            entries.insert(clip.name.clone(), entry);
        }
        let e = entries.get(&clip.name).expect("camera entry just ensured");
        // Read before subscribing: every frame the receiver gets is sent after this point,
        // and the task publishes a frame's successor only after sending the frame.
        let start_pts = e.next_pts.load(Ordering::SeqCst);
        Subscription { rx: e.tx.subscribe(), start_pts, timing: e.timing.clone() }
    }

    /// Number of cameras currently running (for tests and metrics).
    pub fn running(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn start(self: &Arc<Self>, clip: Arc<Clip>) -> Entry {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let first = clip.clock.frame(0);
        let timing = Arc::new(Mutex::new(Timing { anchor: Instant::now(), anchor_media: 0, pts0: first.pts, speed: self.speed }));
        let next_pts = Arc::new(AtomicU64::new(first.pts));
        tracing::info!(file = %clip.name, speed = self.speed, "camera started");
        let task = CameraTask {
            cameras: self.clone(),
            generation,
            clip: clip.clone(),
            tx: tx.clone(),
            timing: timing.clone(),
            next_pts: next_pts.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(task.run());
        Entry { generation, clip, tx, timing, next_pts }
    }

    /// Removes the camera if it is still `generation` and nobody watches it. Returns true
    /// when the caller (the camera task) must stop.
    fn retire_if_unwatched(&self, name: &str, generation: u64, tx: &broadcast::Sender<Arc<LiveFrame>>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if tx.receiver_count() > 0 {
            return false;
        }
        if entries.get(name).is_some_and(|e| e.generation == generation) {
            entries.remove(name);
        }
        true
    }
}

struct CameraTask {
    cameras: Arc<Cameras>,
    generation: u64,
    clip: Arc<Clip>,
    tx: broadcast::Sender<Arc<LiveFrame>>,
    timing: Arc<Mutex<Timing>>,
    next_pts: Arc<AtomicU64>,
    shutdown: watch::Receiver<bool>,
}

impl CameraTask {
    async fn run(mut self) {
        let mut n: u64 = 0;
        loop {
            let at = self.clip.clock.frame(n);
            let due = self.timing.lock().unwrap_or_else(|p| p.into_inner()).due(at.send_at);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = self.shutdown.changed() => break,
            }
            let now = Instant::now();
            if now > due + MAX_LATENESS {
                tracing::warn!(file = %self.clip.name, late_ms = (now - due).as_millis() as u64, "camera fell behind; re-anchoring its clock");
                let mut t = self.timing.lock().unwrap_or_else(|p| p.into_inner());
                t.anchor = now;
                t.anchor_media = at.send_at;
            }
            if self.tx.receiver_count() == 0 && self.cameras.retire_if_unwatched(&self.clip.name, self.generation, &self.tx) {
                break;
            }
            let frame = self.clip.frames.get(at.index).expect("clock index within clip");
            let live = Arc::new(LiveFrame { pts: at.pts, keyframe: frame.keyframe, payloads: frame.payloads.clone() });
            // An error only means every receiver left since the check; the next round retires.
            let _ = self.tx.send(live);
            if at.index + 1 == self.clip.frames.len() {
                tracing::debug!(file = %self.clip.name, loop_no = at.loop_no, "camera looped");
            }
            n += 1;
            self.next_pts.store(self.clip.clock.frame(n).pts, Ordering::SeqCst);
        }
        tracing::info!(file = %self.clip.name, frames_sent = n, "camera stopped");
    }
}
