//! FileSink: one fragmented MP4 per signal-gate activation, H.264 passed through, within the sink's size quota.
//!
//! Files are written fragment by fragment (one per GOP, at most 2 s: `recording::fragmenter`), each
//! fsync'd before it is announced, so a power cut loses at most the fragment being
//! written and leaves a file that plays up to its last fragment. A name is never
//! reused: when a file exists, `-1`, `-2`, … is appended.

use crate::media::mp4::{Fmp4Writer, VideoParams as Mp4Params};
use crate::recording::fragmenter::{Flush, Fragmenter};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::{Nanos, Packet, VideoParams, VideoSample};
use crate::topology::params::NamePattern;
use serde_json::json;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Last frame's duration when nothing follows it (25 fps).
const DEFAULT_FRAME_90K: u32 = 3600;

pub struct FileSink {
    dir: PathBuf,
    pattern: NamePattern,
    quota_bytes: Option<u64>,
    clip: Option<Clip>,
}

struct Clip {
    /// Set once the first keyframe arrived and the file exists.
    file: Option<OpenFile>,
    /// Files this activation produced (a parameter change splits it).
    part: u32,
    start: Nanos,
}

struct OpenFile {
    path: PathBuf,
    writer: Fmp4Writer<File>,
    params: Arc<VideoParams>,
    /// GOPs (at most 2 s) with decode times from wall time, shared with the video store.
    fragmenter: Fragmenter,
    available: bool,
}

impl FileSink {
    /// `dir` must exist and be writable (checked at activation by `prepare_dir`).
    pub fn new(dir: PathBuf, pattern: NamePattern, quota_mib: Option<u64>) -> Self {
        FileSink { dir, pattern, quota_bytes: quota_mib.map(|m| m.saturating_mul(1 << 20)), clip: None }
    }

    fn open(&mut self, v: &VideoSample, ctx: &mut NodeCtx<'_>) -> Option<OpenFile> {
        let clip = self.clip.as_mut()?;
        let at = UNIX_EPOCH + Duration::from_nanos(clip.start.max(0) as u64);
        let base = self.pattern.render(at);
        let path = unique_path(&self.dir, &base);
        let params = match Mp4Params::from_avcc(v.params.avcc.to_vec(), DEFAULT_FRAME_90K) {
            Ok(p) => p,
            Err(e) => {
                ctx.diagnostic("MediaFormatError", json!({ "code": "InvalidParameters", "message": e.to_string() }));
                return None;
            }
        };
        let file = match File::options().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                ctx.diagnostic(
                    "StorageError",
                    json!({ "code": "CannotCreateFile", "path": path.display().to_string(), "message": e.to_string() }),
                );
                return None;
            }
        };
        let writer = match Fmp4Writer::new(file, &params) {
            Ok(w) => w,
            Err(e) => {
                ctx.diagnostic(
                    "StorageError",
                    json!({ "code": "WriteFailed", "path": path.display().to_string(), "message": e.to_string() }),
                );
                return None;
            }
        };
        clip.part += 1;
        tracing::info!(node = ctx.env.name(), path = %path.display(), "recording started");
        ctx.operational("RecordingStarted", json!({ "outputType": "filePath", "outputLocation": path.display().to_string() }));
        Some(OpenFile { path, writer, params: v.params.clone(), fragmenter: Fragmenter::new(), available: false })
    }

    fn on_video(&mut self, v: &VideoSample, ctx: &mut NodeCtx<'_>) {
        let Some(clip) = self.clip.as_mut() else { return };
        // A camera that changes its parameters mid-clip gets a new file: one MP4 holds
        // one sample description.
        if clip.file.as_ref().is_some_and(|f| *f.params != *v.params) {
            let f = clip.file.take().expect("checked");
            finish(f, ctx);
        }
        if self.clip.as_ref().is_some_and(|c| c.file.is_none()) {
            if !v.keyframe {
                return; // a file starts on a keyframe
            }
            let Some(f) = self.open(v, ctx) else { return };
            self.clip.as_mut().expect("clip").file = Some(f);
        }
        let f = self.clip.as_mut().and_then(|c| c.file.as_mut()).expect("open file");
        if let Some(done) = f.fragmenter.push(v) {
            if let Err(e) = write(f, done, ctx) {
                let f = self.clip.as_mut().and_then(|c| c.file.take()).expect("open file");
                ctx.diagnostic("StorageError", json!({ "code": "WriteFailed", "path": f.path.display().to_string(), "message": e }));
            }
        }
    }

    fn end_clip(&mut self, ctx: &mut NodeCtx<'_>) {
        if let Some(f) = self.clip.take().and_then(|c| c.file) {
            finish(f, ctx);
            self.enforce_quota(ctx);
        }
    }

    /// Deletes this sink's oldest files until the folder fits its quota.
    fn enforce_quota(&self, ctx: &mut NodeCtx<'_>) {
        let Some(quota) = self.quota_bytes else { return };
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf, u64)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, e.path(), m.len()))
            })
            .collect();
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        // Never the newest file: it was just written and is what the user wants most.
        for (_, path, len) in files.iter().take(files.len().saturating_sub(1)) {
            if total <= quota {
                break;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {
                    total -= len;
                    tracing::info!(node = ctx.env.name(), path = %path.display(), "deleted oldest recording for the quota");
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete recording"),
            }
        }
    }
}

