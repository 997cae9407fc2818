//! Sink nodes: where media and events leave a graph.

pub mod file;
pub mod hub_message;
pub mod metadata_core;
pub mod video;
