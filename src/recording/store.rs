//! VideoStore: the handle every writer, reader and the retention task share (index, video directories, writer claims, leases).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::index::{Index, VideoRecord};
use super::metadata;
use super::names;
use super::recover::{self, RecoveryReport};
pub use super::retention::StoreLimits;
use super::retention::{self, RetentionReport, VideoView};
use super::spans;
use super::writer::SegmentWriter;
use super::{Catalog, Lease, Nanos, Segment, Span, StoreError, VideoSettings, VideoSummary, GAP_TOLERANCE};

/// The video store. Cheap to clone; all clones share one index.
#[derive(Clone)]
pub struct VideoStore {
    inner: Arc<Inner>,
}

type LeaseTable = Arc<Mutex<HashMap<(String, u64), u32>>>;

struct Inner {
    index: Index,
    limits: StoreLimits,
    videos: RwLock<HashMap<String, VideoRecord>>,
    /// Videos with a writer, and what readers see of it (see writer.rs).
    writers: Mutex<HashMap<String, Live>>,
    leases: LeaseTable,
    recovery: RecoveryReport,
}

/// A writer as readers see it.
#[derive(Debug, Default, Clone)]
struct Live {
    /// The segment it has open: its fragments are indexed here as they become durable and
    /// persisted when it closes.
    open: Option<Segment>,
    /// Between the first sample of a recording and its end, across segment rolls: a
    /// video does not stop being live for the instant one segment closes and the next opens.
    recording: bool,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Index("a thread panicked while holding the store's state".into())
}

impl VideoStore {
    /// Opens (or creates) the index in `index_dir` and recovers what a crash left (see
    /// [`recover`](super::recover)). sled locks the directory: one process at a time.
    pub fn open(index_dir: &Path, limits: StoreLimits) -> Result<VideoStore, StoreError> {
        let index = Index::open(index_dir)?;
        let videos = index.videos()?;
        let mut recovery = RecoveryReport::default();
        recover::recover(&index, &videos, &mut recovery)?;
        for p in &recovery.problems {
            tracing::warn!(problem = %p, "video store recovery");
        }
        Ok(VideoStore {
            inner: Arc::new(Inner {
                index,
                limits,
                videos: RwLock::new(videos.into_iter().collect()),
                writers: Mutex::new(HashMap::new()),
                leases: Arc::default(),
                recovery,
            }),
        })
    }

