//! VideoSink (AVA) and AssetSink (LVA): H.264 passed through into a named video of the local video store.
//!
//! Both record into [`crate::recording`]: segments of `segmentLength`, fsync'd fragment by
//! fragment, indexed as they become durable. A VideoSink appends every recording to one
//! named video (gaps where nothing was recorded); an AssetSink names its video from
//! `assetNamePattern` at the start of each recording, so `${System.DateTime}` makes one
//! video per gate activation, as one asset per activation did in LVA.
//!
//! A recording is what the sink is fed between a gate's clip start and end, or — fed
//! straight from a camera — everything from activation to deactivation. Each produces
//! RecordingStarted (first segment file created), RecordingAvailable (first fragment
//! durable: a player can start) and RecordingStopped. Write failures never stop the
//! instance: they are reported as StorageError diagnostics and recording resumes at the
//! next keyframe, keeping everything already durable.
//!
//! Inference events routed to the sink (AVA's "inference metadata recorded along with the
//! media") are kept with the video by wall-clock time, while it records; see
//! [`crate::recording::metadata`].

use super::metadata_core::MetadataTiming;
use crate::recording::{EndReason, SegmentWriter, StoreError, VideoSettings, VideoStore, Written};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::{Event, Nanos, Packet, VideoSample};
use crate::topology::params::NamePattern;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

/// Which video a recording goes into.
#[derive(Clone)]
pub enum Target {
    /// VideoSink: always this video (created at activation).
    Video(String),
    /// AssetSink: the pattern rendered at the recording's start.
    Asset(NamePattern),
}

/// What the sink needs to create its videos.
#[derive(Clone)]
pub struct VideoSinkConfig {
    pub target: Target,
    /// The resolved `localMediaCachePath`: the video's files go in `cache_dir/<name>/`.
    pub cache_dir: PathBuf,
    pub settings: VideoSettings,
}

impl VideoSinkConfig {
    fn output_type(&self) -> &'static str {
        match self.target {
            Target::Video(_) => "videoName",
            Target::Asset(_) => "assetName",
        }
    }

    /// The video a recording starting at `start` goes into, created if new.
    pub fn video_for(&self, store: &VideoStore, start: Nanos) -> Result<String, StoreError> {
        let name = match &self.target {
            Target::Video(n) => n.clone(),
            Target::Asset(p) => p.render(UNIX_EPOCH + Duration::from_nanos(start.max(0) as u64)),
        };
        store.ensure_video(&name, &self.cache_dir, self.settings.clone())?;
        Ok(name)
    }
}

pub struct VideoSink {
    store: VideoStore,
    config: VideoSinkConfig,
    /// Fed by a signal gate: record only inside clips.
    gated: bool,
    /// A VideoSink holds its video's writer from activation to deactivation (a video has
    /// one writer); an AssetSink holds one per recording.
    writer: Option<SegmentWriter>,
    recording: Option<Recording>,
    /// The writer could not be had (or failed to start): the next attempt waits for a keyframe.
    retry_at_keyframe: bool,
    /// Wall time of the last sample: the time of events that carry none.
    last_wall: Option<Nanos>,
    /// Which inference events go with the video, and when (pre-roll, late answers).
    timing: MetadataTiming,
    metadata: MetadataStats,
}

/// Inference metadata recorded with the video, and what could not be.
#[derive(Default)]
struct MetadataStats {
    entries: u64,
    bytes: u64,
    refused: u64,
    /// A refusal was reported in this recording (one diagnostic per recording, not per picture).
    reported: bool,
}

struct Recording {
    /// When it started (the clip's start, or the first sample's wall time).
    start: Nanos,
    started: bool,
    available: bool,
}

/// The writer a VideoSink claimed at activation, for the first node built from the factory
/// (a node rebuilt after a failure claims it again: the failed one let it go).
pub type ClaimedWriter = std::sync::Arc<std::sync::Mutex<Option<SegmentWriter>>>;

impl VideoSink {
    pub fn new(store: VideoStore, config: VideoSinkConfig, claimed: &ClaimedWriter) -> Self {
        let writer = claimed.lock().ok().and_then(|mut c| c.take());
        VideoSink {
            store,
            config,
            gated: false,
            writer,
            recording: None,
            retry_at_keyframe: false,
            last_wall: None,
            timing: MetadataTiming::default(),
            metadata: MetadataStats::default(),
        }
    }

    fn video(&self) -> Option<&str> {
        self.writer.as_ref().map(|w| w.video())
    }

    fn on_video(&mut self, v: &VideoSample, ctx: &mut NodeCtx<'_>) {
        self.last_wall = Some(v.wall);
        if self.recording.is_none() {
            if self.gated {
                return; // between clips
            }
            self.recording = Some(Recording::new(v.wall));
        }
        if self.writer.is_none() {
            if self.retry_at_keyframe && !v.keyframe {
                return;
            }
            let start = self.recording.as_ref().expect("recording").start;
            match self.config.video_for(&self.store, start).and_then(|name| self.store.writer(&name)) {
                Ok(w) => {
                    self.retry_at_keyframe = false;
                    self.writer = Some(w);
                }
                Err(e) => {
                    if !self.retry_at_keyframe {
                        storage_error(ctx, "CannotRecord", None, &e);
                    }
                    self.retry_at_keyframe = true;
                    return;
                }
            }
        }
        let writer = self.writer.as_mut().expect("writer");
        let result = writer.push(v);
        let video = writer.video().to_string();
        let rec = self.recording.as_mut().expect("recording");
        match result {
            Ok(written) => rec.report(&written, &video, self.config.output_type(), ctx),
            Err(e) => storage_error(ctx, "WriteFailed", Some(&video), &e),
        }
        self.metadata_opens(ctx);
    }

