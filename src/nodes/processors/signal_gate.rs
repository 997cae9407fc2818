//! SignalGateProcessor: the actor shell around the gate's timing core.

use super::gate_core::{GateCore, GateOutput, GateTiming};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::{Nanos, Packet, VideoSample};
use crate::topology::nodes::signal_gate::SignalGate as Settings;
use std::sync::Arc;

/// How far before "now" an event's own time may reach (see `GateTiming::event_lateness`).
pub const EVENT_LATENESS: Nanos = 10 * super::gate_core::SECOND;

pub struct SignalGate {
    core: GateCore<Arc<VideoSample>>,
    now: Nanos,
}

impl SignalGate {
    pub fn new(s: &Settings) -> Self {
        let timing = GateTiming {
            evaluation_window: s.activation_evaluation_window.as_nanos(),
            signal_offset: s.activation_signal_offset.as_nanos(),
            minimum_activation: s.minimum_activation_time.as_nanos(),
            maximum_activation: s.maximum_activation_time.as_nanos(),
            event_lateness: EVENT_LATENESS,
        };
        SignalGate { core: GateCore::new(timing), now: 0 }
    }

    fn forward(out: Vec<GateOutput<Arc<VideoSample>>>, ctx: &mut NodeCtx<'_>) {
        for o in out {
            ctx.emit(match o {
                GateOutput::Start { activation, start } => Packet::ClipStart { activation, start },
                GateOutput::Frame(f) => Packet::Video(f),
                GateOutput::End { activation, end } => Packet::ClipEnd { activation, end },
            });
        }
    }
}

impl Node for SignalGate {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let out = match p {
            Packet::Video(v) => {
                self.now = self.now.max(v.wall);
                self.core.on_frame(v)
            }
            Packet::Event(e) => {
                if self.now == 0 {
                    // No media yet: nothing to record, and no timeline to place it on.
                    tracing::debug!(node = ctx.env.name(), "event before any media ignored");
                    return;
                }
                self.core.on_event(e.time.unwrap_or(self.now), self.now)
            }
            Packet::Frame(_) | Packet::ClipStart { .. } | Packet::ClipEnd { .. } => return,
        };
        Self::forward(out, ctx);
    }

    fn stop(&mut self, ctx: &mut NodeCtx<'_>) {
        let out = self.core.flush();
        Self::forward(out, ctx);
    }
}
