//! Processor nodes: between sources and sinks.

pub mod extension_core;
pub mod extension_tls;
pub mod frame_rate_filter;
pub mod gate_core;
pub mod grpc_extension;
pub mod grpc_extension_core;
pub mod http_extension;
pub mod line_crossing;
pub mod motion_core;
pub mod motion_detection;
pub mod object_tracking;
pub mod sampling;
pub mod signal_gate;
pub mod spatial_analysis;