    /// What recovery found at open.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.inner.limits
    }

    /// Creates video `name` with its files in `cache_dir/name`, unless it exists. Settings
    /// apply only at creation (like AVA's videoCreationProperties); the settings in effect
    /// are returned. Another `cache_dir` for an existing video is refused.
    pub fn ensure_video(&self, name: &str, cache_dir: &Path, settings: VideoSettings) -> Result<VideoSettings, StoreError> {
        names::validate_video_name(name)?;
        if settings.segment_length <= 0 {
            return Err(StoreError::Invalid(format!("video '{name}': segment length must be positive")));
        }
        if settings.retention.is_some_and(|r| r <= 0) {
            return Err(StoreError::Invalid(format!("video '{name}': retention period must be positive")));
        }
        let dir = cache_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let dir = dir.canonicalize().map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let rec = self.inner.index.create_video(name, &VideoRecord { dir: dir.clone(), settings })?;
        if rec.dir != dir {
            return Err(StoreError::Invalid(format!(
                "video '{name}' is stored in {}; it cannot be recorded into {}",
                rec.dir.display(),
                dir.display()
            )));
        }
        let settings = rec.settings.clone();
        self.inner.videos.write().map_err(poisoned)?.insert(name.to_string(), rec);
        Ok(settings)
    }

    /// The directory holding a video's segment files.
    pub fn video_dir(&self, name: &str) -> Option<PathBuf> {
        self.inner.videos.read().ok()?.get(name).map(|r| r.dir.clone())
    }

    /// A video's settings (as created).
    pub fn settings(&self, name: &str) -> Option<VideoSettings> {
        self.inner.videos.read().ok()?.get(name).map(|r| r.settings.clone())
    }

    /// The writer of an existing video; [`StoreError::Busy`] while another one lives.
    pub fn writer(&self, video: &str) -> Result<SegmentWriter, StoreError> {
        let rec = self
            .inner
            .videos
            .read()
            .map_err(poisoned)?
            .get(video)
            .cloned()
            .ok_or_else(|| StoreError::Invalid(format!("video '{video}' does not exist")))?;
        let mut writers = self.inner.writers.lock().map_err(poisoned)?;
        if writers.contains_key(video) {
            return Err(StoreError::Busy(video.to_string()));
        }
        writers.insert(video.to_string(), Live::default());
        drop(writers);
        Ok(SegmentWriter::new(self.clone(), video.to_string(), rec.dir, rec.settings.segment_length))
    }

    /// Deletes what the retention rules say (see [`retention`](super::retention)), with the
    /// free space of the videos' file systems from statvfs.
    pub fn enforce_retention(&self, now: Nanos) -> Result<RetentionReport, StoreError> {
        self.enforce_retention_with(now, &retention::free_space)
    }

    /// [`enforce_retention`](Self::enforce_retention) with free space from `free` (for tests and simulations).
    pub fn enforce_retention_with(&self, now: Nanos, free: &dyn Fn(&Path) -> Option<u64>) -> Result<RetentionReport, StoreError> {
        let writing: HashMap<String, Segment> =
            self.inner.writers.lock().map_err(poisoned)?.iter().filter_map(|(k, v)| Some((k.clone(), v.open.clone()?))).collect();
        let mut views: Vec<VideoView> = self
            .inner
            .videos
            .read()
            .map_err(poisoned)?
            .iter()
            .map(|(name, rec)| VideoView {
                name: name.clone(),
                dir: rec.dir.clone(),
                retention: rec.settings.retention,
                max_bytes: rec.settings.max_bytes,
                writing: writing.get(name).map(|s| (s.id, s.indexed_len())),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        let leases = &self.inner.leases;
        let is_leased = |video: &str, id: u64| leases.lock().is_ok_and(|l| l.contains_key(&(video.to_string(), id)));
        // Leases are checked again while the entries are removed, under the lease lock, so
        // a reader that leased after the plan keeps its segment.
        let remove = |video: &str, ids: &[u64]| -> Result<Vec<Segment>, StoreError> {
            let table = leases.lock().map_err(poisoned)?;
            let free_ids: Vec<u64> = ids.iter().copied().filter(|id| !table.contains_key(&(video.to_string(), *id))).collect();
            let removed = self.inner.index.remove_segments(video, &free_ids)?;
            if !removed.is_empty() {
                self.forget_metadata_before_media(video)?;
            }
            Ok(removed)
        };
        let report = retention::apply(&self.inner.index, &views, now, &self.inner.limits, free, &is_leased, &remove)?;
        if report.below_floor {
            tracing::warn!(free = ?report.free_bytes, floor = self.inner.limits.min_free_bytes, "video store below its free-space floor");
        }
        Ok(report)
    }

    /// Records the inferences `source` published about the picture at `time` with a video
    /// (see [`metadata`]); returns the bytes stored.
    pub fn put_metadata(&self, video: &str, time: Nanos, source: &str, inferences: &serde_json::Value) -> Result<usize, StoreError> {
        if !self.known(video)? {
            return Err(StoreError::Invalid(format!("video '{video}' does not exist")));
        }
        self.inner.index.metadata().put(video, time, source, inferences)
    }

    /// Metadata describes media: once retention deleted the oldest media, what was recorded
    /// about it (and before it) goes too. Retention deletes oldest first, so this is all
    /// metadata before the first media that remains (the open segment counts).
    fn forget_metadata_before_media(&self, video: &str) -> Result<(), StoreError> {
        let stored = self.inner.index.span_bounds(video)?.map(|b| b.start);
        let open = self.live(video)?.map(|l| l.start);
        let first = match (stored, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.inner.index.metadata().remove_before(video, first)?;
        Ok(())
    }

    /// Bytes the index takes on disk.
    pub fn index_bytes(&self) -> Result<u64, StoreError> {
        self.inner.index.size_on_disk()
    }

    /// Makes every index change durable (writers do it when they close).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.index.flush()
    }

    pub(crate) fn index(&self) -> &Index {
        &self.inner.index
    }

    /// Publishes the segment a writer has open (None once it is closed and persisted); a
    /// segment opening marks the video as recording.
    pub(crate) fn set_live(&self, video: &str, segment: Option<Segment>) {
        if let Ok(mut w) = self.inner.writers.lock() {
            if let Some(slot) = w.get_mut(video) {
                slot.recording |= segment.is_some();
                slot.open = segment;
            }
        }
    }

    /// A recording ended (gate closed, writer closing or failed): the video is no longer live.
    pub(crate) fn set_not_recording(&self, video: &str) {
        if let Ok(mut w) = self.inner.writers.lock() {
            if let Some(slot) = w.get_mut(video) {
                slot.recording = false;
            }
        }
    }

    /// The open segment of a video, as its writer last published it.
    fn live(&self, video: &str) -> Result<Option<Segment>, StoreError> {
        Ok(self.inner.writers.lock().map_err(poisoned)?.get(video).and_then(|l| l.open.clone()))
    }

    fn recording(&self, video: &str) -> Result<bool, StoreError> {
        Ok(self.inner.writers.lock().map_err(poisoned)?.get(video).is_some_and(|l| l.recording))
    }

    pub(crate) fn release_writer(&self, video: &str) {
        if let Ok(mut w) = self.inner.writers.lock() {
            w.remove(video);
        }
    }

    fn known(&self, video: &str) -> Result<bool, StoreError> {
        Ok(self.inner.videos.read().map_err(poisoned)?.contains_key(video))
    }
}

struct LeaseGuard {
    table: LeaseTable,
    keys: Vec<(String, u64)>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Ok(mut t) = self.table.lock() else { return };
        for k in &self.keys {
            if let Some(n) = t.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    t.remove(k);
                }
            }
        }
    }
}