/// Writes one fragment and makes it durable.
fn write(f: &mut OpenFile, done: Flush, ctx: &mut NodeCtx<'_>) -> Result<(), String> {
    f.writer.write_fragment(&done.frames, done.next_dts_90k).map_err(|e| e.to_string())?;
    f.writer.get_ref().sync_data().map_err(|e| e.to_string())?;
    if !f.available {
        f.available = true;
        ctx.operational("RecordingAvailable", json!({ "outputType": "filePath", "outputLocation": f.path.display().to_string() }));
    }
    Ok(())
}

fn finish(mut f: OpenFile, ctx: &mut NodeCtx<'_>) {
    let path = f.path.display().to_string();
    if let Some(done) = f.fragmenter.finish() {
        if let Err(e) = write(&mut f, done, ctx) {
            ctx.diagnostic("StorageError", json!({ "code": "WriteFailed", "path": path, "message": e }));
        }
    }
    match f.writer.finish() {
        Ok(file) => {
            let _ = file.sync_all();
        }
        Err(e) => ctx.diagnostic("StorageError", json!({ "code": "WriteFailed", "path": path, "message": e.to_string() })),
    }
    tracing::info!(node = ctx.env.name(), path = %path, "recording stopped");
    ctx.operational("RecordingStopped", json!({ "outputType": "filePath", "outputLocation": path }));
}

/// `dir/base.mp4`, or `dir/base-1.mp4`, `-2`, … when taken.
fn unique_path(dir: &Path, base: &str) -> PathBuf {
    let first = dir.join(format!("{base}.mp4"));
    if !first.exists() {
        return first;
    }
    (1u32..).map(|i| dir.join(format!("{base}-{i}.mp4"))).find(|p| !p.exists()).expect("some number is free")
}

/// Creates the sink's folder and checks that it is writable.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".vela-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

impl Node for FileSink {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        match p {
            Packet::ClipStart { start, .. } => {
                self.end_clip(ctx);
                self.clip = Some(Clip { file: None, part: 0, start });
            }
            Packet::Video(v) => self.on_video(&v, ctx),
            Packet::ClipEnd { .. } => self.end_clip(ctx),
            Packet::Event(_) | Packet::Frame(_) => {}
        }
    }

    fn stop(&mut self, ctx: &mut NodeCtx<'_>) {
        self.end_clip(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_reused() {
        let dir = std::env::temp_dir().join(format!("vela-unique-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = unique_path(&dir, "clip");
        assert_eq!(a.file_name().unwrap(), "clip.mp4");
        std::fs::write(&a, b"x").unwrap();
        let b = unique_path(&dir, "clip");
        assert_eq!(b.file_name().unwrap(), "clip-1.mp4");
        std::fs::write(&b, b"x").unwrap();
        assert_eq!(unique_path(&dir, "clip").file_name().unwrap(), "clip-2.mp4");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_unwritable_folder_is_refused_with_its_path() {
        let e = prepare_dir(Path::new("/proc/vela-cannot-exist")).unwrap_err();
        assert!(e.contains("/proc/vela-cannot-exist"), "{e}");
    }
}
