//! The local video store: named videos recorded as fragmented-MP4 segment files, a sled index of their segments and fragments, crash recovery and retention.
//!
//! Layout on disk: each video has a directory (its sink's `localMediaCachePath`, resolved
//! under the state folder, then the video name); each segment is one self-contained fMP4
//! file (ftyp+moov, then one moof+mdat per GOP) named after its start time. The index
//! (sled, its own database under the state folder) holds, per video, its properties and its
//! segments with their wall-clock span and fragment byte ranges — everything playback
//! needs without opening a file.
//!
//! Durability order: a fragment is written, fsync'd, and only then indexed; so the index
//! never points at missing bytes, and a crash leaves at most the unindexed tail of the
//! segment being written, which recovery indexes up to its last complete fragment.
//!
//! This module is the contract between the writers (video/asset sinks), the readers
//! (playback) and retention; see the submodules for each.

use serde::{Deserialize, Serialize};

pub mod encoding;
pub mod fragmenter;
pub mod index;
pub mod metadata;
pub mod names;
pub mod recover;
pub mod retention;
pub mod scan;
pub mod spans;
pub mod store;
pub mod writer;

pub use recover::RecoveryReport;
pub use retention::{Deleted, Reason, RetentionReport};
pub use store::{StoreLimits, VideoStore};
pub use writer::{EndReason, SegmentWriter, Written};

/// Nanoseconds since the Unix epoch (UTC wall clock of the media).
pub type Nanos = i64;

/// One fragment of a segment file: one GOP, starting with a keyframe.
///
/// A GOP longer than 2 s is written as several moof+mdat pairs (each durable on its own)
/// and indexed as one fragment covering them all; while its segment is open (`open`), the
/// last fragment's entry grows with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    /// Offset of the moof in the segment file, and the length of moof + mdat.
    pub offset: u64,
    pub len: u64,
    /// Wall-clock time of the first frame and the fragment's duration.
    pub start: Nanos,
    pub duration: Nanos,
    pub frames: u32,
}

impl Fragment {
    pub fn end(&self) -> Nanos {
        self.start + self.duration
    }
}

/// One segment file of a video.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub video: String,
    /// Unique within the video and increasing with time (the start time in ms, made unique).
    pub id: u64,
    /// File name inside the video's directory.
    pub file: String,
    /// Bytes of ftyp + moov at the start of the file (the HLS/MSE init segment).
    pub init_len: u64,
    /// RFC 6381 codec string and picture size, for playlists and players.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Wall-clock span covered by the indexed fragments: `start` of the first, end of the last.
    pub start: Nanos,
    pub end: Nanos,
    pub fragments: Vec<Fragment>,
    /// Still being written: playback treats the video as live.
    pub open: bool,
}

impl Segment {
    /// Bytes of the file the index vouches for (init + indexed fragments).
    pub fn indexed_len(&self) -> u64 {
        self.fragments.last().map_or(self.init_len, |f| f.offset + f.len)
    }
}

/// How a video is kept (from the sink's properties and the appliance's settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSettings {
    pub title: String,
    pub description: String,
    /// Target segment length (`segmentLength`; a new segment starts at the first keyframe
    /// after it).
    pub segment_length: Nanos,
    /// `retentionPeriod`: segments ending before now − this are deleted.
    pub retention: Option<Nanos>,
    /// `localMediaCacheMaximumSizeMiB` in bytes: oldest segments go first beyond it.
    pub max_bytes: Option<u64>,
}

/// A video as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSummary {
    pub name: String,
    pub title: String,
    pub description: String,
    /// Span of what is recorded (None when nothing is).
    pub start: Option<Nanos>,
    pub end: Option<Nanos>,
    pub bytes: u64,
    pub segments: u64,
    /// A segment is being written.
    pub live: bool,
}

/// A time span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: Nanos,
    pub end: Nanos,
}

/// Two pieces of media closer than this are one range (no visible gap): a frame interval at
/// the lowest frame rates cameras use, plus jitter.
pub const GAP_TOLERANCE: Nanos = 1_000_000_000;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("video store index: {0}")]
    Index(String),
    #[error("video store i/o on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another sink writes this video (SPEC: a video has one writer).
    #[error("video '{0}' is being recorded by another sink")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
}

/// Keeps segment files from retention while readers use them; released on drop.
pub struct Lease(pub Box<dyn Send + Sync>);

/// What playback reads: the index, without writing. The store implements it; playback
/// never sees the store's writers.
pub trait Catalog: Send + Sync + 'static {
    fn videos(&self) -> Result<Vec<VideoSummary>, StoreError>;
    /// Segments overlapping `[start, end)`, in time order; `None` for an unknown video.
    fn segments(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Segment>>, StoreError>;
    /// Recorded spans within `[start, end)` (clipped to it), pieces closer than
    /// [`GAP_TOLERANCE`] merged; `None` for an unknown video. Must stay fast over weeks of
    /// index (it is what a timeline asks when zoomed out).
    fn ranges(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Span>>, StoreError>;
    /// Where a segment's file is.
    fn segment_path(&self, segment: &Segment) -> std::path::PathBuf;
    /// Protects the segments' files from retention until the lease is dropped.
    fn lease(&self, segments: &[Segment]) -> Lease;
    /// Inference metadata recorded with a video at `start <= time < end`, at most `limit`
    /// entries; `None` for an unknown video.
    fn metadata(&self, video: &str, start: Nanos, end: Nanos, limit: usize) -> Result<Option<metadata::Page>, StoreError>;
    /// The end of the newest media of any video. Playback treats a window as "in the
    /// future" only after both the clock and this: media recorded while the clock was
    /// ahead (corrected later by NTP) or from a camera sped up for tests stays reachable.
    fn newest(&self) -> Result<Option<Nanos>, StoreError> {
        Ok(None)
    }
}
