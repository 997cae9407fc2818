//! LineCrossingProcessor (AVA): counts tracked objects crossing named lines and publishes each crossing as a lineCrossing event.
//!
//! The geometry, direction convention, hysteresis and counters are
//! [`crate::analytics::line_crossing`] (docs/analytics.md); this node reads the tracked
//! entities (`sequenceId`) its upstream tracker or extension put on each frame. Tracks that
//! end upstream are not announced on frames, so their state here ages out by time.

use super::extension_core::inference_event;
use super::motion_core::pts_90khz;
use crate::analytics::line_crossing::LineCrossings;
use crate::analytics::{FrameSize, IdGen, TrackedEntity};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::{Frame, Packet};
use crate::topology::nodes::common::NamedLine;
use std::sync::Arc;

pub struct LineCrossing {
    lines: Vec<NamedLine>,
    /// Made at the first frame, which gives the picture size the pixel margins need.
    state: Option<(LineCrossings, (u32, u32))>,
}

impl LineCrossing {
    pub fn new(lines: Vec<NamedLine>) -> Self {
        LineCrossing { lines, state: None }
    }
}

impl Node for LineCrossing {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Packet::Frame(f) = p else {
            ctx.emit(p);
            return;
        };
        let size = (f.picture.width as u32, f.picture.height as u32);
        let lines = &self.lines;
        let (crossings, known) = self
            .state
            .get_or_insert_with(|| (LineCrossings::for_processor(lines, FrameSize::new(size.0, size.1), IdGen::from_entropy()), size));
        if *known != size {
            crossings.set_frame_size(FrameSize::new(size.0, size.1));
            *known = size;
        }
        let wall = f.picture.wall;
        let pts = pts_90khz(wall);
        let entities: Vec<TrackedEntity> = f.inferences.iter().filter_map(TrackedEntity::from_inference).collect();
        let found = crossings.update_with(pts as i64, entities.iter(), &[]);
        if found.is_empty() {
            ctx.emit(Packet::Frame(f));
            return;
        }
        let events: Vec<_> = found.iter().map(|c| c.to_inference()).collect();
        ctx.emit(Packet::Event(Arc::new(inference_event(ctx.env, pts, wall, &events))));
        let mut inferences = f.inferences.clone();
        inferences.extend(events);
        ctx.emit(Packet::Frame(Arc::new(Frame { picture: f.picture.clone(), inferences, analysed: f.analysed })));
    }
}
