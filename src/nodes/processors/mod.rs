//! Processor nodes: between sources and sinks.

pub mod gate_core;
