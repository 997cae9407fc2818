//! Playback over HTTP: video list, recorded time ranges, HLS playlists, MP4 export and the player page.
//!
//! The HTTP layer ([`server`]) is thin; what it serves is computed by pure cores:
//! [`time`] (query times and windows), [`hls`] (playlists), [`export`] (MP4 export as a
//! virtual file of segment-file pieces), [`range`] (HTTP byte ranges) and [`bmff`] (the
//! little box parsing export needs). Everything reads the store through
//! [`crate::recording::Catalog`]; docs/playback.md documents the API.

pub mod bmff;
pub mod error;
pub mod export;
pub mod hls;
pub mod page;
pub mod range;
pub mod server;
pub mod time;

pub use server::{serve, Playback, Serving};