impl Catalog for VideoStore {
    fn videos(&self) -> Result<Vec<VideoSummary>, StoreError> {
        let mut records: Vec<(String, VideoRecord)> =
            self.inner.videos.read().map_err(poisoned)?.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(records.len());
        for (name, rec) in records {
            let meta = self.inner.index.meta(&name)?;
            let mut bounds = self.inner.index.span_bounds(&name)?;
            let live = self.live(&name)?;
            let recording = self.recording(&name)?;
            let (mut bytes, mut segments) = (meta.bytes, meta.segments);
            // The open segment is stored when it closes; until then it counts once it has media.
            if let Some(l) = live.as_ref().filter(|l| !l.fragments.is_empty()) {
                bytes = bytes.saturating_add(l.indexed_len());
                segments += 1;
                let b = bounds.get_or_insert(Span { start: l.start, end: l.end });
                *b = Span { start: b.start.min(l.start), end: b.end.max(l.end) };
            }
            out.push(VideoSummary {
                title: rec.settings.title,
                description: rec.settings.description,
                start: bounds.map(|b| b.start),
                end: bounds.map(|b| b.end),
                bytes,
                segments,
                live: recording,
                name,
            });
        }
        Ok(out)
    }

    fn newest(&self) -> Result<Option<Nanos>, StoreError> {
        let names: Vec<String> = self.inner.videos.read().map_err(poisoned)?.keys().cloned().collect();
        let mut newest = None;
        for name in names {
            let stored = self.inner.index.span_bounds(&name)?.map(|b| b.end);
            let live = self.live(&name)?.filter(|l| !l.fragments.is_empty()).map(|l| l.end);
            newest = newest.max(stored).max(live);
        }
        Ok(newest)
    }

