//! Processor nodes: between sources and sinks.

pub mod gate_core;
pub mod motion_core;
pub mod motion_detection;
pub mod signal_gate;
