//! The appliance's recordings: the video store under the state folder, retention on a timer with low-space alerts, and the playback server.

use super::config::Appliance;
use crate::clock::{unix_nanos, Clock, SystemClock};
use crate::playback::Playback;
use crate::recording::{Reason, RetentionReport, StoreLimits, VideoStore};
use crate::runtime::events::{EventClass, Events, Subject};
use crate::topology::Generation;
use anyhow::Context;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// While the disk stays below its floor, the alert is repeated this often.
const LOW_SPACE_REPEAT: Duration = Duration::from_secs(3600);

/// The store, its retention task and the playback server, running.
pub struct Recordings {
    pub store: VideoStore,
    /// Where the player page and the playback API listen.
    pub playback_addr: SocketAddr,
    playback: actix_web::dev::ServerHandle,
    retention: tokio::task::JoinHandle<()>,
    /// The engines' event channels: low-space alerts go to every engine module.
    alerts: Arc<Mutex<Vec<(Events, Generation)>>>,
}

/// Opens the store (its index in `state/video-index`), recovers what a crash left, starts retention and
/// the playback server. Must run inside an actix System.
pub async fn start(appliance: &Appliance, state_dir: &Path) -> anyhow::Result<Recordings> {
    let r = &appliance.recording;
    let limits = StoreLimits {
        max_bytes: r.max_size_mib.map(|m| m.saturating_mul(1 << 20)),
        min_free_bytes: r.min_free_mib.saturating_mul(1 << 20),
    };
    let index_dir = state_dir.join("video-index");
    let store = {
        let dir = index_dir.clone();
        tokio::task::spawn_blocking(move || VideoStore::open(&dir, limits)).await?
    }
    .with_context(|| format!("cannot open the video store in {}", index_dir.display()))?;
    let rec = store.recovery();
    if !rec.problems.is_empty() {
        println!("video store: recovered after an unclean stop ({} problem(s), see the log)", rec.problems.len());
    }

    let playback = Playback::new(Arc::new(store.clone()), appliance.playback.token.clone());
    let serving = playback
        .serve(appliance.playback.listen)
        .with_context(|| format!("the playback server cannot listen on {}", appliance.playback.listen))?;
    let playback_addr = serving.addr;
    let handle = serving.handle.clone();
    tokio::spawn(async move {
        if let Err(e) = serving.server.await {
            tracing::error!(error = %e, "playback server stopped");
        }
    });
    println!("playback: player page at http://{playback_addr}/, API at http://{playback_addr}/api/videos");

    let alerts: Arc<Mutex<Vec<(Events, Generation)>>> = Arc::default();
    let retention = tokio::spawn(retention_loop(
        store.clone(),
        Duration::from_secs(r.retention_interval_seconds),
        alerts.clone(),
        Arc::new(SystemClock),
    ));
    Ok(Recordings { store, playback_addr, playback: handle, retention, alerts })
}

impl Recordings {
    /// An engine module whose event outputs carry the store's alerts.
    pub fn alert_to(&self, events: Events, generation: Generation) {
        self.alerts.lock().expect("alerts lock").push((events, generation));
    }

    pub async fn stop(self) {
        self.retention.abort();
        self.playback.stop(true).await;
        // Sinks closed their writers when the engines stopped; make the index durable.
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
    }
}

async fn retention_loop(store: VideoStore, every: Duration, alerts: Arc<Mutex<Vec<(Events, Generation)>>>, clock: Arc<dyn Clock>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut low_since_alert: Option<Instant> = None;
    loop {
        tick.tick().await;
        let now = unix_nanos(clock.now());
        let s = store.clone();
        let report = match tokio::task::spawn_blocking(move || s.enforce_retention(now)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "retention pass failed");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "retention pass panicked");
                continue;
            }
        };
        log_report(&report);
        let limit = store.limits().min_free_bytes;
        // Deleting recordings to keep the floor is already worth an alert: the oldest video is
        // going sooner than its retention says.
        let cut = report.deleted.iter().filter(|d| d.reason == Reason::FreeSpace).count();
        if report.below_floor || cut > 0 {
            if low_since_alert.is_none_or(|t| t.elapsed() >= LOW_SPACE_REPEAT) {
                low_since_alert = Some(Instant::now());
                let message = if report.below_floor {
                    "free disk space is below the recording floor and no more recordings can be deleted to make room"
                } else {
                    "free disk space fell below the recording floor: the oldest recordings were deleted to make room"
                };
                let body = json!({
                    "code": "LowDiskSpace",
                    "message": message,
                    "freeBytes": report.free_bytes,
                    "minimumFreeBytes": limit,
                    "segmentsDeleted": cut,
                });
                tracing::warn!(free_bytes = ?report.free_bytes, minimum = limit, "low disk space for recordings");
                for (events, generation) in alerts.lock().expect("alerts lock").iter() {
                    events.emit(
                        &Subject { generation: *generation, instance: String::new(), node: None },
                        EventClass::Diagnostics,
                        "StorageError",
                        body.clone(),
                    );
                }
            }
        } else if low_since_alert.take().is_some() {
            tracing::info!(free_bytes = ?report.free_bytes, "disk space for recordings is above the floor again");
        }
    }
}

fn log_report(r: &RetentionReport) {
    for d in &r.deleted {
        tracing::info!(video = %d.video, segment = d.id, bytes = d.bytes, reason = ?d.reason, "retention deleted a segment");
    }
    for (path, e) in &r.failed {
        tracing::warn!(path = %path.display(), error = %e, "retention could not delete a file");
    }
}