    /// An inference event routed to the sink: recorded with the video by the time of its
    /// picture, as [`MetadataTiming`] rules. Events without `inferences` (a hub message, say)
    /// have nothing to overlay and are passed over.
    fn on_event(&mut self, e: &Event, ctx: &mut NodeCtx<'_>) {
        let Some(time) = e.time.or(self.last_wall) else { return };
        let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&e.body) else { return };
        let Some(inferences) = body.get_mut("inferences").filter(|i| i.is_array()).map(serde_json::Value::take) else { return };
        let source = e.properties.get("subject").and_then(|s| s.rsplit('/').next()).unwrap_or("");
        for (time, source, inferences) in self.timing.event(time, source, inferences) {
            self.put_metadata(time, &source, &inferences, ctx);
        }
    }

    /// A recording has its video: what waited for it (its pre-roll) goes in.
    fn metadata_opens(&mut self, ctx: &mut NodeCtx<'_>) {
        let (Some(rec), Some(_)) = (&self.recording, &self.writer) else { return };
        for (time, source, inferences) in self.timing.recording(rec.start) {
            self.put_metadata(time, &source, &inferences, ctx);
        }
    }

    fn put_metadata(&mut self, time: Nanos, source: &str, inferences: &serde_json::Value, ctx: &mut NodeCtx<'_>) {
        let Some(video) = self.video().map(str::to_string) else { return };
        match self.store.put_metadata(&video, time, source, inferences) {
            Ok(n) => {
                self.metadata.entries += 1;
                self.metadata.bytes += n as u64;
            }
            Err(err) => {
                self.metadata.refused += 1;
                if !std::mem::replace(&mut self.metadata.reported, true) {
                    storage_error(ctx, "MetadataNotRecorded", Some(&video), &err);
                }
            }
        }
    }

    /// Ends the recording: the segment is closed; an AssetSink lets its video go.
    fn end_recording(&mut self, ctx: &mut NodeCtx<'_>, closing: bool) {
        let Some(mut rec) = self.recording.take() else { return };
        let video = self.video().unwrap_or_default().to_string();
        let keep = !closing && matches!(self.config.target, Target::Video(_));
        self.timing.ended(self.last_wall.unwrap_or(rec.start), keep);
        let result = match self.writer.take() {
            Some(mut w) if keep => {
                let r = w.end_recording();
                self.writer = Some(w);
                Some(r)
            }
            Some(w) => Some(w.close()),
            None => None,
        };
        match result {
            Some(Ok(written)) => rec.report(&written, &video, self.config.output_type(), ctx),
            Some(Err(e)) => storage_error(ctx, "WriteFailed", Some(&video), &e),
            None => {}
        }
        let m = std::mem::take(&mut self.metadata);
        if m.entries + m.refused > 0 {
            tracing::debug!(
                node = ctx.env.name(),
                video,
                entries = m.entries,
                bytes = m.bytes,
                refused = m.refused,
                "inference metadata recorded"
            );
        }
        if rec.started {
            tracing::info!(node = ctx.env.name(), video, "recording stopped");
            ctx.operational("RecordingStopped", json!({ "outputType": self.config.output_type(), "outputLocation": video }));
        }
        self.retry_at_keyframe = false;
    }
}

impl Recording {
    fn new(start: Nanos) -> Self {
        Recording { start, started: false, available: false }
    }

    fn report(&mut self, written: &[Written], video: &str, output_type: &str, ctx: &mut NodeCtx<'_>) {
        for w in written {
            match w {
                Written::SegmentStarted { path, .. } => {
                    tracing::debug!(node = ctx.env.name(), video, path = %path.display(), "segment started");
                    if !self.started {
                        self.started = true;
                        tracing::info!(node = ctx.env.name(), video, "recording started");
                        ctx.operational("RecordingStarted", json!({ "outputType": output_type, "outputLocation": video }));
                    }
                }
                Written::Fragment { .. } => {
                    if !self.available {
                        self.available = true;
                        ctx.operational("RecordingAvailable", json!({ "outputType": output_type, "outputLocation": video }));
                    }
                }
                Written::SegmentClosed { path, reason, .. } => {
                    if *reason == EndReason::Failed {
                        tracing::warn!(node = ctx.env.name(), video, path = %path.display(), "segment ended by a write failure");
                    } else {
                        tracing::debug!(node = ctx.env.name(), video, path = %path.display(), ?reason, "segment closed");
                    }
                }
            }
        }
    }
}

fn storage_error(ctx: &NodeCtx<'_>, code: &str, video: Option<&str>, e: &StoreError) {
    tracing::warn!(node = ctx.env.name(), video, error = %e, "recording problem");
    let mut body = json!({ "code": code, "message": e.to_string() });
    if let Some(v) = video {
        body["videoName"] = json!(v);
    }
    if let StoreError::Io { path, .. } = e {
        body["path"] = json!(path.display().to_string());
    }
    ctx.diagnostic("StorageError", body);
}

impl Node for VideoSink {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        match p {
            Packet::ClipStart { start, .. } => {
                self.end_recording(ctx, false);
                self.gated = true;
                self.recording = Some(Recording::new(start));
                self.metadata_opens(ctx);
            }
            Packet::Video(v) => self.on_video(&v, ctx),
            Packet::ClipEnd { .. } => self.end_recording(ctx, false),
            Packet::Event(e) => self.on_event(&e, ctx),
            Packet::Frame(_) => {}
        }
    }

    fn stop(&mut self, ctx: &mut NodeCtx<'_>) {
        self.end_recording(ctx, true);
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.close() {
                storage_error(ctx, "WriteFailed", None, &e);
            }
        }
    }
}
