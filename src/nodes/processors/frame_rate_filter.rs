//! FrameRateFilterProcessor (LVA 1.0): passes at most `maximumFps` frames per second of media time, by the shared sampling rule.

use super::sampling::Sampler;
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::Packet;

pub struct FrameRateFilter {
    sampler: Sampler,
}

impl FrameRateFilter {
    pub fn new(maximum_fps: f64) -> Self {
        FrameRateFilter { sampler: Sampler::new(Some(maximum_fps)) }
    }
}

impl Node for FrameRateFilter {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        // Only frames are rated; anything else on its inputs (none in valid topologies)
        // goes on as it came.
        if let Packet::Frame(f) = &p {
            if !self.sampler.take(f.picture.wall) {
                return;
            }
        }
        ctx.emit(p);
    }
}
