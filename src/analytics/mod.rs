//! Spatial analytics as pure cores: a multi-object tracker, line crossing, zones, person count and distance.
//!
//! Nothing here runs actors, does I/O or reads clocks: each core is a value that takes
//! frames (a media timestamp plus detections or tracked entities) and returns values
//! (tracked entities, crossings, zone events), so the graph nodes that wrap them stay
//! thin and every rule is tested here. The conventions users see (direction, focus
//! points, hysteresis, the accuracy table, event shapes) are written up in
//! `docs/analytics.md`.
//!
//! Data flow, as the nodes wire it:
//!
//! ```text
//! detections (every Nth frame) ─► tracker::Tracker ─► TrackedFrame (every frame)
//!                                                        ├─► line_crossing::LineCrossings  (LineCrossingProcessor)
//!                                                        └─► spatial::SpatialAnalysis      (CognitiveServicesVisionProcessor)
//!                                                               └─ zones::{ZoneWatch, …} and LineCrossings
//! ```
//!
//! Coordinates are normalised to the frame (`[0,0]` top-left, x right, y down, SPEC §4.3);
//! thresholds given in pixels are applied in pixels through a [`geometry::FrameSize`].
//! Times are media timestamps on the 90 kHz clock ([`Pts`]).

pub mod assign;
pub mod geometry;
pub mod ids;
pub mod kalman;
pub mod line_crossing;
pub mod spatial;
pub mod tracker;
pub mod zones;

pub use geometry::{BBox, FrameSize, Pt};
pub use ids::IdGen;
pub use tracker::{Detection, TrackedEntity, TrackedFrame, Tracker, TrackerSettings};

/// A media timestamp on the 90 kHz clock (the PTS the analytics events carry).
pub type Pts = i64;

/// Ticks of [`Pts`] per second.
pub const TICKS_PER_SECOND: Pts = 90_000;

/// Seconds between two timestamps; negative when `to` is earlier.
pub fn seconds(from: Pts, to: Pts) -> f64 {
    (to - from) as f64 / TICKS_PER_SECOND as f64
}

/// Whether the once-a-second sweep of stale tracks is due at `pts` (marking it done):
/// forgetting is cheap but not free, and time going backwards (a camera clock jump)
/// starts the count again.
pub(crate) fn sweep_due(last: &mut Option<Pts>, pts: Pts) -> bool {
    let due = last.is_none_or(|t| pts - t >= TICKS_PER_SECOND || pts < t);
    if due {
        *last = Some(pts);
    }
    due
}

/// A JSON number written the way the proto carries it (32-bit), so 0.3 prints as `0.3` and
/// not as the nearest double's 17 digits.
pub(crate) fn json_f32(v: f64) -> serde_json::Value {
    let short: f64 = (v as f32).to_string().parse().unwrap_or(v);
    serde_json::Number::from_f64(short).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
