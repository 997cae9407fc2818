//! Vela: a live video analytics appliance that runs LVA/AVA media graphs on one edge box.

pub mod analytics;
pub mod app;
pub mod check;
pub mod clock;
pub mod control;
pub mod grpc;
pub mod hub;
pub mod media;
pub mod modules;
pub mod nodes;
pub mod playback;
pub mod recording;
pub mod runtime;
pub mod store;
pub mod topology;
pub mod watch;