    fn segments(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Segment>>, StoreError> {
        if !self.known(video)? {
            return Ok(None);
        }
        if end <= start {
            return Ok(Some(Vec::new()));
        }
        let mut segs = self.inner.index.segments_overlapping(video, start, end)?;
        if let Some(live) = self.live(video)? {
            segs.retain(|s| s.id != live.id);
            if live.start < end && live.end > start {
                let at = segs.partition_point(|s| s.id < live.id);
                segs.insert(at, live);
            }
        }
        Ok(Some(segs))
    }

    fn ranges(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Span>>, StoreError> {
        if !self.known(video)? {
            return Ok(None);
        }
        let stored = self.inner.index.spans(video, start, end)?;
        let Some(live) = self.live(video)?.filter(|l| !l.fragments.is_empty()) else { return Ok(Some(stored)) };
        // Clipping first and merging after gives the same spans: clipping cuts only at the
        // window's edges, where nothing can join.
        let pieces = spans::clip(live.fragments.iter().map(|f| Span { start: f.start, end: f.end() }), start, end);
        Ok(Some(spans::merge(stored.into_iter().chain(pieces), GAP_TOLERANCE)))
    }

    fn metadata(&self, video: &str, start: Nanos, end: Nanos, limit: usize) -> Result<Option<metadata::Page>, StoreError> {
        if !self.known(video)? {
            return Ok(None);
        }
        self.inner.index.metadata().page(video, start, end, limit).map(Some)
    }

    fn segment_path(&self, segment: &Segment) -> PathBuf {
        // An unknown video has no directory: a bare file name that opens nothing.
        self.video_dir(&segment.video).unwrap_or_default().join(&segment.file)
    }

    fn lease(&self, segments: &[Segment]) -> Lease {
        let keys: Vec<(String, u64)> = segments.iter().map(|s| (s.video.clone(), s.id)).collect();
        if let Ok(mut t) = self.inner.leases.lock() {
            for k in &keys {
                *t.entry(k.clone()).or_insert(0) += 1;
            }
        }
        Lease(Box::new(LeaseGuard { table: self.inner.leases.clone(), keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> VideoSettings {
        VideoSettings {
            title: "Lobby".into(),
            description: String::new(),
            segment_length: 30_000_000_000,
            retention: None,
            max_bytes: None,
        }
    }

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("vela-store-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn videos_are_created_once_in_one_folder() {
        let dir = temp();
        let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
        let cache = dir.join("cache");
        assert_eq!(store.ensure_video("lobby", &cache, settings()).unwrap().title, "Lobby");
        // Later settings do not apply; the same folder (spelled differently) is fine.
        let later = VideoSettings { title: "Other".into(), ..settings() };
        assert_eq!(store.ensure_video("lobby", &cache.join("..").join("cache"), later).unwrap().title, "Lobby");
        assert!(matches!(store.ensure_video("lobby", &dir.join("elsewhere"), settings()), Err(StoreError::Invalid(_))));
        assert!(store.video_dir("lobby").unwrap().ends_with("cache/lobby"));
        for bad in ["", "../etc", "a/b", ".x"] {
            assert!(matches!(store.ensure_video(bad, &cache, settings()), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        assert!(matches!(store.ensure_video("z", &cache, VideoSettings { segment_length: 0, ..settings() }), Err(StoreError::Invalid(_))));
        assert!(matches!(store.ensure_video("z", &cache, VideoSettings { retention: Some(0), ..settings() }), Err(StoreError::Invalid(_))));
        // Videos survive a restart with their settings; an empty one lists without a span.
        drop(store);
        let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
        let v = store.videos().unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].name.as_str(), v[0].title.as_str(), v[0].start, v[0].bytes, v[0].live), ("lobby", "Lobby", None, 0, false));
        assert_eq!(store.ranges("lobby", 0, 10).unwrap(), Some(vec![]));
        assert_eq!(store.segments("lobby", 10, 0).unwrap(), Some(vec![]));
        assert_eq!(store.ranges("nope", 0, 10).unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn leases_count_and_release_on_drop() {
        let dir = temp();
        let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
        let seg = Segment {
            video: "v".into(),
            id: 7,
            file: names::segment_file_name(7),
            init_len: 0,
            codec: String::new(),
            width: 0,
            height: 0,
            start: 0,
            end: 0,
            fragments: vec![],
            open: false,
        };
        let held = |s: &VideoStore| s.inner.leases.lock().unwrap().get(&("v".to_string(), 7)).copied();
        let a = store.lease(std::slice::from_ref(&seg));
        let b = store.lease(&[seg.clone(), seg.clone()]);
        assert_eq!(held(&store), Some(3));
        drop(b);
        assert_eq!(held(&store), Some(1));
        drop(a);
        assert_eq!(held(&store), None);
        std::fs::remove_dir_all(dir).ok();
    }
}
