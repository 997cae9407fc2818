//! Source nodes: where media and events enter a graph.

pub mod hub_message;
pub mod rtsp;
